"""In-process single flight: concurrent get_or_compute calls for one key
through one client (blocking or asyncio) share one server call, against a
real corrald on a real redis-server."""

import asyncio
import threading
import time
import unittest

import corral_testing
from corral_testing import poll, rpcs, unique_key
import corral
import corral.aio

NS = "pytest-flight"


class UpstreamDown(Exception):
    pass


class Interrupted(BaseException):
    """Stands for KeyboardInterrupt on a worker thread."""


def _flight(client, key):
    return client._flights.get((NS, key.encode(), False, None))


class SingleFlightTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fleet = corral_testing.Fleet(replicas=1)
        cls.addClassCleanup(cls.fleet.stop)
        cls.target = cls.fleet.targets[0]

    def client(self, **kwargs) -> corral.Client:
        c = corral.Client(self.target, timeout=kwargs.pop("timeout", 30), **kwargs)
        self.addCleanup(c.close)
        return c

    def run_threads(self, n, target):
        threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertFalse(any(t.is_alive() for t in threads))

    def test_thousand_threads_on_one_cold_key_compute_once_over_one_call(self):
        client, key, n = self.client(), unique_key(), 1000
        computes, results, errors = [], [None] * n, []
        before = rpcs(self.fleet, "GetOrCompute")
        start = threading.Barrier(n)

        def compute():
            computes.append(1)
            time.sleep(0.5)
            return b"Monstera deliciosa"

        def worker(i):
            start.wait()
            try:
                results[i] = client.get_or_compute_result(NS, key, compute)
            except BaseException as e:  # noqa: B902 - asserted below
                errors.append(e)

        self.run_threads(n, worker)
        self.assertEqual(errors, [])
        self.assertEqual(len(computes), 1)
        self.assertEqual({r.value for r in results}, {b"Monstera deliciosa"})
        self.assertEqual(sum(r.computed for r in results), 1)
        self.assertLessEqual(rpcs(self.fleet, "GetOrCompute") - before, 10)

    def test_compute_failure_reaches_every_caller(self):
        client, key, n = self.client(), unique_key(), 20
        computing = threading.Event()
        computes, outcomes = [], []

        def compute():
            computes.append(1)
            computing.set()
            poll(lambda: _flight(client, key).joiners == n - 1, what="joiners")
            raise UpstreamDown("503 from plant.id")

        def worker(i):
            if i:
                computing.wait(30)
            try:
                outcomes.append(client.get_or_compute(NS, key, compute))
            except BaseException as e:  # noqa: B902 - asserted below
                outcomes.append(e)

        self.run_threads(n, worker)
        self.assertEqual(len(computes), 1)
        self.assertEqual(len(outcomes), n)
        for e in outcomes:
            self.assertIsInstance(e, UpstreamDown)
        # The key is free: the next call computes.
        self.assertEqual(client.get_or_compute(NS, key, lambda: b"recovered"), b"recovered")

    def test_interrupted_leader_does_not_fail_the_joiners(self):
        client, key, n = self.client(), unique_key(), 8
        computing = threading.Event()
        computes, outcomes = [], {}

        def interrupted_compute():
            computes.append("leader")
            computing.set()
            poll(lambda: _flight(client, key).joiners == n - 1, what="joiners")
            raise Interrupted()

        def joiner_compute():
            computes.append("joiner")
            return b"Ficus benjamina"

        def worker(i):
            if i:
                computing.wait(30)
            try:
                outcomes[i] = client.get_or_compute(
                    NS, key, joiner_compute if i else interrupted_compute)
            except BaseException as e:  # noqa: B902 - asserted below
                outcomes[i] = e

        self.run_threads(n, worker)
        self.assertIsInstance(outcomes[0], Interrupted)
        self.assertEqual([outcomes[i] for i in range(1, n)], [b"Ficus benjamina"] * (n - 1))
        self.assertEqual(computes, ["leader", "joiner"])

    def test_a_joiner_that_times_out_leaves_the_others_alone(self):
        client, key = self.client(), unique_key()
        computing, impatient_left = threading.Event(), threading.Event()
        outcomes = {}

        def compute():
            computing.set()
            impatient_left.wait(30)
            return b"Aloe vera"

        def leader():
            outcomes["leader"] = client.get_or_compute_result(NS, key, compute)

        def patient():
            computing.wait(30)
            outcomes["patient"] = client.get_or_compute_result(NS, key, compute)

        threads = [threading.Thread(target=leader), threading.Thread(target=patient)]
        for t in threads:
            t.start()
        computing.wait(30)
        try:
            with self.assertRaises(corral.DeadlineExceeded):
                client.get_or_compute(NS, key, compute, timeout=0.2)
        finally:
            impatient_left.set()
        for t in threads:
            t.join(30)
        self.assertTrue(outcomes["leader"].computed)
        self.assertEqual(outcomes["patient"].value, b"Aloe vera")
        self.assertTrue(outcomes["patient"].shared)
        self.assertEqual(outcomes["patient"].source, corral.Source.PEER_FILL)

    def test_allow_stale_calls_do_not_share_with_plain_ones(self):
        client, key = self.client(), unique_key()
        computing, release = threading.Event(), threading.Event()

        def slow():
            computing.set()
            release.wait(30)
            return b"plain"

        t = threading.Thread(target=lambda: client.get_or_compute(NS, key, slow))
        t.start()
        computing.wait(30)
        self.assertEqual(len(client._flights), 1)
        stale = threading.Thread(
            target=lambda: client.get_or_compute(NS, key, slow, allow_stale=True))
        stale.start()
        poll(lambda: len(client._flights) == 2, what="a second flight")
        release.set()
        t.join(30)
        stale.join(30)


class AsyncSingleFlightTest(unittest.IsolatedAsyncioTestCase):
    @classmethod
    def setUpClass(cls):
        cls.fleet = corral_testing.Fleet(replicas=1)
        cls.addClassCleanup(cls.fleet.stop)
        cls.target = cls.fleet.targets[0]

    async def asyncSetUp(self):
        self.client = corral.aio.AsyncClient(self.target, timeout=60)

    async def asyncTearDown(self):
        await self.client.close()

    async def until(self, condition, what: str, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while not condition():
            self.assertLess(time.monotonic(), deadline, what)
            await asyncio.sleep(0.005)

    async def test_ten_thousand_tasks_on_one_cold_key_compute_once(self):
        key, n, computes = unique_key(), 10000, []
        before = rpcs(self.fleet, "GetOrCompute")

        async def compute():
            computes.append(1)
            await asyncio.sleep(0.5)
            return b"Quercus robur"

        results = await asyncio.gather(*(
            self.client.get_or_compute_result(NS, key, compute) for _ in range(n)))
        self.assertEqual(len(computes), 1)
        self.assertEqual({r.value for r in results}, {b"Quercus robur"})
        self.assertEqual(sum(r.computed for r in results), 1)
        self.assertEqual(sum(r.shared for r in results), n - 1)
        self.assertLessEqual(rpcs(self.fleet, "GetOrCompute") - before, 10)

    async def test_compute_failure_reaches_every_caller(self):
        key, computes = unique_key(), []
        gate = asyncio.Event()

        async def compute():
            computes.append(1)
            await gate.wait()
            raise UpstreamDown("503")

        tasks = [asyncio.ensure_future(self.client.get_or_compute(NS, key, compute))
                 for _ in range(50)]
        flight_key = (NS, key.encode(), False, None)
        await self.until(lambda: flight_key in self.client._flights
                         and self.client._flights[flight_key].callers == 50, "callers")
        gate.set()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        self.assertEqual(len(computes), 1)
        for e in outcomes:
            self.assertIsInstance(e, UpstreamDown)

    async def test_cancelling_the_first_caller_does_not_cancel_the_others(self):
        key, computes = unique_key(), []
        gate = asyncio.Event()

        async def compute():
            computes.append(1)
            await gate.wait()
            return b"Aloe vera"

        first = asyncio.ensure_future(self.client.get_or_compute(NS, key, compute))
        flight_key = (NS, key.encode(), False, None)
        await self.until(lambda: computes, "compute started")
        others = [asyncio.ensure_future(self.client.get_or_compute(NS, key, compute))
                  for _ in range(5)]
        await self.until(lambda: self.client._flights[flight_key].callers == 6, "callers")
        first.cancel()
        with self.assertRaises(asyncio.CancelledError):
            await first
        gate.set()
        self.assertEqual(await asyncio.gather(*others), [b"Aloe vera"] * 5)
        self.assertEqual(len(computes), 1)

    async def test_when_every_caller_leaves_the_lease_is_abandoned(self):
        key, gate = unique_key(), asyncio.Event()

        async def never():
            await gate.wait()
            return b"never"

        tasks = [asyncio.ensure_future(self.client.get_or_compute(NS, key, never, lease_ttl=60))
                 for _ in range(3)]
        flight_key = (NS, key.encode(), False, None)
        await self.until(lambda: flight_key in self.client._flights
                         and self.client._flights[flight_key].callers == 3, "callers")
        await asyncio.sleep(0)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.until(lambda: flight_key not in self.client._flights, "flight gone")
        # The lease (60 s) was abandoned: the next caller computes at once.
        result = await self.client.get_or_compute_result(NS, key, lambda: b"fresh",
                                                         wait_timeout=5, timeout=10)
        self.assertEqual((result.value, result.computed), (b"fresh", True))

    async def test_a_joiner_that_times_out_leaves_the_others_alone(self):
        key, gate = unique_key(), asyncio.Event()

        async def compute():
            await gate.wait()
            return b"Tulipa"

        first = asyncio.ensure_future(self.client.get_or_compute_result(NS, key, compute))
        flight_key = (NS, key.encode(), False, None)
        await self.until(lambda: flight_key in self.client._flights, "flight")
        with self.assertRaises(corral.DeadlineExceeded):
            await self.client.get_or_compute(NS, key, compute, timeout=0.1)
        gate.set()
        self.assertTrue((await first).computed)


if __name__ == "__main__":
    unittest.main()
