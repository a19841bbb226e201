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
from typing import Awaitable, Callable, Optional, Union

import grpc
import grpc.aio

from corral import _convert, _protocol
from corral._retry import RetryPolicy, RetryState
from corral.client import ComputeResult, channel_options
from corral.errors import (CorralError, Internal, LockNotAcquired, error_from_rpc,
                           error_from_status)
from corral.results import (BreakerInfo, CachedValue, GetOrComputeResult, LeaseMode, LockGrant,
                            Outcome, RenewResult)
from corral.v1 import corral_pb2 as pb
from corral.v1 import corral_pb2_grpc as pb_grpc

_NO_RETRY = RetryPolicy(max_attempts=1)
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


class AsyncClient:
    """A connection to corrald for asyncio code. Options as corral.Client.
    Safe to share between tasks of one event loop."""

    def __init__(self, target: Optional[str] = None, *, channel: Optional[grpc.aio.Channel] = None,
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
            channel = (grpc.aio.secure_channel(target, credentials, opts) if credentials
                       else grpc.aio.insecure_channel(target, opts))
        self._channel = channel
        self._stub = pb_grpc.CorralStub(channel)

    async def close(self) -> None:
        """Closes the channel this client created (not one passed in)."""
        if self._owns_channel:
            await self._channel.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # -- cache -------------------------------------------------------------
    async def get(self, namespace: str, key, *, timeout: Optional[float] = None) -> Optional[CachedValue]:
        """The cached value, or None on a miss."""
        r = await self._unary(self._stub.Get, pb.GetRequest(
            namespace=namespace, key=_convert.to_bytes(key, "key")), timeout)
        return _convert.cached_value(r.value) if r.found else None

    async def set(self, namespace: str, key, value, *, ttl=None, lock_token: str = "",
                  release_lock: bool = False, timeout: Optional[float] = None) -> bool:
        """As Client.set: stores ``value``; fenced (and sent once) with ``lock_token``."""
        req = _protocol.set_request(namespace, key, value, ttl, lock_token, release_lock)
        return (await self._unary(self._stub.Set, req, timeout, idempotent=not lock_token)).stored

    async def invalidate(self, namespace: str, key, *, timeout: Optional[float] = None) -> bool:
        """Drops the cached value; returns whether there was one."""
        return (await self._unary(self._stub.Invalidate, pb.InvalidateRequest(
            namespace=namespace, key=_convert.to_bytes(key, "key")), timeout)).existed

    # -- locks -------------------------------------------------------------
    async def acquire_lock(self, namespace: str, key, *, ttl=None, wait_timeout=None,
                           owner: str = "", timeout: Optional[float] = None) -> LockGrant:
        """As Client.acquire_lock (``acquired=False`` after ``wait_timeout``)."""
        req = _protocol.acquire_request(namespace, key, ttl, wait_timeout, owner or self.worker_id)
        r = await self._unary(self._stub.AcquireLock, req,
                              _protocol.lock_wait_budget(self.timeout, wait_timeout, timeout),
                              idempotent=False)
        return _protocol.grant(r)

    async def renew_lock(self, namespace: str, key, token: str, *, ttl=None,
                         timeout: Optional[float] = None) -> RenewResult:
        r = await self._unary(self._stub.RenewLock,
                              _protocol.renew_request(namespace, key, token, ttl), timeout)
        return _protocol.renewed(r)

    async def release_lock(self, namespace: str, key, token: str, *,
                           outcome: Outcome = Outcome.UNSPECIFIED,
                           timeout: Optional[float] = None) -> bool:
        r = await self._unary(self._stub.ReleaseLock,
                              _protocol.release_request(namespace, key, token, outcome),
                              timeout, idempotent=False)
        return r.released

    def lock(self, namespace: str, key, *, ttl=30.0, wait_timeout=None, owner: str = "",
             renew_every=None, on_lost: Optional[Callable[[], None]] = None) -> "_LockRequest":
        """The key's lock, renewed by a task while held::

            async with client.lock("plant_id", key, ttl=30) as lock:
                ...

        or ``lock = await client.lock(...)`` then ``await lock.release()``.
        ``on_lost`` runs (on the loop) if the lock is lost, as for Client.lock.
        Raises ``LockNotAcquired`` when ``wait_timeout`` passes first."""
        ttl_s = _convert.seconds(ttl)
        if not ttl_s:
            raise ValueError("a held lock needs a positive ttl")
        return _LockRequest(self, namespace, _convert.to_bytes(key, "key"), ttl_s,
                            _convert.seconds(wait_timeout), owner, renew_every, on_lost)

    # -- breaker -----------------------------------------------------------
    async def get_breaker(self, namespace: str, *, timeout: Optional[float] = None) -> BreakerInfo:
        r = await self._unary(self._stub.GetBreaker, pb.GetBreakerRequest(namespace=namespace), timeout)
        return _protocol.breaker(r)

    # -- GetOrCompute ------------------------------------------------------
    async def get_or_compute(self, namespace: str, key, compute: AsyncCompute, **options) -> bytes:
        """As Client.get_or_compute; ``compute`` may be async. If the task is
        cancelled while computing, the lease is abandoned (no upstream
        failure) and CancelledError propagates."""
        return (await self.get_or_compute_result(namespace, key, compute, **options)).value

    async def get_or_compute_result(self, namespace: str, key, compute: AsyncCompute, *,
                                    ttl=None, wait_timeout=None, lease_ttl=None,
                                    allow_stale: bool = False, timeout: Optional[float] = None,
                                    worker_id: Optional[str] = None) -> GetOrComputeResult:
        """As Client.get_or_compute_result."""
        request = _protocol.lookup(namespace, key, ttl=ttl, wait_timeout=wait_timeout,
                                   lease_ttl=lease_ttl, allow_stale=allow_stale,
                                   worker_id=self.worker_id if worker_id is None else worker_id)
        state = RetryState(self._retry, time.monotonic() + (self.timeout if timeout is None else timeout))
        while True:
            ran = [False]
            try:
                return await self._attempt(request, compute, ttl, state, ran)
            except CorralError as err:
                if ran[0]:
                    raise
                delay = state.next_delay(err, False)
                if delay is None:
                    raise
                await asyncio.sleep(delay)

    async def _attempt(self, request, compute, ttl, state: RetryState, ran) -> GetOrComputeResult:
        call = self._stub.GetOrCompute(timeout=state.remaining(), metadata=self._metadata)
        try:
            return await self._exchange(call, request, compute, ttl, state, ran)
        except BaseException:
            call.cancel()  # Leaves the wait, or abandons a lease; no-op once done.
            raise

    async def _exchange(self, call, request, compute, ttl, state: RetryState,
                        ran) -> GetOrComputeResult:
        try:
            await _send(call, request)
            first = await call.read()
        except grpc.RpcError as e:
            raise error_from_rpc(e) from e
        if first is grpc.aio.EOF:
            code = await call.code()
            if code != grpc.StatusCode.OK:
                raise error_from_status(code, await call.details() or "", await call.trailing_metadata())
            raise Internal("corral ended GetOrCompute without a reply")
        kind = first.WhichOneof("msg")
        if kind == "value":
            await _half_close(call)
            await _drain(call)
            return _protocol.from_value(first.value, state.attempts)
        if kind == "lease":
            ran[0] = True
            return await self._run_lease(call, first.lease, compute, ttl, state.attempts)
        call.cancel()
        raise Internal(f"corral answered Lookup with {kind!r}")

    async def _run_lease(self, call, lease: pb.Lease, compute, ttl, attempts: int) -> GetOrComputeResult:
        try:
            raw = compute()
            if inspect.isawaitable(raw):
                raw = await raw
            computed = _protocol.accept_result(raw)
        except Exception as e:  # The upstream failed.
            computed = _protocol.Computed(error=e, upstream_failure=True)
        # A BaseException (CancelledError) propagates: _attempt cancels the
        # call, and a cancelled leaseholder has abandoned.
        if computed.error is not None:
            await _send(call, _protocol.abandon(_protocol.describe(computed.error),
                                                computed.upstream_failure))
            await _half_close(call)
            await _drain(call)
            if computed.upstream_failure and lease.mode == LeaseMode.REFRESH:
                return _protocol.refresh_fallback(lease, computed.error, attempts)
            raise computed.error
        try:
            await call.write(_protocol.fill(computed.value, ttl))
            answer = await call.read()
        except grpc.RpcError as e:
            # The value is good even if the cache did not take it.
            return _protocol.computed_result(lease, computed.value, attempts, None,
                                             str(error_from_rpc(e)))
        except asyncio.InvalidStateError:
            answer = grpc.aio.EOF
        if answer is grpc.aio.EOF or answer.WhichOneof("msg") != "filled":
            call.cancel()
            what = "no answer" if answer is grpc.aio.EOF else answer.WhichOneof("msg")
            return _protocol.computed_result(lease, computed.value, attempts, None,
                                             f"unexpected answer to Fill: {what}")
        await _half_close(call)
        await _drain(call)
        return _protocol.computed_result(lease, computed.value, attempts, answer.filled)

    async def _unary(self, method, request, timeout: Optional[float], idempotent: bool = True):
        budget = self.timeout if timeout is None else timeout
        state = RetryState(self._retry if idempotent else _NO_RETRY, time.monotonic() + budget)
        while True:
            try:
                return await method(request, timeout=state.remaining(), metadata=self._metadata)
            except grpc.RpcError as e:
                err = error_from_rpc(e)
                delay = state.next_delay(err, False)
                if delay is None:
                    raise err from e
                await asyncio.sleep(delay)


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
        self._ttl = ttl
        self._period = float(renew_every) if renew_every else ttl / 3.0
        self._on_lost = on_lost
        self._expires_mono = time.monotonic() + ttl
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
        while True:
            await asyncio.sleep(self._period)
            sent = time.monotonic()
            try:
                r = await self._client.renew_lock(self.namespace, self.key, self.token,
                                                  ttl=self._ttl, timeout=max(self._period, 0.05))
            except CorralError:
                if time.monotonic() < self._expires_mono:
                    continue
                self._mark_lost()
                return
            if not r.renewed:
                self._mark_lost()
                return
            self.expires_at = r.expires_at
            self._expires_mono = sent + self._ttl


    def _mark_lost(self) -> None:
        self.lost = True
        if self._on_lost is not None:
            self._on_lost()


class _LockRequest:
    """What AsyncClient.lock returns: awaitable (the held AsyncLock) and an
    async context manager (releases on exit)."""

    def __init__(self, client: AsyncClient, namespace, key, ttl, wait_timeout, owner, renew_every,
                 on_lost):
        self._args = (client, namespace, key, ttl, wait_timeout, owner, renew_every, on_lost)
        self._lock: Optional[AsyncLock] = None

    async def _acquire(self) -> AsyncLock:
        client, namespace, key, ttl, wait_timeout, owner, renew_every, on_lost = self._args
        grant = await client.acquire_lock(namespace, key, ttl=ttl, wait_timeout=wait_timeout,
                                          owner=owner)
        if not grant.acquired:
            waited = "the namespace's default wait" if wait_timeout is None else f"{wait_timeout:g}s"
            raise LockNotAcquired(f"lock not acquired within {waited}")
        return AsyncLock(client, namespace, key, grant, ttl, renew_every, on_lost)

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
