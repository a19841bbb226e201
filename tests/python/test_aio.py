"""corral.aio.AsyncClient against real corrald processes sharing a real
redis-server: asyncio tasks race for real."""

import asyncio
import time
import unittest

import corral_testing
from corral_testing import unique_key
import corral
import corral.aio

NS = "pytest-aio"


class AsyncClientTest(unittest.IsolatedAsyncioTestCase):
    @classmethod
    def setUpClass(cls):
        cls.fleet = corral_testing.Fleet(replicas=2)
        cls.addClassCleanup(cls.fleet.stop)

    async def asyncSetUp(self):
        # grpc.aio channels belong to the loop they were made on: one per test.
        self.clients = [corral.aio.AsyncClient(t, timeout=20) for t in self.fleet.targets]
        self.client = self.clients[0]

    async def asyncTearDown(self):
        for c in self.clients:
            await c.close()

    async def test_set_get_invalidate(self):
        key = unique_key()
        self.assertIsNone(await self.client.get(NS, key))
        self.assertTrue(await self.client.set(NS, key, "Quercus robur"))
        self.assertEqual((await self.clients[1].get(NS, key)).value, b"Quercus robur")
        self.assertTrue(await self.client.invalidate(NS, key))

    async def test_stampede_of_tasks_across_two_replicas_computes_once(self):
        key = unique_key()
        computes = []

        async def compute():
            computes.append(1)
            await asyncio.sleep(0.3)
            return b"Aloe vera"

        results = await asyncio.gather(*(
            self.clients[i % 2].get_or_compute_result(NS, key, compute) for i in range(30)))
        self.assertEqual(len(computes), 1)
        self.assertEqual({r.value for r in results}, {b"Aloe vera"})
        sources = [r.source for r in results]
        self.assertEqual(sources.count(corral.Source.COMPUTED), 1)
        self.assertGreater(sources.count(corral.Source.PEER_FILL), 0, sources)

    async def test_plain_function_compute_is_accepted(self):
        key = unique_key()
        self.assertEqual(await self.client.get_or_compute(NS, key, lambda: "sync compute"),
                         b"sync compute")

    async def test_compute_exception_is_reraised_and_shared_with_waiters(self):
        ns, key = unique_key("ns"), unique_key()
        started, fail_now = asyncio.Event(), asyncio.Event()

        async def failing():
            started.set()
            await fail_now.wait()
            raise ConnectionError("plant.id unreachable")

        leader = asyncio.create_task(self.client.get_or_compute(ns, key, failing))
        await started.wait()
        # One client per waiter: tasks sharing a client would share its call
        # (in-process single flight) instead of waiting at the server.
        own = [corral.aio.AsyncClient(self.fleet.targets[i % 2], timeout=20) for i in range(5)]
        self.clients.extend(own)
        waiters = [asyncio.create_task(own[i].get_or_compute(ns, key, lambda: b"no"))
                   for i in range(5)]
        try:
            await asyncio.to_thread(corral_testing.wait_for_waiters, self.fleet, ns, 5)
        finally:
            fail_now.set()
        with self.assertRaises(ConnectionError):
            await leader
        for w in waiters:
            with self.assertRaises(corral.PeerComputeFailed):
                await w

    async def test_cancelled_leaseholder_abandons_at_once(self):
        key = unique_key()
        started = asyncio.Event()

        async def slow():
            started.set()
            await asyncio.sleep(60)
            return b"never"

        task = asyncio.create_task(self.client.get_or_compute(NS, key, slow))
        await started.wait()
        task.cancel()
        with self.assertRaises(asyncio.CancelledError):
            await task
        t0 = time.monotonic()
        r = await self.clients[1].get_or_compute_result(NS, key, lambda: b"second", wait_timeout=10)
        self.assertTrue(r.computed)
        self.assertLess(time.monotonic() - t0, 2.0)

    async def test_lock_context_renews_and_excludes(self):
        key = unique_key()
        async with self.client.lock(NS, key, ttl=0.6, wait_timeout=0) as lock:
            await asyncio.sleep(1.5)
            self.assertFalse(lock.lost)
            with self.assertRaises(corral.LockNotAcquired):
                await self.clients[1].lock(NS, key, ttl=5, wait_timeout=0)
            self.assertTrue(await self.client.set(NS, key, b"fenced", lock_token=lock.token))
        self.assertTrue(lock.released)
        again = await self.clients[1].lock(NS, key, ttl=5, wait_timeout=0)
        self.assertGreater(again.fencing_token, lock.fencing_token)
        self.assertTrue(await again.release(corral.Outcome.SUCCESS))
        with self.assertRaises(RuntimeError):
            await again.release()

    async def test_lost_lock_is_reported(self):
        key = unique_key()
        lost = asyncio.Event()
        lock = await self.client.lock(NS, key, ttl=0.3, renew_every=1.0, on_lost=lost.set)

        # Once it expires (nobody renews it before 1 s), another caller takes it.
        async def steal():
            attempt = await self.clients[1].acquire_lock(NS, key, ttl=10, wait_timeout=0)
            return attempt if attempt.acquired else None

        thief = await corral_testing.poll_until_async(steal, what="the lock's expiry")
        self.assertTrue(thief.acquired)
        await asyncio.wait_for(lost.wait(), 5)
        self.assertTrue(lock.lost)
        self.assertFalse(await lock.release())
        await self.clients[1].release_lock(NS, key, thief.token)


if __name__ == "__main__":
    unittest.main()
