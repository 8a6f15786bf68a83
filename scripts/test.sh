#!/usr/bin/env bash
# Runs every test: formatting and lints, a compile check of the fuzz targets, the Rust
# suites (unit, property, protocol, power-loss, kill -9 and hostile-input tests) and the
# pytest suites (real clients: kafka-python, confluent-kafka, kcat, the Java client and
# Kafka's CLI tools; the Kubernetes test bed). Installs what it needs first.
#   scripts/test.sh           the default, lean run
#   scripts/test.sh --full    exports RUNNEL_FULL=1, which the long soak and fault runs read
# Prints each suite's wall time and ends with "N passed, N failed, N skipped". Under
# CI=true a skipped test counts as failed (and is named): in CI every suite must run.
set -uo pipefail
cd "$(dirname "$0")/.."

for arg in "$@"; do
  case $arg in
    --full) export RUNNEL_FULL=1 ;;
    *) echo "usage: scripts/test.sh [--full]" >&2; exit 2 ;;
  esac
done
ci=false
[ "${CI:-}" = true ] && ci=true
# A clean clone builds once: incremental state would only take disk (a CI run ran out).
$ci && export CARGO_INCREMENTAL=0
[ -n "${RUNNEL_FULL:-}" ] && echo "== full run: RUNNEL_FULL=$RUNNEL_FULL"

passed=0
failed=0
skipped=0
times=()
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

timed() { # name, command...: runs it, records its wall time, returns its status
  local name=$1; shift
  local started=$SECONDS status=0
  echo "== $name"
  "$@" || status=$?
  times+=("$(printf '%6d s  %s' $((SECONDS - started)) "$name")")
  return "$status"
}

logged() { # log file, command...: the command's output to the terminal and the log
  local log=$1; shift
  "$@" 2>&1 | tee "$log"
  return "${PIPESTATUS[0]}"
}

check() { # name, command...: one test that passes when the command does
  local name=$1; shift
  if timed "$name" "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "!! $name failed"; fi
}

# Skips (pytest) and ignored tests (cargo) are counted; under CI=true as failures.
count_skips() { # how many, description of where they are listed
  [ "$1" -eq 0 ] && return
  if $ci; then
    failed=$((failed + $1))
    echo "!! CI=true: $1 skipped test(s) in $2 counted as failed"
  else
    skipped=$((skipped + $1))
  fi
}

check "setup" ./scripts/setup.sh
PY=.venv/bin/python
# setup.sh unpacks Go here when the machine has none new enough (the test bed's tests use it).
go_cache=${RUNNEL_CACHE:-$HOME/.cache/runnel}/go/current/bin
[ -x "$go_cache/go" ] && PATH=$go_cache:$PATH

check "cargo fmt --check" cargo fmt --all -- --check
check "cargo clippy -D warnings" cargo clippy --workspace --all-targets --quiet -- -D warnings
# fuzz/ is a workspace of its own (running the targets needs nightly and cargo-fuzz);
# checking them on stable keeps them compiling against the broker's API.
# No container engine here: the Dockerfile is linted, not built (README "Run on Kubernetes").
check "hadolint Dockerfile" .venv/bin/hadolint Dockerfile
check "fuzz targets compile (cargo check)" \
  cargo check --quiet --manifest-path fuzz/Cargo.toml --target-dir target/fuzz --bins

cargo_status=0
timed "cargo test" logged "$logs/cargo.log" cargo test --workspace --no-fail-fast || cargo_status=$?
read -r p f i < <(awk '/^test result:/ { for (n = 1; n < NF; n++) {
    if ($(n+1) ~ /^passed/) p += $n; if ($(n+1) ~ /^failed/) f += $n; if ($(n+1) ~ /^ignored/) i += $n } }
  END { print p + 0, f + 0, i + 0 }' "$logs/cargo.log")
passed=$((passed + p)); failed=$((failed + f))
if [ "$cargo_status" -ne 0 ] && [ "$f" -eq 0 ]; then failed=$((failed + 1)); echo "!! cargo test failed to build or run"; fi
if [ "$i" -gt 0 ]; then
  echo "ignored Rust tests:"; grep -E '^test .* \.\.\. ignored' "$logs/cargo.log" | sed 's/^/  /'
fi
count_skips "$i" "cargo test (listed above)"
# libtest's own time for each test binary, in the order cargo ran them.
awk '/^ *Running / { name = $0; sub(/^ *Running /, "", name); sub(/ \(.*/, "", name) }
  /^ *Doc-tests / { name = "doc-tests " $2 }
  /^test result:/ { sub(/.*finished in /, ""); printf "%8s  cargo test %s\n", $0, name }' "$logs/cargo.log" >"$logs/targets"

run_pytest() { (cd tests && "../$PY" -m pytest -q); }
# The binary as cargo test built it (test-support on through the dev-dependency), so
# nothing is rebuilt for a different feature set.
# The operator's binary too: the test bed's pods run it (chart, rack init container).
if timed "cargo build --bin runnel-broker --bin runnel-operator" cargo build --quiet \
  -p runnel-broker --features runnel-broker/test-support --bin runnel-broker -p runnel-operator --bin runnel-operator; then
  pytest_status=0
  timed "pytest" logged "$logs/pytest.log" run_pytest || pytest_status=$?
  # The last line is pytest's summary: "3 failed, 40 passed, 2 skipped, 1 error in 9.1s".
  read -r p f s < <(tail -n 1 "$logs/pytest.log" | awk '{ for (n = 1; n < NF; n++) {
      if ($(n+1) ~ /^(passed|xpassed)/) p += $n; if ($(n+1) ~ /^(failed|errors?)/) f += $n
      if ($(n+1) ~ /^(skipped|xfailed)/) s += $n } } END { print p + 0, f + 0, s + 0 }')
  passed=$((passed + p)); failed=$((failed + f))
  if [ "$pytest_status" -ne 0 ] && [ "$f" -eq 0 ]; then failed=$((failed + 1)); echo "!! pytest failed to run"; fi
  count_skips "$s" "pytest (its SKIPPED lines above)"
else
  failed=$((failed + 1)); echo "!! cargo build of the binaries failed: pytest not run"
fi

echo
echo "== wall times"
printf '%s\n' "${times[@]}"
echo "(per test binary, libtest's time)"
cat "$logs/targets"
echo "(per pytest module, from the suites' 'wall time' sections)"
[ -f "$logs/pytest.log" ] && awk '/^=+ .*wall time =+$/ { on = 1; next } /^=+/ { on = 0 } on' "$logs/pytest.log"
echo
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
