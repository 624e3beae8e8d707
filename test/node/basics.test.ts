import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/shared/clock.js';
import { isRaftKvError } from '../../src/shared/errors.js';
import { checkDataDirIdentity } from '../../src/node/identity.js';
import { Inbox } from '../../src/node/inbox.js';
import { PendingRequest } from '../../src/node/request.js';
import { MemoryHub } from '../../src/transport/memory-transport.js';
import type { Message, SnapshotMessage } from '../../src/raft/types.js';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'raftkv-node-basics-'));
  dirs.push(d);
  return d;
}
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe('ManualClock', () => {
  it('fires intervals and timeouts in time order, only when advanced', () => {
    const clock = new ManualClock(0);
    const fired: string[] = [];
    const stopTick = clock.setInterval(() => fired.push(`tick@${clock.now()}`), 100);
    const cancel = clock.setTimeout(() => fired.push(`never@${clock.now()}`), 150);
    clock.setTimeout(() => fired.push(`t@${clock.now()}`), 250);
    cancel();
    expect(fired).toEqual([]);
    clock.advance(99);
    expect(fired).toEqual([]);
    clock.advance(201);
    expect(fired).toEqual(['tick@100', 'tick@200', 't@250', 'tick@300']);
    stopTick();
    clock.advance(1000);
    expect(fired).toHaveLength(4);
    expect(clock.pendingTimers()).toBe(0);
  });
});

describe('Inbox', () => {
  it('bounds its size and drains in order', async () => {
    const inbox = new Inbox<number>(3);
    expect([inbox.push(1), inbox.push(2), inbox.push(3), inbox.push(4)]).toEqual([true, true, true, false]);
    await inbox.wait();
    expect(inbox.drain()).toEqual([1, 2, 3]);
    expect(inbox.size).toBe(0);
    let woke = false;
    const w = inbox.wait().then(() => {
      woke = true;
    });
    await Promise.resolve();
    expect(woke).toBe(false);
    inbox.notify();
    await w;
    expect(woke).toBe(true);
  });
});

describe('PendingRequest', () => {
  it('rejects with DEADLINE_EXCEEDED at its deadline and settles once', async () => {
    const clock = new ManualClock(0);
    let freed = 0;
    const r = new PendingRequest<string>(clock, 500, 'put', () => freed++);
    clock.advance(499);
    expect(r.settled).toBe(false);
    clock.advance(1);
    r.resolve('late');
    await expect(r.promise).rejects.toSatisfy((e: unknown) => isRaftKvError(e, 'DEADLINE_EXCEEDED'));
    expect(freed).toBe(1);
    const ok = new PendingRequest<string>(clock, 10_000, 'put', () => freed++);
    ok.resolve('done');
    await expect(ok.promise).resolves.toBe('done');
    expect(freed).toBe(2);
    expect(clock.pendingTimers()).toBe(0);
  });
});

describe('data directory identity', () => {
  it('records the identity on first start and refuses another node or cluster', async () => {
    const dir = join(await tempDir(), 'n1');
    expect(await checkDataDirIdentity(dir, { nodeId: 1, clusterId: 'c1' })).toMatchObject({ created: true });
    const written = JSON.parse(await readFile(join(dir, 'node.json'), 'utf8')) as Record<string, unknown>;
    expect(written).toMatchObject({ format: 1, nodeId: 1, clusterId: 'c1' });
    expect(await checkDataDirIdentity(dir, { nodeId: 1, clusterId: 'c1' })).toMatchObject({ created: false });
    await expect(checkDataDirIdentity(dir, { nodeId: 2, clusterId: 'c1' })).rejects.toSatisfy(
      (e: unknown) => isRaftKvError(e, 'CLUSTER_MISMATCH') && /node 1, not node 2/.test(e.message),
    );
    await expect(checkDataDirIdentity(dir, { nodeId: 1, clusterId: 'other' })).rejects.toSatisfy(
      (e: unknown) => isRaftKvError(e, 'CLUSTER_MISMATCH') && /cluster "c1"/.test(e.message),
    );
  });

  it('refuses a non-empty directory without identity and a corrupt identity file', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'stray'), 'x');
    await expect(checkDataDirIdentity(dir, { nodeId: 1, clusterId: 'c' })).rejects.toSatisfy((e: unknown) =>
      isRaftKvError(e, 'CLUSTER_MISMATCH'),
    );
    const dir2 = await tempDir();
    await writeFile(join(dir2, 'node.json'), '{"format":1,"nodeId":"x"');
    await expect(checkDataDirIdentity(dir2, { nodeId: 1, clusterId: 'c' })).rejects.toSatisfy((e: unknown) =>
      isRaftKvError(e, 'DATA_CORRUPTION'),
    );
  });
});

describe('MemoryTransport', () => {
  const hb = (from: number, to: number): Message => ({ type: 'heartbeat', from, to, term: 1, commit: 0, context: new Uint8Array() });

  it('delivers to known peers, drops across cut links and reports unreachable once per outage', async () => {
    const hub = new MemoryHub();
    const base = await tempDir();
    const got: Record<number, Message[]> = { 1: [], 2: [] };
    const unreachable: number[] = [];
    const snaps: string[] = [];
    const t1 = hub.transport(1, join(base, 'in1'));
    const t2 = hub.transport(2, join(base, 'in2'));
    await t1.start({ onMessages: (m) => got[1]?.push(...m), onSnapshot: () => undefined, onPeerUnreachable: (p) => unreachable.push(p) });
    await t2.start({ onMessages: (m) => got[2]?.push(...m), onSnapshot: (_m, p) => snaps.push(p), onPeerUnreachable: () => undefined });
    t1.send([hb(1, 2)]); // peer not set yet: dropped
    t1.setPeer(2, 'mem:2');
    t1.send([hb(1, 2), hb(1, 2)]);
    expect(got[2]).toHaveLength(2);
    hub.cut(1, 2);
    t1.send([hb(1, 2)]);
    t1.send([hb(1, 2)]);
    expect(got[2]).toHaveLength(2);
    expect(unreachable).toEqual([2, 2]); // once for the unknown peer, once for the cut
    hub.heal();
    t1.send([hb(1, 2)]);
    expect(got[2]).toHaveLength(3);

    const file = join(base, 'snap.bin');
    await writeFile(file, 'payload');
    const msg: SnapshotMessage = { type: 'snap', from: 1, to: 2, term: 1, snapshot: { metadata: { index: 7, term: 1, confState: { voters: [1, 2], learners: [] } } } };
    await t1.sendSnapshot(msg, file);
    expect(snaps).toHaveLength(1);
    expect(await readFile(snaps[0] ?? '', 'utf8')).toBe('payload');
    hub.cut(1, 2);
    await expect(t1.sendSnapshot(msg, file)).rejects.toThrow(/unreachable/);
    await t2.stop();
    hub.heal();
    t1.send([hb(1, 2)]);
    expect(got[2]).toHaveLength(3);
    await t1.stop();
  });
});
