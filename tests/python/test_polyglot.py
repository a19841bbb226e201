"""Polyglot end-to-end: workers in several languages share one stampede guard.

C++ workers (client/examples/plant_worker), Python workers (blocking,
asyncio, and the seed-shaped lock mode) and `corralctl get-or-compute
--exec` race on the same 20 cold keys through 2 corrald replicas sharing one
redis-server, all calling one slow fake upstream. Expected: exactly 20
upstream calls (one per key, fleet-wide), and every process gets the same
bytes for a key.

Not here yet: "the upstream fails and the breaker opens for workers in every
language" waits for corrald's circuit breaker to be finished.
"""

import collections
import sys
import tempfile
import time
import unittest

import corral_testing
from corral_testing import unique_key
import corral
import fake_upstream
from worker_runs import Launcher, make_images

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


if __name__ == "__main__":
    unittest.main()
