// KvClient on its own: option validation, a dead endpoint skipped for a live one, nothing reachable, close().
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvClient, RaftKvError, isRaftKvError } from '../../src/client/index.js';
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

  it('refuses a range limit that is not a non-negative safe integer, before sending; 0 means no limit', async () => {
    // A dead endpoint: anything sent would end in UNAVAILABLE after the timeout, not INVALID_ARGUMENT at once.
    const k = new KvClient({ endpoints: [DEAD], timeoutMs: 5000 });
    const t0 = Date.now();
    for (const limit of [-1, 1.5, Number.NaN, Infinity, 2 ** 53]) {
      await expect(k.range('p', { limit })).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
        message: `range: limit must be a non-negative integer, got ${limit}`,
      });
    }
    await expect(k.txn({ success: [{ type: 'range', range: 'p', limit: -1 }] })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: 'txn: success op 0: limit must be a non-negative integer, got -1',
    });
    await expect(k.txn({ failure: [{ type: 'put', key: 'a', value: 'b' }, { type: 'range', range: 'p', limit: 2.5 }] })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: 'txn: failure op 1: limit must be a non-negative integer, got 2.5',
    });
    await expect(k.txn({ compares: [{ key: 'a', target: 'version', op: '>', number: -1 }] })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: 'txn: compare 0: version must be a non-negative integer, got -1',
    });
    // Member ids travel as uint32: 1.5 would become member 1, -1 would wrap.
    await expect(k.memberRemove(1.5)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: 'memberRemove: member id must be in 1..2^31-1, got 1.5' });
    await expect(k.memberPromote(-1)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(k.transferLeader(0)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(k.memberAdd({ id: 2 ** 31, peerAddress: 'a:1', clientAddress: 'a:2' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(Date.now() - t0).toBeLessThan(1000);
    k.close();
    // 0 keeps meaning "no limit".
    const l = new KvClient({ endpoints: [live] });
    for (const key of ['lim/a', 'lim/b', 'lim/c']) await l.put(key, 'v');
    expect((await l.range('lim/', { limit: 0 })).kvs).toHaveLength(3);
    expect((await l.range('lim/', { limit: 2 })).kvs).toHaveLength(2);
    l.close();
  });

  it('refuses a timeout longer than a timer can wait (2^31-1 ms), in the options and per call', async () => {
    for (const opts of [{ timeoutMs: 2 ** 31 }, { attemptTimeoutMs: 2 ** 31 + 1000 }, { backoffMaxMs: Infinity }, { timeoutMs: 0 }, { timeoutMs: -5 }, { maxRedirects: 1.5 }]) {
      const err = errorOf(() => new KvClient({ endpoints: [DEAD], ...opts }));
      expect(err.code, JSON.stringify(opts)).toBe('INVALID_ARGUMENT');
    }
    expect(errorOf(() => new KvClient({ endpoints: [DEAD], timeoutMs: 2 ** 31 + 1000 })).message).toBe(
      'KvClient: timeoutMs must be more than 0 and at most 2147483647 ms (the longest timer Node can set), got 2147484648',
    );
    const k = new KvClient({ endpoints: [DEAD], timeoutMs: 5000 });
    const t0 = Date.now();
    const long = { timeoutMs: 2 ** 31 + 1000 };
    await expect(k.get('k', long)).rejects.toSatisfy((e: unknown) => isRaftKvError(e, 'INVALID_ARGUMENT') && e.message.startsWith('KvClient call: timeoutMs must be'));
    await expect(k.put('k', 'v', long)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(k.status(DEAD, long)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(k.snapshotSave('/nonexistent/x', long)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(Date.now() - t0).toBeLessThan(1000);
    k.close();
  });

  it('a closed client refuses calls', async () => {
    const k = new KvClient({ endpoints: [live] });
    k.close();
    await expect(k.get('k')).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
  });
});
