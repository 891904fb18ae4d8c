#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests: initdb in a directory of its own, listening only on
# a Unix socket inside that directory (no TCP port, nothing reachable from outside), trust
# authentication for the cluster's one user. Used by scripts/test.sh; by hand:
#   eval "$(scripts/postgres-cluster.sh start /tmp/riposte-pg)"   # exports RIPOSTE_TEST_POSTGRES_URL
#   scripts/postgres-cluster.sh stop /tmp/riposte-pg
#   scripts/postgres-cluster.sh run -- COMMAND ARGS...   # a cluster for one command (benchmarks)
# As root the cluster runs as the `postgres` system user (initdb refuses root); otherwise as you.
set -euo pipefail
action=${1:?usage: postgres-cluster.sh start|stop DIR | run -- COMMAND...}
if [ "${action}" = run ]; then
  shift
  [ "${1:-}" = "--" ] && shift
  dir=$(mktemp -d /tmp/riposte-pg.XXXXXX)
  trap '"$0" stop "${dir}"' EXIT
  eval "$("$0" start "${dir}")"
  "$@"
  exit $?
fi
dir=${2:?usage: postgres-cluster.sh start|stop DIR}
dir=$(realpath -m "${dir}")
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "${bin}" ]; then
  echo "postgres-cluster: no PostgreSQL server installed (scripts/install-deps.sh installs it)" >&2
  exit 1
fi
# From / : the postgres user may not enter the caller's working directory (pg_ctl says so).
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}
case "${action}" in
  start)
    mkdir -p "${dir}"
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "${dir}"; fi
    chmod 700 "${dir}"
    if [ ! -f "${dir}/data/PG_VERSION" ]; then
      as_owner "${bin}/initdb" -D "${dir}/data" --auth=trust --username=riposte --encoding=UTF8 \
        --locale=C.UTF-8 >"${dir}/initdb.log" 2>&1 ||
        { cat "${dir}/initdb.log" >&2; exit 1; }
    fi
    # fsync off: a test cluster is thrown away, not recovered.
    as_owner "${bin}/pg_ctl" -D "${dir}/data" -l "${dir}/server.log" -w -t 60 \
      -o "-c listen_addresses='' -k ${dir} -c fsync=off -c synchronous_commit=off -c max_connections=200" \
      start >/dev/null || { cat "${dir}/server.log" >&2; exit 1; }
    echo "export RIPOSTE_TEST_POSTGRES_URL='postgresql:///postgres?host=${dir}&user=riposte'"
    ;;
  stop)
    if [ -f "${dir}/data/postmaster.pid" ]; then
      as_owner "${bin}/pg_ctl" -D "${dir}/data" -m immediate -w stop >/dev/null || true
    fi
    rm -rf "${dir}"
    ;;
  *)
    echo "usage: postgres-cluster.sh start|stop DIR" >&2
    exit 2
    ;;
esac
