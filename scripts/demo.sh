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
    "$agent" scan "$shared" 2>/dev/null | head -n 3 || true
fi
# The main job: follow a session while it is written. The bundled visit is written into a
# temp dir the way EPU writes (chunks, torn and rewritten .dm files) while watch runs, and
# then a committed recording of a synthetic visit is replayed beside it.
live=$(mktemp -d)
trap 'rm -rf "$live"' EXIT
mkdir "$live/epu"
echo "== em-agent watch $live/epu (while tests/e2e/epu_writer.py writes the visit into it)" >&2
"$agent" -v watch --agent demo --state-dir "$live/state" --summary 1 "$live/epu" &
watcher=$!
sleep 0.5
python3 "$top/tests/e2e/epu_writer.py" "$top/testdata/visit-mini" "$live/epu" --pace 0.05 >/dev/null
# Then a recorded synthetic visit replayed into the same tree with its timing (fsrecorder).
rec="$top/testdata/recordings/synth-visit.tar.zst"
echo "== fsrecorder replay $rec (while watch runs)" >&2
"$top/build/tools/fsrecorder" replay --max-gap 0.02 "$rec" "$live/epu/replayed"
sleep 1.5
kill -TERM "$watcher"
wait "$watcher"
# The embedded store, no server: the watched tree's events into SQLite, then what a
# facility looks at (em-backend query; with RabbitMQ it is `em-backend consume`).
echo "== em-agent scan $live/epu | em-backend ingest - --store sqlite:$live/store.db" >&2
"$agent" scan -q "$live/epu" | "$top/build/backend/em-backend" ingest - --store "sqlite:$live/store.db"
echo "== em-backend query sessions" >&2
"$top/build/backend/em-backend" query sessions --store "sqlite:$live/store.db" >&2
