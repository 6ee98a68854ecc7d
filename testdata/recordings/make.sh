#!/usr/bin/env bash
# Re-makes the recordings in this directory (they are committed; CI replays them with
# tests/e2e/replay.sh). em-synth output is reproducible from its seed, so the first two
# come out byte for byte the same; the live one differs in its timing each time.
#
#   testdata/recordings/make.sh BUILD_DIR
set -euo pipefail
B=$(realpath "$1")
cd "$(dirname "$0")"
SYNTH=$B/tools/em-synth
FSR=$B/tools/fsrecorder

# A visit: two sessions and an aborted one, squares never imaged, EPU's write order.
"$SYNTH" -q --seed 1 --record synth-visit.tar.zst --expected synth-visit.expected.json

# One session whose square .dm files are rewritten after every hole and grow to ~70 kB.
"$SYNTH" -q --seed 2 --sessions 1 --aborted 0 --squares 2 --unimaged 1 --holes 15 --mics 3 \
    --record synth-growing-dm.tar.zst --expected synth-growing-dm.expected.json

# fsrecorder's own live recording of em-synth writing a visit at 40 exposures a second:
# what a recorder on an acquisition PC sees, with real timing and partial writes.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/visit"
"$FSR" record -q "$tmp/visit" "$tmp/live.tar.zst" &
rp=$!
sleep 0.5
"$SYNTH" -q --seed 3 --rate 40 --sessions 1 --aborted 1 --squares 2 --unimaged 1 --holes 5 \
    --mics 2 --expected live-synth.expected.json "$tmp/visit"
sleep 0.5
kill -TERM "$rp"
wait "$rp"
mv "$tmp/live.tar.zst" live-synth.tar.zst
"$FSR" verify live-synth.tar.zst "$tmp/visit"
ls -la
