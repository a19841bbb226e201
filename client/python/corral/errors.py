"""Typed exceptions for failed corral calls.

corrald reports errors as a gRPC status code plus trailing metadata:
``corral-reason`` says why (``breaker-open``, ``peer-compute-failed``, ...)
and, for an open breaker, ``retry-after-ms`` says when to come back. The
client raises one exception class per reason, each a subclass of the class
for its status code, so both of these work::

    except corral.BreakerOpen as e:      # the upstream's breaker is open
        return http_503(retry_after=e.retry_after)
    except corral.Unavailable:           # any UNAVAILABLE, transport included
        ...

Every class carries ``code`` (a ``grpc.StatusCode``), ``details`` (the
server's message), ``reason`` (``corral-reason``, "" when absent) and
``retry_after`` (seconds, or None).
"""

from __future__ import annotations

from typing import Dict, Optional, Type

import grpc

REASON_TRAILER = "corral-reason"
RETRY_AFTER_TRAILER = "retry-after-ms"


class CorralError(Exception):
    """A corral call failed. Base class of every error this package raises
    for a failed call."""

    #: The status code a class stands for (None: any code).
    default_code: Optional[grpc.StatusCode] = None

    def __init__(self, details: str = "", *, code: Optional[grpc.StatusCode] = None,
                 reason: str = "", retry_after: Optional[float] = None):
        self.code = code if code is not None else (self.default_code or grpc.StatusCode.UNKNOWN)
        self.details = details
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(self._describe())

    def _describe(self) -> str:
        out = self.code.name
        if self.details:
            out += f": {self.details}"
        extra = []
        if self.reason:
            extra.append(f"corral-reason: {self.reason}")
        if self.retry_after is not None:
            extra.append(f"retry after {self.retry_after:g}s")
        if extra:
            out += f" ({', '.join(extra)})"
        return out


# One class per status code the contract uses.
class InvalidArgument(CorralError):
    """Bad key, namespace or duration, a message out of turn, a value too large."""
    default_code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(CorralError):
    default_code = grpc.StatusCode.NOT_FOUND


class DeadlineExceeded(CorralError):
    """The call's deadline passed (or, with a reason, a wait timed out)."""
    default_code = grpc.StatusCode.DEADLINE_EXCEEDED


class ResourceExhausted(CorralError):
    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(CorralError):
    """UNAVAILABLE. Without a reason this is the transport: corrald could not
    be reached or the connection dropped (the client retries those)."""
    default_code = grpc.StatusCode.UNAVAILABLE


class PermissionDenied(CorralError):
    default_code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(CorralError):
    default_code = grpc.StatusCode.UNAUTHENTICATED


class Unimplemented(CorralError):
    default_code = grpc.StatusCode.UNIMPLEMENTED


class Cancelled(CorralError):
    default_code = grpc.StatusCode.CANCELLED


class Internal(CorralError):
    """The server (or this client) broke the protocol."""
    default_code = grpc.StatusCode.INTERNAL


# One class per corral-reason.
class BreakerOpen(Unavailable):
    """The namespace's circuit breaker is open: the upstream is not called.
    ``retry_after`` (seconds) says when the breaker will admit a probe."""


class PeerComputeFailed(Unavailable):
    """The caller computing this key reported an upstream failure; it was
    handed to every caller waiting for that compute."""


class StoreUnavailable(Unavailable):
    """corrald cannot reach its store (Redis)."""


class ShuttingDown(Unavailable):
    """The replica is stopping; another replica will answer (retried)."""


class WaitTimeout(DeadlineExceeded):
    """Waiting for a peer's compute timed out under ``on_wait_timeout: FAIL``."""


class UnknownNamespace(NotFound):
    """The namespace is not configured and the server forbids unknown ones."""


class TooManyWaiters(ResourceExhausted):
    """The server's waiter limit for the key or namespace is reached."""


class ComputeBudgetExhausted(ResourceExhausted):
    """The namespace's compute budget (``compute_budget``: computes in flight
    or per second, fleet-wide) held the compute back for the caller's whole
    ``wait_timeout``. ``retry_after`` (seconds) says when the budget would
    next admit one; back off at least that long (the upstream's quota is
    what the budget protects)."""


class LockNotAcquired(DeadlineExceeded):
    """``Client.lock`` did not get the lock within its ``wait_timeout``.
    Raised by the client (the server answers ``acquired: false``)."""


_BY_REASON: Dict[str, Type[CorralError]] = {
    "invalid-argument": InvalidArgument,
    "breaker-open": BreakerOpen,
    "peer-compute-failed": PeerComputeFailed,
    "store-unavailable": StoreUnavailable,
    "shutting-down": ShuttingDown,
    "wait-timeout": WaitTimeout,
    "unknown-namespace": UnknownNamespace,
    "too-many-waiters": TooManyWaiters,
    "compute-budget": ComputeBudgetExhausted,
}

_BY_CODE: Dict[grpc.StatusCode, Type[CorralError]] = {
    cls.default_code: cls
    for cls in (InvalidArgument, NotFound, DeadlineExceeded, ResourceExhausted,
                Unavailable, PermissionDenied, Unauthenticated, Unimplemented,
                Cancelled, Internal)
}


def _trailer(metadata, key: str) -> Optional[str]:
    for item in metadata or ():
        k, v = item[0], item[1]
        if k == key:
            return v.decode("utf-8", "replace") if isinstance(v, bytes) else v
    return None


def error_from_status(code: grpc.StatusCode, details: str, trailing_metadata) -> CorralError:
    """The exception for a call that ended with ``code``, ``details`` and
    ``trailing_metadata`` (a sequence of (key, value) pairs). A known
    ``corral-reason`` picks the class; otherwise the code does."""
    reason = _trailer(trailing_metadata, REASON_TRAILER) or ""
    retry_after = None
    raw = _trailer(trailing_metadata, RETRY_AFTER_TRAILER)
    if raw is not None:
        try:
            ms = int(raw)
        except ValueError:
            ms = -1
        if ms >= 0:
            retry_after = ms / 1000.0
    cls = _BY_REASON.get(reason) or _BY_CODE.get(code) or CorralError
    return cls(details or "", code=code, reason=reason, retry_after=retry_after)


def error_from_rpc(err: grpc.RpcError) -> CorralError:
    """Converts a failed call (``grpc.RpcError``, including
    ``grpc.aio.AioRpcError``) to its corral exception. Use as
    ``raise error_from_rpc(e) from e``."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = err.details() if hasattr(err, "details") else str(err)
    metadata = err.trailing_metadata() if hasattr(err, "trailing_metadata") else ()
    return error_from_status(code, details or "", metadata)


def is_retryable(err: CorralError, compute_ran: bool = False) -> bool:
    """Whether a failed attempt may be retried: only failures that say
    nothing about the key (transport UNAVAILABLE with no reason, a replica
    shutting down), and never after compute ran (the upstream was called)."""
    if compute_ran:
        return False
    if isinstance(err, ShuttingDown):
        return True
    return type(err) is Unavailable and not err.reason
