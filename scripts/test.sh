#!/usr/bin/env bash
# Installs what is needed, builds, and runs the whole test suite: first the release build, then
# the same suite under AddressSanitizer + UndefinedBehaviorSanitizer (the asan preset), then the
# libFuzzer targets of every alert and feed parser for a short while (scripts/fuzz.sh). The tests
# that need PostgreSQL get a throwaway cluster (scripts/postgres-cluster.sh).
#   RIPOSTE_TEST_PRESETS   presets to run (default "release asan")
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
jobs=$(nproc)
# The store's conformance suite and the multi-controller tests run on PostgreSQL too: a cluster of
# their own, on a Unix socket in a private directory, gone when this script ends.
pg_dir=$(mktemp -d /tmp/riposte-pg.XXXXXX)
trap './scripts/postgres-cluster.sh stop "${pg_dir}"' EXIT
eval "$(./scripts/postgres-cluster.sh start "${pg_dir}")"
export RIPOSTE_REQUIRE_POSTGRES=1
for preset in ${RIPOSTE_TEST_PRESETS:-release asan}; do
  echo "== ${preset}: configure and build"
  start=$(date +%s)
  cmake --preset "${preset}" >/dev/null
  cmake --build --preset "${preset}" -j "${jobs}"
  echo "== ${preset}: built in $(( $(date +%s) - start )) s; running tests"
  ctest --preset "${preset}" -j "${jobs}"
done
# Every parser of outside input under libFuzzer for a few seconds each (scripts/fuzz.sh).
echo "== fuzz"
./scripts/fuzz.sh
