"""REFRESH leases from the Python clients (blocking and asyncio) against real
corrald processes on a real redis-server: stale-while-revalidate hands one
caller the refresh, a failed refresh serves the value being refreshed, and
a remembered upstream failure is answered without a compute."""

import asyncio
import os
import shutil
import tempfile
import threading
import time
import unittest

import corral_testing
from corral_testing import unique_key
import corral
import corral.aio

CONFIG = """
namespaces { name: "swr" ttl { seconds: 1 } stale_window { seconds: 60 } early_refresh_beta: 0 }
namespaces { name: "negative" negative_ttl { seconds: 1 } early_refresh_beta: 0 }
"""


class FreshnessTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.config_dir = tempfile.mkdtemp(prefix="corral-pyfresh-")
        cls.addClassCleanup(shutil.rmtree, cls.config_dir, True)
        path = os.path.join(cls.config_dir, "corral.textproto")
        with open(path, "w") as f:
            f.write(CONFIG)
        cls.fleet = corral_testing.Fleet(replicas=2, corrald_args=[f"--config={path}"])
        cls.addClassCleanup(cls.fleet.stop)
        cls.clients = [corral.Client(t, timeout=20) for t in cls.fleet.targets]
        for c in cls.clients:
            cls.addClassCleanup(c.close)

    def expired_key(self, value: bytes) -> str:
        key = unique_key("swr")
        first = self.clients[0].get_or_compute_result("swr", key, lambda: value)
        self.assertTrue(first.computed)
        # Past the 1 s TTL (Redis' time), inside the stale window: a Get misses.
        corral_testing.poll_until(lambda: self.clients[1].get("swr", key) is None,
                                  what="the value's expiry")
        return key

    def test_stale_while_revalidate_one_refresher_others_get_stale_at_once(self):
        key = self.expired_key(b"v1")
        refreshing, release = threading.Event(), threading.Event()
        results = {}

        def refresh():
            def compute():
                refreshing.set()
                release.wait(10)
                return b"v2"
            results["refresher"] = self.clients[0].get_or_compute_result(
                "swr", key, compute, allow_stale=True)

        t = threading.Thread(target=refresh)
        t.start()
        self.assertTrue(refreshing.wait(10))
        for c in self.clients:  # Both replicas, during the refresh.
            r = c.get_or_compute_result("swr", key, lambda: self.fail("second compute"),
                                        allow_stale=True)
            self.assertEqual((r.value, r.source, r.stale, r.computed),
                             (b"v1", corral.Source.STALE, True, False))
        release.set()
        t.join(10)
        r = results["refresher"]
        self.assertEqual((r.value, r.computed, r.lease_mode, r.stored),
                         (b"v2", True, corral.LeaseMode.REFRESH, True))
        self.assertEqual(self.clients[1].get("swr", key).value, b"v2")

    def test_failed_refresh_returns_the_current_value_and_reports_the_failure(self):
        key = self.expired_key(b"old")

        def broken():
            raise ConnectionError("upstream down")
        r = self.clients[1].get_or_compute_result("swr", key, broken, allow_stale=True)
        self.assertEqual((r.value, r.computed, r.lease_mode), (b"old", True, corral.LeaseMode.REFRESH))
        self.assertIsInstance(r.refresh_error, ConnectionError)
        # The old value stays; a later stale caller refreshes it. corrald
        # answers the abandon before Redis has released the lock, so a caller
        # right behind it may still find the lock held: it gets the old value.
        deadline = time.monotonic() + 5
        while True:
            again = self.clients[0].get_or_compute_result("swr", key, lambda: b"new",
                                                          allow_stale=True)
            if again.lease_mode == corral.LeaseMode.REFRESH or time.monotonic() > deadline:
                break
            self.assertEqual((again.value, again.stale), (b"old", True))
            time.sleep(0.02)
        self.assertEqual((again.value, again.lease_mode), (b"new", corral.LeaseMode.REFRESH))

    def test_asyncio_client_refreshes_too(self):
        key = self.expired_key(b"a1")

        async def main():
            async with corral.aio.AsyncClient(self.fleet.targets[1], timeout=20) as client:
                async def compute():
                    return b"a2"
                return await client.get_or_compute_result("swr", key, compute, allow_stale=True)
        r = asyncio.run(main())
        self.assertEqual((r.value, r.lease_mode, r.stored), (b"a2", corral.LeaseMode.REFRESH, True))

    def test_remembered_failure_is_raised_without_a_compute(self):
        key = unique_key("neg")
        calls = []

        def failing():
            calls.append(1)
            raise ConnectionError("503")
        with self.assertRaises(ConnectionError):
            self.clients[0].get_or_compute("negative", key, failing)
        for c in self.clients:
            with self.assertRaises(corral.PeerComputeFailed) as cm:
                c.get_or_compute("negative", key, failing)
            self.assertEqual(cm.exception.reason, "peer-compute-failed")
        self.assertEqual(len(calls), 1)

        # Once negative_ttl (1 s of Redis' time) is over, the next caller
        # computes; until then a try is answered with the failure, no compute.
        def computes_again():
            try:
                return self.clients[1].get_or_compute("negative", key, lambda: b"ok")
            except corral.PeerComputeFailed:
                return None
        self.assertEqual(corral_testing.poll_until(computes_again,
                                                   what="the failure's expiry"), b"ok")
        self.assertEqual(len(calls), 1)


if __name__ == "__main__":
    unittest.main()
