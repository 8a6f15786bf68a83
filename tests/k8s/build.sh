#!/usr/bin/env bash
# Builds the Kubernetes test bed's binaries once per machine and prints their directory
# (with --check, builds nothing and fails if a build is needed).
#
# kube-apiserver, kube-controller-manager and kubectl come from k8s.io/kubernetes as one
# multi-call binary (its name picks the command), built in a wrapper module that pins
# every staging module (k8s.io/api, client-go, ...) to the matching v0.Y.Z, which
# `go install pkg@version` cannot do. etcd (server/v3) and helm get wrapper modules of
# their own so their dependency graphs never meet Kubernetes'. Everything is cached
# outside the repository, keyed by the three versions; a second run prints the directory
# at once. Build time and peak memory go to build.log beside the binaries.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-1.34.4}
ETCD_VERSION=${ETCD_VERSION:-3.6.16}
HELM_VERSION=${HELM_VERSION:-3.19.5}
ROOT=${RUNNEL_CACHE:-$HOME/.cache/runnel}/k8s-testbed/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION
BIN=$ROOT/bin
LOG=$ROOT/build.log

if [ -x "$BIN/kube" ] && [ -x "$BIN/etcd" ] && [ -x "$BIN/helm" ]; then
  echo "$BIN"
  exit 0
fi
# --check: only say (exit status 1) that a build would be needed.
[ "${1:-}" = "--check" ] && exit 1
command -v go >/dev/null || { echo "build.sh: Go is required" >&2; exit 1; }
mkdir -p "$BIN" "$ROOT/src/kube" "$ROOT/src/etcd" "$ROOT/src/helm"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
FLAGS=(-trimpath -ldflags=-s\ -w)

timed() { # label, command... — appends wall time (and peak RSS where GNU time exists) to the log
  local label=$1; shift
  echo "== $label" >>"$LOG"
  local started=$SECONDS status=0
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f "$label: %e s wall, %M KiB peak RSS" -a -o "$LOG" "$@" >>"$LOG" 2>&1 || status=$?
  else
    "$@" >>"$LOG" 2>&1 || status=$?
    echo "$label: $((SECONDS - started)) s wall" >>"$LOG"
  fi
  if [ "$status" -ne 0 ]; then
    echo "build.sh: $label failed; see $LOG" >&2; tail -30 "$LOG" >&2; exit 1
  fi
}

# --- Kubernetes: kube-apiserver, kube-controller-manager, kubectl in one binary.
KUBE=$ROOT/src/kube
if [ ! -x "$BIN/kube" ]; then
  (cd "$KUBE" && go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" >/dev/null)
  MODFILE=$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/v$K8S_VERSION.mod
  MINOR=$(echo "$K8S_VERSION" | cut -d. -f2-)
  {
    echo "module runnel.dev/testbed/kube"
    echo
    echo "go $(awk '/^go /{print $2}' "$MODFILE")"
    echo
    echo "require k8s.io/kubernetes v$K8S_VERSION"
    echo
    echo "replace ("
    grep -oE '^\s*k8s.io/[a-z0-9-]+ => \./staging' "$MODFILE" | awk -v v="v0.$MINOR" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } >"$KUBE/go.mod"
  cat >"$KUBE/main.go" <<'EOF'
// One binary for the control plane the tests run: its file name (a symlink) picks
// kube-apiserver, kube-controller-manager or kubectl.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"k8s.io/component-base/cli"
	kubectl "k8s.io/kubectl/pkg/cmd"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	var cmd *cobra.Command
	switch name := filepath.Base(os.Args[0]); name {
	case "kube-apiserver":
		cmd = apiserver.NewAPIServerCommand()
	case "kube-controller-manager":
		cmd = controllermanager.NewControllerManagerCommand()
	case "kubectl":
		cmd = kubectl.NewDefaultKubectlCommand()
	default:
		fmt.Fprintf(os.Stderr, "%s: run as kube-apiserver, kube-controller-manager or kubectl\n", name)
		os.Exit(2)
	}
	os.Exit(cli.Run(cmd))
}
EOF
  (cd "$KUBE" && timed "kube: go mod tidy" go mod tidy)
  (cd "$KUBE" && timed "kube: go build" go build "${FLAGS[@]}" -o "$BIN/kube.tmp" .)
  mv "$BIN/kube.tmp" "$BIN/kube"
fi
for name in kube-apiserver kube-controller-manager kubectl; do ln -sf kube "$BIN/$name"; done

# --- etcd (the control plane's own; Debian's 3.4 is too old for current apiservers).
ETCD=$ROOT/src/etcd
if [ ! -x "$BIN/etcd" ]; then
  printf 'module runnel.dev/testbed/etcd\n\ngo 1.24\n' >"$ETCD/go.mod"
  (cd "$ETCD" && timed "etcd: go get" go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION")
  (cd "$ETCD" && timed "etcd: go build" go build "${FLAGS[@]}" -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$BIN/etcd.tmp" "$BIN/etcd"
fi

# --- helm
HELM=$ROOT/src/helm
if [ ! -x "$BIN/helm" ]; then
  printf 'module runnel.dev/testbed/helm\n\ngo 1.24\n' >"$HELM/go.mod"
  (cd "$HELM" && timed "helm: go get" go get "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION")
  (cd "$HELM" && timed "helm: go build" go build "${FLAGS[@]}" -o "$BIN/helm.tmp" helm.sh/helm/v3/cmd/helm)
  mv "$BIN/helm.tmp" "$BIN/helm"
fi
echo "$BIN"
