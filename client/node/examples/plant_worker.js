#!/usr/bin/env node
'use strict';
// A plant-identification worker on corral, the Node.js twin of
// client/python/examples/plant_worker.py.
//
// For each image it computes the SHA-256 (the cache key), then asks corral
// for the identification. On a miss exactly one worker fleet-wide (in any
// language) calls the slow, paid upstream; every other worker waits and gets
// that answer. When the namespace's breaker is open the upstream is not
// called and the image is answered "503, retry after N s".
//
//   node client/node/examples/plant_worker.js --target 127.0.0.1:50051 \
//       --upstream http://127.0.0.1:8000 rose.jpg
//
// The upstream is client/python/examples/fake_upstream.py (`serve`).
// Modes:
//   compute  client.getOrCompute from --concurrency concurrent jobs (default)
//   lock     the seed's shape, on corral's lock: cache check, lock (15 s wait,
//            30 s expiry, renewed), double check, call the upstream, fenced
//            set, release with the outcome for the breaker
// Each image is looked up --repeat times (jobs shuffled). One line per job on
// stdout, tab-separated, as the Python worker prints them:
//   IMAGE_SHA256  SOURCE  VALUE              (SOURCE: computed, peer_fill, cache, ...)
//   IMAGE_SHA256  error   REASON  DETAILS    (REASON: breaker-open, peer-compute-failed, ...)
// Exit status: 0 when every job got a value, 1 otherwise, 2 on bad usage.

const crypto = require('node:crypto');
const fs = require('node:fs');
const { parseArgs } = require('node:util');

let corral;
try {
  corral = require('corral-client');
} catch {
  corral = require('..'); // Run from the repository, without installing.
}

const NAMESPACE = 'plant_id';
// The seed's numbers: wait 15 s for another worker's compute, lock expiry 30 s.
const WAIT_TIMEOUT = 15;
const LOCK_TTL = 30;

class UpstreamError extends Error {}

const imageKey = (image) => crypto.createHash('sha256').update(image).digest('hex');

// POSTs the image to the upstream's /identify; the body, or UpstreamError.
async function identify(upstream, image) {
  let res;
  try {
    res = await fetch(`${upstream.replace(/\/$/, '')}/identify`, {
      method: 'POST', body: image, headers: { 'Content-Type': 'application/octet-stream' },
      signal: AbortSignal.timeout(30000),
    });
  } catch (err) {
    throw new UpstreamError(`upstream unreachable: ${err.message}`);
  }
  const body = Buffer.from(await res.arrayBuffer());
  if (res.status !== 200) throw new UpstreamError(`upstream answered ${res.status}: ${body.toString().slice(0, 200)}`);
  return body;
}

async function identifyWithCompute(client, ns, upstream, image) {
  const r = await client.getOrComputeResult(ns, imageKey(image), () => identify(upstream, image),
    { waitTimeout: WAIT_TIMEOUT });
  return [r.source, r.value];
}

// The seed's way: check, lock, double check, compute, fenced write, release.
// The lock is the one GetOrCompute takes, so these workers coordinate with
// GetOrCompute workers in any language.
async function identifyWithLock(client, ns, upstream, image) {
  const key = imageKey(image);
  let cached = await client.get(ns, key);
  if (cached) return ['cache', cached.value];
  let lock;
  try {
    lock = await client.lock(ns, key, { ttl: LOCK_TTL, waitTimeout: WAIT_TIMEOUT });
  } catch (err) {
    if (!(err instanceof corral.LockNotAcquired)) throw err;
    // The seed's fallback: check once more, then call without the lock.
    cached = await client.get(ns, key);
    if (cached) return ['cache_after_timeout', cached.value];
    const value = await identify(upstream, image);
    await client.set(ns, key, value);
    return ['computed', value];
  }
  try {
    cached = await client.get(ns, key); // Another worker may have filled it.
    if (cached) return ['cache_after_lock', cached.value];
    let value;
    try {
      value = await identify(upstream, image);
    } catch (err) {
      await lock.release('failure'); // Counts against the breaker.
      throw err;
    }
    // Fenced: stored only while we hold the lock; wakes GetOrCompute waiters.
    await client.set(ns, key, value, { lockToken: lock.token });
    await lock.release('success');
    return ['computed', value];
  } finally {
    if (!lock.released) await lock.release().catch(() => {});
  }
}

function errorLine(key, err) {
  let reason;
  let details;
  if (err instanceof corral.BreakerOpen) {
    reason = 'breaker-open';
    details = `503: plant identification paused, retry after ${(err.retryAfterMs ?? 0) / 1000}s`;
  } else if (err instanceof corral.CorralError) {
    reason = err.reason || err.codeName.toLowerCase();
    details = err.message;
  } else {
    reason = 'upstream-failed';
    details = `${err.name}: ${err.message}`;
  }
  return `${key}\terror\t${reason}\t${details}\n`;
}

function usage(message) {
  process.stderr.write(`plant_worker: ${message}\nusage: plant_worker.js [--target HOST:PORT] --upstream URL `
    + '[--namespace NS] [--mode compute|lock] [--concurrency N] [--repeat N] [--start-at UNIX_TIME] '
    + '[--worker-id ID] IMAGE...\n');
  return 2;
}

async function main(argv) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: {
      target: { type: 'string', default: process.env.CORRAL_TARGET || '127.0.0.1:50051' },
      upstream: { type: 'string' },
      namespace: { type: 'string', default: NAMESPACE },
      mode: { type: 'string', default: 'compute' },
      concurrency: { type: 'string', default: '8' },
      repeat: { type: 'string', default: '1' },
      'start-at': { type: 'string', default: '0' },
      'worker-id': { type: 'string', default: `node-${process.pid}` },
      token: { type: 'string', default: process.env.CORRAL_TOKEN || '' },
    } });
  } catch (err) {
    return usage(err.message);
  }
  const opts = parsed.values;
  const concurrency = Number(opts.concurrency);
  const repeat = Number(opts.repeat);
  if (!opts.upstream) return usage('--upstream is required');
  if (!['compute', 'lock'].includes(opts.mode)) return usage('--mode is compute or lock');
  if (!(concurrency >= 1) || !(repeat >= 1)) return usage('--concurrency and --repeat must be at least 1');
  if (!parsed.positionals.length) return usage('no images');

  const images = parsed.positionals.map((p) => fs.readFileSync(p));
  const jobs = [];
  for (let i = 0; i < repeat; i += 1) jobs.push(...images);
  for (let i = jobs.length - 1; i > 0; i -= 1) { // Shuffled: a worker races itself too.
    const j = Math.floor(Math.random() * (i + 1));
    [jobs[i], jobs[j]] = [jobs[j], jobs[i]];
  }
  const startAt = Number(opts['start-at']) * 1000;
  if (startAt > Date.now()) await new Promise((resolve) => setTimeout(resolve, startAt - Date.now()));

  const identifyOne = opts.mode === 'lock' ? identifyWithLock : identifyWithCompute;
  const client = new corral.Client(opts.target, { workerId: opts['worker-id'], timeout: 60, token: opts.token });
  let failures = 0;
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const image = jobs[next];
      next += 1;
      const key = imageKey(image);
      try {
        const [source, value] = await identifyOne(client, opts.namespace, opts.upstream, image);
        process.stdout.write(`${key}\t${source}\t${value.toString('utf8')}\n`);
      } catch (err) {
        if (!(err instanceof corral.CorralError || err instanceof UpstreamError)) throw err;
        failures += 1;
        process.stdout.write(errorLine(key, err));
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, jobs.length) }, worker));
  } finally {
    client.close();
  }
  return failures ? 1 : 0;
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (err) => {
  process.stderr.write(`plant_worker: ${err.stack || err}\n`);
  process.exitCode = 1;
});
