#!/usr/bin/env bash
# Fuzzes every parser and every other reader of untrusted input (events from the bus,
# the journal, the outbox, recordings, the model snapshot) for SECONDS each (default 30)
# with libFuzzer, starting from the committed corpus. New crashes land in build-fuzz/crash-*; add them to
# testdata/fuzz/<kind>/ as regression inputs once fixed.
#   tests/fuzz/run.sh [SECONDS]
set -euo pipefail
secs=${1:-30}
top=$(cd "$(dirname "$0")/../.." && pwd)
build="$top/build-fuzz"
CC=clang cmake -S "$top" -B "$build" -DEM_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
# Parsers, then the other readers of untrusted or on-disk input, each from its corpus.
corpus_of() {
    case $1 in
    outbox) echo "$top/testdata/fuzz/event" ;;
    recording) echo "$top/testdata/recordings" ;;
    formats) echo "$top/testdata/fuzz/formats" ;;
    *) echo "$top/testdata/fuzz/$1" ;;
    esac
}
# One fuzzer per core at a time; each prints its figures when it ends.
one() {
    local kind=$1 work
    work=$(mktemp -d)
    cp -r "$(corpus_of "$kind")/." "$work/"
    (cd "$build" && "./tests/fuzz/fuzz_$kind" -max_total_time="$secs" -max_len=65536 \
        -print_final_stats=1 "$work" >"$work.log" 2>&1) || true
    echo "fuzz_$kind: ${secs}s"
    grep -E 'stat::number_of_executed_units|ERROR|SUMMARY' "$work.log" || true
    rm -rf "$work" "$work.log"
}
running=0
for kind in session atlas gridsquare_metadata gridsquare_image foilhole_image micrograph \
    event journal outbox recording snapshot formats; do
    one "$kind" &
    running=$((running + 1))
    if [ "$running" -ge "$(nproc)" ]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait
if ls "$build"/crash-* >/dev/null 2>&1; then
    echo "a fuzzer found a crash: $(ls "$build"/crash-*)"
    exit 1
fi
