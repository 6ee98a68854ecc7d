#!/bin/bash
# test-windows.sh [BUILD_DIR] [LINUX_EM_AGENT] — builds em-agent.exe (build-windows.sh),
# installs wine if it is missing, and runs under wine, in a new wine prefix:
#   - the unit tests that apply to the agent (ctest through CMake's cross-compiling
#     emulator: wine);
#   - smoke cases against em-agent.exe:
#     scan      `scan` of the authored visit gives the same events, byte for byte, as the
#               Linux build (LINUX_EM_AGENT, default build/agent/em-agent), but for emitted_at;
#     fsevent   `watch` (the fs-event backend) started on an empty directory while
#               tests/e2e/epu_writer.py writes the visit the EPU way; then Ctrl-C;
#     midway    the same, the agent started after the writer has begun;
#     poll      the same with --poll;
#     kill      the agent killed (SIGKILL) twice while the writer runs, and started again;
#     service   `service install`, `service start` (running), the visit written, `service
#               stop` (drained, exit status 0), `service uninstall`;
#     each ends with: exit status 0 after Ctrl-C, the folded events equal scan's of the
#     final tree, and no event repeats its entity's data.
# Ends with ctest's summary and one line per smoke case.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build-win}
linux_agent=${2:-$top/build/agent/em-agent}
say() { echo "test-windows: $*" >&2; }

need=()
for p in wine wine64; do
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
    (cd "$build" && ctest --timeout 120 --output-on-failure) || fail=1
fi

exe=$build/agent/em-agent.exe
smoke() { # NAME: runs smoke_NAME, prints one line
    if "smoke_$1"; then echo "smoke $1: passed"; else echo "smoke $1: FAILED"; fail=1; fi
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
smoke_fsevent() { watch_case fsevent; }
smoke_midway() { watch_case midway --midway; }
smoke_poll() { watch_case poll --poll 0.3; }
smoke_kill() {
    local d=$work/kill
    rm -rf "$d" && mkdir -p "$d/tree" "$d/state"
    python3 "$top/tests/e2e/epu_writer.py" "$top/testdata/visit-mini" "$d/tree" --pace 0.15 \
        >"$d/writer.out" &
    local wpid=$! apid i
    for i in 1 2; do
        (cd "$d" && exec wine "$exe" watch -q --settle 300 --state-dir state --out events.jsonl tree \
            2>>"$d/agent.err") &
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
    # No sink: refused, saying why, and nothing installed.
    if wine "$exe" service install --name $name "$zd/tree" >"$d/nosink.out" 2>&1 ||
        ! grep -q "needs a sink" "$d/nosink.out" ||
        wine "$exe" service status --name $name >/dev/null 2>&1; then
        say "service install without a sink was not refused"
        cat "$d/nosink.out" >&2
        kill "$holder" 2>/dev/null || true
        return 1
    fi
    wine "$exe" service install --name $name --out "$zd/events.jsonl" --settle 300 "$zd/tree" \
        >"$d/install.out" 2>&1 || { cat "$d/install.out" >&2; rc=1; }
    [ $rc = 0 ] && { wine "$exe" service start --name $name >"$d/start.out" 2>&1 || rc=1; }
    [ $rc = 0 ] && { grep -q "running" "$d/start.out" || rc=1; }
    if [ $rc = 0 ]; then
        python3 "$top/tests/e2e/epu_writer.py" "$top/testdata/visit-mini" "$d/tree" --pace 0.02 >/dev/null
        sleep 3
        wine "$exe" service stop --name $name >"$d/stop.out" 2>&1 || rc=1
        grep -q "stopped (exit status 0)" "$d/stop.out" || rc=1
    fi
    wine "$exe" service uninstall --name $name >"$d/uninstall.out" 2>&1 || rc=1
    kill "$holder" 2>/dev/null || true
    [ $rc = 0 ] || { cat "$d"/*.out >&2; return 1; }
    verify "$d"
}

smoke scan
smoke fsevent
smoke midway
smoke poll
smoke kill
smoke service
exit $fail
