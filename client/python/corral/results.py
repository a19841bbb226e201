"""Plain results of corral calls: what the client hands back instead of raw
protos, with durations as float seconds and instants as aware datetimes.

The enums mirror the proto enums of ``corral.v1`` (same numbers), so
``Source(value_proto.source)`` converts directly.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from typing import Optional


class _Enum(enum.IntEnum):
    """str() and f-strings give the lower-case name ("peer_fill"), like the
    C++ client's SourceName(); repr() stays <Source.PEER_FILL: 3>."""

    def __str__(self) -> str:
        return self.name.lower()

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


class Source(_Enum):
    """Where a value came from. Mirrors ``corral.v1.Source``, plus
    ``COMPUTED``, which never travels on the wire: this caller ran compute."""

    UNSPECIFIED = 0
    CACHE = 1
    CACHE_AFTER_LOCK = 2
    PEER_FILL = 3
    CACHE_AFTER_TIMEOUT = 4
    STALE = 5
    COMPUTED = 100


class LeaseMode(_Enum):
    """Why this caller was asked to compute. Mirrors ``corral.v1.LeaseMode``;
    ``NONE`` means there was no lease (the value came from the server)."""

    NONE = 0
    LOCKED = 1
    UNLOCKED_TIMEOUT = 2
    UNLOCKED_DEGRADED = 3
    REFRESH = 4


class Outcome(_Enum):
    """Fed to the namespace's circuit breaker. Mirrors ``corral.v1.Outcome``."""

    UNSPECIFIED = 0
    SUCCESS = 1
    FAILURE = 2


class BreakerState(_Enum):
    """Mirrors ``corral.v1.BreakerState``."""

    UNSPECIFIED = 0
    CLOSED = 1
    OPEN = 2
    HALF_OPEN = 3


@dataclasses.dataclass(frozen=True)
class CachedValue:
    """A cached value as the server describes it (``corral.v1.Value``)."""

    value: bytes
    source: Source = Source.UNSPECIFIED
    age: float = 0.0  # seconds since it was stored
    ttl_remaining: float = 0.0  # seconds
    stale: bool = False
    #: Served from this client's near cache (no call to corrald).
    near_cache: bool = False


@dataclasses.dataclass(frozen=True)
class GetOrComputeResult:
    """What ``get_or_compute_result`` hands back.

    ``computed`` is true when this caller held a lease and ran compute
    (successfully, or for a refresh that failed: then ``value`` is the value
    being refreshed and ``refresh_error`` the exception compute raised).
    ``stored`` says whether the server kept the computed value;
    ``not_stored_reason`` says why not (e.g. ``"lease-revoked"``).
    """

    value: bytes
    source: Source
    stale: bool = False
    age: float = 0.0
    ttl_remaining: float = 0.0
    computed: bool = False
    lease_mode: LeaseMode = LeaseMode.NONE
    fencing_token: int = 0
    stored: bool = False
    not_stored_reason: str = ""
    refresh_error: Optional[BaseException] = None
    attempts: int = 1
    #: The value came from another call for the same key through the same
    #: client (in-process single flight): that call's compute ran, not this one's.
    shared: bool = False
    #: Served from this client's near cache (no call to corrald).
    near_cache: bool = False


@dataclasses.dataclass(frozen=True)
class LockGrant:
    """The answer to ``acquire_lock`` (``corral.v1.AcquireLockResponse``).
    ``acquired`` false means the wait timed out; that is not an error."""

    acquired: bool
    token: str = ""
    fencing_token: int = 0
    expires_at: Optional[datetime.datetime] = None
    waited: float = 0.0  # seconds


@dataclasses.dataclass(frozen=True)
class RenewResult:
    """The answer to ``renew_lock``. ``renewed`` false: the token no longer
    holds the lock (it expired and may belong to someone else)."""

    renewed: bool
    expires_at: Optional[datetime.datetime] = None


@dataclasses.dataclass(frozen=True)
class BreakerInfo:
    """The namespace's circuit breaker (``corral.v1.GetBreakerResponse``)."""

    namespace: str
    state: BreakerState
    since: Optional[datetime.datetime] = None
    retry_after: float = 0.0  # seconds
    recent_failures: int = 0
    recent_successes: int = 0
