#!/usr/bin/env bash
# The include trees (riposte_library) only govern includes the compiler looks up on its include
# path. A quoted include relative to the including file ("../api/router.h", or a bare "engine.h"
# found beside it) would skip them, and so would a path into the build tree ("include/...").
# Every project include is therefore written from the source root and names a folder of ours.
set -euo pipefail
root=${1:?source root}
cd "$root"
offenders=$(grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' common protocol platform agent controller \
  --include='*.cpp' --include='*.h' |
  grep -vE '#[[:space:]]*include[[:space:]]*"(common|protocol|platform|agent|controller)/[^".]+(/[^".]+)*\.(h|pb\.h)"' || true)
if [ -n "$offenders" ]; then
  echo "includes not written from the source root (or into the build tree):"
  echo "$offenders"
  exit 1
fi
echo "every project include is written from the source root"
