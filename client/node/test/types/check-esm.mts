// The ESM view of the types (test/types.test.js): default and named imports.
import corral, { Client, PeerComputeFailed, type GetOrComputeOptions } from 'corral-client';

const options: GetOrComputeOptions = { allowStale: true, leaseTtl: 30 };
const client: Client = new corral.Client('127.0.0.1:50051');
const pending: Promise<Buffer> = client.getOrCompute('ns', 'key', () => Buffer.from('v'), options);
pending.catch((err: unknown) => err instanceof PeerComputeFailed && err.reason === 'peer-compute-failed');
// @ts-expect-error: the target is a string.
new Client(50051);
