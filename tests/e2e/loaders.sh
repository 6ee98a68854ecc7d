#!/usr/bin/env bash
# End to end: `em-backend job add` → `em-backend loaders` → files and metadata.json, against
# a real nginx this test starts on loopback (and stops by pid). Cases:
#   fetch     two files (one with its sha256 given): job complete, bytes and digests equal
#             sha256sum's, metadata.json complete, nothing partial left
#   notfound  404: failed at once (1 attempt), the reason recorded, no dataset file
#   checksum  a wrong sha256: failed, "checksum mismatch", no file, no partial
#   redirect  a redirect to file:///etc/passwd and an endless redirect chain: failed, the
#             protocol never changed, nothing written
#   busy      503 every time: retried with back-off, then pending again (attempt counted)
#   resume    a runner SIGKILLed mid-transfer (rate-limited): its lease runs out, another
#             runner resumes the partial file (fewer bytes transferred than the file)
#   cancel    `job cancel` while it runs: the runner stops it within two seconds
#   postgres  12 jobs on a throwaway PostgreSQL, two runners at once: every job complete,
#             each file fetched exactly once (FOR UPDATE SKIP LOCKED), one dataset per job
# The other cases use an SQLite store.
set -u
BACKEND=$(realpath "$1")
PORT=${2:-47180}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=servers.sh
. "$HERE/servers.sh"
SHARED=$(cd "$HERE/../../../shared/testdata" 2>/dev/null && pwd)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { echo "SKIP: nginx is not installed (scripts/setup.sh test)"; exit 77; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
TMP=$(mktemp -d /tmp/em-loaders.XXXXXX)
failures=0
NGINX_PID=
cleanup() {
    [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null
    servers_cleanup
    if [ "$failures" -gt 0 ] && [ -n "${KEEP_FAILED:-}" ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
ok() { echo "ok   $*"; }
bad() { failures=$((failures + 1)); echo "FAIL $*"; }

mkdir -p "$TMP/www/data" "$TMP/www/slow" "$TMP/nginx" "$TMP/out"
cp "$SHARED/formats/mrc/EMD-3197.map" "$SHARED/formats/tiff/multipage.tif" "$TMP/www/data/"
head -c 3000000 /dev/urandom >"$TMP/www/slow/big.bin"
cat >"$TMP/nginx/nginx.conf" <<CONF
worker_processes 1;
error_log $TMP/nginx/error.log;
pid $TMP/nginx/nginx.pid;
events { worker_connections 64; }
http {
    access_log $TMP/nginx/access.log;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    server {
        listen 127.0.0.1:$PORT;
        root $TMP/www;
        location /slow/ { limit_rate 400k; }
        location = /tofile { return 302 file:///etc/passwd; }
        location = /loop/x.bin { return 302 /loop/x.bin; }
        location = /busy/x.bin { return 503; }
    }
}
CONF
"$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -g 'daemon off; user root;' 2>"$TMP/nginx/start.err" &
NGINX_PID=$!
for _ in $(seq 1 50); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/data/multipage.tif" 2>/dev/null && break
    sleep 0.1
done
curl -s -o /dev/null "http://127.0.0.1:$PORT/data/multipage.tif" || { bad "nginx did not start: $(cat "$TMP/nginx/start.err")"; exit 1; }
BASE="http://127.0.0.1:$PORT"
STORE="sqlite:$TMP/store.db"
OUT=$TMP/out

add() { "$BACKEND" job add --store "$STORE" "$@"; }
run_once() { timeout 120 "$BACKEND" loaders --store "$STORE" --out "$OUT" --once -v --backoff 0.2 --tries 2 "$@" 2>>"$TMP/loaders.log"; }
field() { # field ID KEY
    "$BACKEND" job show --store "$STORE" "$1" | python3 -c "import json,sys; v=json.load(sys.stdin).get('$2'); print('' if v is None else v)"
}

# fetch
sum=$(sha256sum "$TMP/www/data/EMD-3197.map" | cut -d' ' -f1)
id=$(add url "$BASE/data/EMD-3197.map#sha256=$sum" "$BASE/data/multipage.tif")
run_once || bad "fetch: loaders exit status $?"
d=$OUT/url/job-$id
if [ "$(field "$id" status)" = complete ] && cmp -s "$d/EMD-3197.map" "$TMP/www/data/EMD-3197.map" &&
    cmp -s "$d/multipage.tif" "$TMP/www/data/multipage.tif" && [ ! -e "$d/.partial" ]; then
    ok "fetch: job $id complete, both files equal the server's, no partial left"
else
    bad "fetch: status $(field "$id" status), files: $(ls -A "$d" 2>&1 | tr '\n' ' ')"
fi
python3 - "$d/metadata.json" "$sum" "$(sha256sum "$TMP/www/data/multipage.tif" | cut -d' ' -f1)" <<'PY' && ok "fetch: metadata.json complete, sizes and sha256 equal sha256sum's" || bad "fetch: metadata.json"
import json, sys
m = json.load(open(sys.argv[1]))
f = m["files"]["additional"]
assert m["status"] == "complete" and m["source"] == "url", m
assert f["EMD-3197.map"]["sha256"] == sys.argv[2] and f["EMD-3197.map"]["size"] == 33024, f
assert f["multipage.tif"]["sha256"] == sys.argv[3] and f["multipage.tif"]["size"] == 940, f
assert m["metadata"]["technical"]["file_size_bytes"] == 33024 + 940
assert len(m["id"]) == 36 and m["metadata"]["core"]["description"]
PY
[ "$(field "$id" bytes_done)" = 33964 ] && [ "$(field "$id" dataset)" = "job-$id" ] &&
    ok "fetch: the job row says 33964 bytes and dataset job-$id" ||
    bad "fetch: job row bytes $(field "$id" bytes_done), dataset $(field "$id" dataset)"

# notfound
id=$(add url "$BASE/data/nothere.mrc")
run_once
[ "$(field "$id" status)" = failed ] && [ "$(field "$id" attempts)" = 1 ] &&
    field "$id" error | grep -q "HTTP 404" && [ ! -e "$OUT/url/job-$id/nothere.mrc" ] &&
    ok "notfound: failed at once, 'HTTP 404' recorded" ||
    bad "notfound: status $(field "$id" status), attempts $(field "$id" attempts), error $(field "$id" error)"

# checksum
id=$(add url "$BASE/data/multipage.tif#sha256=$(printf '0%.0s' $(seq 1 64))")
run_once
[ "$(field "$id" status)" = failed ] && field "$id" error | grep -q "checksum mismatch" &&
    [ ! -e "$OUT/url/job-$id/multipage.tif" ] && [ -z "$(ls -A "$OUT/url/job-$id/.partial" 2>/dev/null)" ] &&
    ok "checksum: failed with 'checksum mismatch', no file and no partial kept" ||
    bad "checksum: status $(field "$id" status), error $(field "$id" error)"

# redirect
id=$(add url "$BASE/tofile#x" "$BASE/loop/x.bin")
id2=$(add url "$BASE/loop/x.bin")
run_once
e1=$(field "$id" error)
[ "$(field "$id" status)" = failed ] && [ "$(field "$id2" status)" = failed ] &&
    field "$id2" error | grep -qi "redirect" && [ ! -e "$OUT/url/job-$id/tofile" ] &&
    ok "redirect: to file:// refused ($e1), an endless chain refused ($(field "$id2" error))" ||
    bad "redirect: $(field "$id" status) $e1 / $(field "$id2" status) $(field "$id2" error)"
echo "$e1" | grep -q "another protocol, refused" || bad "redirect: the reason does not say so: $e1"

# busy
id=$(add url "$BASE/busy/x.bin")
run_once
[ "$(field "$id" status)" = pending ] && [ "$(field "$id" attempts)" = 1 ] &&
    field "$id" error | grep -q "HTTP 503" && [ "$(grep -c "busy/x.bin" "$TMP/nginx/access.log")" -ge 2 ] &&
    ok "busy: 503 retried ($(grep -c "busy/x.bin" "$TMP/nginx/access.log") requests), then pending again with the reason" ||
    bad "busy: status $(field "$id" status), attempts $(field "$id" attempts), error $(field "$id" error)"
"$BACKEND" job cancel --store "$STORE" "$id" >/dev/null

# resume
sum=$(sha256sum "$TMP/www/slow/big.bin" | cut -d' ' -f1)
id=$(add url "$BASE/slow/big.bin#sha256=$sum")
"$BACKEND" loaders --store "$STORE" --out "$OUT" --lease 3 --runner first 2>>"$TMP/loaders.log" &
pid=$!
sleep 2.5
kill -KILL "$pid"
wait "$pid" 2>/dev/null
part=$(stat -c %s "$OUT/url/job-$id/.partial/big.bin" 2>/dev/null || echo 0)
sleep 5 # the first runner's lease (3 s, renewed every second) runs out
run_once --runner second
bytes_first=$(awk '$7 ~ /big.bin/ {print $10}' "$TMP/nginx/access.log" | head -1)
bytes_second=$(awk '$7 ~ /big.bin/ {print $10}' "$TMP/nginx/access.log" | tail -1)
if [ "$(field "$id" status)" = complete ] && cmp -s "$OUT/url/job-$id/big.bin" "$TMP/www/slow/big.bin" &&
    [ "$part" -gt 0 ] && [ "$bytes_second" -lt 3000000 ] && [ "$(field "$id" claimed_by)" = second ]; then
    ok "resume: killed after $part bytes; the second runner took over and fetched $bytes_second more bytes, not 3000000"
else
    bad "resume: status $(field "$id" status), partial $part, second request $bytes_second bytes, claimed by $(field "$id" claimed_by)"
fi

# cancel
id=$(add url "$BASE/slow/big.bin#sha256=$sum")
rm -rf "$OUT/url/job-$id"
"$BACKEND" loaders --store "$STORE" --out "$OUT" --once 2>>"$TMP/loaders.log" &
pid=$!
sleep 1.5
t0=$(date +%s.%N)
"$BACKEND" job cancel --store "$STORE" "$id" >/dev/null
wait "$pid"
t1=$(date +%s.%N)
took=$(python3 -c "print(round($t1 - $t0, 1))")
[ "$(field "$id" status)" = cancelled ] && [ ! -e "$OUT/url/job-$id/big.bin" ] &&
    python3 -c "import sys; sys.exit(0 if $took < 2.5 else 1)" &&
    ok "cancel: the runner stopped the transfer ${took} s after 'job cancel'" ||
    bad "cancel: status $(field "$id" status), runner ended ${took} s after"

# postgres
if [ -x /usr/lib/postgresql/15/bin/postgres ] && pg_start "$TMP/pg"; then
    PGS=$PG_URL
    for i in $(seq 1 12); do
        cp "$TMP/www/data/multipage.tif" "$TMP/www/data/pg$i.tif"
        add url "$BASE/data/pg$i.tif" --store "$PGS" >/dev/null || bad "postgres: job add"
    done
    timeout 120 "$BACKEND" loaders --store "$PGS" --out "$TMP/pgout" --once --runner a --workers 3 2>>"$TMP/loaders.log" &
    p1=$!
    timeout 120 "$BACKEND" loaders --store "$PGS" --out "$TMP/pgout" --once --runner b --workers 3 2>>"$TMP/loaders.log" &
    p2=$!
    wait "$p1"
    wait "$p2"
    done_jobs=$("$BACKEND" job list --store "$PGS" --status complete | wc -l)
    fetched=$(grep -c 'GET /data/pg[0-9]*.tif' "$TMP/nginx/access.log")
    by_a=$("$BACKEND" job list --store "$PGS" --json | grep -c '"claimed_by":"a"')
    datasets=$(ls "$TMP/pgout/url" | wc -l)
    [ "$done_jobs" = 12 ] && [ "$fetched" = 12 ] && [ "$datasets" = 12 ] &&
        ok "postgres: 12 jobs complete by two runners ($by_a by a), each file fetched once, 12 datasets" ||
        bad "postgres: $done_jobs complete, $fetched fetches, $datasets datasets"
else
    echo "SKIP postgres: PostgreSQL 15 is not installed or did not start"
fi

"$BACKEND" job list --store "$STORE" >"$TMP/list.txt" && [ "$(wc -l <"$TMP/list.txt")" -ge 8 ] &&
    ok "job list: $(wc -l <"$TMP/list.txt") jobs" || bad "job list"
echo "$failures failed"
[ "$failures" -eq 0 ]
