// ESM entry of corral-client: the same objects as the CommonJS entry
// (lib/index.js), so that instanceof checks agree between the two.
import corral from './lib/index.js';

export const {
  Client, Lock, DEFAULT_RETRY, LOADER_OPTIONS, PROTO_DIR, errorFromStatus,
  CorralError, InvalidArgument, NotFound, DeadlineExceeded, ResourceExhausted, Unavailable,
  PermissionDenied, Unauthenticated, Unimplemented, Cancelled, Internal,
  BreakerOpen, PeerComputeFailed, StoreUnavailable, ShuttingDown, WaitTimeout, UnknownNamespace,
  TooManyWaiters, ComputeBudgetExhausted, LockNotAcquired,
} = corral;
export default corral;
