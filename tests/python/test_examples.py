"""The example plant workers (client/python/examples, client/examples) and
the fake upstream, against a real corrald and redis-server."""

import tempfile
import time
import unittest

import corral_testing
from corral_testing import unique_key
import corral
import fake_upstream
from worker_runs import Launcher, make_images

FAILURE_REASONS = (
    "upstream-failed",       # this worker called the upstream and it failed
    "peer-compute-failed",   # it waited for a worker whose upstream call failed
    "breaker-open",          # enough failures opened the namespace's breaker
)


class PlantWorkerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fleet = corral_testing.Fleet(replicas=1, upstream=True, upstream_delay=(0.2, 0.3))
        cls.addClassCleanup(cls.fleet.stop)
        cls.target = cls.fleet.targets[0]
        cls.upstream = cls.fleet.upstream.url

    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=self.fleet.dir)
        self.launcher = Launcher(self.dir)
        self.addCleanup(self.launcher.stop_all)
        self.ns = unique_key("plants")  # Breaker state stays with its test.
        fake_upstream.set_failing(self.upstream, False)

    def upstream_calls(self) -> dict:
        per_image = fake_upstream.stats(self.upstream)["per_image"]
        return {k: per_image.get(k, 0) for k in self.images}

    def test_python_worker_modes_call_the_upstream_once_per_image(self):
        self.images = make_images(self.dir, 3, "modes")
        start = time.time() + 1.0
        runs = [self.launcher.python_worker(f"py-{mode}", self.target, self.upstream,
                                            list(self.images.values()), self.ns, mode=mode,
                                            repeat=3, start_at=start)
                for mode in ("sync", "async", "lock")]
        for run in runs:
            self.assertEqual(run.wait(60), 0, run.stderr())
        self.assertEqual(self.upstream_calls(), {k: 1 for k in self.images})
        values = {}
        for run in runs:
            lines = run.lines()
            self.assertEqual(len(lines), 9, run.name)
            for line in lines:
                values.setdefault(line.key, set()).add(line.value)
        self.assertEqual(set(values), set(self.images))
        for key, vals in values.items():
            self.assertEqual(len(vals), 1, f"{key}: {vals}")

    def test_upstream_failure_is_reported_by_every_worker(self):
        self.images = make_images(self.dir, 2, "failing")
        fake_upstream.set_failing(self.upstream, True)
        start = time.time() + 1.0
        paths = list(self.images.values())
        runs = [self.launcher.python_worker(f"py-{mode}", self.target, self.upstream, paths,
                                            self.ns, mode=mode, repeat=3, start_at=start)
                for mode in ("sync", "async", "lock")]
        runs.append(self.launcher.cc_worker("cc", self.target, self.upstream, paths, self.ns,
                                            repeat=3, start_at=start))
        reasons = set()
        for run in runs:
            self.assertEqual(run.wait(60), 1, run.stderr())
            lines = run.lines()
            self.assertEqual(len(lines), 6, run.name)
            for line in lines:
                self.assertEqual(line.source, "error", line)
                reason = line.value.split(b"\t")[0].decode()
                self.assertIn(reason, FAILURE_REASONS, line)
                reasons.add(reason)
        self.assertIn("upstream-failed", reasons)
        self.assertGreater(sum(self.upstream_calls().values()), 0)
        with corral.Client(self.target) as client:  # No failure was cached.
            for key in self.images:
                self.assertIsNone(client.get(self.ns, key))


if __name__ == "__main__":
    unittest.main()
