"""corral: fleet-wide cache-stampede protection, as a gRPC client.

    import corral

    client = corral.Client("127.0.0.1:50051", worker_id="plant-worker-1")
    value = client.get_or_compute("plant_id", image_hash, lambda: identify(image))

On a miss exactly one caller, fleet-wide and in any language, runs its
compute; the others wait and receive its value. See ``corral.Client`` (the
blocking client), ``corral.aio.AsyncClient`` (asyncio), ``corral.Lock`` and
the exceptions in ``corral.errors``. The generated protos are
``corral.v1.corral_pb2`` / ``corral.v1.corral_pb2_grpc`` (built from
``proto/corral/v1/corral.proto``; see client/python/CMakeLists.txt).
"""

from corral._protocol import PlaintextTokenWarning
from corral._retry import RetryPolicy
from corral.client import Client
from corral.errors import (BreakerOpen, Cancelled, ComputeBudgetExhausted, CorralError, DeadlineExceeded, Internal,
                           InvalidArgument, LockNotAcquired, NotFound, PeerComputeFailed,
                           PermissionDenied, ResourceExhausted, ShuttingDown, StoreUnavailable,
                           TooManyWaiters, Unauthenticated, Unavailable, Unimplemented,
                           UnknownNamespace, WaitTimeout)
from corral.lock import Lock
from corral.results import (BreakerInfo, BreakerState, CachedValue, GetOrComputeResult, LeaseMode,
                            LockGrant, Outcome, RenewResult, Source)

__all__ = [
    "BreakerInfo", "BreakerOpen", "BreakerState", "CachedValue", "Cancelled", "Client",
    "ComputeBudgetExhausted",
    "CorralError", "DeadlineExceeded", "GetOrComputeResult", "Internal", "InvalidArgument",
    "LeaseMode", "Lock", "LockGrant", "LockNotAcquired", "NotFound", "Outcome",
    "PeerComputeFailed", "PermissionDenied", "PlaintextTokenWarning", "RenewResult", "ResourceExhausted", "RetryPolicy",
    "ShuttingDown", "Source", "StoreUnavailable", "TooManyWaiters", "Unauthenticated",
    "Unavailable", "Unimplemented", "UnknownNamespace", "WaitTimeout",
]
