#!/usr/bin/env bash
# Installs what building and testing need, skipping what is already there; safe to re-run.
#   apt: kcat (real librdkafka 2.0 client), a JDK and Maven, iproute2 and procps if missing
#   pip: tests/requirements.txt      Maven Central: Apache Kafka's jars (clients, tools)
#   Go modules: the Kubernetes test bed (kube-apiserver, kube-controller-manager, kubectl,
#   etcd 3.6, helm), built once per machine into ~/.cache/runnel (tests/k8s/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
  echo "setup: cargo (Rust stable) is required and was not found" >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi

apt_packages=()
command -v kcat >/dev/null || apt_packages+=(kcat)
command -v javac >/dev/null || apt_packages+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || apt_packages+=(maven)
command -v ip >/dev/null || apt_packages+=(iproute2)
command -v pgrep >/dev/null || apt_packages+=(procps)
if [ ${#apt_packages[@]} -gt 0 ]; then
  echo "setup: installing ${apt_packages[*]} with apt"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi

if ! python3 - >/dev/null 2>&1 <<'PY'
import kafka, confluent_kafka, lz4, snappy, zstandard, cramjam, pytest, cryptography
assert kafka.__version__ == "3.0.12", kafka.__version__
version = confluent_kafka.version()  # a (str, int) tuple in some releases, a str in others
assert (version[0] if isinstance(version, tuple) else version) == "2.16.1", version
PY
then
  echo "setup: installing the Python test clients with pip"
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -r tests/requirements.txt
fi
./scripts/kafka-jars.sh 4.1.1 >/dev/null
if command -v go >/dev/null; then
  echo "setup: the Kubernetes test bed's binaries (a cold build takes a while, once per machine)"
  ./tests/k8s/build.sh >/dev/null
else
  echo "setup: Go not found; the Kubernetes test bed's tests will be skipped" >&2
fi
echo "setup: done"
