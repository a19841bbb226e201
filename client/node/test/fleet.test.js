'use strict';
// Two corrald replicas on one redis-server: single flight holds fleet-wide,
// and REFRESH leases (stale-while-revalidate) behave as in the Python client.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { after, before, test } = require('node:test');
const { Client } = require('..');
const { Fleet, scratchDir, uniqueKey, waitFor } = require('./support');

const NS = 'node_fleet';
const SWR_NS = 'node_swr';
const CONFIG = `namespaces { name: "${SWR_NS}" stale_window { seconds: 60 } early_refresh_beta: 0 read_cache: false }\n`;

let dir;
let fleet;
let clients;

before(async () => {
  dir = scratchDir();
  const config = path.join(dir, 'corrald.textproto');
  fs.writeFileSync(config, CONFIG);
  fleet = await Fleet.start({ replicas: 2, args: [`--config=${config}`] });
  clients = fleet.targets.map((t) => new Client(t, { timeout: 20 }));
});

after(async () => {
  for (const c of clients ?? []) c.close();
  await fleet?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const gated = () => {
  let open;
  const gate = new Promise((resolve) => { open = resolve; });
  return { gate, open };
};

test('callers on both replicas of a cold key: one compute fleet-wide', async () => {
  const key = uniqueKey('cold');
  const { gate, open } = gated();
  let calls = 0;
  const compute = async () => { calls += 1; await gate; return `v${calls}`; };
  const n = 10;
  const results = Array.from({ length: n }, (_, i) => clients[i % 2].getOrComputeResult(NS, key, compute));
  // Calls through one client share its call (in-process single flight): the
  // other client's call waits at corrald.
  await waitFor(async () => calls === 1 && (await fleet.waiters(NS)) >= 1, 'the other client to wait');
  open();
  const done = await Promise.all(results);
  assert.equal(calls, 1);
  assert.deepEqual(new Set(done.map((r) => r.value.toString())), new Set(['v1']));
});

// A value past its (0.3 s) TTL, inside the stale window: Get no longer
// returns it (polled, not slept for).
async function expiredKey(value) {
  const key = uniqueKey('swr');
  const first = await clients[0].getOrComputeResult(SWR_NS, key, () => value, { ttl: 0.3 });
  assert.ok(first.computed && first.stored);
  await waitFor(async () => (await clients[1].get(SWR_NS, key)) === null, 'the value to expire');
  return key;
}

test('stale-while-revalidate: one refresher; others get the stale value at once', async () => {
  const key = await expiredKey('v1');
  const { gate, open } = gated();
  let refreshing;
  const started = new Promise((resolve) => { refreshing = resolve; });
  const refresher = clients[0].getOrComputeResult(SWR_NS, key, async () => { refreshing(); await gate; return 'v2'; },
    { allowStale: true });
  await started;
  for (const c of clients) {
    const r = await c.getOrComputeResult(SWR_NS, key, () => assert.fail('a second compute'), { allowStale: true });
    assert.deepEqual([r.value.toString(), r.source, r.stale, r.computed], ['v1', 'stale', true, false]);
  }
  open();
  const r = await refresher;
  assert.deepEqual([r.value.toString(), r.computed, r.leaseMode, r.stored], ['v2', true, 'refresh', true]);
  assert.equal((await clients[1].get(SWR_NS, key)).value.toString(), 'v2');
});

test('a failed refresh returns the value being refreshed and the error', async () => {
  const key = await expiredKey('old');
  const boom = new Error('upstream down');
  const r = await clients[1].getOrComputeResult(SWR_NS, key, () => { throw boom; }, { allowStale: true });
  assert.deepEqual([r.value.toString(), r.source, r.stale, r.computed, r.leaseMode], ['old', 'stale', true, true, 'refresh']);
  assert.equal(r.refreshError, boom);
  // The failed refresh let go of its lease: the next caller refreshes.
  const next = await clients[0].getOrComputeResult(SWR_NS, key, () => 'new', { allowStale: true });
  assert.deepEqual([next.value.toString(), next.computed, next.leaseMode], ['new', true, 'refresh']);
});
