#!/usr/bin/env bash
# Runs every test: formatting and lints, the Rust suites (unit, property, protocol,
# power-loss, kill -9 and hostile-input tests) and the real-client suite (kafka-python,
# confluent-kafka, kcat). Installs what it needs first. Ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh || { echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0
logs=$(mktemp -d)

check() { # name, command...
  local name=$1; shift
  echo "== $name"
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "!! $name failed"; fi
}

check "cargo fmt --check" cargo fmt --all -- --check
check "cargo clippy -D warnings" cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "== cargo test"
cargo test --workspace --no-fail-fast 2>&1 | tee "$logs/cargo.log"
cargo_status=${PIPESTATUS[0]}
read -r p f < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } } END { print p + 0, f + 0 }' "$logs/cargo.log")
passed=$((passed + p)); failed=$((failed + f))
if [ "$cargo_status" -ne 0 ] && [ "$f" -eq 0 ]; then failed=$((failed + 1)); echo "!! cargo test failed to build or run"; fi

echo "== pytest: real clients"
cargo build --quiet --bin runnel-broker
(cd tests && python3 -m pytest -q) 2>&1 | tee "$logs/pytest.log"
pytest_status=${PIPESTATUS[0]}
read -r p f < <(tail -n 1 "$logs/pytest.log" | awk '{ for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p = $i; if ($(i+1) ~ /^(failed|errors?)/) f += $i } } END { print p + 0, f + 0 }')
passed=$((passed + p)); failed=$((failed + f))
if [ "$pytest_status" -ne 0 ] && [ "$f" -eq 0 ]; then failed=$((failed + 1)); echo "!! pytest failed to run"; fi

rm -rf "$logs"
echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
