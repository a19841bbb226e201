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
const { Cancelled, CorralError, DeadlineExceeded, Internal, LockNotAcquired,
  errorFromGrpc } = require('./errors');
const { Backoff, NearCache, UNSUPPORTED_BACKOFF, nearKey } = require('./near_cache');
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

// -- in-process single flight -------------------------------------------------
// Concurrent getOrCompute calls for one (namespace, key, allowStale,
// waitTimeout) through one client share one server call (a flight): the first caller's options
// and compute are used; the others wait (each up to its own timeout) and get
// its value (`shared: true`) or the same error. A refresh lease releases
// them at once (the server serves them the current value, as before). A
// leader that ran out of its own deadline does not decide for them: those
// with time left start the next flight.
class Flight {
  constructor() {
    this.done = false;
    this.result = null;
    this.error = null;
    this.promise = null;
    this._openGate = null;
    // Settles when joiners stop waiting: the flight ended, or it refreshes.
    this.gate = new Promise((resolve) => { this._openGate = resolve; });
  }

  openGate() { this._openGate(); }
}

function sharedResult(r) {
  return { ...r, source: r.source === 'computed' ? 'peer_fill' : r.source, computed: false,
    leaseMode: 'none', fencingToken: '0', shared: true };
}

function leaderGone(err) {
  return err instanceof Error && (err.constructor === DeadlineExceeded || err.constructor === Cancelled);
}

function joinerTimedOut(startedMs) {
  const s = ((performance.now() - startedMs) / 1000).toPrecision(3);
  return new DeadlineExceeded(`waited ${s}s for this client's call for the same key (in-process single flight)`);
}

function nearValue(near, e) {
  return { value: e.value, source: 'cache', ...near.ageAndTtl(e), stale: false, nearCache: true };
}

// Keeps a fresh hit granted near_cache_for; ends the ticket either way.
function keep(near, ticket, r, usable) {
  if (!ticket) return;
  const v = r.value;
  if (usable && v && v.near_cache_for) {
    near.plant(ticket, Buffer.from(v.value || []), convert.fromDuration(v.near_cache_for),
      convert.fromDuration(v.age), convert.fromDuration(v.ttl_remaining));
  } else {
    near.cancel(ticket);
  }
}

function credentialsFor(tls, credentials) {
  if (credentials) return credentials;
  if (!tls) return grpc.credentials.createInsecure();
  if (tls === true) return grpc.credentials.createSsl();
  const { ca = null, key = null, cert = null } = tls;
  return grpc.credentials.createSsl(ca, key, cert);
}

// A service config choosing the load-balancing policy `name`.
function serviceConfigFor(name) {
  return JSON.stringify({ loadBalancingConfig: [{ [name]: {} }] });
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
  //   nearCache   true (default), false, or { maxEntries, maxBytes }: hot values served from
  //               this process's memory, kept coherent by corrald over one NearCache stream
  //               that the client opens on its first read (close() ends it); a namespace can
  //               forbid it (near_cache: false in corrald's config), a call can skip it
  //               ({ nearCache: false })
  //   loadBalancing a grpc-js policy name, e.g. 'round_robin' to spread calls over every address
  //               the target resolves to (default: pick_first, one address). corrald grants near
  //               caching only to Gets that reach the replica holding the client's stream, so when
  //               calls may spread (this, or a service config in channelOptions) the stream and
  //               the Gets it may keep go over a second channel pinned to one replica
  constructor(target, options = {}) {
    if (typeof target !== 'string' || !target) throw new TypeError('target must be "host:port"');
    const { token, tls, credentials, timeout = 30, workerId = '', retry = {},
      maxReceiveMessageBytes = 64 << 20, channelOptions = {}, nearCache = true,
      loadBalancing = '' } = options;
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
    const base = { 'grpc.max_receive_message_length': maxReceiveMessageBytes, ...channelOptions };
    const spread = { ...base };
    if (loadBalancing) spread['grpc.service_config'] = serviceConfigFor(loadBalancing);
    this._stub = new Service(target, credentialsFor(tls, credentials), spread);
    // The near cache's stream and its Gets must reach one replica.
    const mayScatter = (loadBalancing && loadBalancing !== 'pick_first') ||
      'grpc.service_config' in channelOptions || 'grpc.lb_policy_name' in channelOptions;
    this._nearStub = nearCache && mayScatter
      ? new Service(target, credentialsFor(tls, credentials), {
        ...base,
        'grpc.service_config': serviceConfigFor('pick_first'),
        'grpc.service_config_disable_resolution': 1,
      })
      : this._stub;
    this._flights = new Map();
    this.nearCache = nearCache ? new NearCache(nearCache === true ? {} : nearCache) : null;
    this._nearCall = null;
    this._nearStarted = false;
    this._nearTimer = null;
    this._nearUnsupportedWarned = false;
    this._closed = false;
  }

  close() {
    this._closed = true;
    if (this._nearTimer) clearTimeout(this._nearTimer);
    if (this._nearCall) this._nearCall.cancel();
    this._stub.close();
    if (this._nearStub !== this._stub) this._nearStub.close();
  }

  // -- the near cache's stream -------------------------------------------------
  // The near cache for a call (null: off), its stream started once.
  _nearFor(on) {
    if (on === false || !this.nearCache) return null;
    if (!this._nearStarted && !this._closed) {
      this._nearStarted = true;
      this._openNearStream(new Backoff());
    }
    return this.nearCache;
  }

  // One NearCache stream until close(), reopened with backoff; the near
  // cache is empty whenever it is down.
  _openNearStream(backoff) {
    if (this._closed) return;
    const near = this.nearCache;
    const call = this._nearStub.NearCache({ client_name: this.workerId }, this._metadata());
    this._nearCall = call;
    let ended = false;
    const end = (status) => {
      if (ended) return;
      ended = true;
      near.lost();
      if (this._closed || this._nearCall !== call) return;
      this._nearCall = null;
      let delay = backoff.delay();
      if (status && status.code === grpc.status.UNIMPLEMENTED) {
        if (!this._nearUnsupportedWarned) {
          this._nearUnsupportedWarned = true;
          process.emitWarning(`corral: the server has no near cache (${status.details}); reading ` +
            `through corrald, asking again every ${UNSUPPORTED_BACKOFF}s`, { code: 'CORRAL_NO_NEAR_CACHE' });
        }
        delay = UNSUPPORTED_BACKOFF;
      }
      this._nearTimer = setTimeout(() => this._openNearStream(backoff), delay * 1000);
      this._nearTimer.unref();
    };
    call.on('data', (ev) => {
      if (ev.event === 'started') {
        near.start(ev.started.session);
        backoff.started();
      } else if (ev.event === 'invalidations') {
        near.invalidate(ev.invalidations.keys.map((k) => nearKey(k.namespace, Buffer.from(k.key))));
      } else if (ev.event === 'reset') {
        near.reset();
      }
    });
    call.on('error', (e) => end(e));
    call.on('status', (st) => end(st));
    call.on('end', () => end(null));
  }

  // -- cache -------------------------------------------------------------------
  // The cached value ({ value: Buffer, source, age, ttlRemaining, stale, nearCache }), or
  // null on a miss. From the near cache when it holds the key ({ nearCache: false }: ask corrald).
  async get(namespace, key, { timeout, nearCache } = {}) {
    const keyBytes = convert.toBytes(key, 'key');
    const near = this._nearFor(nearCache);
    const nk = near && nearKey(namespace, keyBytes);
    const hit = near && near.lookup(nk);
    if (hit) return nearValue(near, hit);
    const ticket = near && near.ticket(nk);
    const req = { namespace, key: keyBytes };
    if (ticket) req.near_cache_session = ticket.session;
    let r;
    try {
      r = await this._unary('Get', req, timeout, true, Boolean(ticket));
    } catch (err) {
      if (ticket) near.cancel(ticket);
      throw err;
    }
    keep(near, ticket, r, r.found && !r.value.stale);
    return r.found ? { ...convert.cachedValue(r.value), nearCache: false } : null;
  }

  // This client's own write: its next read does not wait for the push.
  _forgetNear(namespace, key) {
    if (this.nearCache) this.nearCache.invalidate([nearKey(namespace, convert.toBytes(key, 'key'))]);
  }

  // Stores `value` (Buffer or string); resolves to whether it was stored.
  // With `lockToken` the write is fenced (stored only while that lock is
  // held; it wakes the key's GetOrCompute waiters like a Fill) and is sent
  // once, never retried; `releaseLock` releases the lock in the same call.
  async set(namespace, key, value, { ttl, lockToken = '', releaseLock = false, timeout } = {}) {
    const req = convert.setRequest(namespace, key, value, { ttl, lockToken, releaseLock });
    try {
      return (await this._unary('Set', req, timeout, !lockToken)).stored;
    } finally {
      this._forgetNear(namespace, req.key);
    }
  }

  // Drops the cached value; resolves to whether there was one.
  async invalidate(namespace, key, { timeout } = {}) {
    const keyBytes = convert.toBytes(key, 'key');
    try {
      return (await this._unary('Invalidate', { namespace, key: keyBytes }, timeout)).existed;
    } finally {
      this._forgetNear(namespace, keyBytes);
    }
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
    const near = this._nearFor(options.nearCache);
    if (near) { // The hot path: no result object.
      const hit = near.lookup(nearKey(namespace, convert.toBytes(key, 'key')));
      if (hit) return hit.value;
    }
    return (await this.getOrComputeResult(namespace, key, compute, options)).value;
  }

  // getOrCompute, resolving to how the value was obtained as well. Options
  // (seconds): ttl of the value this caller fills, waitTimeout for a peer's
  // compute, leaseTtl (lock expiry if corrald dies), allowStale, workerId,
  // timeout (caps the whole exchange), nearCache (false: skip the near
  // cache). Transport failures are retried only while compute has not run.
  // The near cache answers first; then one unary Get, which a fresh hit
  // ends; the GetOrCompute stream opens only on a miss, a stale value or an
  // early refresh drawn by that Get. Concurrent calls for one key through
  // this client share one server call (see Flight above).
  async getOrComputeResult(namespace, key, compute, options = {}) {
    if (typeof compute !== 'function') throw new TypeError('compute must be a function');
    const keyBytes = convert.toBytes(key, 'key');
    const near = this._nearFor(options.nearCache);
    const nk = nearKey(namespace, keyBytes);
    if (near) {
      const hit = near.lookup(nk);
      if (hit) return { ...nearValue(near, hit), computed: false, leaseMode: 'none', fencingToken: '0',
        stored: false, notStoredReason: '', refreshError: null, attempts: 1, shared: false };
    }
    const fk = `${nk}\u0000${options.allowStale ? 1 : 0}\u0000${options.waitTimeout ?? ''}`;
    const started = performance.now();
    const deadline = started + convert.seconds(options.timeout ?? this.timeout, 'timeout') * 1000;
    for (;;) {
      let flight = this._flights.get(fk);
      const leading = !flight;
      if (leading) {
        flight = new Flight();
        this._flights.set(fk, flight);
        const remaining = Math.max(deadline - performance.now(), 0) / 1000;
        flight.promise = this._unshared(namespace, keyBytes, compute, { ...options, timeout: remaining },
          near, (lease) => {
            if (lease.mode === 'LEASE_MODE_REFRESH') { // The others get the current value.
              if (this._flights.get(fk) === flight) this._flights.delete(fk);
              flight.openGate();
            }
          }).then((r) => { flight.result = r; }, (e) => { flight.error = e; }).finally(() => {
          flight.done = true;
          if (this._flights.get(fk) === flight) this._flights.delete(fk);
          flight.openGate();
        });
        await flight.promise;
      } else {
        let timer;
        const timedOut = new Promise((resolve) => {
          timer = setTimeout(() => resolve(true), Math.max(deadline - performance.now(), 0));
        });
        const late = await Promise.race([flight.gate.then(() => false), timedOut]);
        clearTimeout(timer);
        if (late && !flight.done) throw joinerTimedOut(started);
        if (!flight.done) continue; // Released: the leader refreshes, this caller asks corrald.
      }
      if (flight.error === null) return leading ? flight.result : sharedResult(flight.result);
      if (leading || !leaderGone(flight.error)) throw flight.error;
      if (performance.now() >= deadline) throw joinerTimedOut(started);
    }
  }

  async _unshared(namespace, keyBytes, compute, options, near, onLease) {
    const { ttl, waitTimeout, leaseTtl, allowStale = false, timeout, workerId } = options;
    const deadline = performance.now() + timeout * 1000;
    const ticket = near && near.ticket(nearKey(namespace, keyBytes));
    const req = { namespace, key: keyBytes, draw_early_refresh: true };
    if (ticket) req.near_cache_session = ticket.session;
    let r;
    try {
      r = await this._unary('Get', req, timeout, true, Boolean(ticket));
    } catch (err) {
      if (ticket) near.cancel(ticket);
      throw err;
    }
    const due = r.refresh_due_for || null;
    const hit = r.found && !r.value.stale && !due;
    keep(near, ticket, r, hit);
    if (hit) return convert.fromValue(r.value, 1);
    const request = convert.lookup(namespace, keyBytes, { ttl, waitTimeout, leaseTtl, allowStale,
      workerId: workerId ?? this.workerId });
    if (due) request.lookup.refresh_due_for = due;
    const state = new RetryState(this._retry, deadline);
    for (;;) {
      const ran = { value: false };
      try {
        return await this._attempt(request, compute, ttl, state, ran, onLease);
      } catch (err) {
        if (ran.value || !(err instanceof CorralError)) throw err;
        const delay = state.nextDelayMs(err, false);
        if (delay === null) throw err;
        await sleep(delay);
      }
    }
  }

  async _attempt(request, compute, ttl, state, ran, onLease) {
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
        if (onLease) onLease(first.lease);
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

  // `near`: a Get the near cache may keep, sent where its stream goes.
  async _unary(method, request, timeout, idempotent = true, near = false) {
    const budget = timeout ?? this.timeout;
    const state = new RetryState(idempotent ? this._retry : NO_RETRY, performance.now() + budget * 1000);
    for (;;) {
      try {
        return await new Promise((resolve, reject) => {
          (near ? this._nearStub : this._stub)[method](request, this._metadata(),
            { deadline: state.grpcDeadline() },
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
