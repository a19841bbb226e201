"""Polyglot end-to-end: workers in several languages share one stampede guard.

C++ workers (client/examples/plant_worker), Python workers (blocking,
asyncio, and the seed-shaped lock mode) and `corralctl get-or-compute
--exec` race on the same 20 cold keys through 2 corrald replicas sharing one
redis-server, all calling one slow fake upstream. Expected: exactly 20
upstream calls (one per key, fleet-wide), and every process gets the same
bytes for a key.

PolyglotBreakerTest: then the upstream fails and the namespace's breaker
(shared by the replicas through Redis) opens; from then on a cold key fails
fast with breaker-open for workers in every language, through either
replica, without calling the upstream.
"""

import asyncio
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import corral_testing
from corral_testing import unique_key
import corral
import corral.aio
import fake_upstream
from worker_runs import Launcher, make_images
from corral_testing import CORRALCTL

KEYS = 20


class PolyglotStampedeTest(unittest.TestCase):
    def setUp(self):
        self.fleet = corral_testing.Fleet(replicas=2, upstream=True, upstream_delay=(0.3, 0.6))
        self.addCleanup(self.fleet.stop)
        self.dir = tempfile.mkdtemp(dir=self.fleet.dir)
        self.launcher = Launcher(self.dir)
        self.addCleanup(self.launcher.stop_all)  # Runs before fleet.stop.

    def test_one_compute_per_key_and_same_bytes_everywhere(self):
        ns = unique_key("plants")
        images = make_images(self.dir, KEYS, "polyglot")
        paths = list(images.values())
        t0, up = self.fleet.targets, self.fleet.upstream.url
        start = time.time() + 2.5  # Every process is up and waiting by then.
        L = self.launcher
        workers = [
            L.cc_worker("cc-0", t0[0], up, paths, ns, threads=8, repeat=2, start_at=start),
            L.cc_worker("cc-1", t0[1], up, paths, ns, threads=8, repeat=2, start_at=start),
            L.python_worker("py-sync-0", t0[0], up, paths, ns, mode="sync", concurrency=8,
                            start_at=start),
            L.python_worker("py-sync-1", t0[1], up, paths, ns, mode="sync", concurrency=8,
                            start_at=start),
            L.python_worker("py-async-0", t0[1], up, paths, ns, mode="async", concurrency=20,
                            repeat=2, start_at=start),
            L.python_worker("py-async-1", t0[0], up, paths, ns, mode="async", concurrency=20,
                            repeat=2, start_at=start),
            L.python_worker("py-lock", t0[1], up, paths, ns, mode="lock", concurrency=4,
                            start_at=start),
        ]
        ctls = [L.corralctl(f"corralctl-{i:02d}", t0[i % 2], up, ns, key, path, start_at=start)
                for i, (key, path) in enumerate(images.items())]

        for run in workers + ctls:
            self.assertEqual(run.wait(90), 0, f"{run.name}:\n{run.stderr()}")
        elapsed = time.time() - start

        # Exactly one upstream call per key, fleet-wide, whatever the language.
        stats = fake_upstream.stats(up)
        self.assertEqual({k: stats["per_image"].get(k, 0) for k in images},
                         {k: 1 for k in images})
        self.assertEqual(stats["calls"], KEYS)

        # Every process got the same bytes for a key: the one stored value.
        with corral.Client(t0[0]) as client:
            stored = {k: client.get(ns, k).value for k in images}
        sources = collections.Counter()
        for run in workers:
            lines = run.lines()
            self.assertEqual(collections.Counter(line.key for line in lines),
                             collections.Counter({k: len(lines) // KEYS for k in images}),
                             run.name)
            for line in lines:
                self.assertEqual(line.value, stored[line.key], f"{run.name} {line.key}")
                sources[line.source] += 1
        for run in ctls:
            self.assertEqual(run.stdout(), stored[run.key], run.name)
            sources[run.ctl_source()] += 1

        # Each of the 20 computes was some process's; no one else computed.
        self.assertEqual(sources["computed"], KEYS, sources)
        self.assertGreater(sources["peer_fill"], 0, sources)  # They really raced.
        print(f"\npolyglot: {len(workers)} workers + {len(ctls)} corralctl, "
              f"{sum(sources.values())} lookups in {elapsed:.1f}s, "
              f"{stats['calls']} upstream calls; sources {dict(sources)}", file=sys.stderr)


BREAKER_NS = "plants"
BREAKER_FAILURES = 3
BREAKER_OPEN_S = 30  # Well beyond the test's run: no half-open probe sneaks in.
BREAKER_CONFIG = f"""
namespaces {{
  name: "{BREAKER_NS}"
  breaker {{ consecutive_failures: {BREAKER_FAILURES} open_duration {{ seconds: {BREAKER_OPEN_S} }} }}
}}
"""
RETRY_AFTER = re.compile(r"retry after ([0-9.]+)(ms|s)\b")


def retry_after_seconds(details: str) -> float:
    """The worker's "... retry after N s" (Python: 29.9s; C++: 29.9s or 900ms)."""
    m = RETRY_AFTER.search(details)
    if not m:
        return 0.0
    return float(m.group(1)) / (1000.0 if m.group(2) == "ms" else 1.0)


class PolyglotBreakerTest(unittest.TestCase):
    """The upstream fails, the breaker opens, and every language fails fast."""

    def setUp(self):
        config_dir = tempfile.mkdtemp(prefix="corral-breaker-config-")
        self.addCleanup(shutil.rmtree, config_dir, True)
        config = os.path.join(config_dir, "corrald.textproto")
        with open(config, "w") as f:
            f.write(BREAKER_CONFIG)
        self.fleet = corral_testing.Fleet(replicas=2, upstream=True, upstream_delay=(0.05, 0.15),
                                          corrald_args=[f"--config={config}"])
        self.addCleanup(self.fleet.stop)
        self.dir = tempfile.mkdtemp(dir=self.fleet.dir)
        self.launcher = Launcher(self.dir)
        self.addCleanup(self.launcher.stop_all)  # Runs before fleet.stop.

    def breaker_states(self) -> list:
        states = []
        for target in self.fleet.targets:
            with corral.Client(target) as client:
                states.append(client.get_breaker(BREAKER_NS).state)
        return states

    def assert_breaker_open_line(self, run, line):
        self.assertEqual(line.source, "error", f"{run.name}: {line}")
        reason, _, details = line.value.decode().partition("\t")
        self.assertEqual(reason, "breaker-open", f"{run.name}: {line}")
        self.assertGreater(retry_after_seconds(details), 0, f"{run.name}: {line}")

    def test_upstream_fails_and_breaker_opens_for_every_language(self):
        t0, up, L = self.fleet.targets, self.fleet.upstream.url, self.launcher
        self.assertEqual(self.breaker_states(), [corral.BreakerState.CLOSED] * 2)
        fake_upstream.set_failing(up, True)

        # Phase 1: workers in two languages, through both replicas, hit the
        # failing upstream until the (fleet-wide) breaker opens.
        opened_after = None
        for round_ in range(4):
            images = list(make_images(self.dir, 4, f"failing-{round_}").values())
            runs = [L.cc_worker(f"fail-cc-{round_}", t0[0], up, images, BREAKER_NS, threads=2),
                    L.python_worker(f"fail-py-{round_}", t0[1], up, images, BREAKER_NS,
                                    mode="sync", concurrency=2)]
            for run in runs:
                self.assertEqual(run.wait(30), 1, f"{run.name}:\n{run.stderr()}")
                for line in run.lines():  # Nobody got a value from a failing upstream.
                    self.assertEqual(line.source, "error", f"{run.name}: {line}")
                    self.assertIn(line.value.split(b"\t")[0],
                                  (b"upstream-failed", b"peer-compute-failed", b"breaker-open"),
                                  f"{run.name}: {line}")
            if self.breaker_states() == [corral.BreakerState.OPEN] * 2:
                opened_after = round_ + 1
                break
        self.assertIsNotNone(opened_after, f"breaker never opened: {self.breaker_states()}")
        before = fake_upstream.stats(up)
        self.assertGreaterEqual(before["failures"], BREAKER_FAILURES, before)
        self.assertEqual(before["failures"], before["calls"], before)

        # Phase 2: cold keys, every language, both replicas: breaker-open,
        # fast, and the upstream is never called.
        phase2 = time.monotonic()
        cold = make_images(self.dir, 3, "cold")
        cold_paths = list(cold.values())
        workers = [
            L.cc_worker("open-cc-0", t0[0], up, cold_paths, BREAKER_NS, threads=3),
            L.cc_worker("open-cc-1", t0[1], up, cold_paths, BREAKER_NS, threads=3),
            L.python_worker("open-py-sync-0", t0[0], up, cold_paths, BREAKER_NS, mode="sync",
                            concurrency=3),
            L.python_worker("open-py-sync-1", t0[1], up, cold_paths, BREAKER_NS, mode="sync",
                            concurrency=3),
            L.python_worker("open-py-async-0", t0[0], up, cold_paths, BREAKER_NS, mode="async",
                            concurrency=3),
            L.python_worker("open-py-async-1", t0[1], up, cold_paths, BREAKER_NS, mode="async",
                            concurrency=3),
        ]
        ctls = [L.corralctl(f"open-corralctl-{i}", t0[i % 2], up, BREAKER_NS, key, path)
                for i, (key, path) in enumerate(cold.items())]

        # In this process too: the exception itself, and compute never runs.
        computes = []

        def compute():
            computes.append(1)
            return b"must not be called"

        async def compute_async():
            computes.append(1)
            return b"must not be called"

        async def via_aio(target, key):
            async with corral.aio.AsyncClient(target) as client:
                await client.get_or_compute(BREAKER_NS, key, compute_async)

        for target in t0:
            with corral.Client(target) as client, self.assertRaises(corral.BreakerOpen) as cm:
                started = time.monotonic()
                try:
                    client.get_or_compute(BREAKER_NS, unique_key("cold-sync"), compute)
                finally:
                    # Fast: no wait, no retries (generous bound for loaded CI).
                    self.assertLess(time.monotonic() - started, 2.0)
            self.assertEqual(cm.exception.reason, "breaker-open")
            self.assertGreater(cm.exception.retry_after or 0, 0)
            self.assertLessEqual(cm.exception.retry_after, BREAKER_OPEN_S)
            with self.assertRaises(corral.BreakerOpen) as cm:
                asyncio.run(via_aio(target, unique_key("cold-async")))
            self.assertGreater(cm.exception.retry_after or 0, 0)
        self.assertEqual(computes, [])

        for run in workers:
            self.assertEqual(run.wait(20), 1, f"{run.name}:\n{run.stderr()}")
            lines = run.lines()
            self.assertEqual(sorted(line.key for line in lines), sorted(cold), run.name)
            for line in lines:
                self.assert_breaker_open_line(run, line)
        for run in ctls:
            # 3: the RPC failed (4 would mean --exec ran and failed).
            self.assertEqual(run.wait(20), 3, f"{run.name}:\n{run.stderr()}")
            self.assertIn("corral-reason: breaker-open", run.stderr(), run.name)
            self.assertGreater(retry_after_seconds(run.stderr()), 0, run.stderr())
            self.assertEqual(run.stdout(), b"", run.name)
        phase2_elapsed = time.monotonic() - phase2

        # Not one upstream call since the breaker opened.
        after = fake_upstream.stats(up)
        self.assertEqual(after["calls"], before["calls"], (before, after))
        self.assertEqual({k: after["per_image"].get(k, 0) for k in cold}, {k: 0 for k in cold})

        # Both replicas (and corralctl through each) report it OPEN.
        self.assertEqual(self.breaker_states(), [corral.BreakerState.OPEN] * 2)
        for target in t0:
            out = subprocess.run([CORRALCTL, "--target", target, "breaker", BREAKER_NS],
                                 capture_output=True, text=True, timeout=10)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn("state=OPEN", out.stdout)
        print(f"\npolyglot breaker: opened after {opened_after} round(s), "
              f"{before['calls']} upstream calls (all failed); then {len(workers)} workers + "
              f"{len(ctls)} corralctl + 4 in-process calls failed fast with breaker-open in "
              f"{phase2_elapsed:.1f}s, 0 upstream calls", file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
