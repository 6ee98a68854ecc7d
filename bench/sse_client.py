#!/usr/bin/env python3
"""sse_client.py URL OUT — reads a Server-Sent Events stream and writes one line per
micrograph change: "UUID UNIX_TIME" (when its event arrived), for bench_serve.sh."""
import json, sys, time, urllib.request

url, out = sys.argv[1], sys.argv[2]
with open(out, "w", buffering=1) as o, urllib.request.urlopen(url) as r:
    data = None
    for raw in r:
        line = raw.decode().rstrip("\n")
        if line.startswith("data: "):
            data = line[6:]
        elif line == "" and data:
            t = time.time()
            d = json.loads(data)
            if d.get("type") == "micrograph":
                o.write(f"{d['key']['micrograph_uuid']} {t:.6f}\n")
            data = None
