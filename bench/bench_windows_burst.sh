#!/bin/bash
# bench_windows_burst.sh [RUNS] [KIB...] — change-notification overflows of em-agent.exe
# under wine while em-synth writes 10,042 files into the watched directory as fast as it
# can: for each change-buffer size (default 4 and 64 KiB; 4 KiB is libuv's fixed buffer),
# RUNS runs (default 3), each printing its overflows, rescans and catch-up time, then the
# median per size. Needs build-win (scripts/build-windows.sh) and build (em-synth, em-agent).
# Wine is not Windows: the figures say how the agent copes, not how NTFS overflows.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-3}
shift || true
sizes=${*:-4 64}
exe=$top/build-win/agent/em-agent.exe
synth=$top/build/tools/em-synth
linux_agent=$top/build/agent/em-agent
work=$(mktemp -d)
export WINEPREFIX=$work/wine WINEDEBUG=-all
trap 'wineserver -k >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
wine cmd /c exit </dev/null >/dev/null 2>&1 || true
wineserver -p </dev/null >/dev/null 2>&1 || true
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
for kib in $sizes; do
    : >"$work/ov.$kib"
    for r in $(seq 1 "$runs"); do
        d=$work/run
        rm -rf "$d" && mkdir -p "$d/tree"
        (cd "$d" && exec wine "$exe" watch -v --settle 300 --change-buffer "$kib" --state-dir state \
            --out events.jsonl tree 2>agent.err) &
        apid=$!
        sleep 3
        "$synth" -q --sessions 1 --aborted 0 --squares 20 --unimaged 0 --holes 50 --mics 9 \
            --dm-every 10 --no-images "$d/tree/visit"
        files=$(find "$d/tree" -type f | wc -l)
        (cd "$d" && "$linux_agent" scan -q --no-progress tree >scan.jsonl)
        t=0
        while [ $t -lt 300 ]; do
            sleep 5
            t=$((t + 5))
            python3 "$top/tests/e2e/fold.py" compare "$d/scan.jsonl" "$d/events.jsonl" >/dev/null 2>&1 && break
        done
        kill -INT "$apid"
        wait "$apid" || true
        line=$(grep 'stopped:' "$d/agent.err" | tail -1)
        ov=$(echo "$line" | sed -n 's/.* \([0-9]*\) notification overflows.*/\1/p')
        rs=$(echo "$line" | sed -n 's/.* \([0-9]*\) rescans.*/\1/p')
        echo "$kib KiB run $r: $files files, $ov overflows, $rs rescans, caught up within ${t} s"
        echo "$ov" >>"$work/ov.$kib"
    done
    echo "$kib KiB: median $(median <"$work/ov.$kib") overflows per $files files"
done
