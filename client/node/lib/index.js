'use strict';
// corral-client: fleet-wide cache-stampede protection, as a gRPC client.
// CommonJS entry; index.mjs re-exports the same objects for ESM users.

const errors = require('./errors');
const { Client } = require('./client');
const { Lock } = require('./lock');
const { LOADER_OPTIONS, PROTO_DIR } = require('./proto');
const { DEFAULT_RETRY } = require('./retry');

module.exports = {
  Client,
  Lock,
  DEFAULT_RETRY,
  LOADER_OPTIONS,
  PROTO_DIR,
  CorralError: errors.CorralError,
  InvalidArgument: errors.InvalidArgument,
  NotFound: errors.NotFound,
  DeadlineExceeded: errors.DeadlineExceeded,
  ResourceExhausted: errors.ResourceExhausted,
  Unavailable: errors.Unavailable,
  PermissionDenied: errors.PermissionDenied,
  Unauthenticated: errors.Unauthenticated,
  Unimplemented: errors.Unimplemented,
  Cancelled: errors.Cancelled,
  Internal: errors.Internal,
  BreakerOpen: errors.BreakerOpen,
  PeerComputeFailed: errors.PeerComputeFailed,
  StoreUnavailable: errors.StoreUnavailable,
  ShuttingDown: errors.ShuttingDown,
  WaitTimeout: errors.WaitTimeout,
  UnknownNamespace: errors.UnknownNamespace,
  TooManyWaiters: errors.TooManyWaiters,
  ComputeBudgetExhausted: errors.ComputeBudgetExhausted,
  LockNotAcquired: errors.LockNotAcquired,
  errorFromStatus: errors.errorFromStatus,
};
