'use strict';
// The near cache against two real corralds on one real redis-server: hits
// from memory without an RPC, a write or invalidation through the other
// replica seen within 1 s, own writes at once, opt-outs, losing the stream.

const assert = require('node:assert/strict');
const { after, before, test } = require('node:test');
const { Client } = require('..');
const { Fleet, uniqueKey, waitFor } = require('./support');

const NS = 'node_near';
let fleet;
let reader;
let writer;

before(async () => {
  fleet = await Fleet.start({ replicas: 2 });
  reader = new Client(fleet.targets[0], { timeout: 20 });
  writer = new Client(fleet.targets[1], { timeout: 20 });
});

after(async () => {
  reader?.close();
  writer?.close();
  await fleet?.stop();
});

async function rpcs(method) {
  let total = 0;
  for (const r of fleet.replicas) total += await r.rpcs(method);
  return total;
}

// Reads `key` through `c` until it comes from the near cache.
async function warm(c, key, value = 'v1') {
  await waitFor(async () => (await c.getOrComputeResult(NS, key, () => value)).nearCache === true,
    `${key} from the near cache`);
}

test('hot hits come from memory without an RPC', async () => {
  const key = uniqueKey('hot');
  await warm(reader, key, 'Monstera');
  const before = await rpcs('Get') + await rpcs('GetOrCompute');
  for (let i = 0; i < 100; i += 1) {
    assert.deepEqual(await reader.getOrCompute(NS, key, () => assert.fail('computed')), Buffer.from('Monstera'));
    assert.equal((await reader.get(NS, key)).nearCache, true);
  }
  assert.equal(await rpcs('Get') + await rpcs('GetOrCompute'), before);
  assert.ok(reader.nearCache.stats.hits >= 200);
});

test('a write or invalidation through the other replica is seen within 1 s', async () => {
  const key = uniqueKey('coherent');
  await warm(reader, key);
  await writer.set(NS, key, 'v2', { ttl: 60 });
  await waitFor(async () => (await reader.get(NS, key)).value.toString() === 'v2', 'the write', 1000);
  await warm(reader, key);
  await writer.invalidate(NS, key);
  await waitFor(async () => (await reader.get(NS, key)) === null, 'the invalidation', 1000);
});

test("this client's own writes are seen at once; opt-outs ask corrald", async () => {
  const key = uniqueKey('own');
  await warm(reader, key);
  await reader.set(NS, key, 'v2');
  assert.equal((await reader.get(NS, key)).value.toString(), 'v2');
  await warm(reader, key);
  const before = await rpcs('Get');
  assert.equal((await reader.get(NS, key, { nearCache: false })).nearCache, false);
  assert.equal((await reader.getOrComputeResult(NS, key, () => 'x', { nearCache: false })).nearCache, false);
  assert.equal(await rpcs('Get') - before, 2);
  const off = new Client(fleet.targets[0], { nearCache: false });
  try {
    assert.equal(off.nearCache, null);
    assert.equal((await off.getOrComputeResult(NS, key, () => 'x')).nearCache, false);
  } finally {
    off.close();
  }
});

test('behind round_robin, Gets go where the stream is: one Get near-caches a key', async () => {
  // Both replicas behind one target; the client's other calls spread.
  const both = new Client(`ipv4:${fleet.targets.join(',')}`,
    { timeout: 20, loadBalancing: 'round_robin' });
  try {
    const keys = Array.from({ length: 10 }, (_, i) => uniqueKey(`rr${i}`));
    for (const k of keys) await both.set(NS, k, 'v');
    await waitFor(async () => (await both.get(NS, keys[0])).nearCache === true,
      'the first near-cache hit');
    for (const k of keys.slice(1)) {
      assert.equal((await both.get(NS, k)).nearCache, false, k);
      assert.equal((await both.get(NS, k)).nearCache, true, k);
    }
  } finally {
    both.close();
  }
});

test('the near cache is bounded and empties when its stream is lost', async () => {
  const small = new Client(fleet.targets[1], { timeout: 2, nearCache: { maxEntries: 3 },
    retry: { maxAttempts: 1 } });
  try {
    const keys = Array.from({ length: 6 }, (_, i) => uniqueKey(`b${i}`));
    for (const k of keys) await writer.set(NS, k, 'x');
    await warm(small, keys[0], 'x');
    for (const k of keys) { await small.get(NS, k); await small.get(NS, k); }
    assert.ok(small.nearCache.size <= 3, `${small.nearCache.size} entries`);
    assert.ok(small.nearCache.size > 0);
    await fleet.replicas[1].stop();
    await waitFor(() => small.nearCache.size === 0 && small.nearCache.session === null, 'emptied');
  } finally {
    small.close();
  }
});
