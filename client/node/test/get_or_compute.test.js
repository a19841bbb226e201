'use strict';
// getOrCompute against a real corrald on a real redis-server: hits, misses,
// the lease and its fill, single flight across concurrent callers, and a
// failing compute abandoning its lease.

const assert = require('node:assert/strict');
const { after, before, test } = require('node:test');
const { Client, PeerComputeFailed } = require('..');
const { Fleet, uniqueKey, waitFor } = require('./support');

const NS = 'node_goc';
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

test('a miss computes and fills; the next call is a hit', async () => {
  const key = uniqueKey();
  let calls = 0;
  const miss = await client.getOrComputeResult(NS, key, async () => { calls += 1; return 'Rosa canina'; });
  assert.equal(calls, 1);
  assert.deepEqual(miss.value, Buffer.from('Rosa canina'));
  assert.equal(miss.source, 'computed');
  assert.equal(miss.computed, true);
  assert.equal(miss.leaseMode, 'locked');
  assert.equal(miss.stored, true);
  assert.ok(BigInt(miss.fencingToken) > 0n, `fencing token ${miss.fencingToken}`);

  const hit = await client.getOrComputeResult(NS, key, () => assert.fail('compute ran on a hit'));
  assert.deepEqual(hit.value, Buffer.from('Rosa canina'));
  assert.equal(hit.source, 'cache');
  assert.equal(hit.computed, false);

  const cached = await client.get(NS, key);
  assert.deepEqual(cached.value, Buffer.from('Rosa canina'));
  assert.ok(cached.ttlRemaining > 0);
});

test('getOrCompute resolves to a Buffer; binary keys and values round-trip', async () => {
  const key = Buffer.from([0, 1, 2, 0xff, 0xfe]);
  await client.invalidate(NS, key);
  const bytes = Buffer.from([0xde, 0xad, 0x00, 0xbe, 0xef]);
  const v = await client.getOrCompute(NS, key, () => new Uint8Array(bytes));
  assert.ok(Buffer.isBuffer(v));
  assert.deepEqual(v, bytes);
  assert.deepEqual(await client.getOrCompute(NS, key, () => assert.fail('compute ran')), bytes);
});

test('N concurrent calls on one cold key compute once; the rest get the peer fill', async () => {
  const key = uniqueKey('cold');
  const n = 20;
  let calls = 0;
  let release;
  const gate = new Promise((resolve) => { release = resolve; });
  const compute = async () => {
    calls += 1;
    await gate; // Holds the lease until every other caller is waiting.
    return `computed-${calls}`;
  };
  // One client per caller: calls through one client share its call
  // (in-process single flight, single_flight.test.js) instead of waiting at corrald.
  const own = Array.from({ length: n }, () => new Client(fleet.target, { timeout: 20 }));
  after(() => own.forEach((c) => c.close()));
  const results = own.map((c) => c.getOrComputeResult(NS, key, compute));
  await waitFor(async () => calls === 1 && (await fleet.corrald.waiters(NS)) >= n - 1,
    `${n - 1} waiters on ${NS}`);
  release();
  const done = await Promise.all(results);
  assert.equal(calls, 1);
  for (const r of done) assert.deepEqual(r.value, Buffer.from('computed-1'));
  assert.equal(done.filter((r) => r.computed).length, 1);
  assert.equal(done.filter((r) => r.source === 'peer_fill').length, n - 1);
});

test('a throwing compute abandons its lease: it rethrows, waiters get PeerComputeFailed', async () => {
  const key = uniqueKey('fail');
  let leased;
  const hasLease = new Promise((resolve) => { leased = resolve; });
  let release;
  const gate = new Promise((resolve) => { release = resolve; });
  class UpstreamDown extends Error {}
  const settle = (p) => p.then((v) => ({ value: v }), (error) => ({ error }));
  const leaseholder = settle(client.getOrCompute(NS, key, async () => {
    leased();
    await gate;
    throw new UpstreamDown('upstream 503');
  }));
  await hasLease;
  const other = new Client(fleet.target, { timeout: 20 }); // Not sharing the leaseholder's call.
  after(() => other.close());
  const waiter = settle(other.getOrCompute(NS, key, () => assert.fail('the waiter computed')));
  await waitFor(async () => (await fleet.corrald.waiters(NS)) >= 1, 'the waiter to wait');
  release();
  assert.ok((await leaseholder).error instanceof UpstreamDown);
  const err = (await waiter).error;
  assert.ok(err instanceof PeerComputeFailed, `got ${err}`);
  assert.equal(err.reason, 'peer-compute-failed');
  assert.equal(err.codeName, 'UNAVAILABLE');
  // The abandon left nothing behind: the key is free for the next caller.
  assert.equal(await client.get(NS, key), null);
  assert.deepEqual(await client.getOrCompute(NS, key, () => 'second try'), Buffer.from('second try'));
});

test('a compute returning a non-bytes value is a TypeError, and the lease is abandoned', async () => {
  const key = uniqueKey('type');
  await assert.rejects(client.getOrCompute(NS, key, () => 42), TypeError);
  assert.deepEqual(await client.getOrCompute(NS, key, () => 'ok'), Buffer.from('ok'));
});
