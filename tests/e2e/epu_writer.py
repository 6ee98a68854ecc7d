#!/usr/bin/env python3
"""Write a finished EPU tree into DEST the way EPU does, for watch tests.

    epu_writer.py SRC DEST [--seed N] [--pace SECONDS] [--disc2-from K] [--late-session]

Files are created, then written in chunks with the file open; square by square:
square images, foil-hole images (before their square's .dm), the .dm first as a torn
prefix (an incomplete document the agent must wait for), then micrographs, then the
.dm rewritten in full (a rewrite that grows), then rewritten again with the same bytes
(which must emit nothing). EpuSession.dm is written as a torn prefix at the start and in
full after the first square (or after the last with --late-session). Session
directories without an EpuSession.dm are copied too (an aborted session). With
--disc2-from K, squares from the K-th on go to Images-Disc2 (a new directory mid-run).
Non-XML files (images) are written as 1 kB placeholders. Prints the number of files.
"""
import argparse
import os
import random
import re
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("src")
ap.add_argument("dest")
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--pace", type=float, default=0.0, help="sleep after each file")
ap.add_argument("--disc2-from", type=int, default=-1)
ap.add_argument("--late-session", action="store_true")
a = ap.parse_args()
rng = random.Random(a.seed)

DISC = re.compile(r"(^|/)Images-Disc\d+/")
SQUARE_DIR = re.compile(r"GridSquare_(\d+)/")
META = re.compile(r"(^|/)Metadata/GridSquare_(\d+)\.dm$")


def session_dir_of(rel):
    m = DISC.search(rel)
    if m:
        return rel[: m.start() + len(m.group(1))].rstrip("/")
    m = META.search(rel)
    if m:
        return rel[: m.start() + len(m.group(1))].rstrip("/")
    if rel.endswith("EpuSession.dm"):
        return os.path.dirname(rel)
    return None


def chunks(data):
    i = 0
    while i < len(data):
        n = rng.randint(512, 8192)
        yield data[i : i + n]
        i += n


def write(rel, data, torn=False):
    path = os.path.join(a.dest, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if torn:
        data = data[: max(1, len(data) // 2)]
    with open(path, "wb") as f:
        for c in chunks(data):
            f.write(c)
            f.flush()
            if rng.random() < 0.02:
                time.sleep(0.002)
    if a.pace:
        time.sleep(a.pace)


def content(rel):
    with open(os.path.join(a.src, rel), "rb") as f:
        data = f.read()
    if not rel.endswith((".xml", ".dm")):
        return b"\0" * 1024
    return data


files = []
for root, dirs, names in os.walk(a.src):
    dirs.sort()
    for n in sorted(names):
        files.append(os.path.relpath(os.path.join(root, n), a.src).replace(os.sep, "/"))

sessions = {}  # dir -> {"dm": rel or None, "squares": {gs: [rels]}, "meta": {gs: rel}}
others = []
for rel in files:
    sd = session_dir_of(rel)
    if sd is None:
        others.append(rel)
        continue
    s = sessions.setdefault(sd, {"dm": None, "squares": {}, "meta": {}})
    if rel.endswith("EpuSession.dm") and os.path.dirname(rel) == sd:
        s["dm"] = rel
        continue
    m = META.search(rel)
    if m:
        s["meta"][int(m.group(2))] = rel
        s["squares"].setdefault(int(m.group(2)), [])
        continue
    m = SQUARE_DIR.search(rel)
    if m:
        s["squares"].setdefault(int(m.group(1)), []).append(rel)
    else:
        others.append(rel)

count = 0
for rel in others:  # atlases and the rest first, as EPU's atlas run comes first
    write(rel, content(rel))
    count += 1


def rank(rel):
    if "/FoilHoles/" in rel:
        return 1
    if "/Data/" in rel:
        return 2
    return 0


for sd in sorted(sessions):
    s = sessions[sd]
    if s["dm"]:
        write(s["dm"], content(s["dm"]), torn=True)
        count += 1
    order = sorted(s["squares"])
    for i, gs in enumerate(order):
        rels = sorted(s["squares"][gs], key=lambda r: (rank(r), r))
        meta = s["meta"].get(gs)
        def dest_rel(r):
            if a.disc2_from >= 0 and i >= a.disc2_from:
                return DISC.sub(lambda m: m.group(1) + "Images-Disc2/", r, count=1)
            return r
        holes_done = False
        for r in rels:
            if rank(r) == 2 and not holes_done:
                holes_done = True
                if meta:
                    write(meta, content(meta), torn=True)
            write(dest_rel(r), content(r))
            count += 1
        if meta:
            write(meta, content(meta))
            write(meta, content(meta))
            count += 1
        if s["dm"] and ((not a.late_session and i == 0) or (a.late_session and i == len(order) - 1)):
            write(s["dm"], content(s["dm"]))
    if s["dm"] and not order:
        write(s["dm"], content(s["dm"]))
print(count)
