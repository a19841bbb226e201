"""Conversions between Python values and the protos of corral.v1."""

from __future__ import annotations

import datetime
from typing import Optional, Union

from google.protobuf import duration_pb2, timestamp_pb2

from corral.results import CachedValue, Source

#: A duration argument: seconds (int/float) or a timedelta. None means
#: "unset", i.e. the namespace default; 0 means an explicit zero.
DurationLike = Union[int, float, datetime.timedelta]
KeyLike = Union[bytes, bytearray, memoryview, str]


def seconds(d: Optional[DurationLike]) -> Optional[float]:
    """``d`` as float seconds (None stays None). Negative is a ValueError."""
    if d is None:
        return None
    if isinstance(d, datetime.timedelta):
        s = d.total_seconds()
    elif isinstance(d, (int, float)) and not isinstance(d, bool):
        s = float(d)
    else:
        raise TypeError(f"a duration must be seconds or a timedelta, not {type(d).__name__}")
    if s < 0:
        raise ValueError(f"a duration must not be negative (got {s}s)")
    return s


def duration_proto(d: Optional[DurationLike]) -> Optional[duration_pb2.Duration]:
    """A Duration message for ``d``, or None to leave the field unset."""
    s = seconds(d)
    if s is None:
        return None
    nanos_total = round(s * 1e9)
    return duration_pb2.Duration(seconds=nanos_total // 10**9, nanos=nanos_total % 10**9)


def from_duration(d: duration_pb2.Duration) -> float:
    return d.seconds + d.nanos / 1e9


def from_timestamp(ts: timestamp_pb2.Timestamp) -> Optional[datetime.datetime]:
    """An aware UTC datetime, or None for the zero (unset) timestamp."""
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return datetime.datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, tz=datetime.timezone.utc)


def to_bytes(data: KeyLike, what: str) -> bytes:
    """Keys and values travel as bytes; str is encoded as UTF-8."""
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"{what} must be bytes or str, not {type(data).__name__}")


def cached_value(v) -> CachedValue:
    """A ``corral.v1.Value`` as a CachedValue."""
    return CachedValue(
        value=bytes(v.value),
        source=Source(v.source) if v.source in Source._value2member_map_ else Source.UNSPECIFIED,
        age=from_duration(v.age),
        ttl_remaining=from_duration(v.ttl_remaining),
        stale=v.stale,
    )
