#!/usr/bin/env bash
# Agents held by two controllers on one PostgreSQL database, against what one controller holds.
#
# Follows docs/configuration.md "Several controllers on one database": `riposte-controller init`
# on A, A's key material copied into B's data directory, the same `database:` on both. Then two
# riposte-swarm processes (tests/swarm: real enrolled identities, one mutual-TLS 1.3 session each)
# connect AGENTS agents to each controller, and the script reports how many sessions each
# controller holds, as the swarms count them and as the shared store records them
# (`riposte-controller status --json`), and how long connecting took.
#
# One process holds one descriptor per session, and this machine's hard RLIMIT_NOFILE (20,000
# here, without CAP_SYS_RESOURCE to raise it) is what bounds one controller; two controllers,
# each a process of its own, hold twice as much on the same limit. Both controllers, both
# swarms and the database share the machine's cores: this measures what holding sessions costs
# the pair, not what two machines would give.
#
# Usage: two_controllers.sh BIN_DIR   (under scripts/postgres-cluster.sh run, which sets
#        RIPOSTE_TEST_POSTGRES_URL). Env: RIPOSTE_TWO_AGENTS (per controller, default 15000).
set -euo pipefail

bin=${1:?usage: two_controllers.sh BIN_DIR}
cluster=${RIPOSTE_TEST_POSTGRES_URL:?run under scripts/postgres-cluster.sh run}
agents=${RIPOSTE_TWO_AGENTS:-15000}
say() { echo "two_controllers: $*" >&2; }

work=$(mktemp -d /tmp/riposte-two-controllers.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -q "$cluster" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
db="riposte_two_$$"
trap cleanup EXIT
trap 'exit 1' INT TERM  # so that cleanup runs when the bench is interrupted
psql -q "$cluster" -c "CREATE DATABASE $db" >/dev/null
# The cluster URL names a database (postgresql://[host]/DB?params): the same with ours.
url=$(python3 -c 'import sys
url, db = sys.argv[1:3]
base, _, query = url.partition("?")
slash = base.find("/", base.find("//") + 2)
print((base if slash < 0 else base[:slash]) + "/" + db + ("?" + query if query else ""))' "$cluster" "$db")

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ulimit -n "$(ulimit -Hn)"

for c in a b; do
  mkdir -p "$work/$c/data"
  printf 'log_level: info\nheartbeat_interval: 30s\ndatabase: "%s"\n' "$url" >"$work/$c/controller.yaml"
done
"$bin/riposte-controller" init --data-dir "$work/a/data" --config "$work/a/controller.yaml" \
  --admin-token-file "$work/admin.token" >/dev/null
for f in ca.pem ca.key server.pem server.key action.key; do
  install -m 0600 "$work/a/data/$f" "$work/b/data/$f"
done

declare -A api gateway
for c in a b; do
  api[$c]=127.0.0.1:$(free_port)
  gateway[$c]=127.0.0.1:$(free_port)
  "$bin/riposte-controller" run --data-dir "$work/$c/data" --config "$work/$c/controller.yaml" \
    --api-listen "${api[$c]}" --agent-listen "${gateway[$c]}" >"$work/$c/controller.log" 2>&1 &
  pids+=($!)
done
for c in a b; do
  for _ in $(seq 100); do [ -s "$work/$c/data/controller.json" ] && break; sleep 0.2; done
  [ -s "$work/$c/data/controller.json" ] || { cat "$work/$c/controller.log" >&2; exit 1; }
done
ca_pin=$("$bin/riposte-controller" status --data-dir "$work/a/data" --config "$work/a/controller.yaml" --json |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["ca_fingerprint"])')

cli() { "$bin/riposte" --server "https://${api[a]}" --token "$(cat "$work/admin.token")" \
  --ca "$work/a/data/ca.pem" "$@"; }
token=$(cli tokens create --uses $((2 * agents)) --ttl 2h --label swarm --json |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')

say "$agents agents to each of two controllers on one PostgreSQL database (enrolling first)"
start=$(date +%s.%N)
for c in a b; do
  # Each swarm enrolls through its own controller's API: enrollment works on any of them.
  "$bin/riposte-swarm" --api "${api[$c]}" --gateway "${gateway[$c]}" --ca-pin "$ca_pin" \
    --token "$token" --agents "$agents" --identities "$work/$c/identities" --threads 1 \
    --status-interval 2s >"$work/$c/swarm.jsonl" 2>"$work/$c/swarm.log" &
  pids+=($!)
done

held() { tail -n 1 "$work/$1/swarm.jsonl" 2>/dev/null |
  python3 -c 'import json, sys; l = sys.stdin.read().strip(); print(json.loads(l)["sessions"] if l else 0)'; }
deadline=$(($(date +%s) + 1500))
while :; do
  a_held=$(held a); b_held=$(held b)
  [ "$a_held" -ge "$agents" ] && [ "$b_held" -ge "$agents" ] && break
  if [ "$(date +%s)" -ge "$deadline" ]; then say "timed out: A $a_held, B $b_held"; break; fi
  sleep 2
done
connect_s=$(python3 -c "import time; print(round(time.time() - $start, 1))")
sleep 10  # heartbeats and session records settle
status=$("$bin/riposte-controller" status --data-dir "$work/a/data" --config "$work/a/controller.yaml" --json)
rss() { awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$1/status"; }
python3 - "$status" "$(held a)" "$(held b)" "$connect_s" "$(rss "${pids[0]}")" "$(rss "${pids[1]}")" \
  "$(ulimit -Hn)" <<'EOF'
import json, sys
status = json.loads(sys.argv[1])
a, b, connect_s, rss_a, rss_b, limit = sys.argv[2:8]
controllers = status["agents"].get("controllers", [])
print(json.dumps({
    "benchmark": "two controllers on one PostgreSQL database",
    "sessions_held_by_swarms": {"A": int(a), "B": int(b), "total": int(a) + int(b)},
    "store_connected": status["agents"]["connected"],
    "store_per_controller": {c["id"][:8]: c["agents_connected"] for c in controllers},
    "connect_and_enroll_s": float(connect_s),
    "controller_rss_mib": {"A": int(rss_a), "B": int(rss_b)},
    "open_file_hard_limit_per_process": int(limit),
}, indent=2))
EOF
