#!/usr/bin/env bash
# Installs every build, test and runtime dependency of Riposte from Debian 12 packages.
# Idempotent: packages already present are skipped by apt-get; nothing is downloaded outside apt.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  ccache                              # compiler cache: unchanged sources rebuild from it
  libboost-dev libboost-system-dev
  libssl-dev openssl ca-certificates
  libprotobuf-dev protobuf-compiler
  libspdlog-dev libfmt-dev
  nlohmann-json3-dev libyaml-cpp-dev libcli11-dev
  libsqlite3-dev sqlite3
  libpq-dev postgresql                # the PostgreSQL store; tests start a throwaway cluster
  libyara-dev yara
  libnftables-dev nftables iproute2
  libgtest-dev libgmock-dev libbenchmark-dev
  clang-format curl procps gdb binutils
  clang-14 libclang-rt-14-dev          # libFuzzer targets of the parsers (scripts/fuzz.sh)
  rpm lintian jq systemd util-linux   # packaging: rpmbuild for cpack, lintian, systemd-analyze
  python3                             # tests: the HTTPS webhook receiver playbooks notify
  busybox                             # tests: scripts run by a multi-call shell (sh, ash)
  python3-prometheus-client           # tests: parse GET /metrics with the reference parser
  chromium chromium-driver python3-selenium  # tests: the web console in a real browser
  python3-cryptography                # benchmark: CSRs for a thousand enrolled agents
)
# The web console is built with Node.js and npm (web/CMakeLists.txt). Debian's nodejs and npm,
# unless a Node.js with its own npm is installed already (NodeSource's nodejs package ships npm
# and conflicts with Debian's npm package).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: need root to install: ${missing[*]}" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
