#!/usr/bin/env bash
# The main job on bundled data: install what is missing, build, then validate and scan the
# authored visit in testdata/visit-mini (and the real EPU files in ../shared/testdata when
# they are beside the checkout). Events go to stdout as JSON lines.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/setup.sh"
cmake -S "$top" -B "$top/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$top/build" -j"$(nproc)"
agent="$top/build/agent/em-agent"
echo "== em-agent validate testdata/visit-mini" >&2
"$agent" validate "$top/testdata/visit-mini" >&2 || true
echo "== em-agent scan testdata/visit-mini" >&2
"$agent" scan "$top/testdata/visit-mini"
shared="$top/../shared/testdata/epu/nt32457-6"
if [ -d "$shared" ]; then
    echo "== em-agent scan $shared (first 3 events)" >&2
    "$agent" scan "$shared" | head -n 3
fi
