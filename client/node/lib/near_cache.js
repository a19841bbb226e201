'use strict';
// The client's near cache, without I/O: hot values kept in this process's
// memory and kept coherent by corrald (corral.proto, "Near cache";
// docs/ARCHITECTURE.md 3.8). Mirrors client/python/corral/_nearcache.py:
// - nothing is kept while there is no session (the NearCache stream is not
//   started, or was lost: losing it empties the cache);
// - a Get takes a ticket before it is sent; an invalidation of its key (or a
//   reset, or the loss of the stream) before the answer spoils the ticket,
//   and a spoiled ticket plants nothing (the answer is used once);
// - an entry lives `near_cache_for` counted from when its Get was sent;
// - every answer ends the right to plant of the key's other reads still in
//   flight (they may carry an older value), and an answer that is not kept
//   drops the key's entry unless it holds the same value: no caller sees a
//   key go back in time;
// - memory is bounded by entries and bytes (key + value), least recently
//   used first out (a Map keeps insertion order: a hit re-inserts).

const ENTRY_OVERHEAD = 64;
const DEFAULT_LIMITS = Object.freeze({ maxEntries: 10000, maxBytes: 64 << 20 });

// The map key of (namespace, key bytes).
function nearKey(namespace, key) {
  return `${namespace}\u0000${key.toString('latin1')}`;
}

class NearCache {
  constructor(limits = {}, clock = () => performance.now() / 1000) {
    this.limits = { ...DEFAULT_LIMITS, ...limits };
    if (!(this.limits.maxEntries >= 1) || !(this.limits.maxBytes >= 1)) {
      throw new RangeError('near cache limits must be positive');
    }
    this._clock = clock;
    this._entries = new Map();
    this._bytes = 0;
    this._pending = new Map(); // nearKey -> Set of tickets
    this.session = null; // Buffer while the stream is started
    this.stats = { hits: 0, planted: 0, notPlanted: 0, invalidated: 0, evicted: 0, resets: 0 };
  }

  get size() { return this._entries.size; }

  get bytes() { return this._bytes; }

  // -- the session (the NearCache stream) -------------------------------------
  start(session) {
    this._dropAll();
    this.session = Buffer.from(session);
  }

  lost() {
    this.session = null;
    this._dropAll();
  }

  reset() { this._dropAll(); }

  // NearCacheInvalidations, or this client's own Set/Invalidate: map keys.
  invalidate(keys) {
    for (const k of keys) {
      const e = this._entries.get(k);
      if (e) {
        this._entries.delete(k);
        this._bytes -= e.size;
        this.stats.invalidated += 1;
      }
      const tickets = this._pending.get(k);
      if (tickets) for (const t of tickets) t.spoiled = true;
    }
  }

  _dropAll() {
    this.stats.resets += 1;
    this._entries.clear();
    this._bytes = 0;
    for (const tickets of this._pending.values()) for (const t of tickets) t.spoiled = true;
  }

  // -- reads ------------------------------------------------------------------
  // The entry to serve ({ value, expires, storedAt, valueExpires }), or null.
  lookup(k) {
    const e = this._entries.get(k);
    if (!e) return null;
    this._entries.delete(k);
    if (this._clock() >= e.expires) {
      this._bytes -= e.size;
      return null;
    }
    this._entries.set(k, e); // Most recently used.
    this.stats.hits += 1;
    return e;
  }

  // Before a Get is sent: its ticket, or null while there is no session.
  ticket(k) {
    if (!this.session) return null;
    const t = { key: k, session: this.session, sent: this._clock(), spoiled: false };
    let set = this._pending.get(k);
    if (!set) this._pending.set(k, (set = new Set()));
    set.add(t);
    return t;
  }

  // The Get answered `value` with `nearFor` seconds (0: not granted). Keeps
  // it unless the ticket was spoiled, the grant is over or it does not fit.
  plant(t, value, nearFor, age, ttlRemaining) {
    this._end(t);
    const expires = t.sent + nearFor;
    const size = Buffer.byteLength(t.key, 'latin1') + value.length + ENTRY_OVERHEAD;
    if (t.spoiled || t.session !== this.session || !(nearFor > 0) || expires <= this._clock()
        || size > this.limits.maxBytes) {
      this.stats.notPlanted += 1;
      this._drop(t.key, value);
      return false;
    }
    const old = this._entries.get(t.key);
    if (old) {
      this._entries.delete(t.key);
      this._bytes -= old.size;
    }
    this._entries.set(t.key, { value, expires, storedAt: t.sent - age,
      valueExpires: t.sent + ttlRemaining, size });
    this._bytes += size;
    while (this._entries.size > this.limits.maxEntries || this._bytes > this.limits.maxBytes) {
      const [oldest, e] = this._entries.entries().next().value;
      this._entries.delete(oldest);
      this._bytes -= e.size;
      this.stats.evicted += 1;
    }
    this.stats.planted += 1;
    return true;
  }

  // The Get failed, or its answer (a miss, a stale value, a refresh due) is
  // not to be kept.
  cancel(t) {
    this._end(t);
    this._drop(t.key);
  }

  // The ticket's answer is in: the key's other reads still in flight may
  // carry an older value; none may plant.
  _end(t) {
    const set = this._pending.get(t.key);
    if (!set || !set.delete(t)) return;
    if (set.size === 0) {
      this._pending.delete(t.key);
      return;
    }
    for (const other of set) other.spoiled = true;
  }

  // Drops the key's entry (planted meanwhile, maybe older than this answer)
  // unless it holds `unless` (concurrent reads of one value would otherwise
  // keep erasing each other's plants).
  _drop(k, unless = null) {
    const e = this._entries.get(k);
    if (!e || (unless !== null && e.value.equals(unless))) return;
    this._entries.delete(k);
    this._bytes -= e.size;
  }

  // The entry's value's age and remaining TTL now (seconds).
  ageAndTtl(e) {
    const now = this._clock();
    return { age: Math.max(now - e.storedAt, 0), ttlRemaining: Math.max(e.valueExpires - now, 0) };
  }
}

// Between attempts to open the stream on a server without it (UNIMPLEMENTED:
// an older corrald, which may be upgraded under the client), seconds.
const UNSUPPORTED_BACKOFF = 30;

// Delays between attempts to reopen the stream (seconds): 0.05 doubling to 2.
class Backoff {
  constructor(first = 0.05, cap = 2) {
    this._first = first;
    this._cap = cap;
    this._next = first;
  }

  started() { this._next = this._first; }

  delay() {
    const d = this._next;
    this._next = Math.min(this._next * 2, this._cap);
    return d;
  }
}

module.exports = { Backoff, ENTRY_OVERHEAD, NearCache, UNSUPPORTED_BACKOFF, nearKey };
