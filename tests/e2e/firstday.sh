#!/usr/bin/env bash
# A facility engineer's first hour: what used to confuse, each checked with the real
# programs.
#
#   tests/e2e/firstday.sh EM_AGENT EM_BACKEND FSRECORDER EM_SYNTH CASE
#
# Cases:
#   cli       every program: --version, -v/-q before or after the command, `help CMD`,
#             unknown commands and options exit 2 and say why, one message form
#             ("prog: subject: reason"), --json summaries (scan, ingest, verify)
#   errors    the real cause named: a missing or non-directory DIR, an unwritable output,
#             a full disk ("no space left on device"), `watch DIR | head -1` blaming no
#             directory, an unreadable config and state directory (permission denied);
#             as an unprivileged user an unreadable directory is a warning, exit 1 under
#             `scan --strict`, a "permission denied" finding in validate; a directory with
#             no EPU session says so
#   state     watch says what it resumes; --from-start emits everything again with higher
#             seqs; the default state directory differs per set of roots and agent name,
#             $STATE_DIRECTORY wins; /etc/em-agent/agent.conf is read only when named, and
#             the config read is logged; `em-agent status` (text and JSON) and the lock
#             error name the running agent's pid
#   signal    SIGTERM and SIGINT during the initial walk of a 15,000-file tree end the run
#             within a second with exit 0; a restart completes it, equal to scan
#   query     query opens the store read-only (a typo is an error, no file is created),
#             rejects missing or bad ids, unknown sessions and options that do not apply;
#             sessions show squares listed and imaged, holes with exposures, micrographs
#             per hour and idle-since; atlases and foilholes exist
set -u
AGENT=$(realpath "$1")
BACKEND=$(realpath "$2")
FSREC=$(realpath "$3")
SYNTH=$(realpath "$4")
CASE=$5
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
MINI=$ROOT/testdata/visit-mini
FOLD="python3 $HERE/fold.py"
. "$HERE/checks.sh" firstday
# run NAME WANT_STATUS CMD...: stdout to $TMP/out, stderr to $TMP/err.
run() {
    local name=$1 want=$2
    shift 2
    "$@" >"$TMP/out" 2>"$TMP/err"
    local got=$?
    if [ "$got" -eq "$want" ]; then ok "$name: exit $got"; else bad "$name: exit $got, want $want: $(head -c 300 "$TMP/err")"; fi
}
# err_has NAME REGEX / out_has NAME REGEX
err_has() { if grep -Eq -e "$2" "$TMP/err"; then ok "$1"; else bad "$1: stderr lacks /$2/: $(head -c 400 "$TMP/err")"; fi; }
err_lacks() { if grep -Eq -e "$2" "$TMP/err"; then bad "$1: stderr has /$2/: $(head -c 400 "$TMP/err")"; else ok "$1"; fi; }
out_has() { if grep -Eq -e "$2" "$TMP/out"; then ok "$1"; else bad "$1: stdout lacks /$2/: $(head -c 400 "$TMP/out")"; fi; }
NOBODY=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
can_drop() { [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; }

case $CASE in
cli)
    for prog in "$AGENT" "$BACKEND" "$FSREC" "$SYNTH"; do
        name=$(basename "$prog")
        run "$name --version" 0 "$prog" --version
        out_has "$name --version prints name and version" "^$name [0-9]+\.[0-9]+\.[0-9]+$"
        run "$name -q --version (globals in any order)" 0 "$prog" -q --version
        run "$name help" 0 "$prog" help
        out_has "$name help is the usage" "^[Uu]sage: $name"
        run "$name --bogus" 2 "$prog" --bogus
        err_has "$name --bogus says why, as '$name: subject: reason'" "^$name: .*--bogus.*"
        run "$name --log-format xml" 2 "$prog" --log-format xml --version
        err_has "$name: bad --log-format says why" "^$name: --log-format: takes 'text' or 'json'"
    done
    for cmd in parse validate scan watch status; do
        run "em-agent help $cmd" 0 "$AGENT" help "$cmd"
        out_has "em-agent help $cmd shows its usage" "^Usage: em-agent $cmd"
    done
    for cmd in consume ingest query dead; do
        run "em-backend help $cmd" 0 "$BACKEND" help "$cmd"
        out_has "em-backend help $cmd shows its usage" "^Usage: em-backend $cmd"
    done
    run "em-agent frobnicate" 2 "$AGENT" frobnicate
    err_has "unknown command: message form" "^em-agent: frobnicate: unknown command"
    run "em-backend frobnicate" 2 "$BACKEND" frobnicate
    err_has "em-backend unknown command: message form" "^em-backend: frobnicate: unknown command"
    run "fsrecorder frobnicate" 2 "$FSREC" frobnicate
    err_has "fsrecorder unknown command: message form" "^fsrecorder: frobnicate: unknown command"
    run "scan --bogus" 2 "$AGENT" scan --bogus "$MINI"
    err_has "scan --bogus: message form" "^em-agent: scan: --bogus: unknown option"
    run "scan without DIR" 2 "$AGENT" scan
    err_has "scan without DIR says why" "^em-agent: scan: which directory\?"
    # -v and -q before or after the command
    run "-v before scan" 0 "$AGENT" -v scan "$MINI"
    err_has "-v before: the summary" "scan .*: 1 sessions"
    run "-v after scan" 0 "$AGENT" scan "$MINI" -v
    err_has "-v after: the summary" "scan .*: 1 sessions"
    run "-q before scan" 0 "$AGENT" -q scan "$MINI"
    [ ! -s "$TMP/err" ] && ok "-q before scan: nothing on stderr" || bad "-q before scan: $(cat "$TMP/err")"
    run "-q after scan" 0 "$AGENT" scan "$MINI" -q
    [ ! -s "$TMP/err" ] && ok "-q after scan: nothing on stderr" || bad "-q after scan: $(cat "$TMP/err")"
    run "em-backend -q ingest" 0 "$BACKEND" -q ingest --store "sqlite:$TMP/q.db" "$TMP/out"
    [ ! -s "$TMP/err" ] && ok "em-backend -q: no summary" || bad "em-backend -q: $(cat "$TMP/err")"
    # --json summaries
    "$AGENT" scan --json "$MINI" >"$TMP/scan.jsonl" 2>"$TMP/err"
    tail -1 "$TMP/err" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["sessions"]==1 and d["micrographs"]==4 and d["aborted_sessions"]==1 and d["events"]==14, d' \
        && ok "scan --json: the summary as JSON (1 session, 4 micrographs, 1 aborted session, 14 events)" || bad "scan --json: $(tail -1 "$TMP/err")"
    "$BACKEND" ingest --json --store "sqlite:$TMP/j.db" "$TMP/scan.jsonl" 2>"$TMP/err"
    python3 -c 'import json,sys; d=json.loads(open(sys.argv[1]).read().splitlines()[-1]); assert d["events"]==14 and d["stored"]==14 and d["rejected"]==0, d' "$TMP/err" \
        && ok "ingest --json: 14 events, 14 stored" || bad "ingest --json: $(cat "$TMP/err")"
    "$SYNTH" -q --sessions 1 --aborted 0 --squares 1 --holes 1 --mics 1 --record "$TMP/r.tar" 2>"$TMP/err"
    "$FSREC" -q replay --burst --no-verify "$TMP/r.tar" "$TMP/replayed" 2>>"$TMP/err"
    run "fsrecorder verify --json" 0 "$FSREC" verify --json "$TMP/r.tar" "$TMP/replayed"
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["equal"] and d["missing"]==0 and d["checked"]>0, d' "$TMP/out" \
        && ok "fsrecorder verify --json: equal" || bad "verify --json: $(cat "$TMP/out")"
    run "parse error with --log-format json" 1 "$AGENT" parse session "$TMP/none.dm" --log-format json
    python3 -c 'import json,sys; d=json.loads(open(sys.argv[1]).read()); assert d["level"]=="error" and "no such file or directory" in d["msg"], d' "$TMP/err" \
        && ok "parse errors are JSON lines with --log-format json" || bad "parse --log-format json: $(cat "$TMP/err")"
    run "em-synth help" 0 "$SYNTH" help
    [ ! -e help ] && ok "em-synth help writes nothing" || bad "em-synth help made a directory 'help'"
    ;;

errors)
    run "scan of a missing DIR" 1 "$AGENT" scan "$TMP/nope"
    err_has "scan: missing DIR: the cause" "^em-agent: $TMP/nope: no such file or directory$"
    run "scan of a file" 1 "$AGENT" scan /etc/hostname
    err_has "scan of a file: not a directory" "^em-agent: /etc/hostname: not a directory$"
    run "scan -o into a missing directory" 1 "$AGENT" scan -o "$TMP/nodir/x.jsonl" "$MINI"
    err_has "scan -o: the path and the cause" "^em-agent: $TMP/nodir/x.jsonl: cannot open for writing: no such file or directory"
    if [ -w /dev/full ]; then
        run "scan > /dev/full" 1 "$AGENT" scan "$MINI" -o /dev/full
        err_has "a full disk is named" "no space left on device"
        err_lacks "not an I/O error" "input/output error"
    fi
    run "parse of a missing file" 1 "$AGENT" parse session "$TMP/none.dm"
    err_has "parse: the cause" "^em-agent: $TMP/none.dm: cannot read: no such file or directory"
    run "parse of a directory" 1 "$AGENT" parse session "$TMP"
    err_has "parse of a directory: is a directory" "is a directory"
    run "ingest of a directory" 1 "$BACKEND" ingest --store "sqlite:$TMP/i.db" "$TMP"
    err_has "ingest: the directory and 'is a directory'" "^em-backend: $TMP: cannot read: is a directory"
    run "a store in a missing directory" 1 "$BACKEND" ingest --store "sqlite:$TMP/nodir/s.db" /dev/null
    err_has "the store: the cause" "sqlite:$TMP/nodir/s.db: cannot open: no such file or directory"
    run "fsrecorder record of a missing directory" 1 "$FSREC" record "$TMP/nope" "$TMP/r.tar"
    err_has "fsrecorder: the cause" "^fsrecorder: $TMP/nope: no such file or directory"
    err_lacks "fsrecorder: no I/O error" "input/output error"
    # watch | head -1: the pipe closes; nothing blames the watched directory
    "$SYNTH" -q --sessions 2 --aborted 0 --squares 10 --holes 10 --mics 2 --no-images "$TMP/many"
    "$AGENT" watch --state-dir "$TMP/st-pipe" "$TMP/many" 2>"$TMP/err" | head -1 >/dev/null
    st=${PIPESTATUS[0]}
    [ "$st" -eq 1 ] && ok "watch | head -1: exit 1" || bad "watch | head -1: exit $st"
    err_has "watch | head -1: the pipe is named" "standard output .*broken pipe"
    err_lacks "watch | head -1: no directory blamed" "$TMP/many[^ ]*: broken pipe"
    [ "$(grep -c . "$TMP/err")" -le 2 ] && ok "watch | head -1: one error, not a cascade" || bad "watch | head -1: $(cat "$TMP/err")"
    run "watch --config missing" 2 "$AGENT" watch --config "$TMP/none.conf" --state-dir "$TMP/s1" "$MINI"
    err_has "config: the reason" "^em-agent: $TMP/none.conf: cannot read the config file: no such file or directory"
    if can_drop; then
        cp -r "$MINI" "$TMP/v"
        chmod -R a+rX "$TMP/v"
        meta=$(find "$TMP/v" -type d -name Metadata | head -1)
        chmod 000 "$meta"
        run "scan as nobody, unreadable directory" 0 "${NOBODY[@]}" "$AGENT" scan "$TMP/v"
        err_has "scan: warning names the directory and 'permission denied'" "warning: .*Metadata: cannot list the directory: permission denied"
        run "scan --strict: exit 1" 1 "${NOBODY[@]}" "$AGENT" scan --strict "$TMP/v"
        run "validate: a finding" 1 "${NOBODY[@]}" "$AGENT" validate "$TMP/v"
        out_has "validate: 'permission denied' finding" "finding: .*Metadata: cannot read the directory: permission denied"
        if grep -q "GridSquare_1001.dm is missing" "$TMP/out"; then bad "validate calls a file in an unreadable directory missing"; else ok "validate: nothing under it called missing"; fi
        chmod 755 "$meta"
        chmod 000 "$meta/GridSquare_1001.dm"
        run "scan --strict, unreadable file" 1 "${NOBODY[@]}" "$AGENT" scan --strict "$TMP/v"
        err_has "scan: the file and 'permission denied'" "GridSquare_1001.dm: cannot read: permission denied"
        mkdir -p "$TMP/locked" && chmod 555 "$TMP/locked"
        run "watch: state directory not creatable" 1 "${NOBODY[@]}" "$AGENT" watch --once --state-dir "$TMP/locked/state" "$MINI"
        err_has "state directory: the reason" "$TMP/locked/state: cannot create the state directory: permission denied"
        printf 'out = x\n' >"$TMP/secret.conf" && chmod 600 "$TMP/secret.conf"
        run "watch: unreadable config" 2 "${NOBODY[@]}" "$AGENT" watch --config "$TMP/secret.conf" "$MINI"
        err_has "config: permission denied" "$TMP/secret.conf: cannot read the config file: permission denied"
    else
        echo "skip: the unprivileged-user checks need root and setpriv"
    fi
    mkdir -p "$TMP/empty"
    run "scan of a directory with no session" 0 "$AGENT" scan "$TMP/empty"
    err_has "scan says so" "$TMP/empty: no EPU session here"
    run "scan --strict of it" 1 "$AGENT" scan --strict "$TMP/empty"
    run "validate of it" 1 "$AGENT" validate "$TMP/empty"
    out_has "validate says so" "no EPU session directory found"
    ;;

state)
    export XDG_STATE_HOME=$TMP/xdg
    unset STATE_DIRECTORY
    run "first watch" 0 "$AGENT" watch --once --agent fd -o "$TMP/a.jsonl" "$MINI"
    err_has "first watch: new state" "new state in $TMP/xdg/em-agent/fd-[0-9a-f]{8}: the current state of every entity is emitted"
    first=$(wc -l <"$TMP/a.jsonl")
    [ "$first" -eq 14 ] && ok "first watch: 14 events (13 entities and the aborted session)" || bad "first watch: $first events"
    run "second watch" 0 "$AGENT" watch --once --agent fd -o "$TMP/a.jsonl" "$MINI"
    err_has "second watch says what it resumes (without -v)" "resuming $TMP/xdg/em-agent/fd-[0-9a-f]{8}: 14 entities already emitted up to seq [0-9]+; only changes follow"
    [ "$(wc -l <"$TMP/a.jsonl")" -eq 14 ] && ok "second watch: nothing new" || bad "second watch emitted again"
    run "--from-start" 0 "$AGENT" watch --once --from-start --agent fd -o "$TMP/a.jsonl" "$MINI"
    err_has "--from-start says so" "--from-start: the current state of every entity is emitted again"
    [ "$(wc -l <"$TMP/a.jsonl")" -eq 28 ] && ok "--from-start: all 14 again" || bad "--from-start: $(wc -l <"$TMP/a.jsonl") lines"
    $FOLD check "$TMP/a.jsonl" >/dev/null 2>&1 || true
    python3 - "$TMP/a.jsonl" <<'EOF' && ok "--from-start: new seqs, above every earlier one" || bad "--from-start seqs"
import json, sys
seqs = [json.loads(l)["seq"] for l in open(sys.argv[1])]
assert all(b > a for a, b in zip(seqs, seqs[1:])), "not increasing"
EOF
    run "a watch of another tree" 0 "$AGENT" watch --once --agent fd -o "$TMP/b.jsonl" "$ROOT/testdata/visit-mini/atlas"
    [ "$(ls "$TMP/xdg/em-agent" | wc -l)" -eq 2 ] && ok "another tree: another state directory" || bad "state dirs: $(ls "$TMP/xdg/em-agent")"
    [ "$(wc -l <"$TMP/b.jsonl")" -eq 1 ] && ok "another tree: its atlas emitted, nothing inherited" || bad "other tree: $(wc -l <"$TMP/b.jsonl") events"
    run "another agent name" 0 "$AGENT" watch --once --agent fd2 -o "$TMP/c.jsonl" "$MINI"
    [ "$(ls "$TMP/xdg/em-agent" | wc -l)" -eq 3 ] && ok "another agent name: another state directory" || bad "state dirs: $(ls "$TMP/xdg/em-agent")"
    run "\$STATE_DIRECTORY wins" 0 env STATE_DIRECTORY="$TMP/svc" "$AGENT" watch --once --agent fd -o "$TMP/d.jsonl" "$MINI"
    [ -f "$TMP/svc/journal" ] && ok "\$STATE_DIRECTORY holds the journal" || bad "no journal in \$STATE_DIRECTORY"
    # status
    run "status of one tree" 0 "$AGENT" status --agent fd "$MINI"
    out_has "status: agent" "agent: +fd$"
    out_has "status: entities" "entities: +14 emitted"
    out_has "status: not running" "running: +no"
    out_has "status: the snapshot a restart uses" "snapshot: +1 of 1 usable; 0 files processed after it"
    run "status of all" 0 "$AGENT" status
    [ "$(grep -c '^  agent:' "$TMP/out")" -eq 3 ] && ok "status lists the 3 state directories" || bad "status: $(cat "$TMP/out")"
    "$AGENT" watch --agent fd -o "$TMP/a.jsonl" "$MINI" 2>"$TMP/w.err" &
    APID=$!
    PIDS+=("$APID")
    for _ in $(seq 50); do grep -q resuming "$TMP/w.err" && break; sleep 0.1; done
    run "status --json while running" 0 "$AGENT" status --json --agent fd "$MINI"
    python3 - "$TMP/out" "$APID" <<'EOF' && ok "status --json: pid, running, entities, files, last event" || bad "status --json: $(cat "$TMP/out")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["pid"] == int(sys.argv[2]) and d["running"] is True, d
# 14 from the files, and the running agent's own heartbeat
assert d["entities"] == 15 and d["files"] >= 13 and d["agent"] == "fd", d
assert d["last_event_at"].endswith("Z") and isinstance(d["last_seq"], int), d
assert d["snapshots"] == 1 and d["snapshots_usable"] == 1 and d["files_after_snapshot"] >= 0, d
EOF
    run "a second watch on the same state" 2 "$AGENT" watch --once --agent fd -o "$TMP/e.jsonl" "$MINI"
    err_has "the lock error names the holder's pid" "is in use by another em-agent \(pid $APID\)"
    kill -TERM "$APID"
    wait "$APID"
    [ $? -eq 0 ] && ok "watch: SIGTERM, exit 0" || bad "watch exit on SIGTERM"
    # A broker that is not there: the events wait in the outbox, counted (seqs are not
    # dense across runs, so last seq minus confirmed would be a clock, not a count).
    port=$((41000 + RANDOM % 1000))
    for run in 1 2; do
        from=()
        [ "$run" -eq 2 ] && from=(--from-start)
        "$AGENT" watch --once "${from[@]}" --agent ob --state-dir "$TMP/ob" \
            --amqp "amqp://guest:guest@127.0.0.1:$port/" --drain 1 "$MINI" 2>"$TMP/err"
    done
    err_has "at exit: the events waiting, counted" "warning: 28 events wait in the outbox \(seq [0-9]+ to [0-9]+\)"
    run "status of an outbox" 0 "$AGENT" status --json --state-dir "$TMP/ob"
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["outbox_waiting"]==28, d' "$TMP/out" \
        && ok "status: 28 events waiting in the outbox" || bad "status outbox: $(cat "$TMP/out")"
    run "status --state-dir with no state" 1 "$AGENT" status --state-dir "$TMP/nothing"
    err_has "status: says there is none" "$TMP/nothing: no watch state here"
    # /etc/em-agent/agent.conf only when named
    if [ "$(id -u)" -eq 0 ] && [ ! -e /etc/em-agent/agent.conf ]; then
        mkdir -p /etc/em-agent
        printf 'summary = nonsense\n' >/etc/em-agent/agent.conf
        run "the system config is not read unless named" 0 "$AGENT" watch --once --agent fd -o "$TMP/f.jsonl" "$MINI"
        run "read when named, and logged" 2 "$AGENT" watch --once --config /etc/em-agent/agent.conf --agent fd -o "$TMP/f.jsonl" "$MINI"
        printf '# test\nagent = fd\n' >/etc/em-agent/agent.conf
        run "a good config named" 0 "$AGENT" watch --once --config /etc/em-agent/agent.conf -o "$TMP/f.jsonl" "$MINI"
        err_has "the config read is logged" "settings read from /etc/em-agent/agent.conf"
        rm -f /etc/em-agent/agent.conf
        rmdir /etc/em-agent 2>/dev/null
    else
        echo "skip: /etc/em-agent/agent.conf exists or not root"
    fi
    ;;

signal)
    "$SYNTH" -q --sessions 1 --aborted 0 --squares 60 --unimaged 0 --holes 50 --mics 4 --no-images "$TMP/v"
    files=$(find "$TMP/v" -type f | wc -l)
    [ "$files" -gt 15000 ] && ok "tree of $files files" || bad "tree of $files files"
    "$AGENT" scan -q --agent e2e "$TMP/v" >"$TMP/scan.jsonl"
    for sig in TERM INT TERM; do
        "$AGENT" watch --agent e2e --state-dir "$TMP/state" -o "$TMP/w.jsonl" "$TMP/v" 2>"$TMP/w.err" &
        APID=$!
        PIDS+=("$APID")
        sleep 0.4
        t0=$(date +%s%N)
        kill -"$sig" "$APID"
        wait "$APID"
        st=$?
        ms=$((($(date +%s%N) - t0) / 1000000))
        [ "$st" -eq 0 ] && ok "SIG$sig during the walk: exit 0" || bad "SIG$sig: exit $st"
        [ "$ms" -lt 1000 ] && ok "SIG$sig during the walk: stopped in $ms ms" || bad "SIG$sig: took $ms ms"
    done
    # On a terminal the walk shows its progress (script(1) gives it one).
    if command -v script >/dev/null; then
        script -qfec "$AGENT watch --once --agent e2e --state-dir $TMP/state-tty -o $TMP/tty.jsonl $TMP/v" /dev/null >"$TMP/tty.out" 2>&1
        grep -q "em-agent: parsing [0-9]* of [0-9]* files" "$TMP/tty.out" && ok "on a terminal the walk shows its progress" ||
            bad "no progress line on a terminal: $(tr '\r' '\n' <"$TMP/tty.out" | head -5)"
    fi
    "$AGENT" watch --once --agent e2e --state-dir "$TMP/state-q" -o "$TMP/q.jsonl" "$TMP/v" 2>"$TMP/q.err"
    grep -q "parsing" "$TMP/q.err" && bad "a progress line without a terminal" || ok "no progress line when stderr is not a terminal"
    run "a restart finishes the walk" 0 "$AGENT" watch --once --agent e2e --state-dir "$TMP/state" -o "$TMP/w.jsonl" "$TMP/v"
    out=$($FOLD compare "$TMP/scan.jsonl" "$TMP/w.jsonl" 2>&1)
    [[ $out == *"-> EQUAL"* ]] && ok "events after the interrupted walks equal scan" || bad "$out"
    $FOLD check "$TMP/w.jsonl" >/dev/null && ok "no event repeats its entity's data" || bad "$($FOLD check "$TMP/w.jsonl" 2>&1 | tail -3)"
    ;;

query)
    db=$TMP/q.db
    "$AGENT" scan -q "$MINI" >"$TMP/mini.jsonl"
    "$BACKEND" -q ingest --store "sqlite:$db" "$TMP/mini.jsonl"
    run "query of a store that does not exist" 1 "$BACKEND" query --store "sqlite:$TMP/typo.db"
    err_has "it says so" "sqlite:$TMP/typo.db: no such store"
    [ ! -e "$TMP/typo.db" ] && ok "no empty store was created" || bad "query created $TMP/typo.db"
    run "query squares without an id" 2 "$BACKEND" query squares --store "sqlite:$db"
    err_has "says which id" "squares SESSION: which one\?"
    run "query squares abc" 2 "$BACKEND" query squares abc --store "sqlite:$db"
    err_has "says abc is not an id" "'abc' is not an id"
    run "query squares of an unknown session" 1 "$BACKEND" query squares 42 --store "sqlite:$db"
    err_has "says it is not in the store" "session 42 is not in"
    run "query foilholes of an unknown square" 1 "$BACKEND" query foilholes 800001 9 --store "sqlite:$db"
    err_has "says the square is not there" "grid square 9 of session 800001 is not in"
    run "--limit with sessions" 2 "$BACKEND" query sessions --limit 3 --store "sqlite:$db"
    err_has "refused, not ignored" "--limit does not apply"
    run "--session with squares" 2 "$BACKEND" query squares 800001 --session 1 --store "sqlite:$db"
    run "sessions --json" 0 "$BACKEND" query --json --store "sqlite:$db"
    # Known from the authored visit: 3 squares listed, 2 imaged (1001 has a square image and
    # holes; 1002 has an exposure), 4 hole entities, 3 of them with exposures, 4
    # micrographs from 10:21:00.12 to 12:22:00 (3 intervals in 2.0164 h: 1.5 per hour).
    python3 - "$TMP/out" <<'EOF' && ok "sessions: listed/imaged squares, exposed holes, rate, idle since; the aborted one" || bad "sessions: $(cat "$TMP/out")"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 2, rows
d, a = rows
# the visit's aborted session directory, listed as such
assert a["session_id"] is None and a["name"] == "Supervisor_20250101_120000_2_aborted_EPU", a
assert a["state"] == "aborted (no EpuSession.dm)", a
assert d["session_id"] == 800001 and d["squares"] == 3 and d["imaged"] == 2, d
assert d["holes"] == 4 and d["holes_exposed"] == 3 and d["micrographs"] == 4, d
assert d["started_at"] == "2025-01-01T09:00:00.1234567Z", d
assert d["per_hour"] == 1.5, d
# judged by when the newest micrograph's file was written (the checkout's time: any age)
import datetime
seen = datetime.datetime.strptime(d["last_seen"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
age = (datetime.datetime.now(datetime.timezone.utc) - seen).total_seconds()
want = "acquiring" if age < 299 else "stalled since " + d["last_seen"] if 301 < age < 43199 else "idle since " + d["last_seen"] if age > 43201 else d["state"]
assert d["state"] == want, (d, age)
assert d["stalled"] == d["state"].startswith("stalled") and d["stall_after_s"] == 300, d
EOF
    run "query atlases" 0 "$BACKEND" query atlases --json --store "sqlite:$db"
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["atlas_id"]==900001 and d["squares"]==3 and d["tiles"]==2 and d["sessions"]==1, d' "$TMP/out" \
        && ok "atlases: 900001 with 3 squares, 2 tiles, 1 session" || bad "atlases: $(cat "$TMP/out")"
    run "query foilholes" 0 "$BACKEND" query foilholes 800001 1001 --json --store "sqlite:$db"
    python3 - "$TMP/out" <<'EOF' && ok "foilholes of square 1001: states, selected, near the grid bar, micrographs" || bad "foilholes: $(cat "$TMP/out")"
import json, sys
rows = {r["foilhole_id"]: r for r in map(json.loads, open(sys.argv[1]))}
assert sorted(rows) == [2001, 2002, 2003], rows
assert rows[2001]["selected"] is True and rows[2001]["micrographs"] == 2 and rows[2001]["state"] == "Completed"
assert rows[2003]["state"] == "Skipped" and rows[2003]["near_grid_bar"] is True and rows[2003]["micrographs"] == 0
EOF
    run "query squares" 0 "$BACKEND" query squares 800001 --store "sqlite:$db"
    out_has "squares: a table with has_image" "gridsquare_id +state +selected +has_image"
    ;;
*)
    echo "unknown case $CASE"
    exit 2
    ;;
esac
finish
