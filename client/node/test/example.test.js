'use strict';
// examples/plant_worker.js against a real corrald, redis-server and the fake
// upstream: workers in both modes, racing on the same images, call the
// upstream once per image, also racing the Python worker
// (client/python/examples/plant_worker.py); a failing upstream is reported
// by every job.

const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { after, before, test } = require('node:test');
const { Fleet, PACKAGE_DIR, PYTHONPATH, REPO_DIR, uniqueKey } = require('./support');

const WORKER = path.join(PACKAGE_DIR, 'examples', 'plant_worker.js');
const PY_WORKER = path.join(REPO_DIR, 'client', 'python', 'examples', 'plant_worker.py');
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

// Runs one worker (the Node one, or with python: true the Python one);
// resolves to { code, lines: [[key, source, ...rest]] }.
function runWorker(args, { python = false } = {}) {
  const argv = ['--target', fleet.target, '--upstream', fleet.upstream.url, ...args];
  const [cmd, env] = python
    ? ['/usr/bin/python3', { ...process.env, PYTHONPATH, PYTHONDONTWRITEBYTECODE: '1' }]
    : [process.execPath, process.env];
  return new Promise((resolve) => {
    execFile(cmd, [python ? PY_WORKER : WORKER, ...argv],
      { timeout: 60000, env }, (err, stdout, stderr) => {
        const code = err ? (err.code ?? 'killed') : 0;
        const lines = stdout.split('\n').filter(Boolean).map((l) => l.split('\t'));
        resolve({ code, lines, stderr });
      });
  });
}

test('Node workers in both modes and Python workers, racing on the same images, call the upstream once per image', async () => {
  const ns = uniqueKey('plants');
  const images = makeImages(3, 'ok');
  const start = String(Date.now() / 1000 + 1);
  const common = ['--namespace', ns, '--repeat', '3', '--start-at', start, ...Object.values(images)];
  assert.ok(fs.existsSync(path.join(PYTHONPATH, 'corral', 'v1')),
    `no Python client at ${PYTHONPATH}: build the project (target corral_python)`);
  const runs = await Promise.all([
    runWorker(['--mode', 'compute', ...common]),
    runWorker(['--mode', 'compute', '--concurrency', '2', ...common]),
    runWorker(['--mode', 'lock', ...common]),
    runWorker(['--mode', 'sync', ...common], { python: true }),
    runWorker(['--mode', 'lock', ...common], { python: true }),
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
