'use strict';
// Typed errors: each corral-reason a real corrald sends becomes its class,
// with `reason` and `retryAfterMs` from the trailers; the breaker opens on
// upstream failures reported by abandoned leases.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { after, before, test } = require('node:test');
const grpc = require('@grpc/grpc-js');
const corral = require('..');
const { Fleet, freePort, scratchDir, uniqueKey, waitFor } = require('./support');

const BREAKER_NS = 'node_breaker';
const STRICT_NS = 'node_strict';
const CONFIG = `
forbid_unknown_namespaces: true
namespaces { name: "${BREAKER_NS}" breaker { consecutive_failures: 2 open_duration { seconds: 60 } } }
namespaces { name: "${STRICT_NS}" on_wait_timeout: FAIL }
`;

let dir;
let fleet;
let client;

before(async () => {
  dir = scratchDir();
  const config = path.join(dir, 'corrald.textproto');
  fs.writeFileSync(config, CONFIG);
  fleet = await Fleet.start({ args: [`--config=${config}`] });
  client = new corral.Client(fleet.target, { timeout: 10 });
});

after(async () => {
  client?.close();
  await fleet?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('errorFromStatus: the reason picks the class, the code otherwise', () => {
  const md = new grpc.Metadata();
  md.set('corral-reason', 'breaker-open');
  md.set('retry-after-ms', '1500');
  const e = corral.errorFromStatus(grpc.status.UNAVAILABLE, 'open', md);
  assert.ok(e instanceof corral.BreakerOpen && e instanceof corral.Unavailable && e instanceof corral.CorralError);
  assert.equal(e.reason, 'breaker-open');
  assert.equal(e.retryAfterMs, 1500);
  assert.equal(e.codeName, 'UNAVAILABLE');
  assert.match(e.message, /corral-reason: breaker-open/);

  const budget = new grpc.Metadata();
  budget.set('corral-reason', 'compute-budget');
  budget.set('retry-after-ms', '250');
  const spent = corral.errorFromStatus(grpc.status.RESOURCE_EXHAUSTED, 'spent', budget);
  assert.ok(spent instanceof corral.ComputeBudgetExhausted && spent instanceof corral.ResourceExhausted);
  assert.equal(spent.retryAfterMs, 250);

  const plain = corral.errorFromStatus(grpc.status.UNAVAILABLE, 'connection refused', new grpc.Metadata());
  assert.equal(plain.constructor, corral.Unavailable);
  assert.equal(plain.reason, '');
  assert.equal(plain.retryAfterMs, null);

  const odd = new grpc.Metadata();
  odd.set('corral-reason', 'something-new');
  odd.set('retry-after-ms', 'soon');
  const unknown = corral.errorFromStatus(grpc.status.DATA_LOSS, '', odd);
  assert.equal(unknown.constructor, corral.CorralError);
  assert.equal(unknown.reason, 'something-new');
  assert.equal(unknown.retryAfterMs, null);
});

test('unknown namespace: UnknownNamespace (NOT_FOUND), reason unknown-namespace', async () => {
  const err = await client.get('node_nowhere', 'k').then(() => assert.fail('no error'), (e) => e);
  assert.ok(err instanceof corral.UnknownNamespace && err instanceof corral.NotFound, `got ${err}`);
  assert.equal(err.reason, 'unknown-namespace');
  assert.equal(err.code, grpc.status.NOT_FOUND);
});

test('a bad argument: InvalidArgument, reason invalid-argument', async () => {
  const err = await client.get(STRICT_NS, '').then(() => assert.fail('no error'), (e) => e);
  assert.ok(err instanceof corral.InvalidArgument, `got ${err}`);
  assert.equal(err.reason, 'invalid-argument');
});

test('waiting past waitTimeout under on_wait_timeout FAIL: WaitTimeout', async () => {
  const key = uniqueKey('wait');
  let leased;
  const hasLease = new Promise((resolve) => { leased = resolve; });
  let release;
  const gate = new Promise((resolve) => { release = resolve; });
  const leaseholder = client.getOrCompute(STRICT_NS, key, async () => { leased(); await gate; return 'late'; });
  await hasLease;
  const err = await client.getOrCompute(STRICT_NS, key, () => assert.fail('the waiter computed'),
    { waitTimeout: 0.2 }).then(() => assert.fail('no error'), (e) => e);
  release();
  assert.ok(err instanceof corral.WaitTimeout && err instanceof corral.DeadlineExceeded, `got ${err}`);
  assert.equal(err.reason, 'wait-timeout');
  assert.deepEqual(await leaseholder, Buffer.from('late'));
});

test('a waiter past its call deadline: DeadlineExceeded; it stops waiting', async () => {
  const key = uniqueKey('deadline');
  let leased;
  const hasLease = new Promise((resolve) => { leased = resolve; });
  let release;
  const gate = new Promise((resolve) => { release = resolve; });
  const leaseholder = client.getOrCompute(STRICT_NS, key, async () => { leased(); await gate; return 'slow'; });
  await hasLease;
  const err = await client.getOrCompute(STRICT_NS, key, () => assert.fail('the waiter computed'),
    { waitTimeout: 30, timeout: 0.3 }).then(() => assert.fail('no error'), (e) => e);
  // Whichever side notices first: grpc-js's deadline (no reason) or corrald,
  // which bounds the wait by the call's deadline (WaitTimeout, wait-timeout).
  assert.ok(err instanceof corral.DeadlineExceeded, `got ${err}`);
  assert.ok(['', 'wait-timeout'].includes(err.reason), err.reason);
  await waitFor(async () => (await fleet.corrald.waiters(STRICT_NS)) === 0, 'the waiter to leave');
  release();
  assert.deepEqual(await leaseholder, Buffer.from('slow'));
});

test('upstream failures open the breaker: BreakerOpen with retryAfterMs; getBreaker says open', async () => {
  assert.equal((await client.getBreaker(BREAKER_NS)).state, 'closed');
  for (let i = 0; i < 2; i += 1) {
    await assert.rejects(client.getOrCompute(BREAKER_NS, uniqueKey('b'), () => { throw new Error('503'); }),
      /503/);
  }
  const info = await waitFor(async () => {
    const b = await client.getBreaker(BREAKER_NS);
    return b.state === 'open' && b;
  }, 'the breaker to open');
  assert.equal(info.namespace, BREAKER_NS);
  assert.equal(typeof info.recentFailures, 'number'); // uint64 counters surface as numbers.
  assert.ok(info.since instanceof Date);
  assert.ok(info.retryAfter > 0 && info.retryAfter <= 60, `retryAfter ${info.retryAfter}`);

  const err = await client.getOrCompute(BREAKER_NS, uniqueKey('b'), () => assert.fail('compute ran'))
    .then(() => assert.fail('no error'), (e) => e);
  assert.ok(err instanceof corral.BreakerOpen && err instanceof corral.Unavailable, `got ${err}`);
  assert.equal(err.reason, 'breaker-open');
  assert.ok(err.retryAfterMs > 0 && err.retryAfterMs <= 60000, `retryAfterMs ${err.retryAfterMs}`);
  assert.equal(err.code, grpc.status.UNAVAILABLE);
});

test('no corrald listening: Unavailable without a reason, retried up to maxAttempts', async () => {
  const port = await freePort();
  const nowhere = new corral.Client(`127.0.0.1:${port}`, { timeout: 5,
    retry: { maxAttempts: 3, initialBackoff: 0.01, maxBackoff: 0.02 } });
  try {
    const err = await nowhere.getOrComputeResult('anything', 'k', () => assert.fail('compute ran'))
      .then(() => assert.fail('no error'), (e) => e);
    assert.equal(err.constructor, corral.Unavailable, `got ${err}`);
    assert.equal(err.reason, '');
  } finally {
    nowhere.close();
  }
});
