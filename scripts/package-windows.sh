#!/bin/bash
# package-windows.sh [BUILD_DIR] [OUT_DIR] — the Windows deliverables, from Debian:
#   OUT_DIR/em-agent-VERSION-windows-x64.zip        em-agent.exe, agent.conf, README.txt
#   OUT_DIR/em-agent-VERSION-windows-x64-setup.exe  the same as an installer (NSIS)
# BUILD_DIR (default build-win) is built first (scripts/build-windows.sh); OUT_DIR
# defaults to BUILD_DIR/dist. Installs zip and nsis when missing. Text files get CRLF
# line ends, for Notepad.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build-win}
out=${2:-$build/dist}
say() { echo "package-windows: $*" >&2; }

need=()
for p in nsis zip; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
"$top/scripts/build-windows.sh" "$build" >&2

version=$(sed -n 's/^project(em-agent VERSION \([0-9.]*\).*/\1/p' "$top/CMakeLists.txt")
name=em-agent-$version-windows-x64
stage=$build/stage/$name
rm -rf "$stage" && mkdir -p "$stage" "$out"
x86_64-w64-mingw32-strip -o "$stage/em-agent.exe" "$build/agent/em-agent.exe"
for f in agent.conf README.txt; do
    sed 's/\r*$/\r/' "$top/packaging/windows/$f" >"$stage/$f"
done
rm -f "$out/$name.zip"
(cd "$build/stage" && zip -q -r -X "$out/$name.zip" "$name")
say "wrote $out/$name.zip ($(du -h "$out/$name.zip" | cut -f1))"
makensis -V2 -DVERSION="$version" -DSTAGE="$stage" -DOUTFILE="$out/$name-setup.exe" \
    "$top/packaging/windows/em-agent.nsi" >&2
say "wrote $out/$name-setup.exe ($(du -h "$out/$name-setup.exe" | cut -f1))"
