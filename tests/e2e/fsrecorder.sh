#!/usr/bin/env bash
# End-to-end tests of fsrecorder and em-synth with the real binaries.
#
#   tests/e2e/fsrecorder.sh FSRECORDER EM_SYNTH EM_AGENT CASE
#       cases: roundtrip snapshot kill hostile nonempty usage synth
#
# KEEP_FAILED=1 keeps the temp dir of a failed run.
set -u
FSR=$(realpath "$1")
SYNTH=$(realpath "$2")
AGENT=$(realpath "$3")
CASE=$4
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SHARED="$ROOT/../shared/testdata/epu"
FOLD="python3 $HERE/fold.py"
TMP=$(mktemp -d)
PIDS=()
failures=0

cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    if [ "$failures" -gt 0 ] && [ -n "${KEEP_FAILED:-}" ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
ok() { echo "ok   $*"; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }
bad() { failures=$((failures + 1)); echo "FAIL $*"; }
check() { # DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}
expect_rc() { # RC DESCRIPTION COMMAND...
    local want=$1 what=$2
    shift 2
    "$@" >"$TMP/_out" 2>"$TMP/_err"
    local rc=$?
    if [ "$rc" -eq "$want" ]; then ok "$what (exit $rc)"; else
        bad "$what: exit $rc, expected $want"
        tail -5 "$TMP/_err"
    fi
}

# Every file of A is in B with the same bytes, except placeholders (same size).
same_tree() { # A B
    python3 - "$1" "$2" <<'PY'
import os, sys
a, b = sys.argv[1], sys.argv[2]
ph = {"jpg", "jpeg", "png", "mrc", "mrcs", "tif", "tiff", "eer", "gain"}
bad = 0
def walk(top):
    out = {}
    for d, dirs, files in os.walk(top):
        rel = os.path.relpath(d, top)
        for x in dirs:
            out[os.path.normpath(os.path.join(rel, x))] = None
        for f in files:
            out[os.path.normpath(os.path.join(rel, f))] = os.path.join(d, f)
    return out
A, B = walk(a), walk(b)
if set(A) != set(B):
    print("only in source:", sorted(set(A) - set(B))[:5], "only in replay:", sorted(set(B) - set(A))[:5])
    sys.exit(1)
for rel, p in A.items():
    if p is None:
        continue
    q = os.path.join(b, rel)
    if rel.rsplit(".", 1)[-1].lower() in ph:
        if os.path.getsize(p) != os.path.getsize(q):
            print("placeholder size differs:", rel); bad += 1
    elif open(p, "rb").read() != open(q, "rb").read():
        print("content differs:", rel); bad += 1
sys.exit(1 if bad else 0)
PY
}

case_roundtrip() {
    mkdir "$TMP/src"
    "$FSR" record -q "$TMP/src" "$TMP/rec.tar.gz" 2>"$TMP/rec.log" &
    local rp=$!
    PIDS+=("$rp")
    sleep 0.5
    python3 "$HERE/fs_ops.py" "$TMP/src" >/dev/null
    sleep 0.5
    kill -TERM "$rp"
    wait "$rp"
    check "record: SIGTERM finishes the recording with exit 0" test $? -eq 0
    check "record: OUT written, no .part left" test -s "$TMP/rec.tar.gz" -a ! -e "$TMP/rec.tar.gz.part"
    "$FSR" info --json "$TMP/rec.tar.gz" >"$TMP/info.json"
    check "info: every kind of change was recorded" python3 - "$TMP/info.json" <<'PY'
import json, sys
i = json.load(open(sys.argv[1]))
t = i["by_type"]
missing = [k for k in ("mkdir", "create", "append", "write", "rewrite", "truncate",
                       "placeholder", "rename", "delete") if t.get(k, 0) < 1]
assert i["complete"], i
assert not missing, missing
PY
    "$FSR" info --ops "$TMP/rec.tar.gz" >"$TMP/ops.txt"
    check "a rewrite that grows is a rewrite with the whole content" \
        grep -qE 'rewrite +sess/EpuSession.dm \+62 =62' "$TMP/ops.txt"
    check "a same-content rewrite is recorded" grep -qE 'rewrite +sess/EpuSession.dm =16 \(same\)' "$TMP/ops.txt"
    check "a patch inside a file is a write at its offset" grep -qE 'write +sess/patch.bin @8192' "$TMP/ops.txt"
    check "a directory rename is one rename" grep -qE 'rename +sess/Images-Disc1 -> sess/Images-Disc2' "$TMP/ops.txt"
    check "placeholders keep sizes only" grep -qE 'placeholder +sess/movie.mrc =12288' "$TMP/ops.txt"
    expect_rc 0 "replay --burst" "$FSR" replay -q --burst "$TMP/rec.tar.gz" "$TMP/out1"
    check "replay: every byte equal (CRLF, Latin-1, binary, empty, deep, renamed)" same_tree "$TMP/src" "$TMP/out1"
    expect_rc 0 "verify the replay" "$FSR" verify "$TMP/rec.tar.gz" "$TMP/out1"
    expect_rc 0 "verify the source itself" "$FSR" verify "$TMP/rec.tar.gz" "$TMP/src"
    local t0=$(date +%s.%N)
    expect_rc 0 "replay at real speed, gaps capped at 0.05 s" \
        "$FSR" replay -q --max-gap 0.05 "$TMP/rec.tar.gz" "$TMP/out2"
    local took
    took=$(since "$t0")
    check "real-speed replay waits between changes (took ${took}s)" awk -v t="$took" 'BEGIN { exit !(t > 0.8) }'
    check "real-speed replay: same bytes" same_tree "$TMP/src" "$TMP/out2"
    # A changed byte is found.
    printf 'X' | dd of="$TMP/out1/sess/crlf.xml" bs=1 seek=3 conv=notrunc 2>/dev/null
    rm "$TMP/out1/sess/phoenix.txt"
    expect_rc 1 "verify notices a changed byte and a missing file" "$FSR" verify "$TMP/rec.tar.gz" "$TMP/out1"
    check "verify names them" grep -q "phoenix.txt" "$TMP/_err"
}

case_snapshot() {
    local src="$ROOT/testdata/visit-mini"
    expect_rc 0 "record --snapshot --chunks 3" "$FSR" record -q --snapshot --chunks 3 "$src" "$TMP/snap.tar.zst"
    "$FSR" info --ops "$TMP/snap.tar.zst" >"$TMP/ops.txt"
    check "snapshot is in mtime order (times never go back)" \
        awk '/^ *[0-9]/ { if ($1+0 < last) exit 1; last = $1+0 }' "$TMP/ops.txt"
    check "files are written in pieces" grep -q ' append ' "$TMP/ops.txt"
    expect_rc 0 "replay the snapshot" "$FSR" replay -q --burst "$TMP/snap.tar.zst" "$TMP/out"
    check "snapshot replay equals the tree" same_tree "$src" "$TMP/out"
    "$AGENT" scan --agent s "$src" >"$TMP/a.jsonl" 2>/dev/null
    "$AGENT" scan --agent s "$TMP/out" >"$TMP/b.jsonl" 2>/dev/null
    check "scan of the replay equals scan of the source" $FOLD compare "$TMP/a.jsonl" "$TMP/b.jsonl"
}

case_kill() {
    mkdir "$TMP/src"
    "$FSR" record -q "$TMP/src" "$TMP/rec.tar.zst" 2>"$TMP/rec.log" &
    local rp=$!
    PIDS+=("$rp")
    sleep 0.3
    python3 - "$TMP/src" <<'PY'
import os, sys
d = os.path.join(sys.argv[1], "phase1")
os.makedirs(d)
for i in range(30):
    with open(os.path.join(d, f"f{i}.xml"), "wb") as f:
        f.write(b"<x>" + bytes([i]) * (1000 + 97 * i) + b"</x>\r\n")
PY
    sleep 2
    # Keep writing while the recorder dies.
    python3 -c "
import os, sys, time
d = os.path.join(sys.argv[1], 'phase2'); os.makedirs(d)
for i in range(100000):
    open(os.path.join(d, 'g%d.xml' % (i % 50)), 'ab').write(b'<y/>' * 100)
    time.sleep(0.001)
" "$TMP/src" &
    local wp=$!
    PIDS+=("$wp")
    sleep 1.2
    kill -9 "$rp"
    wait "$rp" 2>/dev/null
    kill "$wp"
    wait "$wp" 2>/dev/null
    check "after SIGKILL the .part recording is there" test -s "$TMP/rec.tar.zst.part"
    expect_rc 0 "info reads a killed recording" "$FSR" info "$TMP/rec.tar.zst.part"
    check "info says it has no end" grep -q "no end\|stopped abruptly\|Truncated\|truncated" "$TMP/_out"
    expect_rc 0 "replay of a killed recording" "$FSR" replay -q --burst --no-verify "$TMP/rec.tar.zst.part" "$TMP/out"
    check "replay warns that the recording is incomplete" grep -q "warning" "$TMP/_err"
    check "everything written 2 s before the kill is there, byte for byte" \
        diff -r "$TMP/src/phase1" "$TMP/out/phase1"
    check "some of what was written in the last second is there too" test -d "$TMP/out/phase2"
    expect_rc 0 "pack the .part into a compressed recording" "$FSR" pack "$TMP/rec.tar.zst.part" "$TMP/packed.tar.zst"
    "$FSR" info --json "$TMP/rec.tar.zst.part" | python3 -c "import json,sys; print(json.load(sys.stdin)['operations'])" >"$TMP/n1"
    "$FSR" info --json "$TMP/packed.tar.zst" | python3 -c "import json,sys; print(json.load(sys.stdin)['operations'])" >"$TMP/n2"
    check "the packed copy holds the same operations ($(cat "$TMP/n1"))" cmp -s "$TMP/n1" "$TMP/n2"
}

# Archives made by hand with Python's tarfile.
make_tar() { # OUT MANIFEST_LINES [SYMLINK_TARGET]
    python3 - "$@" <<'PY'
import io, sys, tarfile
out = sys.argv[1]
manifest = '{"format":"em-fsrecording","version":1,"mode":"live"}\n' + sys.argv[2] + "\n"
with tarfile.open(out, "w") as t:
    b = manifest.encode()
    ti = tarfile.TarInfo("manifest/00000001.jsonl"); ti.size = len(b)
    t.addfile(ti, io.BytesIO(b))
    if len(sys.argv) > 3:
        ti = tarfile.TarInfo("data/1"); ti.type = tarfile.SYMTYPE; ti.linkname = sys.argv[3]
        t.addfile(ti)
    else:
        for n in range(1, manifest.count("\n")):
            ti = tarfile.TarInfo(f"data/{n}"); ti.size = 4
            t.addfile(ti, io.BytesIO(b"evil"))
PY
}

case_hostile() {
    mkdir -p "$TMP/box"
    make_tar "$TMP/dotdot.tar" '{"n":1,"t":0,"op":"create","path":"ok.txt","len":4,"size":4}
{"n":2,"t":0,"op":"create","path":"../escape.txt","len":4,"size":4}'
    expect_rc 1 "'..' in a path is refused" "$FSR" replay -q --burst "$TMP/dotdot.tar" "$TMP/box/t1"
    check "nothing was written, not even the harmless first file" test ! -e "$TMP/box/escape.txt" -a ! -e "$TMP/box/t1/ok.txt"
    check "the error names the path" grep -q "escape" "$TMP/_err"
    make_tar "$TMP/abs.tar" '{"n":1,"t":0,"op":"create","path":"/tmp/em-absolute-escape","len":4,"size":4}'
    expect_rc 1 "an absolute path is refused" "$FSR" replay -q --burst "$TMP/abs.tar" "$TMP/box/t2"
    check "nothing written at the absolute path" test ! -e /tmp/em-absolute-escape
    check "the error says why" grep -q "absolute path" "$TMP/_err"
    make_tar "$TMP/ren.tar" '{"n":1,"t":0,"op":"rename","path":"a","to":"../../moved"}'
    expect_rc 1 "a rename out of the tree is refused" "$FSR" replay -q --burst "$TMP/ren.tar" "$TMP/box/t3"
    check "the error says why" grep -q "'..' in path" "$TMP/_err"
    make_tar "$TMP/link.tar" '{"n":1,"t":0,"op":"create","path":"x","len":4,"size":4}' /etc/passwd
    expect_rc 1 "a symbolic link in the archive is refused" "$FSR" replay -q --burst "$TMP/link.tar" "$TMP/box/t4"
    check "the error says why" grep -q "not a regular file" "$TMP/_err"
    # A symbolic link already in the target that points out of it.
    mkdir -p "$TMP/outside" "$TMP/box/t5"
    ln -s "$TMP/outside" "$TMP/box/t5/d"
    make_tar "$TMP/through.tar" '{"n":1,"t":0,"op":"create","path":"d/x","len":4,"size":4}'
    expect_rc 1 "writing through a symbolic link in the target is refused" \
        "$FSR" replay -q --burst --force "$TMP/through.tar" "$TMP/box/t5"
    check "nothing reached the link's target" test -z "$(ls -A "$TMP/outside")"
    check "the error says why" grep -q "symbolic link" "$TMP/_err"
    # The same hand-made archive with a harmless path replays: the refusals above are
    # about the paths, not about how the archives were made.
    make_tar "$TMP/fine.tar" '{"n":1,"t":0,"op":"create","path":"d/x","len":4,"size":4}'
    expect_rc 0 "a hand-made archive with a good path replays" "$FSR" replay -q --burst "$TMP/fine.tar" "$TMP/box/t7"
    check "and writes its bytes" grep -q "evil" "$TMP/box/t7/d/x"
    head -c 3000 /dev/urandom >"$TMP/garbage.tar.gz"
    expect_rc 1 "random bytes are not a recording" "$FSR" replay -q --burst "$TMP/garbage.tar.gz" "$TMP/box/t6"
    expect_rc 1 "info of random bytes" "$FSR" info "$TMP/garbage.tar.gz"
    printf '' >"$TMP/empty.tar"
    expect_rc 1 "an empty file is not a recording" "$FSR" info "$TMP/empty.tar"
}

case_nonempty() {
    "$SYNTH" -q --record "$TMP/rec.tar.zst" --sessions 1 --aborted 0 --squares 1 --holes 2 --mics 1
    mkdir "$TMP/dest"
    echo "keep me" >"$TMP/dest/mine.txt"
    expect_rc 1 "replay into a non-empty directory is refused" "$FSR" replay -q --burst "$TMP/rec.tar.zst" "$TMP/dest"
    check "the message says how to go ahead" grep -q -- "--force" "$TMP/_err"
    check "nothing was written" test "$(ls -A "$TMP/dest")" = "mine.txt"
    expect_rc 0 "--force writes into it" "$FSR" replay --burst --force "$TMP/rec.tar.zst" "$TMP/dest"
    check "the file that was there is kept" grep -q "keep me" "$TMP/dest/mine.txt"
    expect_rc 0 "verify passes and notes the extra file" "$FSR" verify "$TMP/rec.tar.zst" "$TMP/dest"
    check "verify counts 1 file not in the recording" grep -q "1 not in the recording" "$TMP/_out"
    echo x >"$TMP/afile"
    expect_rc 1 "replay onto a file is refused" "$FSR" replay -q --burst "$TMP/rec.tar.zst" "$TMP/afile"
}

case_usage() {
    expect_rc 0 "--help" "$FSR" --help
    check "--help explains replay timing" grep -q -- "--max-gap" "$TMP/_out"
    expect_rc 2 "no command" "$FSR"
    expect_rc 2 "unknown command" "$FSR" frobnicate
    expect_rc 2 "record with one argument" "$FSR" record "$TMP"
    expect_rc 2 "record into a name without a known suffix" "$FSR" record "$TMP" "$TMP/x.zip"
    expect_rc 1 "record a directory that does not exist" "$FSR" record -q "$TMP/nope" "$TMP/x.tar"
    expect_rc 2 "replay --speed 0" "$FSR" replay --speed 0 a b
    expect_rc 2 "unknown replay option" "$FSR" replay --fast a b
    expect_rc 1 "replay of a missing recording" "$FSR" replay "$TMP/nope.tar" "$TMP/d"
    expect_rc 0 "em-synth --help" "$SYNTH" --help
    expect_rc 2 "em-synth without output" "$SYNTH" --squares 2
    expect_rc 2 "em-synth --holes 0" "$SYNTH" --holes 0 "$TMP/v"
    local rec="$ROOT/testdata/recordings/synth-visit.tar.zst"
    if command -v script >/dev/null; then
        script -qc "'$FSR' replay --max-gap 0.01 '$rec' '$TMP/pty'" /dev/null >"$TMP/pty.txt"
        check "on a terminal, replay draws a progress bar" grep -q 'replay \[.*%' "$TMP/pty.txt"
    fi
    "$FSR" replay --burst "$rec" "$TMP/nopty" 2>"$TMP/nopty.txt"
    check "into a pipe, no progress bar, just the summary" bash -c "! grep -q '%' '$TMP/nopty.txt' && grep -q replayed '$TMP/nopty.txt'"
    mkdir "$TMP/full" && touch "$TMP/full/x"
    expect_rc 1 "em-synth into a non-empty directory" "$SYNTH" -q "$TMP/full"
}

counts_equal() { # SCAN_JSONL EXPECTED_JSON
    local got
    got=$($FOLD counts "$1")
    python3 -c "import json,sys; a=json.loads(sys.argv[1]); b=json.load(open(sys.argv[2])); sys.exit(0 if a==b else (print(a,'!=',b) or 1))" "$got" "$2"
}

case_synth() {
    expect_rc 0 "em-synth writes a visit" "$SYNTH" -q --expected "$TMP/exp.json" --sessions 2 --aborted 1 \
        --squares 3 --unimaged 2 --holes 5 --mics 3 "$TMP/visit"
    check "it holds an aborted session without EpuSession.dm" \
        bash -c "ls -d '$TMP'/visit/*_aborted && ! ls '$TMP'/visit/*_aborted/EpuSession.dm" 
    "$AGENT" scan --agent s "$TMP/visit" >"$TMP/scan.jsonl" 2>/dev/null
    check "scan finds exactly the entities em-synth made ($(cat "$TMP/exp.json"))" counts_equal "$TMP/scan.jsonl" "$TMP/exp.json"
    expect_rc 1 "em-agent validate finds nothing wrong but the aborted session" "$AGENT" validate "$TMP/visit"
    check "every file passes validation" grep -q "1 finding" "$TMP/_out"
    expect_rc 0 "em-synth --record" "$SYNTH" -q --record "$TMP/a.tar.zst" --sessions 2 --aborted 1 \
        --squares 3 --unimaged 2 --holes 5 --mics 3
    "$SYNTH" -q --record "$TMP/b.tar.zst" --sessions 2 --aborted 1 --squares 3 --unimaged 2 --holes 5 --mics 3
    check "the same seed gives the same recording, byte for byte" cmp -s "$TMP/a.tar.zst" "$TMP/b.tar.zst"
    "$SYNTH" -q --record "$TMP/c.tar.zst" --seed 7
    check "another seed gives another one" bash -c "! cmp -s '$TMP/a.tar.zst' '$TMP/c.tar.zst'"
    expect_rc 0 "replay the synthetic recording" "$FSR" replay -q --burst "$TMP/a.tar.zst" "$TMP/replayed"
    "$AGENT" scan --agent s "$TMP/replayed" >"$TMP/scan2.jsonl" 2>/dev/null
    check "the recording replays to the same entities as the directory" $FOLD compare "$TMP/scan.jsonl" "$TMP/scan2.jsonl"
    "$FSR" info --ops "$TMP/a.tar.zst" >"$TMP/ops.txt"
    check "square .dm files are rewritten as they grow" \
        python3 -c "
import re, sys
sizes = {}
for line in open(sys.argv[1]):
    m = re.match(r'\s*\S+ (rewrite|create)\s+(\S+/Metadata/GridSquare_\d+\.dm) \+\d+ =(\d+)', line)
    if m and m.group(1) == 'rewrite':
        sizes.setdefault(m.group(2), []).append(int(m.group(3)))
grown = [p for p, s in sizes.items() if len(s) >= 3]
sys.exit(0 if len(grown) >= 3 else 1)" "$TMP/ops.txt"
    check "foil-hole images come before their .dm entries" python3 - "$TMP/ops.txt" <<'PY'
import re, sys
img, dm = {}, {}
for n, line in enumerate(open(sys.argv[1])):
    m = re.search(r'FoilHoles/FoilHole_(\d+)_\S+\.xml', line)
    if m:
        img.setdefault(m.group(1), n)
ops = open(sys.argv[1]).read().splitlines()
# the first .dm write that mentions a hole is after its image: find by content order
holes = sorted(img, key=img.get)
assert holes, "no foil-hole images"
# the .dm rewrites come after the first image of the square's first hole
first_dm_rewrite = min(n for n, l in enumerate(ops) if re.search(r' rewrite +\S+/Metadata/GridSquare_', l))
assert first_dm_rewrite > img[holes[0]], (first_dm_rewrite, img[holes[0]])
PY
    # Paced like a microscope: 12 exposures at 20/s take about 0.6 s.
    local t0=$(date +%s.%N)
    expect_rc 0 "em-synth --rate 20" "$SYNTH" -q --rate 20 --sessions 1 --aborted 0 --squares 2 --unimaged 0 \
        --holes 3 --mics 2 "$TMP/paced"
    local took
    took=$(since "$t0")
    check "--rate paces the writes (12 exposures at 20/s took ${took}s)" awk -v t="$took" 'BEGIN { exit !(t > 0.55) }'
    # Real-file templates whose values are longer and shorter than the ones put in.
    mkdir "$TMP/tiny"
    printf '<MicroscopeImage xmlns="http://schemas.datacontract.org/2004/07/Fei.SharedObjects"><uniqueID>x</uniqueID><microscopeData><acquisition><acquisitionDateTime>2025-01-01T00:00:00.12345678901234567890Z</acquisitionDateTime></acquisition></microscopeData></MicroscopeImage>' >"$TMP/tiny/micrograph.xml"
    printf '<MicroscopeImage xmlns="http://schemas.datacontract.org/2004/07/Fei.SharedObjects"><uniqueID>%s</uniqueID><microscopeData><acquisition><acquisitionDateTime>1</acquisitionDateTime></acquisition></microscopeData></MicroscopeImage>' \
        "$(printf 'a%.0s' $(seq 60))" >"$TMP/tiny/foilhole.xml"
    expect_rc 0 "em-synth --templates with minimal real-style manifests" "$SYNTH" -q --templates "$TMP/tiny" \
        --expected "$TMP/exp-tiny.json" --sessions 1 --aborted 0 --squares 1 --holes 2 --mics 2 "$TMP/visit-tiny"
    "$AGENT" scan --agent s "$TMP/visit-tiny" >"$TMP/scan-tiny.jsonl" 2>/dev/null
    check "their uniqueID and time are replaced whatever their length" counts_equal "$TMP/scan-tiny.jsonl" "$TMP/exp-tiny.json"
    if [ -d "$SHARED/cm40593-1" ]; then
        local sq="$SHARED/cm40593-1/Images-Disc1/GridSquare_8999138"
        mkdir "$TMP/real"
        cp "$sq/Data/FoilHole_9015883_Data_9017347_6_20250108_154915.xml" "$TMP/real/micrograph.xml"
        cp "$sq/FoilHoles/FoilHole_9015889_20250108_154725.xml" "$TMP/real/foilhole.xml"
        expect_rc 0 "em-synth --templates with real EPU image manifests" "$SYNTH" -q --templates "$TMP/real" \
            --expected "$TMP/exp-real.json" "$TMP/visit-real"
        "$AGENT" scan --agent s "$TMP/visit-real" >"$TMP/scan-real.jsonl" 2>/dev/null
        check "real manifests as templates: the expected entities" counts_equal "$TMP/scan-real.jsonl" "$TMP/exp-real.json"
        check "real manifests as templates: their microscope's values" grep -q "Krios\|KRIOS\|krios" "$TMP/scan-real.jsonl"
        check "real manifests as templates: unique micrograph ids" python3 -c "
import json, sys
ids = [json.loads(l)['key'].get('micrograph_uuid') for l in open(sys.argv[1])]
ids = [i for i in ids if i]
sys.exit(0 if ids and len(ids) == len(set(ids)) else 1)" "$TMP/scan-real.jsonl"
        cp "$SHARED/cm40593-1/EpuSession.dm" "$TMP/real/session.dm"
        expect_rc 1 "a real .dm is refused as a template, with the reason" "$SYNTH" -q --templates "$TMP/real" "$TMP/v3"
        check "the reason says to mark it up" grep -q "{{ }}" "$TMP/_err"
    else
        echo "note: $SHARED absent; --templates with real files not tested"
    fi
}

"case_$CASE"
echo "fsrecorder.sh $CASE: $failures failure(s)"
[ "$failures" -eq 0 ]
