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
import threading
import time
from typing import Callable, Dict, Optional, Union

import grpc

from corral import _protocol
from corral._nearcache import NearCache, NearCacheLimits
from corral._protocol import channel_options  # noqa: F401 (kept importable from here)
from corral._retry import RetryPolicy
from corral.errors import CorralError, error_from_rpc
from corral.lock import Lock
from corral.results import (BreakerInfo, CachedValue, GetOrComputeResult, LockGrant, Outcome,
                            RenewResult)
from corral.v1 import corral_pb2 as pb
from corral.v1 import corral_pb2_grpc as pb_grpc

#: What compute may return: the value as bytes, or str (stored as UTF-8).
ComputeResult = Union[bytes, bytearray, memoryview, str]


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


class _Flight:
    """One get_or_compute call that concurrent callers for its key share
    (in-process single flight). Joiners block on its event on their own
    threads; the leader runs the call on its thread and lands the outcome."""

    def __init__(self):
        self._done = threading.Event()
        self.joiners = 0  # Callers that joined (under the client's flights lock).
        self.released = False  # The leader refreshes: joiners go to the server.
        self.result: Optional[GetOrComputeResult] = None
        self.shared: Optional[GetOrComputeResult] = None
        self.error: Optional[BaseException] = None

    def land(self, result: Optional[GetOrComputeResult], error: Optional[BaseException]) -> None:
        self.result, self.error = result, error
        if result is not None:  # One object for every joiner (frozen).
            self.shared = _protocol.shared_result(result)
        self._done.set()

    def release(self) -> None:
        self.released = True
        self._done.set()

    def wait(self, timeout: float) -> bool:
        return self._done.wait(max(timeout, 0.0))


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
    clear text, and the constructor warns (``corral.PlaintextTokenWarning``).

    ``near_cache`` (default on; False, or ``NearCacheLimits`` to bound it):
    hot values served from this process's memory, kept coherent by corrald
    over one NearCache stream that this client opens on its first read (one
    thread of its own). A namespace can forbid it (``near_cache: false`` in
    corrald's config) and a call can skip it (``near_cache=False``).

    ``load_balancing`` (a gRPC policy name, e.g. ``"round_robin"``) spreads
    the calls of the channel this client makes over every address the
    target resolves to (default: gRPC's pick_first, one address). corrald
    near-caches only for Gets that reach the replica holding the client's
    stream, so the stream and those Gets then go over a second channel
    pinned to one replica. With your own ``channel`` that spreads calls,
    pass ``near_cache_channel`` (a channel to one replica) for them."""

    target = _protocol.Setting()
    timeout = _protocol.Setting()
    worker_id = _protocol.Setting()

    def __init__(self, target: Optional[str] = None, *, channel: Optional[grpc.Channel] = None,
                 timeout: float = 30.0, worker_id: str = "",
                 retry: RetryPolicy = RetryPolicy(),
                 credentials: Optional[grpc.ChannelCredentials] = None,
                 token: Optional[str] = None,
                 max_receive_message_bytes: int = 64 << 20,
                 near_cache: Union[bool, NearCacheLimits] = True,
                 load_balancing: Optional[str] = None,
                 near_cache_channel: Optional[grpc.Channel] = None):
        self._core = _protocol.ClientCore(
            target, channel is not None, timeout=timeout, worker_id=worker_id, retry=retry,
            secure=credentials is not None, token=token,
            max_receive_message_bytes=max_receive_message_bytes, near_cache=near_cache,
            load_balancing=load_balancing, has_near_channel=near_cache_channel is not None)

        def make_channel(opts):
            return (grpc.secure_channel(target, credentials, opts) if credentials
                    else grpc.insecure_channel(target, opts))

        if channel is None:
            channel = make_channel(self._core.channel_options)
        self._channel = channel
        self._stub = pb_grpc.CorralStub(channel)
        # The near cache's stream and its Gets: see ClientCore.near_channel_options.
        self._own_near_channel = None
        if self._core.near_channel_options is not None:
            self._own_near_channel = make_channel(self._core.near_channel_options)
        near_channel = near_cache_channel or self._own_near_channel
        self._near_stub = pb_grpc.CorralStub(near_channel) if near_channel else self._stub
        self._flights: Dict[tuple, _Flight] = {}
        self._flights_lock = threading.Lock()
        self._near_thread: Optional[threading.Thread] = None
        self._near_call = None
        self._near_lock = threading.Lock()
        self._closing = threading.Event()

    # -- lifecycle ---------------------------------------------------------
    def close(self) -> None:
        """Stops the near cache's stream; closes the channel this client
        created (not one passed in)."""
        self._closing.set()
        with self._near_lock:
            call, thread = self._near_call, self._near_thread
        if call is not None:
            call.cancel()
        if thread is not None:
            thread.join()
        if self._core.owns_channel:
            self._channel.close()
        if self._own_near_channel is not None:
            self._own_near_channel.close()

    @property
    def near_cache(self) -> Optional[NearCache]:
        """This client's near cache (None when off): its size and counters."""
        return self._core.near_cache

    # -- the near cache's stream -------------------------------------------
    def _near_for(self, near_cache: bool) -> Optional[NearCache]:
        """The near cache for a call, its stream started (once)."""
        near = self._core.near_for(near_cache)
        if near is not None and self._near_thread is None:
            with self._near_lock:
                if self._near_thread is None and not self._closing.is_set():
                    self._near_thread = threading.Thread(
                        target=self._near_stream, args=(_protocol.NearStream(
                            near, self._core.worker_id),),
                        name="corral-near-cache", daemon=True)
                    self._near_thread.start()
        return near

    def _near_stream(self, stream: _protocol.NearStream) -> None:
        """Keeps one NearCache stream open until close(), reopening it with
        backoff; the near cache is empty whenever it is down."""
        while not self._closing.is_set():
            with self._near_lock:
                if self._closing.is_set():
                    return
                call = self._near_call = self._near_stub.NearCache(
                    stream.request, metadata=self._core.metadata)
            code, details = grpc.StatusCode.OK, ""
            try:
                for event in call:
                    stream.event(event)
            except grpc.RpcError as e:
                code, details = e.code(), e.details()
            finally:
                stream.lost()
            if self._closing.is_set():
                return
            self._closing.wait(stream.ended(code, details))

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- cache -------------------------------------------------------------
    def get(self, namespace: str, key, *, timeout: Optional[float] = None,
            near_cache: bool = True) -> Optional[CachedValue]:
        """The cached value, or None on a miss. From the near cache when it
        holds the key (``near_cache=False``: always ask corrald)."""
        near = self._near_for(near_cache)
        hit = _protocol.near_cached(near, namespace, key)
        if hit is not None:
            return hit
        return self._call(self._core.get(namespace, key, timeout, near))

    def set(self, namespace: str, key, value, *, ttl=None, lock_token: str = "",
            release_lock: bool = False, timeout: Optional[float] = None) -> bool:
        """Stores ``value`` (bytes or str) and returns whether it was stored.
        With ``lock_token`` the write is fenced (stored only while that lock
        is held; it wakes the key's GetOrCompute waiters like a Fill) and is
        sent once, never retried; ``release_lock`` releases it in the same
        call. ``ttl`` None is the namespace default."""
        return self._call(
            self._core.set(namespace, key, value, ttl, lock_token, release_lock, timeout))

    def invalidate(self, namespace: str, key, *, timeout: Optional[float] = None) -> bool:
        """Drops the cached value; returns whether there was one."""
        return self._call(self._core.invalidate(namespace, key, timeout))

    # -- locks -------------------------------------------------------------
    def acquire_lock(self, namespace: str, key, *, ttl=None, wait_timeout=None, owner: str = "",
                     timeout: Optional[float] = None) -> LockGrant:
        """Takes the key's lock (the one a GetOrCompute miss takes), waiting
        server-side up to ``wait_timeout`` (0: try once; None: namespace
        default). Not getting it is ``acquired=False``, not an error. Sent
        once (never retried). The deadline is stretched to
        wait_timeout + timeout so that a long wait is not cut short."""
        return self._call(self._core.acquire_lock(namespace, key, ttl, wait_timeout, owner, timeout))

    def renew_lock(self, namespace: str, key, token: str, *, ttl=None,
                   timeout: Optional[float] = None) -> RenewResult:
        """Extends the lock held with ``token`` by ``ttl`` (None: default)."""
        return self._call(self._core.renew_lock(namespace, key, token, ttl, timeout))

    def release_lock(self, namespace: str, key, token: str, *,
                     outcome: Outcome = Outcome.UNSPECIFIED, timeout: Optional[float] = None) -> bool:
        """Releases the lock if ``token`` still holds it; ``outcome`` feeds the
        namespace's breaker. Returns whether it was released. Sent once."""
        return self._call(self._core.release_lock(namespace, key, token, outcome, timeout))

    def lock(self, namespace: str, key, *, ttl=30.0, wait_timeout=None, owner: str = "",
             renew_every=None, on_lost: Optional[Callable[[], None]] = None) -> Lock:
        """Acquires the key's lock and returns it held, renewed in the
        background every ``renew_every`` (default ttl/3) until released::

            with client.lock("plant_id", key, ttl=30) as lock:
                ...  # lock.token, lock.fencing_token
                client.set("plant_id", key, value, lock_token=lock.token)

        Raises ``LockNotAcquired`` when ``wait_timeout`` passes first."""
        order = _protocol.lock_order(namespace, key, ttl, wait_timeout, owner, renew_every, on_lost)
        grant = self.acquire_lock(namespace, order.key, ttl=order.ttl,
                                  wait_timeout=order.wait_timeout, owner=owner)
        return Lock.start(self, namespace, order.key, grant, order.ttl,
                          wait_timeout=order.wait_timeout, renew_every=renew_every,
                          on_lost=on_lost)

    # -- breaker -----------------------------------------------------------
    def get_breaker(self, namespace: str, *, timeout: Optional[float] = None) -> BreakerInfo:
        """The namespace's circuit breaker state."""
        return self._call(self._core.get_breaker(namespace, timeout))

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
        value = _protocol.near_value(self._near_for(options.get("near_cache", True)), namespace,
                                     key)
        if value is not None:  # The hot path: no result object.
            return value
        return self.get_or_compute_result(namespace, key, compute, **options).value

    def get_or_compute_result(self, namespace: str, key, compute: Callable[[], ComputeResult], *,
                              ttl=None, wait_timeout=None, lease_ttl=None, allow_stale: bool = False,
                              timeout: Optional[float] = None,
                              worker_id: Optional[str] = None,
                              near_cache: bool = True) -> GetOrComputeResult:
        """get_or_compute, returning how the value was obtained as well.
        ``ttl``: of the value this caller fills; ``wait_timeout``: waiting
        for a peer's compute; ``lease_ttl``: lock expiry if corrald dies
        (None: namespace defaults). ``timeout`` caps the whole exchange.
        Transport failures are retried only while compute has not run.

        Concurrent calls for one (namespace, key, allow_stale, wait_timeout)
        through this client share one server call: the first caller's
        options and compute are used, on its thread; the others block (no
        extra thread) until it ends or their own ``timeout`` passes, and
        get its value (``shared`` is true) or the same exception it got. If that first caller is
        interrupted or runs out of its own timeout, a waiting caller with
        time left starts the next call.

        The near cache answers first (``near_cache=False``: skip it); then
        one unary Get, which a fresh hit ends (and may plant in the near
        cache); the GetOrCompute stream opens only on a miss, a stale value
        or an early refresh drawn by that Get."""
        near = self._near_for(near_cache)
        hit = _protocol.near_result(near, namespace, key)
        if hit is not None:
            return hit
        fkey = _protocol.flight_key(namespace, key, allow_stale, wait_timeout)
        started = time.monotonic()
        deadline = self._core.deadline(timeout)
        while True:
            with self._flights_lock:
                flight = self._flights.get(fkey)
                leading = flight is None
                if leading:
                    flight = self._flights[fkey] = _Flight()
                else:
                    flight.joiners += 1
            if leading:
                return self._lead(fkey, flight, lambda: self._get_or_compute_unshared(
                    namespace, key, compute, ttl=ttl, wait_timeout=wait_timeout,
                    lease_ttl=lease_ttl, allow_stale=allow_stale,
                    timeout=max(deadline - time.monotonic(), 0.0), worker_id=worker_id,
                    near=near, on_lease=lambda lease: self._on_lease(fkey, flight, lease)))
            if not flight.wait(deadline - time.monotonic()):
                raise _protocol.joiner_timed_out(time.monotonic() - started)
            if flight.released:
                continue
            if flight.error is None:
                return flight.shared
            if not _protocol.leader_gone(flight.error):
                raise flight.error
            if time.monotonic() >= deadline:
                raise _protocol.joiner_timed_out(time.monotonic() - started)

    def _on_lease(self, fkey: tuple, flight: _Flight, lease) -> None:
        if _protocol.releases_joiners(lease):
            self._forget(fkey, flight)
            flight.release()

    def _forget(self, fkey: tuple, flight: _Flight) -> None:
        with self._flights_lock:
            if self._flights.get(fkey) is flight:
                del self._flights[fkey]

    def _lead(self, fkey: tuple, flight: _Flight, run: Callable[[], GetOrComputeResult]):
        result, error = None, None
        try:
            result = run()
            return result
        except BaseException as e:
            error = e
            raise
        finally:
            self._forget(fkey, flight)  # Before landing: a retrying joiner starts a new flight.
            flight.land(result, error)

    def _get_or_compute_unshared(self, namespace: str, key, compute, *, ttl, wait_timeout,
                                 lease_ttl, allow_stale: bool, timeout: float,
                                 worker_id: Optional[str], near: Optional[NearCache] = None,
                                 on_lease=None) -> GetOrComputeResult:
        deadline = time.monotonic() + timeout
        first = self._call(self._core.first_get(namespace, key, near, timeout))
        if first.result is not None:
            return first.result
        exchange = self._core.get_or_compute(
            namespace, key, ttl=ttl, wait_timeout=wait_timeout, lease_ttl=lease_ttl,
            allow_stale=allow_stale, timeout=max(deadline - time.monotonic(), 0.0),
            worker_id=worker_id, refresh_due_for=first.refresh_due_for)
        while True:
            try:
                return self._attempt(exchange, compute, on_lease)
            except CorralError as err:
                delay = exchange.retry_delay(err)
                if delay is None:
                    raise
                time.sleep(delay)

    def _attempt(self, exchange: _protocol.Exchange, compute, on_lease=None) -> GetOrComputeResult:
        feed = _RequestFeed(exchange.start())
        call = self._stub.GetOrCompute(iter(feed), timeout=exchange.remaining(),
                                       metadata=self._core.metadata)
        try:
            try:
                first = next(call, None)
            except grpc.RpcError as e:
                raise error_from_rpc(e) from e
            result = exchange.first_answer(first)
            if result is not None:  # A value: how the call ends is moot.
                feed.close()
                _drain(call)
                return result
            if on_lease is not None:
                on_lease(exchange.lease)
            return self._run_lease(call, feed, exchange, compute)
        except BaseException:
            call.cancel()  # Leaves the wait, or abandons a lease; no-op once done.
            raise
        finally:
            feed.close()

    def _run_lease(self, call, feed: _RequestFeed, exchange: _protocol.Exchange,
                   compute) -> GetOrComputeResult:
        try:
            message = exchange.compute_returned(compute())
        except Exception as e:  # The upstream failed.
            message = exchange.compute_raised(e)
        # A BaseException (KeyboardInterrupt, SystemExit) propagates: _attempt
        # cancels the call, and a cancelled leaseholder has abandoned.
        feed.send(message)
        if not exchange.filling:
            feed.close()
            _drain(call)
            return exchange.abandoned()
        try:
            answer = next(call, None)
        except grpc.RpcError as e:
            return exchange.fill_failed(error_from_rpc(e))
        ending = exchange.fill_answered(answer)
        if ending.close:
            feed.close()
            _drain(call)
        else:
            call.cancel()
        return ending.result

    # -- plumbing ----------------------------------------------------------
    def _call(self, unary: _protocol.Unary):
        method = getattr(self._near_stub if unary.near else self._stub, unary.method)
        try:
            while True:
                try:
                    response = method(unary.request, timeout=unary.attempts.remaining(),
                                      metadata=self._core.metadata)
                except grpc.RpcError as e:
                    time.sleep(_protocol.retry_delay(unary.attempts, e))
                    continue
                return unary.result(response)
        except BaseException:
            unary.failed()
            raise
