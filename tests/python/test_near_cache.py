"""The Python clients' near cache against real corrald processes on both
stores (two replicas on one real redis-server; one corrald on the embedded
store): hits from memory, coherence across replicas, TTL, FLUSHALL and a
Redis restart, losing the stream, the memory bound, the opt-outs and early
refresh."""

import asyncio
import os
import shutil
import tempfile
import time
import unittest

import corral_testing
from corral_testing import poll, rpcs, unique_key
import corral
import corral.aio
from corral._nearcache import NearCacheLimits

NS = "near"
CONFIG = """
namespaces { name: "near" }
namespaces { name: "far" near_cache: false }
namespaces { name: "early" early_refresh_beta: 1 }
"""

# The bound for tests: a write through another replica is seen here within 1 s.
COHERENCE_S = 1.0


def write_config(test_cls) -> str:
    d = tempfile.mkdtemp(prefix="corral-pynear-")
    test_cls.addClassCleanup(shutil.rmtree, d, True)
    path = os.path.join(d, "corral.textproto")
    with open(path, "w") as f:
        f.write(CONFIG)
    return path


class NearCacheCases:
    """Cases for both stores; ``fleet`` and ``targets`` come from the subclass."""

    replicas = 1

    def client(self, i: int = 0, **kwargs) -> corral.Client:
        c = corral.Client(self.fleet.targets[i % len(self.fleet.targets)], timeout=20, **kwargs)
        self.addCleanup(c.close)
        return c

    def warm(self, c: corral.Client, ns: str, key: str, value=b"v1"):
        """Reads ``key`` through ``c`` until it is served from the near cache."""
        deadline = time.monotonic() + 10
        while True:
            r = c.get_or_compute_result(ns, key, lambda: value)
            if r.near_cache:
                return r
            if time.monotonic() > deadline:
                raise AssertionError(f"{key} never came from the near cache (last {r})")
            time.sleep(0.01)  # Until the stream has started (polling a condition).

    def test_hot_hits_come_from_memory_without_an_rpc(self):
        c, key = self.client(), unique_key()
        self.warm(c, NS, key, b"Monstera")
        before = rpcs(self.fleet, "Get") + rpcs(self.fleet, "GetOrCompute")
        for _ in range(100):
            self.assertEqual(c.get_or_compute(NS, key, lambda: self.fail("computed")), b"Monstera")
            self.assertEqual(c.get(NS, key).value, b"Monstera")
        self.assertEqual(rpcs(self.fleet, "Get") + rpcs(self.fleet, "GetOrCompute"), before)
        hit = c.get(NS, key)
        self.assertTrue(hit.near_cache)
        self.assertGreater(hit.ttl_remaining, 0)

    def test_a_set_or_invalidate_through_another_client_reaches_the_near_cache(self):
        reader, writer = self.client(0), self.client(1)  # Other replica when there are two.
        key = unique_key()
        self.warm(reader, NS, key, b"v1")
        writer.set(NS, key, b"v2", ttl=60)
        t0 = time.monotonic()
        poll(lambda: reader.get(NS, key).value == b"v2", COHERENCE_S, "the write seen")
        self.assertLess(time.monotonic() - t0, COHERENCE_S)
        self.warm(reader, NS, key, b"unused")
        writer.invalidate(NS, key)
        poll(lambda: reader.get(NS, key) is None, COHERENCE_S, "the invalidation seen")

    def test_own_writes_are_seen_at_once(self):
        c, key = self.client(), unique_key()
        self.warm(c, NS, key, b"v1")
        c.set(NS, key, b"v2")
        self.assertEqual(c.get(NS, key).value, b"v2")
        c.invalidate(NS, key)
        self.assertIsNone(c.get(NS, key))

    def test_never_served_past_the_ttl(self):
        c, key = self.client(), unique_key()
        c.set(NS, key, b"short", ttl=1.0)
        set_at = time.monotonic()
        self.warm(c, NS, key, b"unused")
        while time.monotonic() < set_at + 1.0:  # Every hit until the TTL ends is the value.
            got = c.get(NS, key)
            if got is None:
                break
            self.assertEqual(got.value, b"short")
            time.sleep(0.02)
        poll(lambda: time.monotonic() >= set_at + 1.0, 5, "the TTL to pass")
        self.assertIsNone(c.get(NS, key))

    def test_memory_is_bounded_by_entries_and_bytes(self):
        c = self.client(near_cache=NearCacheLimits(max_entries=5, max_bytes=1 << 20))
        keys = [unique_key(f"b{i}") for i in range(12)]
        for k in keys:
            c.set(NS, k, b"x" * 100)
        self.warm(c, NS, keys[0])
        for k in keys:
            c.get(NS, k)
            c.get(NS, k)
        self.assertLessEqual(len(c.near_cache), 5)
        small = self.client(near_cache=NearCacheLimits(max_entries=100, max_bytes=1000))
        self.warm(small, NS, keys[0])
        for k in keys:
            small.get(NS, k)
            small.get(NS, k)
        self.assertLessEqual(small.near_cache.bytes, 1000)

    def test_opt_outs_call_client_and_namespace(self):
        c, key = self.client(), unique_key()
        self.warm(c, NS, key, b"v")
        before = rpcs(self.fleet, "Get")
        self.assertFalse(c.get(NS, key, near_cache=False).near_cache)
        self.assertFalse(c.get_or_compute_result(NS, key, lambda: b"v", near_cache=False).near_cache)
        self.assertEqual(rpcs(self.fleet, "Get") - before, 2)
        off = self.client(near_cache=False)
        self.assertIsNone(off.near_cache)
        for _ in range(3):
            self.assertFalse(off.get_or_compute_result(NS, key, lambda: b"v").near_cache)
        # The namespace forbids it: nothing is kept.
        far = unique_key()
        c.set("far", far, b"far")
        for _ in range(5):
            self.assertFalse(c.get("far", far).near_cache)
        self.assertFalse(any(k[0] == "far" for k in c.near_cache._entries))

    def test_early_refresh_window_goes_to_the_server_and_one_caller_refreshes(self):
        c, key = self.client(), unique_key()

        def slow():
            time.sleep(0.2)  # compute_time: the window is about 0.2 s * 1 * ln(1000) = 1.4 s.
            return b"v1"

        first = c.get_or_compute_result("early", key, slow, ttl=2.0)
        self.assertTrue(first.computed)
        expires = time.monotonic() + 2.0
        refreshed = None
        served_near_late = False
        while time.monotonic() < expires + 1.0 and refreshed is None:
            r = c.get_or_compute_result("early", key, lambda: b"v2", ttl=30)
            if r.near_cache and time.monotonic() > expires - 1.3:
                served_near_late = True  # Inside the window, from memory: must not happen.
            if r.computed:
                refreshed = r
            time.sleep(0.01)
        self.assertFalse(served_near_late)
        self.assertIsNotNone(refreshed, "no caller was handed the refresh")
        self.assertEqual(refreshed.lease_mode, corral.LeaseMode.REFRESH)

    def test_losing_the_stream_empties_the_near_cache(self):
        # A corrald of its own, stopped under the client.
        own = corral_testing.Corrald(self.fleet.dir, self.fleet.redis.uri if self.fleet.redis else None,
                                     list(self.corrald_args))
        try:
            c = corral.Client(own.target, timeout=5)
            self.addCleanup(c.close)
            key = unique_key()
            c.set(NS, key, b"v")
            self.warm(c, NS, key)
            self.assertGreater(len(c.near_cache), 0)
        finally:
            own.stop()
        poll(lambda: len(c.near_cache) == 0 and c.near_cache.session == b"", 10,
             "the near cache to empty")
        with self.assertRaises(corral.Unavailable):
            c.get(NS, key)


class RedisNearCacheTest(NearCacheCases, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.corrald_args = [f"--config={write_config(cls)}"]
        cls.fleet = corral_testing.Fleet(replicas=2, corrald_args=cls.corrald_args)
        cls.addClassCleanup(cls.fleet.stop)

    def test_flushall_empties_every_near_cache(self):
        c, key = self.client(), unique_key()
        c.set(NS, key, b"v")
        self.warm(c, NS, key)
        import redis
        redis.Redis(port=self.fleet.redis.port).flushall()
        poll(lambda: c.get(NS, key) is None, COHERENCE_S, "FLUSHALL seen")


class RedisRestartTest(unittest.TestCase):
    """A Redis restart (no persistence: everything is gone) empties the near cache."""

    def test_redis_restart_empties_the_near_cache(self):
        args = [f"--config={write_config(self.__class__)}"]
        fleet = corral_testing.Fleet(replicas=1, corrald_args=args)
        self.addCleanup(fleet.stop)
        c = corral.Client(fleet.targets[0], timeout=5)
        self.addCleanup(c.close)
        key = unique_key()
        c.set(NS, key, b"v")
        NearCacheCases.warm(self, c, NS, key)
        port = fleet.redis.port
        fleet.redis.stop()
        poll(lambda: len(c.near_cache) == 0, 10, "the near cache to empty when Redis went away")
        fleet.redis = corral_testing.RedisServer(fleet.dir, port=port)

        def gone():
            try:
                return c.get(NS, key) is None
            except corral.CorralError:
                return False  # Still reconnecting.
        poll(gone, 20, "the value gone after the restart")


class EmbeddedNearCacheTest(NearCacheCases, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.corrald_args = [f"--config={write_config(cls)}"]
        cls.fleet = corral_testing.Fleet(replicas=1, redis=False, corrald_args=cls.corrald_args)
        cls.addClassCleanup(cls.fleet.stop)


class RoutingNearCacheTest(unittest.TestCase):
    """A client whose channel spreads its calls over two corralds
    (round_robin): the near cache's stream and its Gets share a channel
    pinned to one replica, so one Get per key is enough to near-cache it."""

    @classmethod
    def setUpClass(cls):
        cls.fleet = corral_testing.Fleet(replicas=2, corrald_args=[f"--config={write_config(cls)}"])
        cls.addClassCleanup(cls.fleet.stop)

    def target(self) -> str:
        return "ipv4:" + ",".join(self.fleet.targets)

    def test_blocking_client_gets_reach_the_streams_replica(self):
        c = corral.Client(self.target(), timeout=20, load_balancing="round_robin")
        self.addCleanup(c.close)
        keys = [unique_key() for _ in range(10)]
        for key in keys:
            c.set(NS, key, b"v")
        poll(lambda: c.get(NS, keys[0]) is not None and c.get(NS, keys[0]).near_cache,
             10, "the first near-cache hit (stream started, tracking on)")
        for key in keys[1:]:
            self.assertFalse(c.get(NS, key).near_cache, key)
            self.assertTrue(c.get(NS, key).near_cache, key)

    def test_async_client_gets_reach_the_streams_replica(self):
        async def run():
            c = corral.aio.AsyncClient(self.target(), timeout=20, load_balancing="round_robin")
            try:
                keys = [unique_key() for _ in range(10)]
                for key in keys:
                    await c.set(NS, key, b"v")
                deadline = time.monotonic() + 10
                while not (await c.get(NS, keys[0])).near_cache:
                    self.assertLess(time.monotonic(), deadline, "never from the near cache")
                    await asyncio.sleep(0.01)
                for key in keys[1:]:
                    self.assertFalse((await c.get(NS, key)).near_cache, key)
                    self.assertTrue((await c.get(NS, key)).near_cache, key)
            finally:
                await c.close()
        asyncio.run(run())


class AsyncNearCacheTest(unittest.IsolatedAsyncioTestCase):
    @classmethod
    def setUpClass(cls):
        cls.fleet = corral_testing.Fleet(replicas=2, corrald_args=[f"--config={write_config(cls)}"])
        cls.addClassCleanup(cls.fleet.stop)

    async def asyncSetUp(self):
        self.clients = [corral.aio.AsyncClient(t, timeout=20) for t in self.fleet.targets]

    async def asyncTearDown(self):
        for c in self.clients:
            await c.close()

    async def warm(self, c, key):
        deadline = time.monotonic() + 10
        while not (await c.get_or_compute_result(NS, key, lambda: b"v1")).near_cache:
            self.assertLess(time.monotonic(), deadline, "never from the near cache")
            await asyncio.sleep(0.01)

    async def test_hits_from_memory_and_coherence_across_replicas(self):
        reader, writer = self.clients
        key = unique_key()
        await self.warm(reader, key)
        before = rpcs(self.fleet, "Get")
        for _ in range(50):
            self.assertEqual(await reader.get_or_compute(NS, key, lambda: b"no"), b"v1")
        self.assertEqual(rpcs(self.fleet, "Get"), before)
        await writer.set(NS, key, b"v2")
        deadline = time.monotonic() + COHERENCE_S
        while (await reader.get(NS, key)).value != b"v2":
            self.assertLess(time.monotonic(), deadline, "the write through the other replica")
            await asyncio.sleep(0.005)
        self.assertFalse((await reader.get(NS, key, near_cache=False)).near_cache)


if __name__ == "__main__":
    unittest.main()
