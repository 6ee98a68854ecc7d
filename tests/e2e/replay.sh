#!/usr/bin/env bash
# Replays a committed recording into an empty directory while `em-agent watch` runs and
# checks what the agent saw:
#
#   tests/e2e/replay.sh FSRECORDER EM_AGENT RECORDING burst|real
#
# burst: as fast as possible; real: recorded timing with gaps capped at 0.05 s. The
# folded events must equal `em-agent scan` of the result, the entity counts must equal
# RECORDING's .expected.json (written by em-synth, which knows what it made), no event
# may repeat its entity's previous data, and the replayed tree must verify.
set -u
FSR=$(realpath "$1")
AGENT=$(realpath "$2")
REC=$(realpath "$3")
SPEED=$4
HERE=$(cd "$(dirname "$0")" && pwd)
FOLD="python3 $HERE/fold.py"
EXPECTED="${REC%.tar.zst}.expected.json"
TMP=$(mktemp -d)
APID=
failures=0
cleanup() {
    [ -n "$APID" ] && kill -9 "$APID" 2>/dev/null
    if [ "$failures" -gt 0 ] && [ -n "${KEEP_FAILED:-}" ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
ok() { echo "ok   $*"; }
bad() { failures=$((failures + 1)); echo "FAIL $*"; }

mkdir "$TMP/dest"
"$AGENT" watch --agent replay --state-dir "$TMP/state" -o "$TMP/events.jsonl" "$TMP/dest" \
    2>"$TMP/agent.log" &
APID=$!
# The agent is watching once its journal exists.
for _ in $(seq 100); do [ -s "$TMP/state/journal" ] && break; sleep 0.05; done
sleep 0.2

case $SPEED in
burst) args=(--burst) ;;
real) args=(--max-gap 0.05) ;;
*) echo "unknown speed $SPEED"; exit 2 ;;
esac
start=$(date +%s.%N)
if "$FSR" replay -q "${args[@]}" "$REC" "$TMP/dest" 2>"$TMP/replay.log"; then
    ok "replay ($SPEED) took $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }') s and verified"
else
    bad "replay ($SPEED) failed"
    cat "$TMP/replay.log"
fi

"$AGENT" scan --agent replay "$TMP/dest" >"$TMP/scan.jsonl" 2>/dev/null
equal=0
for _ in $(seq 300); do
    if [ -s "$TMP/events.jsonl" ] && $FOLD compare "$TMP/scan.jsonl" "$TMP/events.jsonl" >/dev/null 2>&1; then
        equal=1
        break
    fi
    sleep 0.1
done
if [ "$equal" -eq 1 ]; then ok "watch events fold to scan's entities"; else
    bad "watch events differ from scan"
    $FOLD compare "$TMP/scan.jsonl" "$TMP/events.jsonl" | tail -5
    tail -5 "$TMP/agent.log"
fi
got=$($FOLD counts "$TMP/events.jsonl")
if python3 -c "import json,sys; sys.exit(json.loads(sys.argv[1]) != json.load(open(sys.argv[2])))" "$got" "$EXPECTED"; then
    ok "entity counts are the expected ones: $got"
else
    bad "entity counts $got, expected $(cat "$EXPECTED")"
fi
if $FOLD check "$TMP/events.jsonl" >"$TMP/check.txt"; then ok "no repeated events, seq increasing ($(wc -l <"$TMP/events.jsonl") events)"; else
    bad "event stream rules"
    tail -5 "$TMP/check.txt"
fi
kill -TERM "$APID"
wait "$APID"
rc=$?
APID=
[ "$rc" -eq 0 ] && ok "agent exits 0 on SIGTERM" || bad "agent exit $rc"
echo "replay.sh $(basename "$REC") $SPEED: $failures failure(s)"
[ "$failures" -eq 0 ]
