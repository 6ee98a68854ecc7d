#!/usr/bin/env bash
# em-backend serve under load (issue 16). Prints, for RUNS runs each, the median of:
#   requests/s, p50 and p99 latency (wrk, loopback, 2 threads, 16 connections, 10 s) of
#     /api/v1/sessions                                  (every session's progress)
#     /api/v1/sessions/S/squares                        (a session's squares, the atlas map)
#     /api/v1/sessions/S/squares/G/foilholes            (a square's holes)
#   on an SQLite store holding the whole 604k-file visit of bench_scale.sh (built once,
#   kept beside the visit);
# and the time from a micrograph file's close on disk to its change on a live events
# client, end to end through the bus: em-agent watch --amqp → RabbitMQ → em-backend
# consume → the store → serve → /api/v1/events (p50, p99, max of N micrographs written at
# a microscope's pace; RabbitMQ and PostgreSQL/SQLite are throwaway servers of the
# script's own).
#
#   bench/bench_serve.sh [RUNS]      (default 3)
# Environment: BENCH_DIR (as bench_scale.sh), BUILD (default build), BENCH_N (micrographs
# for the latency, default 200), BENCH_RATE (per second, default 5), BENCH_STORE (sqlite or
# postgres, for the latency; default both)
set -euo pipefail
runs=${1:-3}
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$top/build}
agent=$build/agent/em-agent
backend=$build/backend/em-backend
synth=$build/tools/em-synth
for b in "$agent" "$backend" "$synth"; do
    [ -x "$b" ] || { echo "bench_serve: $b: build first" >&2; exit 2; }
done
command -v wrk >/dev/null || { echo "bench_serve: wrk missing (apt-get install wrk)" >&2; exit 2; }
if [ -z "${BENCH_DIR:-}" ]; then
    if [ -d /dev/shm ] && [ -w /dev/shm ]; then BENCH_DIR=/dev/shm/em-bench-full; else BENCH_DIR=$top/bench/data/visit-full; fi
fi
visit=$BENCH_DIR/visit
work=$(mktemp -d)
# shellcheck source=../tests/e2e/servers.sh
. "$top/tests/e2e/servers.sh"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    servers_cleanup
    rm -rf "$work"
}
trap cleanup EXIT
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

if [ ! -f "$BENCH_DIR/.complete" ]; then
    echo "bench_serve: no visit in $BENCH_DIR: run bench/bench_scale.sh once (it makes it)" >&2
    exit 2
fi
store=$BENCH_DIR/store.db
if [ ! -f "$BENCH_DIR/.store-complete" ]; then
    rm -f "$store" "$store-wal" "$store-shm"
    echo "building the store: em-agent scan | em-backend ingest (a few minutes) ..."
    t0=$(date +%s)
    "$agent" scan -q "$visit" | "$backend" ingest -q --store "sqlite:$store" -
    echo "  $(( $(date +%s) - t0 )) s"
    touch "$BENCH_DIR/.store-complete"
fi
: >"$work/empty.jsonl"
"$backend" ingest -q --store "sqlite:$store" "$work/empty.jsonl" # a store from an older em-backend: migrated
counts=$("$backend" query sessions --json --store "sqlite:$store" | python3 -c 'import json,sys
r=[json.loads(l) for l in sys.stdin]; print(len(r), sum(x["micrographs"] or 0 for x in r), sum(x["holes"] or 0 for x in r), sum(x["squares"] or 0 for x in r))')
echo "store: $(du -h "$store" | cut -f1), sessions/micrographs/holes/squares: $counts"

# ---- requests/s and p99 ----
rm -f "$work/port"
"$backend" serve -q --store "sqlite:$store" --listen 127.0.0.1:0 --port-file "$work/port" --max-clients 64 &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
url="http://127.0.0.1:$(cat "$work/port")"
sid=$(curl -sf "$url/api/v1/sessions" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["session_id"])')
gs=$(curl -sf "$url/api/v1/sessions/$sid/squares" | python3 -c 'import json,sys; print([q for q in json.load(sys.stdin)["items"] if q["micrographs"]][0]["gridsquare_id"])')
# wrk_ms PERCENT FILE: wrk's latency at PERCENT ("99%"), in milliseconds
wrk_ms() {
    awk -v k="$1" '$1 == k {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' "$2"
}
printf '%-44s %12s %10s %10s\n' endpoint "requests/s" "p50 (ms)" "p99 (ms)"
for path in /api/v1/sessions "/api/v1/sessions/$sid/squares" "/api/v1/sessions/$sid/squares/$gs/foilholes"; do
    : >"$work/rps"
    : >"$work/p50"
    : >"$work/p99"
    for _ in $(seq "$runs"); do
        wrk -t2 -c16 -d10s --latency "$url$path" >"$work/wrk.out"
        awk '/Requests\/sec/ {print $2}' "$work/wrk.out" >>"$work/rps"
        wrk_ms 50% "$work/wrk.out" >>"$work/p50"
        wrk_ms 99% "$work/wrk.out" >>"$work/p99"
        grep -q "Non-2xx" "$work/wrk.out" && { echo "bench_serve: errors from $path" >&2; cat "$work/wrk.out" >&2; }
    done
    printf '%-44s %12.1f %10.2f %10.2f\n' "$(echo "$path" | sed "s|/$sid/|/S/|; s|/$sid\$|/S|; s|/$gs/|/G/|")" \
        "$(median <"$work/rps")" "$(median <"$work/p50")" "$(median <"$work/p99")"
done
kill "${PIDS[-1]}"
wait "${PIDS[-1]}" 2>/dev/null || true

# ---- file close to the events client, through the bus ----
n=${BENCH_N:-200}
rate=${BENCH_RATE:-5}
"$synth" -q --sessions 1 --aborted 0 --squares 10 --unimaged 0 --holes 10 --mics 2 --no-images --seed 99 "$work/stage"
(cd "$work/stage" && find . -type f -printf '%T@ %p\n' | sort -n | cut -d' ' -f2- | sed 's|^\./||') >"$work/order"
"$agent" scan -q "$work/stage" | python3 -c 'import json,sys
for l in sys.stdin:
    e = json.loads(l)
    if e["type"] == "micrograph":
        print(e["source"]["path"], e["key"]["micrograph_uuid"])' >"$work/uuids"
rmq_start "$work/rmq" 24800
latency() { # latency STORE_URL LABEL
    local st=$1 label=$2 i
    for i in $(seq "$runs"); do
        rm -rf "$work/visit" "$work/state" "$work/port" "$work/close" "$work/recv"
        mkdir -p "$work/visit"
        "$backend" ingest -q --store "$st" "$work/empty.jsonl" # the store made (or migrated) first
        "$backend" consume -q --amqp "$RMQ_URL" --store "$st" &
        local cpid=$!
        "$backend" serve -q --store "$st" --listen 127.0.0.1:0 --port-file "$work/port" &
        local spid=$!
        for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
        python3 "$top/bench/sse_client.py" "http://127.0.0.1:$(cat "$work/port")/api/v1/events" "$work/recv" &
        local rpid=$!
        "$agent" watch -q --heartbeat 0 --agent bench --state-dir "$work/state" --amqp "$RMQ_URL" "$work/visit" &
        local apid=$!
        sleep 1
        python3 - "$work/stage" "$work/visit" "$work/order" "$work/close" "$n" "$rate" <<'EOF'
import os, shutil, sys, time
stage, visit, order, out, n, rate = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), float(sys.argv[6])
files = open(order).read().split()
mics = [f for f in files if "/Data/" in f][:n]
rest = [f for f in files if "/Data/" not in f]
def put(f):
    os.makedirs(os.path.dirname(os.path.join(visit, f)), exist_ok=True)
    data = open(os.path.join(stage, f), "rb").read()
    with open(os.path.join(visit, f), "wb") as w:
        w.write(data)
    return time.time()  # closed
for f in rest:
    put(f)
time.sleep(2)
with open(out, "w") as o:
    for f in mics:
        t = put(f)
        o.write(f"{f} {t:.6f}\n")
        time.sleep(1 / rate)
EOF
        sleep 3
        kill "$apid" "$rpid" "$spid" "$cpid" 2>/dev/null || true
        wait "$apid" "$rpid" "$spid" "$cpid" 2>/dev/null || true
        python3 - "$work/uuids" "$work/close" "$work/recv" <<'EOF' >>"$work/lat-$label"
import sys
uuid = dict(l.split() for l in open(sys.argv[1]))
closed = {uuid[f]: float(t) for f, t in (l.split() for l in open(sys.argv[2]))}
got = {}
for l in open(sys.argv[3]):
    u, t = l.split()
    got.setdefault(u, float(t))
lat = sorted((got[u] - closed[u]) * 1000 for u in closed if u in got)
missing = len(closed) - len(lat)
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print(f"{p(0.5):.1f} {p(0.99):.1f} {lat[-1]:.1f} {missing}")
EOF
        if [ "$st" != "${st#postgres}" ]; then psql "$st" -qc "TRUNCATE session, atlas, gridsquare, foilhole, micrograph, change_log, agent" >/dev/null; fi
    done
    printf '%-10s %10s %10s %10s %8s\n' "$label" \
        "$(cut -d' ' -f1 "$work/lat-$label" | median)" "$(cut -d' ' -f2 "$work/lat-$label" | median)" \
        "$(cut -d' ' -f3 "$work/lat-$label" | median)" "$(cut -d' ' -f4 "$work/lat-$label" | sort -n | tail -1)"
}
echo
echo "file close → events client through the bus, $n micrographs at $rate/s (ms; median of $runs runs):"
printf '%-10s %10s %10s %10s %8s\n' store p50 p99 max missing
case ${BENCH_STORE:-both} in
sqlite | both) latency "sqlite:$work/lat.db" sqlite ;;
esac
case ${BENCH_STORE:-both} in
postgres | both)
    pg_start "$work/pg"
    latency "$PG_URL" postgres
    ;;
esac
