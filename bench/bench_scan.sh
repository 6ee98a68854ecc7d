#!/usr/bin/env bash
# Benchmark of em-agent scan (DESIGN §10): generates the 200 x 50 x 5 session once, then
# reports the median wall time and peak RSS of RUNS scans beside `xmllint --stream` over
# the same XML/.dm files (one process) and `cat` of them, with the page cache warm.
#   bench/bench_scan.sh [RUNS]   (env: BENCH_DIR, default bench/data/session-200x50x5)
set -euo pipefail
runs=${1:-5}
top=$(cd "$(dirname "$0")/.." && pwd)
data=${BENCH_DIR:-$top/bench/data/session-200x50x5}
agent=$top/build/agent/em-agent
[ -x "$agent" ] || { echo "build first: cmake -S . -B build && cmake --build build" >&2; exit 2; }
if [ ! -f "$data/.complete" ]; then
    rm -rf "$data"
    python3 "$top/bench/gen_session.py" "$data"
    touch "$data/.complete"
fi
list=$(mktemp)
trap 'rm -f "$list" "$list".*' EXIT
find "$data" -type f \( -name '*.xml' -o -name '*.dm' \) | sort >"$list"
nfiles=$(wc -l <"$list")
bytes=$(xargs -a "$list" -d '\n' cat | wc -c)

# median of the numbers on stdin
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# runs a command RUNS times; prints "median_seconds median_maxrss_kb"
measure() {
    local t=() m=()
    for _ in $(seq "$runs"); do
        /usr/bin/time -f '%e %M' -o "$list.t" "$@" >/dev/null 2>"$list.err" || { cat "$list.err" >&2; exit 1; }
        read -r s k <"$list.t"
        t+=("$s"); m+=("$k")
    done
    echo "$(printf '%s\n' "${t[@]}" | median) $(printf '%s\n' "${m[@]}" | median)"
}

xargs -a "$list" -d '\n' cat >/dev/null # warm the page cache
echo "session: $nfiles XML/.dm files, $((bytes / 1000000)) MB; $(nproc) cores; median of $runs runs"
read -r s k < <(measure "$agent" scan -q --no-progress "$data")
echo "em-agent scan:            ${s} s  peak RSS $((k / 1024)) MiB  ($(awk -v n="$nfiles" -v s="$s" 'BEGIN{printf "%.0f", n/s}') files/s)"
read -r s1 k1 < <(measure "$agent" scan -q --no-progress -j 1 "$data")
echo "em-agent scan -j 1:       ${s1} s  peak RSS $((k1 / 1024)) MiB"
read -r s2 k2 < <(measure sh -c "xargs -a '$list' -d '\n' xmllint --stream --noout")
echo "xmllint --stream (1 proc at a time): ${s2} s  peak RSS $((k2 / 1024)) MiB"
read -r s3 k3 < <(measure sh -c "xargs -a '$list' -d '\n' cat")
echo "cat:                      ${s3} s"
echo "reference (DESIGN §10): Python agent 560-700 s and 583 MiB; xmllint --stream ~8 s; cat ~3 s"
