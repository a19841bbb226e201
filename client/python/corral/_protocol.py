"""The messages of the GetOrCompute exchange and of the unary calls, shared
by the blocking and the asyncio clients (which differ only in how they wait).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import warnings
from typing import Optional

from corral import _convert
from corral.results import (BreakerInfo, BreakerState, GetOrComputeResult, LeaseMode, LockGrant,
                          RenewResult, Source)
from corral.v1 import corral_pb2 as pb

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
           allow_stale: bool = False, worker_id: str = "") -> pb.GetOrComputeRequest:
    """The first message of the exchange. Unset durations stay unset (the
    namespace default)."""
    msg = pb.Lookup(namespace=namespace, key=_convert.to_bytes(key, "key"),
                    allow_stale=allow_stale, worker_id=worker_id)
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
