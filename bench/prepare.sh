# Sourced by bench/run.sh and bench/cluster.sh (set -euo pipefail is theirs): the set-up,
# the release broker built from a clean export of HEAD (so that the figures belong to a
# commit and not to whatever is uncommitted in the checkout), Kafka's jars in the cache
# outside the repository, and the compiled Java load generators. Sets commit, broker,
# version, jars and classes; reads the caller's arguments for --kafka-version.
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
broker=$cache/bench-target/release/runnel-broker

jars=$(./scripts/kafka-jars.sh "$version" | tail -n 1)/libs
classes=$cache/bench-classes-$version
mkdir -p "$classes"
for java_src in bench/java/*.java; do
  class="$classes/$(basename "$java_src" .java).class"
  if [ ! -f "$class" ] || [ "$java_src" -nt "$class" ]; then javac -cp "$jars/*" -d "$classes" "$java_src"; fi
done
