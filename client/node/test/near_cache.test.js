'use strict';
// The near cache's rules (lib/near_cache.js), without a server: sessions,
// tickets, grants counted from the send, LRU bounds by entries and bytes.

const assert = require('node:assert/strict');
const { test } = require('node:test');
const { ENTRY_OVERHEAD, NearCache, nearKey } = require('../lib/near_cache');

const K = nearKey('ns', Buffer.from('key'));

function cache(limits = { maxEntries: 3, maxBytes: 10000 }) {
  const clock = { now: 100 };
  const c = new NearCache(limits, () => clock.now);
  c.start(Buffer.from('session-1'));
  return { c, clock };
}

const fill = (c, k = K, value = Buffer.from('v'), nearFor = 10) => c.plant(c.ticket(k), value, nearFor, 0, 60);

test('nothing is kept without a session', () => {
  const c = new NearCache();
  assert.equal(c.ticket(K), null);
});

test('an entry is served until its grant, counted from the send', () => {
  const { c, clock } = cache();
  const t = c.ticket(K);
  clock.now += 2;
  assert.ok(c.plant(t, Buffer.from('v'), 10, 1, 60));
  assert.deepEqual(c.ageAndTtl(c.lookup(K)), { age: 3, ttlRemaining: 58 });
  clock.now += 7.999;
  assert.ok(c.lookup(K));
  clock.now += 0.001;
  assert.equal(c.lookup(K), null);
  assert.equal(c.size, 0);
  assert.equal(c.bytes, 0);
});

test('an invalidation during the Get spoils its ticket; after it, removes the entry', () => {
  const { c } = cache();
  const t = c.ticket(K);
  c.invalidate([K]);
  assert.equal(c.plant(t, Buffer.from('old'), 10, 0, 60), false);
  assert.ok(fill(c));
  c.invalidate([K]);
  assert.equal(c.lookup(K), null);
});

test('reset and stream loss drop everything and spoil tickets', () => {
  const { c } = cache();
  assert.ok(fill(c));
  const t = c.ticket(nearKey('ns', Buffer.from('b')));
  c.reset();
  assert.equal(c.lookup(K), null);
  assert.equal(c.plant(t, Buffer.from('v'), 10, 0, 60), false);
  assert.ok(fill(c));
  c.lost();
  assert.equal(c.lookup(K), null);
  assert.equal(c.ticket(K), null);
});

test('an answer ends the right to plant of reads still in flight; one not kept drops the entry', () => {
  const { c } = cache();
  const slow = c.ticket(K);
  const fast = c.ticket(K);
  assert.ok(c.plant(fast, Buffer.from('new'), 10, 0, 60));
  assert.equal(c.lookup(K).value.toString(), 'new');
  assert.equal(c.plant(slow, Buffer.from('old'), 10, 0, 60), false);
  assert.equal(c.lookup(K), null); // Never 'old': the next read asks corrald.
  const [slow2, fast2] = [c.ticket(K), c.ticket(K)];
  assert.ok(c.plant(fast2, Buffer.from('same'), 10, 0, 60));
  assert.equal(c.plant(slow2, Buffer.from('same'), 10, 0, 60), false);
  assert.equal(c.lookup(K).value.toString(), 'same'); // The same value stays.
  assert.ok(fill(c));
  c.cancel(c.ticket(K)); // A miss, or a failed Get.
  assert.equal(c.lookup(K), null);
  assert.equal(c.bytes, 0);
});

test('entries and bytes are bounded, least recently used first', () => {
  const { c } = cache();
  for (const k of ['a', 'b', 'c']) assert.ok(fill(c, nearKey('ns', Buffer.from(k))));
  c.lookup(nearKey('ns', Buffer.from('a')));
  assert.ok(fill(c, nearKey('ns', Buffer.from('d'))));
  assert.equal(c.size, 3);
  assert.equal(c.lookup(nearKey('ns', Buffer.from('b'))), null);
  const size = Buffer.byteLength(nearKey('ns', Buffer.from('a')), 'latin1') + 1000 + ENTRY_OVERHEAD;
  const small = cache({ maxEntries: 100, maxBytes: 2 * size }).c;
  for (const k of ['a', 'b', 'c']) assert.ok(fill(small, nearKey('ns', Buffer.from(k)), Buffer.alloc(1000)));
  assert.equal(small.size, 2);
  assert.equal(small.bytes, 2 * size);
  assert.equal(fill(small, nearKey('ns', Buffer.from('z')), Buffer.alloc(5000)), false);
});
