'use strict';
// The package as users get it: the `npm pack` tarball carries the
// repository's proto files as they are, and, installed into an empty
// project, works from require() and from import against a real corrald.

const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { after, before, test } = require('node:test');
const { Fleet, PACKAGE_DIR, REPO_DIR, scratchDir } = require('./support');

const PROTO = path.join('corral', 'v1', 'corral.proto');

let dir;
let fleet;

before(async () => {
  dir = scratchDir();
  fleet = await Fleet.start({ redis: false });
});

after(async () => {
  await fleet?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const npm = (args, cwd) => execFileSync('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'],
  { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 240000 });

test('the npm pack tarball installs into an empty project and works from require and import', { timeout: 300000 }, () => {
  const [packed] = JSON.parse(npm(['pack', '--json', '--pack-destination', dir], PACKAGE_DIR));
  const files = packed.files.map((f) => f.path);
  for (const f of ['package.json', 'index.mjs', 'index.d.ts', 'lib/index.js', 'lib/client.js', `proto/${PROTO}`]) {
    assert.ok(files.includes(f), `${f} missing from the tarball: ${files.join(' ')}`);
  }
  assert.ok(!files.some((f) => f.startsWith('test/') || f.startsWith('node_modules/')), files.join(' '));

  const project = path.join(dir, 'app');
  fs.mkdirSync(project);
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
  npm(['install', '--prefer-offline', path.join(dir, packed.filename)], project);
  // The packed protos are the repository's (prepack copies them; postpack
  // removes the copy from the checkout again).
  for (const proto of [PROTO, path.join('corral', 'v1', 'config.proto')]) {
    assert.equal(fs.readFileSync(path.join(project, 'node_modules', 'corral-client', 'proto', proto), 'utf8'),
      fs.readFileSync(path.join(REPO_DIR, 'proto', proto), 'utf8'), `packed ${proto}`);
  }
  assert.ok(!fs.existsSync(path.join(PACKAGE_DIR, 'proto')), 'postpack left the proto copy in the checkout');

  fs.writeFileSync(path.join(project, 'cjs.js'), `
    const { Client, BreakerOpen, Unavailable } = require('corral-client');
    const client = new Client(process.argv[2], { timeout: 10 });
    client.getOrCompute('node_pack', 'cjs-key', async () => 'from cjs')
      .then((v) => { console.log(Buffer.isBuffer(v), v.toString(), new BreakerOpen() instanceof Unavailable); })
      .finally(() => client.close());
  `);
  fs.writeFileSync(path.join(project, 'esm.mjs'), `
    import corral, { Client } from 'corral-client';
    const client = new Client(process.argv[2], { timeout: 10 });
    const v = await client.getOrCompute('node_pack', 'cjs-key', () => { throw new Error('computed again'); });
    console.log(corral.Client === Client, v.toString());
    client.close();
  `);
  const run = (file) => execFileSync(process.execPath, [file, fleet.target],
    { cwd: project, encoding: 'utf8', timeout: 60000 }).trim();
  assert.equal(run('cjs.js'), 'true from cjs true');
  assert.equal(run('esm.mjs'), 'true from cjs'); // A hit: the CJS call's value.
  // The installed copy is the one that ran, not this checkout.
  const resolved = execFileSync(process.execPath, ['-p', "require.resolve('corral-client')"],
    { cwd: project, encoding: 'utf8' }).trim();
  assert.ok(resolved.startsWith(path.join(project, 'node_modules')), resolved);
});
