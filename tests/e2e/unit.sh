#!/usr/bin/env bash
# The systemd units are valid and start the binaries they name: systemd-analyze verify on
# the configured em-agent, em-backend and em-backend-serve units with ExecStart pointed at the
# built binaries.
#   unit.sh EM_AGENT EM_BACKEND BUILD_DIR
set -eu
AGENT=$(realpath "$1")
BACKEND=$(realpath "$2")
BUILD=$3
command -v systemd-analyze >/dev/null || { echo "skip: no systemd-analyze"; exit 77; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for unit in em-agent em-backend em-backend-serve; do
    src=$BUILD/packaging/$unit.service
    sed -e "s|^ExecStart=[^ ]*/em-agent |ExecStart=$AGENT |" -e "s|^ExecStart=[^ ]*/em-backend |ExecStart=$BACKEND |" \
        -e "s|^EnvironmentFile=|EnvironmentFile=-|" "$src" >"$TMP/$unit.service"
    systemd-analyze verify --man=no "$TMP/$unit.service"
done
U=$BUILD/packaging/em-agent.service
grep -q '^ExecStart=.*/em-agent watch --config /etc/em-agent/agent.conf$' "$U"
grep -q '^ExecReload=/bin/kill -HUP \$MAINPID$' "$U"
grep -q '^StateDirectory=em-agent$' "$U"
grep -q '^User=em-agent$' "$U"
if grep -q '^DynamicUser=yes' "$U"; then echo "FAIL: DynamicUser cannot read a root-owned 600 config"; exit 1; fi
B=$BUILD/packaging/em-backend.service
grep -q '^ExecStart=.*/em-backend consume$' "$B"
grep -q '^EnvironmentFile=/etc/em-agent/backend.env$' "$B"
S=$BUILD/packaging/em-backend-serve.service
grep -q '^ExecStart=.*/em-backend serve$' "$S"
grep -q '^EnvironmentFile=/etc/em-agent/backend.env$' "$S"
echo "ok: the units verify"
