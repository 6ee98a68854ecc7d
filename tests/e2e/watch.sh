#!/usr/bin/env bash
# End-to-end tests of `em-agent watch` with real files, real timing and real processes.
#
#   tests/e2e/watch.sh EM_AGENT [CASE...]      cases: before midway after kill killsnap
#                                              restart overflow poll ops grow burst
#                                              (default: all)
#
# A session is written into a temp dir the way EPU does (epu_writer.py: chunked writes,
# torn and rewritten .dm files, holes before their .dm, an aborted session, a new
# Images-Disc2) while the agent runs; then the folded event stream must equal
# `em-agent scan` of the final tree, with no event repeated. The source is the authored
# visit-mini plus, when ../shared/testdata is present, a session built from real files.
set -u
AGENT=$(realpath "$1")
shift
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SHARED="$ROOT/../shared/testdata/epu"
FOLD="python3 $HERE/fold.py"
WRITER="python3 $HERE/epu_writer.py"
TMP=$(mktemp -d)
PIDS=()
failures=0
checks=0

cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    [ -n "${OLD_QUEUE:-}" ] && echo "$OLD_QUEUE" >/proc/sys/fs/inotify/max_queued_events
    if [ "$failures" -gt 0 ] && [ -n "${KEEP_FAILED:-}" ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

ok() { checks=$((checks + 1)); echo "ok   $*"; }
bad() { checks=$((checks + 1)); failures=$((failures + 1)); echo "FAIL $*"; }

# The source visit.
SRC="$TMP/src"
cp -r "$ROOT/testdata/visit-mini" "$SRC"
if [ -d "$SHARED/nt32457-6" ]; then
    python3 "$ROOT/bench/gen_session.py" "$SRC/real" --squares 5 --holes 8 --mics 3 >/dev/null ||
        bad "gen_session.py"
else
    echo "note: $SHARED absent; using the authored visit only"
fi

start_agent() { # NAME ARGS... ; sets APID
    local name=$1
    shift
    "$AGENT" watch --agent e2e --state-dir "$TMP/$name.state" -o "$TMP/$name.jsonl" "$@" \
        2>>"$TMP/$name.log" &
    APID=$!
    PIDS+=("$APID")
}

start_agent_ready() { # NAME DIR [ARGS...]: start_agent with -v, then waits for its first log line,
    # which says the run has begun (and taken SIGTERM); before that a loaded machine may
    # still be starting the process itself
    local lines
    lines=$(cat "$TMP/$1.log" 2>/dev/null | wc -l)
    start_agent "$1" "$2" -v "${@:3}"
    for _ in $(seq 250); do
        [ "$(wc -l <"$TMP/$1.log")" -gt "$lines" ] && break
        sleep 0.02
    done
}

# Waits until the events fold to scan's entities for DEST (or TIMEOUT seconds pass).
wait_equal() { # NAME DEST TIMEOUT
    local name=$1 dest=$2 limit=$3 i=0
    "$AGENT" scan --agent e2e "$dest" >"$TMP/$name.scan" 2>/dev/null
    while [ "$i" -lt $((limit * 10)) ]; do
        if [ -s "$TMP/$name.jsonl" ] && $FOLD compare "$TMP/$name.scan" "$TMP/$name.jsonl" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# Stops the agent with SIGTERM, expects exit 0, then checks the stream.
finish() { # NAME DEST
    local name=$1 dest=$2
    if wait_equal "$name" "$dest" 60; then ok "$name: events fold to scan's entities"; else
        bad "$name: events differ from scan"
        $FOLD compare "$TMP/$name.scan" "$TMP/$name.jsonl" | tail -8
        tail -5 "$TMP/$name.log"
    fi
    kill -TERM "$APID"
    wait "$APID"
    local rc=$?
    [ "$rc" -eq 0 ] && ok "$name: SIGTERM exits 0" || bad "$name: SIGTERM gave exit $rc"
    if $FOLD check "$TMP/$name.jsonl" >"$TMP/$name.check"; then
        ok "$name: no event repeated, seq increasing ($(tail -1 "$TMP/$name.check" | cut -d: -f2))"
    else
        bad "$name: stream check"
        cat "$TMP/$name.check"
    fi
    $FOLD compare "$TMP/$name.scan" "$TMP/$name.jsonl" >/dev/null &&
        ok "$name: final entities equal scan after stop" || bad "$name: final entities differ"
}

case_before() { # agent first, then EPU writes
    local d="$TMP/before.d"
    mkdir -p "$d"
    start_agent before "$d"
    sleep 0.3
    $WRITER "$SRC" "$d" --seed 1 --disc2-from 2 >/dev/null || bad "writer"
    finish before "$d"
}

case_midway() { # EPU writes, the agent joins halfway
    local d="$TMP/midway.d"
    mkdir -p "$d"
    $WRITER "$SRC" "$d" --seed 2 --pace 0.005 --late-session >/dev/null &
    local wp=$!
    sleep 0.8
    start_agent midway "$d"
    wait "$wp" || bad "writer"
    finish midway "$d"
}

case_after() { # EPU has finished before the agent starts
    local d="$TMP/after.d"
    mkdir -p "$d"
    $WRITER "$SRC" "$d" --seed 3 >/dev/null || bad "writer"
    start_agent after "$d"
    finish after "$d"
    # A restart on an unchanged tree emits nothing but its heartbeats (type agent).
    local before
    before=$(grep -vc '"type":"agent"' "$TMP/after.jsonl")
    start_agent after "$d"
    sleep 1.5
    kill -TERM "$APID"
    wait "$APID"
    [ "$(grep -vc '"type":"agent"' "$TMP/after.jsonl")" -eq "$before" ] &&
        ok "after: restart on an unchanged tree emits nothing (but heartbeats)" ||
        bad "after: restart emitted $(($(grep -vc '"type":"agent"' "$TMP/after.jsonl") - before)) events"
    tail -1 "$TMP/after.jsonl" | grep -q '"type":"agent".*"state":"stopped"' &&
        ok "after: the last event is the heartbeat that says stopped" || bad "after: last event: $(tail -1 "$TMP/after.jsonl" | cut -c1-200)"
}

case_kill() { # SIGKILL at random points while EPU writes, restarted each time
    local d="$TMP/kill.d" n=${KILLS:-25}
    mkdir -p "$d"
    $WRITER "$SRC" "$d" --seed 4 --pace 0.01 --disc2-from 3 >/dev/null &
    local wp=$!
    for i in $(seq 1 "$n"); do
        start_agent kill "$d" -v
        sleep "0.$((RANDOM % 40 + 5))"
        kill -9 "$APID"
        wait "$APID" 2>/dev/null
    done
    wait "$wp" || bad "writer"
    start_agent kill "$d"
    finish kill "$d"
    echo "     ($n kills; $(grep -c 'torn last line' "$TMP/kill.log") torn output lines cut," \
        "$(grep -c 're-sending' "$TMP/kill.log") restarts re-sent events)"
}

case_killsnap() { # SIGKILL while EPU writes, with snapshots made as it goes: each start
    # resumes from the snapshot the killed run left and reads only what came after it
    local d="$TMP/killsnap.d" n=${KILLS_SNAP:-6}
    mkdir -p "$d"
    $WRITER "$SRC" "$d" --seed 6 --pace 0.02 --disc2-from 3 >/dev/null &
    local wp=$!
    for i in $(seq 1 "$n"); do
        start_agent_ready killsnap "$d" --snapshot-every 0.3
        sleep "1.$((RANDOM % 8))"
        kill -9 "$APID"
        wait "$APID" 2>/dev/null
    done
    wait "$wp" || bad "writer"
    start_agent killsnap "$d" -v --snapshot-every 0.3
    finish killsnap "$d"
    local resumed
    resumed=$(grep -c 'state restored from .*files processed after it .* are read again' \
        "$TMP/killsnap.log")
    [ "$resumed" -ge 1 ] &&
        ok "killsnap: $resumed of $n starts after a SIGKILL resumed from the killed run's snapshot" ||
        bad "killsnap: no start after a SIGKILL used a snapshot: $(grep -E 'snapshot|restored' "$TMP/killsnap.log" | head -5)"
    # Such a start reads only the files after the snapshot, not the tree.
    local partial
    partial=$(grep -A3 'are read again' "$TMP/killsnap.log" |
        grep -c 'initial walk: [0-9]* files parsed, [1-9][0-9]* unchanged')
    [ "$partial" -ge 1 ] && ok "killsnap: $partial such starts read only what came after it" ||
        bad "killsnap: starts after a SIGKILL read the tree: $(grep 'initial walk' "$TMP/killsnap.log" | head -5)"
    # Killed at once after a start: the snapshot read is not taken from the next start.
    for i in $(seq 1 3); do
        start_agent_ready killsnap "$d" --snapshot-every 0.3
        sleep "0.0$((RANDOM % 8))"
        kill -9 "$APID"
        wait "$APID" 2>/dev/null
    done
    local log
    log=$("$AGENT" watch --once -v --agent e2e --state-dir "$TMP/killsnap.state" \
        -o "$TMP/killsnap.jsonl" "$d" 2>&1)
    echo "$log" | grep -q 'state restored from' &&
        ok "killsnap: after early SIGKILLs the snapshot is still used" ||
        bad "killsnap: after early SIGKILLs: $(echo "$log" | grep -E 'snapshot|restored')"
    $FOLD check "$TMP/killsnap.jsonl" >/dev/null &&
        $FOLD compare "$TMP/killsnap.scan" "$TMP/killsnap.jsonl" >/dev/null &&
        ok "killsnap: still no event repeated, entities equal scan" ||
        bad "killsnap: after the early SIGKILLs the stream is wrong"
    # A snapshot that cannot be written (its temporary name taken by a directory): said,
    # tried again, and the last good one still serves after a SIGKILL.
    local st="$TMP/killsnap.state" snap mic
    snap=$(ls "$st"/model-* | grep -v '\.mark$' | head -1)
    mkdir "$snap.tmp" && touch "$snap.tmp/keep" # not empty: no remove() takes it away
    start_agent_ready killsnap "$d" --snapshot-every 0.3
    sleep 0.5
    mic=$(find "$d" -name 'FoilHole_*_Data_*.xml' | head -1)
    perl -0pi -e 's#<Defocus>[^<]*</Defocus>#<Defocus>-3.3E-06</Defocus>#' "$mic"
    sleep 1.5
    kill -9 "$APID"
    wait "$APID" 2>/dev/null
    grep -q 'no snapshot written (is a directory); tried again' "$TMP/killsnap.log" &&
        ok "killsnap: a snapshot that cannot be written is reported and tried again" ||
        bad "killsnap: unwritable snapshot: $(grep -i snapshot "$TMP/killsnap.log" | tail -3)"
    rm -r "$snap.tmp"
    log=$("$AGENT" watch --once -v --agent e2e --state-dir "$st" -o "$TMP/killsnap.jsonl" "$d" 2>&1)
    echo "$log" | grep -q 'state restored from .*files processed after it' &&
        ok "killsnap: the last good snapshot serves; the files after it are read again" ||
        bad "killsnap: after the failed snapshot: $(echo "$log" | grep -E 'snapshot|restored|initial walk')"
    "$AGENT" scan --agent e2e "$d" >"$TMP/killsnap.scan" 2>/dev/null
    $FOLD check "$TMP/killsnap.jsonl" >/dev/null &&
        $FOLD compare "$TMP/killsnap.scan" "$TMP/killsnap.jsonl" >/dev/null &&
        grep -c -- '-3.3e-06' "$TMP/killsnap.jsonl" | grep -qx 1 &&
        ok "killsnap: the change made then was emitted once; entities equal scan" ||
        bad "killsnap: after the failed snapshot the stream is wrong"
}

case_restart() { # SIGTERM and restart while EPU writes: restarts resume from the snapshot
    local d="$TMP/restart.d" n=${RESTARTS:-6}
    mkdir -p "$d"
    $WRITER "$SRC" "$d" --seed 5 --pace 0.01 --disc2-from 3 >/dev/null &
    local wp=$!
    for i in $(seq 1 "$n"); do
        start_agent_ready restart "$d"
        sleep "0.$((RANDOM % 60 + 30))"
        kill -TERM "$APID"
        wait "$APID" || bad "restart: SIGTERM during the session gave exit $?"
        sleep "0.$((RANDOM % 30 + 5))" # EPU writes on while the agent is down
    done
    wait "$wp" || bad "writer"
    start_agent restart "$d" -v
    finish restart "$d"
    local restored
    restored=$(grep -c 'state restored from' "$TMP/restart.log")
    [ "$restored" -ge 1 ] && ok "restart: $restored of $((n + 1)) starts resumed from the snapshot" ||
        bad "restart: no start used the snapshot"
    # On the unchanged tree: nothing read, nothing emitted.
    local before st="$TMP/restart.state"
    before=$(wc -l <"$TMP/restart.jsonl")
    once() { "$AGENT" watch --once -v --agent e2e --state-dir "$st" -o "$TMP/restart.jsonl" "$d" 2>&1; }
    local log
    log=$(once)
    echo "$log" | grep -q 'initial walk: 0 files parsed, [1-9][0-9]* unchanged' &&
        ok "restart: unchanged tree: no file read again" ||
        bad "restart: unchanged tree read again: $(echo "$log" | grep 'initial walk')"
    # A damaged snapshot, or a session file changed while stopped: the tree is read again.
    local snap
    snap=$(ls "$st"/model-* 2>/dev/null | head -1)
    if [ -n "$snap" ]; then
        head -c $(($(stat -c %s "$snap") / 2)) "$snap" >"$snap.cut" && mv "$snap.cut" "$snap"
        log=$(once)
        echo "$log" | grep -q 'not used (document is incomplete)' &&
            ok "restart: a cut snapshot is not used" || bad "restart: cut snapshot: $log"
    else
        bad "restart: no snapshot written at the clean stop"
    fi
    # EPU rewrites EpuSession.dm all session long: one rewritten while the agent is down
    # does not make the snapshot unusable; it alone is read again.
    local sdm
    sdm=$(find "$d" -name EpuSession.dm | head -1)
    once >/dev/null # the cut snapshot above made this a full read: a snapshot again
    touch "$sdm"
    log=$(once)
    echo "$log" | grep -q 'state restored from' &&
        echo "$log" | grep -q 'initial walk: 1 files parsed' &&
        ok "restart: a session file rewritten while stopped: snapshot used, only it read" ||
        bad "restart: rewritten session file: $(echo "$log" | grep -E 'snapshot|restored|initial walk')"
    [ "$(wc -l <"$TMP/restart.jsonl")" -eq "$before" ] &&
        ok "restart: nothing emitted again by these restarts" ||
        bad "restart: $(($(wc -l <"$TMP/restart.jsonl") - before)) events emitted again"
    # Changed while down: the session's event, once; then its id changed while down: the
    # old id's entities deleted, all again under the new one, from the snapshot (a tree
    # read whole instead left the old id's entities standing: they were never deleted).
    perl -pi -e 's#<AutoloaderSlot>\d+</AutoloaderSlot>#<AutoloaderSlot>7</AutoloaderSlot>#' "$sdm"
    log=$(once)
    echo "$log" | grep -q 'state restored from' &&
        [ "$(wc -l <"$TMP/restart.jsonl")" -eq $((before + 1)) ] &&
        tail -1 "$TMP/restart.jsonl" | grep -q '"type":"session".*"autoloader_slot":7' &&
        ok "restart: a session file changed while stopped: its one event, from the snapshot" ||
        bad "restart: changed session file: $(echo "$log" | grep -E 'snapshot|restored|initial walk'), $(tail -n +$((before + 1)) "$TMP/restart.jsonl" | cut -c1-160)"
    perl -pi -e 's#(<EpuSessionXml[^>]*><Id [^>]*>)(\d+)<#${1}88$2<#' "$sdm"
    log=$(once)
    "$AGENT" scan --agent e2e "$d" >"$TMP/restart.scan3" 2>/dev/null
    echo "$log" | grep -q 'state restored from' &&
        echo "$log" | grep -q 'session id changed from' &&
        grep -q '"op":"delete"' <(tail -n +$((before + 2)) "$TMP/restart.jsonl") &&
        $FOLD check "$TMP/restart.jsonl" >/dev/null &&
        $FOLD compare "$TMP/restart.scan3" "$TMP/restart.jsonl" >/dev/null &&
        ok "restart: a session id changed while stopped: old entities deleted, entities equal scan" ||
        bad "restart: session id changed while stopped: $(echo "$log" | grep -E 'snapshot|restored|initial walk|id changed'); $($FOLD compare "$TMP/restart.scan3" "$TMP/restart.jsonl" 2>&1 | tail -3)"
    # An atlas changed while down (a square moved on it): the square's event, from the
    # snapshot.
    local adm
    adm=$(find "$d" -name Atlas.dm | head -1)
    perl -pi -e 's#<c:X>-0.00011<#<c:X>-0.00021<#' "$adm"
    before=$(wc -l <"$TMP/restart.jsonl")
    log=$(once)
    "$AGENT" scan --agent e2e "$d" >"$TMP/restart.scan3" 2>/dev/null
    echo "$log" | grep -q 'state restored from' &&
        tail -n +$((before + 1)) "$TMP/restart.jsonl" | grep -q '"type":"gridsquare"' &&
        $FOLD compare "$TMP/restart.scan3" "$TMP/restart.jsonl" >/dev/null &&
        ok "restart: an atlas changed while stopped: its square's event, from the snapshot" ||
        bad "restart: atlas changed while stopped: $(echo "$log" | grep -E 'snapshot|restored|initial walk')"
    before=$(wc -l <"$TMP/restart.jsonl")
    # The session file being written as the agent starts: the restore waits for it. A
    # SIGTERM then stops the start at once and leaves the snapshot for the next one (which
    # finds the file whole and reads nothing); it used to be given up, and a stop before
    # the tree was read again wrote an empty snapshot the next start trusted.
    cp -p "$sdm" "$TMP/restart.dm.keep"
    head -c 300 "$TMP/restart.dm.keep" >"$sdm"
    start_agent_ready restart "$d"
    for _ in $(seq 250); do
        grep -q 'the snapshot waits up to' "$TMP/restart.log" && break
        sleep 0.02
    done
    kill -TERM "$APID"
    wait "$APID"
    local rc=$?
    cp -p "$TMP/restart.dm.keep" "$sdm"
    before=$(wc -l <"$TMP/restart.jsonl") # its agent events (heartbeat, stopping)
    [ "$rc" -eq 0 ] && grep -q 'not restored: stopping' "$TMP/restart.log" &&
        ok "restart: a SIGTERM while the restore waits for the session file stops it" ||
        bad "restart: SIGTERM while waiting: exit $rc, $(grep -E 'snapshot|restor' "$TMP/restart.log" | tail -3)"
    log=$(once)
    echo "$log" | grep -q 'state restored from' &&
        echo "$log" | grep -Eq 'initial walk: 0 files parsed, [1-9][0-9]* unchanged .*; [1-9][0-9]* sessions' &&
        [ "$(wc -l <"$TMP/restart.jsonl")" -eq "$before" ] &&
        ok "restart: the next start uses the snapshot kept, reads and emits nothing" ||
        bad "restart: after the stop while waiting: $(echo "$log" | grep -E 'snapshot|restored|initial walk')"
    # A micrograph changed while stopped is merged with the restored state: its exposure id
    # comes from its square's .dm, which this run does not read.
    once >/dev/null # a clean run after the full read leaves a snapshot again
    local mic
    mic=$(find "$d" -path '*GridSquare_1001/Data/FoilHole_2001_Data_4001_1_20250101_102100.xml')
    perl -0pi -e 's#<Defocus>[^<]*</Defocus>#<Defocus>-9.9E-06</Defocus>#' "$mic"
    log=$(once)
    echo "$log" | grep -q 'initial walk: 1 files parsed' &&
        ok "restart: only the changed file is read" ||
        bad "restart: changed file: $(echo "$log" | grep 'initial walk')"
    "$AGENT" scan --agent e2e "$d" >"$TMP/restart.scan2" 2>/dev/null
    [ "$(wc -l <"$TMP/restart.jsonl")" -eq $((before + 1)) ] &&
        grep -c '"exposure_id":3001' <(tail -1 "$TMP/restart.jsonl") >/dev/null &&
        ok "restart: one event, with the exposure id of the restored .dm" ||
        bad "restart: after the change: $(tail -n +$((before + 1)) "$TMP/restart.jsonl" | cut -c1-200)"
    $FOLD compare "$TMP/restart.scan2" "$TMP/restart.jsonl" >/dev/null &&
        ok "restart: final entities still equal scan" || bad "restart: final entities differ"
    # A directory of many files: a restart stats them on two threads and trusts the
    # unchanged ones there (watch.c, stat_range). 40 more micrographs beside the one above;
    # after a run that reads them, one of them changes while stopped: only it is read.
    local data i
    data=$(dirname "$mic")
    for i in $(seq 10 49); do
        sed -e "s#<uniqueID>[^<]*</uniqueID>#<uniqueID>33333333-0000-4000-8000-0000000040$i</uniqueID>#" \
            -e "s#<Defocus>[^<]*</Defocus>#<Defocus>-1.${i}E-06</Defocus>#" "$mic" \
            >"$data/FoilHole_2001_Data_4001_${i}_20250101_1030${i}.xml"
    done
    log=$(once)
    echo "$log" | grep -q 'initial walk: 40 files parsed' &&
        ok "restart: 40 new files in a known directory are read" ||
        bad "restart: new files: $(echo "$log" | grep 'initial walk')"
    before=$(wc -l <"$TMP/restart.jsonl")
    perl -0pi -e 's#<Defocus>[^<]*</Defocus>#<Defocus>-8.8E-06</Defocus>#' \
        "$data/FoilHole_2001_Data_4001_33_20250101_103033.xml"
    log=$(once)
    echo "$log" | grep -q 'initial walk: 1 files parsed' &&
        ok "restart: in a directory of 42 files, only the changed one is read" ||
        bad "restart: changed file among many: $(echo "$log" | grep 'initial walk')"
    [ "$(wc -l <"$TMP/restart.jsonl")" -eq $((before + 1)) ] &&
        grep -q '"defocus_m":-8.8e-06' <(tail -1 "$TMP/restart.jsonl") &&
        ok "restart: one event for it, with its new defocus" ||
        bad "restart: after the change among many: $(tail -n +$((before + 1)) "$TMP/restart.jsonl" | cut -c1-200)"
    "$AGENT" scan --agent e2e "$d" >"$TMP/restart.scan3" 2>/dev/null
    $FOLD compare "$TMP/restart.scan3" "$TMP/restart.jsonl" >/dev/null &&
        ok "restart: entities equal scan after the many-file changes" ||
        bad "restart: entities differ after the many-file changes"
    # SIGTERM early in a restart, while the snapshot is being read on its own thread: the
    # stop waits for it before it drains, so nothing is emitted again (it once flushed a
    # half-restored model; ThreadSanitizer saw the race) and every start exits 0.
    before=$(wc -l <"$TMP/restart.jsonl")
    local early=0 codes="" rc
    for i in $(seq 1 6); do
        start_agent_ready restart "$d"
        sleep "0.0$((RANDOM % 5))"
        kill -TERM "$APID"
        wait "$APID"
        rc=$?
        codes="$codes $rc"
        [ "$rc" -eq 0 ] || early=$((early + 1))
    done
    [ "$early" -eq 0 ] && ok "restart: 6 early SIGTERMs: each exits 0" || {
        bad "restart: $early of 6 early SIGTERMs did not exit 0 (exit statuses:$codes)"
        tail -40 "$TMP/restart.log"
    }
    [ "$(tail -n +$((before + 1)) "$TMP/restart.jsonl" | grep -vc '"type":"agent"')" -eq 0 ] &&
        ok "restart: nothing but heartbeats emitted by them" ||
        bad "restart: early SIGTERMs emitted $(tail -n +$((before + 1)) "$TMP/restart.jsonl" | grep -vc '"type":"agent"') events"
    # SIGKILL early in restarts, while the snapshot is read or the tree walked: the
    # snapshot stays usable (a killed run leaves it and its mark as they were), so the
    # next start resumes from it, emits nothing the journal says was sent, and the
    # entities stay scan's.
    for i in $(seq 1 4); do
        start_agent_ready restart "$d"
        sleep "0.0$((RANDOM % 8))"
        kill -9 "$APID"
        wait "$APID" 2>/dev/null
    done
    log=$(once)
    echo "$log" | grep -q 'state restored from' &&
        ok "restart: after SIGKILLs during restarts the snapshot is used ($(echo "$log" |
            grep -o 'initial walk: [0-9]* files parsed'))" ||
        bad "restart: after SIGKILLs: $(echo "$log" | grep -E 'snapshot|restored|initial walk')"
    [ "$(tail -n +$((before + 1)) "$TMP/restart.jsonl" | grep -vc '"type":"agent"')" -eq 0 ] &&
        ok "restart: SIGKILLs during restarts: nothing emitted again" ||
        bad "restart: after SIGKILLs $(tail -n +$((before + 1)) "$TMP/restart.jsonl" | grep -vc '"type":"agent"') events emitted again"
    $FOLD compare "$TMP/restart.scan3" "$TMP/restart.jsonl" >/dev/null &&
        ok "restart: entities equal scan after the SIGKILLs" ||
        bad "restart: entities differ after the SIGKILLs"
    # A snapshot of an older format (an upgrade): status does not count it usable, and the
    # start says why it reads the tree.
    local snapf
    snapf=$(ls "$st"/model-* | grep -v '\.mark$' | head -1)
    sed -i '1s/^em-agent model [0-9]*/em-agent model 2/' "$snapf"
    "$AGENT" status --state-dir "$st" 2>&1 | grep -q 'snapshot: *none usable' &&
        ok "restart: status does not count an older format's snapshot usable" ||
        bad "restart: status on an older snapshot: $("$AGENT" status --state-dir "$st" 2>&1 | grep -i snapshot)"
    log=$(once)
    echo "$log" | grep -q 'not used (an older em-agent wrote it, in another format)' &&
        ok "restart: an older format's snapshot is not used, and the log says why" ||
        bad "restart: older snapshot: $(echo "$log" | grep -E 'snapshot|restored')"
}

case_overflow() { # a tiny inotify queue forces overflows; rescans must lose nothing
    local q=/proc/sys/fs/inotify/max_queued_events
    if ! [ -w "$q" ]; then
        echo "skip overflow: $q is not writable here (needs root)"
        return
    fi
    local d="$TMP/overflow.d"
    mkdir -p "$d"
    OLD_QUEUE=$(cat "$q")
    echo 4 >"$q"
    start_agent overflow "$d" -v
    sleep 0.3
    echo "$OLD_QUEUE" >"$q"
    OLD_QUEUE=
    $WRITER "$SRC" "$d" --seed 5 --disc2-from 1 >/dev/null || bad "writer"
    finish overflow "$d"
    local n
    n=$(grep -c 'queue overflowed' "$TMP/overflow.log")
    [ "$n" -gt 0 ] && ok "overflow: $n overflows seen and rescanned" || bad "overflow: no overflow happened"
}

case_poll() { # --poll for network shares
    local d="$TMP/poll.d"
    mkdir -p "$d"
    start_agent poll "$d" --poll 0.2
    sleep 0.3
    $WRITER "$SRC" "$d" --seed 6 --disc2-from 2 >/dev/null || bad "writer"
    finish poll "$d"
}

case_ops() { # one agent per state dir, exit codes, SIGHUP, config file and environment
    local d="$TMP/ops.d"
    mkdir -p "$d"
    start_agent ops "$d" --log-file "$TMP/ops.logfile" -v
    local first=$APID
    sleep 0.5
    "$AGENT" watch --agent e2e --state-dir "$TMP/ops.state" -o "$TMP/ops2.jsonl" "$d" 2>"$TMP/ops2.err"
    local rc=$?
    [ "$rc" -eq 2 ] && grep -q 'in use by another em-agent' "$TMP/ops2.err" &&
        ok "ops: a second agent on the same state dir exits 2" || bad "ops: second agent exit $rc"
    mv "$TMP/ops.logfile" "$TMP/ops.logfile.1"
    kill -HUP "$first"
    sleep 0.3
    $WRITER "$ROOT/testdata/visit-mini" "$d" >/dev/null
    sleep 0.5
    [ -s "$TMP/ops.logfile" ] && ok "ops: SIGHUP reopens the log file" || bad "ops: no new log file after SIGHUP"
    APID=$first
    finish ops "$d"
    "$AGENT" watch --state-dir "$TMP/x.state" "$TMP/missing" 2>"$TMP/ops3.err"
    rc=$?
    [ "$rc" -eq 2 ] && grep -q 'not a directory' "$TMP/ops3.err" &&
        ok "ops: a missing directory exits 2 with a message" || bad "ops: missing dir exit $rc"
    "$AGENT" watch --agent other --state-dir "$TMP/ops.state" --once "$d" >/dev/null 2>"$TMP/ops4.err"
    rc=$?
    [ "$rc" -eq 2 ] && grep -q "belongs to agent 'e2e'" "$TMP/ops4.err" &&
        ok "ops: a state dir of another agent name exits 2" || bad "ops: other agent exit $rc"
    # Settings from a config file and the environment (the command line wins over both).
    printf '# test\nagent = from-file\nstate-dir = %s\nonce = yes\ndir = %s\n' \
        "$TMP/cfg.state" "$d" >"$TMP/agent.conf"
    "$AGENT" watch --config "$TMP/agent.conf" >"$TMP/cfg.jsonl" 2>/dev/null
    [ "$(head -1 "$TMP/cfg.jsonl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["agent"])')" = from-file ] &&
        ok "ops: config file settings apply" || bad "ops: config file"
    EM_AGENT_AGENT=from-env "$AGENT" watch --config "$TMP/agent.conf" --state-dir "$TMP/env.state" \
        >"$TMP/env.jsonl" 2>/dev/null
    [ "$(head -1 "$TMP/env.jsonl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["agent"])')" = from-env ] &&
        ok "ops: environment overrides the config file" || bad "ops: environment"
    EM_AGENT_LOG_FORMAT=json EM_AGENT_VERBOSE=1 "$AGENT" watch --once --state-dir "$TMP/json.state" \
        "$d" 2>"$TMP/json.err" >/dev/null
    python3 -c 'import json,sys; [json.loads(l)["msg"] for l in open(sys.argv[1])]' "$TMP/json.err" &&
        grep -q '"level":"info"' "$TMP/json.err" &&
        ok "ops: --log-format json (from the environment) gives JSON log lines" || bad "ops: json log"
    # EM_AGENT_DIRS (':'-separated) beats the file's `dir` keys; a missing one exits 2.
    EM_AGENT_DIRS=$TMP/nope:$d "$AGENT" watch --config "$TMP/agent.conf" --state-dir "$TMP/dirs.state" \
        >/dev/null 2>"$TMP/dirs.err"
    rc=$?
    [ "$rc" -eq 2 ] && grep -q "$TMP/nope" "$TMP/dirs.err" &&
        ok "ops: EM_AGENT_DIRS is read, over the file's dirs" || bad "ops: EM_AGENT_DIRS exit $rc: $(head -c 300 "$TMP/dirs.err")"
    printf 'bogus = 1\n' >"$TMP/bad.conf"
    "$AGENT" watch --config "$TMP/bad.conf" "$d" 2>"$TMP/bad.err"
    rc=$?
    [ "$rc" -eq 2 ] && grep -q "unknown setting 'bogus'" "$TMP/bad.err" &&
        ok "ops: an unknown config setting exits 2 naming it" || bad "ops: bad config exit $rc"
}

case_grow() { # a big .dm appended to while open is fed as it grows, not re-read from 0
    local d="$TMP/grow.d" dm
    mkdir -p "$d"
    cp -r "$ROOT/testdata/visit-mini/Supervisor_20250101_100000_1_mini_EPU" "$d/S"
    rm -rf "$d/S/Metadata"
    mkdir "$d/S/Metadata"
    dm=$(ls "$SRC"/real/*/Metadata/GridSquare_*.dm 2>/dev/null | head -1)
    [ -n "$dm" ] || dm="$ROOT/testdata/visit-mini/Supervisor_20250101_100000_1_mini_EPU/Metadata/GridSquare_1001.dm"
    start_agent grow "$d" -v
    sleep 0.5
    local size
    size=$(stat -c %s "$dm")
    python3 - "$dm" "$d/S/Metadata/GridSquare_1001.dm" <<'PY'
import sys, time
data = open(sys.argv[1], "rb").read()
n = 40
step = len(data) // n + 1
with open(sys.argv[2], "wb") as f:
    for i in range(0, len(data), step):
        f.write(data[i:i + step])
        f.flush()
        time.sleep(0.02)
PY
    sleep 0.5
    kill -TERM "$APID"
    wait "$APID"
    local read
    read=$(grep -o 'stopped: .* \([0-9]*\) bytes read' "$TMP/grow.log" | grep -o '[0-9]* bytes read' | cut -d' ' -f1)
    # The tree holds the session file and a few manifests besides the .dm.
    local others
    others=$(find "$d/S" -type f ! -name 'GridSquare_1001.dm' -printf '%s\n' | awk '{s+=$1} END {print s}')
    if [ -n "$read" ] && [ "$read" -ge "$size" ] && [ "$read" -lt $((size + others + size / 4)) ]; then
        ok "grow: a $size-byte .dm written in 40 appends was read $read bytes in all"
    else
        bad "grow: read ${read:-?} bytes for a $size-byte .dm (re-read from the start?)"
    fi
    "$AGENT" scan --agent e2e "$d" >"$TMP/grow.scan" 2>/dev/null
    $FOLD compare "$TMP/grow.scan" "$TMP/grow.jsonl" >/dev/null &&
        ok "grow: entities equal scan" || bad "grow: entities differ"
}

case_burst() { # a busy agent gets a burst of closed files: they are parsed on the pool
    local d="$TMP/burst.d"
    mkdir -p "$d"
    $WRITER "$SRC" "$d" --seed 4 >/dev/null || bad "writer"
    start_agent burst "$d" -vv
    wait_equal burst "$d" 30 || bad "burst: the initial walk"
    # Stopped, it cannot read its events: they pile up and come as one burst.
    kill -STOP "$APID"
    local n=0 f
    while IFS= read -r f; do
        sed -i 's/<Defocus>\([^<]*\)</<Defocus>-2.5E-06</' "$f" && n=$((n + 1))
    done < <(find "$d" -name 'FoilHole_*_Data_*.xml')
    kill -CONT "$APID"
    [ "$n" -ge 8 ] || bad "burst: only $n micrographs to change"
    if wait_equal burst "$d" 30; then
        grep -q 'read on the pool' "$TMP/burst.log" && ok "burst: $n changed micrographs read on the pool" ||
            bad "burst: the burst was not read on the pool"
    fi
    finish burst "$d"
}

cases=("$@")
[ ${#cases[@]} -eq 0 ] && cases=(before midway after kill killsnap restart overflow poll ops grow burst)
for c in "${cases[@]}"; do
    "case_$c"
done
echo "$checks checks, $failures failed"
[ "$failures" -eq 0 ]
