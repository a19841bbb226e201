#!/usr/bin/python3
"""Tables of medians from a compare.sh log (tests/bench/compare.sh).

  summarize.py compare.log

Each measured run in the log starts with a line `=== SCENARIO k=v ... run=N`
followed by the tool's output. Prints Markdown tables: the median of the
runs, every run in parentheses, and the ratios issue 9 asks for.
"""

import collections
import re
import statistics
import sys

DUR = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|ns|m|s)")
UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def seconds(text):
    """absl::FormatDuration text ("1.2s", "3m4.5s", "812us") or "1.5ms"."""
    if text in ("0", "0s"):
        return 0.0
    return sum(float(n) * UNIT[u] for n, u in DUR.findall(text))


def fields(line):
    return dict(re.findall(r"(\w+)=(\S+)", line))


def parse(path):
    """{(scenario, tag-without-run): [metrics of each run]}"""
    runs = collections.defaultdict(list)
    current = None
    for line in open(path, encoding="utf-8", errors="replace"):
        line = line.rstrip("\n")
        if line.startswith("=== "):
            parts = line[4:].split()
            tags = dict(p.split("=", 1) for p in parts[1:])
            tags.pop("run", None)
            current = {}
            runs[(parts[0], tuple(sorted(tags.items())))].append(current)
            continue
        if current is None:
            continue
        f = fields(line)
        if line.startswith("!!! exit"):
            current["failed"] = 1
        if "latency" in line and "p50" in f:  # stampede (corral and baselines)
            current.update(computes=int(f["computes"]), p50=seconds(f["p50"]),
                           p99=seconds(f["p99"]), max=seconds(f["max"]),
                           callers=int(f["callers"]))
        elif line.startswith("redis_commands="):
            current.update(redis=int(f["redis_commands"]), redis_per=float(f["per_caller"].rstrip(":")))
        elif "req_per_s" in f:  # corral-bench --mode=hits
            current.update(rps=float(f["req_per_s"]), p50=seconds(f["p50"]), p99=seconds(f["p99"]))
        elif line.startswith('"GET"'):  # redis-benchmark --csv
            cols = [c.strip('"') for c in line.split(",")]
            current.update(rps=float(cols[1]), p50=float(cols[4]) / 1e3, p99=float(cols[6]) / 1e3)
        elif "cycles_per_s" in f:
            current.update(cps=float(f["cycles_per_s"]), p50=seconds(f["p50"]), p99=seconds(f["p99"]))
        elif "kib_per_waiter" in f:
            m = re.search(r"fill_to_waiter p50=(\S+) p99=(\S+) fill_to_last=(\S+)", line)
            current.update(kib=float(f["kib_per_waiter"]), waiting=float(f["waiters"]),
                           rss_before=int(f["rss_before_kib"]), rss_waiting=int(f["rss_waiting_kib"]),
                           fill_p50=seconds(m.group(1)), fill_p99=seconds(m.group(2)),
                           fill_last=seconds(m.group(3)))
    return runs


def values(rs, key):
    return [r[key] for r in rs if key in r]


def med(rs, key):
    v = values(rs, key)
    return statistics.median(v) if v else None


def ms(x):
    if x is None:
        return "—"
    if x >= 10:
        return f"{x:.1f} s"
    if x >= 1:
        return f"{x:.2f} s"
    return f"{x * 1e3:.3g} ms"


def num(x, digits=0):
    if x is None:
        return "—"
    return f"{x:,.{digits}f}"


def cell(rs, key, fmt):
    v = values(rs, key)
    if not v:
        return "—"
    m = fmt(statistics.median(v))
    return m if len(v) == 1 else f"{m} ({', '.join(fmt(x) for x in v)})"


def ratio(a, b):
    return f"{a / b:.2f}×" if a is not None and b else "—"


def select(runs, scenario, **want):
    out = {}
    for (sc, tags), rs in runs.items():
        t = dict(tags)
        if sc == scenario and all(t.get(k) == v for k, v in want.items()):
            out[tags] = rs
    return out


def get(runs, scenario, **tags):
    for (sc, t), rs in runs.items():
        if sc == scenario and dict(t) == tags:
            return rs
    return []


def table(header, rows):
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print()


def main(path):
    runs = parse(path)
    for line in open(path, encoding="utf-8", errors="replace"):
        if line.startswith("# "):
            print(line.rstrip())
    print()
    keys = {sc: set() for sc in ("stampede", "hits", "locks", "waiters")}
    for sc, tags in runs:
        keys.setdefault(sc, set()).add(tags)

    ns = sorted({int(dict(t)["n"]) for t in keys["stampede"]})
    if ns:
        print("## Stampede: N callers, one cold key, compute 200 ms (median of runs; runs in parentheses)\n")
        rows = []
        for n in ns:
            for system in ("corral", "client-lock", "cache-aside"):
                rs = get(runs, "stampede", system=system, n=str(n))
                if not rs:
                    continue
                rows.append([f"{n:,}", system, cell(rs, "computes", num), cell(rs, "p50", ms),
                             cell(rs, "p99", ms), cell(rs, "max", ms), cell(rs, "redis", num),
                             cell(rs, "redis_per", lambda x: f"{x:.3g}")])
        table(["N", "system", "computes", "p50", "p99", "max", "Redis commands", "per caller"], rows)

    cs = sorted({int(dict(t)["c"]) for t in keys["hits"]})
    if cs:
        print("## Hot hits: one warm key, closed loop (median of runs)\n")
        rows = []
        for c in cs:
            rb = get(runs, "hits", system="redis-benchmark", c=str(c))
            for system in ("corral-get_or_compute", "corral-get", "redis-benchmark"):
                rs = get(runs, "hits", system=system, c=str(c))
                if not rs:
                    continue
                rows.append([str(c), system, cell(rs, "rps", num), ratio(med(rs, "rps"), med(rb, "rps")),
                             ms(med(rs, "p50")), ms(med(rs, "p99"))])
        table(["concurrency", "system", "requests/s", "vs redis-benchmark GET", "p50", "p99"], rows)

    lock_rows = sorted({(int(dict(t)["workers"]), dict(t)["key"]) for t in keys["locks"]})
    if lock_rows:
        print("## Locks: AcquireLock+ReleaseLock cycles/s (median of runs)\n")
        rows = []
        for w, k in lock_rows:
            etcd = med(get(runs, "locks", system="etcd-py", workers=str(w), key=k), "cps")
            for system in ("corral-cpp", "corral-py", "etcd-py", "etcd-nofsync-py"):
                rs = get(runs, "locks", system=system, workers=str(w), key=k)
                if not rs:
                    continue
                rows.append([str(w), k, system, cell(rs, "cps", num), ratio(med(rs, "cps"), etcd),
                             ms(med(rs, "p50")), ms(med(rs, "p99"))])
        table(["workers", "key", "system", "cycles/s", "vs etcd (fsync, Python)", "cycle p50",
               "cycle p99"], rows)

    ws = sorted({int(dict(t)["w"]) for t in keys["waiters"]})
    if ws:
        print("## Waiters: W callers waiting on one key, one fresh corrald per run (median of runs)\n")
        rows = []
        for w in ws:
            rs = get(runs, "waiters", system="corral", w=str(w))
            rows.append([f"{w:,}", cell(rs, "waiting", num), cell(rs, "rss_before", lambda x: f"{x / 1024:.0f}"),
                         cell(rs, "rss_waiting", lambda x: f"{x / 1024:.0f}"),
                         cell(rs, "kib", lambda x: f"{x:.1f}"), ms(med(rs, "fill_p50")),
                         ms(med(rs, "fill_p99")), cell(rs, "fill_last", ms)])
        table(["W", "waiting", "RSS before (MiB)", "RSS waiting (MiB)", "KiB per waiter",
               "fill→waiter p50", "fill→waiter p99", "fill→last waiter"], rows)

    failed = [" ".join([sc] + [f"{k}={v}" for k, v in t]) for (sc, t), rs in runs.items()
              if any("failed" in r for r in rs)]
    if failed:
        print("Runs that exited non-zero: " + "; ".join(failed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
