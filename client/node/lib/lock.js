'use strict';
// A held corral lock, renewed in the background (Client.lock).
//
//   const lock = await client.lock('plant_id', key, { ttl: 30, waitTimeout: 15 });
//   try {
//     await client.set('plant_id', key, value, { lockToken: lock.token }); // fenced
//   } finally {
//     await lock.release('success');
//   }
//
// While the lock is held a timer renews it every `renewEvery` seconds
// (default ttl/3). If the server says it was not renewed (it expired and
// someone else may hold it), or renewals keep failing until it has expired,
// `lost` turns true and `onLost` runs once; the token then no longer
// protects writes (a fenced set is refused). Mirrors client/python/corral/lock.py.

class Lock {
  constructor(client, namespace, key, grant, ttl, { renewEvery, onLost } = {}) {
    this._client = client;
    this.namespace = namespace;
    this.key = key;
    this.token = grant.token;
    // uint64 as a decimal string; compare with BigInt(lock.fencingToken).
    this.fencingToken = grant.fencingToken;
    this.waited = grant.waited;
    this.expiresAt = grant.expiresAt;
    this._ttl = ttl;
    this._periodMs = (renewEvery ? renewEvery : ttl / 3) * 1000;
    this._onLost = onLost;
    // Local estimate of the expiry; each renewal counts from when it was sent.
    this._expiresMono = performance.now() + ttl * 1000;
    this.lost = false;
    this.released = false;
    this.renewals = 0;
    this._renewing = null; // The renewal in flight, awaited by release().
    this._timer = null;
    this._schedule();
  }

  // Stops renewing, then releases the lock, telling the breaker `outcome`
  // ('success', 'failure' or 'unspecified'). Resolves to whether the server
  // released it (false: it had been lost). A second call rejects.
  async release(outcome = 'unspecified') {
    if (this.released) throw new Error('lock already released');
    this.released = true;
    clearTimeout(this._timer);
    if (this._renewing) await this._renewing;
    return this._client.releaseLock(this.namespace, this.key, this.token, { outcome });
  }

  _schedule() {
    this._timer = setTimeout(() => {
      this._renewing = this._renewOnce().finally(() => { this._renewing = null; });
    }, this._periodMs);
    // Like the Python client's daemon thread: renewal alone keeps no process alive.
    this._timer.unref();
  }

  async _renewOnce() {
    if (this.released) return;
    const sent = performance.now();
    let r;
    try {
      r = await this._client.renewLock(this.namespace, this.key, this.token,
        { ttl: this._ttl, timeout: Math.max(this._periodMs / 1000, 0.05) });
    } catch {
      if (performance.now() < this._expiresMono) {
        if (!this.released) this._schedule(); // Still ours; try again next period.
        return;
      }
      this._markLost();
      return;
    }
    if (!r.renewed) {
      this._markLost();
      return;
    }
    this.renewals += 1;
    this.expiresAt = r.expiresAt;
    this._expiresMono = sent + this._ttl * 1000;
    if (!this.released) this._schedule();
  }

  _markLost() {
    if (this.released) return;
    this.lost = true;
    if (!this._onLost) return;
    try {
      this._onLost();
    } catch (err) {
      process.emitWarning(`corral: onLost threw: ${err && err.stack ? err.stack : err}`);
    }
  }
}

// `await using lock = await client.lock(...)` where the runtime has it.
if (typeof Symbol.asyncDispose === 'symbol') {
  Lock.prototype[Symbol.asyncDispose] = async function dispose() {
    if (!this.released) await this.release();
  };
}

module.exports = { Lock };
