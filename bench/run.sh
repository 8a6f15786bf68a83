#!/usr/bin/env bash
# Runnel vs Apache Kafka on this machine (bench/README.md: method, options, wall time).
# bench/prepare.sh builds the release broker from a clean export of HEAD, fetches Kafka's
# jars and compiles the load generators; then bench.py runs with every argument given here.
#   bench/run.sh [--reps 3] [--records 500000] [--fixed-seconds 15] [--warmup-seconds 3]
#                [--fixed-share 0.5] [--partitions 1,8,100,1000] [--acks 1,all]
#                [--brokers kafka,runnel,runnel-interval] [--recovery-records N]
#                [--kafka-version V] [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/prepare.sh
# kafka-python (the admin client) is in the virtual environment setup.sh makes.
exec .venv/bin/python bench/bench.py --jars "$jars" --classes "$classes" \
  --broker-bin "$broker" --commit "${commit:0:7}" "$@"
