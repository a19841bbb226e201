"""The corral-reason → exception mapping, unit-tested and over real gRPC.

A scripted in-process gRPC server answers exactly what the contract
specifies, so each path is pinned down without timing: UNAVAILABLE with
trailers `corral-reason: breaker-open` and `retry-after-ms`, a refresh
lease, and a transport failure that the client must retry. The same paths
against real corrald processes are in test_polyglot (breaker) and
test_freshness (refresh leases).
"""

import asyncio
import threading
import unittest
from concurrent import futures

import grpc

import corral_testing  # noqa: F401  (sets up sys.path)
import corral
import corral.aio
from corral import errors
from corral.v1 import corral_pb2 as pb
from corral.v1 import corral_pb2_grpc as pb_grpc

UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


class ErrorMappingTest(unittest.TestCase):
    def test_breaker_open_carries_retry_after(self):
        e = errors.error_from_status(UNAVAILABLE, "breaker open for plant_id",
                                     (("corral-reason", "breaker-open"), ("retry-after-ms", "1500")))
        self.assertIsInstance(e, corral.BreakerOpen)
        self.assertIsInstance(e, corral.Unavailable)
        self.assertIsInstance(e, corral.CorralError)
        self.assertEqual(e.code, UNAVAILABLE)
        self.assertEqual(e.reason, "breaker-open")
        self.assertEqual(e.retry_after, 1.5)
        self.assertEqual(e.details, "breaker open for plant_id")
        self.assertEqual(str(e), "UNAVAILABLE: breaker open for plant_id "
                                 "(corral-reason: breaker-open, retry after 1.5s)")

    def test_every_contract_reason_has_its_class(self):
        cases = [
            ("invalid-argument", grpc.StatusCode.INVALID_ARGUMENT, corral.InvalidArgument),
            ("store-unavailable", UNAVAILABLE, corral.StoreUnavailable),
            ("peer-compute-failed", UNAVAILABLE, corral.PeerComputeFailed),
            ("wait-timeout", grpc.StatusCode.DEADLINE_EXCEEDED, corral.WaitTimeout),
            ("breaker-open", UNAVAILABLE, corral.BreakerOpen),
            ("shutting-down", UNAVAILABLE, corral.ShuttingDown),
            ("unknown-namespace", grpc.StatusCode.NOT_FOUND, corral.UnknownNamespace),
            ("too-many-waiters", grpc.StatusCode.RESOURCE_EXHAUSTED, corral.TooManyWaiters),
            ("compute-budget", grpc.StatusCode.RESOURCE_EXHAUSTED, corral.ComputeBudgetExhausted),
        ]
        for reason, code, cls in cases:
            with self.subTest(reason=reason):
                e = errors.error_from_status(code, "x", [("corral-reason", reason)])
                self.assertIs(type(e), cls)
                self.assertEqual(e.reason, reason)
                self.assertEqual(e.code, code)
                self.assertIsNone(e.retry_after)
                # Each reason class is also its status code's class.
                self.assertIsInstance(e, errors._BY_CODE[code])

    def test_no_or_unknown_reason_maps_by_code(self):
        e = errors.error_from_status(UNAVAILABLE, "connection refused", ())
        self.assertIs(type(e), corral.Unavailable)
        self.assertEqual(e.reason, "")
        e = errors.error_from_status(grpc.StatusCode.NOT_FOUND, "", [("corral-reason", "new-reason")])
        self.assertIs(type(e), corral.NotFound)
        self.assertEqual(e.reason, "new-reason")
        e = errors.error_from_status(grpc.StatusCode.DATA_LOSS, "boom", ())
        self.assertIs(type(e), corral.CorralError)
        self.assertEqual(e.code, grpc.StatusCode.DATA_LOSS)

    def test_trailer_values_may_be_bytes_and_bad_retry_after_is_ignored(self):
        e = errors.error_from_status(UNAVAILABLE, "", [(b"x-other", b"1"), ("corral-reason", b"breaker-open"),
                                                       ("retry-after-ms", "soon")])
        self.assertIsInstance(e, corral.BreakerOpen)
        self.assertIsNone(e.retry_after)
        e = errors.error_from_status(UNAVAILABLE, "", [("retry-after-ms", "-5")])
        self.assertIsNone(e.retry_after)

    def test_only_transport_failures_and_shutdown_are_retryable(self):
        self.assertTrue(errors.is_retryable(corral.Unavailable("refused")))
        self.assertTrue(errors.is_retryable(corral.ShuttingDown("bye", reason="shutting-down")))
        self.assertFalse(errors.is_retryable(corral.Unavailable("refused"), compute_ran=True))
        for e in (corral.BreakerOpen("", reason="breaker-open"),
                  corral.PeerComputeFailed("", reason="peer-compute-failed"),
                  corral.StoreUnavailable("", reason="store-unavailable"),
                  corral.InvalidArgument("bad"), corral.DeadlineExceeded("late")):
            self.assertFalse(errors.is_retryable(e), type(e).__name__)


class ScriptedCorral(pb_grpc.CorralServicer):
    """Answers GetOrCompute as `script` says; records what clients send."""

    def __init__(self):
        self.script = "value"
        self.received = []
        self.calls = 0
        self.mu = threading.Lock()

    def _breaker_open(self, context):
        context.set_trailing_metadata((("corral-reason", "breaker-open"), ("retry-after-ms", "2500")))
        context.abort(UNAVAILABLE, "breaker open for namespace plant_id")

    def Get(self, request, context):
        if self.script == "breaker-open":
            self._breaker_open(context)
        return pb.GetResponse(found=False)

    def GetOrCompute(self, request_iterator, context):
        with self.mu:
            self.calls += 1
            call = self.calls
        lookup = next(request_iterator)
        self.received.append(lookup)
        if self.script == "breaker-open":
            self._breaker_open(context)
        elif self.script == "flaky" and call == 1:
            context.abort(UNAVAILABLE, "connection reset")  # No reason: transport.
        elif self.script == "refresh":
            yield pb.GetOrComputeResponse(lease=pb.Lease(
                fencing_token=7, mode=pb.LEASE_MODE_REFRESH, current_value=b"old answer"))
            for msg in request_iterator:
                self.received.append(msg)
                if msg.HasField("fill"):
                    yield pb.GetOrComputeResponse(filled=pb.Filled(stored=True, fencing_token=7))
                    return
                if msg.HasField("abandon"):
                    return
            return
        else:
            yield pb.GetOrComputeResponse(value=pb.Value(value=b"cached", source=pb.SOURCE_CACHE))


class ScriptedServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.servicer = ScriptedCorral()
        cls.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        pb_grpc.add_CorralServicer_to_server(cls.servicer, cls.server)
        port = cls.server.add_insecure_port("127.0.0.1:0")
        cls.server.start()
        cls.addClassCleanup(cls.server.stop, None)
        cls.target = f"127.0.0.1:{port}"

    def setUp(self):
        self.servicer.received = []
        self.servicer.calls = 0
        self.client = corral.Client(self.target, timeout=5)
        self.addCleanup(self.client.close)

    def test_breaker_open_raises_breaker_open_without_computing(self):
        self.servicer.script = "breaker-open"
        ran = []
        with self.assertRaises(corral.BreakerOpen) as cm:
            self.client.get_or_compute("plant_id", "rose", lambda: ran.append(1) or b"x")
        self.assertEqual(cm.exception.retry_after, 2.5)
        self.assertEqual(cm.exception.code, UNAVAILABLE)
        self.assertEqual(ran, [])
        self.assertEqual(self.servicer.calls, 1)  # An answer about the key: not retried.
        with self.assertRaises(corral.BreakerOpen):
            self.client.get("plant_id", "rose")

    def test_breaker_open_async(self):
        self.servicer.script = "breaker-open"

        async def run():
            async with corral.aio.AsyncClient(self.target, timeout=5) as client:
                await client.get_or_compute("plant_id", "rose", lambda: b"x")
        with self.assertRaises(corral.BreakerOpen) as cm:
            asyncio.run(run())
        self.assertEqual(cm.exception.retry_after, 2.5)

    def test_refresh_failure_serves_current_value_and_reports_upstream_failure(self):
        self.servicer.script = "refresh"

        def compute():
            raise TimeoutError("plant.id took too long")
        r = self.client.get_or_compute_result("plant_id", "rose", compute)
        self.assertEqual(r.value, b"old answer")
        self.assertEqual(r.source, corral.Source.STALE)
        self.assertTrue(r.stale and r.computed)
        self.assertEqual(r.lease_mode, corral.LeaseMode.REFRESH)
        self.assertIsInstance(r.refresh_error, TimeoutError)
        abandon = self.servicer.received[-1]
        self.assertTrue(abandon.HasField("abandon"))
        self.assertTrue(abandon.abandon.upstream_failure)
        self.assertIn("plant.id took too long", abandon.abandon.reason)

    def test_refresh_success_fills(self):
        self.servicer.script = "refresh"
        r = self.client.get_or_compute_result("plant_id", "rose", lambda: "new answer")
        self.assertEqual((r.value, r.source, r.stored, r.fencing_token),
                         (b"new answer", corral.Source.COMPUTED, True, 7))
        self.assertEqual(self.servicer.received[-1].fill.value, b"new answer")

    def test_transport_failure_before_compute_is_retried(self):
        self.servicer.script = "flaky"
        r = self.client.get_or_compute_result("plant_id", "rose", lambda: b"x")
        self.assertEqual((r.value, r.attempts), (b"cached", 2))

    def test_lookup_carries_options_and_leaves_unset_durations_unset(self):
        self.servicer.script = "value"
        self.client.get_or_compute("plant_id", b"\x00rose", lambda: b"x", ttl=3600, wait_timeout=0,
                                   worker_id="w-1")
        lookup = self.servicer.received[0].lookup
        self.assertEqual((lookup.namespace, lookup.key, lookup.worker_id),
                         ("plant_id", b"\x00rose", "w-1"))
        self.assertEqual(lookup.ttl.seconds, 3600)
        self.assertTrue(lookup.HasField("wait_timeout"))  # Explicit zero.
        self.assertEqual(lookup.wait_timeout.seconds, 0)
        self.assertFalse(lookup.HasField("lease_ttl"))  # Unset: namespace default.


if __name__ == "__main__":
    unittest.main()
