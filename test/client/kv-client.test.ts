// KvClient on its own: option validation, a dead endpoint skipped for a live one, nothing reachable, close().
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvClient, RaftKvError } from '../../src/client/index.js';
import { runServer } from '../../src/server/serve.js';
import type { RunningServer } from '../../src/server/serve.js';
import { FakeCluster, FakeNode, testConfig } from '../server/fake-node.js';
import { silentLogger } from '../server/helpers.js';

let dir = '';
let server: RunningServer;
let live = '';
const DEAD = '127.0.0.1:1'; // nothing listens on port 1

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'raftkv-client-'));
  const c = new FakeCluster();
  server = await runServer(testConfig(1, join(dir, 'n1')), { logger: silentLogger, startNode: () => Promise.resolve(new FakeNode(1, c)) });
  live = server.clientAddress;
  c.addresses.set(1, live);
});

afterAll(async () => {
  await server.stop();
  await rm(dir, { recursive: true, force: true });
});

function errorOf(f: () => unknown): RaftKvError {
  try {
    f();
  } catch (err) {
    if (err instanceof RaftKvError) return err;
    throw err;
  }
  throw new Error('did not throw');
}

describe('KvClient', () => {
  it('refuses bad options', () => {
    expect(errorOf(() => new KvClient({ endpoints: [] })).message).toMatch(/at least one endpoint/);
    expect(errorOf(() => new KvClient({ endpoints: [' ', ''] })).code).toBe('INVALID_ARGUMENT');
    expect(errorOf(() => new KvClient({ endpoints: ['localhost'] })).message).toMatch(/"localhost" is not host:port/);
  });

  it('skips a dead endpoint for a live one, and stays on it', async () => {
    const k = new KvClient({ endpoints: [DEAD, live], backoffMinMs: 1, backoffMaxMs: 5 });
    const r = await k.put('k', 'v');
    expect(r.header.memberId).toBe(1);
    expect(k.knownLeader).toBe(live);
    const t0 = Date.now();
    await k.get('k');
    expect(Date.now() - t0).toBeLessThan(1000); // straight to the remembered leader
    k.close();
  });

  it('with nothing reachable: UNAVAILABLE once its deadline is near', async () => {
    const k = new KvClient({ endpoints: [DEAD], timeoutMs: 250, backoffMinMs: 5, backoffMaxMs: 20 });
    const t0 = Date.now();
    const err = (await k.get('k').catch((e: unknown) => e)) as RaftKvError;
    expect(err).toBeInstanceOf(RaftKvError);
    expect(err.code).toBe('UNAVAILABLE');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(200);
    expect(Date.now() - t0).toBeLessThan(2000);
    k.close();
  });

  it('a closed client refuses calls', async () => {
    const k = new KvClient({ endpoints: [live] });
    k.close();
    await expect(k.get('k')).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
  });
});
