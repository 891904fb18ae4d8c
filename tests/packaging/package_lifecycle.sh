#!/usr/bin/env bash
# Package lifecycle, for real, on this machine: builds the .deb and .rpm packages with cpack,
# checks their contents and lintian, installs the .debs with apt, starts the controller and the
# agent exactly as their systemd units would (same command lines, the controller as `riposte`, the
# agent inside a network namespace under the unit's capability bounding set), enrolls the agent at
# install time from RIPOSTE_CONTROLLER/RIPOSTE_TOKEN/RIPOSTE_CA_PIN, kills a real process and
# quarantines the namespace through them, upgrades both packages to a rebuilt higher revision and
# checks identity, configuration and the quarantine survive, then purges and checks nothing is
# left.
#
#   tests/packaging/package_lifecycle.sh BUILD_DIR      (root; exit 77 = skipped)
#
# It skips itself (ctest shows it as skipped, with the reason) where it is not root, where
# Riposte is really installed, or where scripts/up.sh keeps its data in /var/lib/riposte: purging
# the test's packages would delete that. CI machines start fresh, so there it always runs.
set -euo pipefail

build=$(cd "${1:?usage: package_lifecycle.sh BUILD_DIR}" && pwd)
if [ "$(id -u)" -ne 0 ]; then
  echo "package_lifecycle: needs root (installs packages); skipped"
  exit 77
fi
for path in /var/lib/riposte /var/lib/riposte-agent /etc/riposte; do
  if [ -e "$path" ]; then
    echo "package_lifecycle: skipped: $path exists (a real installation or scripts/up.sh data) and purging the test packages would delete it"
    exit 77
  fi
done
for package in riposte-controller riposte-agent; do
  if dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "installed"; then
    echo "package_lifecycle: skipped: $package is installed on this machine"
    exit 77
  fi
done

work=$(mktemp -d /tmp/riposte-pkg-XXXXXX)
ns=rptpkg$$
host_if=rpth$$
ns_if=rptn$$
host_ip=10.231.7.1
ns_ip=10.231.7.2
controller_pid=""
agent_pid=""
victim_pid=""
export DEBIAN_FRONTEND=noninteractive

cleanup() {
  set +e
  for pid in $agent_pid $controller_pid $victim_pid; do kill "$pid" 2>/dev/null; done
  sleep 0.5
  apt-get purge -y -q riposte-agent riposte-controller >/dev/null 2>&1
  ip netns del "$ns" 2>/dev/null
  ip link del "$host_if" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

step() { echo; echo "== $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
expect() {  # expect DESCRIPTION COMMAND...: the command must succeed
  local what=$1; shift
  if "$@" >/dev/null; then echo "ok: $what"; else fail "$what"; fi
}
# wait_for SECONDS DESCRIPTION COMMAND...: polls until the command succeeds
wait_for() {
  local seconds=$1 what=$2; shift 2
  for _ in $(seq $((seconds * 5))); do
    if "$@" >/dev/null 2>&1; then echo "ok: $what"; return 0; fi
    sleep 0.2
  done
  fail "$what (waited ${seconds}s)"
}
# A unit's command line for KEY (ExecStart, ExecStartPre) as systemd would run it.
unit_command() { sed -n "s/^$2=//p" "$1" | head -1; }
stat_of() { stat -c '%a %U:%G' "$1"; }

step "build packages (revision 1, and the same binaries rebuilt as revision 2)"
(cd "$build" && cpack -G "DEB;RPM" -B "$work/v1" >"$work/cpack1.log") || { cat "$work/cpack1.log"; fail "cpack"; }
(cd "$build" && cpack -G DEB -B "$work/v2" -D CPACK_DEBIAN_PACKAGE_RELEASE=2 >"$work/cpack2.log") || { cat "$work/cpack2.log"; fail "cpack v2"; }
controller_deb=$(ls "$work"/v1/riposte-controller_*.deb)
agent_deb=$(ls "$work"/v1/riposte-agent_*.deb)
controller_rpm=$(ls "$work"/v1/riposte-controller-*.rpm)
agent_rpm=$(ls "$work"/v1/riposte-agent-*.rpm)
controller_deb2=$(ls "$work"/v2/riposte-controller_*-2_*.deb)
agent_deb2=$(ls "$work"/v2/riposte-agent_*-2_*.deb)
ls -l "$work"/v1/*.deb "$work"/v1/*.rpm "$work"/v2/*.deb

step "package contents"
dpkg-deb -c "$controller_deb" >"$work/controller.list"
dpkg-deb -c "$agent_deb" >"$work/agent.list"
for f in ./usr/bin/riposte-controller ./usr/bin/riposte ./etc/riposte/controller.yaml \
  ./usr/lib/systemd/system/riposte-controller.service ./usr/share/doc/riposte-controller/copyright \
  ./usr/share/doc/riposte-controller/changelog.Debian.gz ./usr/share/riposte/playbooks/malicious_ip.yaml \
  ./usr/share/doc/riposte-controller/README.md ./usr/share/doc/riposte-controller/docs/cli.md \
  ./usr/share/riposte/web/index.html ./usr/share/riposte/web/app.js; do
  expect "controller .deb holds $f" grep -q " $f\$" "$work/controller.list"
done
for f in ./usr/bin/riposte-agent ./etc/riposte/agent.yaml \
  ./usr/lib/systemd/system/riposte-agent.service ./usr/share/doc/riposte-agent/copyright; do
  expect "agent .deb holds $f" grep -q " $f\$" "$work/agent.list"
done
expect "the agent .deb holds no controller binary" bash -c "! grep -q riposte-controller '$work/agent.list'"
expect "controller.yaml is a conffile" bash -c "dpkg-deb -I '$controller_deb' conffiles | grep -qx /etc/riposte/controller.yaml"
expect "agent.yaml is a conffile" bash -c "dpkg-deb -I '$agent_deb' conffiles | grep -qx /etc/riposte/agent.yaml"
expect "the agent depends on nftables and its libraries (dpkg-shlibdeps)" \
  bash -c "dpkg-deb -f '$agent_deb' Depends | grep -q nftables && dpkg-deb -f '$agent_deb' Depends | grep -q libyara"
rpm -qlp "$controller_rpm" 2>/dev/null >"$work/controller.rpmlist"
rpm -qlp "$agent_rpm" 2>/dev/null >"$work/agent.rpmlist"
for f in /usr/bin/riposte-controller /usr/bin/riposte /etc/riposte/controller.yaml \
  /usr/lib/systemd/system/riposte-controller.service; do
  expect "controller .rpm holds $f" grep -qx "$f" "$work/controller.rpmlist"
done
for f in /usr/bin/riposte-agent /etc/riposte/agent.yaml /usr/lib/systemd/system/riposte-agent.service; do
  expect "agent .rpm holds $f" grep -qx "$f" "$work/agent.rpmlist"
done
expect "the .rpm marks controller.yaml %config(noreplace)" \
  bash -c "rpm -qp --configfiles '$controller_rpm' 2>/dev/null | grep -qx /etc/riposte/controller.yaml"
expect "the .rpm creates the riposte user before install" \
  bash -c "rpm -qp --scripts '$controller_rpm' 2>/dev/null | grep -q 'useradd -r -g riposte'"
expect "the .rpm does not claim /usr/lib/systemd itself" bash -c "! grep -qx /usr/lib/systemd '$work/controller.rpmlist'"

step "lintian (errors fail; warnings listed)"
for deb in "$controller_deb" "$agent_deb"; do
  lintian --fail-on error --no-tag-display-limit "$deb" >"$work/lintian.out" 2>&1 || { cat "$work/lintian.out"; fail "lintian errors in $(basename "$deb")"; }
  echo "ok: lintian: no errors in $(basename "$deb") ($(grep -c '^W:' "$work/lintian.out" || true) warnings)"
  grep '^W:' "$work/lintian.out" | sed 's/^/   /' || true
done

step "install the controller package"
apt-get install -y -q --no-install-recommends "$controller_deb" >"$work/apt-controller.log" 2>&1 || { cat "$work/apt-controller.log"; fail "apt install controller"; }
expect "system user riposte exists" getent passwd riposte
expect "/var/lib/riposte is 0700 riposte" test "$(stat_of /var/lib/riposte)" = "700 riposte:riposte"
expect "controller.yaml is 0640 root:riposte" test "$(stat_of /etc/riposte/controller.yaml)" = "640 root:riposte"
unit=/usr/lib/systemd/system/riposte-controller.service
expect "systemd-analyze verify accepts the controller unit" systemd-analyze verify "$unit"
systemd-analyze security --offline=yes "$unit" 2>/dev/null | tail -1 | sed 's/^/   controller unit /'
expect "systemd-analyze security rates the controller unit at most 2.0 exposure" \
  systemd-analyze security --offline=yes --threshold=20 "$unit"

step "network namespace for the agent's host"
ip netns add "$ns"
ip link add "$host_if" type veth peer name "$ns_if"
ip link set "$ns_if" netns "$ns"
ip addr add "$host_ip/24" dev "$host_if"
ip link set "$host_if" up
ip netns exec "$ns" ip addr add "$ns_ip/24" dev "$ns_if"
ip netns exec "$ns" ip link set "$ns_if" up
ip netns exec "$ns" ip link set lo up

step "configure and start the controller as its unit does"
# An administrator's edit of the conffile: listen where the agent's namespace reaches, and name
# that address in the server certificate. The upgrade below must keep it.
sed -i -e "s/^agent_listen: .*/agent_listen: $host_ip:7443  # local edit (package test)/" \
  -e "s/^api_listen: .*/api_listen: $host_ip:8443/" \
  -e "s/^server_names: .*/server_names: [$host_ip]/" /etc/riposte/controller.yaml
start_controller() {
  local as_riposte=(setpriv --reuid=riposte --regid=riposte --init-groups --)
  (umask 077 && cd / && "${as_riposte[@]}" $(unit_command "$unit" ExecStartPre)) >>"$work/controller-init.log" 2>&1
  (umask 077 && cd / && exec "${as_riposte[@]}" $(unit_command "$unit" ExecStart)) >>"$work/controller.log" 2>&1 &
  controller_pid=$!
  wait_for 30 "riposte-controller status reports it running and answering" riposte-controller status
}
start_controller
riposte-controller status | sed 's/^/   /'
expect "the first admin token is in admin.token, 0600 riposte" test "$(stat_of /var/lib/riposte/admin.token)" = "600 riposte:riposte"
admin_token=$(cat /var/lib/riposte/admin.token)
expect "the admin token is in no log" bash -c "! grep -qF '$admin_token' '$work/controller-init.log' '$work/controller.log'"
ca_pin=$(riposte-controller status --json | jq -r .ca_fingerprint)
export RIPOSTE_SERVER=https://$host_ip:8443 RIPOSTE_CA=/var/lib/riposte/ca.pem RIPOSTE_TOKEN=$admin_token
enroll_token=$(riposte tokens create --json | jq -r .token)

step "install the agent package, enrolling from the environment"
RIPOSTE_CONTROLLER=$host_ip:8443 RIPOSTE_TOKEN=$enroll_token RIPOSTE_CA_PIN=$ca_pin \
  apt-get install -y -q --no-install-recommends "$agent_deb" >"$work/apt-agent.log" 2>&1 || { cat "$work/apt-agent.log"; fail "apt install agent"; }
grep riposte-agent "$work/apt-agent.log" | sed 's/^/   /' || true
expect "the agent is enrolled by the postinst" test -f /var/lib/riposte-agent/agent.json
expect "/var/lib/riposte-agent is 0700 root" test "$(stat_of /var/lib/riposte-agent)" = "700 root:root"
expect "the agent key is 0600" test "$(stat_of /var/lib/riposte-agent/agent.key)" = "600 root:root"
expect "the enrollment token is in no file of the agent" bash -c "! grep -rqF '$enroll_token' /var/lib/riposte-agent /etc/riposte"
agent_id=$(jq -r .agent_id /var/lib/riposte-agent/agent.json)
agent_unit=/usr/lib/systemd/system/riposte-agent.service
expect "systemd-analyze verify accepts the agent unit" systemd-analyze verify "$agent_unit"
systemd-analyze security --offline=yes "$agent_unit" 2>/dev/null | tail -1 | sed 's/^/   agent unit /'
expect "systemd-analyze security rates the agent unit at most 5.0 exposure (root, by design)" \
  systemd-analyze security --offline=yes --threshold=50 "$agent_unit"
expect "riposte-agent status: enrolled, not running (exit 3)" bash -c "riposte-agent status; test \$? -eq 3"

step "start the agent as its unit does, in the namespace, under the unit's capability bounding set"
caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$agent_unit" | tr 'A-Z' 'a-z' | sed 's/cap_/+/g; s/ /,/g')
echo "   bounding set: -all,$caps"
start_agent() {
  ip netns exec "$ns" setpriv --bounding-set "-all,$caps" -- $(unit_command "$agent_unit" ExecStart) >>"$work/agent.log" 2>&1 &
  agent_pid=$!
  wait_for 30 "riposte-agent status reports it connected" ip netns exec "$ns" riposte-agent status
}
start_agent
ip netns exec "$ns" riposte-agent status | sed 's/^/   /'
# CAP_CHOWN 0, DAC_OVERRIDE 1, DAC_READ_SEARCH 2, FOWNER 3, KILL 5, NET_ADMIN 12, SYS_PTRACE 19.
expect "the running agent holds exactly the unit's capabilities (CapEff 8102f)" \
  grep -qx "CapEff:[[:space:]]*000000000008102f" "/proc/$agent_pid/status"
expect "the controller lists the agent online" \
  bash -c "riposte agents show '$agent_id' --json | jq -e '.status == \"online\"'"

step "actions work under the bounding set: kill another user's process"
ip netns exec "$ns" setpriv --reuid nobody --regid nogroup --clear-groups sleep 600 &
victim_pid=$!
sleep 0.3
ticks=$(awk '{print $22}' "/proc/$victim_pid/stat")
riposte action run process.kill --agent "$agent_id" --param "target.pid=$victim_pid" \
  --param "target.start_ticks=$ticks" --wait --timeout 60s --json >"$work/kill.json"
expect "process.kill succeeded" jq -e '.state == "succeeded"' "$work/kill.json"
wait_for 5 "the process is dead" bash -c "! test -d /proc/$victim_pid || grep -q '^State:.Z' /proc/$victim_pid/status"
victim_rc=0; wait "$victim_pid" || victim_rc=$?
expect "it died of a signal (exit $victim_rc)" test "$victim_rc" -gt 128
victim_pid=""

step "quarantine the agent's host"
expect "before quarantine the namespace reaches the controller's API" \
  ip netns exec "$ns" curl -sk --max-time 3 -o /dev/null "https://$host_ip:8443/healthz"
riposte action run network.quarantine --agent "$agent_id" --wait --timeout 60s --json >"$work/quarantine.json"
expect "network.quarantine succeeded" jq -e '.state == "succeeded"' "$work/quarantine.json"
expect "the namespace has the quarantine table" ip netns exec "$ns" nft list table inet riposte_quarantine
expect "quarantined: the namespace no longer reaches the API port" \
  bash -c "! ip netns exec '$ns' curl -sk --max-time 3 -o /dev/null 'https://$host_ip:8443/healthz'"
# Status reads the kernel of the network namespace it runs in: the agent's.
expect "riposte-agent status says quarantined, as its kernel enforces it" \
  bash -c "ip netns exec '$ns' riposte-agent status --json | jq -e '.quarantined and .quarantine_intended and .connected and (.quarantine_enforced_hooks | length == 3)'"
expect "outside the agent's namespace, status says the quarantine is not enforced there" \
  bash -c "riposte-agent status --json | jq -e '.quarantine_intended and (.quarantined | not)'"

step "a ruleset reload removes the quarantine: the agent puts it back and the controller hears of it"
ip netns exec "$ns" nft flush ruleset
wait_for 5 "the quarantine table is back within 5 s" ip netns exec "$ns" nft list table inet riposte_quarantine
expect "quarantined again: the namespace does not reach the API port" \
  bash -c "! ip netns exec '$ns' curl -sk --max-time 3 -o /dev/null 'https://$host_ip:8443/healthz'"
wait_for 10 "the controller's audit log holds the agent's tamper report" \
  bash -c "riposte audit export | jq -e -s 'map(select(.event == \"agent.quarantine_tampered\" and .actor == \"agent:$agent_id\")) | length >= 1'"
expect "riposte-agent status shows the tampering it undid" \
  bash -c "ip netns exec '$ns' riposte-agent status --json | jq -e '.last_quarantine_tamper.what == \"removed\"'"

step "upgrade both packages to revision 2"
echo "# local edit (package test): keep me" >>/etc/riposte/agent.yaml
kill -TERM "$agent_pid"; wait "$agent_pid" || true; agent_pid=""
expect "the quarantine outlives the stopped agent" ip netns exec "$ns" nft list table inet riposte_quarantine
kill -TERM "$controller_pid"; wait "$controller_pid" || true; controller_pid=""
for deb in "$controller_deb2" "$agent_deb2"; do
  apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confold "$deb" >"$work/apt-upgrade.log" 2>&1 || { cat "$work/apt-upgrade.log"; fail "upgrade to $(basename "$deb")"; }
done
expect "riposte-controller is at revision 2" bash -c "dpkg-query -W -f='\${Version}' riposte-controller | grep -q -- '-2\$'"
expect "riposte-agent is at revision 2" bash -c "dpkg-query -W -f='\${Version}' riposte-agent | grep -q -- '-2\$'"
expect "the edited controller.yaml is kept" grep -q "^api_listen: $host_ip:8443" /etc/riposte/controller.yaml
expect "the edited agent.yaml is kept" grep -q "keep me" /etc/riposte/agent.yaml
expect "the agent keeps its identity" test "$(jq -r .agent_id /var/lib/riposte-agent/agent.json)" = "$agent_id"
start_controller
expect "the controller keeps its CA" test "$(riposte-controller status --json | jq -r .ca_fingerprint)" = "$ca_pin"
expect "the admin token still works" riposte agents list
expect "the installed playbooks validate" riposte playbooks validate /usr/share/riposte/playbooks
expect "the installed controller serves its web console from /usr/share/riposte/web" \
  bash -c "curl -sk --max-time 5 'https://$host_ip:8443/ui/cases/x' | grep -q '<title>Riposte</title>'"
start_agent
expect "the same agent is online again" \
  bash -c "riposte agents show '$agent_id' --json | jq -e '.status == \"online\"'"
expect "the quarantine is still in force after the upgrade" \
  bash -c "ip netns exec '$ns' nft list table inet riposte_quarantine >/dev/null && ! ip netns exec '$ns' curl -sk --max-time 3 -o /dev/null 'https://$host_ip:8443/healthz'"
expect "riposte-agent status still says quarantined" bash -c "ip netns exec '$ns' riposte-agent status --json | jq -e '.quarantined'"

step "purge"
kill -TERM "$agent_pid" "$controller_pid"; wait "$agent_pid" "$controller_pid" || true
agent_pid=""; controller_pid=""
# The namespace is the agent's host: its postrm lifts the quarantine in the network it runs in.
ip netns exec "$ns" apt-get purge -y -q riposte-agent >"$work/apt-purge.log" 2>&1 || { cat "$work/apt-purge.log"; fail "purge agent"; }
apt-get purge -y -q riposte-controller >>"$work/apt-purge.log" 2>&1 || { cat "$work/apt-purge.log"; fail "purge controller"; }
grep -i quarantine "$work/apt-purge.log" | sed 's/^/   /' || true
expect "purging the agent lifted the quarantine" bash -c "! ip netns exec '$ns' nft list table inet riposte_quarantine 2>/dev/null"
for path in /var/lib/riposte /var/lib/riposte-agent /etc/riposte /usr/bin/riposte /usr/bin/riposte-agent \
  /usr/bin/riposte-controller /usr/share/riposte /usr/lib/systemd/system/riposte-agent.service \
  /usr/lib/systemd/system/riposte-controller.service /usr/share/doc/riposte-agent \
  /usr/share/doc/riposte-controller; do
  expect "$path is gone" test ! -e "$path"
done
expect "no unit symlink or deb-systemd-helper state is left" \
  bash -c "! find /etc/systemd /var/lib/systemd -name 'riposte*' 2>/dev/null | grep -q ."
expect "the riposte user is gone" bash -c "! getent passwd riposte"
expect "the riposte group is gone" bash -c "! getent group riposte"
expect "dpkg lists no riposte package, not even as config-files" \
  bash -c "! dpkg -l 'riposte*' 2>/dev/null | grep -Eq '^(ii|rc|i[A-Z]|h[a-z]) '"
echo
echo "package_lifecycle: all checks passed"
