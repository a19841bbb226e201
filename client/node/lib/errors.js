'use strict';
// Typed errors for failed corral calls.
//
// corrald reports an error as a gRPC status code plus trailing metadata:
// `corral-reason` says why (breaker-open, peer-compute-failed, ...) and, for
// an open breaker, `retry-after-ms` says when to come back. There is one class
// per reason, each a subclass of the class for its status code, so both
// `err instanceof BreakerOpen` and `err instanceof Unavailable` work. Every
// error carries `code` (the numeric gRPC status), `codeName`, `details` (the
// server's message), `reason` ("" when absent) and `retryAfterMs` (a number
// of milliseconds, or null). Mirrors client/python/corral/errors.py.

const { status: Status } = require('@grpc/grpc-js');

const REASON_TRAILER = 'corral-reason';
const RETRY_AFTER_TRAILER = 'retry-after-ms';

const CODE_NAMES = Object.fromEntries(Object.entries(Status).map(([name, n]) => [n, name]));

class CorralError extends Error {
  constructor(details = '', { code, reason = '', retryAfterMs = null, cause } = {}) {
    const c = code ?? new.target.defaultCode ?? Status.UNKNOWN;
    super(describe(c, details, reason, retryAfterMs), cause ? { cause } : undefined);
    this.name = new.target.name;
    this.code = c;
    this.codeName = CODE_NAMES[c] || 'UNKNOWN';
    this.details = details;
    this.reason = reason;
    this.retryAfterMs = retryAfterMs;
  }
}
CorralError.defaultCode = null;

function describe(code, details, reason, retryAfterMs) {
  let out = CODE_NAMES[code] || 'UNKNOWN';
  if (details) out += `: ${details}`;
  const extra = [];
  if (reason) extra.push(`corral-reason: ${reason}`);
  if (retryAfterMs !== null && retryAfterMs !== undefined) extra.push(`retry after ${retryAfterMs} ms`);
  if (extra.length) out += ` (${extra.join(', ')})`;
  return out;
}

function byCode(name, code) {
  const cls = { [name]: class extends CorralError {} }[name];
  cls.defaultCode = code;
  return cls;
}

// One class per status code the contract uses.
const InvalidArgument = byCode('InvalidArgument', Status.INVALID_ARGUMENT);
const NotFound = byCode('NotFound', Status.NOT_FOUND);
const DeadlineExceeded = byCode('DeadlineExceeded', Status.DEADLINE_EXCEEDED);
const ResourceExhausted = byCode('ResourceExhausted', Status.RESOURCE_EXHAUSTED);
// Without a reason: the transport (corrald unreachable, connection dropped).
const Unavailable = byCode('Unavailable', Status.UNAVAILABLE);
const PermissionDenied = byCode('PermissionDenied', Status.PERMISSION_DENIED);
const Unauthenticated = byCode('Unauthenticated', Status.UNAUTHENTICATED);
const Unimplemented = byCode('Unimplemented', Status.UNIMPLEMENTED);
const Cancelled = byCode('Cancelled', Status.CANCELLED);
const Internal = byCode('Internal', Status.INTERNAL);

// One class per corral-reason.
class BreakerOpen extends Unavailable {}
class PeerComputeFailed extends Unavailable {}
class StoreUnavailable extends Unavailable {}
class ShuttingDown extends Unavailable {}
class WaitTimeout extends DeadlineExceeded {}
class UnknownNamespace extends NotFound {}
class TooManyWaiters extends ResourceExhausted {}
// The namespace's compute budget held the compute back for the whole wait;
// retryAfterMs says when to come back.
class ComputeBudgetExhausted extends ResourceExhausted {}
// Raised by Client.lock when the server answers acquired: false.
class LockNotAcquired extends DeadlineExceeded {}

const BY_REASON = {
  'invalid-argument': InvalidArgument,
  'breaker-open': BreakerOpen,
  'peer-compute-failed': PeerComputeFailed,
  'store-unavailable': StoreUnavailable,
  'shutting-down': ShuttingDown,
  'wait-timeout': WaitTimeout,
  'unknown-namespace': UnknownNamespace,
  'too-many-waiters': TooManyWaiters,
  'compute-budget': ComputeBudgetExhausted,
  unauthenticated: Unauthenticated,
  'permission-denied': PermissionDenied,
};

const BY_CODE = Object.fromEntries(
  [InvalidArgument, NotFound, DeadlineExceeded, ResourceExhausted, Unavailable, PermissionDenied,
    Unauthenticated, Unimplemented, Cancelled, Internal].map((cls) => [cls.defaultCode, cls]));

function trailer(metadata, key) {
  if (!metadata || typeof metadata.get !== 'function') return null;
  const values = metadata.get(key);
  if (!values.length) return null;
  const v = values[0];
  return Buffer.isBuffer(v) ? v.toString('utf8') : String(v);
}

// The CorralError for a call that ended with `code`, `details` and trailing
// `metadata` (a grpc.Metadata). A known corral-reason picks the class;
// otherwise the code does.
function errorFromStatus(code, details, metadata, cause) {
  const reason = trailer(metadata, REASON_TRAILER) || '';
  let retryAfterMs = null;
  const raw = trailer(metadata, RETRY_AFTER_TRAILER);
  if (raw !== null && /^\d+$/.test(raw.trim())) retryAfterMs = Number(raw.trim());
  const cls = BY_REASON[reason] || BY_CODE[code] || CorralError;
  return new cls(details || '', { code, reason, retryAfterMs, cause });
}

// Converts what grpc-js rejects with (a ServiceError) to its CorralError.
function errorFromGrpc(err) {
  if (err instanceof CorralError) return err;
  const code = typeof err.code === 'number' ? err.code : Status.UNKNOWN;
  return errorFromStatus(code, err.details ?? err.message ?? '', err.metadata, err);
}

// Whether a failed attempt may be retried: only failures that say nothing
// about the key (a transport UNAVAILABLE with no reason, a replica shutting
// down), and never after compute ran (the upstream was called).
function isRetryable(err, computeRan = false) {
  if (computeRan) return false;
  if (err instanceof ShuttingDown) return true;
  return err.constructor === Unavailable && !err.reason;
}

module.exports = {
  REASON_TRAILER, RETRY_AFTER_TRAILER,
  CorralError, InvalidArgument, NotFound, DeadlineExceeded, ResourceExhausted, Unavailable,
  PermissionDenied, Unauthenticated, Unimplemented, Cancelled, Internal,
  BreakerOpen, PeerComputeFailed, StoreUnavailable, ShuttingDown, WaitTimeout, UnknownNamespace,
  TooManyWaiters, ComputeBudgetExhausted, LockNotAcquired,
  errorFromStatus, errorFromGrpc, isRetryable,
};
