"""The sans-IO protocol core of the Python clients (corral._protocol): the
decisions that the blocking and the asyncio shells share, checked without a
server, a channel or an event loop."""

import datetime
import time
import unittest

import grpc
import grpc.aio

import corral
from corral import _protocol
from corral._nearcache import UNSUPPORTED_BACKOFF, NearCacheLimits
from corral._retry import RetryPolicy
from corral.results import LeaseMode, LockGrant, RenewResult, Source
from corral.v1 import corral_pb2 as pb


def rpc_error(code: grpc.StatusCode, details: str = "") -> grpc.RpcError:
    """A failed call as grpc reports it (grpc.aio's own error class)."""
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


def core(**overrides) -> _protocol.ClientCore:
    args = dict(timeout=10.0, worker_id="w1", retry=RetryPolicy(), secure=False, token=None,
                max_receive_message_bytes=1 << 20)
    args.update(overrides)
    return _protocol.ClientCore("127.0.0.1:1", False, **args)


def lease(mode=LeaseMode.LOCKED, fencing=5, current=b"") -> pb.GetOrComputeResponse:
    return pb.GetOrComputeResponse(lease=pb.Lease(fencing_token=fencing, mode=int(mode),
                                                  current_value=current))


class ClientCoreTest(unittest.TestCase):
    def test_exactly_one_of_target_and_channel(self):
        with self.assertRaises(ValueError):
            _protocol.ClientCore(None, False, timeout=1, worker_id="", retry=RetryPolicy(),
                                 secure=False, token=None, max_receive_message_bytes=1)
        with self.assertRaises(ValueError):
            _protocol.ClientCore("127.0.0.1:1", True, timeout=1, worker_id="",
                                 retry=RetryPolicy(), secure=False, token=None,
                                 max_receive_message_bytes=1)

    def test_settings(self):
        c = core(token="s3cret", timeout=3)
        self.assertEqual(c.metadata, (("authorization", "Bearer s3cret"),))
        self.assertEqual(c.timeout, 3.0)
        self.assertIsInstance(c.timeout, float)
        self.assertTrue(c.owns_channel)
        self.assertEqual(c.channel_options, [("grpc.max_receive_message_length", 1 << 20)])
        self.assertIsNone(core().metadata)
        with_channel = _protocol.ClientCore(None, True, timeout=1, worker_id="",
                                            retry=RetryPolicy(), secure=False, token="t",
                                            max_receive_message_bytes=1)
        self.assertFalse(with_channel.owns_channel)
        self.assertEqual(with_channel.target, "")

    def test_client_attributes_are_the_cores(self):
        # Channels are lazy: this connects nowhere.
        with corral.Client("127.0.0.1:1", timeout=4, worker_id="a") as client:
            self.assertEqual((client.target, client.timeout, client.worker_id),
                             ("127.0.0.1:1", 4.0, "a"))
            client.timeout = 2.5
            client.worker_id = "b"
            self.assertEqual((client._core.timeout, client._core.worker_id), (2.5, "b"))
            self.assertEqual(client._core.get_or_compute("ns", b"k").start().lookup.worker_id, "b")


class UnaryTest(unittest.TestCase):
    def test_requests_and_results(self):
        c = core()
        u = c.get("ns", "k", None)
        self.assertEqual((u.method, u.request.namespace, u.request.key), ("Get", "ns", b"k"))
        self.assertIsNone(u.result(pb.GetResponse(found=False)))
        hit = u.result(pb.GetResponse(found=True, value=pb.Value(value=b"v", source=1)))
        self.assertEqual((hit.value, hit.source), (b"v", Source.CACHE))
        self.assertTrue(c.set("ns", "k", "v", 2, "", False, None).result(pb.SetResponse(stored=True)))
        self.assertEqual(c.set("ns", "k", "v", 2, "", False, None).request.ttl.seconds, 2)
        self.assertTrue(c.invalidate("ns", "k", None).result(pb.InvalidateResponse(existed=True)))
        self.assertFalse(c.release_lock("ns", "k", "t", 1, None).result(
            pb.ReleaseLockResponse(released=False)))
        self.assertTrue(c.renew_lock("ns", "k", "t", 3, None).result(
            pb.RenewLockResponse(renewed=True)).renewed)
        self.assertEqual(c.get_breaker("ns", None).request.namespace, "ns")
        self.assertEqual(c.acquire_lock("ns", "k", 1, 0, "", None).request.owner, "w1")
        self.assertEqual(c.acquire_lock("ns", "k", 1, 0, "me", None).request.owner, "me")
        g = c.acquire_lock("ns", "k", 1, 0, "", None).result(
            pb.AcquireLockResponse(acquired=True, token="t", fencing_token=9))
        self.assertEqual((g.acquired, g.token, g.fencing_token), (True, "t", 9))

    def test_only_idempotent_calls_are_retried(self):
        c = core()
        unavailable = rpc_error(grpc.StatusCode.UNAVAILABLE, "refused")
        for u in (c.get("ns", "k", None), c.set("ns", "k", "v", None, "", False, None),
                  c.renew_lock("ns", "k", "t", None, None)):
            with self.subTest(method=u.method):
                self.assertGreater(_protocol.retry_delay(u.attempts, unavailable), 0)
        for u in (c.set("ns", "k", "v", None, "tok", False, None),
                  c.acquire_lock("ns", "k", None, None, "", None),
                  c.release_lock("ns", "k", "t", 0, None)):
            with self.subTest(method=u.method):
                with self.assertRaises(corral.Unavailable) as cm:
                    _protocol.retry_delay(u.attempts, unavailable)
                self.assertIs(cm.exception.__cause__, unavailable)

    def test_a_failure_that_is_not_retryable_is_raised(self):
        u = core().get("ns", "k", None)
        with self.assertRaises(corral.InvalidArgument):
            _protocol.retry_delay(u.attempts, rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "bad"))

    def test_attempts_stop_at_max_attempts(self):
        u = core(retry=RetryPolicy(max_attempts=2)).get("ns", "k", None)
        unavailable = rpc_error(grpc.StatusCode.UNAVAILABLE)
        _protocol.retry_delay(u.attempts, unavailable)
        with self.assertRaises(corral.Unavailable):
            _protocol.retry_delay(u.attempts, unavailable)

    def test_deadlines(self):
        c = core(timeout=10)
        self.assertAlmostEqual(c.get("ns", "k", None).attempts.remaining(), 10, delta=0.5)
        self.assertAlmostEqual(c.get("ns", "k", 2).attempts.remaining(), 2, delta=0.5)
        # AcquireLock: stretched to wait_timeout + the client's timeout.
        self.assertAlmostEqual(c.acquire_lock("ns", "k", 1, 60, "", None).attempts.remaining(),
                               70, delta=0.5)
        self.assertAlmostEqual(c.acquire_lock("ns", "k", 1, None, "", 3).attempts.remaining(),
                               3, delta=0.5)


class ExchangeTest(unittest.TestCase):
    def exchange(self, **options) -> _protocol.Exchange:
        return core().get_or_compute("ns", "k", **options)

    def test_lookup(self):
        x = self.exchange(ttl=7, wait_timeout=1.5, allow_stale=True, worker_id="me")
        msg = x.start().lookup
        self.assertEqual((msg.namespace, msg.key, msg.worker_id, msg.allow_stale),
                         ("ns", b"k", "me", True))
        self.assertEqual((msg.ttl.seconds, msg.wait_timeout.nanos), (7, 500_000_000))
        self.assertFalse(msg.HasField("lease_ttl"))
        self.assertAlmostEqual(self.exchange(timeout=3).remaining(), 3, delta=0.5)

    def test_a_value_is_the_result(self):
        x = self.exchange()
        x.start()
        r = x.first_answer(pb.GetOrComputeResponse(value=pb.Value(value=b"v", source=3)))
        self.assertEqual((r.value, r.source, r.computed, r.attempts), (b"v", Source.PEER_FILL, False, 1))

    def test_no_reply_or_another_answer_is_internal(self):
        x = self.exchange()
        x.start()
        with self.assertRaisesRegex(corral.Internal, "without a reply"):
            x.first_answer(None)
        with self.assertRaisesRegex(corral.Internal, "'filled'"):
            x.first_answer(pb.GetOrComputeResponse(filled=pb.Filled(stored=True)))

    def test_retried_only_before_compute_ran(self):
        x = self.exchange()
        x.start()
        self.assertIsNotNone(x.retry_delay(corral.Unavailable("refused")))
        self.assertIsNone(x.retry_delay(corral.Internal("no")))
        x.start()
        self.assertIsNone(x.first_answer(lease()))
        self.assertIsNone(x.retry_delay(corral.Unavailable("refused")))
        x.start()  # A new attempt forgets the lease.
        self.assertIsNotNone(x.retry_delay(corral.Unavailable("refused")))

    def test_a_value_is_filled_and_the_answer_is_the_result(self):
        x = self.exchange(ttl=9)
        x.start()
        x.first_answer(lease(fencing=5))
        msg = x.compute_returned("é")
        self.assertEqual((msg.fill.value, msg.fill.ttl.seconds), ("é".encode(), 9))
        self.assertTrue(x.filling)
        end = x.fill_answered(pb.GetOrComputeResponse(filled=pb.Filled(stored=True, fencing_token=6)))
        self.assertTrue(end.close)
        r = end.result
        self.assertEqual((r.value, r.source, r.computed, r.stored, r.fencing_token, r.lease_mode),
                         ("é".encode(), Source.COMPUTED, True, True, 6, LeaseMode.LOCKED))

    def test_an_unanswered_fill_keeps_the_value(self):
        for answer, reason, close in (
                (None, "corral ended the call without answering Fill", False),
                (lease(), "unexpected answer to Fill: lease", False)):
            with self.subTest(reason=reason):
                x = self.exchange()
                x.start()
                x.first_answer(lease(fencing=5))
                x.compute_returned(b"v")
                end = x.fill_answered(answer)
                self.assertEqual((end.result.value, end.result.stored, end.result.fencing_token,
                                  end.result.not_stored_reason, end.close),
                                 (b"v", False, 5, reason, close))
        x = self.exchange()
        x.start()
        x.first_answer(lease())
        x.compute_returned(b"v")
        r = x.fill_failed(corral.Unavailable("gone"))
        self.assertEqual((r.value, r.stored, r.not_stored_reason), (b"v", False, str(corral.Unavailable("gone"))))

    def test_a_failed_compute_is_abandoned_and_raised(self):
        x = self.exchange()
        x.start()
        x.first_answer(lease())
        err = ValueError("upstream down")
        msg = x.compute_raised(err)
        self.assertEqual((msg.abandon.reason, msg.abandon.upstream_failure),
                         ("ValueError: upstream down", True))
        self.assertFalse(x.filling)
        with self.assertRaises(ValueError) as cm:
            x.abandoned()
        self.assertIs(cm.exception, err)

    def test_a_wrong_return_type_is_a_plain_abandon(self):
        x = self.exchange()
        x.start()
        x.first_answer(lease(mode=LeaseMode.REFRESH, current=b"old"))
        msg = x.compute_returned(42)
        self.assertFalse(msg.abandon.upstream_failure)
        with self.assertRaises(TypeError):
            x.abandoned()  # Not the refresh fallback: the upstream did not fail.

    def test_a_failed_refresh_serves_the_value_being_refreshed(self):
        x = self.exchange()
        x.start()
        x.first_answer(lease(mode=LeaseMode.REFRESH, fencing=8, current=b"old"))
        err = RuntimeError("down")
        x.compute_raised(err)
        r = x.abandoned()
        self.assertEqual((r.value, r.source, r.stale, r.computed, r.fencing_token),
                         (b"old", Source.STALE, True, True, 8))
        self.assertIs(r.refresh_error, err)

    def test_abandon_reasons_are_bounded(self):
        x = self.exchange()
        x.start()
        x.first_answer(lease())
        msg = x.compute_raised(RuntimeError("x" * 5000))
        self.assertEqual(len(msg.abandon.reason), _protocol.MAX_ABANDON_REASON)


class NearCacheGlueTest(unittest.TestCase):
    """The near cache's reads, writes and stream as both shells run them."""

    def started(self) -> _protocol.ClientCore:
        c = core(near_cache=True)
        c.near_cache.start(b"s1")
        return c

    def test_no_near_cache_unless_asked(self):
        self.assertIsNone(core().near_cache)
        c = core(near_cache=NearCacheLimits(max_entries=3))
        self.assertEqual(c.near_cache.limits.max_entries, 3)
        self.assertIs(c.near_for(True), c.near_cache)
        self.assertIsNone(c.near_for(False))
        self.assertIsNone(_protocol.near_value(None, "ns", "k"))
        self.assertIsNone(_protocol.near_cached(c.near_cache, "ns", "k"))

    def test_a_granted_get_is_planted_and_then_served_from_memory(self):
        c = self.started()
        u = c.get("ns", "k", None, c.near_cache)
        self.assertEqual(u.request.near_cache_session, b"s1")
        r = pb.GetResponse(found=True, value=pb.Value(value=b"v", source=1))
        r.value.near_cache_for.FromSeconds(30)
        r.value.ttl_remaining.FromSeconds(60)
        self.assertEqual(u.result(r).value, b"v")
        self.assertEqual(_protocol.near_value(c.near_cache, "ns", "k"), b"v")
        hit = _protocol.near_cached(c.near_cache, "ns", b"k")
        self.assertEqual((hit.value, hit.near_cache), (b"v", True))
        self.assertTrue(_protocol.near_result(c.near_cache, "ns", "k").near_cache)
        # This client's own write drops it, answered or not.
        c.set("ns", "k", "w", None, "", False, None).result(pb.SetResponse(stored=True))
        self.assertIsNone(_protocol.near_value(c.near_cache, "ns", "k"))

    def test_a_failed_get_ends_its_ticket_and_drops_the_key(self):
        c = self.started()
        r = pb.GetResponse(found=True, value=pb.Value(value=b"v", source=1))
        r.value.near_cache_for.FromSeconds(30)
        c.get("ns", "k", None, c.near_cache).result(r)
        self.assertEqual(_protocol.near_value(c.near_cache, "ns", "k"), b"v")
        u = c.first_get("ns", "k", c.near_cache, 5)
        self.assertTrue(u.request.draw_early_refresh)
        self.assertEqual(u.request.near_cache_session, b"s1")
        u.failed()  # Its answer, maybe newer than what is kept, is not coming.
        self.assertIsNone(_protocol.near_value(c.near_cache, "ns", "k"))
        c.get("ns", "k", None, c.near_cache).result(r)  # A later read plants again.
        self.assertEqual(_protocol.near_value(c.near_cache, "ns", "k"), b"v")
        c.invalidate("ns", "k", None).failed()
        self.assertIsNone(_protocol.near_value(c.near_cache, "ns", "k"))

    def test_without_a_session_the_get_carries_none(self):
        c = core(near_cache=True)
        u = c.first_get("ns", "k", c.near_cache, 5)
        self.assertEqual(u.request.near_cache_session, b"")
        first = u.result(pb.GetResponse(found=False))
        self.assertIsNone(first.result)

    def test_gets_with_a_session_go_where_the_stream_goes(self):
        c = self.started()
        self.assertTrue(c.get("ns", "k", None, c.near_cache).near)
        self.assertTrue(c.first_get("ns", "k", c.near_cache, 5).near)
        self.assertFalse(c.get("ns", "k", None).near)  # near_cache=False.
        fresh = core(near_cache=True)  # No session yet: no ticket.
        self.assertFalse(fresh.get("ns", "k", None, fresh.near_cache).near)
        self.assertFalse(c.set("ns", "k", "v", None, "", False, None).near)

    def test_a_spreading_channel_gets_a_pinned_one_for_the_near_cache(self):
        spread = core(near_cache=True, load_balancing="round_robin")
        self.assertIn(("grpc.lb_policy_name", "round_robin"), spread.channel_options)
        opts = dict(spread.near_channel_options)
        self.assertEqual(opts["grpc.lb_policy_name"], "pick_first")
        self.assertEqual(opts["grpc.service_config_disable_resolution"], 1)
        self.assertEqual(opts["grpc.max_receive_message_length"], 1 << 20)
        # None to make: one replica already, no near cache, or the caller's
        # channel for it.
        for c in (core(near_cache=True), core(near_cache=True, load_balancing="pick_first"),
                  core(load_balancing="round_robin"),
                  core(near_cache=True, load_balancing="round_robin", has_near_channel=True),
                  _protocol.ClientCore(None, True, timeout=1, worker_id="", retry=RetryPolicy(),
                                       secure=False, token=None, max_receive_message_bytes=1,
                                       near_cache=True, load_balancing="round_robin")):
            self.assertIsNone(c.near_channel_options)

    def test_the_stream_backs_off_and_asks_an_old_server_rarely(self):
        c = core(near_cache=True)
        stream = _protocol.NearStream(c.near_cache, "w1")
        self.assertEqual(stream.request.client_name, "w1")
        with self.assertLogs("corral", "INFO"):
            delays = [stream.ended(grpc.StatusCode.UNAVAILABLE, "down") for _ in range(3)]
        self.assertEqual(delays, [0.05, 0.1, 0.2])
        stream.event(pb.NearCacheEvent(started=pb.NearCacheStarted(session=b"s")))
        self.assertEqual(c.near_cache.session, b"s")
        self.assertEqual(stream.ended(grpc.StatusCode.UNAVAILABLE, "down"), 0.05)
        with self.assertLogs("corral", "WARNING") as logs:
            self.assertEqual(stream.ended(grpc.StatusCode.UNIMPLEMENTED, "no"),
                             UNSUPPORTED_BACKOFF)
            self.assertEqual(stream.ended(grpc.StatusCode.UNIMPLEMENTED, "no"),
                             UNSUPPORTED_BACKOFF)
        self.assertEqual(len(logs.records), 1)  # Said once.
        stream.lost()
        self.assertEqual(c.near_cache.session, b"")


class LockTest(unittest.TestCase):
    def test_lock_order(self):
        o = _protocol.lock_order("ns", "k", datetime.timedelta(seconds=6), 2, "me", None, None)
        self.assertEqual((o.key, o.ttl, o.wait_timeout, o.owner), (b"k", 6.0, 2.0, "me"))
        self.assertIsNone(_protocol.lock_order("ns", "k", 1, None, "", None, None).wait_timeout)
        for bad in (0, None):
            with self.assertRaisesRegex(ValueError, "positive ttl"):
                _protocol.lock_order("ns", "k", bad, None, "", None, None)

    def test_not_acquired_is_lock_not_acquired(self):
        no = LockGrant(acquired=False, token="", fencing_token=0, expires_at=None, waited=None)
        with self.assertRaisesRegex(corral.LockNotAcquired, "within 2.5s"):
            _protocol.check_acquired(no, 2.5)
        with self.assertRaisesRegex(corral.LockNotAcquired, "namespace's default wait"):
            _protocol.check_acquired(no, None)
        _protocol.check_acquired(LockGrant(acquired=True, token="t", fencing_token=1,
                                           expires_at=None, waited=None), 1)

    def test_renew_timing(self):
        t = _protocol.RenewTiming(30.0, None, now=100.0)
        self.assertEqual((t.period, t.call_timeout), (10.0, 10.0))
        # A failed renewal: still ours until the local estimate of the expiry.
        self.assertTrue(t.still_held(None, sent=110.0, now=129.9))
        self.assertFalse(t.still_held(None, sent=129.0, now=130.0))
        short = _protocol.RenewTiming(1.0, 0.01, now=0.0)
        self.assertEqual((short.period, short.call_timeout), (0.01, 0.05))

    def test_a_renewal_counts_from_when_it_was_sent(self):
        t = _protocol.RenewTiming(30.0, 10, now=100.0)
        self.assertTrue(t.still_held(RenewResult(renewed=True, expires_at=None), sent=125.0,
                                     now=126.0))
        self.assertTrue(t.still_held(None, sent=135.0, now=154.9))
        self.assertFalse(t.still_held(None, sent=145.0, now=155.0))

    def test_a_renewal_refused_is_lost(self):
        t = _protocol.RenewTiming(30.0, None, now=100.0)
        self.assertFalse(t.still_held(RenewResult(renewed=False, expires_at=None), sent=110.0,
                                      now=110.1))

    def test_a_held_lock_starts_its_timing_now(self):
        before = time.monotonic()
        t = _protocol.RenewTiming(3.0, 2, now=time.monotonic())
        self.assertEqual(t.period, 2.0)
        self.assertTrue(t.still_held(None, sent=before, now=before + 2.9))

if __name__ == "__main__":
    unittest.main()
