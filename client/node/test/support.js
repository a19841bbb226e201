'use strict';
// Test support: a real redis-server and real corrald processes on free
// ports, started by the tests and stopped after them.
//
// corrald is $CORRALD, else $CORRAL_BUILD_DIR/server/corrald, else
// <repo>/build/server/corrald. Every process runs in its own process group
// under `setpriv --pdeathsig KILL`, so nothing outlives the test process;
// stop() kills the group and waits for the exit. Readiness is polled with a
// deadline (corrald's "corrald ready" log line; redis answering PING).

const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const PACKAGE_DIR = path.resolve(__dirname, '..');
const REPO_DIR = path.resolve(PACKAGE_DIR, '..', '..');
const CORRALD = process.env.CORRALD
  || path.join(process.env.CORRAL_BUILD_DIR || path.join(REPO_DIR, 'build'), 'server', 'corrald');
const BUILD_DIR = process.env.CORRAL_BUILD_DIR || path.join(REPO_DIR, 'build');
// The Python client as the build assembles it (for the polyglot test).
const PYTHONPATH = path.join(BUILD_DIR, 'client', 'python');
const REDIS_SERVER = process.env.REDIS_SERVER || '/usr/bin/redis-server';
const START_TIMEOUT_MS = 15000;

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Polls `condition` (sync or async) until it is truthy; throws after `timeoutMs`.
async function waitFor(condition, what, timeoutMs = 10000) {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await condition();
    if (v) return v;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(20);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

class Process {
  constructor(name, argv, dir) {
    this.name = name;
    this.logPath = path.join(dir, `${name}-${process.hrtime.bigint()}.log`);
    const fd = fs.openSync(this.logPath, 'w');
    this.child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', ...argv],
      { detached: true, stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    this.exited = new Promise((resolve) => this.child.once('exit', (code, sig) => resolve({ code, sig })));
    this.exitCode = null;
    this.exited.then((r) => { this.exitCode = r; });
  }

  log() {
    return fs.readFileSync(this.logPath, 'utf8').slice(-4000);
  }

  async waitForLog(pattern) {
    try {
      return await waitFor(() => {
        if (this.exitCode !== null) throw new Error(`${this.name} exited`);
        return pattern.exec(fs.readFileSync(this.logPath, 'utf8'));
      }, `${this.name} to be ready`, START_TIMEOUT_MS);
    } catch (err) {
      await this.stop();
      throw new Error(`${this.name} did not start (${err.message}):\n${this.log()}`);
    }
  }

  // SIGTERM to the group, SIGKILL after `graceMs`; resolves once it exited.
  async stop(graceMs = 5000) {
    if (this.exitCode === null) {
      this._signal('SIGTERM');
      const timer = setTimeout(() => this._signal('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    this._signal('SIGKILL'); // Anything left in the group.
  }

  _signal(sig) {
    try {
      process.kill(-this.child.pid, sig);
    } catch { /* Already gone. */ }
  }
}

class RedisServer {
  static async start(dir) {
    let last = '';
    for (let i = 0; i < 5; i += 1) { // The free port may be taken before redis binds it.
      const port = await freePort();
      const proc = new Process(`redis-${port}`, [REDIS_SERVER, '--port', String(port), '--bind', '127.0.0.1',
        '--save', '', '--appendonly', 'no', '--dir', dir], dir);
      if (await RedisServer._answers(proc, port)) return Object.assign(new RedisServer(), { proc, port, uri: `redis://127.0.0.1:${port}` });
      last = proc.log();
      await proc.stop();
    }
    throw new Error(`redis-server did not start:\n${last}`);
  }

  static async _answers(proc, port) {
    const ping = () => new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.setTimeout(1000);
      s.on('connect', () => s.write('PING\r\n'));
      s.on('data', (d) => { s.destroy(); resolve(d.toString().startsWith('+PONG')); });
      s.on('error', () => resolve(false));
      s.on('timeout', () => { s.destroy(); resolve(false); });
    });
    try {
      return await waitFor(async () => {
        if (proc.exitCode !== null) throw new Error('exited');
        return ping();
      }, 'redis-server', START_TIMEOUT_MS);
    } catch {
      return false;
    }
  }

  stop() {
    return this.proc.stop();
  }
}

class Corrald {
  static async start(dir, { redisUri, args = [] } = {}) {
    if (!fs.existsSync(CORRALD)) {
      throw new Error(`no corrald at ${CORRALD}: build the project or set CORRALD`);
    }
    const argv = [CORRALD, '--listen_address=127.0.0.1:0', '--metrics_address=127.0.0.1:0'];
    if (redisUri) argv.push(`--redis=${redisUri}`);
    const proc = new Process('corrald', [...argv, ...args], dir);
    const m = await proc.waitForLog(/corrald ready listen=(\S+) metrics=(\S+) store=(\S+)/);
    return Object.assign(new Corrald(), { proc, target: m[1], metricsAddress: m[2] });
  }

  stop() {
    return this.proc.stop();
  }

  // Callers waiting (for a lock or a value) in `namespace`, from corrald's
  // corral_waiters gauge.
  async waiters(namespace) {
    const res = await fetch(`http://${this.metricsAddress}/metrics`);
    const text = await res.text();
    const esc = namespace.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const m = new RegExp(`^corral_waiters\\{namespace="${esc}"\\} (\\S+)$`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  }

  // Finished RPCs of `method` (e.g. 'GetOrCompute'), from corral_rpc_requests_total.
  async rpcs(method) {
    const res = await fetch(`http://${this.metricsAddress}/metrics`);
    const text = await res.text();
    let total = 0;
    for (const m of text.matchAll(/^corral_rpc_requests_total\{([^}]*)\} (\S+)$/gm)) {
      if (m[1].includes(`method="${method}"`)) total += Number(m[2]);
    }
    return total;
  }
}

// The examples' fake plant-identification API
// (client/python/examples/fake_upstream.py, on Debian's python3).
class FakeUpstream {
  static async start(dir, { minDelay = 0.2, maxDelay = 0.3 } = {}) {
    const script = path.join(REPO_DIR, 'client', 'python', 'examples', 'fake_upstream.py');
    const proc = new Process('fake-upstream', ['/usr/bin/python3', script, 'serve',
      `--min-delay=${minDelay}`, `--max-delay=${maxDelay}`], dir);
    const m = await proc.waitForLog(/fake-upstream ready url=(\S+)/);
    return Object.assign(new FakeUpstream(), { proc, url: m[1] });
  }

  async setFailing(failing) {
    const res = await fetch(`${this.url}/fail`, { method: 'POST', body: failing ? '1' : '0' });
    assertOk(res);
  }

  // Upstream calls per image SHA-256.
  async perImage() {
    const res = await fetch(`${this.url}/stats`);
    assertOk(res);
    return (await res.json()).per_image;
  }

  stop() {
    return this.proc.stop();
  }
}

function assertOk(res) {
  if (!res.ok) throw new Error(`fake upstream answered ${res.status}`);
}

// One redis-server (unless redis: false: the embedded store), `replicas`
// corralds sharing it and, with upstream: true, the fake upstream.
// `corrald`/`target` are the first replica's.
class Fleet {
  static async start({ redis = true, replicas = 1, args = [], upstream = false } = {}) {
    const fleet = new Fleet();
    fleet.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-nodetest-'));
    fleet.replicas = [];
    try {
      if (redis) fleet.redis = await RedisServer.start(fleet.dir);
      for (let i = 0; i < replicas; i += 1) {
        fleet.replicas.push(await Corrald.start(fleet.dir, { redisUri: fleet.redis?.uri, args }));
      }
      if (upstream) fleet.upstream = await FakeUpstream.start(fleet.dir);
    } catch (err) {
      await fleet.stop();
      throw err;
    }
    [fleet.corrald] = fleet.replicas;
    fleet.target = fleet.corrald.target;
    fleet.targets = fleet.replicas.map((r) => r.target);
    return fleet;
  }

  // Callers waiting in `namespace`, summed over the replicas.
  async waiters(namespace) {
    let total = 0;
    for (const r of this.replicas) total += await r.waiters(namespace);
    return total;
  }

  async stop() {
    if (this.upstream) await this.upstream.stop();
    for (const r of this.replicas) await r.stop();
    if (this.redis) await this.redis.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

// A scratch directory for config files, removed by the caller.
function scratchDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'corral-nodecfg-'));
}

// A key no other test (or earlier run) has used.
function uniqueKey(prefix = 'k') {
  return `${prefix}-${process.pid}-${process.hrtime.bigint()}-${crypto.randomBytes(3).toString('hex')}`;
}

module.exports = {
  CORRALD, PACKAGE_DIR, PYTHONPATH, REPO_DIR, Fleet, Corrald, RedisServer, FakeUpstream, freePort, scratchDir, uniqueKey, waitFor, delay,
};
