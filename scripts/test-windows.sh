#!/bin/bash
# test-windows.sh [BUILD_DIR] [LINUX_EM_AGENT] — builds em-agent.exe (build-windows.sh),
# installs wine if it is missing, and runs under wine, in a new wine prefix:
#   - the unit tests that apply to the agent (ctest through CMake's cross-compiling
#     emulator: wine);
#   - smoke cases against em-agent.exe: `scan` of the authored visit gives the same
#     events, byte for byte, as the Linux build (LINUX_EM_AGENT, default build/agent/em-agent),
#     but for emitted_at.
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
(cd "$build" && ctest --timeout 120 --output-on-failure) || fail=1

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
smoke scan
exit $fail
