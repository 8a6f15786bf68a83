#!/usr/bin/env bash
# Runs a local cluster on loopback: one etcd 3.6 and N runnel-broker processes (default 3)
# with their metadata in it, racks zone-a/zone-b/zone-c round-robin. Ctrl-C or SIGTERM
# stops the brokers (gracefully, each in turn) and then etcd.
#   scripts/run-cluster.sh [N]
# Ports (override by environment): Kafka KAFKA_PORT+i (19092), HTTP HTTP_PORT+i (19192),
# gRPC admin ADMIN_PORT+i (19292), web console CONSOLE_PORT+i (19392), etcd client
# ETCD_PORT (12379) and peer ETCD_PORT+1.
# Data and logs go under RUNNEL_CLUSTER_DIR (default: a new temporary directory); running
# again on the same directory brings the same cluster back. The broker binary is
# RUNNEL_BROKER_BIN, else target/debug/runnel-broker, built when missing; etcd comes
# from scripts/build-etcd.sh (built once per machine when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-3}
KAFKA_PORT=${KAFKA_PORT:-19092}
HTTP_PORT=${HTTP_PORT:-19192}
ADMIN_PORT=${ADMIN_PORT:-19292}
CONSOLE_PORT=${CONSOLE_PORT:-19392}
ETCD_PORT=${ETCD_PORT:-12379}
TTL_MS=${RUNNEL_LEASE_TTL_MS:-10000}
CLUSTER_NAME=${RUNNEL_CLUSTER_NAME:-local}
BROKER=${RUNNEL_BROKER_BIN:-target/debug/runnel-broker}
DIR=${RUNNEL_CLUSTER_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/runnel-cluster.XXXXXX")}
RACKS=(zone-a zone-b zone-c)

case $N in
  '' | *[!0-9]*) echo "usage: scripts/run-cluster.sh [number of brokers]" >&2; exit 2 ;;
esac
[ "$N" -ge 1 ] || { echo "run-cluster.sh: at least one broker" >&2; exit 2; }

if [ ! -x "$BROKER" ]; then
  echo "run-cluster.sh: building $BROKER"
  cargo build --quiet --features runnel-broker/test-support --bin runnel-broker
fi
ETCD=$(./scripts/build-etcd.sh)/etcd

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
busy=()
for port in "$ETCD_PORT" $((ETCD_PORT + 1)); do port_free "$port" || busy+=("$port"); done
for ((i = 0; i < N; i++)); do
  for port in $((KAFKA_PORT + i)) $((HTTP_PORT + i)) $((ADMIN_PORT + i)) $((CONSOLE_PORT + i)); do
    port_free "$port" || busy+=("$port")
  done
done
if [ ${#busy[@]} -gt 0 ]; then
  echo "run-cluster.sh: ports in use: ${busy[*]} (another run-cluster.sh? set KAFKA_PORT, HTTP_PORT, ADMIN_PORT, CONSOLE_PORT, ETCD_PORT)" >&2
  exit 1
fi

pids=()
etcd_pid=""
stop_all() {
  trap - INT TERM EXIT
  echo
  echo "stopping brokers"
  local pid
  for pid in "${pids[@]}"; do
    if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  for pid in "${pids[@]}"; do
    if [ -n "$pid" ]; then wait "$pid" 2>/dev/null || true; fi
  done
  if [ -n "$etcd_pid" ]; then
    echo "stopping etcd"
    kill -TERM "$etcd_pid" 2>/dev/null || true
    wait "$etcd_pid" 2>/dev/null || true
  fi
  echo "stopped; data and logs kept in $DIR"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_http() { # url, what, pid
  local deadline=$((SECONDS + 60))
  until curl -fs -o /dev/null "$1"; do
    kill -0 "$3" 2>/dev/null || { echo "run-cluster.sh: $2 exited; see its log" >&2; exit 1; }
    [ $SECONDS -lt $deadline ] || { echo "run-cluster.sh: $2 not ready within 60 s" >&2; exit 1; }
    sleep 0.2
  done
}

mkdir -p "$DIR/etcd"
etcd_url=http://127.0.0.1:$ETCD_PORT
peer_url=http://127.0.0.1:$((ETCD_PORT + 1))
# Auto-compaction on (etcd otherwise keeps every revision until its quota fills), fsync on.
"$ETCD" --name=runnel --data-dir="$DIR/etcd/data" \
  --listen-client-urls="$etcd_url" --advertise-client-urls="$etcd_url" \
  --listen-peer-urls="$peer_url" --initial-advertise-peer-urls="$peer_url" \
  --initial-cluster="runnel=$peer_url" \
  --auto-compaction-mode=revision --auto-compaction-retention=1000 \
  --log-level=warn >>"$DIR/etcd/etcd.log" 2>&1 </dev/null &
etcd_pid=$!
wait_http "$etcd_url/health" etcd "$etcd_pid"

unset_own=()
for var in RUNNEL_CLUSTER_DIR RUNNEL_LEASE_TTL_MS RUNNEL_CLUSTER_NAME RUNNEL_BROKER_BIN RUNNEL_CACHE; do
  unset_own+=(-u "$var")
done
bootstrap=()
for ((i = 0; i < N; i++)); do
  mkdir -p "$DIR/broker-$i"
  flags=(
    "--broker.id=$i"
    "--cluster.name=$CLUSTER_NAME"
    "--etcd.endpoints=$etcd_url"
    "--metadata.lease.ttl.ms=$TTL_MS"
    "--listeners=PLAINTEXT://127.0.0.1:$((KAFKA_PORT + i))"
    "--http.listener=127.0.0.1:$((HTTP_PORT + i))"
    "--log.dirs=$DIR/broker-$i/data"
    "--broker.rack=${RACKS[i % 3]}"
  )
  flags+=("--admin.listener=127.0.0.1:$((ADMIN_PORT + i))")
  flags+=("--console.listener=127.0.0.1:$((CONSOLE_PORT + i))")
  # The exact command, to start a broker again by hand after killing it.
  printf '%q ' env "${unset_own[@]}" "$(realpath "$BROKER")" "${flags[@]}" >"$DIR/broker-$i/command"
  echo >>"$DIR/broker-$i/command"
  # The broker reads every RUNNEL_<KEY> variable as a configuration key: this script's
  # own (RUNNEL_CLUSTER_DIR, ...) must not reach it.
  env "${unset_own[@]}" "$BROKER" "${flags[@]}" >>"$DIR/broker-$i/broker.log" 2>&1 </dev/null &
  pids+=($!)
  bootstrap+=("127.0.0.1:$((KAFKA_PORT + i))")
done
for ((i = 0; i < N; i++)); do
  wait_http "http://127.0.0.1:$((HTTP_PORT + i))/readyz" "broker $i" "${pids[i]}"
done

echo "cluster '$CLUSTER_NAME' of $N broker(s) ready (lease TTL $TTL_MS ms)"
echo "  bootstrap: $(IFS=,; echo "${bootstrap[*]}")"
echo "  etcd:      $etcd_url (pid $etcd_pid, log $DIR/etcd/etcd.log)"
for ((i = 0; i < N; i++)); do
  admin=127.0.0.1:$((ADMIN_PORT + i))
  echo "  broker $i:  kafka 127.0.0.1:$((KAFKA_PORT + i))  http http://127.0.0.1:$((HTTP_PORT + i))  admin $admin  rack ${RACKS[i % 3]}  pid ${pids[i]}"
  echo "             console http://127.0.0.1:$((CONSOLE_PORT + i))/ui"
  echo "             log $DIR/broker-$i/broker.log, command $DIR/broker-$i/command"
done
echo "  data:      $DIR"
echo "Ctrl-C stops everything."

# Stay up until a signal; a broker that exits is reported, not restarted.
while :; do
  for ((i = 0; i < N; i++)); do
    if [ -n "${pids[i]}" ] && ! kill -0 "${pids[i]}" 2>/dev/null; then
      status=0
      wait "${pids[i]}" || status=$?
      echo "broker $i (pid ${pids[i]}) exited with $status; see $DIR/broker-$i/broker.log"
      pids[i]=""
    fi
  done
  sleep 1 &
  wait $! || true
done
