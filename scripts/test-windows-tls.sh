#!/bin/bash
# test-windows-tls.sh [BUILD_DIR] — amqps:// from em-agent.exe, under wine, against a
# throwaway RabbitMQ with a TLS listener and a throwaway CA. Not part of scripts/test.sh:
# the OpenSSL sysroot costs 3-5 minutes cold (EM_WIN_TLS=1 build-windows.sh), which the
# CI budget does not have; run it when TLS or the bus changes. Checks, in order:
#   1. --amqp-ca with the test CA: published and confirmed; em-backend stores it all;
#   2. no --amqp-ca, the test CA not trusted by Windows: refused ("certificate verify
#      failed"), the events wait in the outbox;
#   3. the test CA added to the Windows ROOT store (tests/windows/addroot.c), still no
#      --amqp-ca: connects, and the waiting events reach the store: it equals scan.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build-win-tls}
say() { echo "test-windows-tls: $*" >&2; }
EM_WIN_TLS=1 "$top/scripts/build-windows.sh" "$build" >&2
exe=$build/agent/em-agent.exe backend=$top/build/backend/em-backend linux_agent=$top/build/agent/em-agent
[ -x "$backend" ] || { say "needs the Linux build (build/backend/em-backend)"; exit 1; }
HERE=$top/tests/e2e
# shellcheck source=../tests/e2e/servers.sh
. "$HERE/servers.sh"
work=$(mktemp -d)
export WINEPREFIX=$work/wine WINEDEBUG=-all
cleanup() {
    servers_cleanup
    wineserver -k >/dev/null 2>&1 || true
    if [ "$fail" != 0 ] && [ -n "${KEEP_FAILED:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
fail=0
trap cleanup EXIT
ok() { echo "ok   $*"; }
bad() { fail=1; echo "FAIL $*"; }

C=$work/certs
mkdir -p "$C" "$work/rmq"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=em-test-ca -keyout "$C/ca.key" \
    -out "$C/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout "$C/server.key" -out "$C/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost\n' >"$C/ext"
openssl x509 -req -in "$C/server.csr" -CA "$C/ca.pem" -CAkey "$C/ca.key" -CAcreateserial -days 2 \
    -extfile "$C/ext" -out "$C/server.pem" 2>/dev/null
PORT=${EM_TLS_PORT:-56720}
TLS_PORT=$((PORT + 3))
cat >"$work/rmq/rabbitmq.conf" <<CONF
listeners.ssl.default = $TLS_PORT
ssl_options.cacertfile = $C/ca.pem
ssl_options.certfile = $C/server.pem
ssl_options.keyfile = $C/server.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
CONF
rmq_start "$work/rmq" "$PORT" || { say "the broker did not start"; exit 1; }
URL="amqp://guest:guest@127.0.0.1:$PORT/"
TLS_URL="amqps://guest:guest@localhost:$TLS_PORT/"
STORE="sqlite:$work/store.db"
timeout 60 "$backend" consume --amqp "$URL" --store "$STORE" --idle-exit 1 2>>"$work/consume.log" ||
    { say "consume could not declare its queue"; exit 1; }
wine cmd /c exit </dev/null >/dev/null 2>&1 || true
wineserver -p </dev/null >/dev/null 2>&1 || true

mkdir -p "$work/v1" "$work/v2"
cp -r "$top/testdata/visit-mini/." "$work/v1/"
# One micrograph held back for step 2: its event must wait in the outbox.
held=Supervisor_20250101_100000_1_mini_EPU/Images-Disc1/GridSquare_1001/Data/FoilHole_2002_Data_4001_1_20250101_102200.xml
mv "$work/v1/$held" "$work/held.xml"
run_agent() { # run_agent DIR LOG [ARGS...]
    local dir=$1 log=$2
    shift 2
    (cd "$work" && timeout 120 wine "$exe" watch --once -v --agent tlstest --state-dir "state" \
        --amqp "$TLS_URL" --drain 20 "$@" "$dir") 2>>"$log"
}
# 1. with the CA file
if run_agent v1 "$work/a1.log" --amqp-ca "Z:$C/ca.pem" &&
    grep -q "connected to amqps://guest:\*\*\*@localhost" "$work/a1.log"; then
    ok "amqps:// with --amqp-ca: connected and drained"
else
    bad "amqps:// with --amqp-ca: $(grep -m3 'warning\|error' "$work/a1.log")"
fi
# 2. without it: Windows does not trust the test CA
mv "$work/held.xml" "$work/v1/$held"
run_agent v1 "$work/a2.log" --drain 3 || true
if grep -qi "verif" "$work/a2.log" && ! grep -q "connected to amqps" "$work/a2.log"; then
    ok "amqps:// without --amqp-ca and an untrusted CA: refused ($(grep -m1 -io 'ssl peer cert[a-z ]*' "$work/a2.log"))"
else
    bad "amqps:// without --amqp-ca was not refused: $(grep -m3 'warning\|error\|connected' "$work/a2.log")"
fi
# 3. the CA in the Windows ROOT store
wine "$build/tests/addroot.exe" "Z:$C/ca.pem" >/dev/null || bad "addroot failed"
if run_agent v1 "$work/a3.log" && grep -q "connected to amqps://guest:\*\*\*@localhost" "$work/a3.log"; then
    ok "amqps:// trusting the Windows ROOT store: connected, the waiting events sent"
else
    bad "amqps:// with the CA in the ROOT store: $(grep -m3 'warning\|error' "$work/a3.log")"
fi
timeout 120 "$backend" consume --amqp "$URL" --store "$STORE" --idle-exit 3 2>>"$work/consume.log" || bad "consume"
"$linux_agent" scan "$work/v1" >"$work/scan.jsonl" 2>/dev/null
"$backend" query entities --store "$STORE" >"$work/export.jsonl"
if python3 "$HERE/fold.py" compare "$work/scan.jsonl" "$work/export.jsonl" >"$work/compare.out"; then
    ok "the store equals scan: $(tail -1 "$work/compare.out")"
else
    bad "the store differs from scan: $(tail -1 "$work/compare.out")"
fi
if grep -h 'no snapshot written\|error' "$work"/a*.log; then
    bad "the agent logged the errors above"
fi
exit $fail
