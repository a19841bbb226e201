"""corral.Client (blocking) against real corrald processes sharing a real
redis-server: threads race for real, nothing is mocked."""

import threading
import time
import unittest

import corral_testing
from corral_testing import unique_key
import corral

NS = "pytest"


class ClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fleet = corral_testing.Fleet(replicas=2)
        cls.addClassCleanup(cls.fleet.stop)
        cls.clients = [corral.Client(t, timeout=20, worker_id=f"pytest-{i}")
                       for i, t in enumerate(cls.fleet.targets)]
        for c in cls.clients:
            cls.addClassCleanup(c.close)
        cls.client = cls.clients[0]

    def own_clients(self, n):
        """``n`` clients alternating between the replicas, one per caller:
        callers sharing a client would share its call (in-process single
        flight, test_single_flight) instead of waiting at the server."""
        out = [corral.Client(self.fleet.targets[i % 2], timeout=20) for i in range(n)]
        for c in out:
            self.addCleanup(c.close)
        return out

    # -- cache -----------------------------------------------------------
    def test_set_get_invalidate(self):
        key = unique_key()
        self.assertIsNone(self.client.get(NS, key))
        self.assertTrue(self.client.set(NS, key, b"Rosa canina", ttl=60))
        got = self.clients[1].get(NS, key)  # The other replica: shared Redis.
        self.assertEqual(got.value, b"Rosa canina")
        self.assertEqual(got.source, corral.Source.CACHE)
        self.assertGreater(got.ttl_remaining, 50)
        self.assertTrue(self.client.invalidate(NS, key))
        self.assertFalse(self.client.invalidate(NS, key))
        self.assertIsNone(self.client.get(NS, key))

    def test_str_keys_and_values_are_utf8(self):
        key = unique_key("clé")
        self.client.set(NS, key, "Tulipa ✓")
        self.assertEqual(self.client.get(NS, key.encode("utf-8")).value, "Tulipa ✓".encode("utf-8"))

    def test_bad_input_raises_invalid_argument_with_reason(self):
        with self.assertRaises(corral.InvalidArgument) as cm:
            self.client.get_or_compute("", "k", lambda: b"x")
        self.assertEqual(cm.exception.reason, "invalid-argument")
        self.assertIn("namespace", cm.exception.details)
        with self.assertRaises(ValueError):
            self.client.get_or_compute(NS, "k", lambda: b"x", ttl=-1)
        with self.assertRaises(TypeError):
            self.client.get(NS, 42)

    # -- GetOrCompute ----------------------------------------------------
    def test_miss_computes_then_hits(self):
        key = unique_key()
        first = self.client.get_or_compute_result(NS, key, lambda: "Ficus lyrata")
        self.assertEqual((first.value, first.source, first.computed, first.stored),
                         (b"Ficus lyrata", corral.Source.COMPUTED, True, True))
        self.assertEqual(first.lease_mode, corral.LeaseMode.LOCKED)
        self.assertGreater(first.fencing_token, 0)
        again = self.clients[1].get_or_compute_result(NS, key, lambda: self.fail("computed twice"))
        self.assertEqual((again.value, again.source, again.computed),
                         (b"Ficus lyrata", corral.Source.CACHE, False))
        self.assertEqual(self.client.get_or_compute(NS, key, lambda: b"never"), b"Ficus lyrata")

    def test_stampede_across_two_replicas_computes_once(self):
        key = unique_key()
        n = 24
        computes = []
        results = [None] * n
        start = threading.Barrier(n)

        def compute():
            computes.append(threading.get_ident())
            time.sleep(0.3)  # A slow upstream: everyone else piles up.
            return f"answer-{len(computes)}"

        def worker(i):
            start.wait()
            results[i] = self.clients[i % 2].get_or_compute_result(NS, key, compute)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(len(computes), 1)
        self.assertEqual({r.value for r in results}, {b"answer-1"})
        sources = [r.source for r in results]
        self.assertEqual(sources.count(corral.Source.COMPUTED), 1)
        self.assertGreater(sources.count(corral.Source.PEER_FILL), 0, sources)

    def test_compute_exception_is_reraised_and_shared_with_waiters(self):
        ns, key = unique_key("ns"), unique_key()
        computing = threading.Event()
        waiters_in = threading.Event()

        class PlantIdDown(Exception):
            pass

        def failing_compute():
            computing.set()
            waiters_in.wait(10)
            raise PlantIdDown("503 from plant.id")

        outcome = {}

        def leader():
            try:
                self.client.get_or_compute(ns, key, failing_compute)
            except BaseException as e:  # noqa: B902 - recorded for the assert
                outcome["leader"] = e

        waiter_errors = []
        waiter_clients = self.own_clients(6)

        def waiter(i):
            try:
                waiter_clients[i].get_or_compute(ns, key, lambda: b"waiter computed")
                waiter_errors.append(None)
            except corral.CorralError as e:
                waiter_errors.append(e)

        lt = threading.Thread(target=leader)
        lt.start()
        self.assertTrue(computing.wait(10))
        ws = [threading.Thread(target=waiter, args=(i,)) for i in range(6)]
        for t in ws:
            t.start()
        try:
            corral_testing.wait_for_waiters(self.fleet, ns, 6)
        finally:
            waiters_in.set()
        for t in [lt, *ws]:
            t.join(30)
        self.assertIsInstance(outcome.get("leader"), PlantIdDown)
        self.assertEqual(len(waiter_errors), 6)
        for e in waiter_errors:
            self.assertIsInstance(e, corral.PeerComputeFailed)
            self.assertEqual(e.reason, "peer-compute-failed")
        self.assertIsNone(self.client.get(ns, key))

    def test_wrong_compute_result_type_raises_and_frees_the_key(self):
        key = unique_key()
        with self.assertRaises(TypeError):
            self.client.get_or_compute(NS, key, lambda: 42)
        t0 = time.monotonic()
        r = self.clients[1].get_or_compute_result(NS, key, lambda: b"ok")
        self.assertTrue(r.computed)
        self.assertLess(time.monotonic() - t0, 2.0)  # Released at once, not at lease expiry.

    def test_keyboard_interrupt_in_compute_abandons_and_propagates(self):
        key = unique_key()

        def interrupted():
            raise KeyboardInterrupt

        with self.assertRaises(KeyboardInterrupt):
            self.client.get_or_compute(NS, key, interrupted)
        r = self.client.get_or_compute_result(NS, key, lambda: b"second try", wait_timeout=5)
        self.assertTrue(r.computed)

    def test_unreachable_server_raises_unavailable(self):
        port = corral_testing.free_port()
        with corral.Client(f"127.0.0.1:{port}", timeout=0.5) as dead:
            t0 = time.monotonic()
            with self.assertRaises(corral.Unavailable) as cm:
                dead.get_or_compute(NS, "k", lambda: b"x")
            self.assertEqual(cm.exception.reason, "")
            self.assertLess(time.monotonic() - t0, 3.0)

    # -- locks -----------------------------------------------------------
    def test_lock_is_exclusive_and_renewed_past_its_ttl(self):
        key = unique_key()
        with self.client.lock(NS, key, ttl=0.6, wait_timeout=0) as lock:
            self.assertTrue(lock.token)
            time.sleep(1.5)  # Past the ttl: only renewal keeps it.
            self.assertFalse(lock.lost)
            other = self.clients[1].acquire_lock(NS, key, ttl=5, wait_timeout=0)
            self.assertFalse(other.acquired)
            with self.assertRaises(corral.LockNotAcquired):
                self.clients[1].lock(NS, key, ttl=5, wait_timeout=0.2)
        self.assertTrue(lock.released)
        again = self.clients[1].acquire_lock(NS, key, ttl=5, wait_timeout=0)
        self.assertTrue(again.acquired)
        self.assertGreater(again.fencing_token, lock.fencing_token)
        self.assertTrue(self.clients[1].release_lock(NS, key, again.token,
                                                     outcome=corral.Outcome.SUCCESS))

    def test_release_returns_whether_released_and_only_once(self):
        lock = self.client.lock(NS, unique_key(), ttl=5)
        self.assertTrue(lock.release(corral.Outcome.SUCCESS))
        with self.assertRaises(RuntimeError):
            lock.release()

    def test_waiter_gets_the_lock_when_it_is_released(self):
        ns, key = unique_key("ns"), unique_key()
        holder = self.client.lock(ns, key, ttl=10)
        got = {}

        def wait_for_it():
            with self.clients[1].lock(ns, key, ttl=10, wait_timeout=10) as lock:
                got["fencing_token"] = lock.fencing_token
        t = threading.Thread(target=wait_for_it)
        t.start()
        try:
            corral_testing.wait_for_waiters(self.fleet, ns, 1)
        finally:
            holder.release()
        t.join(10)
        self.assertGreater(got["fencing_token"], holder.fencing_token)

    def test_lost_lock_is_reported(self):
        key = unique_key()
        lost = threading.Event()
        lock = self.client.lock(NS, key, ttl=0.3, renew_every=1.0, on_lost=lost.set)
        # Once it expires (nobody renews it before 1 s), another caller takes it.
        def steal():
            attempt = self.clients[1].acquire_lock(NS, key, ttl=10, wait_timeout=0)
            return attempt if attempt.acquired else None
        thief = corral_testing.poll_until(steal, what="the lock's expiry")
        self.assertTrue(thief.acquired)
        self.assertTrue(lost.wait(5))
        self.assertTrue(lock.lost)
        self.assertFalse(self.client.set(NS, key, b"late", lock_token=lock.token))
        self.assertFalse(lock.release())
        self.clients[1].release_lock(NS, key, thief.token)

    def test_fenced_set_under_lock_wakes_get_or_compute_waiters(self):
        ns, key = unique_key("ns"), unique_key()
        results = []
        waiter_clients = self.own_clients(4)
        with self.client.lock(ns, key, ttl=10) as lock:
            def waiter(i):
                results.append(waiter_clients[i].get_or_compute_result(
                    ns, key, lambda: b"waiter must not compute"))
            ts = [threading.Thread(target=waiter, args=(i,)) for i in range(4)]
            for t in ts:
                t.start()
            # They wait on the lock this caller holds, on both replicas.
            corral_testing.wait_for_waiters(self.fleet, ns, 4)
            self.assertTrue(self.client.set(ns, key, b"from the lock holder", lock_token=lock.token))
            for t in ts:
                t.join(10)
        self.assertEqual({r.value for r in results}, {b"from the lock holder"})
        self.assertEqual({r.source for r in results}, {corral.Source.PEER_FILL})

    def test_get_breaker(self):
        try:
            info = self.client.get_breaker(NS)
        except corral.Unimplemented:
            self.skipTest("corrald does not implement GetBreaker yet")
        self.assertEqual(info.state, corral.BreakerState.CLOSED)


if __name__ == "__main__":
    unittest.main()
