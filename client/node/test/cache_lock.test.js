'use strict';
// get/set/invalidate, fenced writes and locks against a real corrald on a
// real redis-server.

const assert = require('node:assert/strict');
const { after, before, test } = require('node:test');
const { Client, LockNotAcquired } = require('..');
const { Fleet, uniqueKey, waitFor } = require('./support');

const NS = 'node_locks';
let fleet;
let client;

before(async () => {
  fleet = await Fleet.start();
  client = new Client(fleet.target, { timeout: 20, workerId: 'node-test' });
});

after(async () => {
  client?.close();
  await fleet?.stop();
});

test('set, get and invalidate', async () => {
  const key = uniqueKey();
  assert.equal(await client.get(NS, key), null);
  assert.equal(await client.set(NS, key, 'Tulipa', { ttl: 60 }), true);
  const got = await client.get(NS, key);
  assert.deepEqual(got.value, Buffer.from('Tulipa'));
  assert.ok(got.ttlRemaining > 50 && got.ttlRemaining <= 60, `ttlRemaining ${got.ttlRemaining}`);
  assert.equal(await client.invalidate(NS, key), true);
  assert.equal(await client.invalidate(NS, key), false);
  assert.equal(await client.get(NS, key), null);
});

// The proto-loader trap: without keepCase the snake_case lock_token field is
// dropped on the way out and this Set is stored, unfenced.
test('a fenced set with a stale lock token is refused', async () => {
  const key = uniqueKey('fenced');
  const first = await client.acquireLock(NS, key, { ttl: 30, waitTimeout: 0 });
  assert.ok(first.acquired);
  assert.equal(await client.releaseLock(NS, key, first.token), true);
  const second = await client.acquireLock(NS, key, { ttl: 30, waitTimeout: 0 });
  assert.ok(second.acquired);

  assert.equal(await client.set(NS, key, 'stale writer', { lockToken: first.token }), false);
  assert.equal(await client.get(NS, key), null, 'the stale write reached the cache');

  assert.equal(await client.set(NS, key, 'holder', { lockToken: second.token, releaseLock: true }), true);
  assert.deepEqual((await client.get(NS, key)).value, Buffer.from('holder'));
  // release_lock released it: the next acquire gets it at once.
  const third = await client.acquireLock(NS, key, { ttl: 30, waitTimeout: 0 });
  assert.ok(third.acquired);
  await client.releaseLock(NS, key, third.token);
});

test('acquire, renew and release; fencing tokens strictly increase (uint64 as strings)', async () => {
  const key = uniqueKey('tokens');
  let previous = 0n;
  for (let i = 0; i < 3; i += 1) {
    const g = await client.acquireLock(NS, key, { ttl: 30, waitTimeout: 0 });
    assert.ok(g.acquired);
    assert.equal(typeof g.fencingToken, 'string');
    assert.match(g.fencingToken, /^[0-9]+$/);
    assert.ok(BigInt(g.fencingToken) > previous, `${g.fencingToken} after ${previous}`);
    previous = BigInt(g.fencingToken);
    assert.ok(g.expiresAt instanceof Date);

    const busy = await client.acquireLock(NS, key, { ttl: 30, waitTimeout: 0 });
    assert.equal(busy.acquired, false);

    const r = await client.renewLock(NS, key, g.token, { ttl: 60 });
    assert.equal(r.renewed, true);
    assert.ok(r.expiresAt > g.expiresAt);
    assert.equal(await client.releaseLock(NS, key, g.token, { outcome: 'success' }), true);
    assert.equal(await client.releaseLock(NS, key, g.token), false);
    assert.equal((await client.renewLock(NS, key, g.token)).renewed, false);
  }
});

test('lock() renews in the background until released', async () => {
  const key = uniqueKey('renewed');
  const lock = await client.lock(NS, key, { ttl: 1, renewEvery: 0.2 });
  const firstExpiry = lock.expiresAt;
  // Held well past its 1 s ttl only because it is renewed.
  await waitFor(() => lock.renewals >= 8, 'eight renewals');
  assert.ok(lock.expiresAt > firstExpiry);
  assert.equal(lock.lost, false);
  const other = await client.acquireLock(NS, key, { ttl: 5, waitTimeout: 0 });
  assert.equal(other.acquired, false, 'the renewed lock was free');
  assert.equal(await lock.release('success'), true);
  await assert.rejects(lock.release(), /already released/);
  const next = await client.lock(NS, key, { ttl: 5, waitTimeout: 0 });
  assert.ok(BigInt(next.fencingToken) > BigInt(lock.fencingToken));
  await next.release();
});

test('a lock taken over by another holder is reported lost', async () => {
  const key = uniqueKey('lost');
  let lostCalls = 0;
  const lock = await client.lock(NS, key, { ttl: 5, renewEvery: 0.1, onLost: () => { lostCalls += 1; } });
  // Another worker's release with the same token ends it server-side.
  assert.equal(await client.releaseLock(NS, key, lock.token), true);
  await waitFor(() => lock.lost, 'the lock to be lost');
  assert.equal(lostCalls, 1);
  assert.equal(await lock.release(), false);
});

test('lock() rejects with LockNotAcquired when the wait passes', async () => {
  const key = uniqueKey('busy');
  const held = await client.lock(NS, key, { ttl: 30 });
  const err = await client.lock(NS, key, { ttl: 30, waitTimeout: 0.2 }).then(
    () => assert.fail('acquired a held lock'), (e) => e);
  assert.ok(err instanceof LockNotAcquired, `got ${err}`);
  await held.release();
});

test('withLock releases after the callback, and a fenced set wakes getOrCompute waiters', async () => {
  const key = uniqueKey('with');
  let locked;
  const holding = new Promise((resolve) => { locked = resolve; });
  let release;
  const gate = new Promise((resolve) => { release = resolve; });
  const worker = client.withLock(NS, key, { ttl: 30 }, async (lock) => {
    locked();
    await gate;
    assert.equal(await client.set(NS, key, 'from the lock holder', { lockToken: lock.token }), true);
    return 'done';
  });
  await holding;
  const waiter = client.getOrComputeResult(NS, key, () => assert.fail('the waiter computed'));
  await waitFor(async () => (await fleet.corrald.waiters(NS)) >= 1, 'the waiter to wait');
  release();
  assert.equal(await worker, 'done');
  const r = await waiter;
  assert.deepEqual(r.value, Buffer.from('from the lock holder'));
  assert.equal(r.computed, false);
  const again = await client.acquireLock(NS, key, { ttl: 5, waitTimeout: 0 });
  assert.ok(again.acquired, 'withLock did not release');
  await client.releaseLock(NS, key, again.token);
});
