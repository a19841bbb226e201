// Types of corral-client (hand-written; the implementation is lib/*.js).
// Durations are seconds (numbers); uint64 fencing tokens are decimal strings
// (compare them with BigInt(token)); instants are Date objects or null.

import type { ChannelCredentials } from '@grpc/grpc-js';

export type Bytes = Buffer | Uint8Array | string;
export type Source =
  | 'unspecified' | 'cache' | 'cache_after_lock' | 'peer_fill' | 'cache_after_timeout' | 'stale'
  | 'computed';
export type LeaseMode = 'none' | 'locked' | 'unlocked_timeout' | 'unlocked_degraded' | 'refresh';
export type Outcome = 'unspecified' | 'success' | 'failure';
export type BreakerState = 'unspecified' | 'closed' | 'open' | 'half_open';

export interface RetryPolicy {
  maxAttempts?: number;
  initialBackoff?: number;
  maxBackoff?: number;
  multiplier?: number;
  jitter?: number;
}

export interface TlsOptions {
  /** PEM of the CA that signed corrald's certificate (default: system roots). */
  ca?: Buffer | null;
  /** PEM private key and certificate chain of this client, for mutual TLS. */
  key?: Buffer | null;
  cert?: Buffer | null;
}

export interface ClientOptions {
  /** Bearer token sent on every call. */
  token?: string;
  /** true: TLS with the system roots; an object: TLS with these PEMs; absent: plaintext. */
  tls?: boolean | TlsOptions;
  /** A channel credential to use instead of `tls`. */
  credentials?: ChannelCredentials;
  /** Seconds; the deadline of one call, retries included (default 30). */
  timeout?: number;
  workerId?: string;
  retry?: RetryPolicy;
  maxReceiveMessageBytes?: number;
  channelOptions?: Record<string, unknown>;
  /** The near cache: true (default), false, or its bounds. */
  nearCache?: boolean | NearCacheLimits;
  /**
   * A grpc-js load-balancing policy, e.g. 'round_robin' (default: pick_first).
   * The near cache's stream and its Gets then use a second channel pinned to
   * one replica, the one that grants them.
   */
  loadBalancing?: string;
}

export interface NearCacheLimits {
  /** Values kept at most (default 10,000). */
  maxEntries?: number;
  /** Bytes of keys and values kept at most (default 64 MiB). */
  maxBytes?: number;
}

export interface NearCacheStats {
  hits: number;
  planted: number;
  notPlanted: number;
  invalidated: number;
  evicted: number;
  resets: number;
}

export declare class NearCache {
  readonly size: number;
  readonly bytes: number;
  readonly stats: NearCacheStats;
}

export interface CallOptions {
  /** Seconds; this call's deadline, retries included. */
  timeout?: number;
}

export interface ReadOptions extends CallOptions {
  /** false: skip the near cache for this call (always ask corrald). */
  nearCache?: boolean;
}

export interface GetOrComputeOptions extends ReadOptions {
  /** TTL of the value this caller fills (seconds; unset: the namespace default). */
  ttl?: number;
  /** How long to wait for another caller's compute (seconds). */
  waitTimeout?: number;
  /** Lock expiry if corrald stops renewing it (seconds). */
  leaseTtl?: number;
  allowStale?: boolean;
  workerId?: string;
}

export interface CachedValue {
  value: Buffer;
  source: Source;
  /** Seconds since it was stored. */
  age: number;
  ttlRemaining: number;
  stale: boolean;
  /** Served from this client's near cache (no call to corrald). */
  nearCache?: boolean;
}

export interface GetOrComputeResult extends CachedValue {
  /** This caller held a lease and ran compute. */
  computed: boolean;
  leaseMode: LeaseMode;
  /** Decimal uint64; "0" when there was no lease. */
  fencingToken: string;
  stored: boolean;
  notStoredReason: string;
  /** A refresh whose compute failed: what compute threw (value is the old one). */
  refreshError: unknown;
  attempts: number;
  /** Another call for the same key through this client ran compute (single flight). */
  shared?: boolean;
}

export interface LockGrant {
  acquired: boolean;
  token: string;
  /** Decimal uint64, strictly increasing per key fleet-wide. */
  fencingToken: string;
  expiresAt: Date | null;
  /** Seconds waited. */
  waited: number;
}

export interface RenewResult {
  renewed: boolean;
  expiresAt: Date | null;
}

export interface BreakerInfo {
  namespace: string;
  state: BreakerState;
  since: Date | null;
  /** Seconds until the breaker admits a probe. */
  retryAfter: number;
  recentFailures: number;
  recentSuccesses: number;
}

export interface SetOptions extends CallOptions {
  ttl?: number;
  /** Fences the write: stored only while this lock is held. */
  lockToken?: string;
  releaseLock?: boolean;
}

export interface AcquireLockOptions extends CallOptions {
  ttl?: number;
  /** Seconds to wait server-side; 0 tries once; unset: the namespace default. */
  waitTimeout?: number;
  owner?: string;
}

export interface LockOptions extends AcquireLockOptions {
  /** Seconds between renewals (default ttl / 3). */
  renewEvery?: number;
  /** Runs once if the lock is lost (not renewed, or expired while renewals failed). */
  onLost?: () => void;
}

export declare class Lock {
  readonly namespace: string;
  readonly key: Buffer;
  readonly token: string;
  readonly fencingToken: string;
  readonly waited: number;
  readonly expiresAt: Date | null;
  readonly lost: boolean;
  readonly released: boolean;
  /** Successful renewals so far. */
  readonly renewals: number;
  /** Stops renewing and releases; resolves to whether the server released it. */
  release(outcome?: Outcome): Promise<boolean>;
}

export declare class Client {
  constructor(target: string, options?: ClientOptions);
  readonly target: string;
  readonly timeout: number;
  readonly workerId: string;
  /** null when the client was made with nearCache: false. */
  readonly nearCache: NearCache | null;
  close(): void;

  getOrCompute(namespace: string, key: Bytes, compute: () => Bytes | Promise<Bytes>,
    options?: GetOrComputeOptions): Promise<Buffer>;
  getOrComputeResult(namespace: string, key: Bytes, compute: () => Bytes | Promise<Bytes>,
    options?: GetOrComputeOptions): Promise<GetOrComputeResult>;

  get(namespace: string, key: Bytes, options?: ReadOptions): Promise<CachedValue | null>;
  set(namespace: string, key: Bytes, value: Bytes, options?: SetOptions): Promise<boolean>;
  invalidate(namespace: string, key: Bytes, options?: CallOptions): Promise<boolean>;

  acquireLock(namespace: string, key: Bytes, options?: AcquireLockOptions): Promise<LockGrant>;
  renewLock(namespace: string, key: Bytes, token: string,
    options?: CallOptions & { ttl?: number }): Promise<RenewResult>;
  releaseLock(namespace: string, key: Bytes, token: string,
    options?: CallOptions & { outcome?: Outcome }): Promise<boolean>;
  lock(namespace: string, key: Bytes, options?: LockOptions): Promise<Lock>;
  withLock<T>(namespace: string, key: Bytes, options: LockOptions | undefined,
    fn: (lock: Lock) => T | Promise<T>): Promise<T>;

  getBreaker(namespace: string, options?: CallOptions): Promise<BreakerInfo>;
}

export declare class CorralError extends Error {
  constructor(details?: string, init?: { code?: number; reason?: string;
    retryAfterMs?: number | null; cause?: unknown });
  /** The numeric gRPC status code (grpc.status). */
  readonly code: number;
  /** Its name, e.g. "UNAVAILABLE". */
  readonly codeName: string;
  readonly details: string;
  /** The corral-reason trailer ("" when absent), e.g. "breaker-open". */
  readonly reason: string;
  /** The retry-after-ms trailer, or null. */
  readonly retryAfterMs: number | null;
}
export declare class InvalidArgument extends CorralError {}
export declare class NotFound extends CorralError {}
export declare class DeadlineExceeded extends CorralError {}
export declare class ResourceExhausted extends CorralError {}
export declare class Unavailable extends CorralError {}
export declare class PermissionDenied extends CorralError {}
export declare class Unauthenticated extends CorralError {}
export declare class Unimplemented extends CorralError {}
export declare class Cancelled extends CorralError {}
export declare class Internal extends CorralError {}
export declare class BreakerOpen extends Unavailable {}
export declare class PeerComputeFailed extends Unavailable {}
export declare class StoreUnavailable extends Unavailable {}
export declare class ShuttingDown extends Unavailable {}
export declare class WaitTimeout extends DeadlineExceeded {}
export declare class UnknownNamespace extends NotFound {}
export declare class TooManyWaiters extends ResourceExhausted {}
/** `compute-budget`: the namespace's compute budget is spent; see `retryAfterMs`. */
export declare class ComputeBudgetExhausted extends ResourceExhausted {}
export declare class LockNotAcquired extends DeadlineExceeded {}

export declare function errorFromStatus(code: number, details: string, metadata?: unknown,
  cause?: unknown): CorralError;

export declare const DEFAULT_RETRY: Readonly<Required<RetryPolicy>>;
export declare const LOADER_OPTIONS: Readonly<Record<string, unknown>>;
export declare const PROTO_DIR: string;
