"""The blocking client of corral (service ``corral.v1.Corral``).

    client = corral.Client("127.0.0.1:50051")
    value = client.get_or_compute("plant_id", image_hash,
                                  lambda: call_the_paid_api(image))

Every method blocks the calling thread for one call (retries included) and
raises a ``corral.CorralError`` subclass when the call fails. A Client is
thread-safe: share one per process and target, and ``close()`` it (or use it
as a context manager) when done.
"""

from __future__ import annotations

import queue
import time
from typing import Callable, Optional, Union

import grpc

from corral import _convert, _protocol
from corral._retry import RetryPolicy, RetryState
from corral.errors import CorralError, Internal, error_from_rpc
from corral.lock import Lock
from corral.results import (BreakerInfo, CachedValue, GetOrComputeResult, LeaseMode, LockGrant,
                           Outcome, RenewResult)
from corral.v1 import corral_pb2 as pb
from corral.v1 import corral_pb2_grpc as pb_grpc

#: What compute may return: the value as bytes, or str (stored as UTF-8).
ComputeResult = Union[bytes, bytearray, memoryview, str]

_NO_RETRY = RetryPolicy(max_attempts=1)


def channel_options(max_receive_message_bytes: int):
    return [("grpc.max_receive_message_length", max_receive_message_bytes)]


class _RequestFeed:
    """The request side of the GetOrCompute stream. gRPC pulls from the
    iterator on its own thread; close() ends the iterator (a half-close) and
    must always run, or that thread waits forever."""

    _CLOSE = object()

    def __init__(self, first: pb.GetOrComputeRequest):
        self._queue: "queue.SimpleQueue" = queue.SimpleQueue()
        self._queue.put(first)

    def send(self, msg: pb.GetOrComputeRequest) -> None:
        self._queue.put(msg)

    def close(self) -> None:
        self._queue.put(self._CLOSE)

    def __iter__(self):
        while True:
            msg = self._queue.get()
            if msg is self._CLOSE:
                return
            yield msg


def _drain(call) -> None:
    """Reads what the server still sends so the call can end; how it ends no
    longer matters to the caller."""
    try:
        for _ in call:
            pass
    except grpc.RpcError:
        pass


class Client:
    """A connection to corrald. ``timeout`` (seconds) is the deadline of one
    call, retries included, unless the call passes its own; for
    get_or_compute it covers the wait for a peer *and* this caller's compute.
    ``worker_id`` is sent for the server's logs and is the default lock owner.
    Pass ``channel`` to use an existing ``grpc.Channel`` instead of
    ``target`` (``credentials`` None means plaintext; for TLS pass
    ``grpc.ssl_channel_credentials(root_certificates=ca_pem)``, plus
    ``private_key`` and ``certificate_chain`` for mutual TLS). ``token`` is
    the bearer token sent on every call to a server with credentials
    configured, e.g. ``token=os.environ["CORRAL_TOKEN"]``; with a ``target``
    beyond this host and no ``credentials`` it would cross the network in
    clear text, and the constructor warns (``corral.PlaintextTokenWarning``)."""

    def __init__(self, target: Optional[str] = None, *, channel: Optional[grpc.Channel] = None,
                 timeout: float = 30.0, worker_id: str = "",
                 retry: RetryPolicy = RetryPolicy(),
                 credentials: Optional[grpc.ChannelCredentials] = None,
                 token: Optional[str] = None,
                 max_receive_message_bytes: int = 64 << 20):
        if (target is None) == (channel is None):
            raise ValueError("pass exactly one of target and channel")
        self.target = target or ""
        self.timeout = float(timeout)
        self.worker_id = worker_id
        self._retry = retry
        # Sent on every call; the server's credentials decide what it may do.
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None
        self._owns_channel = channel is None
        if channel is None:
            # A channel passed in is the caller's to secure: its credentials
            # cannot be inspected.
            _protocol.warn_if_plaintext_token(target, credentials is not None, token)
            opts = channel_options(max_receive_message_bytes)
            channel = (grpc.secure_channel(target, credentials, opts) if credentials
                       else grpc.insecure_channel(target, opts))
        self._channel = channel
        self._stub = pb_grpc.CorralStub(channel)

    # -- lifecycle ---------------------------------------------------------
    def close(self) -> None:
        """Closes the channel this client created (not one passed in)."""
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- cache -------------------------------------------------------------
    def get(self, namespace: str, key, *, timeout: Optional[float] = None) -> Optional[CachedValue]:
        """The cached value, or None on a miss."""
        r = self._unary(self._stub.Get, pb.GetRequest(
            namespace=namespace, key=_convert.to_bytes(key, "key")), timeout)
        return _convert.cached_value(r.value) if r.found else None

    def set(self, namespace: str, key, value, *, ttl=None, lock_token: str = "",
            release_lock: bool = False, timeout: Optional[float] = None) -> bool:
        """Stores ``value`` (bytes or str) and returns whether it was stored.
        With ``lock_token`` the write is fenced (stored only while that lock
        is held; it wakes the key's GetOrCompute waiters like a Fill) and is
        sent once, never retried; ``release_lock`` releases it in the same
        call. ``ttl`` None is the namespace default."""
        req = _protocol.set_request(namespace, key, value, ttl, lock_token, release_lock)
        return self._unary(self._stub.Set, req, timeout, idempotent=not lock_token).stored

    def invalidate(self, namespace: str, key, *, timeout: Optional[float] = None) -> bool:
        """Drops the cached value; returns whether there was one."""
        return self._unary(self._stub.Invalidate, pb.InvalidateRequest(
            namespace=namespace, key=_convert.to_bytes(key, "key")), timeout).existed

    # -- locks -------------------------------------------------------------
    def acquire_lock(self, namespace: str, key, *, ttl=None, wait_timeout=None, owner: str = "",
                     timeout: Optional[float] = None) -> LockGrant:
        """Takes the key's lock (the one a GetOrCompute miss takes), waiting
        server-side up to ``wait_timeout`` (0: try once; None: namespace
        default). Not getting it is ``acquired=False``, not an error. Sent
        once (never retried). The deadline is stretched to
        wait_timeout + timeout so that a long wait is not cut short."""
        req = _protocol.acquire_request(namespace, key, ttl, wait_timeout, owner or self.worker_id)
        r = self._unary(self._stub.AcquireLock, req,
                        _protocol.lock_wait_budget(self.timeout, wait_timeout, timeout),
                        idempotent=False)
        return _protocol.grant(r)

    def renew_lock(self, namespace: str, key, token: str, *, ttl=None,
                   timeout: Optional[float] = None) -> RenewResult:
        """Extends the lock held with ``token`` by ``ttl`` (None: default)."""
        r = self._unary(self._stub.RenewLock, _protocol.renew_request(namespace, key, token, ttl), timeout)
        return _protocol.renewed(r)

    def release_lock(self, namespace: str, key, token: str, *,
                     outcome: Outcome = Outcome.UNSPECIFIED, timeout: Optional[float] = None) -> bool:
        """Releases the lock if ``token`` still holds it; ``outcome`` feeds the
        namespace's breaker. Returns whether it was released. Sent once."""
        r = self._unary(self._stub.ReleaseLock,
                        _protocol.release_request(namespace, key, token, outcome),
                        timeout, idempotent=False)
        return r.released

    def lock(self, namespace: str, key, *, ttl=30.0, wait_timeout=None, owner: str = "",
             renew_every=None, on_lost: Optional[Callable[[], None]] = None) -> Lock:
        """Acquires the key's lock and returns it held, renewed in the
        background every ``renew_every`` (default ttl/3) until released::

            with client.lock("plant_id", key, ttl=30) as lock:
                ...  # lock.token, lock.fencing_token
                client.set("plant_id", key, value, lock_token=lock.token)

        Raises ``LockNotAcquired`` when ``wait_timeout`` passes first."""
        ttl_s = _convert.seconds(ttl)
        if not ttl_s:
            raise ValueError("a held lock needs a positive ttl")
        grant = self.acquire_lock(namespace, key, ttl=ttl_s, wait_timeout=wait_timeout, owner=owner)
        return Lock.start(self, namespace, _convert.to_bytes(key, "key"), grant, ttl_s,
                          wait_timeout=_convert.seconds(wait_timeout), renew_every=renew_every,
                          on_lost=on_lost)

    # -- breaker -----------------------------------------------------------
    def get_breaker(self, namespace: str, *, timeout: Optional[float] = None) -> BreakerInfo:
        """The namespace's circuit breaker state."""
        r = self._unary(self._stub.GetBreaker, pb.GetBreakerRequest(namespace=namespace), timeout)
        return _protocol.breaker(r)

    # -- GetOrCompute ------------------------------------------------------
    def get_or_compute(self, namespace: str, key, compute: Callable[[], ComputeResult], **options) -> bytes:
        """The value of ``key``: from the cache, from the caller fleet-wide
        that computes it, or from ``compute()`` when this caller is the one
        handed the lease. ``compute`` runs at most once, on this thread, and
        returns bytes or str (UTF-8). If it raises, the failure is reported
        as an upstream failure (the breaker counts it, current waiters get
        ``PeerComputeFailed``) and the exception is re-raised, except for a
        refresh lease, where the value being refreshed is returned instead.
        Options: see get_or_compute_result."""
        return self.get_or_compute_result(namespace, key, compute, **options).value

    def get_or_compute_result(self, namespace: str, key, compute: Callable[[], ComputeResult], *,
                              ttl=None, wait_timeout=None, lease_ttl=None, allow_stale: bool = False,
                              timeout: Optional[float] = None,
                              worker_id: Optional[str] = None) -> GetOrComputeResult:
        """get_or_compute, returning how the value was obtained as well.
        ``ttl``: of the value this caller fills; ``wait_timeout``: waiting
        for a peer's compute; ``lease_ttl``: lock expiry if corrald dies
        (None: namespace defaults). ``timeout`` caps the whole exchange.
        Transport failures are retried only while compute has not run."""
        request = _protocol.lookup(namespace, key, ttl=ttl, wait_timeout=wait_timeout,
                                   lease_ttl=lease_ttl, allow_stale=allow_stale,
                                   worker_id=self.worker_id if worker_id is None else worker_id)
        state = RetryState(self._retry, time.monotonic() + (self.timeout if timeout is None else timeout))
        while True:
            ran = [False]
            try:
                return self._attempt(request, compute, ttl, state, ran)
            except CorralError as err:
                if ran[0]:
                    raise
                delay = state.next_delay(err, False)
                if delay is None:
                    raise
                time.sleep(delay)

    def _attempt(self, request, compute, ttl, state: RetryState, ran) -> GetOrComputeResult:
        feed = _RequestFeed(request)
        call = self._stub.GetOrCompute(iter(feed), timeout=state.remaining(),
                                   metadata=self._metadata)
        try:
            try:
                first = next(call)
            except StopIteration:
                raise Internal("corral ended GetOrCompute without a reply") from None
            except grpc.RpcError as e:
                raise error_from_rpc(e) from e
            kind = first.WhichOneof("msg")
            if kind == "value":
                feed.close()
                _drain(call)  # We hold the value; how the call ends is moot.
                return _protocol.from_value(first.value, state.attempts)
            if kind == "lease":
                ran[0] = True
                return self._run_lease(call, feed, first.lease, compute, ttl, state.attempts)
            call.cancel()
            raise Internal(f"corral answered Lookup with {kind!r}")
        except BaseException:
            call.cancel()  # Leaves the wait, or abandons a lease; no-op once done.
            raise
        finally:
            feed.close()

    def _run_lease(self, call, feed: _RequestFeed, lease: pb.Lease, compute, ttl,
                   attempts: int) -> GetOrComputeResult:
        try:
            computed = _protocol.accept_result(compute())
        except Exception as e:  # The upstream failed.
            computed = _protocol.Computed(error=e, upstream_failure=True)
        # A BaseException (KeyboardInterrupt, SystemExit) propagates: _attempt
        # cancels the call, and a cancelled leaseholder has abandoned.
        if computed.error is not None:
            feed.send(_protocol.abandon(_protocol.describe(computed.error), computed.upstream_failure))
            feed.close()
            _drain(call)
            if computed.upstream_failure and lease.mode == LeaseMode.REFRESH:
                return _protocol.refresh_fallback(lease, computed.error, attempts)
            raise computed.error
        feed.send(_protocol.fill(computed.value, ttl))
        try:
            answer = next(call)
        except StopIteration:
            return _protocol.computed_result(lease, computed.value, attempts, None,
                                             "corral ended the call without answering Fill")
        except grpc.RpcError as e:
            # The value is good even if the cache did not take it.
            return _protocol.computed_result(lease, computed.value, attempts, None,
                                             str(error_from_rpc(e)))
        if answer.WhichOneof("msg") != "filled":
            call.cancel()
            return _protocol.computed_result(lease, computed.value, attempts, None,
                                             f"unexpected answer to Fill: {answer.WhichOneof('msg')}")
        feed.close()
        _drain(call)
        return _protocol.computed_result(lease, computed.value, attempts, answer.filled)

    # -- plumbing ----------------------------------------------------------
    def _unary(self, method, request, timeout: Optional[float], idempotent: bool = True):
        budget = self.timeout if timeout is None else timeout
        state = RetryState(self._retry if idempotent else _NO_RETRY, time.monotonic() + budget)
        while True:
            try:
                return method(request, timeout=state.remaining(), metadata=self._metadata)
            except grpc.RpcError as e:
                err = error_from_rpc(e)
                delay = state.next_delay(err, False)
                if delay is None:
                    raise err from e
                time.sleep(delay)

