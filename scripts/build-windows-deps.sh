#!/bin/bash
# build-windows-deps.sh — builds em-agent's Windows dependencies (libuv, libxml2, cJSON,
# rabbitmq-c, cmocka; OpenSSL with EM_WIN_TLS=1, not yet used nor tested) from Debian's source packages with
# mingw-w64, as static libraries, into a sysroot, and prints its path as its last line:
#
#   EM_MINGW_SYSROOT=/var/cache/em-mingw/<key>/sysroot
#
# The sysroot is cached under $EM_MINGW_CACHE (default /var/cache/em-mingw) by a key made
# of the source versions, the components, this script, the toolchain file and the
# compiler's version: a warm run takes about a second, a cold one a few minutes. The
# system's apt configuration is never edited: source packages come through a private one
# in the cache, made from the system's own sources with `deb-src` in place of `deb`.
# Needs gcc-mingw-w64-x86-64, cmake, ninja-build, dpkg-dev (scripts/build-windows.sh
# installs them).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cache=${EM_MINGW_CACHE:-/var/cache/em-mingw}
jobs=${EM_JOBS:-$(nproc)}
tls=${EM_WIN_TLS:-0}
triple=x86_64-w64-mingw32
say() { echo "build-windows-deps: $*" >&2; }
die() { say "$*"; exit 1; }

command -v $triple-gcc >/dev/null || die "$triple-gcc missing (apt-get install gcc-mingw-w64-x86-64)"
for t in cmake ninja dpkg-source apt-get sha256sum; do
    command -v $t >/dev/null || die "$t missing (scripts/build-windows.sh installs what is needed)"
done

packages="libuv1 libxml2 cjson librabbitmq cmocka"
[ "$tls" = 1 ] && packages="$packages openssl"

# ---- a private apt configuration for source packages ----
apt_dir=$cache/apt
mkdir -p "$apt_dir/parts" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
: >"$apt_dir/sources.list"
rm -f "$apt_dir/parts/"*
for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    sed -e 's/^Types:.*/Types: deb-src/' "$f" >"$apt_dir/parts/$(basename "$f")"
done
if [ -f /etc/apt/sources.list ]; then
    sed -n -e 's/^deb \(.*\)/deb-src \1/p' /etc/apt/sources.list >"$apt_dir/sources.list"
fi
for f in /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    sed -n -e 's/^deb \(.*\)/deb-src \1/p' "$f" >"$apt_dir/parts/$(basename "$f")"
done
apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=$apt_dir/parts"
    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o APT::Sandbox::User=root
    -o Debug::NoLocking=1)
# The list is refreshed at most once an hour: a warm run must not wait for the network.
stamp=$apt_dir/updated
if [ ! -f "$stamp" ] || [ -n "$(find "$stamp" -mmin +60)" ]; then
    apt-get -q "${apt_opts[@]}" update >"$apt_dir/update.log" 2>&1 ||
        { cat "$apt_dir/update.log" >&2; die "apt-get update of the source lists failed"; }
    touch "$stamp"
fi
suites=$(
    cat "$apt_dir/parts/"*.sources 2>/dev/null | sed -n 's/^Suites:\s*//p' | tr ' ' '\n'
    cat "$apt_dir/sources.list" "$apt_dir/parts/"*.list 2>/dev/null | awk '{print $3}' || true
)
suites=$(echo "$suites" | sort -u | tr '\n' ' ')
[ -n "${suites// /}" ] || die "no suites in the system's apt sources"

# The version of a source package to use: the highest any suite lists. (The security
# suite can list versions whose files are missing: the download step falls back.)
candidates() { # PKG: "version suite" lines, highest first
    local pkg=$1 s v
    for s in $suites; do
        v=$(apt-get -q "${apt_opts[@]}" source --print-uris "$pkg/$s" 2>/dev/null |
            sed -n "s/.*'[^_']*_\([^']*\)\.dsc'.*/\1/p" | head -1 | sed 's/%2[bB]/+/g; s/%3[aA]/:/g; s/%7[eE]/~/g') || true
        if [ -n "$v" ]; then echo "$v $s"; fi
    done | sort -u | sort -r -k1,1 -V
}

# The version to use: the highest that some suite lists and whose files download (a suite
# can list a version whose files are missing). The answer is kept per list of candidates,
# so a warm run downloads nothing; the sources stay in the cache for a later cold build.
resolved=$apt_dir/resolved
touch "$resolved"
declare -A version
resolve() { # PKG
    local pkg=$1 cands sig v s
    cands=$(candidates "$pkg")
    [ -n "$cands" ] || die "no source package $pkg in the system's suites ($suites)"
    sig=$(echo "$cands" | sha256sum | cut -c1-16)
    v=$(awk -v p="$pkg" -v g="$sig" '$1 == p && $2 == g {print $3}' "$resolved" | tail -1)
    if [ -n "$v" ] && ls "$apt_dir/src/$pkg-$v/"*.dsc >/dev/null 2>&1; then
        version[$pkg]=$v
        return
    fi
    while read -r v s; do
        rm -rf "$apt_dir/src/$pkg-$v" && mkdir -p "$apt_dir/src/$pkg-$v"
        if (cd "$apt_dir/src/$pkg-$v" && apt-get -q "${apt_opts[@]}" source --download-only "$pkg/$s" \
            >"$apt_dir/src/$pkg-$v.log" 2>&1); then
            echo "$pkg $sig $v $s" >>"$resolved"
            version[$pkg]=$v
            return
        fi
        say "  $pkg $v ($s) does not download; trying an older version"
        rm -rf "$apt_dir/src/$pkg-$v"
    done <<<"$cands"
    die "no version of $pkg downloads (see $apt_dir/src/$pkg-*.log)"
}
for p in $packages; do resolve "$p"; done

script_sum=$(cat "$0" "$top/cmake/mingw64.cmake" | sha256sum | cut -c1-64) # contents, not paths
gcc_version=$($triple-gcc -dumpfullversion)
key_text="$(for p in $packages; do echo "$p=${version[$p]}"; done) tls=$tls script=$script_sum gcc=$gcc_version"
key=$(echo "$key_text" | sha256sum | cut -c1-16)
root=$cache/$key
sysroot=$root/sysroot
if [ -f "$root/.complete" ]; then
    echo "EM_MINGW_SYSROOT=$sysroot"
    exit 0
fi

say "building the Windows sysroot $key (a few minutes; cached afterwards)"
for p in $packages; do say "  $p ${version[$p]}"; done
# Unfinished sysroots go; of the finished ones the two newest stay.
for d in "$cache"/*/; do
    d=${d%/}
    [ "$(basename "$d")" = apt ] && continue
    [ -f "$d/.complete" ] || rm -rf "$d"
done
{ ls -1dt "$cache"/*/.complete 2>/dev/null || true; } | tail -n +3 | while read -r c; do rm -rf "$(dirname "$c")"; done
rm -rf "$root"
mkdir -p "$root/src" "$root/build" "$sysroot"
log=$root/build.log

# ---- sources ----
fetch() { # PKG: unpacks into $root/src/PKG
    local pkg=$1
    (cd "$apt_dir/src/$pkg-${version[$pkg]}" && dpkg-source -x --no-check ./*.dsc "$root/src/$pkg" >>"$log" 2>&1) ||
        die "cannot unpack $pkg (see $log)"
}

cm() { # NAME SRC [cmake args...]
    local name=$1 src=$2
    shift 2
    cmake -S "$src" -B "$root/build/$name" -G Ninja -DCMAKE_TOOLCHAIN_FILE="$top/cmake/mingw64.cmake" \
        -DEM_MINGW_SYSROOT="$sysroot" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$sysroot" \
        -DBUILD_SHARED_LIBS=OFF "$@" >>"$log" 2>&1 || die "configuring $name failed (see $log)"
    cmake --build "$root/build/$name" -j "$jobs" >>"$log" 2>&1 || die "building $name failed (see $log)"
    cmake --install "$root/build/$name" >>"$log" 2>&1 || die "installing $name failed (see $log)"
}

t0=$(date +%s)
for p in $packages; do fetch "$p"; done
say "  sources: $(($(date +%s) - t0)) s"

step() { say "  $1: $(($(date +%s) - t1)) s"; t1=$(date +%s); }
t1=$(date +%s)
cm libuv "$root/src/libuv1" -DLIBUV_BUILD_TESTS=OFF -DLIBUV_BUILD_BENCH=OFF
rm -f "$sysroot"/bin/libuv*.dll "$sysroot"/lib/libuv.dll.a
cp "$sysroot/lib/pkgconfig/libuv-static.pc" "$sysroot/lib/pkgconfig/libuv.pc"
step libuv

# Without pthread.h libxml2 uses Windows threads (with it, mingw's winpthreads, which its
# CMake files do not link: 30 undefined pthread_* references).
cm libxml2 "$root/src/libxml2" -DHAVE_PTHREAD_H=OFF -DLIBXML2_WITH_ICONV=OFF -DLIBXML2_WITH_ZLIB=OFF \
    -DLIBXML2_WITH_LZMA=OFF -DLIBXML2_WITH_HTTP=OFF -DLIBXML2_WITH_FTP=OFF -DLIBXML2_WITH_MODULES=OFF \
    -DLIBXML2_WITH_PYTHON=OFF -DLIBXML2_WITH_TESTS=OFF -DLIBXML2_WITH_PROGRAMS=OFF -DLIBXML2_WITH_LEGACY=OFF
step libxml2

# mingw's own printf and scanf (C99, correctly rounded), not msvcrt's: cJSON reads its
# 15-digit output back to choose 15 or 17 digits, and msvcrt's sscanf gave some numbers
# 17 digits where Linux gives 15.
cm cjson "$root/src/cjson" -DCMAKE_C_FLAGS=-D__USE_MINGW_ANSI_STDIO=1 -DENABLE_CUSTOM_COMPILER_FLAGS=OFF -DENABLE_CJSON_TEST=OFF \
    -DENABLE_CJSON_UTILS=OFF -DENABLE_TARGET_EXPORT=ON
step cJSON

cm cmocka "$root/src/cmocka" -DWITH_STATIC_LIB=ON -DWITH_EXAMPLES=OFF -DUNIT_TESTING=OFF
if [ -f "$sysroot/lib/libcmocka-static.a" ]; then
    mv "$sysroot/lib/libcmocka-static.a" "$sysroot/lib/libcmocka.a"
fi
rm -f "$sysroot"/bin/libcmocka*.dll "$sysroot"/lib/libcmocka.dll.a
step cmocka

if [ "$tls" = 1 ]; then
    # OpenSSL 3.0: no-apps/no-docs do not exist; engines stay (rabbitmq-c 0.11 calls them).
    (cd "$root/src/openssl" && ./Configure mingw64 --cross-compile-prefix=$triple- --prefix="$sysroot" \
        --libdir=lib no-shared no-tests no-module no-legacy no-capieng no-dtls no-ssl3 no-idea no-mdc2 \
        no-rc5 no-camellia no-seed no-sm2 no-sm3 no-sm4 no-whirlpool no-srp no-gost no-ts no-comp \
        >>"$log" 2>&1 && make -j "$jobs" build_libs >>"$log" 2>&1 && make install_dev >>"$log" 2>&1) ||
        die "building OpenSSL failed (see $log)"
    step OpenSSL
fi

cm rabbitmq "$root/src/librabbitmq" -DBUILD_STATIC_LIBS=ON -DENABLE_SSL_SUPPORT=$([ "$tls" = 1 ] && echo ON || echo OFF) \
    -DBUILD_EXAMPLES=OFF -DBUILD_TESTS=OFF -DBUILD_TOOLS=OFF -DBUILD_API_DOCS=OFF -DOPENSSL_ROOT_DIR="$sysroot"
step rabbitmq-c

echo "$key_text" >"$root/key.txt"
rm -rf "$root/build" "$root/src"
touch "$root/.complete"
say "done in $(($(date +%s) - t0)) s: $(du -sh "$sysroot" | cut -f1)"
echo "EM_MINGW_SYSROOT=$sysroot"
