#!/usr/bin/env bash
# Builds and starts a standalone broker: Kafka on localhost:9092, health and metrics on
# localhost:9095, data in ./runnel-data. Arguments are passed to runnel-broker
# (e.g. --config examples/server.properties, --log.flush.mode=interval, --help).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null; then
  echo "run-broker: cargo (Rust stable) is required and was not found" >&2
  exit 1
fi
cargo build --release --bin runnel-broker
exec ./target/release/runnel-broker "$@"
