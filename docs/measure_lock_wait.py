#!/usr/bin/python3
"""Measures lock-wait distributions for docs/OPERATIONS.md ("Lock tuning").

Starts a throwaway redis-server and corrald replica(s) on free loopback
ports, runs corral-bench once per scenario (N concurrent callers stampeding
one cold key whose compute takes C ms), and after each run reads corrald's
own corral_lock_wait_seconds histogram from /metrics -- the numbers an
operator's dashboard would show -- next to the bench's exact client-side
latencies. Each scenario uses its own corral namespace, so the histograms
never mix and no restart is needed between runs.

Usage (from the repository root, after a build):
  /usr/bin/python3 docs/measure_lock_wait.py [--build build] [--repeat 3]
      [--callers 10,100,1000,10000] [--compute_ms 200,5000] [--replicas 1]
Prints a Markdown table on stdout and the raw bench lines on stderr.
"""

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

BUCKET_RE = re.compile(
    r'^corral_lock_wait_seconds_bucket\{namespace="([^"]+)",le="([^"]+)"\} (\S+)$')
SUM_RE = re.compile(r'^corral_lock_wait_seconds_(sum|count)\{namespace="([^"]+)"\} (\S+)$')
TIMEOUT_RE = re.compile(
    r'^corral_lock_acquisitions_total\{namespace="([^"]+)",outcome="timeout"\} (\S+)$')
BENCH_RE = re.compile(
    r'computes=(\d+) elapsed=(\S+) latency p50=(\S+) p99=(\S+) max=(\S+) outcomes: (.*)$', re.M)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seconds(text):
    """absl::FormatDuration output (e.g. 1.2s, 269.5ms, 850us) -> seconds."""
    m = re.fullmatch(r"([\d.]+)(ns|us|ms|s|m)", text)
    if not m:
        # Compound forms such as 1m2.5s: sum the parts.
        return sum(seconds(p) for p in re.findall(r"[\d.]+(?:ns|us|ms|s|m)", text))
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[m.group(2)]
    return float(m.group(1)) * scale


def histogram_quantile(q, buckets):
    """Prometheus's histogram_quantile() on cumulative (le, count) pairs."""
    buckets = sorted(buckets, key=lambda b: b[0])
    total = buckets[-1][1]
    if total == 0:
        return float("nan")
    rank = q * total
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return prev_le  # Prometheus returns the last finite bound.
            return prev_le + (le - prev_le) * (rank - prev_count) / (count - prev_count)
        prev_le, prev_count = le, count
    return prev_le


def scrape(metrics_ports):
    """Sums the lock-wait histogram over replicas, per corral namespace."""
    hist, sums, counts, timeouts = {}, {}, {}, {}
    for port in metrics_ports:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        for line in body.decode().splitlines():
            if m := BUCKET_RE.match(line):
                ns, le = m.group(1), float(m.group(2))
                hist.setdefault(ns, {}).setdefault(le, 0.0)
                hist[ns][le] += float(m.group(3))
            elif m := SUM_RE.match(line):
                target = sums if m.group(1) == "sum" else counts
                target[m.group(2)] = target.get(m.group(2), 0.0) + float(m.group(3))
            elif m := TIMEOUT_RE.match(line):
                timeouts[m.group(1)] = timeouts.get(m.group(1), 0.0) + float(m.group(2))
    return hist, sums, counts, timeouts


def wait_ready(proc, log_path, deadline_s=20):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            sys.exit(f"corrald exited early:\n{open(log_path).read()}")
        text = open(log_path).read()
        if m := re.search(r"corrald ready listen=\S+:(\d+) metrics=\S+:(\d+)", text):
            return int(m.group(1)), int(m.group(2))
        time.sleep(0.05)
    sys.exit(f"corrald not ready after {deadline_s}s:\n{open(log_path).read()}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--callers", default="10,100,1000,10000")
    ap.add_argument("--compute_ms", default="200,5000")
    ap.add_argument("--replicas", type=int, default=1)
    args = ap.parse_args()
    corrald = os.path.join(args.build, "server", "corrald")
    bench = os.path.join(args.build, "client", "bench", "corral-bench")

    work = tempfile.mkdtemp(prefix="corral-lockwait-")
    procs = []
    try:
        redis_port = free_port()
        procs.append(subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"],
            stdout=open(os.path.join(work, "redis.log"), "w"), stderr=subprocess.STDOUT))
        for _ in range(100):
            if subprocess.run(["redis-cli", "-p", str(redis_port), "ping"],
                              capture_output=True, text=True).stdout.strip() == "PONG":
                break
            time.sleep(0.05)
        grpc_ports, metrics_ports, pids = [], [], []
        for i in range(args.replicas):
            log = os.path.join(work, f"corrald-{i}.log")
            p = subprocess.Popen(
                [corrald, "--listen_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
                 f"--redis=redis://127.0.0.1:{redis_port}", "--log_level=warning"],
                stdout=open(log, "w"), stderr=subprocess.STDOUT)
            procs.append(p)
            g, m = wait_ready(p, log)
            grpc_ports.append(g)
            metrics_ports.append(m)
            pids.append(p.pid)
        targets = ",".join(f"127.0.0.1:{p}" for p in grpc_ports)

        rows = []
        for compute_ms in [int(c) for c in args.compute_ms.split(",")]:
            for callers in [int(c) for c in args.callers.split(",")]:
                runs = []
                for r in range(args.repeat):
                    ns = f"lw_r{args.replicas}_c{callers}_ms{compute_ms}_{r}"
                    cmd = [bench, f"--targets={targets}", f"--callers={callers}", "--keys=1",
                           f"--compute_ms={compute_ms}", f"--ns={ns}",
                           f"--corrald_pids={','.join(map(str, pids))}"]
                    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
                    print(" ".join(cmd[1:]), "\n  ->", out.stdout.strip().replace("\n", "\n  -> "),
                          file=sys.stderr)
                    m = BENCH_RE.search(out.stdout)
                    if out.returncode != 0 or not m:
                        sys.exit(f"bench failed ({out.returncode}): {out.stdout}{out.stderr}")
                    rss = [int(x) for x in re.findall(r"rss_peak_kib=(\d+)", out.stdout)]
                    hist, sums, counts, timeouts = scrape(metrics_ports)
                    buckets = sorted(hist[ns].items())
                    runs.append({
                        "computes": int(m.group(1)),
                        "elapsed": seconds(m.group(2)),
                        "p50": seconds(m.group(3)), "p99": seconds(m.group(4)),
                        "max": seconds(m.group(5)), "outcomes": m.group(6),
                        "cache": int(c.group(1))
                                 if (c := re.search(r"cache=(\d+)", m.group(6))) else 0,
                        "waits": counts[ns], "mean_wait": sums[ns] / counts[ns],
                        "hq50": histogram_quantile(0.5, buckets),
                        "hq99": histogram_quantile(0.99, buckets),
                        "timeouts": timeouts.get(ns, 0.0),
                        "rss_mib": max(rss) / 1024 if rss else float("nan"),
                    })
                rows.append((callers, compute_ms, runs))

        def med(runs, k):
            return statistics.median(r[k] for r in runs)

        def rng(runs, k):
            return f"{min(r[k] for r in runs) * 1e3:.0f}–{max(r[k] for r in runs) * 1e3:.0f}"

        print(f"replicas={args.replicas} repeat={args.repeat} (median of runs; range in brackets)")
        print("| callers | compute | computes per run | arrived after the fill (cache hit) "
              "| waits observed | mean wait | histogram_quantile p50 / p99 "
              "| bench p50 | bench p99 [range] | bench max | max − compute "
              "| timeouts | corrald peak RSS |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
              "| ---: | ---: |")
        for callers, compute_ms, runs in rows:
            print(f"| {callers:,} | {compute_ms / 1000:g} s "
                  f"| {'/'.join(str(r['computes']) for r in runs)} "
                  f"| {med(runs, 'cache'):,.0f} "
                  f"| {med(runs, 'waits'):,.0f} "
                  f"| {med(runs, 'mean_wait') * 1e3:.0f} ms "
                  f"| {med(runs, 'hq50') * 1e3:.0f} / {med(runs, 'hq99') * 1e3:.0f} ms "
                  f"| {med(runs, 'p50') * 1e3:.0f} ms "
                  f"| {med(runs, 'p99') * 1e3:.0f} ms [{rng(runs, 'p99')}] "
                  f"| {med(runs, 'max') * 1e3:.0f} ms "
                  f"| {(med(runs, 'max') - compute_ms / 1000) * 1e3:+.0f} ms "
                  f"| {sum(r['timeouts'] for r in runs):.0f} "
                  f"| {max(r['rss_mib'] for r in runs):.0f} MiB |")
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
