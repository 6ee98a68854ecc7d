#!/usr/bin/env bash
# agent → RabbitMQ → em-backend → store, with real servers started here and stopped by pid:
#
#   tests/e2e/bus.sh EM_AGENT EM_BACKEND EM_SYNTH FSRECORDER CASE PORT
#
# Every case ends with the same check: the store's entities (`em-backend query entities`)
# equal the folded `em-agent scan` of the tree, entity for entity, and the store holds no
# more rows than there are entities. Cases:
#   sqlite        a synthetic visit, published by `watch --once`, consumed into SQLite
#   postgres      a committed recording replayed live into the watched tree, into PostgreSQL
#   outage        the broker is down while the agent works: events wait in the outbox (and
#                 survive an agent restart); once the broker is up they are all delivered
#   unrouted      no queue is bound to em.events yet: the broker returns the events, the
#                 agent keeps them and delivers them once em-backend has declared its queue
#   restart       the broker is stopped and started again while a session is being written
#                 and published live; the consumer reconnects on its own
#   kill          the consumer is killed with SIGKILL in the middle of a batch, then restarted
#   two           two consumers on one queue, into one SQLite file and into PostgreSQL
#   duplicate     the same events published twice (same message ids), then a stale event
#                 (lower seq, other data) for an existing entity: nothing changes
#   poison        undecodable messages among good ones go to em.dead with a reason; the
#                 queue keeps moving
#   tls           amqps:// with the CA file; a wrong CA is refused and nothing is lost
#   state         the agent's state damaged between runs: the journal deleted, truncated or
#                 overwritten, a confirmed mark ahead of the outbox, a deleted outbox
#                 segment; each is reported and every later change still reaches the store
#   storefull     the SQLite store's disk fills up while consuming: nothing is dead-lettered,
#                 consume backs off and finishes once there is room again
#   pgcrash       PostgreSQL crashes in the middle of consuming and comes back: nothing is
#                 dead-lettered or lost
#   pglocked      a table stays locked past the store's lock_timeout while consuming: the
#                 events for other tables store, the rest wait; nothing is dead-lettered
# PORT: the broker's AMQP port (PORT+1 and PORT+2 are used too), distinct per case so
# cases can run in parallel.
set -u
AGENT=$(realpath "$1")
BACKEND=$(realpath "$2")
SYNTH=$(realpath "$3")
FSR=$(realpath "$4")
CASE=$5
PORT=$6
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
FOLD="python3 $HERE/fold.py"
# shellcheck source=servers.sh
. "$HERE/servers.sh"

if ! command -v epmd >/dev/null || [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
    echo "SKIP: rabbitmq-server is not installed (scripts/setup.sh installs it)"
    exit 77
fi

TMP=$(mktemp -d /tmp/em-bus.XXXXXX)
failures=0
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    servers_cleanup
    mountpoint -q "$TMP/small" 2>/dev/null && umount "$TMP/small"
    if [ "$failures" -gt 0 ] && [ -n "${KEEP_FAILED:-}" ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
ok() { echo "ok   $*"; }
bad() { failures=$((failures + 1)); echo "FAIL $*"; }
die() { bad "$*"; exit 1; }

if [ "$CASE" = tls ]; then
    # A CA, a broker certificate for localhost signed by it, another CA, and a broker
    # with a TLS listener on PORT+3.
    mkdir -p "$TMP/rmq"
    command -v openssl >/dev/null || { echo "SKIP: no openssl"; exit 77; }
    C=$TMP/certs
    mkdir -p "$C"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=em-test-ca -keyout "$C/ca.key" \
        -out "$C/ca.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout "$C/server.key" \
        -out "$C/server.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost\n' >"$C/ext"
    openssl x509 -req -in "$C/server.csr" -CA "$C/ca.pem" -CAkey "$C/ca.key" -CAcreateserial \
        -days 2 -extfile "$C/ext" -out "$C/server.pem" 2>/dev/null
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other-ca -keyout "$C/other.key" \
        -out "$C/other.pem" 2>/dev/null
    TLS_PORT=$((PORT + 3))
    cat >"$TMP/rmq/rabbitmq.conf" <<EOF
listeners.ssl.default = $TLS_PORT
ssl_options.cacertfile = $C/ca.pem
ssl_options.certfile = $C/server.pem
ssl_options.keyfile = $C/server.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
EOF
fi
rmq_start "$TMP/rmq" "$PORT" || die "the broker did not start"
URL="amqp://guest:guest@127.0.0.1:$PORT/"
SQLITE="sqlite:$TMP/store.db"

# consume_until_idle STORE [LOG] [ARGS...]: consumes until the queue has been quiet 3 s.
consume_until_idle() {
    local store=$1 log=${2:-$TMP/consume.log}
    shift 2 || shift $#
    timeout 300 "$BACKEND" consume --amqp "$URL" --store "$store" --idle-exit 3 -v "$@" \
        2>>"$log"
}

# declare_queue: the consumer declares em.backend; until then the broker has nowhere to
# route events (the agent would keep them, correctly, but the cases want them to flow).
declare_queue() {
    timeout 60 "$BACKEND" consume --amqp "$URL" --store "$SQLITE" --idle-exit 1 \
        2>>"$TMP/declare.log" || die "consume could not declare the queue: $(tail -3 "$TMP/declare.log")"
}

publish_once() { # publish_once DIR STATE [ARGS...]: watch --once with the bus
    local dir=$1 state=$2
    shift 2
    timeout 120 "$AGENT" watch --once -v --agent krios1 --state-dir "$state" --amqp "$URL" \
        --drain 30 "$@" "$dir" 2>>"$TMP/agent.log"
}

# expect_store STORE DIR WHAT: the store equals scan of DIR.
expect_store() {
    local store=$1 dir=$2 what=$3
    "$AGENT" scan "$dir" >"$TMP/scan.jsonl" 2>/dev/null
    if ! "$BACKEND" query entities --store "$store" >"$TMP/export.jsonl" 2>"$TMP/query.err"; then
        bad "$what: query failed: $(cat "$TMP/query.err")"
        return
    fi
    local out
    out=$($FOLD compare "$TMP/scan.jsonl" "$TMP/export.jsonl")
    local n_scan n_store
    n_scan=$($FOLD counts "$TMP/scan.jsonl" | python3 -c 'import json,sys; print(sum(json.load(sys.stdin).values()))')
    n_store=$(wc -l <"$TMP/export.jsonl")
    if [[ $out == *"-> EQUAL"* ]] && [ "$n_scan" -eq "$n_store" ] && [ "$n_store" -gt 0 ]; then
        ok "$what: store equals scan ($n_store entities)"
    else
        bad "$what: store differs from scan ($n_scan entities in scan, $n_store rows): $out"
    fi
}

outbox_waiting() { # events in STATE's outbox not yet confirmed
    local state=$1 confirmed=0
    [ -f "$state/outbox/confirmed" ] && confirmed=$(cat "$state/outbox/confirmed")
    cat "$state"/outbox/*.jsonl 2>/dev/null | python3 -c '
import json, sys
c = int(sys.argv[1]); print(sum(1 for l in sys.stdin if l.strip() and json.loads(l)["seq"] > c))' "$confirmed"
}

# start_live STORE: `watch --amqp` on the empty $TMP/dest and a consumer into STORE, both
# in the background (APID, CPID) until stop_live.
start_live() {
    mkdir "$TMP/dest"
    "$AGENT" watch -v --agent krios1 --state-dir "$TMP/state" --amqp "$URL" "$TMP/dest" \
        2>>"$TMP/agent.log" &
    APID=$!
    PIDS+=("$APID")
    for _ in $(seq 100); do [ -s "$TMP/state/journal" ] && break; sleep 0.05; done
    timeout 300 "$BACKEND" consume --amqp "$URL" --store "$1" -v 2>>"$TMP/consume.log" &
    CPID=$!
    PIDS+=("$CPID")
}

stop_live() { # SIGTERM to both; each must exit 0
    kill -TERM "$APID"
    wait "$APID" || bad "agent exit status $?"
    kill -TERM "$CPID"
    wait "$CPID" || bad "consume exit status $?"
}

synth() { # synth DIR [ARGS...]
    local dir=$1
    shift
    "$SYNTH" -q --seed 7 "$@" "$dir" || die "em-synth failed"
}

case $CASE in
sqlite)
    synth "$TMP/visit" --sessions 2 --squares 4 --holes 5 --mics 3
    declare_queue
    publish_once "$TMP/visit" "$TMP/state" || bad "agent exit status $?"
    grep -q '0 waiting in the outbox' "$TMP/agent.log" && ok "the outbox is empty" ||
        bad "events left in the outbox: $(grep waiting "$TMP/agent.log")"
    [ "$(outbox_waiting "$TMP/state")" -eq 0 ] || bad "unconfirmed lines remain in the outbox"
    consume_until_idle "$SQLITE" || bad "consume exit status $?"
    expect_store "$SQLITE" "$TMP/visit" "sqlite"
    grep -q 'guest:guest' "$TMP/agent.log" "$TMP/consume.log" && bad "a password reached a log" ||
        ok "no password in the logs"
    # Queries a facility runs, against independently known counts (4 squares imaged + 2
    # listed only, 20 holes, 60 micrographs per session).
    "$BACKEND" query sessions --json --store "$SQLITE" >"$TMP/sessions.json"
    python3 - "$TMP/sessions.json" <<'EOF' && ok "query sessions: counts right" || bad "query sessions"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
aborted = [r for r in rows if r["session_id"] is None]
rows = [r for r in rows if r["session_id"] is not None]
assert len(rows) == 2 and len(aborted) == 1, (rows, aborted)  # em-synth's --aborted 1
assert aborted[0]["state"] == "aborted (no EpuSession.dm)" and "_aborted" in aborted[0]["name"], aborted
for r in rows:
    assert (r["squares"], r["imaged"], r["holes"], r["micrographs"]) == (6, 4, 20, 60), r
    assert r["holes_exposed"] == 20 and r["per_hour"] > 0, r
    assert r["last_activity"] and r["last_acquired"] and r["state"].startswith(("idle since", "acquiring")), r
EOF
    sid=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["session_id"])' "$TMP/sessions.json")
    "$BACKEND" query squares "$sid" --json --store "$SQLITE" >"$TMP/squares.json"
    python3 - "$TMP/squares.json" <<'EOF' && ok "query squares: per-square counts right" || bad "query squares"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
imaged = [r for r in rows if r["micrographs"]]
assert len(rows) == 6 and len(imaged) == 4, rows
assert all(r["holes"] == 5 and r["micrographs"] == 15 for r in imaged), rows
EOF
    "$BACKEND" query micrographs --limit 5 --json --store "$SQLITE" >"$TMP/recent.json"
    python3 - "$TMP/recent.json" "$TMP/scan.jsonl" <<'EOF' && ok "query micrographs: the 5 most recent" || bad "query micrographs"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
mics = [json.loads(l) for l in open(sys.argv[2])]
times = sorted((e["data"]["acquired_at"] for e in mics if e["type"] == "micrograph"), reverse=True)
assert [r["acquired_at"] for r in rows] == times[:5], (rows, times[:5])
EOF
    ;;
postgres)
    pg_start "$TMP/pg" || die "PostgreSQL did not start"
    declare_queue
    start_live "$PG_URL"
    "$FSR" replay --max-gap 0.02 "$ROOT/testdata/recordings/live-synth.tar.zst" "$TMP/dest" \
        >/dev/null 2>"$TMP/replay.log" || bad "replay failed: $(tail -2 "$TMP/replay.log")"
    sleep 1
    stop_live
    expect_store "$PG_URL" "$TMP/dest" "postgres (replayed live-synth)"
    python3 -c 'import json,sys; e=json.load(open(sys.argv[1])); print(e["micrograph"])' \
        "$ROOT/testdata/recordings/live-synth.expected.json" >"$TMP/want"
    "$BACKEND" query sessions --json --store "$PG_URL" |
        python3 -c 'import json,sys; print(sum(json.loads(l)["micrographs"] or 0 for l in sys.stdin))' >"$TMP/got"
    cmp -s "$TMP/want" "$TMP/got" && ok "micrographs in the store equal em-synth's count ($(cat "$TMP/got"))" ||
        bad "micrographs: store $(cat "$TMP/got"), em-synth $(cat "$TMP/want")"
    # The queries' JSON paths in PostgreSQL's dialect (#>>) give what SQLite's give.
    "$BACKEND" query sessions --json --store "$PG_URL" >"$TMP/pg-sessions.json"
    python3 - "$TMP/pg-sessions.json" <<'EOF' && ok "PostgreSQL: sessions with imaged squares, exposed holes and a start; the aborted one" || bad "PostgreSQL sessions: $(head -c 300 "$TMP/pg-sessions.json")"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
sessions = [r for r in rows if r["session_id"] is not None]
assert sessions and all(r["imaged"] > 0 and r["holes_exposed"] > 0 and r["started_at"] for r in sessions), rows
assert [r["state"] for r in rows if r["session_id"] is None] == ["aborted (no EpuSession.dm)"], rows
EOF
    sid=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["session_id"])' "$TMP/pg-sessions.json")
    sq=$("$BACKEND" query squares "$sid" --json --store "$PG_URL" | python3 -c 'import json,sys; print(next(r["gridsquare_id"] for r in map(json.loads, sys.stdin) if r["holes"]))')
    "$BACKEND" query foilholes "$sid" "$sq" --json --store "$PG_URL" >"$TMP/pg-holes.json" &&
        python3 -c 'import json,sys; rows=[json.loads(l) for l in open(sys.argv[1])]; assert rows and all(r["selected"] in (True, False) for r in rows), rows' "$TMP/pg-holes.json" &&
        ok "PostgreSQL: foilholes with selected as a boolean" || bad "PostgreSQL foilholes: $(head -c 300 "$TMP/pg-holes.json")"
    "$BACKEND" query atlases --store "$PG_URL" >/dev/null && ok "PostgreSQL: query atlases" || bad "PostgreSQL: query atlases"
    ;;
outage)
    synth "$TMP/visit" --sessions 2 --squares 3 --holes 4 --mics 2
    # The second session appears later, while the broker is still down.
    mkdir "$TMP/hold"
    second=$(ls -d "$TMP/visit"/Supervisor_*_2_* | head -1)
    mv "$second" "$TMP/hold/"
    declare_queue
    rmq_stop
    publish_once "$TMP/visit" "$TMP/state" --drain 1 || bad "agent exit status $?"
    waiting=$(outbox_waiting "$TMP/state")
    [ "$waiting" -gt 0 ] && ok "broker down: $waiting events wait in the outbox" ||
        bad "broker down but nothing waits in the outbox"
    grep -q 'events wait in the outbox' "$TMP/agent.log" && ok "the agent says so" || bad "no warning"
    # More files while the broker is still down; a second agent run keeps queueing.
    mv "$TMP/hold"/Supervisor_* "$TMP/visit/"
    publish_once "$TMP/visit" "$TMP/state" --drain 1 || bad "agent exit status $?"
    more=$(outbox_waiting "$TMP/state")
    [ "$more" -gt "$waiting" ] && ok "after a restart the outbox grew to $more" || bad "outbox $more"
    rmq_start "$TMP/rmq" "$PORT" || die "the broker did not restart"
    publish_once "$TMP/visit" "$TMP/state" || bad "agent exit status $?"
    [ "$(outbox_waiting "$TMP/state")" -eq 0 ] && ok "broker back: the outbox drained" ||
        bad "the outbox did not drain"
    consume_until_idle "$SQLITE" || bad "consume exit status $?"
    expect_store "$SQLITE" "$TMP/visit" "outage"
    ;;
unrouted)
    synth "$TMP/visit" --sessions 1 --squares 2 --holes 3 --mics 2
    publish_once "$TMP/visit" "$TMP/state" --drain 2 || bad "agent exit status $?"
    grep -q 'no queue bound to em.events' "$TMP/agent.log" && ok "the agent says no queue is bound" ||
        bad "no warning: $(grep warning "$TMP/agent.log" | head -2)"
    waiting=$(outbox_waiting "$TMP/state")
    [ "$waiting" -gt 0 ] && ok "$waiting returned events kept in the outbox" ||
        bad "returned events were dropped from the outbox"
    declare_queue
    publish_once "$TMP/visit" "$TMP/state" || bad "agent exit status $?"
    [ "$(outbox_waiting "$TMP/state")" -eq 0 ] && ok "queue declared: the outbox drained" ||
        bad "the outbox did not drain"
    consume_until_idle "$SQLITE" || bad "consume exit status $?"
    expect_store "$SQLITE" "$TMP/visit" "unrouted, then routed"
    ;;
restart)
    declare_queue
    start_live "$SQLITE"
    "$SYNTH" -q --seed 9 --sessions 1 --squares 4 --holes 5 --mics 3 --rate 40 "$TMP/dest" &
    WPID=$!
    PIDS+=("$WPID")
    sleep 1.5
    rmq_stop
    ok "broker stopped mid-run"
    sleep 2
    rmq_start "$TMP/rmq" "$PORT" || die "the broker did not restart"
    wait "$WPID" || bad "em-synth exit status $?"
    for _ in $(seq 300); do [ "$(outbox_waiting "$TMP/state")" -eq 0 ] && break; sleep 0.1; done
    # The consumer reconnects with back-off (up to 30 s) and may not be back yet: wait
    # until the queue is empty (ready and unacknowledged), then for its last batch.
    for _ in $(seq 600); do [ "$(rmq_queue_count em.backend)" = 0 ] && break; sleep 0.1; done
    sleep 3.5
    stop_live
    grep -q 'connection lost\|closed the connection\|cannot connect' "$TMP/consume.log" &&
        ok "the consumer saw the broker go" || bad "the consumer never noticed the restart"
    expect_store "$SQLITE" "$TMP/dest" "broker restart"
    ;;
kill)
    synth "$TMP/visit" --sessions 2 --squares 5 --holes 10 --mics 5
    declare_queue
    publish_once "$TMP/visit" "$TMP/state" || bad "agent exit status $?"
    queued=$(rmq_queue_count em.backend)
    [ "${queued:-0}" -gt 500 ] && ok "$queued events queued" || bad "queued: $queued"
    # Small batches, a pause between messages, and a kill while a batch is being gathered.
    "$BACKEND" consume --amqp "$URL" --store "$SQLITE" --batch 100 --prefetch 300 -v \
        2>>"$TMP/consume.log" &
    CPID=$!
    for _ in $(seq 200); do
        n=$(sqlite3 "$TMP/store.db" 'select count(*) from micrograph' 2>/dev/null || echo 0)
        [ "${n:-0}" -gt 0 ] && break
        sleep 0.01
    done
    kill -KILL "$CPID"
    wait "$CPID" 2>/dev/null
    stored=$(sqlite3 "$TMP/store.db" 'select (select count(*) from micrograph)+(select count(*) from foilhole)+(select count(*) from gridsquare)+(select count(*) from session)+(select count(*) from atlas)')
    left=$(rmq_queue_count em.backend)
    ok "killed with $stored rows stored and $left messages still queued"
    [ "${left:-0}" -gt 0 ] || bad "the consumer finished before the kill: the case proves nothing"
    consume_until_idle "$SQLITE" "$TMP/consume2.log" || bad "consume exit status $?"
    grep -q 'redelivered' "$TMP/consume2.log" && ok "$(grep -o '[0-9]* redelivered' "$TMP/consume2.log" | tail -1)"
    expect_store "$SQLITE" "$TMP/visit" "consumer SIGKILL"
    [ "$(rmq_queue_count em.backend)" = 0 ] && ok "queue empty" || bad "queue not empty"
    ;;
two)
    pg_start "$TMP/pg" || die "PostgreSQL did not start"
    synth "$TMP/visit" --sessions 2 --squares 5 --holes 8 --mics 4
    declare_queue
    publish_once "$TMP/visit" "$TMP/state" || bad "agent exit status $?"
    consume_until_idle "$SQLITE" "$TMP/c1.log" --batch 50 --prefetch 100 &
    C1=$!
    consume_until_idle "$SQLITE" "$TMP/c2.log" --batch 50 --prefetch 100 &
    C2=$!
    wait "$C1" || bad "consumer 1 exit status"
    wait "$C2" || bad "consumer 2 exit status"
    r1=$(grep -o 'received [0-9]*' "$TMP/c1.log" | tail -1)
    r2=$(grep -o 'received [0-9]*' "$TMP/c2.log" | tail -1)
    [ "${r1#received }" -gt 0 ] && [ "${r2#received }" -gt 0 ] &&
        ok "both consumers took a share ($r1, $r2)" || bad "one consumer did all ($r1, $r2)"
    expect_store "$SQLITE" "$TMP/visit" "two consumers, one SQLite file"
    # Again into PostgreSQL: publish the same tree from a fresh agent state.
    publish_once "$TMP/visit" "$TMP/state2" || bad "agent exit status $?"
    consume_until_idle "$PG_URL" "$TMP/c3.log" --batch 50 --prefetch 100 &
    C1=$!
    consume_until_idle "$PG_URL" "$TMP/c4.log" --batch 50 --prefetch 100 &
    C2=$!
    wait "$C1" || bad "consumer 3 exit status"
    wait "$C2" || bad "consumer 4 exit status"
    expect_store "$PG_URL" "$TMP/visit" "two consumers, PostgreSQL"
    ;;
duplicate)
    synth "$TMP/visit" --sessions 1 --squares 3 --holes 4 --mics 2
    declare_queue
    publish_once "$TMP/visit" "$TMP/state" -o /dev/null 2>/dev/null && bad "--out with --amqp accepted"
    "$AGENT" scan --agent krios1 "$TMP/visit" >"$TMP/events.jsonl" 2>/dev/null
    # The same lines (same agent, same seqs, same message ids) through two fresh outboxes.
    for s in a b; do
        mkdir -p "$TMP/dup-$s/outbox" "$TMP/empty"
        cp "$TMP/events.jsonl" "$TMP/dup-$s/outbox/00000000000000000001.jsonl"
        publish_once "$TMP/empty" "$TMP/dup-$s" || bad "agent exit status $?"
    done
    n=$(wc -l <"$TMP/events.jsonl")
    consume_until_idle "$SQLITE" || bad "consume exit status $?"
    grep -Eq "received $((2 * n)) \([0-9]+/s\), stored $n, unchanged $n," "$TMP/consume.log" &&
        ok "$((2 * n)) messages, $n stored, $n unchanged" ||
        bad "duplicates: $(grep stopped: "$TMP/consume.log")"
    expect_store "$SQLITE" "$TMP/visit" "published twice"
    # A stale event: the last micrograph again with a lower seq and other data.
    python3 - "$TMP/events.jsonl" >"$TMP/stale.jsonl" <<'EOF'
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1])]
m = [e for e in evs if e["type"] == "micrograph"][-1]
m["seq"] = 1
m["data"]["defocus_m"] = 12345.0
print(json.dumps(m, separators=(",", ":")))
EOF
    mkdir -p "$TMP/stale/outbox"
    cp "$TMP/stale.jsonl" "$TMP/stale/outbox/00000000000000000001.jsonl"
    publish_once "$TMP/empty" "$TMP/stale" || bad "agent exit status $?"
    consume_until_idle "$SQLITE" "$TMP/consume-stale.log" || bad "consume exit status $?"
    grep -Eq "received 1 \([0-9]+/s\), stored 0, unchanged 1," "$TMP/consume-stale.log" &&
        ok "the stale event changed nothing" || bad "stale: $(grep stopped: "$TMP/consume-stale.log")"
    sqlite3 "$TMP/store.db" "select count(*) from micrograph where data like '%12345%'" | grep -qx 0 ||
        bad "stale data stored"
    expect_store "$SQLITE" "$TMP/visit" "after the stale event"
    # The same through ingest (the embedded path): idempotent too.
    "$BACKEND" ingest "$TMP/events.jsonl" --store "$SQLITE" 2>"$TMP/ingest.log"
    grep -q "$n events, 0 stored, $n unchanged" "$TMP/ingest.log" && ok "ingest of the same events: no change" ||
        bad "ingest: $(cat "$TMP/ingest.log")"
    # A bad line among them: reported with its line number, skipped, exit status 1.
    { head -3 "$TMP/events.jsonl"; echo '{"v":1,"seq":"x"}'; tail -n +4 "$TMP/events.jsonl"; } >"$TMP/bad.jsonl"
    "$BACKEND" ingest "$TMP/bad.jsonl" --store "$SQLITE" 2>"$TMP/ingest-bad.log"
    st=$?
    [ "$st" -eq 1 ] && grep -q 'bad.jsonl:4: "seq" must be a positive integer; skipped' "$TMP/ingest-bad.log" &&
        grep -q "$n events, 0 stored, $n unchanged (repeated or stale), 0 not stored (store error), 1 rejected lines" "$TMP/ingest-bad.log" &&
        ok "ingest: a bad line is reported by number and skipped (exit 1)" ||
        bad "ingest of a bad line: exit $st, $(cat "$TMP/ingest-bad.log")"
    ;;
poison)
    synth "$TMP/visit" --sessions 1 --squares 2 --holes 3 --mics 2
    declare_queue
    "$AGENT" scan --agent krios1 "$TMP/visit" >"$TMP/events.jsonl" 2>/dev/null
    n=$(wc -l <"$TMP/events.jsonl")
    # Bad messages between good ones; each carries a seq so the outbox sends it on.
    python3 - "$TMP/events.jsonl" >"$TMP/mixed.jsonl" <<'EOF'
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1])]
bad = [
    '{"v":1,"seq":%d,"agent":"krios1","type":"bogus","op":"upsert","key":{},"data":{}}',
    '{"v":1,"seq":%d,"agent":"krios1","type":"micrograph","op":"upsert","key":{"session_id"',
    '{"v":1,"seq":%d,"agent":"krios1","type":"micrograph","op":"upsert","key":{"session_id":"x","micrograph_uuid":"u"},"data":{}}',
    '{"v":1,"seq":%d,"agent":"krios1","type":"session","op":"upsert","key":{"session_id":1},"data":{"name":"\xff\xfe"}}',
]
seq = 0
out = sys.stdout.buffer
for i, e in enumerate(evs):
    if i % 5 == 2 and bad:
        seq += 1
        out.write((bad.pop(0).replace("%d", str(seq))).encode("latin-1") + b"\n")
    seq += 1
    e["seq"] = seq
    out.write(json.dumps(e, separators=(",", ":")).encode() + b"\n")
EOF
    mkdir -p "$TMP/pstate/outbox" "$TMP/empty"
    # And a line over the outbox's 16 MiB limit (an older agent could write one): skipped
    # with an error, never blocking what follows it.
    { head -2 "$TMP/mixed.jsonl"
      python3 -c 'import sys; sys.stdout.write("{\"v\":1,\"seq\":999999,\"data\":\"" + "x" * (17 << 20) + "\"}\n")'
      tail -n +3 "$TMP/mixed.jsonl"; } >"$TMP/pstate/outbox/00000000000000000001.jsonl"
    publish_once "$TMP/empty" "$TMP/pstate" || bad "agent exit status $?"
    grep -q "an event line longer than 16777216 bytes (no consumer takes it): skipped" "$TMP/agent.log" &&
        ok "a 17 MiB outbox line is skipped with an error" || bad "the long line: $(grep -i error "$TMP/agent.log" | head -3)"
    consume_until_idle "$SQLITE" || bad "consume exit status $?"
    dead=$(rmq_queue_count em.dead)
    [ "$dead" = 4 ] && ok "4 poison messages in em.dead" || bad "em.dead holds $dead"
    [ "$(rmq_queue_count em.backend)" = 0 ] && ok "em.backend is empty (nothing blocked)" || bad "queue stuck"
    grep -q 'unknown type' "$TMP/consume.log" && grep -q 'not valid UTF-8' "$TMP/consume.log" &&
        grep -q 'not a JSON object' "$TMP/consume.log" && ok "each reason logged" ||
        bad "reasons: $(grep em.dead "$TMP/consume.log")"
    grep -Eq "received $((n + 4)) \([0-9]+/s\), stored $n," "$TMP/consume.log" && ok "all $n good events stored" ||
        bad "counts: $(grep stopped: "$TMP/consume.log")"
    expect_store "$SQLITE" "$TMP/visit" "with poison"
    # The dead letters are the messages as they came, with the reason; replay sends them
    # back to em.events, where consume dead-letters them again (they are still bad).
    "$BACKEND" dead list --json --amqp "$URL" >"$TMP/dead.json" 2>"$TMP/dead.err" || bad "dead list exit status $?"
    python3 - "$TMP/dead.json" "$TMP/mixed.jsonl" <<'EOF' && ok "dead list: 4 letters, original bodies and reasons" || bad "dead list: $(cat "$TMP/dead.json")"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
lines = set(open(sys.argv[2], "rb").read().split(b"\n"))
assert len(rows) == 4, rows
for r in rows:
    assert bytes.fromhex(r["body_hex"]) in lines, r
    assert r["reason"] and r["routing_key"].startswith("krios1."), r
EOF
    [ "$(rmq_queue_count em.dead)" = 4 ] && ok "dead list leaves the letters in place" || bad "dead list took letters"
    "$BACKEND" dead replay --limit 3 --amqp "$URL" 2>"$TMP/replay.err" || bad "dead replay exit status $?"
    grep -q "3 dead letters sent back to em.events" "$TMP/replay.err" && ok "dead replay --limit 3" || bad "replay: $(cat "$TMP/replay.err")"
    [ "$(rmq_queue_count em.dead)" = 1 ] && ok "1 letter left" || bad "em.dead holds $(rmq_queue_count em.dead)"
    consume_until_idle "$SQLITE" "$TMP/consume2.log" || bad "consume exit status $?"
    [ "$(rmq_queue_count em.dead)" = 4 ] && ok "the replayed letters are refused again, with their reasons" || bad "em.dead holds $(rmq_queue_count em.dead)"
    "$BACKEND" dead list --json --amqp "$URL" >"$TMP/dead2.json" 2>/dev/null
    python3 - "$TMP/dead.json" "$TMP/dead2.json" <<'EOF' && ok "replayed and dead-lettered again: same bodies" || bad "bodies changed"
import json, sys
a = sorted(json.loads(l)["body_hex"] for l in open(sys.argv[1]))
b = sorted(json.loads(l)["body_hex"] for l in open(sys.argv[2]))
assert a == b
EOF
    expect_store "$SQLITE" "$TMP/visit" "after replay"
    ;;
state)
    synth "$TMP/visit" --sessions 1 --squares 3 --holes 4 --mics 2
    declare_queue
    publish_once "$TMP/visit" "$TMP/state" || bad "agent exit status $?"
    consume_until_idle "$SQLITE" || bad "consume exit status $?"
    expect_store "$SQLITE" "$TMP/visit" "first run"
    mic=$(find "$TMP/visit" -path '*Data/*.xml' | sort | head -1)
    # change_mic N: a new defocus in the first micrograph: a change the store must take.
    change_mic() { sed -i "0,/<Defocus>[^<]*</s//<Defocus>-$1e-06</" "$mic"; }
    : >"$TMP/agent.log"
    rm "$TMP/state/journal"
    change_mic 1.1
    publish_once "$TMP/visit" "$TMP/state" || bad "agent exit status $?"
    grep -q "the journal was deleted" "$TMP/agent.log" && ok "deleted journal: reported" || bad "deleted journal: not reported: $(grep -i error "$TMP/agent.log")"
    consume_until_idle "$SQLITE" || bad "consume exit status $?"
    expect_store "$SQLITE" "$TMP/visit" "deleted journal, then a change"
    # Truncated to its first line: seq must not go back, or the change below is "stale".
    head -1 "$TMP/state/journal" >"$TMP/j" && cat "$TMP/j" >"$TMP/state/journal"
    change_mic 2.2
    publish_once "$TMP/visit" "$TMP/state" || bad "agent exit status $?"
    consume_until_idle "$SQLITE" || bad "consume exit status $?"
    expect_store "$SQLITE" "$TMP/visit" "truncated journal, then a change"
    : >"$TMP/agent.log"
    printf 'garbage\n' >"$TMP/state/journal"
    change_mic 3.3
    publish_once "$TMP/visit" "$TMP/state" || bad "agent exit status $?"
    grep -q "journal is damaged" "$TMP/agent.log" && ls "$TMP/state"/journal.damaged-* >/dev/null 2>&1 &&
        ok "overwritten journal: reported and kept aside" || bad "overwritten journal: $(grep -i error "$TMP/agent.log")"
    consume_until_idle "$SQLITE" || bad "consume exit status $?"
    expect_store "$SQLITE" "$TMP/visit" "overwritten journal, then a change"
    # A confirmed mark far ahead: the outbox would skip everything it holds.
    rmq_stop
    change_mic 4.4
    publish_once "$TMP/visit" "$TMP/state" --drain 1
    echo 99999999999999999 >"$TMP/state/outbox/confirmed"
    rmq_start "$TMP/rmq" "$PORT" || die "the broker did not restart"
    : >"$TMP/agent.log"
    publish_once "$TMP/visit" "$TMP/state" || bad "agent exit status $?"
    grep -q "confirmed mark (seq 99999999999999999) is ahead" "$TMP/agent.log" && ok "confirmed mark ahead: reported" ||
        bad "confirmed ahead: not reported: $(grep -i error "$TMP/agent.log")"
    consume_until_idle "$SQLITE" || bad "consume exit status $?"
    expect_store "$SQLITE" "$TMP/visit" "confirmed mark ahead"
    # A segment deleted while its events wait for the broker.
    rmq_stop
    change_mic 5.5
    publish_once "$TMP/visit" "$TMP/state" --drain 1
    ls "$TMP/state/outbox/"*.jsonl >/dev/null 2>&1 && ok "events wait in a segment" || bad "no segment waiting"
    rm -f "$TMP/state/outbox/"*.jsonl
    rmq_start "$TMP/rmq" "$PORT" || die "the broker did not restart"
    : >"$TMP/agent.log"
    publish_once "$TMP/visit" "$TMP/state" || bad "agent exit status $?"
    grep -q "a segment or the outbox was deleted" "$TMP/agent.log" && ok "deleted segment: reported" ||
        bad "deleted segment: not reported: $(grep -i error "$TMP/agent.log")"
    consume_until_idle "$SQLITE" || bad "consume exit status $?"
    expect_store "$SQLITE" "$TMP/visit" "deleted outbox segment"
    ;;
storefull)
    [ "$(id -u)" -eq 0 ] || { echo "SKIP: mounting a small tmpfs needs root"; exit 77; }
    synth "$TMP/visit" --sessions 2 --squares 8 --holes 12 --mics 5
    declare_queue
    publish_once "$TMP/visit" "$TMP/state" || bad "agent exit status $?"
    total=$(rmq_queue_count em.backend)
    mkdir -p "$TMP/small"
    mount -t tmpfs -o size=1m tmpfs "$TMP/small" || { echo "SKIP: cannot mount a tmpfs"; exit 77; }
    SMALL="sqlite:$TMP/small/store.db"
    timeout 300 "$BACKEND" consume --amqp "$URL" --store "$SMALL" --idle-exit 5 -v \
        2>>"$TMP/consume.log" &
    CPID=$!
    PIDS+=("$CPID")
    for _ in $(seq 300); do grep -q "full" "$TMP/consume.log" && break; sleep 0.1; done
    grep -q "database or disk is full" "$TMP/consume.log" && ok "the disk fills up ($total events queued)" ||
        bad "the disk never filled: $(tail -3 "$TMP/consume.log")"
    sleep 3 # several attempts while full
    [ "$(rmq_queue_count em.dead)" = 0 ] && ok "nothing dead-lettered while the disk is full" ||
        bad "$(rmq_queue_count em.dead) good events dead-lettered"
    mount -o remount,size=64m "$TMP/small"
    wait "$CPID" || bad "consume exit status $?"
    n_full=$(grep -c "disk is full; retrying" "$TMP/consume.log")
    [ "$n_full" -le 2 ] && ok "the failure logged once ($n_full lines), not per retry" || bad "$n_full log lines for one failure"
    grep -q "storing again after" "$TMP/consume.log" && ok "recovery logged" || bad "no recovery line"
    [ "$(rmq_queue_count em.dead)" = 0 ] && ok "em.dead is empty" || bad "em.dead holds $(rmq_queue_count em.dead)"
    grep -q "sent to em.dead" "$TMP/consume.log" && bad "consume says it dead-lettered events it did not" ||
        ok "no false 'sent to em.dead' in the log"
    expect_store "$SMALL" "$TMP/visit" "after the disk was full"
    ;;
pgcrash)
    pg_start "$TMP/pg" || die "PostgreSQL did not start"
    synth "$TMP/visit" --sessions 2 --squares 8 --holes 12 --mics 5
    declare_queue
    publish_once "$TMP/visit" "$TMP/state" || bad "agent exit status $?"
    timeout 300 "$BACKEND" consume --amqp "$URL" --store "$PG_URL" --batch 50 --prefetch 100 \
        --idle-exit 5 -v 2>>"$TMP/consume.log" &
    CPID=$!
    PIDS+=("$CPID")
    for _ in $(seq 200); do
        n=$(psql "$PG_URL" -qtAc 'select count(*) from micrograph' 2>/dev/null || echo 0)
        [ "${n:-0}" -gt 0 ] && break
        sleep 0.02
    done
    pg_crash
    ok "PostgreSQL crashed after $n micrographs were stored"
    sleep 2
    [ "$(rmq_queue_count em.dead)" = 0 ] && ok "nothing dead-lettered while the store is down" ||
        bad "$(rmq_queue_count em.dead) good events dead-lettered"
    pg_restart || die "PostgreSQL did not restart"
    wait "$CPID" || bad "consume exit status $?"
    [ "$(rmq_queue_count em.dead)" = 0 ] && ok "em.dead is empty" || bad "em.dead holds $(rmq_queue_count em.dead)"
    grep -q "storing again after" "$TMP/consume.log" && ok "recovery logged" || bad "no recovery line: $(grep -i warn "$TMP/consume.log" | head -3)"
    expect_store "$PG_URL" "$TMP/visit" "after a PostgreSQL crash"
    ;;
pglocked)
    pg_start "$TMP/pg" || die "PostgreSQL did not start"
    psql "$PG_URL" -qc "ALTER ROLE em SET lock_timeout = '200ms'" || die "psql"
    "$BACKEND" ingest --store "$PG_URL" /dev/null >/dev/null 2>&1 || die "migrations"
    synth "$TMP/visit" --sessions 2 --squares 8 --holes 12 --mics 5
    declare_queue
    publish_once "$TMP/visit" "$TMP/state" || bad "agent exit status $?"
    psql "$PG_URL" -qc "BEGIN; LOCK TABLE gridsquare IN EXCLUSIVE MODE; SELECT pg_sleep(4); COMMIT;" \
        >/dev/null 2>&1 &
    LPID=$!
    sleep 0.5
    consume_until_idle "$PG_URL" "$TMP/consume.log" --batch 100 || bad "consume exit status $?"
    wait "$LPID"
    grep -q "lock timeout" "$TMP/consume.log" && ok "the lock timed out while consuming" || bad "no lock timeout seen"
    [ "$(rmq_queue_count em.dead)" = 0 ] && ok "nothing dead-lettered" || bad "em.dead holds $(rmq_queue_count em.dead)"
    grep -q "storing again after" "$TMP/consume.log" && ok "recovery logged" || bad "no recovery line"
    expect_store "$PG_URL" "$TMP/visit" "after a locked table"
    ;;
tls)
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$TLS_PORT") 2>/dev/null && break; sleep 0.1; done
    declare_queue
    synth "$TMP/visit" --sessions 1 --squares 2 --holes 3 --mics 2
    TLS_URL="amqps://guest:guest@localhost:$TLS_PORT/"
    timeout 60 "$AGENT" watch --once -v --agent krios1 --state-dir "$TMP/state" --amqp "$TLS_URL" \
        --amqp-ca "$C/other.pem" --drain 2 "$TMP/visit" 2>"$TMP/wrongca.log"
    grep -qi 'certificate\|verify\|handshake\|ssl' "$TMP/wrongca.log" &&
        ok "a broker certificate from another CA is refused: $(grep -m1 -o 'cannot connect.*' "$TMP/wrongca.log" | head -c 120)" ||
        bad "wrong CA: $(grep warning "$TMP/wrongca.log" | head -2)"
    [ "$(outbox_waiting "$TMP/state")" -gt 0 ] && ok "events kept in the outbox" || bad "events lost"
    timeout 60 "$AGENT" watch --once -v --agent krios1 --state-dir "$TMP/state" --amqp "$TLS_URL" \
        --amqp-ca "$C/ca.pem" --drain 30 "$TMP/visit" 2>"$TMP/tls.log" || bad "agent exit status $?"
    grep -q 'connected to amqps://guest:\*\*\*@localhost' "$TMP/tls.log" && ok "published over TLS" ||
        bad "TLS: $(grep -m2 warning "$TMP/tls.log")"
    consume_until_idle "$SQLITE" "$TMP/consume.log" --amqp "$TLS_URL" --amqp-ca "$C/ca.pem" ||
        bad "consume exit status $?"
    grep -q "consuming em.backend from amqps" "$TMP/consume.log" && ok "consumed over TLS" ||
        bad "consume over TLS: $(grep -m2 warning "$TMP/consume.log")"
    expect_store "$SQLITE" "$TMP/visit" "TLS"
    ;;
*)
    echo "unknown case $CASE"
    exit 2
    ;;
esac
[ "$failures" -eq 0 ] || exit 1
echo "bus $CASE: all good"
