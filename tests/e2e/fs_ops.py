#!/usr/bin/env python3
"""Performs every kind of change fsrecorder must record, in a directory being recorded:

    fs_ops.py DIR [--pause S]

mkdir, create, append, write at an offset, rewrite that grows, rewrite that shrinks,
truncate (to 0 and to a block boundary), same-content rewrite, CRLF and Latin-1 text,
binary and zero-length files, a deep tree, placeholders (a growing .mrc, a .jpg),
renames of files and directories (with files inside, changed after the rename), a rename
over an existing file, deletions of files and trees, a file deleted and created again.
Each step is separated by PAUSE seconds so the recorder sees it as a separate change.
"""
import argparse
import os
import shutil
import time

ap = argparse.ArgumentParser()
ap.add_argument("dir")
ap.add_argument("--pause", type=float, default=0.15)
a = ap.parse_args()
d = a.dir


def p(*parts):
    return os.path.join(d, *parts)


def step():
    time.sleep(a.pause)


def write(path, data, mode="wb"):
    with open(path, mode) as f:
        f.write(data)


os.makedirs(p("sess", "Metadata"))
step()
# create, then append twice (a file growing while written)
write(p("sess", "Metadata", "GridSquare_1.dm"), b"<GridSquareXml>" + b"a" * 5000)
step()
write(p("sess", "Metadata", "GridSquare_1.dm"), b"b" * 3000, "ab")
step()
write(p("sess", "Metadata", "GridSquare_1.dm"), b"</GridSquareXml>", "ab")
step()
# a rewrite that grows: new content, longer, sharing a prefix (not an append)
write(p("sess", "EpuSession.dm"), b"<EpuSessionXml><Squares>1</Squares></EpuSessionXml>")
step()
write(p("sess", "EpuSession.dm"), b"<EpuSessionXml><Squares>1,2,3</Squares><More/></EpuSessionXml>")
step()
# a rewrite that shrinks
write(p("sess", "EpuSession.dm"), b"<EpuSessionXml/>")
step()
# the same content written again, in place (opening with truncation would show the
# recorder an empty file for a moment, now and then, on a busy machine)
write(p("sess", "EpuSession.dm"), b"<EpuSessionXml/>", "r+b")
step()
# write at an offset inside a larger file (same size)
big = bytes(range(256)) * 64  # 16 KiB
write(p("sess", "patch.bin"), big)
step()
with open(p("sess", "patch.bin"), "r+b") as f:
    f.seek(9000)
    f.write(b"PATCHED!")
step()
# truncate to a block boundary, then to zero, then grow again
with open(p("sess", "patch.bin"), "r+b") as f:
    f.truncate(8192)
step()
with open(p("sess", "patch.bin"), "r+b") as f:
    f.truncate(0)
step()
write(p("sess", "patch.bin"), b"again", "ab")
step()
# text that must not be translated: CRLF, a BOM, Latin-1 bytes; binary; empty
write(p("sess", "crlf.xml"), b"\xef\xbb\xbf<a>\r\n  <b>caf\xe9</b>\r\n</a>\r\n")
write(p("sess", "binary.dat"), bytes(range(256)) * 3 + b"\x00\xff\x00")
write(p("sess", "empty.txt"), b"")
step()
# a deep tree
deep = p("sess", *[f"level{i}" for i in range(40)])
os.makedirs(deep)
write(os.path.join(deep, "leaf.xml"), b"<leaf/>")
step()
# placeholders: an image and a movie that grows
write(p("sess", "image.jpg"), b"\xff\xd8" + b"J" * 1000)
write(p("sess", "movie.mrc"), b"M" * 4096)
step()
write(p("sess", "movie.mrc"), b"M" * 8192, "ab")
step()
# renames: a file; a directory with files that then change; over an existing file
os.makedirs(p("sess", "Images-Disc1", "GridSquare_7", "Data"))
write(p("sess", "Images-Disc1", "GridSquare_7", "Data", "mic.xml"), b"<mic>1</mic>")
write(p("sess", "Images-Disc1", "GridSquare_7", "sq.xml"), b"<sq/>")
step()
os.rename(p("sess", "empty.txt"), p("sess", "renamed-empty.txt"))
step()
os.rename(p("sess", "Images-Disc1"), p("sess", "Images-Disc2"))
step()
write(p("sess", "Images-Disc2", "GridSquare_7", "Data", "mic.xml"), b"<mic>22</mic>")
write(p("sess", "Images-Disc2", "GridSquare_7", "Data", "mic2.xml"), b"<mic>2</mic>")
step()
write(p("sess", "tmp.partial"), b"<final>content</final>")
write(p("sess", "target.xml"), b"<old/>")
step()
os.rename(p("sess", "tmp.partial"), p("sess", "target.xml"))
step()
# deletions: a file, a tree; a file deleted and created again
os.makedirs(p("junk", "sub"))
write(p("junk", "sub", "x.txt"), b"x")
write(p("sess", "gone.txt"), b"soon gone")
step()
os.remove(p("sess", "gone.txt"))
shutil.rmtree(p("junk"))
step()
write(p("sess", "phoenix.txt"), b"first life")
step()
os.remove(p("sess", "phoenix.txt"))
step()
write(p("sess", "phoenix.txt"), b"second life, longer")
step()
print("fs_ops: done")
