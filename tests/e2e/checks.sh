# Sourced by the e2e scripts: a scratch directory $TMP, processes to kill in PIDS, and
# ok / bad / finish for their checks.
#   . "$HERE/checks.sh" NAME       # TMP=/tmp/em-NAME.XXXXXX, removed at exit (kept on
#                                  # failure when KEEP_FAILED is set)
TMP=$(mktemp -d "/tmp/em-$1.XXXXXX")
chmod 755 "$TMP"
PIDS=()
failures=0
checks=0
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    chmod -R u+rwX "$TMP" 2>/dev/null
    if [ "$failures" -gt 0 ] && [ -n "${KEEP_FAILED:-}" ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
ok() { checks=$((checks + 1)); echo "ok   $*"; }
bad() { checks=$((checks + 1)); failures=$((failures + 1)); echo "FAIL $*"; }
finish() {
    echo "$((checks - failures)) passed, $failures failed"
    [ "$failures" -eq 0 ]
    exit
}
