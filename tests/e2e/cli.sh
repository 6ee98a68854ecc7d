#!/usr/bin/env bash
# End-to-end checks of the em-agent executable: exit codes, the error format, and scan /
# validate results on the authored visit and (when present) the real EPU files.
#   cli.sh EM_AGENT TESTDATA SHARED_TESTDATA
set -u
agent=$1 data=$2 shared=$3
fails=0 passes=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

check() { # name, expected status, command...
    local name=$1 want=$2
    shift 2
    "$@" >"$tmp/out" 2>"$tmp/err"
    local got=$?
    if [ "$got" -eq "$want" ]; then
        passes=$((passes + 1))
    else
        fails=$((fails + 1))
        echo "FAIL $name: exit $got, want $want"
        head -5 "$tmp/err"
    fi
}
expect_err() { # name, extended regex the last stderr must match
    if grep -Eq -e "$2" "$tmp/err"; then passes=$((passes + 1)); else
        fails=$((fails + 1))
        echo "FAIL $1: stderr does not match /$2/:"
        head -3 "$tmp/err"
    fi
}
expect_out() { # name, expected stdout
    if [ "$(cat "$tmp/out")" = "$2" ]; then passes=$((passes + 1)); else
        fails=$((fails + 1))
        echo "FAIL $1: stdout is '$(head -c 300 "$tmp/out")', want '$2'"
    fi
}
count_types() { python3 -c 'import json,sys,collections
c=collections.Counter(json.loads(l)["type"] for l in open(sys.argv[1]))
print(" ".join(f"{k}={c[k]}" for k in ("session","atlas","gridsquare","foilhole","micrograph")))' "$1"; }

mini=$data/visit-mini
sess=$mini/Supervisor_20250101_100000_1_mini_EPU

check "parse ok" 0 "$agent" parse session "$sess/EpuSession.dm"
check "parse auto" 0 "$agent" parse auto "$sess/Metadata/GridSquare_1001.dm"
grep -q '"kind":"gridsquare_metadata"' "$tmp/out" && passes=$((passes + 1)) || { fails=$((fails + 1)); echo "FAIL parse auto kind"; }
check "usage: no args" 2 "$agent" parse
check "usage: bad kind" 2 "$agent" parse sessions "$sess/EpuSession.dm"
check "usage: auto unknown" 2 "$agent" parse auto "$mini/../golden/mini_session.json"
check "missing file" 1 "$agent" parse session "$tmp/none.dm"
# Image and volume headers (parse image; auto falls back to them).
if [ -d "$shared/formats" ]; then
    check "parse image mrc" 0 "$agent" parse image "$shared/formats/mrc/EMD-3001.map"
    grep -q '"volume_shape":\[73,25,43\]' "$tmp/out" && passes=$((passes + 1)) || { fails=$((fails + 1)); echo "FAIL parse image mrc: $(cut -c1-200 "$tmp/out")"; }
    check "parse auto ome-zarr group" 0 "$agent" parse auto "$shared/formats/ome-zarr/simple_0.4"
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["format"]=="ome-zarr" and [l["voxel_size_nm"] for l in d["levels"]]==[[4,30],[8,60],[16,120]], d' "$tmp/out" &&
        passes=$((passes + 1)) || { fails=$((fails + 1)); echo "FAIL parse auto ome-zarr: $(cut -c1-300 "$tmp/out")"; }
    check "parse auto n5 root" 0 "$agent" parse auto "$shared/formats/n5/z5py.n5"
    check "parse image gzip" 1 "$agent" parse image "$shared/formats/mrc/iota_yzx.ccp4.gz"
    grep -q "decompress it first" "$tmp/err" && passes=$((passes + 1)) || { fails=$((fails + 1)); echo "FAIL parse image gzip: $(cat "$tmp/err")"; }
fi
check "unknown command" 2 "$agent" frobnicate
check "help" 0 "$agent" --help
check "parse help" 0 "$agent" parse --help
# The Windows service command exists on Linux only to say where the service is.
check "watch --change-buffer too small" 2 "$agent" watch --change-buffer 2 --state-dir "$tmp/st" "$tmp"
expect_err "change-buffer range" "change-buffer"
check "service on linux" 2 "$agent" service install --out x.jsonl /tmp
expect_err "service on linux" "service: Windows only.*systemctl"

head -c 2000 "$sess/EpuSession.dm" >"$tmp/EpuSession.dm"
check "truncated" 1 "$agent" parse session "$tmp/EpuSession.dm"
expect_err "truncated format" "^em-agent: $tmp/EpuSession.dm:[0-9]+: document ends early"
: >"$tmp/empty.dm"
check "empty" 1 "$agent" parse session "$tmp/empty.dm"
expect_err "empty format" "^em-agent: $tmp/empty.dm:1: document is empty$"
printf '<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>' >"$tmp/hostile.dm"
check "hostile" 1 "$agent" parse session "$tmp/hostile.dm"
expect_err "hostile format" "^em-agent: $tmp/hostile.dm:1: document declares a DOCTYPE"
check "wrong kind" 1 "$agent" parse atlas "$sess/EpuSession.dm"
expect_err "wrong kind format" "^em-agent: .*EpuSession.dm:1: root element is <EpuSessionXml>"
head -c 100000 /dev/urandom >"$tmp/random.dm"
start=$(date +%s%N)
check "random bytes" 1 "$agent" parse gridsquare-metadata "$tmp/random.dm"
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$elapsed_ms" -lt 1000 ] && passes=$((passes + 1)) || { fails=$((fails + 1)); echo "FAIL random bytes took ${elapsed_ms} ms"; }

check "scan mini" 0 "$agent" scan --agent t --no-progress "$mini"
cp "$tmp/out" "$tmp/mini.jsonl"
got=$(count_types "$tmp/mini.jsonl")
[ "$got" = "session=1 atlas=1 gridsquare=3 foilhole=4 micrograph=4" ] && passes=$((passes + 1)) || { fails=$((fails + 1)); echo "FAIL scan mini counts: $got"; }
expect_err "scan summary" "1 sessions, 1 atlases, 3 grid squares, 4 foil holes, 4 micrographs"
check "scan -o" 0 "$agent" scan -q -o "$tmp/o.jsonl" --agent t "$mini"
[ "$(wc -l <"$tmp/o.jsonl")" -eq 14 ] && passes=$((passes + 1)) || { fails=$((fails + 1)); echo "FAIL scan -o lines"; }
check "scan bad jobs" 2 "$agent" scan -j 0 "$mini"
expect_err "scan bad jobs message" "--jobs takes a number from 1 to 64, not '0'"
check "validate bad jobs" 2 "$agent" validate -j x "$mini"
check "scan not a dir" 1 "$agent" scan "$tmp/none"
cp -r "$mini" "$tmp/broken"
head -c 500 "$mini/Supervisor_20250101_100000_1_mini_EPU/Metadata/GridSquare_1003.dm" >"$tmp/broken/Supervisor_20250101_100000_1_mini_EPU/Metadata/GridSquare_1003.dm"
check "scan broken lenient" 0 "$agent" scan -q "$tmp/broken"
check "scan broken strict" 1 "$agent" scan -q --strict "$tmp/broken"

check "validate mini" 1 "$agent" validate "$mini"
grep -q "3 findings" "$tmp/out" && passes=$((passes + 1)) || { fails=$((fails + 1)); echo "FAIL validate mini findings"; cat "$tmp/out"; }
check "validate session" 0 "$agent" validate "$sess"
check "validate json" 1 "$agent" validate --json "$tmp/broken"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert not d["valid"]; assert any("GridSquare_1003.dm" in f["path"] and f["line"] for f in d["findings"])' "$tmp/out" \
    && passes=$((passes + 1)) || { fails=$((fails + 1)); echo "FAIL validate json"; }
check "validate missing dir" 1 "$agent" validate "$tmp/none"
mkdir -p "$tmp/emptydir"
check "validate empty dir" 1 "$agent" validate "$tmp/emptydir"

if [ -d "$shared/epu/nt32457-6" ]; then
    check "validate nt32457-6" 0 "$agent" validate "$shared/epu/nt32457-6"
    check "validate cm40593-1" 1 "$agent" validate "$shared/epu/cm40593-1"
    check "scan nt32457-6" 0 "$agent" scan -q "$shared/epu/nt32457-6"
    got=$(count_types "$tmp/out")
    [ "$got" = "session=1 atlas=1 gridsquare=222 foilhole=570 micrograph=0" ] && passes=$((passes + 1)) || { fails=$((fails + 1)); echo "FAIL scan nt32457-6: $got"; }
    check "scan cm40593-1" 0 "$agent" scan -q "$shared/epu/cm40593-1"
    got=$(count_types "$tmp/out")
    [ "$got" = "session=1 atlas=0 gridsquare=228 foilhole=2 micrograph=4" ] && passes=$((passes + 1)) || { fails=$((fails + 1)); echo "FAIL scan cm40593-1: $got"; }
    for f in $(find "$shared/epu" -name '*.xml' -o -name '*.dm'); do
        check "parse auto $f" 0 "$agent" parse auto "$f"
    done
else
    echo "note: $shared/epu is absent; the checks on real EPU files were skipped"
fi

# --metrics-file: the Prometheus text format (every sample after its HELP and TYPE, names
# and labels well formed), the events by type equal to the events written, up 0 at the end;
# while it runs, up 1 after the first walk; a path that cannot be written is a warning.
prom_check() { # FILE EVENTS UP
    python3 - "$@" <<'PY'
import collections, json, re, sys
path, events, up = sys.argv[1], sys.argv[2], sys.argv[3]
seen_help, seen_type, samples = set(), set(), {}
sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*)\} (-?[0-9.e+]+)$')
for line in open(path):
    line = line.rstrip("\n")
    if line.startswith("# HELP "):
        seen_help.add(line.split()[2]); continue
    if line.startswith("# TYPE "):
        name, kind = line.split()[2:4]
        assert kind in ("counter", "gauge"), line
        seen_type.add(name); continue
    m = sample.match(line)
    assert m, "not a sample line: %r" % line
    assert m.group(1) in seen_help and m.group(1) in seen_type, "no HELP/TYPE before " + line
    samples.setdefault(m.group(1), []).append((m.group(2), float(m.group(3))))
assert samples["em_agent_up"][0][1] == float(up), samples["em_agent_up"]
if events != "-":
    by_type = collections.Counter(json.loads(l)["type"] for l in open(events))
    got = {re.search(r'type="([a-z_]+)"', l).group(1): v for l, v in samples["em_agent_events_total"]}
    assert all(got[t] == by_type.get(t, 0) for t in got), (got, by_type)
    assert samples["em_agent_files_parsed_total"][0][1] > 0
PY
}
check "watch --metrics-file" 0 "$agent" watch --once --state-dir "$tmp/mstate" -o "$tmp/m.jsonl" \
    --metrics-file "$tmp/agent.prom" --agent 'krios "1"' "$mini"
prom_check "$tmp/agent.prom" "$tmp/m.jsonl" 0 && passes=$((passes + 1)) ||
    { fails=$((fails + 1)); echo "FAIL --metrics-file: $(head -5 "$tmp/agent.prom")"; }
"$agent" watch --state-dir "$tmp/mstate2" -o "$tmp/m2.jsonl" --metrics-file "$tmp/live.prom" "$mini" 2>/dev/null &
mpid=$!
for _ in $(seq 1 100); do [ -s "$tmp/live.prom" ] && break; sleep 0.05; done
prom_check "$tmp/live.prom" - 1 && passes=$((passes + 1)) || { fails=$((fails + 1)); echo "FAIL --metrics-file while running"; }
kill -TERM "$mpid"
wait "$mpid"
prom_check "$tmp/live.prom" "$tmp/m2.jsonl" 0 && passes=$((passes + 1)) || { fails=$((fails + 1)); echo "FAIL --metrics-file after SIGTERM"; }
check "watch --metrics-file unwritable" 0 "$agent" watch --once --state-dir "$tmp/mstate3" -o /dev/null \
    --metrics-file "$tmp/no/such/dir/agent.prom" "$mini"
expect_err "metrics unwritable warned" "no/such/dir/agent.prom: cannot write the metrics file"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
