#!/usr/bin/env bash
# Runnel vs Apache Kafka on this machine (bench/README.md: method, options, wall time).
# Builds the release broker from a clean export of HEAD, so that the figures belong to a
# commit and not to whatever is uncommitted in the checkout; fetches Kafka's jars into the
# cache outside the repository; compiles the Java load generators; then runs bench.py with
# every argument given here.
#   bench/run.sh [--reps 3] [--records 500000] [--fixed-seconds 15] [--warmup-seconds 3]
#                [--fixed-share 0.5] [--partitions 1,8,100,1000] [--acks 1,all]
#                [--brokers kafka,runnel,runnel-interval] [--recovery-records N]
#                [--kafka-version V] [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
version=4.1.1
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  if [ "${args[$i]}" = "--kafka-version" ]; then version=${args[$((i + 1))]}; fi
done
./scripts/setup.sh
cache=${RUNNEL_CACHE:-$HOME/.cache/runnel}

# The broker at HEAD, in a target directory of its own that later runs reuse.
commit=$(git rev-parse HEAD)
src=$cache/bench-src
if [ "$(cat "$src/.commit" 2>/dev/null)" != "$commit" ]; then
  rm -rf "$src"
  mkdir -p "$src"
  git archive "$commit" | tar -x -C "$src"
  echo "$commit" >"$src/.commit"
fi
(cd "$src" && CARGO_TARGET_DIR=$cache/bench-target cargo build --release --locked --quiet --bin runnel-broker)

jars=$(./scripts/kafka-jars.sh "$version" | tail -n 1)/libs
classes=$cache/bench-classes-$version
mkdir -p "$classes"
for java_src in bench/java/*.java; do
  class="$classes/$(basename "$java_src" .java).class"
  if [ ! -f "$class" ] || [ "$java_src" -nt "$class" ]; then javac -cp "$jars/*" -d "$classes" "$java_src"; fi
done
# kafka-python (the admin client) is in the virtual environment setup.sh makes.
exec .venv/bin/python bench/bench.py --jars "$jars" --classes "$classes" \
  --broker-bin "$cache/bench-target/release/runnel-broker" --commit "${commit:0:7}" "$@"
