#!/usr/bin/env bash
# Three-broker Runnel (on etcd 3.6) beside three-node Apache Kafka (KRaft) on this machine:
# replication factor 3, min.insync.replicas=2, acks=all (bench/README.md: method, options,
# wall time). bench/prepare.sh builds the release broker from HEAD, fetches Kafka's jars
# and compiles the load generators; scripts/build-etcd.sh gives etcd; then
# bench/cluster.py runs with every argument given here.
#   bench/cluster.sh [--reps 3] [--records 300000] [--fixed-seconds 15] [--fixed-share 0.5]
#                    [--calibration-runs 3] [--failover-rate 2000] [--kill-after 10]
#                    [--kinds kafka,runnel,runnel-interval] [--kafka-version V] [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/prepare.sh
etcd=$(./scripts/build-etcd.sh)/etcd
exec .venv/bin/python bench/cluster.py --jars "$jars" --classes "$classes" --broker-bin "$broker" \
  --etcd-bin "$etcd" --commit "${commit:0:7}" "$@"
