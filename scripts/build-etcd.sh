#!/usr/bin/env bash
# Builds etcd (server/v3) from its Go modules once per machine and prints the directory
# holding the binary, e.g. `$(scripts/build-etcd.sh)/etcd --version`.
# With --check, builds nothing and fails if a build would be needed.
#
# The same build as the Kubernetes test bed's (tests/k8s/build.sh): a wrapper module that
# requires go.etcd.io/etcd/server/v3, CGO_ENABLED=0, -trimpath, stripped. When the test
# bed already built this etcd version, its binary is linked (or copied) instead of
# building again. Cached outside the repository under
# ${RUNNEL_CACHE:-~/.cache/runnel}/etcd-<version>/bin; build time goes to build.log there.
#
# Debian's etcd (3.4) is too old: 3.4 ships with auto-compaction off, and the test bed's
# apiserver needs 3.5+. Start the result as README.md shows (auto-compaction on, fsync on).
set -euo pipefail

ETCD_VERSION=${ETCD_VERSION:-3.6.16}
CACHE=${RUNNEL_CACHE:-$HOME/.cache/runnel}
ROOT=$CACHE/etcd-$ETCD_VERSION
BIN=$ROOT/bin
LOG=$ROOT/build.log

if [ -x "$BIN/etcd" ]; then
  echo "$BIN"
  exit 0
fi
[ "${1:-}" = "--check" ] && exit 1
mkdir -p "$BIN" "$ROOT/src"

# Test processes may call this at the same time: one builds, the others wait for it.
exec 9>"$ROOT/.lock"
flock 9
if [ -x "$BIN/etcd" ]; then
  echo "$BIN"
  exit 0
fi

# The test bed's etcd of the same version is the same build: reuse it.
for built in "$CACHE"/k8s-testbed/k8s-*-etcd-"$ETCD_VERSION"-helm-*/bin/etcd; do
  [ -x "$built" ] || continue
  # Read the whole output first: `grep -q` closing the pipe early fails it under pipefail.
  version=$("$built" --version 2>/dev/null || true)
  if grep -qx "etcd Version: $ETCD_VERSION" <<<"$version"; then
    ln -f "$built" "$BIN/etcd.tmp" 2>/dev/null || cp "$built" "$BIN/etcd.tmp"
    mv "$BIN/etcd.tmp" "$BIN/etcd"
    echo "reused $built" >>"$LOG"
    echo "$BIN"
    exit 0
  fi
done

command -v go >/dev/null || { echo "build-etcd.sh: Go is required (scripts/setup.sh installs it)" >&2; exit 1; }
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false

timed() { # label, command... — appends wall time (and peak RSS where GNU time exists) to the log
  local label=$1; shift
  echo "== $label" >>"$LOG"
  local started=$SECONDS status=0
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f "$label: %e s wall, %M KiB peak RSS" -a -o "$LOG" "$@" >>"$LOG" 2>&1 || status=$?
  else
    "$@" >>"$LOG" 2>&1 || status=$?
  fi
  echo "$label: $((SECONDS - started)) s" >>"$LOG"
  if [ "$status" -ne 0 ]; then
    echo "build-etcd.sh: $label failed; see $LOG" >&2; tail -30 "$LOG" >&2; exit 1
  fi
}

SRC=$ROOT/src
printf 'module runnel.dev/build/etcd\n\ngo 1.24\n' >"$SRC/go.mod"
rm -f "$SRC/go.sum"
(cd "$SRC" && timed "etcd: go get" go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION")
(cd "$SRC" && timed "etcd: go build" go build -trimpath -ldflags='-s -w' -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3)
mv "$BIN/etcd.tmp" "$BIN/etcd"
echo "$BIN"
