#!/usr/bin/env bash
# Events per second through the bus, per stage and end to end, into SQLite and PostgreSQL.
#
#   bench/bench_bus.sh [BUILD_DIR] [RUNS]
#
# Data: em-synth writes one session of 200 squares x 50 holes x 5 micrographs without
# images (about 60,400 XML/.dm files); `em-agent scan` gives its ~60,000 events.
# Stages (each run on a fresh broker queue and a fresh store; RUNS times, median printed):
#   publish   the agent sends a full outbox to the broker with publisher confirms
#             (em-agent watch --once on an empty tree, the events already in the outbox)
#   consume   em-backend consume drains the queued events into the store (batches,
#             commit, then ack), timed to the last commit
#   e2e       the agent walks and parses the tree and publishes while the consumer
#             stores: from the agent's start to the last event in the store
#   ingest    em-backend ingest of the same events from a file (no broker), for reference
# Servers are throwaway ones started here (tests/e2e/servers.sh) and stopped at the end.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BUILD=$(realpath "${1:-$ROOT/build}")
RUNS=${2:-3}
AGENT=$BUILD/agent/em-agent
BACKEND=$BUILD/backend/em-backend
SYNTH=$BUILD/tools/em-synth
. "$ROOT/tests/e2e/servers.sh"
TMP=$(mktemp -d /tmp/em-bench-bus.XXXXXX)
trap 'servers_cleanup; rm -rf "$TMP"' EXIT
PORT=44000
URL="amqp://guest:guest@127.0.0.1:$PORT/"

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo "bench_bus: generating the session..."
"$SYNTH" -q --sessions 1 --aborted 0 --squares 200 --unimaged 0 --holes 50 --mics 5 --no-images \
    "$TMP/visit"
files=$(find "$TMP/visit" -type f | wc -l)
"$AGENT" scan -q --agent bench "$TMP/visit" >"$TMP/events.jsonl"
N=$(wc -l <"$TMP/events.jsonl")
echo "bench_bus: $files files, $N events; $RUNS runs per figure; $(nproc) cores"

rmq_start "$TMP/rmq" "$PORT"
pg_start "$TMP/pg"
mkdir -p "$TMP/empty"

fresh_store() { # fresh_store KIND RUN -> prints a store URL
    case $1 in
    sqlite) echo "sqlite:$TMP/store-$2-$RANDOM.db" ;;
    pg)
        local db="b_$2_$RANDOM"
        psql "$PG_URL" -qtAc "CREATE DATABASE $db" >/dev/null
        echo "postgresql://em@/$db?host=$TMP/pg"
        ;;
    esac
}

# The queue must exist before anything is published.
"$BACKEND" consume --amqp "$URL" --store "sqlite:$TMP/declare.db" --idle-exit 1 2>/dev/null

publish() { # publishes events.jsonl from a fresh outbox; prints seconds
    local st=$TMP/pub-$RANDOM
    mkdir -p "$st/outbox"
    cp "$TMP/events.jsonl" "$st/outbox/00000000000000000001.jsonl"
    local t0 t1
    t0=$(now)
    "$AGENT" watch --once -v --agent bench --state-dir "$st" --amqp "$URL" --drain 600 \
        "$TMP/empty" 2>"$st.log"
    t1=$(now)
    grep -q ' 0 waiting in the outbox' "$st.log" || { echo "publish incomplete" >&2; cat "$st.log" >&2; exit 1; }
    rm -rf "$st"
    echo "$t1 - $t0" | bc -l
}

consume() { # consume STORE: drains the queue; prints seconds to the last commit
    local log=$TMP/consume-$RANDOM.log t0 t1
    t0=$(now)
    "$BACKEND" consume --amqp "$URL" --store "$1" --idle-exit 1 -v 2>"$log"
    t1=$(now)
    grep -q "received $N " "$log" || { echo "consume: $(grep stopped: "$log")" >&2; exit 1; }
    echo "$t1 - $t0 - 1" | bc -l # --idle-exit waits 1 s after the last message
}

e2e() { # e2e STORE: agent walks, parses, publishes while the consumer stores
    # The end is the consumer's last commit: it exits 3 s after the last message.
    local st=$TMP/e2e-$RANDOM log=$TMP/e2e-$RANDOM.log t0 t1
    t0=$(now)
    "$BACKEND" consume --amqp "$URL" --store "$1" --idle-exit 3 -v 2>"$log" &
    local cpid=$!
    "$AGENT" watch --once --agent "e2e$RANDOM" --state-dir "$st" --amqp "$URL" --drain 600 \
        "$TMP/visit" 2>/dev/null
    wait "$cpid"
    t1=$(now)
    grep -q "received $N " "$log" || { echo "e2e: $(grep stopped: "$log")" >&2; exit 1; }
    rm -rf "$st"
    echo "$t1 - $t0 - 3" | bc -l
}

ingest() {
    local t0 t1
    t0=$(now)
    "$BACKEND" ingest "$TMP/events.jsonl" --store "$1" 2>/dev/null
    t1=$(now)
    echo "$t1 - $t0" | bc -l
}

report() { # report NAME SECONDS...
    local name=$1
    shift
    local med
    med=$(printf '%s\n' "$@" | median)
    printf '%-34s median %7.2f s  %8.0f events/s   (runs: %s)\n' "$name" "$med" \
        "$(echo "$N / $med" | bc -l)" "$(printf '%.2f ' "$@")"
}

declare -a pub=() cs=() cp=() es=() ep=() is=() ip=()
for r in $(seq "$RUNS"); do
    pub+=("$(publish)")
    cs+=("$(consume "$(fresh_store sqlite "$r")")")
    pub+=("$(publish)")
    cp+=("$(consume "$(fresh_store pg "$r")")")
    es+=("$(e2e "$(fresh_store sqlite "e$r")")")
    ep+=("$(e2e "$(fresh_store pg "e$r")")")
    is+=("$(ingest "$(fresh_store sqlite "i$r")")")
    ip+=("$(ingest "$(fresh_store pg "i$r")")")
done
report "publish with confirms" "${pub[@]}"
report "consume + commit, SQLite" "${cs[@]}"
report "consume + commit, PostgreSQL" "${cp[@]}"
report "end to end (parse..store), SQLite" "${es[@]}"
report "end to end (parse..store), PG" "${ep[@]}"
report "ingest from a file, SQLite" "${is[@]}"
report "ingest from a file, PostgreSQL" "${ip[@]}"
