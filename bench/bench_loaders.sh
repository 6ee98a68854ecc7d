#!/usr/bin/env bash
# bench_loaders.sh [RUNS [all|large|small]] — em-backend loaders against curl, from a local nginx (all on
# tmpfs): one large file (512 MiB) and 1,000 small files (64 KiB each). For each: wall
# time and CPU time (user+sys), median of RUNS (default 3). curl runs as one process for
# the large file, one process per file for the small ones, and `curl --parallel` (one
# process, 8 at once, as the loaders). The loaders also compute every file's SHA-256,
# fsync it and rename it into place, and record the job in an SQLite store; so the large
# file is also fetched by curl and then checked with `openssl dgst -sha256` (the same
# verification, with the same SHA instructions).
#
# The loaders run two ways: one-shot (`job add`, then `loaders --once`: two processes and
# a new store each run) and as a service (a runner already running on the store, as in a
# facility; timed: `job add --wait`, from the job's creation until its files are in place).
# CPU is the client's: for the service row, that of `job add --wait` plus the runner's
# (from /proc, before and after).
#
# LINK=RATE (as tc says it: 1gbit, 2500mbit): nginx runs in a network namespace of its own,
# behind a veth pair whose both ends are limited to RATE (tc's tbf), as a file server
# across a facility's network would be; needs root, ip and tc (iproute2). Without it,
# nginx listens on loopback, where the transfers are bound by the 2 cores, not a network.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-3}
cases=${2:-all} # all, large or small
backend=${BACKEND:-$top/build/backend/em-backend}
[ -x "$backend" ] || { echo "build first: $backend is missing"; exit 1; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "nginx is not installed (scripts/setup.sh test)"; exit 1; }
work=$(mktemp -d /dev/shm/em-bench-loaders.XXXXXX)
port=47290
link=${LINK:-}
ns=emb$$
host=127.0.0.1
run_nginx=()
runner=
cleanup() {
    kill "$(cat "$work/nginx/nginx.pid" 2>/dev/null)" 2>/dev/null || true
    [ -z "$runner" ] || kill "$runner" 2>/dev/null || true
    if [ -n "$link" ]; then
        ip link del "$ns-c" 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
if [ -n "$link" ]; then
    [ "$(id -u)" = 0 ] || { echo "LINK=$link needs root (a network namespace)"; exit 1; }
    command -v tc >/dev/null || { echo "LINK=$link needs tc (apt-get install iproute2)"; exit 1; }
    ip netns add "$ns"
    ip link add "$ns-c" type veth peer name "$ns-s"
    ip link set "$ns-s" netns "$ns"
    ip addr add 10.77.0.1/24 dev "$ns-c"
    ip link set "$ns-c" up
    ip netns exec "$ns" ip addr add 10.77.0.2/24 dev "$ns-s"
    ip netns exec "$ns" ip link set "$ns-s" up
    ip netns exec "$ns" ip link set lo up
    tc qdisc add dev "$ns-c" root tbf rate "$link" burst 4mb latency 50ms
    ip netns exec "$ns" tc qdisc add dev "$ns-s" root tbf rate "$link" burst 4mb latency 50ms
    host=10.77.0.2
    run_nginx=(ip netns exec "$ns")
fi
mkdir -p "$work/www/small" "$work/nginx"
head -c $((512 << 20)) /dev/urandom >"$work/www/large.bin"
for i in $(seq 1 1000); do head -c 65536 /dev/urandom >"$work/www/small/f$i.bin"; done
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 2;
error_log $work/nginx/error.log;
pid $work/nginx/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    keepalive_requests 100000;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    server { listen $host:$port; root $work/www; }
}
CONF
"${run_nginx[@]}" "$NGINX" -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'user root;'
sleep 0.5
base=http://$host:$port
echo "nginx at $base${link:+, behind a $link link (tbf, its own network namespace)}"
for i in $(seq 1 1000); do echo "url = $base/small/f$i.bin"; done | sed 's/^url = //' >"$work/small.list"

# measure NAME COMMAND...: appends "wall cpu" for one run
measure() {
    local name=$1
    shift
    rm -rf "$work/out" && mkdir -p "$work/out"
    /usr/bin/time -f "%e %U %S" -o "$work/time" "$@" >/dev/null 2>&1
    awk -v n="$name" '{printf "%s %.2f %.2f\n", n, $1, $2 + $3}' "$work/time" >>"$work/results"
}
loaders() { # loaders URL...
    rm -f "$work/store.db"*
    "$backend" job add --store "sqlite:$work/store.db" url "$@" >/dev/null
    "$backend" loaders --store "sqlite:$work/store.db" --out "$work/out" --once
}
# service URL...: a job for the runner already running on svc.db, waited for
service() { "$backend" job add --wait --store "sqlite:$work/svc.db" url "$@" >/dev/null; }
runner_cpu() { awk '{printf "%.2f\n", ($14 + $15) / '"$(getconf CLK_TCK)"'}' "/proc/$runner/stat"; }
# measure_service NAME URL...: as measure, plus the runner's CPU in that time
measure_service() {
    local name=$1 before after
    shift
    rm -rf "$work/out" && mkdir -p "$work/out"
    before=$(runner_cpu)
    /usr/bin/time -f "%e %U %S" -o "$work/time" bash -c 'service "$@"' service "$@" >/dev/null 2>&1
    after=$(runner_cpu)
    awk -v n="$name" -v r="$(awk -v a="$after" -v b="$before" 'BEGIN { print a - b }')" '{printf "%s %.2f %.2f\n", n, $1, $2 + $3 + r}' "$work/time" >>"$work/results"
}
curl_each() { while read -r u; do curl -s -o "$work/out/$(basename "$u")" "$u"; done <"$work/small.list"; }
curl_parallel() { (cd "$work/out" && xargs curl -s -Z --parallel-max 8 --remote-name-all <"$work/small.list"); }
curl_sha() { curl -s -o "$work/out/large.bin" "$1" && openssl dgst -sha256 "$work/out/large.bin"; }
export -f loaders service curl_each curl_parallel curl_sha
export work backend
: >"$work/results"
"$backend" loaders --store "sqlite:$work/svc.db" --out "$work/out" 2>"$work/runner.log" &
runner=$!
sleep 0.5
kill -0 "$runner" || { echo "the service runner did not start:"; cat "$work/runner.log"; exit 1; }
for r in $(seq 1 "$runs"); do
    if [ "$cases" != small ]; then
        measure "large: curl" curl -s -o "$work/out/large.bin" "$base/large.bin"
        measure "large: curl + openssl sha256" bash -c "curl_sha $base/large.bin"
        measure "large: loaders, one-shot" bash -c "loaders $base/large.bin"
        measure_service "large: loaders, service" "$base/large.bin"
    fi
    if [ "$cases" != large ]; then
        measure "1000 small: curl per file" bash -c curl_each
        measure "1000 small: curl --parallel" bash -c curl_parallel
        measure "1000 small: loaders, one-shot" bash -c "loaders \$(cat $work/small.list)"
        # shellcheck disable=SC2046 # one argument per URL
        measure_service "1000 small: loaders, service" $(cat "$work/small.list")
    fi
done
kill "$runner"
wait "$runner" 2>/dev/null || true
echo "median of $runs runs (wall s, cpu s of the client: nginx not counted):"
python3 - "$work/results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    *name, wall, cpu = line.split()
    rows.setdefault(" ".join(name), []).append((float(wall), float(cpu)))
for name, v in rows.items():
    print("  %-30s %7.2f s wall %7.2f s cpu" % (name, statistics.median(w for w, _ in v),
                                              statistics.median(c for _, c in v)))
PY
