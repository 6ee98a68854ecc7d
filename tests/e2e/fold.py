#!/usr/bin/env python3
"""Fold entity event streams and compare them.

    fold.py check EVENTS            stream rules: seq strictly increasing, no event that
                                    repeats its entity's previous data
    fold.py compare A B             the folded entities of A and B are equal
    fold.py counts EVENTS           entities per type, as JSON

Folding keeps each entity's last data, keyed by (type, key); a delete removes it. The agent's
heartbeats (type "agent") are not made from files, so folding and counting leave them out;
the check keeps them (they take seqs like every event). Exit 0 when the check or comparison
holds, 1 with a report when it does not.
"""
import json
import sys


def read(path, heartbeats=False):
    events = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.endswith("\n"):
                sys.exit(f"{path}:{n}: torn last line")
            ev = json.loads(line)
            if heartbeats or ev.get("type") != "agent":
                events.append(ev)
    return events


def key_of(ev):
    return ev["type"] + " " + json.dumps(ev["key"], sort_keys=True)


def fold(events):
    """Each entity's last data; an entity whose last event is a delete is gone."""
    state = {}
    for ev in events:
        if ev.get("op") == "delete":
            state.pop(key_of(ev), None)
        else:
            state[key_of(ev)] = ev["data"]
    return state


def check(path):
    events = read(path, heartbeats=True)
    problems = []
    last_seq = 0
    last_data = {}
    for ev in events:
        if ev["seq"] <= last_seq:
            problems.append(f"seq {ev['seq']} after {last_seq}")
        last_seq = ev["seq"]
        k = key_of(ev)
        if k in last_data and last_data[k] == ev["data"]:
            problems.append(f"seq {ev['seq']}: {k} emitted again with unchanged data")
        last_data[k] = ev["data"]
    for p in problems[:20]:
        print(p)
    print(f"{path}: {len(events)} events, {len(last_data)} entities, {len(problems)} problems")
    return 1 if problems else 0


def compare(a, b):
    fa, fb = fold(read(a)), fold(read(b))
    only_a = sorted(set(fa) - set(fb))
    only_b = sorted(set(fb) - set(fa))
    differ = sorted(k for k in set(fa) & set(fb) if fa[k] != fb[k])
    for k in only_a[:10]:
        print(f"only in {a}: {k}")
    for k in only_b[:10]:
        print(f"only in {b}: {k}")
    for k in differ[:10]:
        da, db = fa[k], fb[k]
        keys = sorted(set(da) | set(db))
        diff = {x: (da.get(x), db.get(x)) for x in keys if da.get(x) != db.get(x)}
        print(f"differs: {k}: {json.dumps(diff)[:600]}")
    ok = not only_a and not only_b and not differ
    print(f"{a} vs {b}: {len(fa)} / {len(fb)} entities, {len(only_a)} only left, "
          f"{len(only_b)} only right, {len(differ)} differ -> {'EQUAL' if ok else 'DIFFERENT'}")
    return 0 if ok else 1


def counts(path):
    c = {}
    for k in fold(read(path)):
        t = k.split(" ", 1)[0]
        c[t] = c.get(t, 0) + 1
    print(json.dumps(c, sort_keys=True))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "check":
        sys.exit(check(sys.argv[2]))
    if len(sys.argv) == 4 and sys.argv[1] == "compare":
        sys.exit(compare(sys.argv[2], sys.argv[3]))
    if len(sys.argv) == 3 and sys.argv[1] == "counts":
        sys.exit(counts(sys.argv[2]))
    sys.exit(__doc__)
