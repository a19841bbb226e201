#!/usr/bin/env bash
# Installs corral's build and test dependencies from Debian 12's archive.
#   scripts/deps.sh [--bench]
# Idempotent: does nothing when everything is already installed. Needs root
# (or sudo) only when something is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libhiredis-dev libevent-dev prometheus-cpp-dev
  libgtest-dev libgmock-dev redis-server libssl-dev openssl
  python3-grpcio python3-protobuf python3-redis
  python3-setuptools python3-venv dpkg-dev
  prometheus python3-yaml docker-compose
  clang clang-format libclang-rt-14-dev
)

# --bench: also what tests/bench/compare.sh and the profiles compare with or
# use (not needed to build or test): etcd's lock service, perf, heaptrack.
if [[ ${1:-} == --bench ]]; then
  packages+=(etcd-server etcd-client linux-perf heaptrack valgrind)
fi

# The Node.js client (client/node/test.sh): Debian's nodejs and npm, unless a
# node with npm is already installed (NodeSource's nodejs carries its own npm
# and conflicts with Debian's npm package).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "corral: installing ${missing[*]}" >&2
sudo=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "corral: run as root, or install sudo" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
