#!/usr/bin/env bash
# Installs what is needed, builds Release, and starts Riposte's main job in the foreground:
# a controller (embedded SQLite) plus a local agent enrolled against it. Ctrl-C stops both.
#   RIPOSTE_DATA_DIR          data directory (default /var/lib/riposte); a second run reuses it
#   RIPOSTE_AGENT_STATE_DIR   the local agent's state (default /var/lib/riposte-agent)
#   extra arguments           passed to `riposte-controller up` (e.g. --api-listen 127.0.0.1:8443)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target riposte-controller riposte-agent riposte
# The shipped playbooks are loaded; with no asset map every host is "unmapped", so no playbook
# action goes beyond `approve` (a person decides) until a team maps its assets and ceilings.
# The local agent keeps its state where `riposte-agent status` looks by default, and the controller
# its data where `riposte-controller status` does: both answer without arguments.
exec build/release/bin/riposte-controller up --data-dir "${RIPOSTE_DATA_DIR:-/var/lib/riposte}" \
  --agent-state-dir "${RIPOSTE_AGENT_STATE_DIR:-/var/lib/riposte-agent}" \
  --playbooks "$PWD/playbooks" "$@"
