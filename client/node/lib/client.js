'use strict';
// The Node.js client of corral (service corral.v1.Corral).
//
//   const { Client } = require('corral-client');
//   const client = new Client('127.0.0.1:50051', { token: process.env.CORRAL_TOKEN });
//   const value = await client.getOrCompute('plant_id', imageHash, async () => identify(image));
//
// Every method returns a promise for one call (retries included) and rejects
// with a CorralError subclass when the call fails. Share one Client per
// process and target; close() it when done. Mirrors client/python/corral/client.py.

const grpc = require('@grpc/grpc-js');
const { isLoopbackTarget } = require('./target');
const convert = require('./convert');
const { CorralError, Internal, LockNotAcquired, errorFromGrpc } = require('./errors');
const { Lock } = require('./lock');
const { corralService } = require('./proto');
const { NO_RETRY, RetryState, sleep } = require('./retry');

// Reads the response side of a GetOrCompute stream one message at a time.
// It listens for 'error' from the start: grpc-js emits one for every non-OK
// end, cancel() included, and an unheard 'error' would crash the process.
class MessageReader {
  constructor(call) {
    this._queue = [];
    this._wake = null;
    this._error = null;
    this._done = false;
    call.on('data', (m) => { this._queue.push(m); this._notify(); });
    call.on('error', (e) => { this._error = errorFromGrpc(e); this._done = true; this._notify(); });
    call.on('end', () => { this._done = true; this._notify(); });
    call.on('status', (s) => {
      if (s.code !== grpc.status.OK && !this._error) this._error = errorFromGrpc(s);
      this._done = true;
      this._notify();
    });
  }

  _notify() {
    const wake = this._wake;
    this._wake = null;
    if (wake) wake();
  }

  // The next message, or null when the call ended OK; rejects with the
  // call's CorralError when it ended otherwise.
  async next() {
    for (;;) {
      if (this._queue.length) return this._queue.shift();
      if (this._error) throw this._error;
      if (this._done) return null;
      await new Promise((resolve) => { this._wake = resolve; });
    }
  }

  // Waits for the call to end, however it ends.
  async drain() {
    for (;;) {
      try {
        if ((await this.next()) === null) return;
      } catch {
        return;
      }
    }
  }
}

function credentialsFor(tls, credentials) {
  if (credentials) return credentials;
  if (!tls) return grpc.credentials.createInsecure();
  if (tls === true) return grpc.credentials.createSsl();
  const { ca = null, key = null, cert = null } = tls;
  return grpc.credentials.createSsl(ca, key, cert);
}

class Client {
  // `target`: host:port of corrald. Options:
  //   token       bearer token sent on every call (a server with credentials configured)
  //   tls         true (system roots) or { ca, key, cert } PEM Buffers (key+cert: mutual TLS);
  //               absent: plaintext
  //   credentials a grpc.ChannelCredentials, instead of tls
  //   timeout     seconds, the deadline of one call, retries included (default 30); for
  //               getOrCompute it covers the wait for a peer *and* this caller's compute
  //   workerId    sent for the server's logs; the default lock owner
  //   retry       { maxAttempts, initialBackoff, maxBackoff, multiplier, jitter } (seconds)
  //   maxReceiveMessageBytes (default 64 MiB), channelOptions (extra grpc-js options)
  constructor(target, options = {}) {
    if (typeof target !== 'string' || !target) throw new TypeError('target must be "host:port"');
    const { token, tls, credentials, timeout = 30, workerId = '', retry = {},
      maxReceiveMessageBytes = 64 << 20, channelOptions = {} } = options;
    this.target = target;
    this.timeout = convert.seconds(timeout, 'timeout');
    this.workerId = workerId;
    this._retry = retry;
    this._token = token || '';
    if (this._token && !tls && !credentials && !isLoopbackTarget(target)) {
      // Not an error (a trusted network or a sidecar may carry it), but a
      // bearer token in clear text is readable by anyone on the path.
      process.emitWarning(
        `corral: the token for ${target} would be sent in plaintext; pass { tls } ` +
        '(or credentials) to encrypt it', { type: 'PlaintextTokenWarning', code: 'CORRAL_PLAINTEXT_TOKEN' });
    }
    const Service = corralService();
    this._stub = new Service(target, credentialsFor(tls, credentials), {
      'grpc.max_receive_message_length': maxReceiveMessageBytes, ...channelOptions,
    });
  }

  close() {
    this._stub.close();
  }

  // -- cache -------------------------------------------------------------------
  // The cached value ({ value: Buffer, source, age, ttlRemaining, stale }), or null on a miss.
  async get(namespace, key, { timeout } = {}) {
    const r = await this._unary('Get', { namespace, key: convert.toBytes(key, 'key') }, timeout);
    return r.found ? convert.cachedValue(r.value) : null;
  }

  // Stores `value` (Buffer or string); resolves to whether it was stored.
  // With `lockToken` the write is fenced (stored only while that lock is
  // held; it wakes the key's GetOrCompute waiters like a Fill) and is sent
  // once, never retried; `releaseLock` releases the lock in the same call.
  async set(namespace, key, value, { ttl, lockToken = '', releaseLock = false, timeout } = {}) {
    const req = convert.setRequest(namespace, key, value, { ttl, lockToken, releaseLock });
    return (await this._unary('Set', req, timeout, !lockToken)).stored;
  }

  // Drops the cached value; resolves to whether there was one.
  async invalidate(namespace, key, { timeout } = {}) {
    const r = await this._unary('Invalidate', { namespace, key: convert.toBytes(key, 'key') }, timeout);
    return r.existed;
  }

  // -- locks -------------------------------------------------------------------
  // Takes the key's lock (the one a GetOrCompute miss takes), waiting
  // server-side up to `waitTimeout` (0: try once; unset: namespace default).
  // Not getting it is { acquired: false }, not an error. Sent once.
  async acquireLock(namespace, key, { ttl, waitTimeout, owner = '', timeout } = {}) {
    const req = convert.acquireRequest(namespace, key, { ttl, waitTimeout, owner: owner || this.workerId });
    // The deadline is stretched to waitTimeout + timeout: a long wait is not cut short.
    const base = timeout ?? this.timeout;
    const wait = convert.seconds(waitTimeout, 'waitTimeout');
    const budget = wait === null ? base : Math.max(base, wait + this.timeout);
    return convert.grant(await this._unary('AcquireLock', req, budget, false));
  }

  async renewLock(namespace, key, token, { ttl, timeout } = {}) {
    return convert.renewed(await this._unary('RenewLock', convert.renewRequest(namespace, key, token, { ttl }), timeout));
  }

  // Releases the lock if `token` still holds it; `outcome` ('success',
  // 'failure', 'unspecified') feeds the namespace's breaker. Sent once.
  async releaseLock(namespace, key, token, { outcome = 'unspecified', timeout } = {}) {
    const req = convert.releaseRequest(namespace, key, token, outcome);
    return (await this._unary('ReleaseLock', req, timeout, false)).released;
  }

  // Acquires the key's lock and resolves to it held (a Lock), renewed every
  // `renewEvery` seconds (default ttl/3) until released. Rejects with
  // LockNotAcquired when `waitTimeout` passes first.
  async lock(namespace, key, { ttl = 30, waitTimeout, owner = '', renewEvery, onLost, timeout } = {}) {
    const ttlS = convert.seconds(ttl, 'ttl');
    if (!ttlS) throw new RangeError('a held lock needs a positive ttl');
    const g = await this.acquireLock(namespace, key, { ttl: ttlS, waitTimeout, owner, timeout });
    if (!g.acquired) {
      const waited = waitTimeout === undefined || waitTimeout === null
        ? "the namespace's default wait" : `${waitTimeout}s`;
      throw new LockNotAcquired(`lock not acquired within ${waited}`);
    }
    return new Lock(this, namespace, convert.toBytes(key, 'key'), g, ttlS, { renewEvery, onLost });
  }

  // Runs `fn(lock)` holding the key's lock, then releases it with outcome
  // 'success' (or 'failure' if fn throws, and rethrows). Resolves to fn's result.
  async withLock(namespace, key, options, fn) {
    const lock = await this.lock(namespace, key, options);
    let result;
    try {
      result = await fn(lock);
    } catch (err) {
      if (!lock.released) await lock.release('failure').catch(() => {});
      throw err;
    }
    if (!lock.released) await lock.release('success');
    return result;
  }

  // -- breaker -----------------------------------------------------------------
  // { namespace, state: 'closed'|'open'|'half_open'|'unspecified', since, retryAfter, ... }
  async getBreaker(namespace, { timeout } = {}) {
    return convert.breaker(await this._unary('GetBreaker', { namespace }, timeout));
  }

  // -- GetOrCompute ------------------------------------------------------------
  // The value of `key` as a Buffer: from the cache, from the caller
  // fleet-wide that computes it, or from `compute()` when this caller is
  // handed the lease. `compute` runs at most once and returns (or resolves
  // to) a Buffer, Uint8Array or string (stored as UTF-8). If it throws, the
  // failure is reported as an upstream failure (Abandon{upstream_failure};
  // the breaker counts it, current waiters get PeerComputeFailed) and the
  // error is rethrown, except for a refresh lease, where the value being
  // refreshed is returned instead. Options: see getOrComputeResult.
  async getOrCompute(namespace, key, compute, options = {}) {
    return (await this.getOrComputeResult(namespace, key, compute, options)).value;
  }

  // getOrCompute, resolving to how the value was obtained as well. Options
  // (seconds): ttl of the value this caller fills, waitTimeout for a peer's
  // compute, leaseTtl (lock expiry if corrald dies), allowStale, workerId,
  // timeout (caps the whole exchange). Transport failures are retried only
  // while compute has not run.
  async getOrComputeResult(namespace, key, compute, options = {}) {
    if (typeof compute !== 'function') throw new TypeError('compute must be a function');
    const { ttl, waitTimeout, leaseTtl, allowStale = false, timeout, workerId } = options;
    const request = convert.lookup(namespace, key, { ttl, waitTimeout, leaseTtl, allowStale,
      workerId: workerId ?? this.workerId });
    const state = new RetryState(this._retry, performance.now() + (timeout ?? this.timeout) * 1000);
    for (;;) {
      const ran = { value: false };
      try {
        return await this._attempt(request, compute, ttl, state, ran);
      } catch (err) {
        if (ran.value || !(err instanceof CorralError)) throw err;
        const delay = state.nextDelayMs(err, false);
        if (delay === null) throw err;
        await sleep(delay);
      }
    }
  }

  async _attempt(request, compute, ttl, state, ran) {
    const call = this._stub.GetOrCompute(this._metadata(), { deadline: state.grpcDeadline() });
    const reader = new MessageReader(call);
    call.write(request);
    try {
      const first = await reader.next();
      if (first === null) throw new Internal('corral ended GetOrCompute without a reply');
      if (first.msg === 'value') {
        call.end();
        await reader.drain(); // We hold the value; how the call ends is moot.
        return convert.fromValue(first.value, state.attempts);
      }
      if (first.msg === 'lease') {
        ran.value = true;
        return await this._runLease(call, reader, first.lease, compute, ttl, state.attempts);
      }
      throw new Internal(`corral answered Lookup with ${first.msg}`);
    } catch (err) {
      call.cancel(); // Leaves the wait, or abandons a lease; a no-op once done.
      throw err;
    }
  }

  async _runLease(call, reader, lease, compute, ttl, attempts) {
    let value;
    let error = null;
    let upstreamFailure = false;
    try {
      const raw = await compute();
      try {
        value = convert.toBytes(raw, "compute's result");
      } catch (err) {
        error = err; // A wrong return type is this caller's bug, not the upstream's.
      }
    } catch (err) {
      error = err;
      upstreamFailure = true;
    }
    if (error !== null) {
      call.write(convert.abandon(convert.describe(error), upstreamFailure));
      call.end();
      await reader.drain();
      if (upstreamFailure && lease.mode === 'LEASE_MODE_REFRESH') {
        return convert.refreshFallback(lease, error, attempts);
      }
      throw error;
    }
    call.write(convert.fill(value, ttl));
    let answer;
    try {
      answer = await reader.next();
    } catch (err) {
      // The value is good even if the cache did not take it.
      return convert.computedResult(lease, value, attempts, null, err.message);
    }
    if (answer === null) {
      return convert.computedResult(lease, value, attempts, null,
        'corral ended the call without answering Fill');
    }
    if (answer.msg !== 'filled') {
      call.cancel();
      return convert.computedResult(lease, value, attempts, null, `unexpected answer to Fill: ${answer.msg}`);
    }
    call.end();
    await reader.drain();
    return convert.computedResult(lease, value, attempts, answer.filled);
  }

  // -- plumbing ----------------------------------------------------------------
  _metadata() {
    const md = new grpc.Metadata();
    if (this._token) md.set('authorization', `Bearer ${this._token}`);
    return md;
  }

  async _unary(method, request, timeout, idempotent = true) {
    const budget = timeout ?? this.timeout;
    const state = new RetryState(idempotent ? this._retry : NO_RETRY, performance.now() + budget * 1000);
    for (;;) {
      try {
        return await new Promise((resolve, reject) => {
          this._stub[method](request, this._metadata(), { deadline: state.grpcDeadline() },
            (err, response) => (err ? reject(errorFromGrpc(err)) : resolve(response)));
        });
      } catch (err) {
        const delay = state.nextDelayMs(err, false);
        if (delay === null) throw err;
        await sleep(delay);
      }
    }
  }
}

module.exports = { Client, MessageReader };
