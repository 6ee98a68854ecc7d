#!/usr/bin/env bash
# The Debian package, built by CPack from a build configured with
# -DCMAKE_INSTALL_PREFIX=/usr (scripts/test.sh does):
#   - lintian reports no error;
#   - it holds the four programs, their man pages, copyright and changelog, both units and
#     both settings files, which are conffiles; the units' ExecStart names binaries the
#     package installs;
#   - the packaged agent.conf sends events to a file, not to the system journal;
#   - the service's view of its settings: as an unprivileged user in the em-agent group
#     (what the postinst sets up: root:em-agent, mode 640) the agent reads the config and
#     runs; with the old mode 600 root:root (what DynamicUser met) it exits 2 naming
#     "permission denied";
#   - a build configured with another prefix puts the binaries and the unit's ExecStart in
#     the same place.
#   package.sh BUILD_DIR SOURCE_DIR
set -u
BUILD=$(realpath "$1")
SRC=$(realpath "$2")
TMP=$(mktemp -d /tmp/em-package.XXXXXX)
chmod 755 "$TMP"
trap 'rm -rf "$TMP"' EXIT
failures=0
checks=0
ok() { checks=$((checks + 1)); echo "ok   $*"; }
bad() { checks=$((checks + 1)); failures=$((failures + 1)); echo "FAIL $*"; }
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$BUILD/CMakeCache.txt")
if [ "$prefix" != /usr ]; then
    echo "SKIP: $BUILD is configured with CMAKE_INSTALL_PREFIX=$prefix; a Debian package needs /usr"
    exit 77
fi
command -v dpkg-deb >/dev/null || { echo "SKIP: no dpkg-deb"; exit 77; }
(cd "$BUILD" && cpack -G DEB -B "$TMP/out" >"$TMP/cpack.log" 2>&1) || { bad "cpack: $(tail -5 "$TMP/cpack.log")"; }
deb=$(ls "$TMP"/out/em-agent_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] && ok "cpack made $(basename "$deb")" || { echo "FAIL no package"; exit 1; }
[[ $(basename "$deb") =~ ^em-agent_[0-9]+\.[0-9]+\.[0-9]+-1_[a-z0-9]+\.deb$ ]] && ok "name and version: $(basename "$deb")" || bad "package name $(basename "$deb")"
if command -v lintian >/dev/null; then
    lintian --fail-on error "$deb" >"$TMP/lintian.log" 2>&1 && ok "lintian: no errors ($(grep -c '^[WI]:' "$TMP/lintian.log") warnings/info)" ||
        bad "lintian: $(grep '^E:' "$TMP/lintian.log")"
else
    bad "lintian is not installed (scripts/setup.sh test installs it)"
fi
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' >"$TMP/files"
for f in /usr/bin/em-agent /usr/bin/em-backend /usr/bin/fsrecorder /usr/bin/em-synth \
    /usr/share/man/man1/em-agent.1.gz /usr/share/man/man1/em-backend.1.gz \
    /usr/share/man/man1/fsrecorder.1.gz /usr/share/man/man1/em-synth.1.gz \
    /usr/share/doc/em-agent/copyright /usr/share/doc/em-agent/changelog.Debian.gz \
    /lib/systemd/system/em-agent.service /lib/systemd/system/em-backend.service \
    /lib/systemd/system/em-backend-serve.service /lib/systemd/system/em-backend-loaders.service \
    /etc/em-agent/agent.conf /etc/em-agent/backend.env; do
    grep -qx "$f" "$TMP/files" && ok "has $f" || bad "lacks $f"
done
dpkg-deb -e "$deb" "$TMP/control"
for f in /etc/em-agent/agent.conf /etc/em-agent/backend.env; do
    grep -qx "$f" "$TMP/control/conffiles" && ok "conffile $f" || bad "$f is not a conffile"
done
grep -q 'adduser --system --group' "$TMP/control/postinst" && ok "postinst creates the em-agent system user and group" || bad "postinst"
dpkg-deb -x "$deb" "$TMP/root"
for unit in em-agent em-backend em-backend-serve em-backend-loaders; do
    exe=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$TMP/root/lib/systemd/system/$unit.service")
    [ -x "$TMP/root$exe" ] && ok "$unit.service ExecStart $exe is in the package" || bad "$unit.service ExecStart $exe is not in the package"
    grep -q '^User=em-agent$' "$TMP/root/lib/systemd/system/$unit.service" && ok "$unit.service runs as em-agent" || bad "$unit.service user"
done
zcat "$TMP/root/usr/share/man/man1/em-agent.1.gz" | grep -q '^\.SH WATCH' && ok "the em-agent man page has the watch help" || bad "man page"
conf=$TMP/root/etc/em-agent/agent.conf
grep -q '^out = /var/lib/em-agent/events.jsonl$' "$conf" && ok "agent.conf: events go to a file by default" || bad "agent.conf out: $(grep -n '^out' "$conf")"
# The service user's view. A group id that exists nowhere stands for the package's group.
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
    gid=54321
    mkdir -p "$TMP/state" && chown nobody "$TMP/state"
    cp "$conf" "$TMP/agent.conf"
    printf 'dir = %s\nagent = pkg\n' "$SRC/testdata/visit-mini" >>"$TMP/agent.conf"
    chown root:$gid "$TMP/agent.conf" && chmod 640 "$TMP/agent.conf"
    STATE_DIRECTORY=$TMP/state EM_AGENT_OUT=$TMP/state/events.jsonl \
        setpriv --reuid=nobody --regid=$gid --clear-groups "$BUILD/agent/em-agent" watch --once \
        --config "$TMP/agent.conf" 2>"$TMP/svc.err"
    rc=$?
    [ "$rc" -eq 0 ] && [ "$(wc -l <"$TMP/state/events.jsonl")" -eq 14 ] &&
        ok "as the service user (group em-agent, config 640): runs, 14 events" || bad "service user: exit $rc: $(cat "$TMP/svc.err")"
    grep -q "settings read from $TMP/agent.conf" "$TMP/svc.err" && ok "the config read is logged" || bad "no 'settings read from'"
    chown root:root "$TMP/agent.conf" && chmod 600 "$TMP/agent.conf"
    STATE_DIRECTORY=$TMP/state setpriv --reuid=nobody --regid=$gid --clear-groups \
        "$BUILD/agent/em-agent" watch --once --config "$TMP/agent.conf" 2>"$TMP/svc2.err"
    rc=$?
    [ "$rc" -eq 2 ] && grep -q "cannot read the config file: permission denied" "$TMP/svc2.err" &&
        ok "config 600 root:root (the DynamicUser trap): exit 2, 'permission denied'" || bad "600: exit $rc: $(cat "$TMP/svc2.err")"
else
    echo "skip: the service-user checks need root and setpriv"
fi
# Any prefix: the binaries and ExecStart agree.
cmake -S "$SRC" -B "$TMP/opt" -DCMAKE_INSTALL_PREFIX=/opt/em -DEM_TESTS=OFF >"$TMP/opt.log" 2>&1 ||
    bad "configure with /opt/em: $(tail -3 "$TMP/opt.log")"
grep -q '^ExecStart=/opt/em/bin/em-agent watch' "$TMP/opt/packaging/em-agent.service" &&
    grep -q '^ExecStart=/opt/em/bin/em-backend consume' "$TMP/opt/packaging/em-backend.service" &&
    grep -q '^ExecStart=/opt/em/bin/em-backend loaders$' "$TMP/opt/packaging/em-backend-loaders.service" &&
    ok "prefix /opt/em: the units start /opt/em/bin/…" || bad "prefix /opt/em: $(grep ExecStart "$TMP/opt/packaging/"*.service)"
grep -q 'CMAKE_INSTALL_PREFIX}/bin' "$TMP/opt/agent/cmake_install.cmake" &&
    ok "prefix /opt/em: em-agent installs into <prefix>/bin" || bad "prefix /opt/em: em-agent install path"
echo "$((checks - failures)) passed, $failures failed"
[ "$failures" -eq 0 ]
