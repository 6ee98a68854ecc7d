#!/usr/bin/env python3
"""Builds a synthetic EPU visit from the real files in ../shared/testdata (DESIGN §10):
SQUARES grid squares x HOLES foil-hole images x MICS micrographs per hole, plus the
session, the atlas, one 2.3 MB Metadata .dm per square and one square image each.
With the defaults that is 60,402 XML/.dm files, about 1.44 GB.

    bench/gen_session.py OUT [--squares 200] [--holes 50] [--mics 5] [--shared DIR]

Ids are rewritten per square so that every key is unique, as in a real session.
"""
import argparse
import os
import re
import sys
import uuid

here = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--squares", type=int, default=200)
ap.add_argument("--holes", type=int, default=50)
ap.add_argument("--mics", type=int, default=5)
ap.add_argument("--shared", default=os.path.join(here, "..", "..", "shared", "testdata", "epu"))
a = ap.parse_args()

nt = os.path.join(a.shared, "nt32457-6")
sess_dir = os.path.join(nt, "Supervisor_20240405_115113_0_SmartEPU_ApoF")
atlas_rel = "atlas/Supervisor_20240404_093820_Pete_Miriam_HexAuFoil/Sample4/Atlas/Atlas.dm"
cm_sq = os.path.join(a.shared, "cm40593-1", "Images-Disc1", "GridSquare_8999138")
read = lambda p: open(p, "rb").read()
session = read(os.path.join(sess_dir, "EpuSession.dm"))
atlas = read(os.path.join(nt, atlas_rel))
square_dm = read(os.path.join(sess_dir, "Metadata", "GridSquare_4590776.dm"))
square_img = read(os.path.join(sess_dir, "Images-Disc1", "GridSquare_4590776",
                               "GridSquare_20240406_102420.xml"))
hole_img = read(os.path.join(cm_sq, "FoilHoles", "FoilHole_9015889_20250108_154725.xml"))
mic = read(os.path.join(cm_sq, "Data", "FoilHole_9015883_Data_9017347_6_20250108_154915.xml"))

square_ids = [int(k) for k in re.findall(rb"<b:key>(\d+)</b:key>", session)] or \
    [int(k) for k in re.findall(rb"<[a-z]:key>(\d+)</[a-z]:key>", session)]
if len(square_ids) < a.squares:
    sys.exit(f"the session lists {len(square_ids)} squares, fewer than {a.squares}")
hole_ids = [int(k) for k in re.findall(rb"KeyValuePairOfintTargetLocationXml\w*><\w+:key>(\d+)<",
                                       square_dm)]
ids = set(hole_ids) | {int(k) for k in re.findall(rb"ParticleAcquisitionDataXml\w*><\w+:key>(\d+)<",
                                                  square_dm)} | {4590776}
# Split the .dm once into text and 7-digit numbers; per square only the numbers change.
parts = re.split(rb"(?<![0-9])([0-9]{7})(?![0-9])", square_dm)
old_uuid = re.search(rb"<uniqueID>([^<]+)</uniqueID>", mic).group(1)

def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)

out = a.out
write(os.path.join(out, atlas_rel), atlas)
sd = os.path.join(out, "Supervisor_20240405_115113_0_SmartEPU_ApoF")
write(os.path.join(sd, "EpuSession.dm"), session)
files = 2
for k, gs in enumerate(square_ids[: a.squares]):
    shift = (k + 1) * 10_000_000
    def new(n):
        return gs if n == 4590776 else n + shift if n in ids else n
    body = b"".join(p if i % 2 == 0 else str(new(int(p))).encode() for i, p in enumerate(parts))
    write(os.path.join(sd, "Metadata", f"GridSquare_{gs}.dm"), body)
    gdir = os.path.join(sd, "Images-Disc1", f"GridSquare_{gs}")
    write(os.path.join(gdir, "GridSquare_20240406_102420.xml"), square_img)
    files += 2
    for h in hole_ids[: a.holes]:
        fh = h + shift
        write(os.path.join(gdir, "FoilHoles", f"FoilHole_{fh}_20240406_1030{k % 60:02d}.xml"), hole_img)
        files += 1
        for m in range(a.mics):
            name = f"FoilHole_{fh}_Data_4601896_{m + 1}_20240406_1031{m:02d}.xml"
            write(os.path.join(gdir, "Data", name),
                  mic.replace(old_uuid, str(uuid.uuid4()).encode()))
            files += 1
    if (k + 1) % 20 == 0:
        print(f"gen: {k + 1}/{a.squares} squares, {files} files", file=sys.stderr)
print(f"gen: wrote {files} files under {out}", file=sys.stderr)
