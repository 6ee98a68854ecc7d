#!/usr/bin/env bash
# The systemd unit is valid and starts the binary it names: systemd-analyze verify on
# packaging/em-agent.service with ExecStart pointed at the built em-agent.
set -eu
AGENT=$(realpath "$1")
UNIT=$2
command -v systemd-analyze >/dev/null || { echo "skip: no systemd-analyze"; exit 77; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
sed "s|/usr/bin/em-agent|$AGENT|" "$UNIT" >"$TMP/em-agent.service"
systemd-analyze verify "$TMP/em-agent.service"
grep -q '^ExecStart=.* watch --config /etc/em-agent/agent.conf$' "$UNIT"
grep -q '^ExecReload=/bin/kill -HUP \$MAINPID$' "$UNIT"
grep -q '^StateDirectory=em-agent$' "$UNIT"
echo "ok: $UNIT verifies"
