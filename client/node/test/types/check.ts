// Compiled (not run) by test/types.test.js with tsc --strict against
// index.d.ts: the documented API type-checks, and misuse does not.
import corral, {
  BreakerOpen, BreakerInfo, CachedValue, Client, CorralError, GetOrComputeResult, Lock, LockGrant,
  LockNotAcquired, Unavailable,
} from 'corral-client';

async function use(): Promise<void> {
  const client = new Client('127.0.0.1:50051', { token: 't', tls: { ca: Buffer.from('') }, timeout: 5 });
  const v: Buffer = await client.getOrCompute('ns', 'key', async () => 'value', { ttl: 60, waitTimeout: 15 });
  const r: GetOrComputeResult = await client.getOrComputeResult('ns', Buffer.from('k'), () => new Uint8Array(1));
  const fencing: bigint = BigInt(r.fencingToken);
  const hit: CachedValue | null = await client.get('ns', 'key');
  const stored: boolean = await client.set('ns', 'key', v, { lockToken: 'tok', releaseLock: true });
  const existed: boolean = await client.invalidate('ns', 'key');
  const grant: LockGrant = await client.acquireLock('ns', 'key', { ttl: 30, waitTimeout: 0 });
  const lock: Lock = await client.lock('ns', 'key', { ttl: 30, renewEvery: 10, onLost: () => {} });
  const released: boolean = await lock.release('success');
  const n: number = await client.withLock('ns', 'key', { ttl: 5 }, async (l) => l.fencingToken.length);
  const info: BreakerInfo = await client.getBreaker('ns');
  if (info.state === 'half_open') return;
  try {
    await client.getOrCompute('ns', 'key', () => 'x');
  } catch (err) {
    if (err instanceof BreakerOpen) {
      const ms: number | null = err.retryAfterMs;
      const reason: string = err.reason;
      const u: Unavailable = err;
      const base: CorralError = u;
      void [ms, reason, base];
    }
    if (err instanceof LockNotAcquired) void err.codeName;
  }
  void [hit, stored, existed, grant, released, n, fencing, corral.Client === Client];

  // @ts-expect-error: compute must return bytes or a string.
  await client.getOrCompute('ns', 'key', async () => 42);
  // @ts-expect-error: durations are numbers of seconds.
  await client.set('ns', 'key', 'v', { ttl: '60s' });
  // @ts-expect-error: the outcome is one of 'success' | 'failure' | 'unspecified'.
  await lock.release('ok');
  // @ts-expect-error: fencing tokens are strings, not numbers.
  const wrong: number = grant.fencingToken;
  void wrong;
  client.close();
}

void use;
