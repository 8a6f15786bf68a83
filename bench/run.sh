#!/usr/bin/env bash
# Runnel vs Apache Kafka on this machine, in one run (see bench/bench.py for what is
# measured). Builds the release broker, fetches Kafka's jars into the cache outside the
# repository, compiles the Java consumer, then runs every figure.
#   bench/run.sh [--quick] [--records N] [--partitions 1,8,100,1000] [--kafka-version V]
set -euo pipefail
cd "$(dirname "$0")/.."
version=4.1.1
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  if [ "${args[$i]}" = "--kafka-version" ]; then version=${args[$((i + 1))]}; fi
done
./scripts/setup.sh
cargo build --release --quiet -p runnel-broker
jars=$(./scripts/kafka-jars.sh "$version" | tail -n 1)/libs
classes=${RUNNEL_CACHE:-$HOME/.cache/runnel}/bench-classes-$version
mkdir -p "$classes"
for src in bench/java/*.java; do
  class="$classes/$(basename "$src" .java).class"
  if [ ! -f "$class" ] || [ "$src" -nt "$class" ]; then javac -cp "$jars/*" -d "$classes" "$src"; fi
done
exec python3 bench/bench.py --jars "$jars" --classes "$classes" "$@"
