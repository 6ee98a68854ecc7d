#!/usr/bin/env python3
"""Benchmark `em-agent watch`: latency, throughput, and CPU/RSS on a large session.

    bench/bench_watch.py EM_AGENT [--session DIR] [--rates 100,1000] [--files 3000]

1. Latency: micrograph manifests are written into a live session at a fixed rate
   (absolute schedule); for each, the time from its close() to its event line on the
   agent's stdout. Prints p50/p99/max per rate.
2. Throughput: N files written as fast as possible; files/s until the last event
   arrived, and whether every file got its event (no loss).
3. With --session (e.g. the 60k-file tree of bench/gen_session.py): time of the initial
   walk, peak RSS, and CPU used over 10 s of idleness afterwards.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import json

HERE = os.path.dirname(os.path.abspath(__file__))
MINI = os.path.join(HERE, "..", "testdata", "visit-mini", "Supervisor_20250101_100000_1_mini_EPU")
TEMPLATE = os.path.join(MINI, "Images-Disc1", "GridSquare_1001", "Data",
                        "FoilHole_2001_Data_4001_1_20250101_102100.xml")
UUID = b"33333333-0000-4000-8000-000000003001"


class Agent:
    def __init__(self, exe, root, state, extra=()):
        self.arrivals = {}
        self.lines = 0
        self.cv = threading.Condition()
        self.p = subprocess.Popen([exe, "watch", "--agent", "bench", "--state-dir", state, *extra, root],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.t = threading.Thread(target=self.read, daemon=True)
        self.t.start()

    def read(self):
        for line in self.p.stdout:
            now = time.monotonic()
            ev = json.loads(line)
            src = (ev.get("source") or {}).get("path")
            with self.cv:
                self.lines += 1
                if src and src not in self.arrivals:
                    self.arrivals[src] = now
                self.cv.notify_all()

    def wait_for(self, paths, timeout):
        end = time.monotonic() + timeout
        with self.cv:
            while not all(p in self.arrivals for p in paths):
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self.cv.wait(left)
        return True

    def stop(self):
        self.p.terminate()
        self.p.wait(30)


def write_micrographs(root, start, n, rate, template):
    """Writes n manifests; returns [(rel, close_time)]."""
    data_dir = os.path.join(root, "S", "Images-Disc1", "GridSquare_1001", "Data")
    os.makedirs(data_dir, exist_ok=True)
    out = []
    t0 = time.monotonic()
    for i in range(start, start + n):
        if rate:
            delay = t0 + (i - start) / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        name = f"FoilHole_{3000 + i // 5}_Data_4001_{i % 5}_20250101_{i // 3600 % 24:02d}{i // 60 % 60:02d}{i % 60:02d}.xml"
        body = template.replace(UUID, f"33333333-0000-4000-8000-{i:012d}".encode())
        with open(os.path.join(data_dir, name), "wb") as f:
            f.write(body)
        out.append((f"S/Images-Disc1/GridSquare_1001/Data/{name}", time.monotonic()))
    return out


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def proc_stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(parts[11]) + int(parts[12])) / ticks
    hwm = rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) // 1024
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) // 1024
    return cpu, hwm, rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("agent")
    ap.add_argument("--session")
    ap.add_argument("--rates", default="100,1000")
    ap.add_argument("--files", type=int, default=3000, help="files per latency run")
    ap.add_argument("--burst", type=int, default=20000)
    a = ap.parse_args()
    template = open(TEMPLATE, "rb").read()
    tmp = tempfile.mkdtemp()
    try:
        root = os.path.join(tmp, "root")
        os.makedirs(os.path.join(root, "S"))
        shutil.copy(os.path.join(MINI, "EpuSession.dm"), os.path.join(root, "S", "EpuSession.dm"))
        agent = Agent(a.agent, root, os.path.join(tmp, "state"))
        time.sleep(0.5)
        start = 0
        print("latency from close() to the event on stdout (micrograph manifests, 4.2 kB):")
        for rate in [int(r) for r in a.rates.split(",")]:
            written = write_micrographs(root, start, a.files, rate, template)
            start += a.files
            ok = agent.wait_for([p for p, _ in written], 60)
            lat = [(agent.arrivals[p] - t) * 1000 for p, t in written if p in agent.arrivals]
            print(f"  {rate:5d} files/s, {len(written)} files: p50 {pct(lat, 50):6.2f} ms  "
                  f"p99 {pct(lat, 99):6.2f} ms  max {max(lat):7.2f} ms  "
                  f"{'all delivered' if ok else 'MISSING EVENTS'}")
        t0 = time.monotonic()
        written = write_micrographs(root, start, a.burst, 0, template)
        t_write = time.monotonic() - t0
        ok = agent.wait_for([p for p, _ in written], 120)
        t_all = max(agent.arrivals[p] for p, _ in written if p in agent.arrivals) - t0
        got = sum(1 for p, _ in written if p in agent.arrivals)
        print(f"throughput: {a.burst} files written in {t_write:.2f} s ({a.burst / t_write:.0f} files/s); "
              f"last event after {t_all:.2f} s: {a.burst / t_all:.0f} files/s sustained, "
              f"{got}/{a.burst} events ({'no loss' if ok else 'LOSS'})")
        agent.stop()
        if a.session:
            agent = Agent(a.agent, a.session, os.path.join(tmp, "state60k"))
            t0 = time.monotonic()
            # The initial walk is over when output stops growing for a second.
            last, since = -1, time.monotonic()
            while True:
                time.sleep(0.2)
                with agent.cv:
                    n = agent.lines
                if n != last:
                    last, since = n, time.monotonic()
                elif time.monotonic() - since > 1.0 and n > 0:
                    break
            walk = since - t0
            cpu0, hwm, _ = proc_stat(agent.p.pid)
            time.sleep(10)
            cpu1, hwm, rss = proc_stat(agent.p.pid)
            files = sum(len(f) for _, _, f in os.walk(a.session))
            print(f"session {a.session}: {files} files, {last} events; initial walk {walk:.1f} s; "
                  f"peak RSS {hwm} MiB (now {rss} MiB); idle CPU over 10 s: {cpu1 - cpu0:.2f} s")
            agent.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
