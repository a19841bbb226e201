"""The asyncio client of corral, on ``grpc.aio``.

    async with corral.aio.AsyncClient("127.0.0.1:50051") as client:
        value = await client.get_or_compute("plant_id", image_hash, fetch)

Same methods, arguments, results and exceptions as ``corral.Client``, as
coroutines. Create the client inside the running event loop that uses it
(grpc.aio binds a channel to its loop). ``compute`` may be a coroutine
function (awaited) or a plain function (called on the loop: keep it quick,
or wrap blocking work in ``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import Awaitable, Callable, Dict, List, Optional, Tuple, Union

import grpc
import grpc.aio

from corral import _protocol
from corral._nearcache import NearCache, NearCacheLimits
from corral._retry import RetryPolicy
from corral.client import ComputeResult
from corral.errors import CorralError, error_from_rpc, error_from_status
from corral.results import (BreakerInfo, CachedValue, GetOrComputeResult, LockGrant, Outcome,
                            RenewResult)
from corral.v1 import corral_pb2_grpc as pb_grpc

AsyncCompute = Callable[[], Union[ComputeResult, Awaitable[ComputeResult]]]


async def _drain(call) -> None:
    """Reads what the server still sends so the call can end."""
    try:
        while await call.read() is not grpc.aio.EOF:
            pass
    except (grpc.RpcError, asyncio.InvalidStateError):
        pass


async def _send(call, msg) -> bool:
    """Writes ``msg``; False when the call is already over (its status, read
    next, says why)."""
    try:
        await call.write(msg)
        return True
    except (grpc.RpcError, asyncio.InvalidStateError):
        return False


async def _half_close(call) -> None:
    try:
        await call.done_writing()
    except (grpc.RpcError, asyncio.InvalidStateError):
        pass


def _cancelling() -> bool:
    """This task is being cancelled (asyncio.Task.cancelling, Python 3.11+)."""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    return bool(cancelling and cancelling())


class _Flight:
    """One get_or_compute call that concurrent tasks for its key share
    (in-process single flight): a task of its own, so that no caller's
    cancellation cancels it; it is cancelled when its last caller leaves."""

    def __init__(self):
        self.task: Optional[asyncio.Task] = None
        self.callers = 0
        # Open when joiners stop waiting: the task ended, or it refreshes
        # (the joiners then go to the server). Each joiner waits on a future
        # of its own, so that cancelling it touches nobody else; one timer
        # per flight (at the earliest joiner deadline) expires them.
        self.gate_open = False
        self._waiters: List[Tuple[float, asyncio.Future]] = []
        self._timer: Optional[asyncio.TimerHandle] = None
        self._shared: Optional[GetOrComputeResult] = None

    def open_gate(self) -> None:
        self.gate_open = True
        waiters, self._waiters = self._waiters, []
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for _, w in waiters:
            if not w.done():
                w.set_result(True)

    async def join(self, deadline: float) -> bool:
        """Waits until the gate opens (True) or the monotonic ``deadline``
        passes (False)."""
        if self.gate_open:
            return True
        loop = asyncio.get_running_loop()
        w = loop.create_future()
        self._waiters.append((deadline, w))
        if self._timer is None or deadline < self._timer_at:
            self._arm(loop, deadline)
        return await w

    def _arm(self, loop, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        # loop.time() is time.monotonic() on the default loops.
        self._timer = loop.call_at(loop.time() + (at - time.monotonic()), self._expire, loop)

    def _expire(self, loop) -> None:
        self._timer = None
        now = time.monotonic()
        keep = []
        for deadline, w in self._waiters:
            if w.done():
                continue
            if deadline <= now:
                w.set_result(False)
            else:
                keep.append((deadline, w))
        self._waiters = keep
        if keep:
            self._arm(loop, min(d for d, _ in keep))

    def shared(self) -> GetOrComputeResult:
        """The task's result as every joiner sees it (one object: frozen)."""
        if self._shared is None:
            self._shared = _protocol.shared_result(self.task.result())
        return self._shared

    def outcome(self) -> Optional[BaseException]:
        """The done task's error (None: it has a result)."""
        if self.task.cancelled():
            return asyncio.CancelledError()
        return self.task.exception()


class AsyncClient:
    """A connection to corrald for asyncio code. Options as corral.Client
    (the near cache's stream is a task on the client's loop). Safe to share
    between tasks of one event loop."""

    target = _protocol.Setting()
    timeout = _protocol.Setting()
    worker_id = _protocol.Setting()

    def __init__(self, target: Optional[str] = None, *, channel: Optional[grpc.aio.Channel] = None,
                 timeout: float = 30.0, worker_id: str = "",
                 retry: RetryPolicy = RetryPolicy(),
                 credentials: Optional[grpc.ChannelCredentials] = None,
                 token: Optional[str] = None,
                 max_receive_message_bytes: int = 64 << 20,
                 near_cache: Union[bool, NearCacheLimits] = True,
                 load_balancing: Optional[str] = None,
                 near_cache_channel: Optional[grpc.aio.Channel] = None):
        self._core = _protocol.ClientCore(
            target, channel is not None, timeout=timeout, worker_id=worker_id, retry=retry,
            secure=credentials is not None, token=token,
            max_receive_message_bytes=max_receive_message_bytes, near_cache=near_cache,
            load_balancing=load_balancing, has_near_channel=near_cache_channel is not None)

        def make_channel(opts):
            return (grpc.aio.secure_channel(target, credentials, opts) if credentials
                    else grpc.aio.insecure_channel(target, opts))

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
        self._near_task: Optional[asyncio.Task] = None
        self._closing = False

    async def close(self) -> None:
        """Stops the near cache's stream; closes the channel this client
        created (not one passed in)."""
        self._closing = True
        task = self._near_task
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        if self._core.owns_channel:
            await self._channel.close()
        if self._own_near_channel is not None:
            await self._own_near_channel.close()

    @property
    def near_cache(self) -> Optional[NearCache]:
        """This client's near cache (None when off): its size and counters."""
        return self._core.near_cache

    # -- the near cache's stream -------------------------------------------
    def _near_for(self, near_cache: bool) -> Optional[NearCache]:
        """The near cache for a call, its stream started (once)."""
        near = self._core.near_for(near_cache)
        if near is not None and self._near_task is None and not self._closing:
            self._near_task = asyncio.get_running_loop().create_task(
                self._near_stream(_protocol.NearStream(near, self._core.worker_id)))
        return near

    async def _near_stream(self, stream: _protocol.NearStream) -> None:
        """Keeps one NearCache stream open until close(), reopening it with
        backoff; the near cache is empty whenever it is down."""
        while not self._closing:
            call = self._near_stub.NearCache(stream.request, metadata=self._core.metadata)
            try:
                async for event in call:
                    stream.event(event)
                code, details = await call.code(), await call.details()
            except grpc.RpcError as e:
                code, details = e.code(), e.details()
            finally:
                stream.lost()
                call.cancel()
            if self._closing:
                return
            await asyncio.sleep(stream.ended(code, details))

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # -- cache -------------------------------------------------------------
    async def get(self, namespace: str, key, *, timeout: Optional[float] = None,
                  near_cache: bool = True) -> Optional[CachedValue]:
        """As Client.get: the cached value (from the near cache when it
        holds it), or None on a miss."""
        near = self._near_for(near_cache)
        hit = _protocol.near_cached(near, namespace, key)
        if hit is not None:
            return hit
        return await self._call(self._core.get(namespace, key, timeout, near))

    async def set(self, namespace: str, key, value, *, ttl=None, lock_token: str = "",
                  release_lock: bool = False, timeout: Optional[float] = None) -> bool:
        """As Client.set: stores ``value``; fenced (and sent once) with ``lock_token``."""
        return await self._call(
            self._core.set(namespace, key, value, ttl, lock_token, release_lock, timeout))

    async def invalidate(self, namespace: str, key, *, timeout: Optional[float] = None) -> bool:
        """Drops the cached value; returns whether there was one."""
        return await self._call(self._core.invalidate(namespace, key, timeout))

    # -- locks -------------------------------------------------------------
    async def acquire_lock(self, namespace: str, key, *, ttl=None, wait_timeout=None,
                           owner: str = "", timeout: Optional[float] = None) -> LockGrant:
        """As Client.acquire_lock (``acquired=False`` after ``wait_timeout``)."""
        return await self._call(self._core.acquire_lock(namespace, key, ttl, wait_timeout, owner,
                                                        timeout))

    async def renew_lock(self, namespace: str, key, token: str, *, ttl=None,
                         timeout: Optional[float] = None) -> RenewResult:
        return await self._call(self._core.renew_lock(namespace, key, token, ttl, timeout))

    async def release_lock(self, namespace: str, key, token: str, *,
                           outcome: Outcome = Outcome.UNSPECIFIED,
                           timeout: Optional[float] = None) -> bool:
        return await self._call(self._core.release_lock(namespace, key, token, outcome, timeout))

    def lock(self, namespace: str, key, *, ttl=30.0, wait_timeout=None, owner: str = "",
             renew_every=None, on_lost: Optional[Callable[[], None]] = None) -> "_LockRequest":
        """The key's lock, renewed by a task while held::

            async with client.lock("plant_id", key, ttl=30) as lock:
                ...

        or ``lock = await client.lock(...)`` then ``await lock.release()``.
        ``on_lost`` runs (on the loop) if the lock is lost, as for Client.lock.
        Raises ``LockNotAcquired`` when ``wait_timeout`` passes first."""
        return _LockRequest(self, _protocol.lock_order(namespace, key, ttl, wait_timeout, owner,
                                                       renew_every, on_lost))

    # -- breaker -----------------------------------------------------------
    async def get_breaker(self, namespace: str, *, timeout: Optional[float] = None) -> BreakerInfo:
        return await self._call(self._core.get_breaker(namespace, timeout))

    # -- GetOrCompute ------------------------------------------------------
    async def get_or_compute(self, namespace: str, key, compute: AsyncCompute, **options) -> bytes:
        """As Client.get_or_compute; ``compute`` may be async. If the task is
        cancelled while computing, the lease is abandoned (no upstream
        failure) and CancelledError propagates."""
        value = _protocol.near_value(self._near_for(options.get("near_cache", True)), namespace,
                                     key)
        if value is not None:  # The hot path: no result object.
            return value
        return (await self.get_or_compute_result(namespace, key, compute, **options)).value

    async def get_or_compute_result(self, namespace: str, key, compute: AsyncCompute, *,
                                    ttl=None, wait_timeout=None, lease_ttl=None,
                                    allow_stale: bool = False, timeout: Optional[float] = None,
                                    worker_id: Optional[str] = None,
                                    near_cache: bool = True) -> GetOrComputeResult:
        """As Client.get_or_compute_result (near cache, then one unary Get,
        then the stream), single flight included: the shared call runs in a
        task of its own with the first caller's compute, so cancelling any
        caller (the first included) does not cancel it for the others; it
        is cancelled (the lease abandoned) when every caller has left."""
        near = self._near_for(near_cache)
        hit = _protocol.near_result(near, namespace, key)
        if hit is not None:
            return hit
        fkey = _protocol.flight_key(namespace, key, allow_stale, wait_timeout)
        started = time.monotonic()
        deadline = self._core.deadline(timeout)
        while True:
            flight = self._flights.get(fkey)
            leading = flight is None
            if leading:
                flight = _Flight()
                self._start_flight(fkey, flight, self._get_or_compute_unshared(
                    namespace, key, compute, ttl=ttl, wait_timeout=wait_timeout,
                    lease_ttl=lease_ttl, allow_stale=allow_stale,
                    timeout=max(deadline - time.monotonic(), 0.0), worker_id=worker_id,
                    near=near, on_lease=lambda lease, f=flight: self._on_lease(fkey, f, lease)))
            flight.callers += 1
            try:
                if leading:
                    await self._lead(flight, deadline, started)
                elif not await flight.join(deadline):
                    raise _protocol.joiner_timed_out(time.monotonic() - started)
            finally:
                flight.callers -= 1
                if flight.callers == 0 and not flight.task.done():
                    flight.task.cancel()  # Nobody waits for it: abandon.
            if not flight.task.done():
                continue  # Released: the leader refreshes, this caller asks the server.
            error = flight.outcome()
            if error is None:
                return flight.task.result() if leading else flight.shared()
            if not _protocol.leader_gone(error):
                raise error
            if time.monotonic() >= deadline:
                raise _protocol.joiner_timed_out(time.monotonic() - started)

    @staticmethod
    async def _lead(flight: _Flight, deadline: float, started: float) -> None:
        """The first caller waits for the flight's task (shielded: leaving
        does not cancel it for the others), up to its own deadline."""
        try:
            await asyncio.wait_for(asyncio.shield(flight.task),
                                   max(deadline - time.monotonic(), 0.0))
        except BaseException as e:
            if not flight.task.done() or _cancelling():  # Its own timeout or cancellation.
                if isinstance(e, asyncio.TimeoutError):
                    raise _protocol.joiner_timed_out(time.monotonic() - started) from None
                raise

    def _start_flight(self, fkey: tuple, flight: _Flight, call) -> None:
        flight.task = asyncio.ensure_future(call)
        self._flights[fkey] = flight

        def landed(task) -> None:
            self._forget(fkey, flight)
            flight.open_gate()
            if not task.cancelled():
                task.exception()  # Retrieved: every caller may have left.

        flight.task.add_done_callback(landed)

    def _on_lease(self, fkey: tuple, flight: _Flight, lease) -> None:
        if _protocol.releases_joiners(lease):
            self._forget(fkey, flight)
            flight.open_gate()

    def _forget(self, fkey: tuple, flight: _Flight) -> None:
        if self._flights.get(fkey) is flight:
            del self._flights[fkey]

    async def _get_or_compute_unshared(self, namespace: str, key, compute, *, ttl, wait_timeout,
                                       lease_ttl, allow_stale: bool, timeout: float,
                                       worker_id: Optional[str],
                                       near: Optional[NearCache] = None,
                                       on_lease=None) -> GetOrComputeResult:
        deadline = time.monotonic() + timeout
        first = await self._call(self._core.first_get(namespace, key, near, timeout))
        if first.result is not None:
            return first.result
        exchange = self._core.get_or_compute(
            namespace, key, ttl=ttl, wait_timeout=wait_timeout, lease_ttl=lease_ttl,
            allow_stale=allow_stale, timeout=max(deadline - time.monotonic(), 0.0),
            worker_id=worker_id, refresh_due_for=first.refresh_due_for)
        while True:
            try:
                return await self._attempt(exchange, compute, on_lease)
            except CorralError as err:
                delay = exchange.retry_delay(err)
                if delay is None:
                    raise
                await asyncio.sleep(delay)

    async def _attempt(self, exchange: _protocol.Exchange, compute,
                       on_lease=None) -> GetOrComputeResult:
        call = self._stub.GetOrCompute(timeout=exchange.remaining(), metadata=self._core.metadata)
        try:
            return await self._exchange(call, exchange, compute, on_lease)
        except BaseException:
            call.cancel()  # Leaves the wait, or abandons a lease; no-op once done.
            raise

    async def _exchange(self, call, exchange: _protocol.Exchange, compute,
                        on_lease) -> GetOrComputeResult:
        try:
            await _send(call, exchange.start())
            first = await call.read()
        except grpc.RpcError as e:
            raise error_from_rpc(e) from e
        if first is grpc.aio.EOF:
            code = await call.code()
            if code != grpc.StatusCode.OK:
                raise error_from_status(code, await call.details() or "", await call.trailing_metadata())
            first = None
        result = exchange.first_answer(first)
        if result is not None:
            await _half_close(call)
            await _drain(call)
            return result
        if on_lease is not None:
            on_lease(exchange.lease)
        return await self._run_lease(call, exchange, compute)

    async def _run_lease(self, call, exchange: _protocol.Exchange, compute) -> GetOrComputeResult:
        try:
            raw = compute()
            if inspect.isawaitable(raw):
                raw = await raw
            message = exchange.compute_returned(raw)
        except Exception as e:  # The upstream failed.
            message = exchange.compute_raised(e)
        # A BaseException (CancelledError) propagates: _attempt cancels the
        # call, and a cancelled leaseholder has abandoned.
        if not exchange.filling:
            await _send(call, message)
            await _half_close(call)
            await _drain(call)
            return exchange.abandoned()
        try:
            await call.write(message)
            answer = await call.read()
        except grpc.RpcError as e:
            return exchange.fill_failed(error_from_rpc(e))
        except asyncio.InvalidStateError:
            answer = grpc.aio.EOF
        ending = exchange.fill_answered(None if answer is grpc.aio.EOF else answer)
        if ending.close:
            await _half_close(call)
            await _drain(call)
        else:
            call.cancel()
        return ending.result

    async def _call(self, unary: _protocol.Unary):
        method = getattr(self._near_stub if unary.near else self._stub, unary.method)
        try:
            while True:
                try:
                    response = await method(unary.request, timeout=unary.attempts.remaining(),
                                            metadata=self._core.metadata)
                except grpc.RpcError as e:
                    await asyncio.sleep(_protocol.retry_delay(unary.attempts, e))
                    continue
                return unary.result(response)
        except BaseException:
            unary.failed()
            raise


class AsyncLock:
    """A lock held by asyncio code, renewed by a task every ``renew_every``
    (default ttl/3). Attributes as corral.Lock."""

    def __init__(self, client: AsyncClient, namespace: str, key: bytes, grant: LockGrant,
                 ttl: float, renew_every: Optional[float],
                 on_lost: Optional[Callable[[], None]] = None):
        self._client = client
        self.namespace = namespace
        self.key = key
        self.token = grant.token
        self.fencing_token = grant.fencing_token
        self.waited = grant.waited
        self.expires_at = grant.expires_at
        self.lost = False
        self.released = False
        self._on_lost = on_lost
        self._timing = _protocol.RenewTiming(ttl, renew_every, time.monotonic())
        self._task = asyncio.get_running_loop().create_task(self._renew_loop())

    async def release(self, outcome: Outcome = Outcome.UNSPECIFIED) -> bool:
        """Stops renewing, then releases, telling the breaker ``outcome``.
        Returns whether the server released it. A second call raises
        RuntimeError."""
        if self.released:
            raise RuntimeError("lock already released")
        self.released = True
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        return await self._client.release_lock(self.namespace, self.key, self.token, outcome=outcome)

    async def _renew_loop(self) -> None:
        timing = self._timing
        while True:
            await asyncio.sleep(timing.period)
            sent = time.monotonic()
            try:
                r = await self._client.renew_lock(self.namespace, self.key, self.token,
                                                  ttl=timing.ttl, timeout=timing.call_timeout)
            except CorralError:
                r = None  # Still ours until it expires; try again next period.
            if not timing.still_held(r, sent, time.monotonic()):
                self._mark_lost()
                return
            if r is not None:
                self.expires_at = r.expires_at

    def _mark_lost(self) -> None:
        self.lost = True
        if self._on_lost is not None:
            self._on_lost()


class _LockRequest:
    """What AsyncClient.lock returns: awaitable (the held AsyncLock) and an
    async context manager (releases on exit)."""

    def __init__(self, client: AsyncClient, order: _protocol.LockOrder):
        self._client = client
        self._order = order
        self._lock: Optional[AsyncLock] = None

    async def _acquire(self) -> AsyncLock:
        o = self._order
        grant = await self._client.acquire_lock(o.namespace, o.key, ttl=o.ttl,
                                                wait_timeout=o.wait_timeout, owner=o.owner)
        _protocol.check_acquired(grant, o.wait_timeout)
        return AsyncLock(self._client, o.namespace, o.key, grant, o.ttl, o.renew_every, o.on_lost)

    def __await__(self):
        return self._acquire().__await__()

    async def __aenter__(self) -> AsyncLock:
        self._lock = await self._acquire()
        return self._lock

    async def __aexit__(self, exc_type, exc, tb) -> None:
        if self._lock is None or self._lock.released:
            return
        try:
            await self._lock.release()
        except CorralError:
            if exc is None:
                raise
