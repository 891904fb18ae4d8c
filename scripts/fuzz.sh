#!/usr/bin/env bash
# Builds the libFuzzer targets for every parser of outside input with clang-14, ASan and UBSan,
# and runs each for a short while from the fixtures as seed corpus: the alert normalizers (ECS,
# Wazuh, generic, detection) and the feed readers (CSV, list, MISP, STIX), one binary each with
# the format in RIPOSTE_FUZZ_FORMAT, the playbook expression language, agents' results on their way
# to validation, enrichment, outcomes and reports (fuzz_result), and the agent channel's
# frame decoder and Envelope parsing (fuzz_frames), playbook files (fuzz_playbook), the HTTP
# request path through the API router (fuzz_http), enrollment's CSR handling (fuzz_csr) and the
# controller's and agent's configuration files (fuzz_config). Any crash, leak, timeout or
# sanitizer report fails the script.
# By default each target makes the same 50,000 runs from seed 1, so a run in CI is reproducible:
# it fails only when the code changed. For exploration, give more runs or another seed.
#   RIPOSTE_FUZZ_RUNS      inputs per target (default 50000)
#   RIPOSTE_FUZZ_SEED      libFuzzer seed (default 1)
#   RIPOSTE_FUZZ_SECONDS   cap per target in seconds (default 120)
#   RIPOSTE_FUZZ_OUT       build and corpus directory (default build/fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${RIPOSTE_FUZZ_SECONDS:-120}
runs=${RIPOSTE_FUZZ_RUNS:-50000}
seed=${RIPOSTE_FUZZ_SEED:-1}
out=${RIPOSTE_FUZZ_OUT:-build/fuzz}
mkdir -p "$out"
cxx=(clang++-14 -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined
     -fno-sanitize-recover=undefined -I. -DRIPOSTE_VERSION="\"fuzz\"")
common=(controller/observables/observable.cpp controller/observables/ip_network.cpp)
libs=(-lfmt -lcrypto)

build() {  # name, sources...
  local name=$1
  shift
  if [ ! -x "$out/$name" ] || [ -n "$(find "$@" tests/fuzz -newer "$out/$name" 2>/dev/null | head -1)" ]; then
    echo "fuzz: building $name"
    "${cxx[@]}" "$@" "${common[@]}" "${libs[@]}" -o "$out/$name"
  fi
}

build fuzz_alert tests/fuzz/fuzz_alert.cpp controller/alerts/normalizer.cpp common/utc_time.cpp \
      protocol/crypto.cpp
build fuzz_feed tests/fuzz/fuzz_feed.cpp controller/intel/feeds.cpp common/utc_time.cpp
build fuzz_expression tests/fuzz/fuzz_expression.cpp controller/playbooks/expression.cpp
# The agent channel: protobuf code generated here, as the CMake build does.
mkdir -p "$out/gen"
if [ ! -f "$out/gen/protocol/agent_channel.pb.cc" ] ||
   [ -n "$(find protocol -name '*.proto' -newer "$out/gen/protocol/agent_channel.pb.cc" | head -1)" ]; then
  protoc -I. --cpp_out="$out/gen" protocol/actions.proto protocol/agent_channel.proto
fi
cxx+=(-I"$out/gen")
libs+=(-lprotobuf)
build fuzz_frames tests/fuzz/fuzz_frames.cpp protocol/framing.cpp "$out/gen/protocol/agent_channel.pb.cc" \
      "$out/gen/protocol/actions.pb.cc"
libs+=(-lyaml-cpp)
build fuzz_playbook tests/fuzz/fuzz_playbook.cpp controller/playbooks/playbook.cpp \
      controller/playbooks/expression.cpp common/duration.cpp protocol/action_catalog.cpp \
      protocol/wire_text.cpp common/utf8.cpp \
      "$out/gen/protocol/agent_channel.pb.cc" "$out/gen/protocol/actions.pb.cc"

# Targets over the project's libraries: the HTTP request path (fuzz_http), enrollment's CSR
# handling (fuzz_csr) and configuration files (fuzz_config), built with the `fuzz` preset
# (clang-14; every library compiled with -fsanitize=fuzzer-no-link, so coverage reaches into it).
echo "fuzz: building fuzz_http fuzz_csr fuzz_config fuzz_result (cmake --preset fuzz)"
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j "$(nproc)" --target fuzz_http fuzz_csr fuzz_config fuzz_result
for name in fuzz_http fuzz_csr fuzz_config fuzz_result; do
  [ "$(realpath "$out/$name" 2>/dev/null)" = "$(realpath "build/fuzz/tests/fuzz/$name")" ] ||
    ln -sf "$(realpath "build/fuzz/tests/fuzz/$name")" "$out/$name"
done

# Seeds: the fixtures of each kind (data shapes from public samples, tests/fixtures/README.md).
seed() {  # target, files...
  local dir="$out/corpus/$1"
  shift
  mkdir -p "$dir"
  for f in "$@"; do [ -f "$f" ] && cp -f "$f" "$dir/"; done
  return 0
}
seed fuzz_alert_ecs tests/fixtures/alerts/ecs_*.json tests/fixtures/alerts/elastic_*.json
seed fuzz_alert_wazuh tests/fixtures/alerts/wazuh_*.json
seed fuzz_alert_generic tests/fixtures/alerts/generic.json
seed fuzz_alert_detect tests/fixtures/alerts/*.json
seed fuzz_feed_csv tests/fixtures/intel/*.csv
seed fuzz_feed_list tests/fixtures/intel/blocklist.txt tests/fixtures/intel/hosts_blocklist.txt
# misp_type_true.json: the event that once aborted the loader (a boolean "type").
seed fuzz_feed_misp tests/fixtures/intel/misp/5f0c1b2a-*.json tests/fuzz/seeds/misp_*.json
seed fuzz_feed_stix tests/fixtures/intel/stix/*.json tests/fixtures/intel/stix_misp/*.json \
     tests/fixtures/intel/stix20_bundle.json
printf 'alert.severity == "high" and len(observables) > 0' > "$out/corpus/seed_expression"
seed fuzz_expression "$out/corpus/seed_expression"
# playbook_not_utf8.yaml: a playbook whose parameter bytes once aborted the loader.
seed fuzz_playbook playbooks/*.yaml tests/fuzz/seeds/playbook_*.yaml
# Frames: the checked-in text-format Envelopes (tests/fuzz/seeds/*.txtpb), encoded and framed
# (one byte of piece size, a 4-byte big-endian length, the Envelope).
mkdir -p "$out/corpus/fuzz_frames"
for text in tests/fuzz/seeds/*.txtpb; do
  python3 - "$text" "$out/corpus/fuzz_frames/$(basename "$text" .txtpb)" <<'PY'
import subprocess, struct, sys
with open(sys.argv[1], "rb") as f:
    body = subprocess.run(["protoc", "-I.", "--encode=riposte.proto.Envelope",
                           "protocol/agent_channel.proto"], input=f.read(), check=True,
                          capture_output=True).stdout
with open(sys.argv[2], "wb") as out:
    out.write(b"\x07" + struct.pack(">I", len(body)) + body)
PY
done

# HTTP: one request per route family, each behind a byte choosing the caller (0 = the request's
# own Authorization, 1 admin, 2 viewer, 3 integration, 4 the admin's console session with the
# request's own CSRF token, 5 with the right one; tests/fuzz/fuzz_http.cpp).
mkdir -p "$out/corpus/fuzz_http"
python3 - "$out/corpus/fuzz_http" <<'PY'
import os, sys
requests = [
    ("GET", "/healthz", ""),
    ("GET", "/api/v1/agents?limit=5", ""),
    ("GET", "/api/v1/actions?limit=5", ""),
    ("POST", "/api/v1/actions", '{"kind":"host.facts","agent_ids":["a"],"parameters":{},"ttl":"5m"}'),
    ("POST", "/api/v1/enroll", '{"token":"e","csr_pem":"x","hostname":"h1"}'),
    ("POST", "/api/v1/operators", '{"name":"bob","role":"analyst"}'),
    ("POST", "/api/v1/enrollment-tokens", '{"uses":2,"ttl":"1h"}'),
    ("POST", "/api/v1/alerts", '{"rule":{"name":"x"},"host":{"name":"h1"},"source":{"ip":"192.0.2.7"}}'),
    ("GET", "/api/v1/audit/export?after=0", ""),
    ("GET", "/api/v1/audit/verify", ""),
    ("GET", "/api/v1/evidence/" + "0" * 64, ""),
    ("POST", "/api/v1/rule-sets?name=r.yar", "rule r { condition: true }"),
    ("POST", "/api/v1/session", '{"token":"rpt_guess"}'),
    ("DELETE", "/api/v1/session", ""),
    ("GET", "/ui/cases/0b6f1a52-1111-4a4a-8b8b-000000000002", ""),
    ("POST", "/api/v1/playbooks/p/backtest", '{"alerts":["a1"]}'),
    ("GET", "/api/v1/agents?status=online&label=web&q=h&limit=2&offset=1", ""),
]
i = 0
for method, target, body in requests:
    head = (f"{method} {target} HTTP/1.1\r\nHost: controller\r\nAuthorization: Bearer rpt_guess\r\n"
            "Origin: https://controller\r\nSec-Fetch-Site: same-origin\r\nX-CSRF-Token: csrf_x\r\n")
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    for caller in range(6):  # tests/fuzz/fuzz_http.cpp: 0 own header, 1-3 tokens, 4-5 session
        with open(os.path.join(sys.argv[1], f"seed-{i}"), "wb") as f:
            f.write(bytes([caller]) + (head + "\r\n" + body).encode())
        i += 1
# A caller byte and nothing else: a connection closed before a request (the harness once fed
# that to Beast's put_eof, which asserts on an empty parser).
with open(os.path.join(sys.argv[1], "seed-empty"), "wb") as f:
    f.write(bytes([1]))
PY
# CSRs: the checked-in one (tests/fuzz/seeds/csr.pem, a P-256 key's CSR) as PEM and as DER (the
# target wraps DER in PEM itself).
seed fuzz_csr tests/fuzz/seeds/csr.pem
openssl req -in tests/fuzz/seeds/csr.pem -outform DER -out "$out/corpus/fuzz_csr/csr.der"
# Agent results (tests/fuzz/fuzz_result.cpp): a byte choosing the kind, then the serialized result,
# from the text-format results checked in (tests/fuzz/seeds/results/*.txtpb; their names say the
# message and the kind's index in action_kinds.h kAll), with names that are not UTF-8.
mkdir -p "$out/corpus/fuzz_result"
for text in tests/fuzz/seeds/results/*.txtpb; do
  python3 - "$text" "$out/corpus/fuzz_result/$(basename "$text" .txtpb)" <<'PY'
import os, subprocess, sys
name = os.path.basename(sys.argv[1])[:-len(".txtpb")]  # e.g. ProcessListResult-0
message, kind = name.rsplit("-", 1)
with open(sys.argv[1], "rb") as f:
    body = subprocess.run(["protoc", "-I.", "--encode=riposte.proto." + message,
                           "protocol/actions.proto"], input=f.read(), check=True,
                          capture_output=True).stdout
with open(sys.argv[2], "wb") as out:
    out.write(bytes([int(kind)]) + body)
PY
done
seed fuzz_config_controller packaging/controller.yaml
seed fuzz_config_agent packaging/agent.yaml

failed=0
# target name, binary, RIPOSTE_FUZZ_FORMAT[, runs when fewer than RIPOSTE_FUZZ_RUNS: fuzz_csr
# signs and stores a certificate for every valid CSR, ~100 inputs a second, so a fixed count
# keeps its run reproducible within the time cap]
for run in fuzz_alert_ecs:fuzz_alert:ecs fuzz_alert_wazuh:fuzz_alert:wazuh \
           fuzz_alert_generic:fuzz_alert:generic fuzz_alert_detect:fuzz_alert: \
           fuzz_feed_csv:fuzz_feed:csv fuzz_feed_list:fuzz_feed:list fuzz_feed_misp:fuzz_feed:misp \
           fuzz_feed_stix:fuzz_feed:stix fuzz_expression:fuzz_expression: \
           fuzz_frames:fuzz_frames: fuzz_playbook:fuzz_playbook: fuzz_http:fuzz_http: \
           fuzz_csr:fuzz_csr::5000 fuzz_result:fuzz_result: \
           fuzz_config_controller:fuzz_config:controller \
           fuzz_config_agent:fuzz_config:agent; do
  IFS=: read -r target binary format target_runs <<<"$run"
  target_runs=$(( ${target_runs:-$runs} < runs ? ${target_runs:-$runs} : runs ))
  echo "fuzz: $target, ${target_runs} runs from seed ${seed}"
  if ! (cd "$out" && RIPOSTE_FUZZ_FORMAT="$format" "./$binary" -runs="$target_runs" -seed="$seed" \
          -max_total_time="$seconds" \
          -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=0 \
          "corpus/$target" >"$target.log" 2>&1); then
    echo "fuzz: $target FAILED; the input and report are in $out ($target.log, crash-*)" >&2
    tail -40 "$out/$target.log" >&2
    failed=1
  else
    echo "fuzz: $target: $(grep -Eo 'Done [0-9]+ runs.*' "$out/$target.log" | tail -1)"
  fi
done
rm -rf /dev/shm/riposte-fuzz-feed-* /dev/shm/riposte-fuzz-playbook-* /dev/shm/riposte-fuzz-http-* \
  /dev/shm/riposte-fuzz-csr-* /dev/shm/riposte-fuzz-config-*
exit "$failed"
