#!/usr/bin/env bash
# End to end: `em-backend job add` → `em-backend loaders` → files and metadata.json, against
# a real nginx this test starts on loopback (and stops by pid). Cases:
#   fetch     two files (one with its sha256 given): the job waits at saving-data, bytes
#             and digests equal sha256sum's, metadata.json complete, nothing partial left
#   seen      `em-agent watch` of the output, `ingest` of its events: the dataset in the
#             store (its record, the MRC header read from the data), the job complete;
#             watched and ingested again: nothing new
#   samename  two URLs ending in the same name: kept as NAME and 2-NAME
#   https     nginx with a certificate from a test CA: fetched with --ca, refused without
#   notfound  404: failed at once (1 attempt), the reason recorded, no dataset file
#   checksum  a wrong sha256: failed, "checksum mismatch", no file, no partial, the record
#             says failed
#   redirect  a redirect to file:///etc/passwd and an endless redirect chain: failed, the
#             protocol never changed, nothing written
#   busy      503 every time: retried with back-off, then pending again (attempt counted)
#   resume    a runner SIGKILLed mid-transfer (rate-limited): its lease runs out, another
#             runner resumes the partial file (fewer bytes transferred than the file)
#   cancel    `job cancel` while it runs: the runner stops it within two seconds
#   outage    nginx stopped in the middle of a transfer and started again: the runner
#             retries and resumes (a 206 answer, fewer bytes than the file)
#   recovers  503 until nginx's configuration is reloaded to serve the file: retried, then
#             complete in the same run
#   liar      a server that announces 10 GB and sends 3 bytes: over --max-bytes it is
#             refused at once; under it, the cut transfer is retried, never kept
#   diskfull  the output on a 1 MiB tmpfs, a 3 MB file: failed with "No space left on
#             device", the partial removed
#   movies    `ingest --rules FILE` (micrograph movie file://SHARE/ {path}) of a scanned
#             visit: one movie job per micrograph (ingested twice: still one; --movies the
#             same); a rules file with a wrong type or placeholder refused, naming the line; the runner finds each movie under
#             the name EPU gave it (_Fractions.tiff, _EER.eer), fails the one without a
#             movie with the reason, and leaves the share as it was
#   empiar    the entry's JSON (nginx), the FTP listing of its data directory (vsftpd):
#             regular files only, each checked against its listed size; the runner
#             SIGKILLed mid-file, the second resumes with REST (fewer bytes in vsftpd's
#             log); the agent reads the DM3 headers; the job completes
#   sftp      an sshd of the test's own, key authentication: a partial file resumed at its
#             end (the result proves it: the server's first MiB differs), a server whose
#             host key is not in known_hosts refused
#   openorganelle
#             a consolidated OME-Zarr store over S3's path-style HTTP (nginx): fetched
#             equal to the source (diff -r); one array alone from its .zarray; a key with
#             ../ and a 10^12-chunk array refused; the agent reads both stores
#   sources   idr (image JSON, then the file under the API's name), dvid (info, then a raw
#             subvolume whose size is checked), epfl; hostile answers: an image name
#             "../../etc/passwd", a 20 MB JSON, a raw subvolume cut short
#   catalog   the agent's datasets of those ingested, then `em-backend catalog`: 4 records
#             (one failed), the one edited by hand invalid with its reasons, the failed
#             jobs with theirs, the report files written
#   service   a runner without --once that looks for due jobs only every 60 s (--poll):
#             a job added wakes it at once, and `job add --wait` returns when the files
#             are in place (exit 0); a 404 returns with the failure (exit 1, the reason);
#             `job retry --wait` of it once the server has the file; a wait ended by
#             `job cancel`; the runner stops on SIGTERM with exit 0; with no runner, the wait
#             says after 10 s that the job is still pending; `--wait` with another verb
#             and `--poll 0` refused (exit 2)
#   postgres  the whole loop live: 12 jobs on a throwaway PostgreSQL, two runners at once,
#             `em-agent watch` of their output publishing to a throwaway RabbitMQ, `consume`
#             into the same store: every job complete, each file fetched exactly once (FOR
#             UPDATE SKIP LOCKED), one dataset per job in the store; then an idle runner
#             (--poll 60) woken by a job added (NOTIFY), `job add --wait` returning
# The other cases use an SQLite store.
set -u
BACKEND=$(realpath "$1")
PORT=${2:-24500} # nginx; PORT+1 a hostile server, +2 nginx's HTTPS, +10 to +12 RabbitMQ, +20 to +29 vsftpd, +30 sshd
AGENT=${3:+$(realpath "$3")}
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
    [ -n "${LIAR_PID:-}" ] && kill "$LIAR_PID" 2>/dev/null
    [ -n "${FTP_PID:-}" ] && kill "$FTP_PID" 2>/dev/null
    [ -n "${SSHD_PID:-}" ] && kill "$SSHD_PID" 2>/dev/null
    mountpoint -q "$TMP/small" 2>/dev/null && umount "$TMP/small"
    [ -n "${WATCH_PID:-}" ] && kill "$WATCH_PID" 2>/dev/null
    [ -n "${CONSUME_PID:-}" ] && kill "$CONSUME_PID" 2>/dev/null
    [ -n "${SVC_PID:-}" ] && kill "$SVC_PID" 2>/dev/null
    servers_cleanup
    if [ "$failures" -gt 0 ] && [ -n "${KEEP_FAILED:-}" ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
ok() { echo "ok   $*"; }
bad() { failures=$((failures + 1)); echo "FAIL $*"; }

mkdir -p "$TMP/www/data" "$TMP/www/slow" "$TMP/nginx" "$TMP/out"
cp "$SHARED/formats/mrc/EMD-3197.map" "$SHARED/formats/tiff/multipage.tif" "$TMP/www/data/"
head -c 3000000 /dev/urandom >"$TMP/www/slow/big.bin"
# A test CA and a certificate for 127.0.0.1 signed by it, for nginx's HTTPS listener.
C=$TMP/certs
mkdir -p "$C"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=em-loaders-test-ca -keyout "$C/ca.key" \
    -out "$C/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$C/server.key" -out "$C/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$C/ext"
openssl x509 -req -in "$C/server.csr" -CA "$C/ca.pem" -CAkey "$C/ca.key" -CAcreateserial -days 2 \
    -extfile "$C/ext" -out "$C/server.pem" 2>/dev/null
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
        include $TMP/nginx/extra.conf;
        index index.json;
        location ~ ^/webclient/render_image_download/([0-9]+)/$ { rewrite ^/webclient/render_image_download/([0-9]+)/$ /idr/\$1.tif break; }
    }
    server {
        listen 127.0.0.1:$((PORT + 2)) ssl;
        ssl_certificate $C/server.pem;
        ssl_certificate_key $C/server.key;
        root $TMP/www;
    }
}
CONF
: >"$TMP/nginx/extra.conf"
start_nginx() {
    "$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -g 'daemon off; user root;' 2>"$TMP/nginx/start.err" &
    NGINX_PID=$!
    for _ in $(seq 1 50); do
        curl -s -o /dev/null "http://127.0.0.1:$PORT/data/multipage.tif" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
start_nginx || { bad "nginx did not start: $(cat "$TMP/nginx/start.err")"; exit 1; }
BASE="http://127.0.0.1:$PORT"
STORE="sqlite:$TMP/store.db"
OUT=$TMP/out

add() { "$BACKEND" job add --store "$STORE" "$@"; }
run_once() { timeout 120 "$BACKEND" loaders --store "$STORE" --out "$OUT" --once -v --backoff 0.2 --tries 2 "$@" 2>>"$TMP/loaders.log"; }
field() { # field ID KEY
    "$BACKEND" job show --store "$STORE" "$1" | python3 -c "import json,sys; v=json.load(sys.stdin).get('$2'); print('' if v is None else v)"
}

# No runner on this store: the wait says so after 10 s (checked in the service case,
# by when the cases in between have taken longer than that).
timeout 12 "$BACKEND" job add --wait --store "sqlite:$TMP/norunner.db" url "$BASE/data/multipage.tif" \
    >/dev/null 2>"$TMP/norunner.err" &
norunner=$!

# fetch
sum=$(sha256sum "$TMP/www/data/EMD-3197.map" | cut -d' ' -f1)
id=$(add url "$BASE/data/EMD-3197.map#sha256=$sum" "$BASE/data/multipage.tif")
run_once || bad "fetch: loaders exit status $?"
d=$OUT/url/job-$id
if [ "$(field "$id" status)" = saving-data ] && cmp -s "$d/EMD-3197.map" "$TMP/www/data/EMD-3197.map" &&
    cmp -s "$d/multipage.tif" "$TMP/www/data/multipage.tif" && [ ! -e "$d/.partial" ]; then
    ok "fetch: job $id fetched (saving-data: waiting for an agent), both files equal the server's, no partial left"
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
rid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$d/metadata.json")
[ "$(field "$id" bytes_done)" = 33964 ] && [ "$(field "$id" dataset)" = "$rid" ] &&
    ok "fetch: the job row says 33964 bytes and dataset $rid (the record's id)" ||
    bad "fetch: job row bytes $(field "$id" bytes_done), dataset $(field "$id" dataset), record $rid"

# seen: the agent watches the output, ingest stores its events, the job completes
see() { # see DIR STATE STORE: em-agent watch --once of DIR, its events ingested into STORE
    rm -f "$TMP/seen.jsonl"
    timeout 120 "$AGENT" watch --once --agent loaders-test --state-dir "$2" -o "$TMP/seen.jsonl" "$1" 2>>"$TMP/agent.log" &&
        "$BACKEND" ingest -q --store "$3" "$TMP/seen.jsonl" 2>>"$TMP/ingest.log"
}
datasets() { # datasets STORE: the stored datasets as JSON lines
    "$BACKEND" query entities --store "$1" | grep '"type":"dataset"'
}
if [ -n "$AGENT" ]; then
    see "$OUT" "$TMP/agent-state" "$STORE" || bad "seen: watch or ingest failed: $(tail -3 "$TMP/agent.log" "$TMP/ingest.log")"
    datasets "$STORE" >"$TMP/ds.jsonl"
    python3 - "$TMP/ds.jsonl" "$rid" "$sum" "$id" <<'PY' && [ "$(field "$id" status)" = complete ] &&
import json, sys
ds = [json.loads(l) for l in open(sys.argv[1])]
d = [x for x in ds if x["key"]["dataset_id"] == sys.argv[2]]
assert len(d) == 1, ds
d = d[0]["data"]
assert d["status"] == "complete" and d["loader"] == "url" and d["dir"] == "url/job-" + sys.argv[4], d
assert d["job_id"] == int(sys.argv[4]), d
assert d["record"]["files"]["additional"]["EMD-3197.map"]["sha256"] == sys.argv[3]
assert d["volume"] == "EMD-3197.map" and d["header"]["volume_shape"] == [20, 20, 20], d["header"]
assert d["header"]["data_type"] == "float32" and d["mismatches"] == [], d
assert {f["name"]: f["size"] for f in d["files"]} == {"EMD-3197.map": 33024, "multipage.tif": 940}, d["files"]
PY
        ok "seen: the agent's dataset is in the store (record, sizes, the MRC's 20x20x20 float32 header), job $id complete" ||
        bad "seen: job $id $(field "$id" status); stored: $(head -c 600 "$TMP/ds.jsonl")"
    "$BACKEND" query datasets --store "$STORE" --json | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin]
r = [x for x in rows if x["dataset_id"] == sys.argv[1]][0]
assert r["job_status"] == "complete" and r["shape"] == "[20,20,20]" and r["mismatches"] == 0, r' "$rid" &&
        ok "seen: query datasets shows it with its job complete and the header's shape" ||
        bad "seen: query datasets: $("$BACKEND" query datasets --store "$STORE" 2>&1 | head -3)"
    see "$OUT" "$TMP/agent-state" "$STORE"
    [ ! -s "$TMP/seen.jsonl" ] && [ "$(field "$id" status)" = complete ] &&
        ok "seen: watched and ingested again: no new event, the job still complete" ||
        bad "seen: a second watch sent $(wc -l <"$TMP/seen.jsonl") events"
else
    echo "SKIP seen: no em-agent given"
fi

# https: verified against the test CA with --ca; refused without it
id=$(add url "https://127.0.0.1:$((PORT + 2))/data/multipage.tif")
run_once --ca "$C/ca.pem"
id2=$(add url "https://127.0.0.1:$((PORT + 2))/data/EMD-3197.map")
run_once
[ "$(field "$id" status)" = saving-data ] && cmp -s "$OUT/url/job-$id/multipage.tif" "$TMP/www/data/multipage.tif" &&
    [ "$(field "$id2" status)" = failed ] && [ "$(field "$id2" attempts)" = 1 ] && [ ! -e "$OUT/url/job-$id2/EMD-3197.map" ] &&
    ok "https: fetched with --ca (the test CA); without it the server's certificate refused at once ($(field "$id2" error | sed 's/.*: //'))" ||
    bad "https: with --ca $(field "$id" status) $(field "$id" error); without: $(field "$id2" status) $(field "$id2" error)"

# samename: two URLs ending in the same file name: the second is kept as 2-NAME
printf 'other\n' >"$TMP/www/slow/multipage.tif"
id=$(add url "$BASE/data/multipage.tif" "$BASE/slow/multipage.tif")
run_once
[ "$(field "$id" status)" = saving-data ] && cmp -s "$OUT/url/job-$id/multipage.tif" "$TMP/www/data/multipage.tif" &&
    cmp -s "$OUT/url/job-$id/2-multipage.tif" "$TMP/www/slow/multipage.tif" &&
    ok "samename: two files named multipage.tif kept as multipage.tif and 2-multipage.tif" ||
    bad "samename: $(field "$id" status) $(field "$id" error); $(ls -A "$OUT/url/job-$id" | tr '\n' ' ')"

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
    python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); sys.exit(not (m["status"] == "failed" and "checksum mismatch" in m["error"]["message"]))' "$OUT/url/job-$id/metadata.json" &&
    ok "checksum: failed with 'checksum mismatch', no file and no partial kept, the record says failed" ||
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
resume_id=$id
sleep 5 # the first runner's lease (3 s, renewed every second) runs out
run_once --runner second
bytes_first=$(awk '$7 ~ /big.bin/ {print $10}' "$TMP/nginx/access.log" | head -1)
bytes_second=$(awk '$7 ~ /big.bin/ {print $10}' "$TMP/nginx/access.log" | tail -1)
if [ "$(field "$id" status)" = saving-data ] && cmp -s "$OUT/url/job-$id/big.bin" "$TMP/www/slow/big.bin" &&
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

# outage
sum=$(sha256sum "$TMP/www/slow/big.bin" | cut -d' ' -f1)
id=$(add url "$BASE/slow/big.bin#sha256=$sum")
: >"$TMP/nginx/access.log"
timeout 120 "$BACKEND" loaders --store "$STORE" --out "$OUT" --once --backoff 1 --tries 10 2>>"$TMP/loaders.log" &
pid=$!
sleep 1.5
kill "$NGINX_PID"
wait "$NGINX_PID" 2>/dev/null
sleep 1.5
start_nginx || bad "outage: nginx did not start again"
wait "$pid"
codes=$(awk '$7 ~ /big.bin/ {print $9}' "$TMP/nginx/access.log" | tr '\n' ' ')
resumed=$(awk '$7 ~ /big.bin/ && $9 == 206 {print $10}' "$TMP/nginx/access.log" | head -1)
[ "$(field "$id" status)" = saving-data ] && cmp -s "$OUT/url/job-$id/big.bin" "$TMP/www/slow/big.bin" &&
    [ -n "$resumed" ] && [ "$resumed" -lt 3000000 ] &&
    ok "outage: nginx stopped mid-transfer and started again: resumed with a 206 for $resumed bytes" ||
    bad "outage: status $(field "$id" status), answers after the restart: $codes"

# recovers
id=$(add url "$BASE/later/x.bin")
mkdir -p "$TMP/www/later"
cp "$TMP/www/data/multipage.tif" "$TMP/www/later/x.bin"
echo "location = /later/x.bin { return 503; }" >"$TMP/nginx/extra.conf"
kill -HUP "$NGINX_PID"
sleep 0.5
timeout 120 "$BACKEND" loaders --store "$STORE" --out "$OUT" --once --backoff 1 --tries 6 2>>"$TMP/loaders.log" &
pid=$!
sleep 1.5
: >"$TMP/nginx/extra.conf"
kill -HUP "$NGINX_PID" # serve it now
wait "$pid"
[ "$(field "$id" status)" = saving-data ] && [ "$(field "$id" attempts)" = 1 ] &&
    cmp -s "$OUT/url/job-$id/x.bin" "$TMP/www/later/x.bin" &&
    ok "recovers: 503 until nginx was reloaded, then fetched in the same attempt" ||
    bad "recovers: status $(field "$id" status), attempts $(field "$id" attempts), error $(field "$id" error)"

# liar
LPORT=$((PORT + 1))
python3 - "$LPORT" <<'PY' &
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
while True:
    c, _ = s.accept()
    c.recv(65536)
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10737418240\r\n\r\nabc")
    c.close()
PY
LIAR_PID=$!
sleep 0.5
id=$(add url "http://127.0.0.1:$LPORT/huge.bin")
run_once --max-bytes 1000000
e=$(field "$id" error)
[ "$(field "$id" status)" = failed ] && echo "$e" | grep -q "larger than the limit" &&
    [ ! -e "$OUT/url/job-$id/huge.bin" ] &&
    ok "liar: 10 GB announced, over --max-bytes: refused at once ($e)" || bad "liar: $(field "$id" status) $e"
id=$(add url "http://127.0.0.1:$LPORT/huge2.bin")
run_once
e=$(field "$id" error)
[ "$(field "$id" status)" = pending ] && [ ! -e "$OUT/url/job-$id/huge2.bin" ] &&
    ok "liar: 10 GB announced, 3 bytes sent: retried, not kept ($e)" || bad "liar: $(field "$id" status) $e"
"$BACKEND" job cancel --store "$STORE" "$id" >/dev/null

# diskfull
if [ "$(id -u)" -eq 0 ] && mkdir -p "$TMP/small" && mount -t tmpfs -o size=1m tmpfs "$TMP/small" 2>/dev/null; then
    id=$(add url "$BASE/data/big.bin")
    cp "$TMP/www/slow/big.bin" "$TMP/www/data/big.bin"
    timeout 60 "$BACKEND" loaders --store "$STORE" --out "$TMP/small" --once 2>>"$TMP/loaders.log"
    e=$(field "$id" error)
    [ "$(field "$id" status)" = failed ] && echo "$e" | grep -q "No space left on device" &&
        [ -z "$(ls -A "$TMP/small/url/job-$id/.partial" 2>/dev/null)" ] &&
        ok "diskfull: failed with '$(echo "$e" | grep -o 'No space left on device')', the partial removed" ||
        bad "diskfull: $(field "$id" status) $e; partial: $(ls -la "$TMP/small/url/job-$id/.partial" 2>&1 | tail -1)"
    umount "$TMP/small"
else
    echo "SKIP diskfull: mounting a small tmpfs needs root"
fi

# movies
if [ -n "$AGENT" ]; then
    SHARE=$TMP/share
    cp -r "$HERE/../../testdata/visit-mini" "$SHARE"
    mics=$(find "$SHARE" -path '*/Data/*.xml' | sort)
    m1=$(echo "$mics" | sed -n 1p) m2=$(echo "$mics" | sed -n 2p)
    head -c 200000 /dev/urandom >"${m1%.xml}_Fractions.tiff"
    head -c 150000 /dev/urandom >"${m2%.xml}_EER.eer"
    (cd "$SHARE" && find . -type f -exec sha256sum {} + | sort) >"$TMP/share.before"
    "$AGENT" scan -q --no-progress "$SHARE" >"$TMP/visit.jsonl"
    MS="sqlite:$TMP/movies.db"
    printf '# every micrograph: its movie\nmicrograph  movie  file://%s/  {path}\n# sessions: nothing\n' "$SHARE" >"$TMP/rules.conf"
    "$BACKEND" ingest -q --store "$MS" --rules "$TMP/rules.conf" "$TMP/visit.jsonl"
    "$BACKEND" ingest -q --store "$MS" --rules "$TMP/rules.conf" "$TMP/visit.jsonl"
    nmic=$(grep -c '"type":"micrograph"' "$TMP/visit.jsonl")
    njobs=$("$BACKEND" job list --store "$MS" | wc -l)
    "$BACKEND" ingest -q --store "sqlite:$TMP/movies2.db" --movies "file://$SHARE/" "$TMP/visit.jsonl"
    njobs2=$("$BACKEND" job list --store "sqlite:$TMP/movies2.db" | wc -l)
    [ "$njobs" = "$nmic" ] && [ "$nmic" -ge 3 ] && [ "$njobs2" = "$nmic" ] &&
        ok "movies: $nmic micrographs ingested twice with a rules file made $njobs movie jobs (--movies: $njobs2)" ||
        bad "movies: $nmic micrographs, $njobs jobs, $njobs2 with --movies"
    printf 'micrograph movie x {path}\nmicrographs movie x {path}\n' >"$TMP/bad.rules"
    "$BACKEND" ingest -q --store "$MS" --rules "$TMP/bad.rules" "$TMP/visit.jsonl" 2>"$TMP/bad.err"
    st=$?
    printf 'session url {nothing}\n' >"$TMP/bad2.rules"
    "$BACKEND" ingest -q --store "$MS" --rules "$TMP/bad2.rules" "$TMP/visit.jsonl" 2>>"$TMP/bad.err"
    st2=$?
    [ "$st" = 2 ] && [ "$st2" = 2 ] && grep -q "bad.rules:2: 'micrographs' is not an entity type" "$TMP/bad.err" &&
        grep -q "bad2.rules:1: {nothing} is not a placeholder" "$TMP/bad.err" &&
        ok "movies: a rules file with a wrong type or placeholder refused, naming the line: $(head -1 "$TMP/bad.err")" ||
        bad "movies: bad rules: status $st $st2: $(cat "$TMP/bad.err")"
    timeout 120 "$BACKEND" loaders --store "$MS" --out "$TMP/movies" --once --allow-file 2>>"$TMP/loaders.log"
    complete=$("$BACKEND" job list --store "$MS" --status saving-data | wc -l)
    failed=$("$BACKEND" job list --store "$MS" --status failed --json)
    got1=$(find "$TMP/movies/movie" -name "$(basename "${m1%.xml}_Fractions.tiff")")
    got2=$(find "$TMP/movies/movie" -name "$(basename "${m2%.xml}_EER.eer")")
    (cd "$SHARE" && find . -type f -exec sha256sum {} + | sort) >"$TMP/share.after"
    if [ "$complete" = 2 ] && cmp -s "$got1" "${m1%.xml}_Fractions.tiff" && cmp -s "$got2" "${m2%.xml}_EER.eer" &&
        [ "$(echo "$failed" | grep -c 'no movie beside')" = $((nmic - 2)) ] && cmp -s "$TMP/share.before" "$TMP/share.after"; then
        ok "movies: the _Fractions.tiff and the _EER.eer fetched and equal, $((nmic - 2)) without a movie failed ('no movie beside …'), the share unchanged"
    else
        bad "movies: $complete fetched; failed: $(echo "$failed" | head -2)"
    fi
else
    echo "SKIP movies: no em-agent given"
fi

# empiar: the entry's JSON from nginx, its data directory listed and fetched over FTP
if [ -x /usr/sbin/vsftpd ]; then
    FPORT=$((PORT + 20)) # vsftpd; PORT+22 to +29 its passive ports
    FROOT=$TMP/ftp/root
    chmod 755 "$TMP" # vsftpd's unprivileged side must reach its directories
    EDIR=$FROOT/empiar/world_availability/11759/data
    mkdir -p "$EDIR/trakem2.d" "$TMP/ftp/empty" "$TMP/www/empiar/api/entry/11759"
    cp "$SHARED/formats/dm/dm3_3D_test-1_int16.dm3" "$SHARED/formats/dm/test_STEM_image.dm3" "$EDIR/"
    head -c 3000000 /dev/urandom >"$EDIR/slab.bin"
    echo 'not a data file' >"$EDIR/trakem2.d/project.xml"
    cat >"$TMP/ftp/vsftpd.conf" <<CONF
listen=YES
listen_address=127.0.0.1
listen_port=$FPORT
background=NO
anonymous_enable=YES
anon_root=$FROOT
no_anon_password=YES
local_enable=NO
write_enable=NO
pasv_enable=YES
pasv_min_port=$((PORT + 22))
pasv_max_port=$((PORT + 29))
pasv_address=127.0.0.1
secure_chroot_dir=$TMP/ftp/empty
seccomp_sandbox=NO
xferlog_enable=YES
xferlog_std_format=YES
xferlog_file=$TMP/ftp/xfer.log
vsftpd_log_file=$TMP/ftp/vsftpd.log
anon_max_rate=400000
CONF
    /usr/sbin/vsftpd "$TMP/ftp/vsftpd.conf" 2>"$TMP/ftp/start.err" &
    FTP_PID=$!
    for _ in $(seq 1 50); do curl -s -o /dev/null "ftp://127.0.0.1:$FPORT/" && break; sleep 0.1; done
    kill -0 "$FTP_PID" 2>/dev/null || bad "empiar: vsftpd did not start: $(cat "$TMP/ftp/start.err")"
    cat >"$TMP/www/empiar/api/entry/11759/index.json" <<'JSON'
{"EMPIAR-11759": {"title": "Serial block-face SEM of a mouse brain", "experiment_type": "SBF-SEM",
 "imagesets": [{"directory": "data", "data_format": "DM3", "pixel_width": 80.0, "pixel_height": 80.0,
   "image_width": "5628", "image_height": "5632", "voxel_type": "UNSIGNED BYTE"}]}}
JSON
    ES="sqlite:$TMP/empiar.db"
    EOPTS=(--empiar-url "$BASE/empiar/api/entry" --empiar-ftp "ftp://127.0.0.1:$FPORT/empiar/world_availability")
    id=$("$BACKEND" job add --store "$ES" empiar EMPIAR-11759)
    # killed while slab.bin comes at 400 kB/s; the second runner resumes it with REST
    "$BACKEND" loaders --store "$ES" --out "$TMP/emp" --lease 3 --runner first "${EOPTS[@]}" 2>>"$TMP/loaders.log" &
    pid=$!
    sleep 3
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null
    sleep 5
    timeout 120 "$BACKEND" loaders --store "$ES" --out "$TMP/emp" --once --runner second "${EOPTS[@]}" 2>>"$TMP/loaders.log"
    efield() { "$BACKEND" job show --store "$ES" "$1" | python3 -c "import json,sys; v=json.load(sys.stdin).get('$2'); print('' if v is None else v)"; }
    d=$TMP/emp/empiar/job-$id
    second=$(awk '$9 ~ /slab.bin/ {print $8}' "$TMP/ftp/xfer.log" | tail -1)
    if [ "$(efield "$id" status)" = saving-data ] && cmp -s "$d/slab.bin" "$EDIR/slab.bin" &&
        cmp -s "$d/dm3_3D_test-1_int16.dm3" "$EDIR/dm3_3D_test-1_int16.dm3" && [ ! -e "$d/trakem2.d" ] &&
        [ -n "$second" ] && [ "$second" -lt 3000000 ] &&
        python3 - "$d/metadata.json" <<'PY'; then
import json, sys
m = json.load(open(sys.argv[1]))
assert m["source"] == "ebi" and m["source_id"] == "11759" and m["status"] == "complete", m
assert m["metadata"]["core"]["description"] == "Serial block-face SEM of a mouse brain"
assert m["metadata"]["core"]["voxel_size_nm"] == [8, 8]
assert sorted(m["files"]["additional"]) == ["dm3_3D_test-1_int16.dm3", "slab.bin", "test_STEM_image.dm3"], m["files"]
assert m["files"]["additional"]["slab.bin"]["size"] == 3000000
assert m["additional_metadata"]["empiar"]["experiment_type"] == "SBF-SEM"
PY
        ok "empiar: entry JSON, then the FTP listing (3 files; the directory left out); the runner killed mid-file, the second resumed with REST ($second of 3000000 bytes)"
    else
        bad "empiar: status $(efield "$id" status) $(efield "$id" error); second RETR $second bytes; files: $(ls -A "$d" 2>&1 | tr '\n' ' ')"
    fi
    if [ -n "$AGENT" ]; then
        see "$TMP/emp" "$TMP/agent-emp" "$ES"
        datasets "$ES" | python3 -c '
import json, sys
d = json.loads(sys.stdin.readline())["data"]
h = {f["name"]: f.get("header", {}) for f in d["files"]}
assert d["loader"] == "ebi" and h["dm3_3D_test-1_int16.dm3"]["format"] == "dm3", h
assert h["dm3_3D_test-1_int16.dm3"]["data_type"] == "int16", h' && [ "$(efield "$id" status)" = complete ] &&
            ok "empiar: the agent read the DM3 headers (int16 volume), the job complete" ||
            bad "empiar: seen: job $(efield "$id" status)"
    fi
    kill "$FTP_PID" 2>/dev/null
    wait "$FTP_PID" 2>/dev/null
else
    echo "SKIP empiar: vsftpd is not installed (scripts/setup.sh test)"
fi

# sftp: an sshd of the test's own (key authentication only) serving files by SFTP
if [ -x /usr/sbin/sshd ] && command -v ssh-keygen >/dev/null; then
    SPORT=$((PORT + 30))
    K=$TMP/ssh
    mkdir -p "$K/files"
    [ "$(id -u)" -eq 0 ] && mkdir -p /run/sshd # sshd's privilege separation directory
    ssh-keygen -q -t ed25519 -N '' -f "$K/host_key"
    ssh-keygen -q -t ed25519 -N '' -f "$K/other_host_key"
    ssh-keygen -q -t ed25519 -N '' -f "$K/user_key"
    cp "$K/user_key.pub" "$K/authorized_keys"
    cat >"$K/sshd_config" <<CONF
Port $SPORT
ListenAddress 127.0.0.1
HostKey $K/host_key
AuthorizedKeysFile $K/authorized_keys
PidFile $K/sshd.pid
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
Subsystem sftp internal-sftp
CONF
    /usr/sbin/sshd -D -e -f "$K/sshd_config" 2>"$K/sshd.log" &
    SSHD_PID=$!
    for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$SPORT") 2>/dev/null && break; sleep 0.1; done
    echo "[127.0.0.1]:$SPORT $(cut -d' ' -f1,2 "$K/host_key.pub")" >"$K/known_hosts"
    echo "[127.0.0.1]:$SPORT $(cut -d' ' -f1,2 "$K/other_host_key.pub")" >"$K/wrong_hosts"
    # Version A of a file, the first MiB of it left as a partial (as a stopped run leaves
    # it); the server then has version B, whose first MiB differs. A resume from the
    # partial's end gives A; a fetch from zero would give B.
    head -c 2097152 /dev/urandom >"$K/a.bin"
    { head -c 1048576 /dev/zero; tail -c 1048576 "$K/a.bin"; } >"$K/files/vol.bin"
    SF="sqlite:$TMP/sftp.db"
    SU="sftp://$(id -un)@127.0.0.1:$SPORT$K/files"
    id=$("$BACKEND" job add --store "$SF" url "$SU/vol.bin")
    mkdir -p "$TMP/sftp/url/job-$id/.partial"
    head -c 1048576 "$K/a.bin" >"$TMP/sftp/url/job-$id/.partial/vol.bin"
    timeout 60 "$BACKEND" loaders --store "$SF" --out "$TMP/sftp" --once --ssh-key "$K/user_key" \
        --known-hosts "$K/known_hosts" 2>>"$TMP/loaders.log"
    sffield() { "$BACKEND" job show --store "$SF" "$1" | python3 -c "import json,sys; v=json.load(sys.stdin).get('$2'); print('' if v is None else v)"; }
    [ "$(sffield "$id" status)" = saving-data ] && cmp -s "$TMP/sftp/url/job-$id/vol.bin" "$K/a.bin" &&
        ok "sftp: key authentication, host key checked; resumed at the partial's end (1 MiB), not fetched from zero" ||
        bad "sftp: $(sffield "$id" status) $(sffield "$id" error); $(tail -2 "$K/sshd.log")"
    id=$("$BACKEND" job add --store "$SF" url "$SU/vol.bin")
    timeout 60 "$BACKEND" loaders --store "$SF" --out "$TMP/sftp" --once --ssh-key "$K/user_key" \
        --known-hosts "$K/wrong_hosts" --tries 1 2>>"$TMP/loaders.log"
    [ "$(sffield "$id" status)" = failed ] && sffield "$id" error | grep -q "SSH remote key was not OK" &&
        [ ! -e "$TMP/sftp/url/job-$id/vol.bin" ] &&
        ok "sftp: a server whose host key is not the known one refused ($(sffield "$id" error | sed 's/.*: //'))" ||
        bad "sftp: wrong host key: $(sffield "$id" status) $(sffield "$id" error)"
    kill "$SSHD_PID" 2>/dev/null
    wait "$SSHD_PID" 2>/dev/null
else
    echo "SKIP sftp: sshd is not installed (scripts/setup.sh test)"
fi

# openorganelle: a consolidated OME-Zarr store over S3's path-style HTTP interface (nginx),
# one array of it alone (no .zmetadata), and hostile stores
S3=$TMP/www/s3/cosem/ds.zarr/em
mkdir -p "$S3" "$TMP/www/s3/cosem/bad1" "$TMP/www/s3/cosem/bad2"
cp -r "$SHARED/formats/ome-zarr/simple_0.4" "$S3/simple"
chmod -R u+w "$S3"
echo '{"metadata": {"../../../etc/passwd/.zarray": {"shape": [1], "chunks": [1]}}, "zarr_consolidated_format": 1}' \
    >"$TMP/www/s3/cosem/bad1/.zmetadata"
echo '{"shape": [100000, 100000, 100000], "chunks": [10, 10, 10], "dtype": "<u1"}' >"$TMP/www/s3/cosem/bad2/.zarray"
ZS="sqlite:$TMP/zarr.db"
zg=$("$BACKEND" job add --store "$ZS" openorganelle cosem ds.zarr/em/simple)
za=$("$BACKEND" job add --store "$ZS" openorganelle cosem ds.zarr/em/simple/scale1/image)
zb1=$("$BACKEND" job add --store "$ZS" openorganelle cosem bad1)
zb2=$("$BACKEND" job add --store "$ZS" openorganelle cosem bad2)
timeout 120 "$BACKEND" loaders --store "$ZS" --out "$TMP/zarr" --once --s3-url "$BASE/s3" 2>>"$TMP/loaders.log"
zfield() { "$BACKEND" job show --store "$ZS" "$1" | python3 -c "import json,sys; v=json.load(sys.stdin).get('$2'); print('' if v is None else v)"; }
if [ "$(zfield "$zg" status)" = saving-data ] && diff -r "$S3/simple" "$TMP/zarr/openorganelle/job-$zg/simple" >/dev/null &&
    [ "$(zfield "$za" status)" = saving-data ] &&
    cmp -s "$S3/simple/scale1/image/0/0" "$TMP/zarr/openorganelle/job-$za/image/0/0" &&
    cmp -s "$S3/simple/scale1/image/.zarray" "$TMP/zarr/openorganelle/job-$za/image/.zarray"; then
    ok "openorganelle: the store fetched from .zmetadata equals the source (diff -r), and one array alone from its .zarray"
else
    bad "openorganelle: $(zfield "$zg" status) $(zfield "$zg" error) / $(zfield "$za" status) $(zfield "$za" error)"
fi
[ "$(zfield "$zb1" status)" = failed ] && zfield "$zb1" error | grep -q "not a plain path" &&
    [ "$(zfield "$zb2" status)" = failed ] && zfield "$zb2" error | grep -q "chunks, more than one job fetches" &&
    ok "openorganelle: a key with ../ refused, 10^12 chunks refused ($(zfield "$zb2" error | sed 's/.*: //'))" ||
    bad "openorganelle: hostile: $(zfield "$zb1" error) / $(zfield "$zb2" error)"
python3 - "$TMP/zarr/openorganelle/job-$za/metadata.json" <<'PY' && ok "openorganelle: the array's record: source openorganelle, shape [5, 5], uint16" || bad "openorganelle: record"
import json, sys
m = json.load(open(sys.argv[1]))
assert m["source"] == "openorganelle" and m["metadata"]["core"]["volume_shape"] == [5, 5], m["metadata"]
assert m["metadata"]["core"]["data_type"] == "uint16"
PY
if [ -n "$AGENT" ]; then
    see "$TMP/zarr" "$TMP/agent-zarr" "$ZS"
    datasets "$ZS" | python3 -c '
import json, sys
ds = [json.loads(l)["data"] for l in sys.stdin]
fmt = sorted(d["files"][0]["header"]["format"] for d in ds if d["status"] == "complete")
assert fmt == ["ome-zarr", "zarr"], [d["files"] for d in ds]' &&
        [ "$(zfield "$zg" status)" = complete ] && [ "$(zfield "$za" status)" = complete ] &&
        ok "openorganelle: the agent read the stores (an OME-Zarr group, a Zarr array), both jobs complete" ||
        bad "openorganelle: seen: $(zfield "$zg" status) $(zfield "$za" status)"
fi

# sources
mkdir -p "$TMP/www/api/v0/m/images/9846137" "$TMP/www/api/v0/m/images/666" "$TMP/www/api/v0/m/images/777" \
    "$TMP/www/idr" "$TMP/www/epfl" "$TMP/www/api/node/a89eb3af/grayscale/raw/0_1_2/64_64_64"
echo '{"data": {"Name": "Figure_S3B_FIB-SEM_U2OS_20x20x20nm_xy.tif", "@id": 9846137}}' \
    >"$TMP/www/api/v0/m/images/9846137/index.json"
echo '{"data": {"Name": "../../etc/passwd"}}' >"$TMP/www/api/v0/m/images/666/index.json"
python3 -c 'import json; print(json.dumps({"data": {"Name": "x.tif", "pad": "x" * 20000000}}))' \
    >"$TMP/www/api/v0/m/images/777/index.json"
cp "$SHARED/formats/ome-tiff/multi-channel-z-series.ome.tif" "$TMP/www/idr/9846137.tif"
cp "$SHARED/formats/tiff/test_loading_image_saved_with_imageJ_stack.tif" "$TMP/www/epfl/volumedata.tif"
cat >"$TMP/www/api/node/a89eb3af/grayscale/info" <<'JSON'
{"Base": {"TypeName": "uint8blk"}, "Extended": {"Values": [{"DataType": "uint8"}], "BlockSize": [64,64,64],
 "VoxelSize": [8,8,8], "VoxelUnits": ["nanometers","nanometers","nanometers"]},
 "Extents": {"MinPoint": [0,0,0], "MaxPoint": [34431,39724,41407]}}
JSON
head -c 262144 /dev/urandom >"$TMP/www/api/node/a89eb3af/grayscale/raw/0_1_2/64_64_64/0_0_0"
head -c 1000 /dev/urandom >"$TMP/www/api/node/a89eb3af/grayscale/raw/0_1_2/64_64_64/64_0_0"
SS="sqlite:$TMP/sources.db"
idr=$("$BACKEND" job add --store "$SS" idr 9846137)
bad_name=$("$BACKEND" job add --store "$SS" idr 666)
big_json=$("$BACKEND" job add --store "$SS" idr 777)
dvid=$("$BACKEND" job add --store "$SS" dvid "$BASE" a89eb3af grayscale 0,0,0,64,64,64)
short=$("$BACKEND" job add --store "$SS" dvid "$BASE" a89eb3af grayscale 64,0,0,64,64,64)
outside=$("$BACKEND" job add --store "$SS" dvid "$BASE" a89eb3af grayscale 34400,0,0,64,64,64)
epfl=$("$BACKEND" job add --store "$SS" epfl)
timeout 120 "$BACKEND" loaders --store "$SS" --out "$TMP/src" --once --idr-url "$BASE" \
    --epfl-url "$BASE/epfl/volumedata.tif" 2>>"$TMP/loaders.log"
sfield() { "$BACKEND" job show --store "$SS" "$1" | python3 -c "import json,sys; v=json.load(sys.stdin).get('$2'); print('' if v is None else v)"; }
python3 - "$TMP/src" "$idr" "$dvid" "$epfl" <<'PY' && ok "sources: idr, dvid and epfl complete, their records say what the APIs said" || bad "sources: records"
import json, sys
out, idr, dvid, epfl = sys.argv[1:]
m = json.load(open(f"{out}/idr/job-{idr}/metadata.json"))
assert m["status"] == "complete" and m["source_id"] == "IDR-9846137", m
assert m["metadata"]["core"]["description"] == "Figure_S3B_FIB-SEM_U2OS_20x20x20nm_xy.tif"
assert "Figure_S3B_FIB-SEM_U2OS_20x20x20nm_xy.tif" in m["files"]["additional"]
d = json.load(open(f"{out}/dvid/job-{dvid}/metadata.json"))
c = d["metadata"]["core"]
assert d["status"] == "complete" and c["volume_shape"] == [64, 64, 64] and c["voxel_size_nm"] == [8, 8, 8] and c["data_type"] == "uint8", d
assert d["files"]["additional"]["grayscale_0_0_0_64x64x64.raw"]["size"] == 262144
e = json.load(open(f"{out}/epfl/job-{epfl}/metadata.json"))
assert e["status"] == "complete" and e["source_id"] == "EPFL-CA1-HIPPOCAMPUS" and e["metadata"]["core"]["voxel_size_nm"] == [5, 5, 5], e
PY
cmp -s "$TMP/src/idr/job-$idr/Figure_S3B_FIB-SEM_U2OS_20x20x20nm_xy.tif" "$TMP/www/idr/9846137.tif" ||
    bad "sources: the IDR file differs from the server's"
[ "$(sfield "$bad_name" status)" = failed ] && sfield "$bad_name" error | grep -q "not a safe file name" &&
    [ ! -e /etc/passwd.part ] && ok "sources: an image named ../../etc/passwd refused ($(sfield "$bad_name" error))" ||
    bad "sources: ../ name: $(sfield "$bad_name" status) $(sfield "$bad_name" error)"
[ "$(sfield "$big_json" status)" = failed ] && sfield "$big_json" error | grep -q "larger than" &&
    ok "sources: a 20 MB JSON answer refused ($(sfield "$big_json" error | sed 's/.*: //'))" ||
    bad "sources: big JSON: $(sfield "$big_json" status) $(sfield "$big_json" error)"
[ "$(sfield "$short" status)" = failed ] && sfield "$short" error | grep -q "the source says" &&
    [ "$(sfield "$outside" status)" = failed ] && sfield "$outside" error | grep -q "outside" &&
    ok "sources: a raw subvolume cut short and a box outside the volume: failed, with the reasons" ||
    bad "sources: dvid faults: $(sfield "$short" status) $(sfield "$short" error) / $(sfield "$outside" error)"

# catalog (of the sources' store): one record made invalid by hand
python3 - "$TMP/src/epfl/job-$epfl/metadata.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1])); m["metadata"]["core"]["data_type"] = "uint64"; m["status"] = "done"
json.dump(m, open(sys.argv[1], "w"))
PY
[ -n "$AGENT" ] && see "$TMP/src" "$TMP/agent-src" "$SS"
mkdir -p "$TMP/catalog"
"$BACKEND" catalog --store "$SS" --out "$TMP/catalog" >"$TMP/catalog.txt" 2>"$TMP/catalog.err"
"$BACKEND" catalog --store "$SS" --json >"$TMP/catalog.json"
python3 - "$TMP/catalog.json" "$TMP/catalog" <<'PY' && ok "catalog: $(head -1 "$TMP/catalog.txt")" || { bad "catalog"; cat "$TMP/catalog.txt"; }
import glob, json, sys
c = json.load(open(sys.argv[1]))
v = c["validation"]
assert v["total_files"] == 4 and v["valid_files"] == 3 and v["invalid_files"] == 1, v
assert v["validation_rate"] == 75.0 and sorted(c["summary"]["sources_found"]) == ["epfl", "flyem", "idr"], c["summary"]
assert v["errors_by_source"]["flyem"]["valid"] == 2, v  # the one cut short: a valid record saying failed
errs = " ".join(v["errors_by_source"]["epfl"]["error_details"])
assert "data_type 'uint64'" in errs and "status 'done'" in errs, errs
assert len(c["failed_jobs"]) == 4 and any("not a safe file name" in f["error"] for f in c["failed_jobs"])
report = json.load(open(glob.glob(sys.argv[2] + "/validation_report_*.json")[0]))
assert len(report["detailed_results"]) == 4 and len(glob.glob(sys.argv[2] + "/metadata_catalog_*.json")) == 1
PY

# service: an idle runner woken by the store, `job add --wait`, `job retry --wait`
SVC="sqlite:$TMP/svc.db"
since() { python3 -c "import sys, time; print(round(time.time() - float(sys.argv[1]), 1))" "$1"; }
"$BACKEND" loaders --store "$SVC" --out "$TMP/svcout" --poll 60 --tries 1 2>>"$TMP/svc.log" &
SVC_PID=$!
sleep 0.5 # past its first look: from now on only a change in the store makes it look again
t0=$(date +%s.%N)
sid=$(timeout 30 "$BACKEND" job add --wait --store "$SVC" url "$BASE/data/multipage.tif" 2>"$TMP/svc-wait.err")
src=$?
took=$(since "$t0")
[ "$src" = 0 ] && cmp -s "$TMP/svcout/url/job-$sid/multipage.tif" "$TMP/www/data/multipage.tif" &&
    python3 -c "import sys; sys.exit(0 if $took < 10 else 1)" &&
    ok "service: a job added woke the idle runner (--poll 60); job add --wait returned in $took s with the file in place" ||
    bad "service: job add --wait exit status $src after $took s: $(cat "$TMP/svc-wait.err")"
fid=$(timeout 30 "$BACKEND" job add --wait --max-attempts 1 --store "$SVC" url "$BASE/data/later.tif" 2>"$TMP/svc-wait.err")
src=$?
[ "$src" = 1 ] && grep -q "job $fid failed: .*HTTP 404" "$TMP/svc-wait.err" &&
    ok "service: a 404 ended the wait with exit 1: $(cat "$TMP/svc-wait.err")" ||
    bad "service: the wait for a 404: exit status $src, $(cat "$TMP/svc-wait.err")"
cp "$TMP/www/data/multipage.tif" "$TMP/www/data/later.tif"
timeout 30 "$BACKEND" job retry --wait --store "$SVC" "$fid" >/dev/null 2>"$TMP/svc-wait.err"
src=$?
[ "$src" = 0 ] && cmp -s "$TMP/svcout/url/job-$fid/later.tif" "$TMP/www/data/later.tif" &&
    ok "service: job retry --wait woke the runner and returned once the file was there" ||
    bad "service: job retry --wait exit status $src: $(cat "$TMP/svc-wait.err")"
timeout 30 "$BACKEND" job add --wait --store "$SVC" url "$BASE/slow/big.bin" >"$TMP/svc-cid" 2>"$TMP/svc-wait.err" &
wpid=$!
for _ in $(seq 1 50); do # until the runner has it
    [ -s "$TMP/svc-cid" ] && [ "$("$BACKEND" job show --store "$SVC" "$(cat "$TMP/svc-cid")" 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')" = processing ] && break
    sleep 0.1
done
"$BACKEND" job cancel --store "$SVC" "$(cat "$TMP/svc-cid")" >/dev/null
wait "$wpid"
src=$?
[ "$src" = 1 ] && grep -q "job $(cat "$TMP/svc-cid") cancelled" "$TMP/svc-wait.err" &&
    ok "service: job cancel ended the wait with exit 1 (cancelled)" ||
    bad "service: the wait for a cancelled job: exit status $src, $(cat "$TMP/svc-wait.err")"
kill -TERM "$SVC_PID"
wait "$SVC_PID"
src=$?
SVC_PID=
[ "$src" = 0 ] && ok "service: the runner stopped on SIGTERM (exit 0)" || bad "service: the runner's exit status on SIGTERM: $src"
"$BACKEND" job list --wait --store "$SVC" >/dev/null 2>"$TMP/svc-usage.err"
src=$?
"$BACKEND" loaders --store "$SVC" --out "$TMP/svcout" --poll 0 2>>"$TMP/svc-usage.err"
prc=$?
[ "$src" = 2 ] && [ "$prc" = 2 ] && grep -q -- "--wait goes with add or retry" "$TMP/svc-usage.err" &&
    grep -q -- "--poll takes a number from 0.05 to 3600, not '0'" "$TMP/svc-usage.err" &&
    ok "service: job list --wait and loaders --poll 0 refused (exit 2, saying why)" ||
    bad "service: bad usage: exit $src and $prc, $(cat "$TMP/svc-usage.err")"
wait "$norunner"
src=$?
[ "$src" = 124 ] && grep -q "still pending after 10 s: is a runner (em-backend loaders --store sqlite:$TMP/norunner.db) running?" "$TMP/norunner.err" &&
    ok "service: with no runner, the wait said after 10 s that the job is still pending" ||
    bad "service: the wait with no runner: exit $src, $(cat "$TMP/norunner.err")"

# postgres: the whole loop, live
if [ -z "$AGENT" ]; then
    echo "SKIP postgres: no em-agent given"
elif ! [ -x /usr/lib/postgresql/15/bin/postgres ] || ! [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
    echo "SKIP postgres: PostgreSQL 15 or RabbitMQ is not installed (scripts/setup.sh test)"
elif ! pg_start "$TMP/pg" || ! rmq_start "$TMP/rmq" $((PORT + 10)); then
    bad "postgres: PostgreSQL or RabbitMQ did not start"
else
    PGS=$PG_URL
    for i in $(seq 1 12); do
        cp "$TMP/www/data/multipage.tif" "$TMP/www/data/pg$i.tif"
        add url "$BASE/data/pg$i.tif" --store "$PGS" >/dev/null || bad "postgres: job add"
    done
    mkdir -p "$TMP/pgout"
    # The consumer first: it declares the queue the agent's events are routed to.
    "$BACKEND" consume --amqp "$RMQ_URL" --store "$PGS" -v 2>>"$TMP/consume.log" &
    CONSUME_PID=$!
    "$AGENT" watch --agent loaders-pg --state-dir "$TMP/agent-pg" --amqp "$RMQ_URL" "$TMP/pgout" 2>>"$TMP/agent.log" &
    WATCH_PID=$!
    sleep 1
    timeout 120 "$BACKEND" loaders --store "$PGS" --out "$TMP/pgout" --once --runner a --workers 3 2>>"$TMP/loaders.log" &
    p1=$!
    timeout 120 "$BACKEND" loaders --store "$PGS" --out "$TMP/pgout" --once --runner b --workers 3 2>>"$TMP/loaders.log" &
    p2=$!
    wait "$p1"
    wait "$p2"
    for _ in $(seq 1 300); do # until the agent has seen them and consume stored them
        done_jobs=$("$BACKEND" job list --store "$PGS" --status complete | wc -l)
        [ "$done_jobs" = 12 ] && break
        sleep 0.1
    done
    fetched=$(grep -c 'GET /data/pg[0-9]*.tif' "$TMP/nginx/access.log")
    by_a=$("$BACKEND" job list --store "$PGS" --json | grep -c '"claimed_by":"a"')
    dirs=$(ls "$TMP/pgout/url" | wc -l)
    datasets "$PGS" >"$TMP/pgds.jsonl"
    python3 - "$TMP/pgds.jsonl" "$(sha256sum "$TMP/www/data/multipage.tif" | cut -d' ' -f1)" <<'PY'
import json, sys
ds = [json.loads(l)["data"] for l in open(sys.argv[1])]
assert len(ds) == 12 and len({d["dataset_id"] for d in ds}) == 12, len(ds)
assert all(d["status"] == "complete" for d in ds)
for d in ds:
    (name, f), = d["record"]["files"]["additional"].items()
    assert f["sha256"] == sys.argv[2] and f["size"] == 940, f
    assert d["header"]["format"] == "tiff", d["header"]
PY
    pyok=$?
    qd=$("$BACKEND" query datasets --store "$PGS" --json | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin]
print(sum(1 for r in rows if r["job_status"] == "complete" and r["data_type"] == "uint8" and r["mismatches"] == 0))')
    [ "$qd" = 12 ] || { pyok=1; echo "query datasets on PostgreSQL: $qd of 12 rows complete, uint8, without mismatches"; }
    [ "$done_jobs" = 12 ] && [ "$fetched" = 12 ] && [ "$dirs" = 12 ] && [ "$pyok" = 0 ] &&
        ok "postgres: 12 jobs run by two runners ($by_a by a), each file fetched once; the agent saw 12 datasets, consume stored them (checksums equal the server's), all 12 jobs complete" ||
        bad "postgres: $done_jobs complete, $fetched fetches, $dirs directories, $(wc -l <"$TMP/pgds.jsonl") datasets stored"
    kill "$WATCH_PID" "$CONSUME_PID" 2>/dev/null
    wait "$WATCH_PID" "$CONSUME_PID" 2>/dev/null
    WATCH_PID= CONSUME_PID=
    # An idle runner that looks for due jobs only every 60 s: the job added notifies it.
    "$BACKEND" loaders --store "$PGS" --out "$TMP/pgsvc" --poll 60 2>>"$TMP/svc.log" &
    SVC_PID=$!
    sleep 1
    t0=$(date +%s.%N)
    sid=$(timeout 30 "$BACKEND" job add --wait --store "$PGS" url "$BASE/data/multipage.tif" 2>"$TMP/svc-wait.err")
    src=$?
    took=$(since "$t0")
    kill -TERM "$SVC_PID"
    wait "$SVC_PID"
    SVC_PID=
    [ "$src" = 0 ] && cmp -s "$TMP/pgsvc/url/job-$sid/multipage.tif" "$TMP/www/data/multipage.tif" &&
        python3 -c "import sys; sys.exit(0 if $took < 10 else 1)" &&
        ok "postgres: a job added woke an idle runner (--poll 60) by NOTIFY; job add --wait returned in $took s" ||
        bad "postgres: job add --wait exit status $src after $took s: $(cat "$TMP/svc-wait.err")"
fi

# after everything: the agent sees the SQLite store's output, every fetched job completes,
# one dataset per job directory (the resumed job's two runners made one)
if [ -n "$AGENT" ]; then
    see "$OUT" "$TMP/agent-state" "$STORE"
    waiting=$("$BACKEND" job list --store "$STORE" --status saving-data | wc -l)
    datasets "$STORE" >"$TMP/all.jsonl"
    dup=$(python3 -c 'import json,sys,collections; c=collections.Counter(json.loads(l)["data"]["dir"] for l in open(sys.argv[1])); print(sum(1 for v in c.values() if v > 1))' "$TMP/all.jsonl")
    [ "$waiting" = 0 ] && [ "$dup" = 0 ] && [ "$(field "$resume_id" status)" = complete ] &&
        ok "loop: the agent saw every output; no job left waiting, $(wc -l <"$TMP/all.jsonl") datasets, one per directory (the resumed job's too)" ||
        bad "loop: $waiting jobs still saving-data, $dup directories with two datasets, resumed job $(field "$resume_id" status)"
fi

"$BACKEND" job list --store "$STORE" >"$TMP/list.txt" && [ "$(wc -l <"$TMP/list.txt")" -ge 8 ] &&
    ok "job list: $(wc -l <"$TMP/list.txt") jobs" || bad "job list"
echo "$failures failed"
[ "$failures" -eq 0 ]
