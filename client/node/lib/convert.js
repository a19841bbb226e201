'use strict';
// Conversions between JavaScript values and the messages of corral.v1, and
// the plain result objects the client hands back. Durations are seconds
// (numbers, fractions allowed) like the Python client's; undefined/null
// means "unset" (the namespace default) and 0 an explicit zero. Instants are
// Date objects (null for an unset timestamp). uint64 fencing tokens are
// decimal strings (see README: compare them with BigInt(token)).

const MAX_ABANDON_REASON = 512;

// Enum names on the wire -> the lower-case names this client uses, which
// match the Python client's str() and the C++ client's SourceName().
function enumName(wire, prefix) {
  if (typeof wire !== 'string' || !wire.startsWith(prefix)) return 'unspecified';
  return wire.slice(prefix.length).toLowerCase();
}

function seconds(d, what = 'a duration') {
  if (d === undefined || d === null) return null;
  if (typeof d !== 'number' || !Number.isFinite(d)) {
    throw new TypeError(`${what} must be a number of seconds, not ${typeof d}`);
  }
  if (d < 0) throw new RangeError(`${what} must not be negative (got ${d}s)`);
  return d;
}

// A google.protobuf.Duration for `d` seconds, or null to leave it unset.
function durationProto(d, what) {
  const s = seconds(d, what);
  if (s === null) return null;
  const nanosTotal = BigInt(Math.round(s * 1e9));
  return { seconds: String(nanosTotal / 1000000000n), nanos: Number(nanosTotal % 1000000000n) };
}

function fromDuration(d) {
  if (!d) return 0;
  return Number(d.seconds || 0) + (d.nanos || 0) / 1e9;
}

function fromTimestamp(ts) {
  if (!ts) return null;
  const s = Number(ts.seconds || 0);
  const n = ts.nanos || 0;
  if (s === 0 && n === 0) return null;
  return new Date(s * 1000 + Math.floor(n / 1e6));
}

// Keys and values travel as bytes; a string is encoded as UTF-8.
function toBytes(data, what) {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError(`${what} must be a Buffer, Uint8Array or string, not ${data === null ? 'null' : typeof data}`);
}

function cachedValue(v) {
  return {
    value: Buffer.from(v.value || []),
    source: enumName(v.source, 'SOURCE_'),
    age: fromDuration(v.age),
    ttlRemaining: fromDuration(v.ttl_remaining),
    stale: Boolean(v.stale),
  };
}

function withDurations(msg, fields) {
  for (const [name, value] of Object.entries(fields)) {
    const d = durationProto(value, name);
    if (d !== null) msg[name] = d;
  }
  return msg;
}

// -- GetOrCompute messages -----------------------------------------------------
function lookup(namespace, key, { ttl, waitTimeout, leaseTtl, allowStale = false, workerId = '' }) {
  const msg = { namespace, key: toBytes(key, 'key'), allow_stale: Boolean(allowStale), worker_id: workerId };
  withDurations(msg, { ttl, wait_timeout: waitTimeout, lease_ttl: leaseTtl });
  return { lookup: msg };
}

function fill(value, ttl) {
  return { fill: withDurations({ value }, { ttl }) };
}

function abandon(reason, upstreamFailure) {
  return { abandon: { reason: String(reason).slice(0, MAX_ABANDON_REASON), upstream_failure: upstreamFailure } };
}

function describe(err) {
  if (err instanceof Error) return err.message ? `${err.name}: ${err.message}` : err.name;
  return String(err);
}

function fromValue(v, attempts) {
  return { ...cachedValue(v), computed: false, leaseMode: 'none', fencingToken: '0', stored: false,
    notStoredReason: '', refreshError: null, attempts, shared: false, nearCache: false };
}

function computedResult(lease, value, attempts, filled, notStoredReason = '') {
  let fencing = lease.fencing_token;
  if (filled && filled.fencing_token && filled.fencing_token !== '0') fencing = filled.fencing_token;
  return { value, source: 'computed', stale: false, age: 0, ttlRemaining: 0, computed: true,
    leaseMode: enumName(lease.mode, 'LEASE_MODE_'), fencingToken: String(fencing),
    stored: Boolean(filled && filled.stored),
    notStoredReason: filled ? filled.reason : notStoredReason, refreshError: null, attempts, shared: false, nearCache: false };
}

// A refresh whose compute failed serves the value being refreshed.
function refreshFallback(lease, error, attempts) {
  return { value: Buffer.from(lease.current_value || []), source: 'stale', stale: true, age: 0,
    ttlRemaining: 0, computed: true, leaseMode: 'refresh', fencingToken: String(lease.fencing_token),
    stored: false, notStoredReason: '', refreshError: error, attempts, shared: false, nearCache: false };
}

// -- unary messages ------------------------------------------------------------
function setRequest(namespace, key, value, { ttl, lockToken = '', releaseLock = false }) {
  return withDurations({ namespace, key: toBytes(key, 'key'), value: toBytes(value, 'value'),
    lock_token: lockToken, release_lock: Boolean(releaseLock) }, { ttl });
}

function acquireRequest(namespace, key, { ttl, waitTimeout, owner }) {
  return withDurations({ namespace, key: toBytes(key, 'key'), owner }, { ttl, wait_timeout: waitTimeout });
}

function renewRequest(namespace, key, token, { ttl }) {
  return withDurations({ namespace, key: toBytes(key, 'key'), token }, { ttl });
}

const OUTCOMES = { unspecified: 'OUTCOME_UNSPECIFIED', success: 'OUTCOME_SUCCESS', failure: 'OUTCOME_FAILURE' };

function releaseRequest(namespace, key, token, outcome = 'unspecified') {
  const wire = OUTCOMES[outcome];
  if (!wire) throw new TypeError(`outcome must be one of ${Object.keys(OUTCOMES).join(', ')}`);
  return { namespace, key: toBytes(key, 'key'), token, outcome: wire };
}

function grant(r) {
  return { acquired: Boolean(r.acquired), token: r.token, fencingToken: String(r.fencing_token),
    expiresAt: fromTimestamp(r.expires_at), waited: fromDuration(r.waited) };
}

function renewed(r) {
  return { renewed: Boolean(r.renewed), expiresAt: fromTimestamp(r.expires_at) };
}

function breaker(r) {
  return { namespace: r.namespace, state: enumName(r.state, 'BREAKER_STATE_'),
    since: fromTimestamp(r.since), retryAfter: fromDuration(r.retry_after),
    recentFailures: Number(r.recent_failures), recentSuccesses: Number(r.recent_successes) };
}

module.exports = {
  seconds, durationProto, fromDuration, fromTimestamp, toBytes, cachedValue,
  lookup, fill, abandon, describe, fromValue, computedResult, refreshFallback,
  setRequest, acquireRequest, renewRequest, releaseRequest, grant, renewed, breaker,
};
