#!/usr/bin/env bash
# A whole visit at scale (issue 13): builds a visit with em-synth (on tmpfs when there is
# one), then prints, for RUNS runs each, the median wall time and peak RSS of
#   em-agent scan, and xmllint --stream over the same XML/.dm files (the yardstick),
#   em-agent watch --once from a new state directory (cold start),
#   em-agent watch --once again on the unchanged tree (restart),
# and the state directory's size, bytes per file and the ratios against the targets.
#
#   bench/bench_scale.sh [RUNS]            (default 3)
# Environment:
#   BENCH_SHAPE  "full" (default): 10 sessions x 200 squares x 50 holes x 5 micrographs,
#                604,220 files, 5.1 GB; "tenth": 20 squares per session, 60,620 files
#   BENCH_DIR    where the visit goes (default /dev/shm/em-bench-SHAPE, else bench/data)
#   BUILD        the build directory (default build)
set -euo pipefail
runs=${1:-3}
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$top/build}
agent=$build/agent/em-agent
synth=$build/tools/em-synth
for b in "$agent" "$synth"; do
    [ -x "$b" ] || { echo "bench_scale: $b: build first (cmake -S . -B build && cmake --build build)" >&2; exit 2; }
done
command -v xmllint >/dev/null || { echo "bench_scale: xmllint missing (apt-get install libxml2-utils)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench_scale: /usr/bin/time missing (apt-get install time)" >&2; exit 2; }
shape=${BENCH_SHAPE:-full}
case $shape in
full) squares=200 ;;
tenth) squares=20 ;;
*) echo "bench_scale: BENCH_SHAPE is full or tenth" >&2; exit 2 ;;
esac
if [ -z "${BENCH_DIR:-}" ]; then
    if [ -d /dev/shm ] && [ -w /dev/shm ]; then BENCH_DIR=/dev/shm/em-bench-$shape; else BENCH_DIR=$top/bench/data/visit-$shape; fi
fi
visit=$BENCH_DIR/visit
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ ! -f "$BENCH_DIR/.complete" ]; then
    rm -rf "$BENCH_DIR"
    mkdir -p "$BENCH_DIR"
    echo "generating the visit in $visit (em-synth; a few minutes at full size) ..."
    "$synth" -q --sessions 10 --aborted 0 --squares "$squares" --unimaged 20 --holes 50 --mics 5 \
        --dm-every 10 --no-images "$visit"
    touch "$BENCH_DIR/.complete"
fi
list=$work/list
find "$visit" -type f \( -name '*.xml' -o -name '*.dm' \) | sort >"$list"
nfiles=$(find "$visit" -type f | wc -l)
bytes=$(du -sb "$visit" | cut -f1)

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# time_one OUTFILE CMD...: appends "seconds maxrss_kb" of one run
time_one() {
    local out=$1
    shift
    /usr/bin/time -f '%e %M' -o "$work/t" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    cat "$work/t" >>"$out"
}
med_s() { awk '{print $1}' "$1" | median; }
med_mb() { awk '{print $2 / 1024}' "$1" | median; }

echo "visit: $nfiles files, $((bytes / 1000000)) MB, on $(df -P "$visit" | awk 'NR==2 {print $1}'); $(nproc) cores; median of $runs runs"
xargs -a "$list" -d '\n' cat >/dev/null # warm the page cache
for i in $(seq "$runs"); do
    time_one "$work/scan" "$agent" scan -q --no-progress "$visit"
    time_one "$work/xmllint" sh -c "xargs -a '$list' -d '\n' xmllint --stream --noout"
    rm -rf "$work/state"
    time_one "$work/cold" "$agent" watch --once -q --state-dir "$work/state" "$visit"
    time_one "$work/restart" "$agent" watch --once -q --state-dir "$work/state" "$visit"
done
state_bytes=$(du -sb "$work/state" | cut -f1)
journal_bytes=$(stat -c %s "$work/state/journal")
snap_bytes=$(cat "$work/state"/model-* | wc -c)
s_scan=$(med_s "$work/scan") s_xml=$(med_s "$work/xmllint") s_cold=$(med_s "$work/cold") s_rest=$(med_s "$work/restart")
printf '%-34s %8s s  peak RSS %6.1f MiB\n' "em-agent scan" "$s_scan" "$(med_mb "$work/scan")"
printf '%-34s %8s s  peak RSS %6.1f MiB\n' "xmllint --stream (one process)" "$s_xml" "$(med_mb "$work/xmllint")"
printf '%-34s %8s s  peak RSS %6.1f MiB\n' "em-agent watch --once, cold start" "$s_cold" "$(med_mb "$work/cold")"
printf '%-34s %8s s  peak RSS %6.1f MiB\n' "em-agent watch --once, restart" "$s_rest" "$(med_mb "$work/restart")"
echo "state directory: $((state_bytes / 1048576)) MiB (journal $((journal_bytes / 1048576)) MiB, snapshot $((snap_bytes / 1048576)) MiB), $((state_bytes / nfiles)) bytes per file"
awk -v a="$s_scan" -v b="$s_xml" -v c="$s_cold" -v d="$s_rest" 'BEGIN {
    printf "scan / xmllint:       %.3f  (target <= 0.60)\n", a / b
    printf "cold start / scan:    %.3f  (target <= 1.20)\n", c / a
    printf "restart / cold start: %.3f  (target <= 0.10)\n", d / c }'
awk -v n="$nfiles" -v c="$(med_mb "$work/cold")" -v r="$(med_mb "$work/restart")" 'BEGIN {
    printf "watch peak RSS per file: cold start %.0f bytes, restart %.0f bytes\n", c * 1048576 / n, r * 1048576 / n }'
echo "targets for peak RSS: scan <= 64 MiB, watch <= 160 MiB"
