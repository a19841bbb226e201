"""The protocol of the corral clients, sans I/O: the client's settings, the
unary calls (request, deadline, retries, result), the GetOrCompute exchange
(every decision, step by step), the near cache's reads and stream (around
_nearcache.py's rules) and the timing of held locks. The blocking client
(client.py) and the asyncio one (aio.py) are thin shells around it: they
send, receive and wait, and differ only in how they wait.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import re
import time
import warnings
from typing import Any, Callable, NamedTuple, Optional, Union

import grpc

from corral import _convert
from corral._nearcache import (UNSUPPORTED_BACKOFF, Backoff, NearCache, NearCacheLimits, NearKey,
                               Ticket)
from corral._retry import RetryPolicy, RetryState
from corral.errors import (Cancelled, CorralError, DeadlineExceeded, Internal, LockNotAcquired,
                           error_from_rpc)
from corral.results import (BreakerInfo, BreakerState, CachedValue, GetOrComputeResult, LeaseMode,
                            LockGrant, RenewResult, Source)
from corral.v1 import corral_pb2 as pb

_log = logging.getLogger("corral")

# Abandon reasons are for the server's logs; keep them bounded.
MAX_ABANDON_REASON = 512


class PlaintextTokenWarning(UserWarning):
    """A client was given a bearer token and no TLS credentials for a target
    beyond this host: the token (and every key and value) crosses the
    network unencrypted. Pass ``credentials`` (TLS), or silence it with
    ``warnings.filterwarnings("ignore", category=corral.PlaintextTokenWarning)``
    where the network is trusted."""


# gRPC target schemes that name this host only.
_LOCAL_SCHEMES = ("unix:", "unix-abstract:")


def _is_loopback_host(host: str) -> bool:
    host = host.strip()
    if host.startswith("[") and "]" in host:
        host = host[1:host.index("]")]
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False  # Any other name may resolve beyond this host.
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or bool(mapped and mapped.is_loopback)


def _strip_port(address: str) -> str:
    """host of host:port, [v6]:port, a bare v6 address or a bare host."""
    if address.startswith("["):
        return address
    if address.count(":") == 1:
        return address.rsplit(":", 1)[0]
    return address  # No port, or a bare IPv6 address.


def is_loopback_target(target: str) -> bool:
    """True when a gRPC target can only reach this host: unix sockets,
    localhost, 127.0.0.0/8 and ::1 (as host:port, dns:[//authority/]host:port,
    ipv4:/ipv6: address lists). Anything else -- other names, other
    addresses, other resolvers -- is not."""
    t = target.strip()
    if t.startswith(_LOCAL_SCHEMES):
        return True
    if t.startswith(("ipv4:", "ipv6:")):
        addresses = t.split(":", 1)[1].split(",")
        return bool(addresses) and all(_is_loopback_host(_strip_port(a)) for a in addresses)
    if t.startswith("dns:"):
        t = t[len("dns:"):]
        if t.startswith("//"):
            t = t[2:].split("/", 1)[1] if "/" in t[2:] else ""
    elif "://" in t or re.match(r"^[a-z][a-z0-9+.-]*:(?!\d)", t):
        return False  # Another resolver (xds:, a custom one): not provably local.
    return bool(t) and _is_loopback_host(_strip_port(t))


def warn_if_plaintext_token(target: str, secure: bool, token: Optional[str],
                            stacklevel: int = 3) -> None:
    """Warns (PlaintextTokenWarning) when ``token`` would be sent without TLS
    to a target beyond this host. The default ``stacklevel`` points at the
    code that constructed the client (this function <- the client's
    ``__init__`` <- that code)."""
    if token and not secure and not is_loopback_target(target):
        warnings.warn(
            f"corral: sending a bearer token in plaintext to {target!r}: without TLS "
            f"anyone on the network path can read it and use it; pass credentials="
            f"grpc.ssl_channel_credentials(...)", PlaintextTokenWarning, stacklevel=stacklevel)


def lookup(namespace: str, key, *, ttl=None, wait_timeout=None, lease_ttl=None,
           allow_stale: bool = False, worker_id: str = "",
           refresh_due_for=None) -> pb.GetOrComputeRequest:
    """The first message of the exchange. Unset durations stay unset (the
    namespace default). ``refresh_due_for``: the preceding Get's draw said
    "refresh" (GetResponse.refresh_due_for), so the server does not draw again."""
    msg = pb.Lookup(namespace=namespace, key=_convert.to_bytes(key, "key"),
                    allow_stale=allow_stale, worker_id=worker_id)
    if refresh_due_for is not None:
        msg.refresh_due_for.CopyFrom(refresh_due_for)
    _set_duration(msg, "ttl", ttl)
    _set_duration(msg, "wait_timeout", wait_timeout)
    _set_duration(msg, "lease_ttl", lease_ttl)
    return pb.GetOrComputeRequest(lookup=msg)


def fill(value: bytes, ttl=None) -> pb.GetOrComputeRequest:
    msg = pb.Fill(value=value)
    _set_duration(msg, "ttl", ttl)
    return pb.GetOrComputeRequest(fill=msg)


def abandon(reason: str, upstream_failure: bool) -> pb.GetOrComputeRequest:
    return pb.GetOrComputeRequest(abandon=pb.Abandon(
        reason=reason[:MAX_ABANDON_REASON], upstream_failure=upstream_failure))


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def from_value(value: pb.Value, attempts: int) -> GetOrComputeResult:
    """A hit or a peer's fill."""
    v = _convert.cached_value(value)
    return GetOrComputeResult(value=v.value, source=v.source, stale=v.stale, age=v.age,
                              ttl_remaining=v.ttl_remaining, attempts=attempts)


@dataclasses.dataclass
class Computed:
    """How this caller's compute ended. Exactly one of ``value`` and
    ``error`` is set. ``upstream_failure``: the error counts against the
    breaker (an Exception from compute); a wrong return type or a
    BaseException (KeyboardInterrupt, cancellation) is a plain abandon."""

    value: Optional[bytes] = None
    error: Optional[BaseException] = None
    upstream_failure: bool = False


def accept_result(raw) -> Computed:
    """Checks compute's return value (bytes-like or str)."""
    try:
        return Computed(value=_convert.to_bytes(raw, "compute's result"))
    except TypeError as e:
        return Computed(error=e)


def lease_mode(lease: pb.Lease) -> LeaseMode:
    m = lease.mode
    return LeaseMode(m) if m in LeaseMode._value2member_map_ else LeaseMode.NONE


def computed_result(lease: pb.Lease, value: bytes, attempts: int, filled: Optional[pb.Filled],
                    not_stored_reason: str = "") -> GetOrComputeResult:
    """This caller's compute produced ``value``; ``filled`` is the server's
    answer to the Fill (None when it never came)."""
    fencing = lease.fencing_token
    if filled is not None and filled.fencing_token:
        fencing = filled.fencing_token
    return GetOrComputeResult(
        value=value, source=Source.COMPUTED, computed=True, lease_mode=lease_mode(lease),
        fencing_token=fencing, stored=bool(filled and filled.stored),
        not_stored_reason=(filled.reason if filled is not None else not_stored_reason),
        attempts=attempts)


def refresh_fallback(lease: pb.Lease, error: BaseException, attempts: int) -> GetOrComputeResult:
    """A refresh whose compute failed serves the value being refreshed."""
    return GetOrComputeResult(
        value=bytes(lease.current_value), source=Source.STALE, stale=True, computed=True,
        lease_mode=LeaseMode.REFRESH, fencing_token=lease.fencing_token,
        refresh_error=error, attempts=attempts)


# -- unary calls ---------------------------------------------------------------
def _set_duration(msg, field: str, value) -> None:
    d = _convert.duration_proto(value)
    if d is not None:
        getattr(msg, field).CopyFrom(d)


def set_request(namespace: str, key, value, ttl, lock_token: str, release_lock: bool) -> pb.SetRequest:
    req = pb.SetRequest(namespace=namespace, key=_convert.to_bytes(key, "key"),
                        value=_convert.to_bytes(value, "value"), lock_token=lock_token,
                        release_lock=release_lock)
    _set_duration(req, "ttl", ttl)
    return req


def acquire_request(namespace: str, key, ttl, wait_timeout, owner: str) -> pb.AcquireLockRequest:
    req = pb.AcquireLockRequest(namespace=namespace, key=_convert.to_bytes(key, "key"), owner=owner)
    _set_duration(req, "ttl", ttl)
    _set_duration(req, "wait_timeout", wait_timeout)
    return req


def renew_request(namespace: str, key, token: str, ttl) -> pb.RenewLockRequest:
    req = pb.RenewLockRequest(namespace=namespace, key=_convert.to_bytes(key, "key"), token=token)
    _set_duration(req, "ttl", ttl)
    return req


def release_request(namespace: str, key, token: str, outcome) -> pb.ReleaseLockRequest:
    return pb.ReleaseLockRequest(namespace=namespace, key=_convert.to_bytes(key, "key"),
                                 token=token, outcome=int(outcome))


def grant(r: pb.AcquireLockResponse) -> LockGrant:
    return LockGrant(acquired=r.acquired, token=r.token, fencing_token=r.fencing_token,
                     expires_at=_convert.from_timestamp(r.expires_at),
                     waited=_convert.from_duration(r.waited))


def renewed(r: pb.RenewLockResponse) -> RenewResult:
    return RenewResult(renewed=r.renewed, expires_at=_convert.from_timestamp(r.expires_at))


def breaker(r: pb.GetBreakerResponse) -> BreakerInfo:
    state = BreakerState(r.state) if r.state in BreakerState._value2member_map_ else BreakerState.UNSPECIFIED
    return BreakerInfo(namespace=r.namespace, state=state, since=_convert.from_timestamp(r.since),
                       retry_after=_convert.from_duration(r.retry_after),
                       recent_failures=r.recent_failures, recent_successes=r.recent_successes)


def lock_wait_budget(default_timeout: float, wait_timeout, timeout) -> float:
    """The deadline of an AcquireLock: ``timeout`` (or the default), stretched
    to wait_timeout + default so that a long server-side wait is not cut short."""
    base = default_timeout if timeout is None else timeout
    wait = _convert.seconds(wait_timeout)
    return base if wait is None else max(base, wait + default_timeout)


# -- the client ----------------------------------------------------------------
def channel_options(max_receive_message_bytes: int):
    return [("grpc.max_receive_message_length", max_receive_message_bytes)]


_NO_RETRY = RetryPolicy(max_attempts=1)


class Setting:
    """A public attribute of a client (``timeout``, ``worker_id``,
    ``target``) that lives in its ClientCore: setting it on the client
    changes what the following calls do, as a plain attribute would."""

    def __set_name__(self, owner, name: str) -> None:
        self._name = name

    def __get__(self, client, owner=None):
        return self if client is None else getattr(client._core, self._name)

    def __set__(self, client, value) -> None:
        setattr(client._core, self._name, value)


@dataclasses.dataclass
class Unary:
    """One unary call, planned: the shell calls the stub's ``method`` with
    ``request``, ``timeout=attempts.remaining()`` and the client's metadata;
    on a grpc.RpcError it waits ``retry_delay(attempts, error)`` (which
    raises the corral error when there is no next attempt) and calls again;
    what the call returns is ``result(response)``. When the call ends
    without a response (its error, an interruption, a cancellation) the
    shell calls ``failed()`` before the exception propagates."""

    method: str
    request: Any
    attempts: RetryState
    result: Callable[[Any], Any]
    failed: Callable[[], None] = lambda: None
    # A Get that carries the near cache's session: sent on the near cache's
    # channel, to the replica that holds its stream (corrald grants only to
    # its own sessions).
    near: bool = False


def retry_delay(attempts: RetryState, rpc_error) -> float:
    """After a unary attempt failed with ``rpc_error`` (a grpc.RpcError):
    the seconds to wait before the next one. Raises the corral error for it
    (``from`` it) when there is none."""
    err = error_from_rpc(rpc_error)
    delay = attempts.next_delay(err, False)
    if delay is None:
        raise err from rpc_error
    return delay


class ClientCore:
    """What a client knows and decides, without a channel: its settings and,
    for each call, the request, the deadline, the retry policy and how the
    answer becomes the result. ``target`` None means the client was given a
    ``channel`` (``has_channel``) instead. ``near_cache`` (True, or the
    limits) gives the client a near cache: the Gets then carry its tickets
    and plant what they are granted, and the client's own writes drop what
    it holds of their keys. ``load_balancing`` (a gRPC policy name) is the
    policy of the channel the shell makes; ``near_channel_options`` says
    whether the near cache needs a channel of its own."""

    def __init__(self, target: Optional[str], has_channel: bool, *, timeout: float,
                 worker_id: str, retry: RetryPolicy, secure: bool, token: Optional[str],
                 max_receive_message_bytes: int,
                 near_cache: Union[bool, NearCacheLimits] = False,
                 load_balancing: Optional[str] = None, has_near_channel: bool = False):
        if (target is None) != has_channel:
            raise ValueError("pass exactly one of target and channel")
        self.target = target or ""
        self.timeout = float(timeout)
        self.worker_id = worker_id
        self.retry = retry
        # Sent on every call; the server's credentials decide what it may do.
        self.metadata = (("authorization", f"Bearer {token}"),) if token else None
        self.owns_channel = not has_channel
        base = channel_options(max_receive_message_bytes)
        self.channel_options = base + ([("grpc.lb_policy_name", load_balancing)]
                                       if load_balancing else [])
        self.near_cache: Optional[NearCache] = None
        if near_cache:
            self.near_cache = NearCache(near_cache if isinstance(near_cache, NearCacheLimits)
                                        else NearCacheLimits())
        # The near cache's stream and its Gets (Unary.near) must reach one
        # replica (docs/ARCHITECTURE.md 3.9): over the channel passed in for
        # them (has_near_channel), else over the client's channel, unless
        # the one this client makes spreads calls (a policy other than
        # pick_first, gRPC's default). Then the shell makes a second one
        # with these options, pinned to one replica whatever the resolver's
        # service config says. None: the shell makes none.
        self.near_channel_options = None
        if (self.near_cache is not None and not has_channel and not has_near_channel
                and load_balancing not in (None, "", "pick_first")):
            self.near_channel_options = base + [
                ("grpc.lb_policy_name", "pick_first"),
                ("grpc.service_config_disable_resolution", 1)]
        if not has_channel:
            # A channel passed in is the caller's to secure: its credentials
            # cannot be inspected. stacklevel: warn <- here <- the client's
            # __init__ <- the code that constructed it.
            warn_if_plaintext_token(target, secure, token, stacklevel=4)

    def _attempts(self, timeout: Optional[float], idempotent: bool = True) -> RetryState:
        """The attempts of a call starting now: its deadline is ``timeout``
        (None: the client's), and one that is not idempotent is sent once."""
        budget = self.timeout if timeout is None else timeout
        return RetryState(self.retry if idempotent else _NO_RETRY, time.monotonic() + budget)

    # -- the near cache --------------------------------------------------------
    def near_for(self, near_cache: bool) -> Optional[NearCache]:
        """The near cache a call uses (None: the client has none, or the
        call passed ``near_cache=False``). The shell starts its stream."""
        return self.near_cache if near_cache else None

    def _near_read(self, req: pb.GetRequest, near: Optional[NearCache],
                   answered: Callable[[Optional[NearCache], Optional[Ticket], Any], Any],
                   plain: Callable[[Any], Any], timeout: Optional[float]) -> Unary:
        """A Get through ``near``: it takes a ticket before it is sent (none
        while the stream has not started), carries the session, and its
        answer goes through ``answered`` (which plants or ends the ticket);
        a failed call cancels the ticket, and it goes where the stream goes
        (``near``). Without a ticket: ``plain``, on the client's channel."""
        ticket = near.ticket((req.namespace, req.key)) if near is not None else None
        if ticket is None:
            return Unary("Get", req, self._attempts(timeout), plain)
        req.near_cache_session = ticket.session
        return Unary("Get", req, self._attempts(timeout), lambda r: answered(near, ticket, r),
                     lambda: near.cancel(ticket), near=True)

    def _forgetting(self, namespace: str, key: bytes, unary: Unary) -> Unary:
        """``unary`` (a Set or an Invalidate: this client's own write) then
        drops the key from the near cache, answered or not: the client's
        next read does not wait for the server's push."""
        near = self.near_cache
        if near is None:
            return unary
        answer = unary.result

        def result(r):
            near.invalidate([(namespace, key)])
            return answer(r)

        unary.result = result
        unary.failed = lambda: near.invalidate([(namespace, key)])
        return unary

    # -- unary calls ---------------------------------------------------------
    def get(self, namespace: str, key, timeout: Optional[float],
            near: Optional[NearCache] = None) -> Unary:
        """Through ``near`` when given (see ``near_cached`` for its hits)."""
        req = pb.GetRequest(namespace=namespace, key=_convert.to_bytes(key, "key"))
        return self._near_read(req, near, near_get_answered, _cached_or_none, timeout)

    def first_get(self, namespace: str, key, near: Optional[NearCache],
                  timeout: float) -> Unary:
        """get_or_compute's first step: a Get that draws XFetch's early
        refresh as the Lookup would (one draw per call), through ``near``
        when given; its result is a ``FirstGet``."""
        req = pb.GetRequest(namespace=namespace, key=_convert.to_bytes(key, "key"),
                            draw_early_refresh=True)
        return self._near_read(req, near, first_get_answered,
                               lambda r: first_get_answered(None, None, r), timeout)

    def set(self, namespace: str, key, value, ttl, lock_token: str, release_lock: bool,
            timeout: Optional[float]) -> Unary:
        """A fenced write (``lock_token``) is sent once, never retried."""
        req = set_request(namespace, key, value, ttl, lock_token, release_lock)
        return self._forgetting(namespace, req.key, Unary(
            "Set", req, self._attempts(timeout, idempotent=not lock_token), _stored))

    def invalidate(self, namespace: str, key, timeout: Optional[float]) -> Unary:
        req = pb.InvalidateRequest(namespace=namespace, key=_convert.to_bytes(key, "key"))
        return self._forgetting(namespace, req.key,
                                Unary("Invalidate", req, self._attempts(timeout), _existed))

    def acquire_lock(self, namespace: str, key, ttl, wait_timeout, owner: str,
                     timeout: Optional[float]) -> Unary:
        """Sent once; the deadline stretched to wait_timeout + timeout."""
        return Unary("AcquireLock",
                     acquire_request(namespace, key, ttl, wait_timeout, owner or self.worker_id),
                     self._attempts(lock_wait_budget(self.timeout, wait_timeout, timeout),
                                    idempotent=False), grant)

    def renew_lock(self, namespace: str, key, token: str, ttl, timeout: Optional[float]) -> Unary:
        return Unary("RenewLock", renew_request(namespace, key, token, ttl),
                     self._attempts(timeout), renewed)

    def release_lock(self, namespace: str, key, token: str, outcome,
                     timeout: Optional[float]) -> Unary:
        """Sent once."""
        return Unary("ReleaseLock", release_request(namespace, key, token, outcome),
                     self._attempts(timeout, idempotent=False), _released)

    def get_breaker(self, namespace: str, timeout: Optional[float]) -> Unary:
        return Unary("GetBreaker", pb.GetBreakerRequest(namespace=namespace),
                     self._attempts(timeout), breaker)

    # -- GetOrCompute --------------------------------------------------------
    def deadline(self, timeout: Optional[float]) -> float:
        """The monotonic deadline of a call starting now."""
        return time.monotonic() + (self.timeout if timeout is None else timeout)

    def get_or_compute(self, namespace: str, key, *, ttl=None, wait_timeout=None, lease_ttl=None,
                       allow_stale: bool = False, timeout: Optional[float] = None,
                       worker_id: Optional[str] = None, refresh_due_for=None) -> "Exchange":
        request = lookup(namespace, key, ttl=ttl, wait_timeout=wait_timeout, lease_ttl=lease_ttl,
                         allow_stale=allow_stale,
                         worker_id=self.worker_id if worker_id is None else worker_id,
                         refresh_due_for=refresh_due_for)
        return Exchange(request, ttl, self._attempts(timeout))


def _cached_or_none(r: pb.GetResponse) -> Optional[CachedValue]:
    return _convert.cached_value(r.value) if r.found else None


def _stored(r: pb.SetResponse) -> bool:
    return r.stored


def _existed(r: pb.InvalidateResponse) -> bool:
    return r.existed


def _released(r: pb.ReleaseLockResponse) -> bool:
    return r.released


# -- the GetOrCompute exchange -------------------------------------------------
class Ending(NamedTuple):
    """How an exchange ends once the server answered (or not) this caller's
    Fill: the ``result``, and whether the shell then half-closes and drains
    the call (``close``: the server answered Filled) or cancels it."""

    result: GetOrComputeResult
    close: bool


class Exchange:
    """One get_or_compute call, every decision of it; the shell only moves
    the messages and waits. Per attempt (until one returns, or
    ``retry_delay`` says to give up):

    1. open the call with ``timeout=remaining()`` and send ``start()``;
    2. hand the first answer to ``first_answer`` (None when the call ended
       without one): a value is the result (half-close and drain the call);
       a lease (None returned) means run compute, then
    3. hand what compute returned to ``compute_returned`` (or the Exception
       it raised to ``compute_raised``) and send the message it returns;
    4. if ``filling``: hand the answer to ``fill_answered`` (None when the
       call ended without one; ``fill_failed`` with the corral error when
       the call failed); otherwise half-close and drain, then ``abandoned()``.

    A BaseException (KeyboardInterrupt, cancellation) just propagates: the
    shell cancels the call, and a cancelled leaseholder has abandoned."""

    def __init__(self, request: pb.GetOrComputeRequest, ttl, attempts: RetryState):
        self._request = request
        self._ttl = ttl
        self._attempts = attempts
        self.lease: Optional[pb.Lease] = None
        self._computed: Optional[Computed] = None

    def remaining(self) -> float:
        """The timeout of the next call: what is left of the deadline."""
        return self._attempts.remaining()

    def start(self) -> pb.GetOrComputeRequest:
        """A new attempt: its first message (the Lookup)."""
        self.lease = None
        self._computed = None
        return self._request

    def retry_delay(self, err: CorralError) -> Optional[float]:
        """The attempt failed with ``err``: seconds to wait before the next
        one, or None to give up (always once compute ran: a transport
        failure then is not retried, or compute would run twice)."""
        if self.lease is not None:
            return None
        return self._attempts.next_delay(err, False)

    def first_answer(self, msg: Optional[pb.GetOrComputeResponse]) -> Optional[GetOrComputeResult]:
        """The answer to the Lookup: the result for a value, None for a lease
        (this caller computes). Anything else raises Internal."""
        if msg is None:
            raise Internal("corral ended GetOrCompute without a reply")
        kind = msg.WhichOneof("msg")
        if kind == "value":
            return from_value(msg.value, self._attempts.attempts)
        if kind == "lease":
            self.lease = msg.lease
            return None
        raise Internal(f"corral answered Lookup with {kind!r}")

    def compute_returned(self, raw) -> pb.GetOrComputeRequest:
        """compute returned ``raw``: the message to send (a Fill, or an
        Abandon when ``raw`` is not bytes-like or str)."""
        return self._computed_as(accept_result(raw))

    def compute_raised(self, error: Exception) -> pb.GetOrComputeRequest:
        """compute raised ``error`` (the upstream failed): the Abandon to send."""
        return self._computed_as(Computed(error=error, upstream_failure=True))

    def _computed_as(self, computed: Computed) -> pb.GetOrComputeRequest:
        self._computed = computed
        if computed.error is not None:
            return abandon(describe(computed.error), computed.upstream_failure)
        return fill(computed.value, self._ttl)

    @property
    def filling(self) -> bool:
        """The message sent after compute was a Fill (not an Abandon)."""
        return self._computed is not None and self._computed.error is None

    def abandoned(self) -> GetOrComputeResult:
        """After the Abandon: a refresh lease whose upstream failed serves
        the value being refreshed; otherwise compute's error is raised."""
        c = self._computed
        if c.upstream_failure and self.lease.mode == LeaseMode.REFRESH:
            return refresh_fallback(self.lease, c.error, self._attempts.attempts)
        raise c.error

    def fill_answered(self, answer: Optional[pb.GetOrComputeResponse]) -> Ending:
        """The server's answer to the Fill (None: the call ended without
        one). The value is good even if the cache did not take it."""
        if answer is None:
            return Ending(self._computed_result(None, "corral ended the call without answering Fill"),
                          close=False)
        kind = answer.WhichOneof("msg")
        if kind != "filled":
            return Ending(self._computed_result(None, f"unexpected answer to Fill: {kind}"),
                          close=False)
        return Ending(self._computed_result(answer.filled), close=True)

    def fill_failed(self, err: CorralError) -> GetOrComputeResult:
        """The call failed after the Fill was sent: the value, not stored."""
        return self._computed_result(None, str(err))

    def _computed_result(self, filled: Optional[pb.Filled], reason: str = "") -> GetOrComputeResult:
        return computed_result(self.lease, self._computed.value, self._attempts.attempts, filled,
                               reason)


# -- the near cache -------------------------------------------------------------
# Every read asks the near cache first (``near`` None: no near cache for
# this call): a hit is the answer and no call is made.
def near_value(near: Optional[NearCache], namespace: str, key) -> Optional[bytes]:
    """get_or_compute's hot path: the value alone, no result object."""
    if near is None:
        return None
    entry = near.lookup(near_key(namespace, key))
    return None if entry is None else entry.value


def near_cached(near: Optional[NearCache], namespace: str, key) -> Optional[CachedValue]:
    """get's hit."""
    entry = near.lookup(near_key(namespace, key)) if near is not None else None
    if entry is None:
        return None
    age, ttl = near.age_and_ttl(entry)
    return CachedValue(value=entry.value, source=Source.CACHE, age=age, ttl_remaining=ttl,
                       near_cache=True)


def near_result(near: Optional[NearCache], namespace: str, key) -> Optional[GetOrComputeResult]:
    """get_or_compute_result's hit."""
    entry = near.lookup(near_key(namespace, key)) if near is not None else None
    if entry is None:
        return None
    age, ttl = near.age_and_ttl(entry)
    return GetOrComputeResult(value=entry.value, source=Source.CACHE, age=age, ttl_remaining=ttl,
                              near_cache=True)


def _keep(near: Optional[NearCache], ticket: Optional[Ticket], r: pb.GetResponse,
          usable: bool) -> None:
    """Plants a fresh hit granted ``near_cache_for``; ends the ticket."""
    if ticket is None:
        return
    v = r.value
    if usable and v.HasField("near_cache_for"):
        near.plant(ticket, v.value, _convert.from_duration(v.near_cache_for),
                   _convert.from_duration(v.age), _convert.from_duration(v.ttl_remaining))
    else:
        near.cancel(ticket)


def near_get_answered(near: Optional[NearCache], ticket: Optional[Ticket],
                      r: pb.GetResponse) -> Optional[CachedValue]:
    """A Get's answer: kept when granted, and the result."""
    _keep(near, ticket, r, r.found and not r.value.stale)
    return _convert.cached_value(r.value) if r.found else None


class FirstGet(NamedTuple):
    """What get_or_compute's Get said: the ``result`` (a fresh hit), or
    None and then the stream is opened, with ``refresh_due_for`` (None: no
    refresh was drawn)."""

    result: Optional[GetOrComputeResult]
    refresh_due_for: Any


def first_get_answered(near: Optional[NearCache], ticket: Optional[Ticket],
                       r: pb.GetResponse) -> FirstGet:
    """A fresh hit is the answer. A miss or a stale value (stale-while-
    revalidate needs the stream: one caller refreshes) opens the stream; so
    does a hit whose early-refresh draw said "refresh", carrying the draw."""
    due = r.refresh_due_for if r.HasField("refresh_due_for") else None
    hit = r.found and not r.value.stale and due is None
    _keep(near, ticket, r, hit)
    if not hit:
        return FirstGet(None, due)
    return FirstGet(from_value(r.value, 1), None)


def near_key(namespace: str, key) -> NearKey:
    return (namespace, _convert.to_bytes(key, "key"))


def apply_near_event(near: NearCache, event: pb.NearCacheEvent) -> bool:
    """Applies one NearCacheEvent; True when it started the session."""
    kind = event.WhichOneof("event")
    if kind == "started":
        near.start(event.started.session)
        return True
    if kind == "invalidations":
        near.invalidate([(k.namespace, bytes(k.key)) for k in event.invalidations.keys])
    elif kind == "reset":
        near.reset()
    return False


class NearStream:
    """The NearCache stream of one client, between the shell's I/O: the
    shell opens a call with ``request``, hands every event it reads to
    ``event()``, calls ``lost()`` however the call ends and, unless the
    client is closing, waits ``ended(code, details)`` seconds before it
    opens the next one. Used by the shell's one stream thread or task."""

    def __init__(self, near: NearCache, worker_id: str):
        self.near = near
        self.request = pb.NearCacheRequest(client_name=worker_id)
        self._backoff = Backoff()
        self._unsupported_logged = False

    def event(self, event: pb.NearCacheEvent) -> None:
        if apply_near_event(self.near, event):
            self._backoff.started()

    def lost(self) -> None:
        """The call is over: the near cache keeps nothing until the next
        stream starts."""
        self.near.lost()

    def ended(self, code: grpc.StatusCode, details: Optional[str]) -> float:
        """The call ended with ``code`` (OK: the server ended it): logs why
        and returns the seconds to wait before reopening it. A server
        without the RPC (UNIMPLEMENTED: an older corrald) is asked again
        every UNSUPPORTED_BACKOFF seconds, logged once; any other end backs
        off from 0.05 s to 2 s."""
        if code == grpc.StatusCode.UNIMPLEMENTED:
            if not self._unsupported_logged:
                _log.warning("corral: the server has no near cache (NearCache: %s); "
                             "reading through corrald, asking again every %gs",
                             details, UNSUPPORTED_BACKOFF)
                self._unsupported_logged = True
            return UNSUPPORTED_BACKOFF
        _log.info("corral: near cache stream lost (%s: %s); emptied, reopening",
                  getattr(code, "name", code), details)
        return self._backoff.delay()


# -- in-process single flight --------------------------------------------------
# Concurrent get_or_compute calls for one (namespace, key) through one client
# (and the same allow_stale and wait_timeout) share one server call (a
# flight). The first caller leads: its options and its compute are the
# flight's; the others join and never run theirs. A
# joiner waits up to its own deadline and then gets the flight's outcome: the
# leader's result (``shared``), or the same exception the leader got. Only a
# leader that went away on its own account -- interrupted (a BaseException
# that is no Exception), cancelled, or out of its own deadline -- does not
# decide for the joiners: those with time left start the next flight.
def flight_key(namespace: str, key, allow_stale: bool, wait_timeout=None) -> tuple:
    """What makes calls the same call: ``allow_stale`` changes the answer
    and ``wait_timeout`` how long the server waits before its
    on_wait_timeout policy; the other options (ttl, lease_ttl, worker_id)
    are the leader's."""
    return (namespace, _convert.to_bytes(key, "key"), bool(allow_stale),
            _convert.seconds(wait_timeout))


def shared_result(result: GetOrComputeResult) -> GetOrComputeResult:
    """The leader's result as a joiner sees it: the value, not the lease
    (the joiner did not compute and holds no fencing token)."""
    source = Source.PEER_FILL if result.source == Source.COMPUTED else result.source
    return dataclasses.replace(result, source=source, computed=False, lease_mode=LeaseMode.NONE,
                               fencing_token=0, shared=True)


def leader_gone(error: BaseException) -> bool:
    """The flight ended with ``error`` for a reason of the leader's own
    (interrupted, cancelled, out of its deadline): joiners with time left
    try again instead of inheriting it. ``WaitTimeout`` and every other
    answer of the server are shared."""
    if not isinstance(error, Exception):
        return True
    return type(error) in (DeadlineExceeded, Cancelled)


def releases_joiners(lease: pb.Lease) -> bool:
    """A leader handed ``lease`` lets its joiners go at once: a refresh
    lease means the value is still served, and the server serves it to them
    (fresh, or stale under stale-while-revalidate) instead of their waiting
    for the refresh: they start the next flight, and only the leader waits."""
    return lease.mode == LeaseMode.REFRESH


def joiner_timed_out(waited: float) -> DeadlineExceeded:
    return DeadlineExceeded(f"waited {waited:.3g}s for this client's call for the same key "
                            f"(in-process single flight)")


# -- held locks ----------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class LockOrder:
    """What ``lock()`` asked for, checked: the key as bytes, the ttl and
    wait_timeout as seconds."""

    namespace: str
    key: bytes
    ttl: float
    wait_timeout: Optional[float]
    owner: str
    renew_every: Any
    on_lost: Optional[Callable[[], None]]


def lock_order(namespace: str, key, ttl, wait_timeout, owner: str, renew_every,
               on_lost) -> LockOrder:
    ttl_s = _convert.seconds(ttl)
    if not ttl_s:
        raise ValueError("a held lock needs a positive ttl")
    return LockOrder(namespace, _convert.to_bytes(key, "key"), ttl_s,
                     _convert.seconds(wait_timeout), owner, renew_every, on_lost)


def check_acquired(g: LockGrant, wait_timeout: Optional[float]) -> None:
    """Raises LockNotAcquired unless ``g`` was acquired."""
    if not g.acquired:
        waited = "the namespace's default wait" if wait_timeout is None else f"{wait_timeout:g}s"
        raise LockNotAcquired(f"lock not acquired within {waited}")


class RenewTiming:
    """When a held lock is renewed and when it counts as lost, on the
    monotonic clock (``now`` arguments). The local estimate of the expiry
    counts each renewal from when it was sent. Not thread-safe."""

    def __init__(self, ttl: float, renew_every, now: float):
        self.ttl = ttl
        self.period = float(renew_every) if renew_every else ttl / 3.0
        #: The deadline of one renewal.
        self.call_timeout = max(self.period, 0.05)
        self._expires = now + ttl

    def still_held(self, r: Optional[RenewResult], sent: float, now: float) -> bool:
        """After the renewal sent at ``sent``: ``r`` is the server's answer
        (None: the call failed, noticed at ``now``). False when the lock is
        lost: the server did not renew it, or renewals failed until it
        expired. True while it is held (after a failure: try again next
        period)."""
        if r is None:
            return now < self._expires
        if not r.renewed:
            return False
        self._expires = sent + self.ttl
        return True
