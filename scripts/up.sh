#!/usr/bin/env bash
# Installs what is needed, builds Release, and starts Riposte's main job in the foreground:
# a controller (embedded SQLite) plus a local agent enrolled against it. Ctrl-C stops both.
#   RIPOSTE_DATA_DIR   data directory (default /var/lib/riposte); a second run reuses it
#   extra arguments    passed to `riposte-controller up` (e.g. --api-listen 127.0.0.1:8443)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target riposte-controller riposte-agent riposte
# The shipped playbooks are loaded; with no asset map every host is "unmapped", so no playbook
# action goes beyond `approve` (a person decides) until a team maps its assets and ceilings.
exec build/release/bin/riposte-controller up --data-dir "${RIPOSTE_DATA_DIR:-/var/lib/riposte}" \
  --playbooks "$PWD/playbooks" "$@"
