#!/bin/bash
# test-windows.sh [BUILD_DIR] [LINUX_EM_AGENT] — builds em-agent.exe (build-windows.sh),
# installs wine if it is missing, and runs under wine, in a new wine prefix:
#   - the unit tests that apply to the agent (ctest through CMake's cross-compiling
#     emulator: wine);
#   - smoke cases against em-agent.exe:
#     scan      `scan` of the authored visit gives the same events, byte for byte, as the
#               Linux build (LINUX_EM_AGENT, default build/agent/em-agent), but for emitted_at;
#     fsevent   `watch` (the fs-event backend) started on an empty directory while
#               tests/e2e/epu_writer.py writes the visit the EPU way; then Ctrl-C; then a
#               restart on the unchanged tree that trusts its state (nothing read again);
#     midway    the same, the agent started after the writer has begun;
#     poll      the same with --poll;
#     kill      the agent killed (SIGKILL) twice while the writer runs (snapshots every
#               0.5 s, renamed over the last), and started again;
#     service   `service install` (refused without a sink or with a bad setting; then from
#               agent.conf alone), `net start` (running), the visit written, `sc stop`
#               (drained, exit status 0), `service start` and `service stop` once more,
#               `service uninstall`;
#     burst     10,042 files written by em-synth as fast as it can into a watched directory
#               (the 64 KiB change buffer): the notification overflows and rescans are
#               reported, and every entity arrives;
#     package   scripts/package-windows.sh: the zip's em-agent.exe runs; the NSIS installer
#               installs silently (files, the sample agent.conf in %ProgramData%, the
#               uninstall entry) and its uninstaller removes them again;
#     busy      a micrograph manifest written and held open without sharing for 4 s (the
#               way a writer that shares nothing does): read once released, never failed;
#     each ends with: exit status 0 after Ctrl-C, the folded events equal scan's of the
#     final tree, and no event repeats its entity's data.
# Ends with ctest's summary and one line per smoke case.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build-win}
linux_agent=${2:-$top/build/agent/em-agent}
synth=$(dirname "$linux_agent")/../tools/em-synth
say() { echo "test-windows: $*" >&2; }

need=()
for p in wine wine64 unzip; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
"$top/scripts/build-windows.sh" "$build"

work=$(mktemp -d)
export WINEPREFIX=$work/wine WINEDEBUG=-all
cleanup() { wineserver -k >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
# A new prefix is made by its first program; wineserver is then kept running so that each
# test does not wait for it to exit (48 s for the suite instead of 10).
wine cmd /c exit </dev/null >/dev/null 2>&1 || true
wineserver -p </dev/null >/dev/null 2>&1 || true

fail=0
if [ -z "${EM_SMOKE_ONLY:-}" ]; then # EM_SMOKE_ONLY=1: the smoke cases alone
    # Wine's server dies now and then ("recvmsg: Connection reset by peer"): the tests that
    # failed run once more with a fresh one before they count, as ctest's until-pass:2 does
    # on Linux. A real failure fails twice.
    if ! (cd "$build" && ctest --timeout 120 --output-on-failure); then
        say "unit tests failed; the failed ones once more with a fresh wineserver"
        wineserver -k >/dev/null 2>&1 || true
        wineserver -p </dev/null >/dev/null 2>&1 || true
        (cd "$build" && ctest --rerun-failed --timeout 120 --output-on-failure) || fail=1
    fi
fi

exe=$build/agent/em-agent.exe
# A case that fails is run once more, with a fresh wineserver, before it counts (as ctest's
# --repeat until-pass:2): wine 8's server now and then dies under load ("wine client
# error: recvmsg: Connection reset by peer", seen once in CI).
smoke() { # NAME: runs smoke_NAME, prints one line
    if "smoke_$1"; then
        echo "smoke $1: passed"
        return
    fi
    say "smoke $1 failed; once more with a fresh wineserver"
    wineserver -k >/dev/null 2>&1 || true
    wineserver -p </dev/null >/dev/null 2>&1 || true
    if "smoke_$1"; then echo "smoke $1: passed (the second time)"; else echo "smoke $1: FAILED"; fail=1; fi
}
normalise() { sed -e 's/"emitted_at":"[^"]*"//' "$1"; }
smoke_scan() {
    [ -x "$linux_agent" ] || { say "no Linux em-agent at $linux_agent"; return 1; }
    local visit=$top/testdata/visit-mini
    "$linux_agent" scan -q --no-progress --agent smoke "$visit" >"$work/linux.jsonl" 2>"$work/linux.err" || return 1
    (cd "$visit" && wine "$exe" scan -q --no-progress --agent smoke . >"$work/win.jsonl" 2>"$work/win.err") ||
        { cat "$work/win.err" >&2; return 1; }
    [ "$(wc -l <"$work/win.jsonl")" -ge 10 ] || { say "scan under wine gave $(wc -l <"$work/win.jsonl") events"; return 1; }
    cmp -s <(normalise "$work/linux.jsonl") <(normalise "$work/win.jsonl") ||
        { diff <(normalise "$work/linux.jsonl") <(normalise "$work/win.jsonl") | head -5 >&2; return 1; }
}
# verify DIR: the events DIR/events.jsonl repeat nothing and fold to scan of DIR/tree.
verify() {
    local d=$1
    (cd "$d" && wine "$exe" scan -q --no-progress tree >"$d/scan.jsonl" 2>/dev/null) || return 1
    python3 "$top/tests/e2e/fold.py" check "$d/events.jsonl" >&2 || return 1
    python3 "$top/tests/e2e/fold.py" compare "$d/scan.jsonl" "$d/events.jsonl" >&2
}
# ctrl_c NAME DIR PID: Ctrl-C to the agent, which must exit 0.
ctrl_c() {
    local rc=0
    kill -INT "$3" 2>/dev/null || true
    wait "$3" || rc=$?
    [ $rc = 0 ] || { say "$1: exit status $rc after Ctrl-C"; cat "$2/agent.err" >&2; return 1; }
}

# watch_case NAME [--midway] [agent options...]
watch_case() {
    local name=$1 midway=0
    shift
    [ "${1:-}" = --midway ] && { midway=1; shift; }
    local d=$work/$name
    rm -rf "$d" && mkdir -p "$d/tree" "$d/state"
    local wpid=
    if [ $midway = 1 ]; then
        python3 "$top/tests/e2e/epu_writer.py" "$top/testdata/visit-mini" "$d/tree" --pace 0.02 \
            >"$d/writer.out" &
        wpid=$!
        sleep 0.5
    fi
    (cd "$d" && exec wine "$exe" watch -q --settle 300 --state-dir state --out events.jsonl "$@" tree \
        2>"$d/agent.err") &
    local apid=$!
    if [ $midway = 0 ]; then
        sleep 3 # the agent is watching (its start under wine takes a moment)
        python3 "$top/tests/e2e/epu_writer.py" "$top/testdata/visit-mini" "$d/tree" --pace 0.02 >"$d/writer.out"
    else
        wait "$wpid"
    fi
    sleep 3 # settle, then the last burst is emitted
    ctrl_c "$name" "$d" "$apid" || return 1
    verify "$d"
}
smoke_fsevent() {
    watch_case fsevent || return 1
    # A restart on the unchanged tree trusts the journal and the model snapshot: nothing
    # read again, nothing emitted, no warning (Windows renames neither onto an existing
    # file nor an open one: both once broke this).
    local d=$work/fsevent
    (cd "$d" && wine "$exe" watch --once -v --state-dir state --out events.jsonl tree 2>"$d/restart.err") ||
        { cat "$d/restart.err" >&2; return 1; }
    grep -q 'state restored from' "$d/restart.err" && grep -q 'initial walk: 0 files parsed' "$d/restart.err" &&
        grep -q '; 0 events;' "$d/restart.err" && ! grep -q 'warning' "$d/restart.err" ||
        { say "fsevent: the restart did not trust its state:"; cat "$d/restart.err" >&2; return 1; }
}
smoke_midway() { watch_case midway --midway; }
smoke_poll() { watch_case poll --poll 0.3; }
smoke_kill() {
    local d=$work/kill
    rm -rf "$d" && mkdir -p "$d/tree" "$d/state"
    python3 "$top/tests/e2e/epu_writer.py" "$top/testdata/visit-mini" "$d/tree" --pace 0.15 \
        >"$d/writer.out" &
    local wpid=$! apid i
    for i in 1 2; do # snapshots every 0.5 s: each start resumes from the killed run's
        (cd "$d" && exec wine "$exe" watch --settle 300 --snapshot-every 0.5 --state-dir state \
            --out events.jsonl tree 2>>"$d/agent.err") &
        apid=$!
        sleep 2.5
        kill -KILL "$apid" 2>/dev/null || true
        wait "$apid" 2>/dev/null || true
        wineserver -w 2>/dev/null || true # the killed process's handles are gone
        wine cmd /c exit </dev/null >/dev/null 2>&1 || true
    done
    wait "$wpid"
    (cd "$d" && exec wine "$exe" watch -q --settle 300 --state-dir state --out events.jsonl tree \
        2>>"$d/agent.err") &
    apid=$!
    sleep 5
    ctrl_c kill "$d" "$apid" || return 1
    ! grep -q 'no snapshot written\|cannot mark' "$d/agent.err" ||
        { say "kill: a snapshot could not be written:"; cat "$d/agent.err" >&2; return 1; }
    verify "$d"
}

smoke_service() {
    local d=$work/service name=em-agent-smoke
    rm -rf "$d" && mkdir -p "$d/tree"
    # wine ends its services about 3 s after the last user program: one is kept running.
    sleep 120 | wine cmd /c 'set /p x=' >/dev/null 2>&1 &
    local holder=$!
    sleep 1
    local zd="Z:$d" rc=0
    rm -f "$WINEPREFIX/drive_c/ProgramData/em-agent/agent.conf"
    # No sink: refused, saying why, and nothing installed.
    if wine "$exe" service install --name $name "$zd/tree" >"$d/nosink.out" 2>&1 ||
        ! grep -q "needs a durable sink" "$d/nosink.out" ||
        wine "$exe" service status --name $name >/dev/null 2>&1; then
        say "service install without a sink was not refused"
        cat "$d/nosink.out" >&2
        kill "$holder" 2>/dev/null || true
        return 1
    fi
    # A bad setting: refused by the watch's own checks, nothing installed.
    if wine "$exe" service install --name $name --out "$zd/events.jsonl" --settle soon "$zd/tree" \
        >"$d/bad.out" 2>&1 || ! grep -q "settle" "$d/bad.out" ||
        wine "$exe" service status --name $name >/dev/null 2>&1; then
        say "service install with a bad setting was not refused"
        cat "$d/bad.out" >&2
        kill "$holder" 2>/dev/null || true
        return 1
    fi
    # The one-command install: the settings in %ProgramData%\em-agent\agent.conf.
    local pd=$WINEPREFIX/drive_c/ProgramData/em-agent
    mkdir -p "$pd"
    printf 'dir = %s\r\nout = %s\r\nsettle = 300\r\n' "$zd/tree" "$zd/events.jsonl" >"$pd/agent.conf"
    wine "$exe" service install --name $name >"$d/install.out" 2>&1 || { cat "$d/install.out" >&2; rc=1; }
    grep -q 'settings from .*agent.conf' "$d/install.out" || { say "install did not read agent.conf"; rc=1; }
    local evkey='HKLM\SYSTEM\CurrentControlSet\Services\EventLog\Application\'$name
    wine reg query "$evkey" /v EventMessageFile 2>/dev/null | grep -qi 'em-agent.exe' ||
        { say "the Event Log source was not registered"; rc=1; }
    # Windows' own tools: net start, then sc stop (the drain), then the exit status.
    [ $rc = 0 ] && { wine net start $name >"$d/start.out" 2>&1 || rc=1; }
    [ $rc = 0 ] && { wine "$exe" service status --name $name | grep -q "running" || rc=1; }
    if [ $rc = 0 ]; then
        python3 "$top/tests/e2e/epu_writer.py" "$top/testdata/visit-mini" "$d/tree" --pace 0.02 >/dev/null
        sleep 3
        wine sc stop $name >"$d/stop.out" 2>&1 || rc=1
        local i
        for i in $(seq 1 60); do
            wine "$exe" service status --name $name >"$d/status.out" 2>&1
            grep -q "stopped" "$d/status.out" && break
            sleep 0.5
        done
        grep -qx "$name: stopped" <(head -1 "$d/status.out") ||
            { say "after sc stop: $(head -1 "$d/status.out") (expected stopped, exit status 0)"; rc=1; }
        # And this program's own start and stop, which wait and report the exit status.
        wine "$exe" service start --name $name >>"$d/start.out" 2>&1 || rc=1
        wine "$exe" service stop --name $name >"$d/stop2.out" 2>&1 || rc=1
        grep -q "stopped (exit status 0)" "$d/stop2.out" || rc=1
    fi
    wine "$exe" service uninstall --name $name >"$d/uninstall.out" 2>&1 || rc=1
    if wine reg query "$evkey" >/dev/null 2>&1; then
        say "the Event Log source outlived the service"
        rc=1
    fi
    rm -f "$pd/agent.conf"
    kill "$holder" 2>/dev/null || true
    [ $rc = 0 ] || { cat "$d"/*.out >&2; return 1; }
    verify "$d"
}

smoke_burst() {
    local d=$work/burst
    rm -rf "$d" && mkdir -p "$d/tree" "$d/state"
    [ -x "$synth" ] || { say "no em-synth at $synth"; return 1; }
    (cd "$d" && exec wine "$exe" watch -v --settle 300 --state-dir state --out events.jsonl tree \
        2>"$d/agent.err") &
    local apid=$!
    sleep 3
    "$synth" -q --sessions 1 --aborted 0 --squares 20 --unimaged 0 --holes 50 --mics 9 \
        --dm-every 10 --no-images "$d/tree/visit" || return 1
    local files entities i=0
    files=$(find "$d/tree" -type f | wc -l)
    (cd "$d" && "$linux_agent" scan -q --no-progress tree >"$d/scan.jsonl") || return 1
    entities=$(wc -l <"$d/scan.jsonl")
    # Wine delivers notifications slowly (100-250 files a second here): wait until the
    # events fold to the final tree, at most 5 minutes.
    for i in $(seq 1 60); do
        sleep 5
        python3 "$top/tests/e2e/fold.py" compare "$d/scan.jsonl" "$d/events.jsonl" >/dev/null 2>&1 && break
    done
    say "burst: $entities entities caught up $((i * 5)) s after the writer ended"
    ctrl_c burst "$d" "$apid" || return 1
    local line
    line=$(grep 'stopped:' "$d/agent.err" | tail -1)
    say "burst: $files files written; $(echo "$line" | grep -o '[0-9]* notification overflows, [0-9]* rescans') (64 KiB change buffer)"
    python3 "$top/tests/e2e/fold.py" check "$d/events.jsonl" >&2 || return 1
    python3 "$top/tests/e2e/fold.py" compare "$d/scan.jsonl" "$d/events.jsonl" >&2
}
smoke_busy() {
    local d=$work/busy
    rm -rf "$d" && mkdir -p "$d/state" && cp -r "$top/testdata/visit-mini" "$d/tree"
    local rel=Supervisor_20250101_100000_1_mini_EPU/Images-Disc1/GridSquare_1001/Data
    local name=FoilHole_2002_Data_4001_1_20250101_102200.xml
    mv "$d/tree/$rel/$name" "$d/$name"
    (cd "$d" && exec wine "$exe" watch -vv --settle 300 --state-dir state --out events.jsonl tree \
        2>"$d/agent.err") &
    local apid=$!
    sleep 3
    wine "$build/tests/holdfile.exe" "Z:$d/$name" "Z:$d/tree/$rel/$name" 4 >"$d/hold.out" 2>&1 ||
        { cat "$d/hold.out" >&2; return 1; }
    sleep 3
    ctrl_c busy "$d" "$apid" || return 1
    grep -q "$name: in use by another process" "$d/agent.err" ||
        { say "busy: the agent never met the sharing violation"; return 1; }
    if grep "$name" "$d/agent.err" | grep -q 'warning\|error'; then
        say "busy: the held file was reported as a problem:"
        grep "$name" "$d/agent.err" | grep 'warning\|error' >&2
        return 1
    fi
    grep 'stopped:' "$d/agent.err" | grep -q '(0 failed' || { say "busy: a file counted failed"; return 1; }
    verify "$d"
}
smoke_package() {
    local d=$work/package
    rm -rf "$d" && mkdir -p "$d"
    "$top/scripts/package-windows.sh" "$build" "$d/dist" >"$d/package.out" 2>&1 ||
        { cat "$d/package.out" >&2; return 1; }
    local zip setup
    zip=$(ls "$d"/dist/em-agent-*-windows-x64.zip) setup=$(ls "$d"/dist/em-agent-*-setup.exe)
    (cd "$d" && unzip -q "$zip") || return 1
    local unz=("$d"/em-agent-*-windows-x64)
    for f in em-agent.exe agent.conf README.txt; do
        [ -f "${unz[0]}/$f" ] || { say "package: $f is not in the zip"; return 1; }
    done
    wine "${unz[0]}/em-agent.exe" --version >"$d/version.out" 2>&1 && grep -q 'em-agent' "$d/version.out" ||
        { say "package: the zip's em-agent.exe does not run"; cat "$d/version.out" >&2; return 1; }
    local c=$WINEPREFIX/drive_c
    rm -f "$c/ProgramData/em-agent/agent.conf"
    wine "$setup" /S '/D=C:\em-agent-test' >/dev/null 2>&1 || { say "package: the installer failed"; return 1; }
    for f in "$c/em-agent-test/em-agent.exe" "$c/em-agent-test/uninstall.exe" \
        "$c/ProgramData/em-agent/agent.conf"; do
        [ -f "$f" ] || { say "package: the installer left no $f"; return 1; }
    done
    wine reg query 'HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall\em-agent' /v DisplayVersion \
        >/dev/null 2>&1 || { say "package: no uninstall entry"; return 1; }
    wine 'C:\em-agent-test\uninstall.exe' /S '_?=C:\em-agent-test' >/dev/null 2>&1 ||
        { say "package: the uninstaller failed"; return 1; }
    [ ! -f "$c/em-agent-test/em-agent.exe" ] || { say "package: em-agent.exe left after uninstall"; return 1; }
    [ -f "$c/ProgramData/em-agent/agent.conf" ] || { say "package: uninstall removed the settings"; return 1; }
    rm -f "$c/ProgramData/em-agent/agent.conf" # the later cases choose their own
    say "package: $(basename "$zip") ($(du -h "$zip" | cut -f1)), $(basename "$setup") ($(du -h "$setup" | cut -f1))"
}

# EM_SMOKE="busy burst": only those cases.
for c in ${EM_SMOKE:-scan package busy burst fsevent midway poll kill service}; do
    smoke "$c"
done
exit $fail
