'use strict';
// examples/plant_worker.js against a real corrald, redis-server and the fake
// upstream: workers in both modes, racing on the same images, call the
// upstream once per image; a failing upstream is reported by every job.

const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { after, before, test } = require('node:test');
const { Fleet, PACKAGE_DIR, uniqueKey } = require('./support');

const WORKER = path.join(PACKAGE_DIR, 'examples', 'plant_worker.js');
const FAILURE_REASONS = ['upstream-failed', 'peer-compute-failed', 'breaker-open'];

let fleet;

before(async () => {
  fleet = await Fleet.start({ upstream: true });
});

after(async () => {
  await fleet?.stop();
});

// `n` distinct image files; returns { sha256: path }.
function makeImages(n, tag) {
  const images = {};
  for (let i = 0; i < n; i += 1) {
    const bytes = Buffer.from(`${tag}-${i}-${crypto.randomBytes(8).toString('hex')}`);
    const file = path.join(fleet.dir, `${tag}-${i}.jpg`);
    fs.writeFileSync(file, bytes);
    images[crypto.createHash('sha256').update(bytes).digest('hex')] = file;
  }
  return images;
}

// Runs one worker; resolves to { code, lines: [[key, source, ...rest]] }.
function runWorker(args) {
  return new Promise((resolve) => {
    execFile(process.execPath, [WORKER, '--target', fleet.target, '--upstream', fleet.upstream.url, ...args],
      { timeout: 60000 }, (err, stdout, stderr) => {
        const code = err ? (err.code ?? 'killed') : 0;
        const lines = stdout.split('\n').filter(Boolean).map((l) => l.split('\t'));
        resolve({ code, lines, stderr });
      });
  });
}

test('workers in both modes, racing on the same images, call the upstream once per image', async () => {
  const ns = uniqueKey('plants');
  const images = makeImages(3, 'ok');
  const start = String(Date.now() / 1000 + 1);
  const common = ['--namespace', ns, '--repeat', '3', '--start-at', start, ...Object.values(images)];
  const runs = await Promise.all([
    runWorker(['--mode', 'compute', ...common]),
    runWorker(['--mode', 'compute', '--concurrency', '2', ...common]),
    runWorker(['--mode', 'lock', ...common]),
  ]);
  const values = {};
  for (const run of runs) {
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.lines.length, 9);
    for (const [key, source, value] of run.lines) {
      assert.ok(key in images, key);
      assert.notEqual(source, 'error', value);
      (values[key] ??= new Set()).add(value);
    }
  }
  const perImage = await fleet.upstream.perImage();
  for (const key of Object.keys(images)) {
    assert.equal(perImage[key], 1, `upstream calls for ${key}`);
    assert.equal(values[key].size, 1, `${key}: ${[...values[key]].join(' | ')}`);
  }
});

test('a failing upstream is reported by every job of every worker', async () => {
  const ns = uniqueKey('failing');
  const images = makeImages(2, 'fail');
  await fleet.upstream.setFailing(true);
  try {
    const common = ['--namespace', ns, '--repeat', '3', ...Object.values(images)];
    const runs = await Promise.all([runWorker(['--mode', 'compute', ...common]),
      runWorker(['--mode', 'lock', ...common])]);
    const reasons = new Set();
    for (const run of runs) {
      assert.equal(run.code, 1, run.stderr);
      assert.equal(run.lines.length, 6);
      for (const [, source, reason] of run.lines) {
        assert.equal(source, 'error');
        assert.ok(FAILURE_REASONS.includes(reason), reason);
        reasons.add(reason);
      }
    }
    assert.ok(reasons.has('upstream-failed'));
  } finally {
    await fleet.upstream.setFailing(false);
  }
});

test('bad usage exits 2', async () => {
  const run = await runWorker(['--mode', 'sideways', 'x.jpg']);
  assert.equal(run.code, 2);
});
