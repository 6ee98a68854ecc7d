#!/bin/bash
# build-windows.sh [BUILD_DIR] — builds em-agent.exe for 64-bit Windows on Debian 12:
# installs the cross-compiler if it is missing, builds (or reuses) the static sysroot of
# the agent's dependencies (scripts/build-windows-deps.sh; a few minutes the first time,
# about a second afterwards) and cross-compiles the agent with -Werror into BUILD_DIR
# (default build-win). The result, BUILD_DIR/agent/em-agent.exe, is one static file that
# imports only system DLLs. Only the agent is built for Windows.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build-win}
say() { echo "build-windows: $*" >&2; }

need=()
for p in gcc-mingw-w64-x86-64 cmake ninja-build dpkg-dev pkg-config; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        say "missing packages: ${need[*]} (run as root, or: sudo apt-get install ${need[*]})"
        exit 1
    fi
    say "installing ${need[*]}"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi

sysroot=$("$top/scripts/build-windows-deps.sh" | sed -n 's/^EM_MINGW_SYSROOT=//p')
[ -n "$sysroot" ] || { say "the dependency build gave no sysroot"; exit 1; }
# A build directory made against another sysroot keeps its paths in the CMake cache.
if [ -f "$build/CMakeCache.txt" ] && [ "$(cat "$build/.em-sysroot" 2>/dev/null)" != "$sysroot" ]; then
    rm -f "$build/CMakeCache.txt"
fi
mkdir -p "$build"
echo "$sysroot" >"$build/.em-sysroot"
cmake -S "$top" -B "$build" -G Ninja -DCMAKE_TOOLCHAIN_FILE="$top/cmake/mingw64.cmake" \
    -DEM_MINGW_SYSROOT="$sysroot" -DEM_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)"
say "built $build/agent/em-agent.exe ($(du -h "$build/agent/em-agent.exe" | cut -f1))"
