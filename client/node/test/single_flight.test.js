'use strict';
// In-process single flight: concurrent getOrCompute calls for one key
// through one client share one server call (a real corrald on a real
// redis-server).

const assert = require('node:assert/strict');
const { after, before, test } = require('node:test');
const { Client, DeadlineExceeded } = require('..');
const { Fleet, uniqueKey, waitFor } = require('./support');

const NS = 'node_flight';
let fleet;
let client;

before(async () => {
  fleet = await Fleet.start();
  client = new Client(fleet.target, { timeout: 30 });
});

after(async () => {
  client?.close();
  await fleet?.stop();
});

const settle = (p) => p.then((value) => ({ value }), (error) => ({ error }));

test('1,000 concurrent calls on one cold key compute once over one call', async () => {
  const key = uniqueKey('cold');
  const before = await fleet.corrald.rpcs('GetOrCompute');
  let calls = 0;
  const compute = async () => {
    calls += 1;
    await new Promise((r) => setTimeout(r, 500));
    return 'Monstera deliciosa';
  };
  const results = await Promise.all(Array.from({ length: 1000 },
    () => client.getOrComputeResult(NS, key, compute)));
  assert.equal(calls, 1);
  for (const r of results) assert.deepEqual(r.value, Buffer.from('Monstera deliciosa'));
  assert.equal(results.filter((r) => r.computed).length, 1);
  assert.equal(results.filter((r) => r.shared).length, 999);
  assert.ok((await fleet.corrald.rpcs('GetOrCompute')) - before <= 10);
});

test('a failing compute reaches every caller; the key is free afterwards', async () => {
  const key = uniqueKey('fail');
  class UpstreamDown extends Error {}
  let calls = 0;
  let release;
  const gate = new Promise((r) => { release = r; });
  const compute = async () => { calls += 1; await gate; throw new UpstreamDown('503'); };
  const outcomes = Array.from({ length: 20 }, () => settle(client.getOrCompute(NS, key, compute)));
  await waitFor(() => calls === 1, 'the compute to start');
  release();
  for (const o of await Promise.all(outcomes)) assert.ok(o.error instanceof UpstreamDown, `${o.error}`);
  assert.equal(calls, 1);
  assert.deepEqual(await client.getOrCompute(NS, key, () => 'recovered'), Buffer.from('recovered'));
});

test('a caller that times out leaves the others alone', async () => {
  const key = uniqueKey('timeout');
  let release;
  const gate = new Promise((r) => { release = r; });
  let started = false;
  const compute = async () => { started = true; await gate; return 'Aloe vera'; };
  const leader = client.getOrComputeResult(NS, key, compute);
  await waitFor(() => started, 'the compute to start');
  const patient = client.getOrComputeResult(NS, key, compute);
  await assert.rejects(client.getOrCompute(NS, key, compute, { timeout: 0.1 }), DeadlineExceeded);
  release();
  assert.equal((await leader).computed, true);
  const p = await patient;
  assert.deepEqual(p.value, Buffer.from('Aloe vera'));
  assert.equal(p.shared, true);
  assert.equal(p.source, 'peer_fill');
});
