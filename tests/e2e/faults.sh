#!/usr/bin/env bash
# Faults that used to lose, stall or confuse: each case builds the fault with real files
# and real processes, and ends with the agent's folded events equal to `em-agent scan` of
# the final tree (the scan itself checked against independently known counts).
#
#   tests/e2e/faults.sh EM_AGENT EM_BACKEND EM_SYNTH CASE
#
# Cases:
#   bigdm       a native one-line square .dm of 11 MB (2,000 holes x 6 exposures) parses in
#               scan, validate and watch (libxml2's own 10 MB "Huge input lookup" limit)
#   hostile     an attribute flood, 16,000 z:Refs to a 1 MB value, two symbolic-link
#               loops (a -> ., b -> .) and the tree bind-mounted into itself: scan and
#               watch end promptly, report each, and keep everything else; SIGTERM is
#               obeyed at once
#   unreadable  as an unprivileged user: a directory without permissions and a path over
#               4,096 bytes are reported and skipped; the agent keeps watching, and files
#               written while the directory was unreadable arrive once it can be read
#   rootloss    the watched root renamed away, deleted and made again: an error is logged,
#               the agent resumes on the new tree; with --exit-on-root-loss it exits 1
#   utf8        directory and file names that are not UTF-8: every event line is valid
#               UTF-8 JSON, scan and watch name them the same way, and the store takes them
#   statefull   the state directory's disk is full: watch stops with "no space left on
#               device" (not an I/O error, no journal.tmp left behind), refuses to start
#               while it is full, and once there is room the events of all runs fold to scan
#   bigevent    a session file whose event would be over 8 MiB (the most a consumer takes):
#               scan and watch refuse that event, say why, and emit everything else
#   agree       watch and scan agree, with watch running while: a square's .dm or the
#               EpuSession.dm is left empty or cut short for good (and then put back), a
#               session directory is copied elsewhere in the tree (after or before it in
#               tree order, then the copy deleted), a session id changes in place, a
#               session directory is deleted, or deleted and made again (whole, partly,
#               with another id)
#   follow      the embedded recipe, `watch --out FILE` and `ingest --follow FILE`, while a
#               session is written: ingest killed with SIGKILL and restarted, the agent
#               killed and restarted, FILE rotated (rename + SIGHUP), ingest restarted while
#               FILE was rotated; the store ends equal to scan
#   followfull  ingest --follow into an SQLite store whose disk fills up: it waits and
#               retries, and nothing is lost once there is room
set -u
AGENT=$(realpath "$1")
BACKEND=$(realpath "$2")
SYNTH=$(realpath "$3")
CASE=$4
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
FOLD="python3 $HERE/fold.py"
. "$HERE/checks.sh" faults

# compare_scan NAME EVENTS DIR: the folded EVENTS equal scan of DIR.
compare_scan() {
    local name=$1 events=$2 dir=$3 out
    "$AGENT" scan --agent e2e "$dir" >"$TMP/$name.scan" 2>"$TMP/$name.scan.err"
    out=$($FOLD compare "$TMP/$name.scan" "$events" 2>&1)
    if [[ $out == *"-> EQUAL"* ]]; then ok "$name: events equal scan ($(wc -l <"$TMP/$name.scan") scan events)"; else bad "$name: $out"; fi
}

# wait_for FILE PATTERN SECONDS: until FILE holds PATTERN (grep -E).
wait_for() {
    local i
    for i in $(seq 1 $(($3 * 10))); do
        grep -qE "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# wait_equal NAME EVENTS DIR SECONDS: until the folded EVENTS equal scan of DIR.
wait_equal() {
    local i
    "$AGENT" scan --agent e2e "$3" >"$TMP/$1.want" 2>/dev/null
    for i in $(seq 1 $(($4 * 10))); do
        [ $((i % 10)) -eq 0 ] && "$AGENT" scan --agent e2e "$3" >"$TMP/$1.want" 2>/dev/null
        $FOLD compare "$TMP/$1.want" "$2" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

# stop_agent PID WHAT: SIGTERM, then the exit status within 2 s (-1 when it did not stop).
stop_agent() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 20); do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid"
            return $?
        fi
        sleep 0.1
    done
    return 255
}

# new_micrograph DATA_DIR UUID: a copy of a micrograph manifest there with a new uuid and
# file name (another exposure of the same hole), so that a new entity must arrive.
new_micrograph() {
    local src new
    src=$(find "$1" -name 'FoilHole_*_Data_*.xml' | head -1)
    new="$1/$(basename "$src" | sed 's/_Data_\([0-9]*\)_\([0-9]*\)_/_Data_\1_9\2_/')"
    python3 - "$src" "$new" "$2" <<'EOF'
import re, sys
s = open(sys.argv[1], encoding="utf-8-sig").read()
s = re.sub(r"<uniqueID>[^<]*</uniqueID>", "<uniqueID>%s</uniqueID>" % sys.argv[3], s, count=1)
open(sys.argv[2] + ".tmp", "w").write(s)
EOF
    mv "$new.tmp" "$new"
}

case $CASE in
bigdm)
    "$SYNTH" -q --sessions 1 --aborted 0 --squares 1 --unimaged 0 --holes 2000 --mics 6 \
        --dm-every 2000 --no-images --expected "$TMP/expected.json" "$TMP/v" || bad "em-synth"
    dm=$(find "$TMP/v" -name 'GridSquare_*.dm' -size +10M)
    if [ -n "$dm" ] && [ "$(wc -l <"$dm")" -eq 0 ]; then ok "a one-line square .dm over 10 MB ($(stat -c %s "$dm") bytes)"; else bad "no one-line .dm over 10 MB"; fi
    if "$AGENT" parse gridsquare-metadata "$dm" >"$TMP/dm.json" 2>"$TMP/parse.err" &&
        python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(d["foilhole_count"] != 2000 or d["exposure_count"] != 12000)' "$TMP/dm.json"; then
        ok "parse: 2000 holes and 12000 exposures"
    else
        bad "parse: $(cat "$TMP/parse.err")"
    fi
    if "$AGENT" scan --strict "$TMP/v" >"$TMP/scan.jsonl" 2>"$TMP/scan.err"; then ok "scan --strict exits 0"; else bad "scan: $(tail -3 "$TMP/scan.err")"; fi
    holes_with_pixels=$(python3 -c '
import json, sys
n = 0
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e["type"] == "foilhole" and (e["data"].get("target") or {}).get("pixel_x") is not None: n += 1
print(n)' "$TMP/scan.jsonl")
    if [ "$holes_with_pixels" = 2000 ]; then ok "scan: every hole has its .dm position"; else bad "scan: $holes_with_pixels holes with a .dm position, not 2000"; fi
    if "$AGENT" validate "$TMP/v" >"$TMP/validate.out" 2>&1; then ok "validate finds nothing"; else bad "validate: $(head -5 "$TMP/validate.out")"; fi
    "$AGENT" watch --once --agent e2e --state-dir "$TMP/state" "$TMP/v" >"$TMP/watch.jsonl" 2>"$TMP/watch.err" || bad "watch --once failed"
    compare_scan watch "$TMP/watch.jsonl" "$TMP/v"
    ;;
hostile)
    cp -r "$ROOT/testdata/visit-mini" "$TMP/v"
    meta=$(find "$TMP/v" -type d -name Metadata | head -1)
    python3 - "$meta" <<'EOF'
import sys
d = sys.argv[1]
ns = ('xmlns="http://schemas.datacontract.org/2004/07/Applications.Epu.Persistence" '
      'xmlns:i="http://www.w3.org/2001/XMLSchema-instance" '
      'xmlns:z="http://schemas.microsoft.com/2003/10/Serialization/"')
big = "x" * 1000000
refs = '<State z:Ref="2" i:nil="true"/>' * 16000
open(f"{d}/GridSquare_77001.dm", "w").write(
    f'<GridSquareXml z:Id="1" {ns}><Id>77001</Id><Name z:Id="2">{big}</Name>{refs}</GridSquareXml>')
attrs = " ".join(f'a{i}="{i}"' for i in range(160000))
open(f"{d}/GridSquare_77002.dm", "w").write(
    f'<GridSquareXml z:Id="1" {ns} {attrs}><Id>77002</Id></GridSquareXml>')
EOF
    ln -s . "$TMP/v/a"
    ln -s . "$TMP/v/b"
    # And the tree bind-mounted into itself (root only): found by device and inode.
    bound=""
    if [ "$(id -u)" -eq 0 ] && mkdir "$TMP/v/bind" && mount --bind "$TMP/v" "$TMP/v/bind" 2>/dev/null; then
        bound=1
        trap 'umount "$TMP/v/bind" 2>/dev/null; cleanup' EXIT
    fi
    start=$(date +%s%N)
    timeout 60 "$AGENT" scan "$TMP/v" >"$TMP/scan.jsonl" 2>"$TMP/scan.err"
    rc=$?
    ms=$((($(date +%s%N) - start) / 1000000))
    if [ "$rc" -eq 0 ] && [ "$ms" -lt 20000 ]; then ok "scan ends (exit 0, ${ms} ms)"; else bad "scan: exit $rc after ${ms} ms"; fi
    grep -q "more than 64 attributes" "$TMP/scan.err" && ok "scan reports the attribute flood" || bad "scan: no report of the attribute flood: $(cat "$TMP/scan.err")"
    grep -q "z:Ref elements repeat" "$TMP/scan.err" && ok "scan reports the z:Ref expansion" || bad "scan: no report of the z:Ref expansion"
    if [ -n "$bound" ]; then
        grep -q "bind: the same directory as one above it" "$TMP/scan.err" && ok "scan: the bind mount is not walked again" || bad "scan: no report of the bind mount"
    fi
    n=$($FOLD counts "$TMP/scan.jsonl")
    # The visit's entities, and the two refused squares known only by their file names.
    [ "$n" = '{"aborted_session": 1, "atlas": 1, "foilhole": 4, "gridsquare": 5, "micrograph": 4, "session": 1}' ] &&
        ok "scan: the visit's entities ($n)" || bad "scan counts $n"
    "$AGENT" watch --agent e2e --state-dir "$TMP/state" -o "$TMP/watch.jsonl" "$TMP/v" 2>"$TMP/watch.err" &
    APID=$!
    PIDS+=("$APID")
    if wait_for "$TMP/watch.err" "initial walk|z:Ref elements" 30 && wait_equal w "$TMP/watch.jsonl" "$TMP/v" 20; then ok "watch: the visit's entities arrive"; else bad "watch: $(tail -3 "$TMP/watch.err")"; fi
    # Hostile content written while watching: the loop must stay responsive.
    cp "$meta/GridSquare_77002.dm" "$meta/GridSquare_77003.dm"
    # A complete document that keeps growing: reported once, not at every append.
    mic=$(find "$TMP/v" -path '*Data/*.xml' 2>/dev/null | head -1)
    cp "$mic" "$TMP/mic.orig"
    for _ in $(seq 50); do printf 'junk' >>"$mic"; sleep 0.04; done
    sleep 0.5
    n=$(grep -c "$(basename "$mic")" "$TMP/watch.err")
    [ "$n" -eq 1 ] && ok "a document appended to 50 times after its end: one warning" || bad "$n warnings for $(basename "$mic")"
    # Put back (a file that stays broken is like a deleted one: see the README's limits).
    cat "$TMP/mic.orig" >"$mic"
    sleep 0.5
    stop_agent "$APID"
    rc=$?
    [ "$rc" -eq 0 ] && ok "watch stops on SIGTERM within 2 s with exit 0" || bad "watch: exit $rc on SIGTERM"
    if [ -n "$bound" ]; then
        grep -q "bind: the same directory as one above it" "$TMP/watch.err" && ok "watch: the bind mount is not walked again" || bad "watch: no report of the bind mount"
    fi
    compare_scan watch "$TMP/watch.jsonl" "$TMP/v"
    ;;
unreadable)
    command -v setpriv >/dev/null || { echo "SKIP: no setpriv"; exit 77; }
    [ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root to switch to an unprivileged user"; exit 77; }
    # Not a shell function: "$!" must be the agent's own pid.
    NOBODY=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
    cp -r "$ROOT/testdata/visit-mini" "$TMP/v"
    # A path longer than 4,096 bytes (made a step at a time: no single call sees it whole).
    python3 - "$TMP/v" <<'EOF'
import os, sys
os.chdir(sys.argv[1])
for i in range(18):
    name = ("deep%02d" % i) + "x" * 240
    os.mkdir(name)
    os.chdir(name)
open("note.txt", "w").write("x")
EOF
    chmod -R a+rwX "$TMP/v"
    data=$(find "$TMP/v" -type d -name Data | head -1)
    sq=$(dirname "$data")
    chmod 000 "$data"
    "${NOBODY[@]}" "$AGENT" scan "$TMP/v" >"$TMP/scan0.jsonl" 2>"$TMP/scan.err"
    rc=$?
    [ "$rc" -eq 0 ] && ok "scan as nobody exits 0 with an unreadable directory" || bad "scan exit $rc"
    grep -q "Data: .*permission denied" "$TMP/scan.err" && ok "scan names the directory and 'permission denied'" || bad "scan: $(cat "$TMP/scan.err")"
    mkdir -p "$TMP/state" && chmod 777 "$TMP/state"
    "${NOBODY[@]}" "$AGENT" watch --agent e2e --state-dir "$TMP/state" --check 1 -o "$TMP/state/w.jsonl" "$TMP/v" 2>"$TMP/watch.err" &
    APID=$!
    PIDS+=("$APID")
    wait_for "$TMP/watch.err" "Data: cannot read the directory: permission denied" 10 &&
        ok "watch warns: Data, permission denied" || bad "watch: $(cat "$TMP/watch.err")"
    wait_for "$TMP/watch.err" "file name too long" 10 && ok "watch warns about the long path" || bad "watch: no warning for the long path: $(cat "$TMP/watch.err")"
    sleep 0.5
    kill -0 "$APID" 2>/dev/null && ok "watch keeps running" || bad "watch exited"
    # Written while unreadable (as root), then readable again.
    new_micrograph "$data" aaaaaaaa-0000-0000-0000-000000000001
    chmod 755 "$data"
    chmod 644 "$data"/*
    if wait_equal u "$TMP/state/w.jsonl" "$TMP/v" 15; then ok "after chmod: everything, with the file written meanwhile, arrives"; else bad "after chmod: events differ from scan"; fi
    grep -q "aaaaaaaa-0000-0000-0000-000000000001" "$TMP/state/w.jsonl" && ok "the new micrograph is there" || bad "the new micrograph is missing"
    stop_agent "$APID" && ok "watch exits 0 on SIGTERM" || bad "watch exit status"
    compare_scan unreadable "$TMP/state/w.jsonl" "$TMP/v"
    ;;
rootloss)
    cp -r "$ROOT/testdata/visit-mini" "$TMP/src"
    cp -r "$TMP/src" "$TMP/v"
    "$AGENT" watch --agent e2e --state-dir "$TMP/state" --check 1 -o "$TMP/w.jsonl" "$TMP/v" 2>"$TMP/watch.err" &
    APID=$!
    PIDS+=("$APID")
    wait_equal a "$TMP/w.jsonl" "$TMP/v" 10 || bad "first walk"
    mv "$TMP/v" "$TMP/away"
    wait_for "$TMP/watch.err" "watched directory is gone" 5 && ok "renamed away: an error is logged" || bad "renamed away: nothing said: $(cat "$TMP/watch.err")"
    rm -rf "$TMP/away"
    # Made again, with a micrograph more: it must arrive.
    mkdir "$TMP/v"
    cp -r "$TMP/src"/* "$TMP/v/"
    new_micrograph "$(find "$TMP/v" -type d -name Data | head -1)" bbbbbbbb-0000-0000-0000-000000000002
    wait_for "$TMP/watch.err" "is there again" 5 && ok "made again: the agent says it resumes" || bad "made again: nothing said"
    if wait_equal b "$TMP/w.jsonl" "$TMP/v" 10; then ok "the new tree's entities arrive"; else bad "the new tree's entities differ"; fi
    grep -q bbbbbbbb-0000-0000-0000-000000000002 "$TMP/w.jsonl" && ok "the new micrograph is there" || bad "the new micrograph is missing"
    kill -0 "$APID" 2>/dev/null && ok "still running" || bad "exited"
    stop_agent "$APID" && ok "exit 0 on SIGTERM" || bad "exit status on SIGTERM"
    # Deleted for good with --exit-on-root-loss: exit 1 promptly.
    "$AGENT" watch --agent e2e --state-dir "$TMP/state2" --check 1 --exit-on-root-loss -o "$TMP/w2.jsonl" "$TMP/v" 2>"$TMP/watch2.err" &
    APID=$!
    PIDS+=("$APID")
    wait_equal c "$TMP/w2.jsonl" "$TMP/v" 10 || bad "second agent's walk"
    rm -rf "$TMP/v"
    rc=255
    for i in $(seq 1 30); do
        kill -0 "$APID" 2>/dev/null || { wait "$APID"; rc=$?; break; }
        sleep 0.1
    done
    [ "$rc" -eq 1 ] && ok "--exit-on-root-loss: exit 1 within 3 s" || bad "--exit-on-root-loss: exit $rc"
    grep -q "exiting (--exit-on-root-loss)" "$TMP/watch2.err" && ok "says why it exits" || bad "no reason given: $(cat "$TMP/watch2.err")"
    ;;
statefull)
    [ "$(id -u)" -eq 0 ] || { echo "SKIP: mounting a small tmpfs needs root"; exit 77; }
    "$SYNTH" -q --sessions 1 --squares 10 --holes 10 --mics 3 "$TMP/v" || bad "em-synth"
    mkdir "$TMP/st"
    mount -t tmpfs -o size=64k tmpfs "$TMP/st" || { echo "SKIP: cannot mount a tmpfs"; exit 77; }
    trap 'umount "$TMP/st" 2>/dev/null; cleanup' EXIT
    run() { "$AGENT" watch --once --agent e2e --state-dir "$TMP/st" "$TMP/v" >>"$TMP/all.jsonl" 2>"$TMP/$1.err"; }
    run first
    rc=$?
    [ "$rc" -eq 1 ] && grep -q "journal: cannot write: no space left on device" "$TMP/first.err" &&
        ok "full: exit 1, 'STATE/journal: cannot write: no space left on device'" || bad "full: exit $rc: $(cat "$TMP/first.err")"
    grep -qi "input/output error\|out of memory" "$TMP/first.err" && bad "a misleading cause: $(cat "$TMP/first.err")"
    run second
    rc=$?
    [ "$rc" -eq 1 ] && grep -q "no space left on device" "$TMP/second.err" && [ ! -e "$TMP/st/journal.tmp" ] &&
        ok "restart while full: exit 1 with the reason, no journal.tmp left" || bad "restart: exit $rc: $(cat "$TMP/second.err"); $(ls "$TMP/st")"
    mount -o remount,size=64m "$TMP/st"
    run third || bad "with room: exit $?: $(cat "$TMP/third.err")"
    compare_scan "all runs" "$TMP/all.jsonl" "$TMP/v"
    ;;
bigevent)
    cp -r "$ROOT/testdata/visit-mini" "$TMP/v"
    sess=$(find "$TMP/v" -name EpuSession.dm | head -1)
    # Four text fields (the name through its z:Ref) of 1 MiB of '"', each 2 MiB once escaped
    # in JSON: an event over 8 MiB.
    python3 - "$sess" <<'EOF'
import re, sys
p = sys.argv[1]
s = open(p, encoding="utf-8-sig").read()
q = '"' * (1 << 20)
for pat in (r"(<ClusteringMode>)[^<]*(</ClusteringMode>)", r"(<ImageFileFormat>)[^<]*(</ImageFileFormat>)",
            r"(<AtlasId[^>]*>)[^<]*(</AtlasId>)", r'(<(\w+)[^>]*z:Id="2"[^>]*>)[^<]*(</\2>)'):
    s, n = re.subn(pat, lambda m: m.group(1) + q + m.group(m.lastindex), s, count=1)
    assert n == 1, pat
open(p, "w").write(s)
EOF
    "$AGENT" scan --agent e2e "$TMP/v" >"$TMP/scan.jsonl" 2>"$TMP/scan.err" || bad "scan exit $?"
    grep -q "EpuSession.dm: its session event is [0-9]* bytes, over the 8388608 bytes a consumer takes: not emitted" "$TMP/scan.err" &&
        ok "scan refuses the session event, saying why" || bad "scan: $(cut -c1-300 "$TMP/scan.err")"
    n=$($FOLD counts "$TMP/scan.jsonl")
    [ "$n" = '{"aborted_session": 1, "atlas": 1, "foilhole": 4, "gridsquare": 3, "micrograph": 4}' ] && ok "scan emits everything else ($n)" || bad "scan counts $n"
    awk 'length($0) > 8388608 { exit 1 }' "$TMP/scan.jsonl" && ok "no line over 8 MiB" || bad "a line over 8 MiB"
    "$AGENT" watch --once --agent e2e --state-dir "$TMP/state" "$TMP/v" >"$TMP/watch.jsonl" 2>"$TMP/watch.err" || bad "watch exit $?"
    grep -q "its session event is" "$TMP/watch.err" && ok "watch refuses it too" || bad "watch: $(cut -c1-300 "$TMP/watch.err")"
    compare_scan watch "$TMP/watch.jsonl" "$TMP/v"
    ;;
utf8)
    mkdir "$TMP/v"
    cp -r "$ROOT/testdata/visit-mini/"* "$TMP/v/"
    sess=$(find "$TMP/v" -maxdepth 1 -name 'Supervisor_*_mini_EPU')
    bad_name=$(printf '%s' "$sess" | sed 's/_mini_EPU$//')$(printf '_mini\xe9\xff_EPU')
    mv "$sess" "$bad_name"
    printf 'x' >"$bad_name/notes-$(printf '\xc3\x28').txt"
    # The aborted session (no EpuSession.dm) gets a bad name too: scan warns naming it.
    ab=$(find "$TMP/v" -maxdepth 1 -name 'Supervisor_*_aborted_EPU')
    mv "$ab" "${ab%_EPU}$(printf '\xfe')_EPU"
    # A .dm whose declared encoding its bytes break: libxml2 would print raw lines.
    meta=$(find "$TMP/v" -type d -name Metadata | head -1)
    printf '<?xml version="1.0" encoding="EUC-JP"?><GridSquareXml>\xff\xff\xff\xff\xff</GridSquareXml>' >"$meta/GridSquare_77009.dm"
    "$AGENT" scan --agent e2e "$TMP/v" >"$TMP/scan.jsonl" 2>"$TMP/scan.err" || bad "scan exit $?"
    "$AGENT" watch --once --agent e2e --state-dir "$TMP/state" "$TMP/v" >"$TMP/watch.jsonl" 2>"$TMP/watch.err" || bad "watch exit $?"
    "$AGENT" --log-format json scan --agent e2e "$TMP/v" >/dev/null 2>"$TMP/scan-log.json" || bad "scan (json log) exit $?"
    grep -q "GridSquare_77009.dm" "$TMP/scan-log.json" && ! grep -q "input conversion failed" "$TMP/scan-log.json" &&
        ok "the broken encoding is reported in the JSON log, with no raw libxml2 lines" || bad "JSON log: $(cat "$TMP/scan-log.json")"
    grep -q 'aborted\\\\xfe_EPU' "$TMP/scan-log.json" && ok "the JSON log names the directory with \\xfe" || bad "JSON log: $(cat "$TMP/scan-log.json")"
    for f in scan.jsonl watch.jsonl scan-log.json; do
        python3 - "$TMP/$f" <<'EOF' && ok "$f: every line is valid UTF-8 JSON" || bad "$f: not valid UTF-8 JSON"
import json, sys
data = open(sys.argv[1], "rb").read()
text = data.decode("utf-8")  # strict: raises on any invalid byte
n = 0
for line in text.splitlines():
    json.loads(line)
    n += 1
assert n > 0
EOF
    done
    grep -q 'mini\\\\xe9\\\\xff_EPU' "$TMP/scan.jsonl" && ok "the name is written as \\xe9\\xff" || bad "no \\xHH escape in: $(grep -m1 -o '"path":"[^"]*' "$TMP/scan.jsonl")"
    compare_scan watch "$TMP/watch.jsonl" "$TMP/v"
    "$BACKEND" ingest "$TMP/scan.jsonl" --store "sqlite:$TMP/store.db" 2>"$TMP/ingest.err" && ok "the store takes every event" || bad "ingest: $(cat "$TMP/ingest.err")"
    ;;
agree)
    for sub in dm-empty dm-half dm-back session-empty session-back copy-after copy-before \
        copy-deleted id-change dir-deleted dir-again dir-again-part dir-again-newid; do
        W="$TMP/$sub"
        mkdir -p "$W/v"
        "$AGENT" watch --agent e2e --state-dir "$W/state" --check 0.3 --incomplete-after 1 \
            -o "$W/w.jsonl" "$W/v" 2>"$W/err" &
        APID=$!
        PIDS+=("$APID")
        sleep 0.3
        cp -r "$ROOT/testdata/visit-mini/"* "$W/v/"
        S=$(find "$W/v" -maxdepth 1 -name 'Supervisor_*_mini_EPU')
        DM=$(find "$S/Metadata" -name '*.dm' | sort | head -1)
        wait_equal "$sub-start" "$W/w.jsonl" "$W/v" 10 || bad "$sub: first walk"
        case $sub in
        dm-empty) : >"$DM" ;;
        dm-half) head -c 300 "$DM" >"$W/x" && cat "$W/x" >"$DM" ;;
        dm-back) cp "$DM" "$W/x" && : >"$DM" && sleep 2 && cat "$W/x" >"$DM" ;;
        session-empty) : >"$S/EpuSession.dm" ;;
        session-back) cp "$S/EpuSession.dm" "$W/x" && : >"$S/EpuSession.dm" && sleep 2 && cat "$W/x" >"$S/EpuSession.dm" ;;
        copy-after) cp -r "$S" "$W/v/copy_of_session" ;;
        copy-before) cp -r "$S" "$W/v/A_copy" ;;
        copy-deleted) cp -r "$S" "$W/v/A_copy" && sleep 0.8 && rm -rf "$W/v/A_copy" ;;
        id-change) sed -i "0,/>800001</s//>800777</" "$S/EpuSession.dm" ;;
        dir-deleted) rm -rf "$S" ;;
        dir-again) cp -r "$S" "$W/keep" && rm -rf "$S" && sleep 0.5 && cp -r "$W/keep" "$S" ;;
        dir-again-part) cp -r "$S" "$W/keep" && rm -rf "$S" && sleep 0.5 && mkdir "$S" &&
            cp "$W/keep/EpuSession.dm" "$S/" && cp -r "$W/keep/Metadata" "$S/" ;;
        dir-again-newid) cp -r "$S" "$W/keep" && rm -rf "$S" && sleep 0.5 && cp -r "$W/keep" "$S" &&
            sed -i "0,/>800001</s//>800777</" "$S/EpuSession.dm" ;;
        esac
        if wait_equal "$sub" "$W/w.jsonl" "$W/v" 8; then ok "$sub: watch folds to scan of the final tree"; else
            bad "$sub: $($FOLD compare "$TMP/$sub.want" "$W/w.jsonl" 2>&1 | tail -2)"; fi
        stop_agent "$APID" || bad "$sub: exit status $?"
        $FOLD check "$W/w.jsonl" >/dev/null || bad "$sub: stream check: $($FOLD check "$W/w.jsonl" | tail -3)"
        case $sub in
        id-change | dir-deleted | dir-again-part | dir-again-newid | dm-empty)
            grep -q '"op":"delete"' "$W/w.jsonl" && ok "$sub: with delete events" || bad "$sub: no delete event" ;;
        esac
    done
    ;;
follow | followfull)
    DEST="$TMP/dest"
    OUT="$TMP/events.jsonl"
    STORE="sqlite:$TMP/store.db"
    if [ "$CASE" = followfull ]; then
        [ "$(id -u)" -eq 0 ] || { echo "SKIP: mounting a small tmpfs needs root"; exit 77; }
        mkdir "$TMP/small"
        mount -t tmpfs -o size=700k tmpfs "$TMP/small" || { echo "SKIP: cannot mount a tmpfs"; exit 77; }
        trap 'umount "$TMP/small" 2>/dev/null; cleanup' EXIT
        STORE="sqlite:$TMP/small/store.db"
    fi
    mkdir "$DEST"
    start_agent() {
        "$AGENT" watch --agent e2e --state-dir "$TMP/state" --out "$OUT" "$DEST" 2>>"$TMP/agent.log" &
        APID=$!
        PIDS+=("$APID")
    }
    start_ingest() {
        "$BACKEND" ingest --follow "$OUT" --store "$STORE" --batch 50 -v 2>>"$TMP/ingest.log" &
        IPID=$!
        PIDS+=("$IPID")
    }
    start_agent
    start_ingest
    "$SYNTH" -q --seed 3 --sessions 2 --squares 4 --holes 6 --mics 4 --rate 40 "$DEST" &
    SPID=$!
    PIDS+=("$SPID")
    if [ "$CASE" = follow ]; then
        sleep 1
        kill -9 "$IPID"; wait "$IPID" 2>/dev/null
        ok "ingest killed (SIGKILL) at $(stat -c %s "$OUT") bytes"
        sleep 0.5
        start_ingest
        sleep 0.7
        kill -9 "$APID"; wait "$APID" 2>/dev/null
        start_agent
        ok "agent killed (SIGKILL) and restarted"
        sleep 0.5
        mv "$OUT" "$OUT.1"
        kill -HUP "$APID"
        ok "events file rotated (rename, SIGHUP)"
        sleep 0.5
        kill -9 "$IPID"; wait "$IPID" 2>/dev/null
        mv "$OUT" "$OUT.2" 2>/dev/null
        kill -HUP "$APID"
        sleep 0.3
        start_ingest
        ok "ingest killed, the file rotated while it was down, ingest restarted"
    else
        for _ in $(seq 300); do grep -q "full" "$TMP/ingest.log" && break; sleep 0.1; done
        grep -q "database or disk is full; retrying" "$TMP/ingest.log" && ok "the store's disk fills up; ingest retries" ||
            bad "the disk never filled: $(tail -3 "$TMP/ingest.log")"
        sleep 2
        kill -0 "$IPID" 2>/dev/null && ok "ingest waits, still running" || bad "ingest exited"
        # A one-shot ingest into the full store says the events were not stored (not
        # "unchanged"), and fails.
        cp "$OUT" "$TMP/copy.jsonl"
        "$BACKEND" ingest "$TMP/copy.jsonl" --store "$STORE" 2>"$TMP/oneshot.err"
        st=$?
        n_fail=$(grep -o '[0-9]* not stored (store error)' "$TMP/oneshot.err" | cut -d' ' -f1)
        [ "$st" -eq 1 ] && [ "${n_fail:-0}" -gt 0 ] && ok "one-shot ingest into the full store: exit 1, $n_fail not stored" ||
            bad "one-shot ingest: exit $st: $(tail -1 "$TMP/oneshot.err")"
        mount -o remount,size=64m "$TMP/small"
    fi
    wait "$SPID" || bad "em-synth failed"
    "$AGENT" scan --agent e2e "$DEST" >"$TMP/want.jsonl" 2>/dev/null
    want=$($FOLD counts "$TMP/want.jsonl" | python3 -c 'import json,sys; print(sum(json.load(sys.stdin).values()))')
    for _ in $(seq 300); do
        got=$("$BACKEND" query entities --store "$STORE" 2>/dev/null | wc -l)
        [ "$got" -ge "$want" ] && break
        sleep 0.1
    done
    sleep 1 # the last changes of entities already there
    stop_agent "$APID" || bad "agent exit status"
    sleep 1
    stop_agent "$IPID" && ok "ingest --follow exits 0 on SIGTERM" || bad "ingest exit status"
    "$BACKEND" query entities --store "$STORE" >"$TMP/store.jsonl" 2>"$TMP/query.err" || bad "query: $(cat "$TMP/query.err")"
    out=$($FOLD compare "$TMP/want.jsonl" "$TMP/store.jsonl" 2>&1)
    n=$(wc -l <"$TMP/store.jsonl")
    if [[ $out == *"-> EQUAL"* ]] && [ "$n" -eq "$want" ]; then ok "the store equals scan ($n entities)"; else bad "store differs from scan: $out"; fi
    if [ "$CASE" = follow ]; then
        grep -q "rotated to .*events.jsonl.[12]: finishing it first" "$TMP/ingest.log" && ok "the file rotated while ingest was down was finished first" ||
            bad "no resume of the rotated file: $(grep -i rotat "$TMP/ingest.log")"
        grep -q "rotated; going on with .*events.jsonl" "$TMP/ingest.log" && ok "live rotation followed" || bad "live rotation not followed"
    fi
    ;;
*)
    echo "unknown case $CASE"
    exit 2
    ;;
esac
finish
