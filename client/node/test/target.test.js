'use strict';
// A token sent without TLS to a target beyond this host is warned about
// (PlaintextTokenWarning), never to a loopback one. No connection is made.

const assert = require('node:assert/strict');
const { test } = require('node:test');
const { Client } = require('..');
const { isLoopbackTarget } = require('../lib/target');

test('loopback targets are recognised in every spelling', () => {
  for (const t of ['127.0.0.1:50051', 'localhost:50051', '[::1]:50051', '127.8.9.10:1',
    'dns:///localhost:50051', 'dns://8.8.8.8/127.0.0.1:1', 'ipv4:127.0.0.1:1,127.0.0.2:2',
    'ipv6:[::1]:50051', 'unix:/run/corral.sock', '[::ffff:127.0.0.1]:1']) {
    assert.equal(isLoopbackTarget(t), true, t);
  }
  for (const t of ['corrald:50051', '10.0.0.5:50051', '192.0.2.1:50051', '[2001:db8::1]:50051',
    'dns:///corrald.svc:50051', 'ipv4:127.0.0.1:1,192.0.2.1:2', 'xds:///corrald', '']) {
    assert.equal(isLoopbackTarget(t), false, t);
  }
});

function warningsWhile(fn) {
  const seen = [];
  const onWarning = (w) => { if (w.name === 'PlaintextTokenWarning') seen.push(w); };
  process.on('warning', onWarning);
  return new Promise((resolve) => {
    fn();
    // 'warning' is emitted on the next tick.
    setImmediate(() => { process.off('warning', onWarning); resolve(seen); });
  });
}

test('a token in plaintext beyond loopback warns; TLS or loopback does not', async () => {
  const warned = await warningsWhile(() => new Client('192.0.2.1:50051', { token: 't' }).close());
  assert.equal(warned.length, 1);
  assert.match(warned[0].message, /192\.0\.2\.1:50051.*plaintext/);
  assert.equal(warned[0].code, 'CORRAL_PLAINTEXT_TOKEN');
  const quiet = await warningsWhile(() => {
    new Client('127.0.0.1:50051', { token: 't' }).close();
    new Client('192.0.2.1:50051', { token: 't', tls: true }).close();
    new Client('192.0.2.1:50051').close();
  });
  assert.equal(quiet.length, 0);
});
