// etcd's slow-read warning ("apply request took too long", prefix "read-only range "), timed on a manual clock:
// only past the threshold, with etcd's request and response summaries; and wired into `raftkv serve`'s reads.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { KvClient } from '../../src/client/index.js';
import type { ReadOptions, ReadReply } from '../../src/node/api.js';
import type { RangeRequest } from '../../src/kv/types.js';
import { ManualClock } from '../../src/shared/clock.js';
import { runServer } from '../../src/server/serve.js';
import { SlowRequestLog, describeRange } from '../../src/server/slow-request-log.js';
import { RaftKvError } from '../../src/shared/errors.js';
import { FakeCluster, FakeNode, testConfig } from './fake-node.js';
import { waitFor } from './helpers.js';

const PORT = 28750; // in this branch's test range 28000-28999, clear of disaster-recovery.test.ts' and quota.test.ts' ports

function capture(): { log: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, lines };
}

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const range = (key: string, end = '', extra: Partial<RangeRequest> = {}): RangeRequest => ({ key: enc(key), end: enc(end), limit: 0, keysOnly: false, countOnly: false, ...extra });
const reply = (n: number): ReadReply => ({
  header: { memberId: 1, term: 2, index: 3, leaderId: 1, revision: 4 },
  result: { kvs: Array.from({ length: n }, (_, i) => ({ key: enc(`k${i}`), value: enc('vvvv'), createRevision: 1, modRevision: 1, version: 1, lease: 0 })), more: false, count: n, revision: 4 },
}) as ReadReply;

/** A promise the test settles by hand. */
function manual<T>(): { p: Promise<T>; resolve: (v: T) => void; reject: (e: Error) => void } {
  let resolve: (v: T) => void = () => undefined;
  let reject: (e: Error) => void = () => undefined;
  const p = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { p, resolve, reject };
}

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('SlowRequestLog', () => {
  it('warns of a read over the threshold in etcd\'s form, and not of one at or under it', async () => {
    const clock = new ManualClock();
    const { log, lines } = capture();
    let slow = 0;
    const slowLog = new SlowRequestLog({ logger: log, clock, warningApplyDurationMs: 100, onSlowRead: () => slow++ });

    const fast = manual<ReadReply>();
    slowLog.read(range('a'), { serializable: false }, fast.p);
    clock.advance(100); // exactly the threshold: etcd warns only when took > expected
    fast.resolve(reply(1));
    await settle();
    expect(lines).toHaveLength(0);

    const late = manual<ReadReply>();
    slowLog.read(range('user/', 'user0', { limit: 10, revision: 7 }), { serializable: true }, late.p);
    clock.advance(234);
    late.resolve(reply(2));
    await settle();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toEqual(expect.objectContaining({
      level: 40,
      msg: 'apply request took too long',
      tookMs: 234,
      expectedDurationMs: 100,
      prefix: 'read-only range ',
      request: 'key:"user/" range_end:"user0" limit:10 revision:7 serializable:true',
      response: 'range_response_count:2 size:12',
    }));
    expect(slow).toBe(1);
  });

  it('warns of a failed read that took too long, with the error', async () => {
    const clock = new ManualClock();
    const { log, lines } = capture();
    const slowLog = new SlowRequestLog({ logger: log, clock, warningApplyDurationMs: 100 });
    const failing = manual<ReadReply>();
    slowLog.read(range('k'), { serializable: false }, failing.p);
    failing.p.catch(() => undefined);
    clock.advance(1500);
    failing.reject(new RaftKvError('DEADLINE_EXCEEDED', 'read index not confirmed in time'));
    await settle();
    expect(lines[0]).toMatchObject({ msg: 'apply request took too long', tookMs: 1500, response: '', error: 'read index not confirmed in time' });
  });

  it('takes its threshold from the option (etcd\'s --experimental-warning-apply-duration)', async () => {
    const clock = new ManualClock();
    const { log, lines } = capture();
    const slowLog = new SlowRequestLog({ logger: log, clock, warningApplyDurationMs: 500 });
    for (const ms of [450, 501]) {
      const r = manual<ReadReply>();
      slowLog.read(range('k'), { serializable: false }, r.p);
      clock.advance(ms);
      r.resolve(reply(0));
      await settle();
    }
    expect(lines.map((l) => l.tookMs)).toEqual([501]);
    expect(lines[0]?.expectedDurationMs).toBe(500);
  });

  it('describes a request as etcd prints it, a long key cut short', () => {
    expect(describeRange(range('a'), { serializable: false })).toBe('key:"a"');
    expect(describeRange(range('a', '', { keysOnly: true, countOnly: true }), { serializable: false })).toBe('key:"a" keys_only:true count_only:true');
    const long = describeRange(range('x'.repeat(1000)), { serializable: false });
    expect(long.length).toBeLessThan(300);
    expect(long).toMatch(/\.\.\."$/);
  });
});

describe('raftkv serve warns of slow reads', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'raftkv-slow-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  class HeldReads extends FakeNode {
    held: (() => void)[] = [];
    override async read(request: RangeRequest, opts: ReadOptions): Promise<ReadReply> {
      await new Promise<void>((r) => this.held.push(r));
      return super.read(request, opts);
    }
  }

  it('a Range held past --experimental-warning-apply-duration on the server\'s clock logs the warning', async () => {
    const clock = new ManualClock();
    const { log, lines } = capture();
    const address = `127.0.0.1:${PORT}`;
    const node = new HeldReads(1, new FakeCluster());
    const server = await runServer(testConfig(1, join(dir, 'n1'), { clientListen: address, peerListen: address, warningApplyDurationMs: 200 }), {
      logger: log,
      startNode: () => Promise.resolve(node),
      corruptCheckClock: clock,
    });
    const client = new KvClient({ endpoints: [address], timeoutMs: 10_000 });
    try {
      for (const heldMs of [150, 300]) {
        const got = client.get('greeting', { serializable: true });
        await waitFor('the read reaches the node', () => node.held.length === 1);
        clock.advance(heldMs);
        node.held.shift()?.();
        await got;
      }
      await waitFor('the warning', () => lines.some((l) => l.msg === 'apply request took too long'));
      const warnings = lines.filter((l) => l.msg === 'apply request took too long');
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatchObject({ tookMs: 300, expectedDurationMs: 200, prefix: 'read-only range ', request: 'key:"greeting" limit:1 serializable:true' });
    } finally {
      client.close();
      await server.stop();
    }
  });
});
