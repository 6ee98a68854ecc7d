#!/usr/bin/env bash
# Record and replay throughput of fsrecorder on a 10k-file em-synth session (issue 4):
#   bench/bench_record.sh [RUNS]        (default 3; prints medians)
#
#   snapshot   fsrecorder record --snapshot of the finished tree (zstd)
#   live       fsrecorder record while em-synth writes the same visit as fast as it can:
#              from the writer's start until the recorder, stopped when the writer ends,
#              has written the complete recording (verified against the tree: nothing
#              was lost)
#   replay     fsrecorder replay --burst of each recording into an empty directory
#   cp -r      copying the tree, for what creating 10k files costs on this file system
# Files are counted as the tree's files (XML and .dm stored, .jpg as placeholders); MB
# are the content bytes stored in the recording. BENCH_TMP chooses the file system
# (default: mktemp's; /dev/shm for memory).
set -euo pipefail
runs=${1:-3}
top=$(cd "$(dirname "$0")/.." && pwd)
FSR=$top/build/tools/fsrecorder
SYNTH=$top/build/tools/em-synth
[ -x "$FSR" ] || { echo "build first: cmake -S . -B build && cmake --build build" >&2; exit 2; }
tmp=$(mktemp -d -p "${BENCH_TMP:-${TMPDIR:-/tmp}}")
trap 'rm -rf "$tmp"' EXIT
shape=(--sessions 1 --aborted 0 --squares 40 --unimaged 10 --holes 25 --mics 4 --dm-every 5)
"$SYNTH" -q "${shape[@]}" "$tmp/tree"
files=$(find "$tmp/tree" -type f | wc -l)
echo "session: $files files, $(du -sm "$tmp/tree" | cut -f1) MB on disk"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
content_mb() { "$FSR" info --json "$1" | python3 -c "import json,sys; print(json.load(sys.stdin)['content_bytes']/1e6)"; }

snap=() live=() rsnap=() rlive=() copy=()
for i in $(seq "$runs"); do
    rm -rf "$tmp"/out* "$tmp"/*.tar.zst "$tmp/live" "$tmp/copy"
    t=$(now)
    cp -r "$tmp/tree" "$tmp/copy"
    copy+=("$(elapsed "$t")")
    t=$(now)
    "$FSR" record -q --snapshot "$tmp/tree" "$tmp/snap.tar.zst"
    snap+=("$(elapsed "$t")")

    mkdir "$tmp/live"
    "$FSR" record -q "$tmp/live" "$tmp/live.tar.zst" &
    rp=$!
    sleep 0.3
    t=$(now)
    "$SYNTH" -q "${shape[@]}" "$tmp/live"
    kill -TERM "$rp"
    wait "$rp"
    live+=("$(elapsed "$t")")
    "$FSR" verify -q "$tmp/live.tar.zst" "$tmp/live" || { echo "live recording lost changes" >&2; exit 1; }

    t=$(now)
    "$FSR" replay -q --burst --no-verify "$tmp/snap.tar.zst" "$tmp/out1"
    rsnap+=("$(elapsed "$t")")
    t=$(now)
    "$FSR" replay -q --burst --no-verify "$tmp/live.tar.zst" "$tmp/out2"
    rlive+=("$(elapsed "$t")")
done
smb=$(content_mb "$tmp/snap.tar.zst")
lmb=$(content_mb "$tmp/live.tar.zst")
lops=$("$FSR" info --json "$tmp/live.tar.zst" | python3 -c "import json,sys; print(json.load(sys.stdin)['operations'])")
report() { # NAME SECONDS MB
    awk -v n="$1" -v s="$2" -v f="$files" -v mb="$3" \
        'BEGIN { printf "%-28s %7.2f s  %8.0f files/s  %6.1f MB/s\n", n, s, f / s, mb / s }'
}
m=$(printf '%s\n' "${snap[@]}" | median); report "record --snapshot" "$m" "$smb"
m=$(printf '%s\n' "${live[@]}" | median); report "record live" "$m" "$lmb"
m=$(printf '%s\n' "${rsnap[@]}" | median); report "replay --burst (snapshot)" "$m" "$smb"
m=$(printf '%s\n' "${rlive[@]}" | median); report "replay --burst (live)" "$m" "$lmb"
m=$(printf '%s\n' "${copy[@]}" | median); report "cp -r of the tree (baseline)" "$m" "$(du -sm "$tmp/tree" | cut -f1)"
echo "(medians of $runs; live recording: $lops operations, $lmb MB of content; archive sizes:" \
    "snapshot $(du -k "$tmp/snap.tar.zst" | cut -f1) kB, live $(du -k "$tmp/live.tar.zst" | cut -f1) kB)"
