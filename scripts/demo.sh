#!/usr/bin/env bash
# The main job on bundled data: install what is missing, build, then validate and scan the
# authored visit in testdata/visit-mini (and the real EPU files in ../shared/testdata when
# they are beside the checkout). Events go to stdout as JSON lines.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/setup.sh" build
cmake -S "$top" -B "$top/build-demo" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEM_TESTS=OFF >/dev/null
cmake --build "$top/build-demo" -j"$(nproc)"
agent="$top/build-demo/agent/em-agent"
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
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$live"' EXIT
mkdir "$live/epu"
backend="$top/build-demo/backend/em-backend"
# The embedded path, crash-safe on both sides: the agent appends events to a file, and
# `em-backend ingest --follow` loads them into SQLite as they come, committing its read
# position with the events (no server). The events are also shown here as they arrive.
echo "== em-agent watch --out $live/events.jsonl $live/epu (while tests/e2e/epu_writer.py writes the visit into it)" >&2
"$agent" -v watch --agent demo --state-dir "$live/state" --summary 1 --out "$live/events.jsonl" \
    "$live/epu" &
watcher=$!
pids+=("$watcher")
echo "== em-backend ingest --follow $live/events.jsonl --store sqlite:$live/store.db" >&2
"$backend" ingest --follow "$live/events.jsonl" --store "sqlite:$live/store.db" &
ingest=$!
pids+=("$ingest")
sleep 0.5
tail -n +1 -f "$live/events.jsonl" &
pids+=("$!")
python3 "$top/tests/e2e/epu_writer.py" "$top/testdata/visit-mini" "$live/epu" --pace 0.05 >/dev/null
# Then a recorded synthetic visit replayed into the same tree with its timing (fsrecorder).
rec="$top/testdata/recordings/synth-visit.tar.zst"
echo "== fsrecorder replay $rec (while watch runs)" >&2
"$top/build-demo/tools/fsrecorder" replay --max-gap 0.02 "$rec" "$live/epu/replayed"
sleep 1.5
kill -TERM "$watcher"
wait "$watcher"
sleep 0.5
kill -TERM "$ingest"
wait "$ingest"
# What a facility looks at (with RabbitMQ it is `em-backend consume` that fills the store).
echo "== em-backend query sessions --store sqlite:$live/store.db" >&2
"$backend" query sessions --store "sqlite:$live/store.db" >&2
# The same store, kept, for the live view in a browser.
for f in "$live"/store.db*; do cp "$f" "$top/build-demo/demo-${f##*/}"; done
echo "== to see it in a browser: build-demo/backend/em-backend serve --store sqlite:build-demo/demo-store.db" >&2
echo "   then open http://127.0.0.1:8080/ (sessions, the atlas map, each square's holes, the agent)" >&2
