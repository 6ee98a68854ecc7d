#!/usr/bin/env bash
# End to end: `em-backend serve` (issue 16) against stores built by the real agent. Cases:
#   api       an SQLite store of an em-synth visit (2 sessions, an aborted one), an agent's
#             heartbeats and a job: every endpoint's items equal `query … --json` (and
#             `job list --json`) for the same store; one session and one square equal
#             their rows; micrographs paged with since= cover every micrograph once;
#             openapi.json names every path; /health and /metrics (HELP and TYPE before
#             samples, a stalled gauge per session, an alive gauge per agent)
#   errors    bad ids, parameters and methods: 400/404/405 with a JSON error naming them;
#             a store that does not exist refused at start; a port in use refused
#   auth      a non-loopback --listen without --token-file refused (exit 2, says why);
#             with a token: none → 401, a wrong one → 401 (also one that shares its first
#             31 characters), the right one in the header or ?access_token= → 200;
#             /health and the page open; TLS with --tls-cert/--tls-key (curl --cacert)
#   events    a client connected to /api/v1/events while em-agent watch follows a paced
#             em-synth session and `ingest --follow` stores it: it receives every change
#             (each change_log id once, in order, every entity in the store among them);
#             cut off midway and reconnected with Last-Event-ID, the two together miss
#             nothing and repeat nothing; a second client from since=0 gets them all
#   stall     micrographs copied in at a microscope's pace (0.3 s), then none: with
#             --stall-min 3 flagged stalled
#             (API, /metrics gauge, the log) no sooner than the threshold and within it
#             plus the check period; acquiring again once micrographs arrive
#   page      headless Chromium (DevTools protocol) on the page while the committed
#             recording of an em-synth visit is replayed (fsrecorder, its own pace)
#             through agent → ingest --follow → store; then: the sessions table has one row per session (data-session-id); the
#             atlas map one element per placed square (data-gridsquare-id) at the stored
#             positions; a square view one circle per hole (data-foilhole-id) with its
#             state; counts equal the store's; screenshots kept as test artifacts
#   images    the images behind the maps (serve --image-root): a real EPU session and its
#             atlas, with .jpg files beside the square image and the tiles; each served
#             byte for byte; a tile that links out of the root, one that is not a JPEG,
#             an unknown tile, a square without an image and a stored path with ".."
#             are refused with the reason; without --image-root none is served and
#             /health says so; in Chromium the atlas map has one <image> per tile at the
#             tile's stored place, loaded (the refused ones hidden), and the square map
#             the square image spanning the holes' pixel space, loaded; screenshots kept
#   postgres  the same API against PostgreSQL (equal to query), live events by
#             LISTEN/NOTIFY from `consume` of the agent's events through RabbitMQ, and
#             the stall alert published on em.alerts (read back from a queue bound to it)
set -u
AGENT=$(realpath "$1")
BACKEND=$(realpath "$2")
SYNTH=$(realpath "$3")
CASE=$4
PORT=${5:-24600}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=servers.sh
. "$HERE/servers.sh"
TMP=$(mktemp -d /tmp/em-serve.XXXXXX)
ARTIFACTS=${EM_TEST_ARTIFACTS:-$PWD/artifacts}
failures=0
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    servers_cleanup
    if [ "$failures" -gt 0 ] && [ -n "${KEEP_FAILED:-}" ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
ok() { echo "ok   $*"; }
bad() { failures=$((failures + 1)); echo "FAIL $*"; }
finish() {
    echo "$CASE: $failures failed"
    [ "$failures" -eq 0 ]
    exit $?
}

# serve_start STORE [ARGS...]: starts serve on a free port; sets SERVE_PID, URL.
serve_start() {
    local store=$1
    shift
    rm -f "$TMP/port"
    "$BACKEND" serve --store "$store" --listen 127.0.0.1:0 --port-file "$TMP/port" "$@" \
        >>"$TMP/serve.log" 2>&1 &
    SERVE_PID=$!
    PIDS+=("$SERVE_PID")
    for _ in $(seq 100); do [ -s "$TMP/port" ] && break; sleep 0.1; done
    URL="http://127.0.0.1:$(cat "$TMP/port" 2>/dev/null)"
    curl -sf "$URL/health" >/dev/null || bad "serve did not start: $(tail -3 "$TMP/serve.log")"
}
serve_stop() {
    kill "$SERVE_PID" 2>/dev/null
    wait "$SERVE_PID" 2>/dev/null
}

# A visit: 2 sessions (3 imaged squares of 4 holes, 2 micrographs each), 1 aborted.
make_visit() {
    "$SYNTH" -q --sessions 2 --aborted 1 --squares 3 --unimaged 2 --holes 4 --mics 2 --no-images \
        --seed 7 "$TMP/visit" || bad "em-synth"
}

# compare_api STORE: every endpoint against query --json of the same store.
compare_api() {
    local store=$1
    local s1 sq atlas
    s1=$("$BACKEND" query sessions --json --store "$store" | python3 -c 'import json,sys
print(next(json.loads(l)["session_id"] for l in sys.stdin if json.loads(l)["session_id"]))')
    sq=$("$BACKEND" query squares "$s1" --json --store "$store" | python3 -c 'import json,sys
print([json.loads(l) for l in sys.stdin if json.loads(l)["holes"]][0]["gridsquare_id"])')
    atlas=$("$BACKEND" query atlases --json --store "$store" | python3 -c 'import json,sys
print(json.loads(sys.stdin.readline())["atlas_id"])')
    local pairs=(
        "sessions|query sessions ${QSTALL:-}"
        "sessions/$s1/squares|query squares $s1"
        "sessions/$s1/squares/$sq/foilholes|query foilholes $s1 $sq"
        "micrographs|query micrographs --limit 100"
        "micrographs?session=$s1&limit=5|query micrographs --session $s1 --limit 5"
        "micrographs?square=$sq&since=,&limit=3|query micrographs --square $sq --since , --limit 3"
        "atlases|query atlases"
        "atlases/$atlas/tiles|query tiles $atlas"
        "datasets|query datasets"
        "agents|query agents"
        "jobs|job list")
    local p
    cat >"$TMP/same.py" <<'EOF'
import json, sys
api = json.load(open(sys.argv[1]))["items"]
q = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
def norm(rows):
    return [{k: v for k, v in r.items() if k not in ("uptime_s",)} for r in rows]
if norm(api) != norm(q):
    for a, b in zip(api, q):
        if a != b:
            print({k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)})
            break
    print(len(api), len(q))
    sys.exit(1)
EOF
    # A state judged by the clock (a session's stall) may change between the two reads:
    # a difference counts only when three reads in a row disagree.
    for p in "${pairs[@]}"; do
        local path=${p%%|*} q=${p#*|} try same=false
        for try in 1 2 3; do
            # shellcheck disable=SC2086
            curl -sf "$URL/api/v1/$path" >"$TMP/api.json" && "$BACKEND" $q --json --store "$store" >"$TMP/q.jsonl" &&
                python3 "$TMP/same.py" "$TMP/api.json" "$TMP/q.jsonl" >"$TMP/same.out" && { same=true; break; }
        done
        if $same; then ok "$store: /api/v1/$path equals '$q --json' ($(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["items"]))' "$TMP/api.json") items)"; else bad "$store: /api/v1/$path differs from '$q --json': $(cat "$TMP/same.out")"; fi
    done
    local one=false
    for try in 1 2 3; do
        curl -sf "$URL/api/v1/sessions/$s1" >"$TMP/one.json"
        # shellcheck disable=SC2086
        "$BACKEND" query sessions ${QSTALL:-} --json --store "$store" | grep "\"session_id\":$s1," >"$TMP/one.q"
        python3 -c 'import json,sys; assert json.load(open(sys.argv[1])) == json.loads(open(sys.argv[2]).read())' \
            "$TMP/one.json" "$TMP/one.q" 2>/dev/null && { one=true; break; }
    done
    $one && ok "$store: /api/v1/sessions/$s1 is its row" || bad "$store: one session differs"
    curl -sf "$URL/api/v1/sessions/$s1/squares/$sq" >"$TMP/one.json"
    "$BACKEND" query squares "$s1" --json --store "$store" | grep "\"gridsquare_id\":$sq," >"$TMP/one.q"
    python3 -c 'import json,sys; assert json.load(open(sys.argv[1])) == json.loads(open(sys.argv[2]).read())' \
        "$TMP/one.json" "$TMP/one.q" && ok "$store: /api/v1/sessions/$s1/squares/$sq is its row" || bad "$store: one square differs"
    # the pictures' files found from the store (this server reads none: it says so, naming
    # the .jpg it would have read)
    local tile
    tile=$("$BACKEND" query tiles "$atlas" --json --store "$store" | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["tile_id"])')
    for p in "sessions/$s1/squares/$sq/image|Images-Disc[0-9]*/GridSquare_$sq/GridSquare_[0-9_]*\.jpg" \
        "atlases/$atlas/tiles/$tile/image|/Atlas/Tile_${tile}_[0-9_]*\.jpg"; do
        local path=${p%%|*} want=${p#*|}
        code=$(curl -s -o "$TMP/r.json" -w '%{http_code}' "$URL/api/v1/$path")
        [ "$code" = 404 ] && grep -q -- "$want: this server reads no images (start it with --image-root" "$TMP/r.json" &&
            ok "$store: /api/v1/$path: the .jpg beside its manifest, not read without --image-root" || bad "$store: /api/v1/$path: $code $(cat "$TMP/r.json")"
    done
    # paging: since= from "," to the end covers every micrograph once
    python3 - "$URL" "$("$BACKEND" query sessions --json --store "$store" | python3 -c 'import json,sys; print(sum(json.loads(l)["micrographs"] or 0 for l in sys.stdin))')" <<'EOF' && ok "$store: micrographs paged 7 at a time: each once, in acquisition order" || bad "$store: paging"
import json, sys, urllib.parse, urllib.request
url, total = sys.argv[1], int(sys.argv[2])
seen, since, pages = [], ",", 0
while True:
    r = json.load(urllib.request.urlopen(f"{url}/api/v1/micrographs?limit=7&since={urllib.parse.quote(since)}"))
    pages += 1
    if not r["items"]:
        break
    seen += [(m["acquired_at"], m["micrograph_uuid"]) for m in r["items"]]
    since = r["next"]
assert len(seen) == total == len(set(seen)), (len(seen), total)
assert seen == sorted(seen), "not in acquisition order"
EOF
}

case "$CASE" in
api)
    make_visit
    STORE="sqlite:$TMP/store.db"
    "$AGENT" scan -q "$TMP/visit" >"$TMP/scan.jsonl" && "$BACKEND" ingest -q --store "$STORE" "$TMP/scan.jsonl" ||
        bad "scan | ingest"
    # heartbeats: a watch that runs for a while and stops (its last one says "stopped")
    "$AGENT" watch -q --heartbeat 1 --agent mic1 --state-dir "$TMP/state" --out "$TMP/hb.jsonl" "$TMP/visit" &
    W=$!
    sleep 2.5
    kill "$W"
    wait "$W"
    "$BACKEND" ingest -q --store "$STORE" "$TMP/hb.jsonl" || bad "ingest heartbeats"
    [ "$(grep -c '"type":"agent"' "$TMP/hb.jsonl")" -ge 3 ] && ok "watch --heartbeat 1: $(grep -c '"type":"agent"' "$TMP/hb.jsonl") heartbeats in 2.5 s" ||
        bad "heartbeats: $(grep -c '"type":"agent"' "$TMP/hb.jsonl")"
    tail -1 "$TMP/hb.jsonl" | grep -q '"state":"stopped"' && ok "the last heartbeat says stopped" || bad "last heartbeat: $(tail -1 "$TMP/hb.jsonl")"
    "$BACKEND" job add url http://127.0.0.1:9/x.mrc --store "$STORE" >/dev/null || bad "job add"
    serve_start "$STORE"
    compare_api "$STORE"
    curl -sf "$URL/api/v1/agents" | python3 -c 'import json,sys
a = json.load(sys.stdin)["items"]
assert len(a) == 1 and a[0]["agent"] == "mic1" and a[0]["alive"] is False and a[0]["status"].startswith("stopped at"), a
assert a[0]["files_watched"] > 0 and a[0]["directories_watched"] > 0 and a[0]["host"] and a[0]["version"] != "unknown", a' &&
        ok "agents: mic1 stopped (its last heartbeat said so), files and directories watched, host, version" || bad "agents: $(curl -s "$URL/api/v1/agents")"
    curl -sf "$URL/api/v1/openapi.json" >"$TMP/openapi.json"
    python3 - "$TMP/openapi.json" "$URL" <<'EOF' && ok "openapi.json: OpenAPI 3 with every path; each list answer has the fields its schema names (and no other)" || bad "openapi.json"
import json, sys, urllib.request
d, url = json.load(open(sys.argv[1])), sys.argv[2]
for p in ["/sessions", "/sessions/{session_id}", "/sessions/{session_id}/squares", "/sessions/{session_id}/squares/{gridsquare_id}/foilholes",
          "/sessions/{session_id}/squares/{gridsquare_id}/image", "/micrographs", "/atlases", "/atlases/{atlas_id}/tiles",
          "/atlases/{atlas_id}/tiles/{tile_id}/image", "/datasets", "/jobs", "/agents", "/events"]:
    assert p in d["paths"], p
assert d["openapi"].startswith("3.")
get = lambda path: json.load(urllib.request.urlopen(url + "/api/v1/" + path))["items"]
sid = next(s["session_id"] for s in get("sessions") if s["session_id"])
sq = next(q["gridsquare_id"] for q in get(f"sessions/{sid}/squares") if q["holes"])
aid = get("atlases")[0]["atlas_id"]
schemas = d["components"]["schemas"]
for path, schema in [("sessions", "Session"), (f"sessions/{sid}/squares", "Square"), (f"sessions/{sid}/squares/{sq}/foilholes", "FoilHole"),
                     ("micrographs", "Micrograph"), ("atlases", "Atlas"), (f"atlases/{aid}/tiles", "Tile"), ("agents", "Agent"), ("jobs", "Job")]:
    items = get(path)
    assert items, path
    props, need = set(schemas[schema]["properties"]), set(schemas[schema].get("required", schemas[schema]["properties"]))
    assert need <= set(items[0]) <= props, (path, set(items[0]) ^ props)
EOF
    curl -sf "$URL/health" | grep -q '"status":"ok"' && ok "/health: ok" || bad "/health"
    curl -sf "$URL/metrics" >"$TMP/metrics" || bad "/metrics"
    python3 - "$TMP/metrics" <<'EOF' && ok "/metrics: Prometheus text, HELP/TYPE first, a stalled gauge per session, alive per agent" || bad "/metrics: $(head -20 "$TMP/metrics")"
import re, sys
typed = set()
samples = {}
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    if line.startswith("# TYPE "):
        typed.add(line.split()[2])
        continue
    if line.startswith("#") or not line:
        continue
    m = re.match(r'^([a-z_]+)(\{[^}]*\})? (-?[0-9.e+-]+|NaN)$', line)
    assert m, line
    assert m.group(1) in typed, f"sample before its TYPE: {line}"
    samples.setdefault(m.group(1), []).append((m.group(2) or "", float(m.group(3))))
assert samples["em_backend_up"] == [("", 1.0)]
assert len(samples["em_session_stalled"]) == 2, samples["em_session_stalled"]
assert all(v in (0.0, 1.0) for _, v in samples["em_session_stalled"])
assert samples["em_agent_alive"] == [('{agent="mic1"}', 0.0)], samples["em_agent_alive"]
assert any('status="pending"' in l and v == 1 for l, v in samples["em_backend_jobs"])
EOF
    serve_stop
    ;;
errors)
    make_visit
    STORE="sqlite:$TMP/store.db"
    "$AGENT" scan -q "$TMP/visit" | "$BACKEND" ingest -q --store "$STORE" - || bad "scan | ingest"
    serve_start "$STORE"
    while IFS='|' read -r method path want what; do
        code=$(curl -s -o "$TMP/body" -w '%{http_code}' -X "$method" "$URL$path")
        if [ "$code" = "$want" ] && python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["error"]; assert e["status"]==int(sys.argv[2]) and sys.argv[3].lower() in e["message"].lower(), e' "$TMP/body" "$want" "$what" 2>/dev/null; then
            ok "$method $path: $code, says '$what'"
        else
            bad "$method $path: $code $(cat "$TMP/body")"
        fi
    done <<'EOF'
GET|/api/v1/sessions/abc|400|session abc: an id is a whole number
GET|/api/v1/sessions/12345678901234567890|400|whole number
GET|/api/v1/sessions/42|404|session 42 is not in
GET|/api/v1/sessions/42/squares|404|session 42
GET|/api/v1/sessions/42/timeline|404|session 42
GET|/api/v1/micrographs?limit=0|400|limit=0
GET|/api/v1/micrographs?limit=abc|400|limit=abc
GET|/api/v1/micrographs?since=yesterday|400|cursor
GET|/api/v1/micrographs?session=x1|400|session=x1
GET|/api/v1/micrographs?color=red|400|color: unknown parameter
GET|/api/v1/jobs?status=done|400|status=done
GET|/api/v1/events?since=-1|400|whole number
GET|/api/v1/nothing|404|no such resource
GET|/nothing.html|404|no such page
POST|/api/v1/sessions|405|only GET
DELETE|/api/v1/jobs|405|only GET
EOF
    s1=$("$BACKEND" query sessions --json --store "$STORE" | head -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["session_id"])')
    code=$(curl -s -o "$TMP/body" -w '%{http_code}' "$URL/api/v1/sessions/$s1/squares/1")
    [ "$code" = 404 ] && grep -q "grid square 1 of session $s1 is not in" "$TMP/body" && ok "an unknown square: 404, named" || bad "unknown square: $code $(cat "$TMP/body")"
    curl -sf "$URL/api/v1/sessions?access_token=" >/dev/null && ok "access_token is taken as a parameter (no token needed here)" || bad "access_token param refused"
    # a port in use; a store that does not exist
    "$BACKEND" serve --store "$STORE" --listen "127.0.0.1:$(cat "$TMP/port")" >"$TMP/out" 2>&1
    rc=$?
    [ $rc -eq 1 ] && grep -q "cannot listen on 127.0.0.1:$(cat "$TMP/port")" "$TMP/out" && ok "a port in use: exit 1, says so" || bad "port in use: $rc $(cat "$TMP/out")"
    "$BACKEND" serve --store "sqlite:$TMP/typo.db" >"$TMP/out" 2>&1
    rc=$?
    [ $rc -eq 1 ] && grep -q "no such store" "$TMP/out" && [ ! -e "$TMP/typo.db" ] && ok "a store that does not exist: exit 1, none made" || bad "missing store: $rc $(cat "$TMP/out")"
    "$BACKEND" serve --store "$STORE" --listen nowhere >"$TMP/out" 2>&1
    [ $? -eq 2 ] && grep -q "ADDR:PORT" "$TMP/out" && ok "--listen nowhere: usage error" || bad "--listen nowhere: $(cat "$TMP/out")"
    serve_stop
    grep -q "stopping: [0-9]* requests served" "$TMP/serve.log" && ok "SIGTERM: stops, says how many requests it served" || bad "stop: $(tail -2 "$TMP/serve.log")"
    ;;
auth)
    make_visit
    STORE="sqlite:$TMP/store.db"
    "$AGENT" scan -q "$TMP/visit" | "$BACKEND" ingest -q --store "$STORE" - || bad "scan | ingest"
    "$BACKEND" serve --store "$STORE" --listen 0.0.0.0:0 >"$TMP/out" 2>&1
    rc=$?
    [ $rc -eq 2 ] && grep -q "other machines could read the store.*--token-file" "$TMP/out" && ok "0.0.0.0 without a token: refused (exit 2), says why" ||
        bad "0.0.0.0 without token: $rc $(cat "$TMP/out")"
    printf 'short\n' >"$TMP/short"
    "$BACKEND" serve --store "$STORE" --listen 0.0.0.0:0 --token-file "$TMP/short" >"$TMP/out" 2>&1
    [ $? -eq 2 ] && grep -q "16 to" "$TMP/out" && ok "a 5-character token: refused" || bad "short token: $(cat "$TMP/out")"
    TOKEN=s3cret-token-0123456789abcdef-XYZ
    printf '%s\n' "$TOKEN" >"$TMP/token"
    chmod 600 "$TMP/token"
    rm -f "$TMP/port"
    "$BACKEND" serve --store "$STORE" --listen 0.0.0.0:0 --port-file "$TMP/port" --token-file "$TMP/token" >"$TMP/serve.log" 2>&1 &
    SERVE_PID=$!
    PIDS+=("$SERVE_PID")
    for _ in $(seq 100); do [ -s "$TMP/port" ] && break; sleep 0.1; done
    U="http://127.0.0.1:$(cat "$TMP/port")"
    grep -q "bearer token required" "$TMP/serve.log" && ok "serve on 0.0.0.0 with a token: says a token is required" || bad "start line: $(cat "$TMP/serve.log")"
    code() { curl -s -o "$TMP/body" -w '%{http_code}' "$@"; }
    [ "$(code "$U/api/v1/sessions")" = 401 ] && grep -q "bearer token is required" "$TMP/body" && ok "no token: 401, says how to give one" || bad "no token: $(cat "$TMP/body")"
    [ "$(code -H "Authorization: Bearer wrong" "$U/api/v1/sessions")" = 401 ] && ok "a wrong token: 401" || bad "wrong token"
    [ "$(code -H "Authorization: Bearer ${TOKEN:0:31}" "$U/api/v1/sessions")" = 401 ] && ok "the token's first 31 characters: 401" || bad "prefix token"
    [ "$(code -H "Authorization: Bearer ${TOKEN}x" "$U/api/v1/sessions")" = 401 ] && ok "the token and one more character: 401" || bad "longer token"
    [ "$(code -H "Authorization: Bearer $TOKEN" "$U/api/v1/sessions")" = 200 ] && ok "the token in the header: 200" || bad "right token: $(cat "$TMP/body")"
    [ "$(code "$U/api/v1/sessions?access_token=$TOKEN")" = 200 ] && ok "the token as ?access_token=: 200" || bad "access_token"
    [ "$(code "$U/metrics")" = 401 ] && ok "/metrics needs it too" || bad "/metrics open"
    [ "$(code "$U/api/v1/events")" = 401 ] && ok "the events need it too" || bad "events open"
    [ "$(code "$U/health")" = 200 ] && [ "$(code "$U/")" = 200 ] && [ "$(code "$U/app.js")" = 200 ] && ok "/health and the page's files: open (they hold no data)" || bad "health/page"
    kill "$SERVE_PID"
    wait "$SERVE_PID"
    # TLS, with a certificate from a test CA
    C=$TMP/certs
    mkdir -p "$C"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=em-serve-test-ca -keyout "$C/ca.key" -out "$C/ca.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$C/server.key" -out "$C/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\n' >"$C/ext"
    openssl x509 -req -in "$C/server.csr" -CA "$C/ca.pem" -CAkey "$C/ca.key" -CAcreateserial -days 2 -extfile "$C/ext" -out "$C/server.pem" 2>/dev/null
    rm -f "$TMP/port"
    "$BACKEND" serve --store "$STORE" --listen 0.0.0.0:0 --port-file "$TMP/port" --token-file "$TMP/token" \
        --tls-cert "$C/server.pem" --tls-key "$C/server.key" >"$TMP/serve.log" 2>&1 &
    SERVE_PID=$!
    PIDS+=("$SERVE_PID")
    for _ in $(seq 100); do [ -s "$TMP/port" ] && break; sleep 0.1; done
    U="https://127.0.0.1:$(cat "$TMP/port")"
    [ "$(code --cacert "$C/ca.pem" -H "Authorization: Bearer $TOKEN" "$U/api/v1/sessions")" = 200 ] && grep -q '"items"' "$TMP/body" &&
        ok "HTTPS with --tls-cert/--tls-key: verified by the test CA, answers" || bad "https: $(cat "$TMP/serve.log")"
    curl -s -o /dev/null "$U/health" && bad "https without the CA: accepted" || ok "HTTPS without the CA: the client refuses the certificate"
    curl -s -o /dev/null "http://127.0.0.1:$(cat "$TMP/port")/health" && bad "plain HTTP on the TLS port answered" || ok "plain HTTP on the TLS port: no answer"
    "$BACKEND" serve --store "$STORE" --tls-cert "$C/server.pem" >"$TMP/out" 2>&1
    [ $? -eq 2 ] && grep -q "both --tls-cert and --tls-key" "$TMP/out" && ok "--tls-cert alone: refused" || bad "cert alone: $(cat "$TMP/out")"
    kill "$SERVE_PID"
    wait "$SERVE_PID"
    ;;
events | stall)
    # A session written at a microscope's pace into the watched directory: em-synth
    # makes it in a staging directory, then its files are copied in, in the order
    # em-synth wrote them; the micrographs one every PACE seconds.
    "$SYNTH" -q --sessions 1 --aborted 0 --squares 3 --unimaged 2 --holes 4 --mics 2 --no-images \
        --seed 11 "$TMP/stage" || bad "em-synth"
    (cd "$TMP/stage" && find . -type f -printf '%T@ %p\n' | sort -n | cut -d' ' -f2- | sed 's|^\./||') >"$TMP/order"
    grep '/Data/' "$TMP/order" >"$TMP/mics"
    grep -v '/Data/' "$TMP/order" >"$TMP/rest"
    mkdir -p "$TMP/visit"
    copy_in() { # copy_in LIST PACE: the files of LIST, one every PACE seconds
        while read -r f; do
            mkdir -p "$TMP/visit/$(dirname "$f")"
            cp "$TMP/stage/$f" "$TMP/visit/$f.tmp" && mv "$TMP/visit/$f.tmp" "$TMP/visit/$f"
            [ "$2" = 0 ] || sleep "$2"
        done <"$1"
    }
    STORE="sqlite:$TMP/store.db"
    : >"$TMP/events.jsonl"
    "$BACKEND" ingest -q --store "$STORE" "$TMP/events.jsonl" || bad "make the store"
    "$BACKEND" ingest --follow "$TMP/events.jsonl" --store "$STORE" -q >"$TMP/ingest.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 50); do [ -e "$TMP/store.db" ] && break; sleep 0.1; done
    "$AGENT" watch -q --heartbeat 2 --agent mic1 --state-dir "$TMP/state" --out "$TMP/events.jsonl" "$TMP/visit" &
    PIDS+=($!)
    ;;&
events)
    serve_start "$STORE"
    curl -sN "$URL/api/v1/events" >"$TMP/sse1" &
    C1=$!
    PIDS+=("$C1")
    sleep 0.5
    copy_in "$TMP/rest" 0
    head -12 "$TMP/mics" >"$TMP/mics1"
    tail -n +13 "$TMP/mics" >"$TMP/mics2"
    copy_in "$TMP/mics1" 0.1
    sleep 1.5
    kill "$C1" # cut off midway ...
    last=$(grep '^id: ' "$TMP/sse1" | tail -1 | cut -d' ' -f2)
    copy_in "$TMP/mics2" 0.1
    # ... and back with the last id it saw, as a browser does
    curl -sN -H "Last-Event-ID: $last" "$URL/api/v1/events" >"$TMP/sse2" &
    C2=$!
    PIDS+=("$C2")
    sleep 3
    curl -sN -m 3 "$URL/api/v1/events?since=0" >"$TMP/sse0"
    kill "$C2"
    # The agent's heartbeats go on committing changes: each stream is judged up to the
    # newest change it got.
    sqlite3 "$TMP/store.db" "SELECT id FROM change_log ORDER BY id" >"$TMP/ids"
    python3 - "$TMP/sse1" "$TMP/sse2" "$TMP/sse0" "$TMP/ids" "$TMP/store.db" <<'EOF' && ok "events: every change once, in order, across a reconnect with Last-Event-ID; since=0 gives all ($(wc -l <"$TMP/ids") changes)" || bad "events"
import json, sqlite3, sys
def events(path):
    out = []
    for block in open(path).read().split("\n\n"):
        lines = dict(l.split(": ", 1) for l in block.split("\n") if ": " in l and not l.startswith(":"))
        if lines.get("event") == "change":
            d = json.loads(lines["data"])
            assert int(lines["id"]) == d["id"]
            out.append(d)
    return out
a, b, z = events(sys.argv[1]), events(sys.argv[2]), events(sys.argv[3])
hello = [json.loads(blk.split("data: ", 1)[1]) for blk in open(sys.argv[1]).read().split("\n\n") if "event: hello" in blk][0]
all_ids = [int(x) for x in open(sys.argv[4]).read().split()]
got = [e["id"] for e in a + b]
assert a and b, (len(a), len(b))
assert got == sorted(got) and len(got) == len(set(got)), "repeated or out of order"
ids = [i for i in all_ids if hello["cursor"] < i <= got[-1]]  # from when it connected
assert got == ids, (len(got), len(ids), sorted(set(ids) ^ set(got))[:5])
zi = [e["id"] for e in z]
assert zi and zi == [i for i in all_ids if i <= zi[-1]], (len(zi), len(all_ids))
assert len({json.dumps(e["key"], sort_keys=True) for e in z if e["type"] == "micrograph"}) == 24
db = sqlite3.connect(sys.argv[5])
keys = {(e["type"], json.dumps(e["key"], sort_keys=True)) for e in a + b}
n_mic = db.execute("select count(*) from micrograph").fetchone()[0]
mics = {k for k in keys if k[0] == "micrograph"}
assert len(mics) == n_mic == 24, (len(mics), n_mic)
assert any(k[0] == "agent" for k in keys)
EOF
    serve_stop
    ;;
stall)
    serve_start "$STORE" --stall-min 3 --stall-factor 4
    copy_in "$TMP/rest" 0
    head -12 "$TMP/mics" | copy_in /dev/stdin 0.3
    t_last=$(date +%s.%N)
    sid=$("$BACKEND" query sessions --json --store "$STORE" | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["session_id"])')
    # the threshold is max(3 s, 4 x 0.3 s): flagged 3 s after the last file, seen within
    # 3 s + the 0.75 s check (+ slack for the agent and ingest --follow on a busy machine)
    flagged=""
    for _ in $(seq 100); do
        st=$(curl -sf "$URL/api/v1/sessions/$sid" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["stalled"], d["stall_after_s"])')
        if [ "${st%% *}" = True ]; then flagged=$(date +%s.%N); break; fi
        sleep 0.1
    done
    if [ -n "$flagged" ]; then
        python3 -c "import sys; d=$flagged-$t_last; print(f'{d:.1f}'); sys.exit(0 if 2.7 <= d <= 7 else 1)" >"$TMP/d" &&
            ok "stalled $(cat "$TMP/d") s after the last micrograph (threshold ${st#* } s)" || bad "stalled after $(cat "$TMP/d") s"
    else
        bad "never flagged stalled: $(curl -s "$URL/api/v1/sessions/$sid")"
    fi
    curl -sf "$URL/metrics" | grep -q "^em_session_stalled{session_id=\"$sid\",.*} 1$" && ok "/metrics: em_session_stalled 1" || bad "metrics: $(curl -s "$URL/metrics" | grep stalled)"
    for _ in $(seq 30); do
        "$BACKEND" query sessions --json --store "$STORE" --stall-min 3 --stall-factor 4 >"$TMP/q" 2>&1
        grep -q '"stalled":true' "$TMP/q" && break
        sleep 0.2
    done
    grep -q '"stalled":true' "$TMP/q" && ok "query sessions says stalled too" || bad "query sessions: $(cat "$TMP/q")"
    sleep 1
    grep -q "session $sid .*stalled: no micrograph since" "$TMP/serve.log" && ok "serve logs the stall" || bad "log: $(cat "$TMP/serve.log")"
    tail -n +13 "$TMP/mics" | head -3 | copy_in /dev/stdin 0.3
    resumed=""
    for _ in $(seq 60); do
        st=$(curl -sf "$URL/api/v1/sessions/$sid" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["stalled"], d["state"])')
        if [ "${st%% *}" = False ]; then resumed=1; break; fi
        sleep 0.1
    done
    [ -n "$resumed" ] && ok "micrographs again: not stalled (${st#* })" || bad "still stalled: $st"
    for _ in $(seq 50); do
        grep -q "session $sid .*acquiring again" "$TMP/serve.log" && break
        sleep 0.1
    done
    grep -q "session $sid .*acquiring again" "$TMP/serve.log" && ok "serve logs the resumption" || bad "log: $(cat "$TMP/serve.log")"
    serve_stop
    ;;
page)
    command -v chromium >/dev/null || { echo "SKIP: chromium is not installed (scripts/setup.sh test)"; exit 77; }
    # The committed recording of an em-synth visit, replayed at its own pace into the
    # watched directory: agent → --out → ingest --follow → store → serve → the page.
    FSR=$(dirname "$SYNTH")/fsrecorder
    REC=$HERE/../../testdata/recordings/synth-visit.tar.zst
    STORE="sqlite:$TMP/store.db"
    mkdir -p "$TMP/visit"
    : >"$TMP/events.jsonl"
    "$BACKEND" ingest -q --store "$STORE" "$TMP/events.jsonl" || bad "make the store"
    "$BACKEND" ingest --follow "$TMP/events.jsonl" --store "$STORE" -q >"$TMP/ingest.log" 2>&1 &
    PIDS+=($!)
    "$AGENT" watch -q --heartbeat 2 --agent mic1 --state-dir "$TMP/state" --out "$TMP/events.jsonl" "$TMP/visit" &
    PIDS+=($!)
    serve_start "$STORE"
    mkdir -p "$ARTIFACTS"
    "$FSR" replay -q "$REC" "$TMP/visit" 2>"$TMP/replay.log" &
    RP=$!
    # the page while the visit is being written
    timeout 120 python3 "$HERE/cdp.py" "$URL/" "$TMP" go:/ shot:sessions-live >"$TMP/cdp.out" 2>&1 || bad "cdp (live): $(tail -5 "$TMP/cdp.out")"
    wait "$RP" || bad "replay: $(cat "$TMP/replay.log")"
    "$AGENT" scan -q "$TMP/visit" >"$TMP/scan.jsonl"
    want=$(grep -c '"type":"micrograph"' "$TMP/scan.jsonl")
    for _ in $(seq 100); do
        got=$(sqlite3 "$TMP/store.db" "SELECT COUNT(*) FROM micrograph WHERE deleted = 0" 2>/dev/null)
        [ "$got" = "$want" ] && break
        sleep 0.2
    done
    [ "$got" = "$want" ] && ok "the replayed visit is in the store ($want micrographs)" || bad "store has $got of $want micrographs"
    sid=$("$BACKEND" query sessions --json --store "$STORE" | python3 -c 'import json,sys
print([json.loads(l) for l in sys.stdin if json.loads(l)["micrographs"]][0]["session_id"])')
    sq=$("$BACKEND" query squares "$sid" --json --store "$STORE" | python3 -c 'import json,sys
print([json.loads(l) for l in sys.stdin if json.loads(l)["holes"]][0]["gridsquare_id"])')
    timeout 120 python3 "$HERE/cdp.py" "$URL/" "$TMP" go:/ dom:sessions shot:sessions "go:/sessions/$sid" dom:session \
        shot:session "go:/sessions/$sid/squares/$sq" dom:square shot:square >"$TMP/cdp.out" 2>&1 || bad "cdp: $(tail -5 "$TMP/cdp.out")"
    cp "$TMP"/*.png "$ARTIFACTS/" 2>/dev/null && ok "screenshots kept: $ARTIFACTS/{sessions-live,sessions,session,square}.png"
    "$BACKEND" query sessions --json --store "$STORE" >"$TMP/sessions.jsonl"
    "$BACKEND" query squares "$sid" --json --store "$STORE" >"$TMP/squares.jsonl"
    "$BACKEND" query foilholes "$sid" "$sq" --json --store "$STORE" >"$TMP/holes.jsonl"
    PYTHONPATH=$HERE python3 - "$TMP" "$sid" "$sq" <<'EOF' && ok "page: sessions rows, atlas squares at the stored positions, the square's holes with their states: as in the store" || bad "page DOM"
import json, sys
tmp, sid, sq = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
from pagedom import elements
parse = lambda name: elements(f"{tmp}/{name}.html")
sessions = [json.loads(l) for l in open(f"{tmp}/sessions.jsonl")]
squares = [json.loads(l) for l in open(f"{tmp}/squares.jsonl")]
holes = [json.loads(l) for l in open(f"{tmp}/holes.jsonl")]
rows = [a for t, a in parse("sessions") if t == "tr" and "data-session-id" in a]
assert sorted(int(a["data-session-id"]) for a in rows if a["data-session-id"]) == sorted(s["session_id"] for s in sessions if s["session_id"]), rows
mic = [a for t, a in parse("sessions") if t == "td" and "data-micrographs" in a]
assert sum(int(a["data-micrographs"]) for a in mic) == sum(s["micrographs"] or 0 for s in sessions), (mic, sessions)
rects = {int(a["data-gridsquare-id"]): a for t, a in parse("session") if t == "rect" and "data-gridsquare-id" in a}
placed = {q["gridsquare_id"]: q for q in squares if q["atlas_x"] is not None}
assert set(rects) == set(placed) and len(placed) >= 3, (sorted(rects), sorted(placed))
for gid, a in rects.items():
    q = placed[gid]
    w = q["atlas_width"] or 20
    assert abs(float(a["x"]) - (q["atlas_x"] - w / 2)) < 1e-6 and abs(float(a["width"]) - w) < 1e-6, (a, q)
circles = {int(a["data-foilhole-id"]): a for t, a in parse("square") if t == "circle" and "data-foilhole-id" in a}
assert set(circles) == {h["foilhole_id"] for h in holes if h["x"] is not None} and len(circles) >= 2, (circles, holes)
for h in holes:
    want = "acquired" if h["micrographs"] else "near-grid-bar" if h["near_grid_bar"] else "selected" if h["selected"] else "skipped"
    assert circles[h["foilhole_id"]]["data-hole-state"] == want, (h, circles[h["foilhole_id"]])
    assert abs(float(circles[h["foilhole_id"]]["cx"]) - h["x"]) < 1e-6
EOF
    serve_stop
    ;;
images)
    command -v chromium >/dev/null || { echo "SKIP: chromium is not installed (scripts/setup.sh test)"; exit 77; }
    # A real session (nt32457-6: its atlas, a square's Metadata .dm with 570 holes and the
    # square's image manifest), copied, with a real EPU preview .jpg (cm40593-1's) standing
    # in for every tile's and for the square's.
    SRC=$HERE/../../../shared/testdata/epu
    [ -d "$SRC/nt32457-6" ] || { echo "SKIP: ../shared/testdata is not beside the checkout"; exit 77; }
    cp -r "$SRC/nt32457-6" "$TMP/tree"
    JPG=$SRC/cm40593-1/Images-Disc1/GridSquare_8999138/GridSquare_20250108_151151.jpg
    ATL=$(dirname "$(find "$TMP/tree/atlas" -name Atlas.dm)")
    tiles=$(grep -o 'Tile_[0-9]*_[0-9]*_[0-9]*' "$ATL/Atlas.dm" | sort -u)
    for t in $tiles; do cp "$JPG" "$ATL/$t.jpg"; done
    SQX=$(find "$TMP/tree" -path '*Images-Disc1/GridSquare_*/GridSquare_*.xml')
    cp "$JPG" "${SQX%.xml}.jpg"
    # hostile or broken: a tile linking out of the root, a tile that is not a JPEG
    mkdir -p "$TMP/outside" && cp "$JPG" "$TMP/outside/secret.jpg"
    LINKED=$(echo "$tiles" | sed -n 1p) NOTJPG=$(echo "$tiles" | sed -n 2p)
    ln -sf "$TMP/outside/secret.jpg" "$ATL/$LINKED.jpg"
    echo "not an image" >"$ATL/$NOTJPG.jpg"
    STORE="sqlite:$TMP/store.db"
    "$AGENT" scan -q "$TMP/tree" | "$BACKEND" ingest -q --store "$STORE" - || bad "scan | ingest"
    "$BACKEND" query sessions --json --store "$STORE" >"$TMP/sessions.jsonl"
    sid=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["session_id"])' "$TMP/sessions.jsonl")
    aid=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["atlas_id"])' "$TMP/sessions.jsonl")
    sq=$(basename "$(dirname "$SQX")" | sed 's/GridSquare_//')
    "$BACKEND" query tiles "$aid" --json --store "$STORE" >"$TMP/tiles.jsonl"
    ntiles=$(wc -l <"$TMP/tiles.jsonl")
    [ "$ntiles" -eq "$(echo "$tiles" | wc -l)" ] && ok "query tiles $aid: $ntiles tiles, as Atlas.dm names them" || bad "query tiles: $ntiles"
    # without --image-root: nothing read from disk, and /health says so
    serve_start "$STORE"
    curl -sf "$URL/health" | grep -q '"images":false' && ok "/health: images false without --image-root" || bad "/health: $(curl -s "$URL/health")"
    code=$(curl -s -o "$TMP/r.json" -w '%{http_code}' "$URL/api/v1/sessions/$sid/squares/$sq/image")
    [ "$code" = 404 ] && grep -q -- '--image-root' "$TMP/r.json" && ok "no --image-root: 404 naming the option" || bad "no image root: $code $(cat "$TMP/r.json")"
    serve_stop
    "$BACKEND" serve --store "$STORE" --listen 127.0.0.1:0 --image-root "$TMP/tree:$TMP/nowhere" >"$TMP/refused.log" 2>&1
    rc=$?
    [ "$rc" = 2 ] && grep -q "nowhere" "$TMP/refused.log" && ok "--image-root with a missing directory refused (exit 2): $(head -1 "$TMP/refused.log")" || bad "a missing --image-root: exit $rc $(cat "$TMP/refused.log")"
    serve_start "$STORE" --image-root "$TMP/outside:$TMP/tree"
    curl -sf "$URL/health" | grep -q '"images":true' && ok "/health: images true" || bad "/health: $(curl -s "$URL/health")"
    curl -sf -D "$TMP/h" -o "$TMP/sq.jpg" "$URL/api/v1/sessions/$sid/squares/$sq/image" && cmp -s "$TMP/sq.jpg" "$JPG" &&
        grep -qi '^content-type: image/jpeg' "$TMP/h" && ok "square $sq: its .jpg, byte for byte, as image/jpeg" || bad "square image"
    good=0
    for t in $tiles; do
        id=$(echo "$t" | cut -d_ -f2)
        code=$(curl -s -o "$TMP/t.out" -w '%{http_code}' "$URL/api/v1/atlases/$aid/tiles/$id/image")
        if [ "$t" = "$LINKED" ]; then
            [ "$code" = 404 ] && grep -q 'leads out' "$TMP/t.out" && ok "tile $id links out of the root: 404, $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["error"]["message"])' "$TMP/t.out")" || bad "linked tile: $code $(cat "$TMP/t.out")"
        elif [ "$t" = "$NOTJPG" ]; then
            [ "$code" = 404 ] && grep -q 'not a JPEG' "$TMP/t.out" && ok "tile $id is not a JPEG: 404 saying so" || bad "non-JPEG tile: $code $(cat "$TMP/t.out")"
        else
            [ "$code" = 200 ] && cmp -s "$TMP/t.out" "$JPG" && good=$((good + 1))
        fi
    done
    [ "$good" -eq $((ntiles - 2)) ] && ok "the other $good tiles served byte for byte" || bad "tiles served: $good of $((ntiles - 2))"
    for p in "atlases/$aid/tiles/1/image|404|has no tile" "atlases/1/tiles/1/image|404|not in" "atlases/x/tiles|400|whole number" \
        "sessions/$sid/squares/4590265/image|404|no square image yet" "sessions/$sid/squares/$sq/image?x=1|400|unknown parameter"; do
        IFS='|' read -r path want say <<<"$p"
        code=$(curl -s -o "$TMP/r.json" -w '%{http_code}' "$URL/api/v1/$path")
        [ "$code" = "$want" ] && grep -q "$say" "$TMP/r.json" && ok "/api/v1/$path: $code ($say)" || bad "/api/v1/$path: $code $(cat "$TMP/r.json")"
    done
    # a hostile path in the store never reaches the disk
    rel=$(sqlite3 "$TMP/store.db" "SELECT source_path FROM atlas")
    sqlite3 "$TMP/store.db" "UPDATE atlas SET source_path = '../outside/Atlas.dm'" || bad "sqlite3"
    code=$(curl -s -o "$TMP/r.json" -w '%{http_code}' "$URL/api/v1/atlases/$aid/tiles/$(echo "$tiles" | sed -n 3p | cut -d_ -f2)/image")
    [ "$code" = 400 ] && grep -q 'not a path below' "$TMP/r.json" && ok "a stored path with '..': 400, not read" || bad "'..' path: $code $(cat "$TMP/r.json")"
    sqlite3 "$TMP/store.db" "UPDATE atlas SET source_path = '$rel'"
    # the page: the tiles behind the atlas map, the square image behind the holes
    mkdir -p "$ARTIFACTS"
    timeout 120 python3 "$HERE/cdp.py" "$URL/" "$TMP" "go:/sessions/$sid" 'wait:#atlas image' 'gone:#atlas image:not([data-loaded])' \
        dom:session-images shot:session-images "go:/sessions/$sid/squares/$sq" 'wait:#square-image[data-loaded]' \
        dom:square-images shot:square-images >"$TMP/cdp.out" 2>&1 || bad "cdp: $(tail -5 "$TMP/cdp.out")"
    cp "$TMP"/session-images.png "$TMP"/square-images.png "$ARTIFACTS/" 2>/dev/null && ok "screenshots kept: $ARTIFACTS/{session,square}-images.png"
    "$BACKEND" query squares "$sid" --json --store "$STORE" | grep "\"gridsquare_id\":$sq," >"$TMP/square.json"
    PYTHONPATH=$HERE python3 - "$TMP" "$(echo "$LINKED" | cut -d_ -f2)" "$(echo "$NOTJPG" | cut -d_ -f2)" <<'EOF' && ok "page: one <image> per tile at its stored place, loaded (the two refused hidden); the square image over 0..2880 x 0..2046, loaded, under its 570 holes" || bad "page images"
import json, sys
tmp, linked, notjpg = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
from pagedom import elements
parse = lambda name: elements(f"{tmp}/{name}.html")
tiles = {t["tile_id"]: t for t in map(json.loads, open(f"{tmp}/tiles.jsonl"))}
imgs = {int(a["data-tile-id"]): a for t, a in parse("session-images") if t == "image" and "data-tile-id" in a}
assert set(imgs) == set(tiles), (sorted(imgs), sorted(tiles))
for tid, a in imgs.items():
    t = tiles[tid]
    assert [float(a[k]) for k in ("x", "y", "width", "height")] == [t["x"], t["y"], t["width"], t["height"]], (a, t)
    assert a["data-loaded"] == ("no" if tid in (linked, notjpg) else "yes"), (tid, a)
rects = [a for t, a in parse("session-images") if t == "rect" and "data-gridsquare-id" in a]
assert len(rects) == 222, len(rects)
q = json.load(open(f"{tmp}/square.json"))
img = [a for t, a in parse("square-images") if t == "image" and a.get("id") == "square-image"]
assert len(img) == 1 and img[0]["data-loaded"] == "yes", img
box = tuple(float(img[0][k]) for k in ("x", "y", "width", "height"))
assert box == (0, 0, q["image_width"], q["image_height"]) == (0, 0, 2880, 2046), (img, q)
holes = [a for t, a in parse("square-images") if t == "circle" and "data-foilhole-id" in a]
assert len(holes) == 570 and all(0 <= float(h["cx"]) <= 2880 and 0 <= float(h["cy"]) <= 2046 for h in holes), len(holes)
EOF
    serve_stop
    ;;
postgres)
    command -v rabbitmq-server >/dev/null || [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || { echo "SKIP: RabbitMQ is not installed"; exit 77; }
    pg_start "$TMP/pg"
    rmq_start "$TMP/rmq" "$((PORT + 10))"
    make_visit
    "$AGENT" scan -q "$TMP/visit" | "$BACKEND" ingest -q --store "$PG_URL" - || bad "scan | ingest (PostgreSQL)"
    "$BACKEND" job add url http://127.0.0.1:9/x.mrc --store "$PG_URL" >/dev/null || bad "job add"
    # a queue of our own bound to em.alerts, as an alerting service would have
    cat >"$TMP/defs.json" <<'EOF'
{"exchanges": [{"name": "em.events", "vhost": "/", "type": "topic", "durable": true, "auto_delete": false, "internal": false, "arguments": {}}],
 "queues": [{"name": "test.alerts", "vhost": "/", "durable": true, "auto_delete": false, "arguments": {}}],
 "bindings": [{"source": "em.events", "vhost": "/", "destination": "test.alerts", "destination_type": "queue", "routing_key": "em.alerts", "arguments": {}}]}
EOF
    rmq_ctl -q import_definitions "$TMP/defs.json" >/dev/null || bad "bind test.alerts to em.alerts"
    serve_start "$PG_URL" -v --amqp "$RMQ_URL" --stall-min 2 --stall-factor 4
    QSTALL="--stall-min 2 --stall-factor 4" compare_api "$PG_URL"
    # live: consume the agent's events into PostgreSQL; a client on the events stream
    "$BACKEND" consume --amqp "$RMQ_URL" --store "$PG_URL" -q >"$TMP/consume.log" 2>&1 &
    PIDS+=($!)
    curl -sN "$URL/api/v1/events" >"$TMP/sse" &
    PIDS+=($!)
    sleep 0.5
    "$SYNTH" -q --sessions 1 --aborted 0 --squares 1 --unimaged 0 --holes 2 --mics 2 --no-images --seed 5 "$TMP/live" || bad "em-synth"
    "$AGENT" watch -q --once --agent mic2 --state-dir "$TMP/state2" --amqp "$RMQ_URL" "$TMP/live" || bad "watch --amqp"
    for _ in $(seq 100); do
        n=$(psql "$PG_URL" -Atc "SELECT COUNT(*) FROM micrograph m JOIN session s ON s.session_id = m.session_id WHERE s.agent = 'mic2'")
        [ "$n" = 4 ] && break
        sleep 0.1
    done
    sleep 1.5
    want=$(psql "$PG_URL" -Atc "SELECT COUNT(*) FROM change_log WHERE agent = 'mic2'")
    got=$(grep -c '"agent":"mic2"' "$TMP/sse")
    [ "$want" -gt 0 ] && [ "$got" = "$want" ] && ok "PostgreSQL: the stream got each of the $want changes consume committed (LISTEN/NOTIFY)" || bad "pg events: $got of $want"
    # The live session stops at once (--once wrote it all): stalled within the threshold,
    # and an alert on em.alerts.
    for _ in $(seq 100); do
        grep -q "stalled: no micrograph" "$TMP/serve.log" && break
        sleep 0.1
    done
    grep -q "stalled: no micrograph" "$TMP/serve.log" && ok "PostgreSQL: stall flagged" || bad "no stall: $(tail -3 "$TMP/serve.log")"
    for _ in $(seq 50); do
        grep -q "alert sent" "$TMP/serve.log" && break
        sleep 0.1
    done
    n_alerts=$(rmq_ctl -q list_queues name messages 2>/dev/null | awk '$1 == "test.alerts" {print $2}')
    grep -q "alert sent: session .* stalled" "$TMP/serve.log" && [ "${n_alerts:-0}" -ge 1 ] &&
        ok "PostgreSQL: the stall alert confirmed by the bus, in a queue bound to em.alerts ($n_alerts)" ||
        bad "alerts: $n_alerts in test.alerts; $(grep -i alert "$TMP/serve.log")"
    n_dead=$(rmq_ctl -q list_queues name messages 2>/dev/null | awk '$1 == "em.dead" {print $2}')
    [ "${n_dead:-0}" = 0 ] && ok "consume took the alerts off its queue without dead-lettering them" || bad "em.dead: $n_dead"
    n=$(psql "$PG_URL" -Atc "SELECT COUNT(*) FROM session WHERE agent = 'mic2'" 2>&1)
    [ "$n" = 1 ] && ok "consume stored the live session and passed over the alerts" || bad "consume: $n $(tail -3 "$TMP/consume.log")"
    serve_stop
    ;;
*)
    echo "unknown case $CASE"
    exit 2
    ;;
esac
finish
