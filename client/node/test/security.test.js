'use strict';
// Bearer tokens and mutual TLS against a real corrald configured with
// credentials (certificates made by the openssl tool at test time).

const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { after, before, test } = require('node:test');
const corral = require('..');
const { Fleet, scratchDir, uniqueKey } = require('./support');

const NS = 'node_sec';
const TOKEN = 'node-token-5d1e07b2';
const READ_ONLY_TOKEN = 'node-read-only-93ac4f10';

function credential(name, token, rights) {
  const sha = crypto.createHash('sha256').update(token).digest('hex');
  return `credentials { name: "${name}" token_sha256: "${sha}" namespaces: "${NS}" `
    + `${rights.map((r) => `rights: ${r}`).join(' ')} }\n`;
}

// A CA, a server certificate for 127.0.0.1 and a client certificate.
function makePki(dir) {
  const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const curve = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', ...curve, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=node-ca',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
  for (const [name, ext, serial] of [['server', 'extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n', '7'],
    ['client', 'extendedKeyUsage=clientAuth\n', '8']]) {
    fs.writeFileSync(path.join(dir, `${name}.ext`), ext);
    openssl('req', '-new', ...curve, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', serial,
      '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.pem`);
  }
  const read = (n) => fs.readFileSync(path.join(dir, n));
  return { ca: read('ca.pem'), clientKey: read('client.key'), clientCert: read('client.pem') };
}

let dir;
let pem;
let fleet;
const clients = [];

function client(token, tls = { ca: pem.ca, key: pem.clientKey, cert: pem.clientCert }) {
  const c = new corral.Client(fleet.target, { token, tls, timeout: 5, retry: { maxAttempts: 1 } });
  clients.push(c);
  return c;
}

before(async () => {
  dir = scratchDir();
  pem = makePki(dir);
  const config = path.join(dir, 'corrald.textproto');
  fs.writeFileSync(config, credential('node', TOKEN, ['READ', 'COMPUTE', 'LOCK', 'ADMIN'])
    + credential('node-reader', READ_ONLY_TOKEN, ['READ']));
  fleet = await Fleet.start({ redis: false, args: [`--config=${config}`, `--tls_cert=${dir}/server.pem`,
    `--tls_key=${dir}/server.key`, `--tls_client_ca=${dir}/ca.pem`] });
});

after(async () => {
  for (const c of clients) c.close();
  await fleet?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('the token and a client certificate work for every kind of call', async () => {
  const c = client(TOKEN);
  const key = uniqueKey();
  assert.deepEqual(await c.getOrCompute(NS, key, () => 'Rosa'), Buffer.from('Rosa'));
  assert.deepEqual((await c.get(NS, key)).value, Buffer.from('Rosa'));
  const lock = await c.lock(NS, key, { ttl: 10, waitTimeout: 0 });
  assert.equal(await c.set(NS, key, 'fenced', { lockToken: lock.token }), true);
  assert.equal(await lock.release('success'), true);
  assert.equal((await c.getBreaker(NS)).state, 'closed');
});

test('a missing or unknown token is Unauthenticated', async () => {
  for (const token of [undefined, 'not-a-known-token']) {
    const err = await client(token).get(NS, 'k').then(() => assert.fail('no error'), (e) => e);
    assert.ok(err instanceof corral.Unauthenticated, `${token}: got ${err}`);
    assert.equal(err.reason, 'unauthenticated');
  }
});

test('rights and namespaces are PermissionDenied; a read-only token cannot compute', async () => {
  await assert.rejects(client(TOKEN).get('elsewhere', 'k'), corral.PermissionDenied);
  const reader = client(READ_ONLY_TOKEN);
  const err = await reader.set(NS, 'k', 'v').then(() => assert.fail('no error'), (e) => e);
  assert.ok(err instanceof corral.PermissionDenied, `got ${err}`);
  assert.equal(err.reason, 'permission-denied');
  const key = uniqueKey();
  await assert.rejects(reader.getOrCompute(NS, key, () => assert.fail('compute ran')), corral.PermissionDenied);
  await client(TOKEN).set(NS, key, 'cached');
  assert.deepEqual(await reader.getOrCompute(NS, key, () => assert.fail('compute ran')), Buffer.from('cached'));
});

test('without a client certificate (or without TLS) there is no connection', async () => {
  await assert.rejects(client(TOKEN, { ca: pem.ca }).get(NS, 'k'), corral.Unavailable);
  await assert.rejects(client(TOKEN, false).get(NS, 'k'), corral.Unavailable);
});
