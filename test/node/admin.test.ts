import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, onTestFailed } from 'vitest';
import { isRaftKvError } from '../../src/shared/errors.js';
import { RaftKvError } from '../../src/shared/errors.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import { WalStorage } from '../../src/storage/wal-storage.js';
import { checkDataDirIdentity } from '../../src/node/identity.js';
import type { DurableLog } from '../../src/node/ports.js';
import type { RaftKvNode } from '../../src/node/node.js';
import type { Message } from '../../src/raft/types.js';
import { TestCluster, dec, get, peer, put } from './harness.js';

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.destroy();
  cluster = undefined;
});

async function startCluster(size: number, overrides: Parameters<typeof TestCluster.start>[1] = {}): Promise<TestCluster> {
  cluster = await TestCluster.start(size, overrides);
  const c = cluster;
  onTestFailed(() => console.error(`seed: SEED=${c.seed}`));
  return c;
}

function followerOf(c: TestCluster, leader: RaftKvNode): RaftKvNode {
  const f = [...c.nodes.values()].find((n) => n.id !== leader.id);
  if (f === undefined) throw new Error('no follower');
  return f;
}

describe('node driver: membership and leadership', () => {
  it('adds a learner, promotes it, adds and removes voters; the transport follows the member table', async () => {
    const c = await startCluster(3);
    const leader = await c.waitForLeader();
    await c.run(leader.write(put('a', '1'), { clientId: '', seq: 0, deadlineMs: c.deadline() }));
    const members = await c.run(leader.addMember({ ...peer(4), learner: true }, c.deadline()));
    expect(members.map((m) => [m.id, m.learner])).toEqual([[1, false], [2, false], [3, false], [4, true]]);
    expect(c.transports.get(leader.id)?.peerIds()).toContain(4);
    const n4 = await c.startMember(4, { initialClusterState: 'existing', initialMembers: [1, 2, 3, 4].map(peer) });
    await c.tickUntil(() => n4.status().appliedIndex >= leader.status().commitIndex, 30, 'learner catches up');
    expect((await n4.read(get('a'), { serializable: true, deadlineMs: c.deadline() })).result.kvs.map((kv) => dec(kv.value))).toEqual(['1']);
    expect(n4.status().role).toBe('follower');
    const promoted = await c.run(leader.promoteLearner(4, c.deadline()), 5);
    expect(promoted.find((m) => m.id === 4)?.learner).toBe(false);
    await c.tickUntil(() => n4.status().members.length === 4 && n4.members().every((m) => !m.learner), 20, 'n4 sees itself a voter');
    // n4 knows the whole membership (not just itself): cut off, it cannot win an election alone.
    c.hub.isolate(4, [1, 2, 3]);
    await c.ticks(60);
    expect(n4.status().role).not.toBe('leader');
    expect(n4.status().term).toBe(leader.status().term); // pre-vote kept its term too
    c.hub.heal();
    await c.waitForLeader();
    // Remove a follower that is not 4.
    const victim = [1, 2, 3].find((id) => id !== leader.id) ?? 0;
    const after = await c.run(leader.removeMember(victim, c.deadline()), 5);
    expect(after.map((m) => m.id)).not.toContain(victim);
    expect(c.transports.get(leader.id)?.peerIds()).not.toContain(victim);
    expect(leader.status().members).toHaveLength(3);
    await c.stopMember(victim);
    // The three remaining voters (one of them the promoted learner) still commit.
    const w = await c.run(leader.write(put('b', '2'), { clientId: '', seq: 0, deadlineMs: c.deadline() }), 5);
    await c.tickUntil(() => n4.status().appliedIndex >= w.header.index, 10, 'n4 applies');
    await expect(leader.removeMember(99, c.deadline())).rejects.toSatisfy((e: unknown) => isRaftKvError(e, 'NOT_FOUND'));
  });

  it('membership changes survive a restart of every member (the core relearns them from the log)', async () => {
    const c = await startCluster(3);
    const leader = await c.waitForLeader();
    await c.run(leader.addMember({ ...peer(4), learner: true }, c.deadline()));
    const joinCfg = { initialClusterState: 'existing' as const, initialMembers: [1, 2, 3, 4].map(peer) };
    const n4 = await c.startMember(4, joinCfg);
    await c.tickUntil(() => n4.status().appliedIndex >= leader.status().commitIndex, 30, 'learner catches up');
    // More entries after the membership change, so it is not covered by any snapshot.
    await c.run(leader.write(put('a', '1'), { clientId: '', seq: 0, deadlineMs: c.deadline() }));
    for (const id of [4, 1, 2, 3]) await c.stopMember(id);
    for (const id of [1, 2, 3]) await c.startMember(id);
    const n4b = await c.startMember(4, joinCfg);
    await c.settle();
    for (const id of [1, 2, 3, 4]) {
      expect(c.node(id).raftStatus().confState, `node ${id} after restart`).toEqual({ voters: [1, 2, 3], learners: [4] });
    }
    const l2 = await c.waitForLeader();
    const w = await c.run(l2.write(put('b', '2'), { clientId: '', seq: 0, deadlineMs: c.deadline() }), 5);
    await c.tickUntil(() => n4b.status().appliedIndex >= w.header.index, 30, 'the learner still receives the log after restarts');
    expect(l2.status().progress.map((p) => p.id)).toContain(4);
  });

  it('transfers leadership on request', async () => {
    const c = await startCluster(3);
    const leader = await c.waitForLeader();
    await c.run(leader.write(put('a', '1'), { clientId: '', seq: 0, deadlineMs: c.deadline() }));
    const target = followerOf(c, leader);
    await c.run(leader.transferLeadership(target.id, c.deadline()), 5);
    expect(target.status().role).toBe('leader');
    expect(leader.status().role).toBe('follower');
    expect(leader.status().leaderId).toBe(target.id);
    await expect(followerOf(c, target).transferLeadership(99, c.deadline())).rejects.toSatisfy((e: unknown) => isRaftKvError(e, 'NOT_FOUND'));
  });

  it('a transfer the core abandons (target cannot catch up) is answered at once, not at the deadline', async () => {
    const c = await startCluster(3);
    const leader = await c.waitForLeader();
    const target = followerOf(c, leader);
    c.hub.cut(leader.id, target.id);
    await c.run(leader.write(put('a', '1'), { clientId: '', seq: 0, deadlineMs: c.deadline() }), 5);
    const t0 = c.clock.now();
    const transfer = c.run(leader.transferLeadership(target.id, c.deadline(60_000)), 100);
    await expect(transfer).rejects.toSatisfy((e: unknown) => isRaftKvError(e, 'UNAVAILABLE') && /abandoned/.test((e as Error).message));
    expect(c.clock.now() - t0).toBeLessThan(10_000); // about one election timeout, far before the deadline
    expect(leader.status().role).toBe('leader');
    c.hub.heal();
  });

  it('a gracefully stopped leader hands over before an election timeout could pass', async () => {
    const c = await startCluster(3);
    const leader = await c.waitForLeader();
    const w = await c.run(leader.write(put('a', '1'), { clientId: '', seq: 0, deadlineMs: c.deadline() }));
    const t0 = c.clock.now();
    await c.stopMember(leader.id);
    const next = c.leader();
    expect(next).toBeDefined();
    expect(next?.id).not.toBe(leader.id);
    // Less than one election timeout (10 ticks) passed: this was a handover, not an election after a timeout.
    expect(c.clock.now() - t0).toBeLessThan(10 * 100);
    const r = await c.run(next!.read(get('a'), { serializable: false, deadlineMs: c.deadline() }), 3);
    expect(r.result.kvs.map((kv) => dec(kv.value))).toEqual(['1']);
    expect(r.header.index).toBeGreaterThanOrEqual(w.header.index);
    await expect(leader.write(put('z', '1'), { clientId: '', seq: 0, deadlineMs: c.deadline() })).rejects.toSatisfy((e: unknown) =>
      isRaftKvError(e, 'UNAVAILABLE'),
    );
  });
});

describe('node driver: data directory', () => {
  it('refuses a data directory of another node or another cluster', async () => {
    const c = await startCluster(1);
    await c.waitForLeader();
    await c.stopMember(1);
    await expect(c.startMember(1, { id: 2, initialMembers: [peer(2)] })).rejects.toSatisfy(
      (e: unknown) => isRaftKvError(e, 'CLUSTER_MISMATCH') && /belongs to node 1/.test(e.message),
    );
    await expect(c.startMember(1, { clusterId: 'another' })).rejects.toSatisfy(
      (e: unknown) => isRaftKvError(e, 'CLUSTER_MISMATCH') && /cluster "test-cluster"/.test(e.message),
    );
    // The rightful owner still starts, with its data.
    const again = await c.startMember(1);
    await c.waitForLeader();
    expect(again.status().term).toBeGreaterThanOrEqual(2);
  });

  it('rejects an invalid config and a new cluster whose initial members omit this node', async () => {
    cluster = await TestCluster.create(3);
    const c = cluster;
    await expect(c.startMember(1, { initialMembers: [peer(2), peer(3)] })).rejects.toSatisfy((e: unknown) => isRaftKvError(e, 'INVALID_ARGUMENT'));
    await expect(c.startMember(1, { electionTimeoutTicks: 1 })).rejects.toSatisfy((e: unknown) => isRaftKvError(e, 'INVALID_ARGUMENT'));
  });
});

describe('node driver: limits and batching', () => {
  it('bounds pending proposals, pending reads and the inbox with RESOURCE_EXHAUSTED', async () => {
    const c = await startCluster(1, { maxPendingProposals: 4, maxPendingReads: 3 });
    const leader = await c.waitForLeader();
    const opts = { clientId: '', seq: 0, deadlineMs: c.deadline() };
    const writes = [0, 1, 2, 3].map((i) => leader.write(put(`k${i}`, 'v'), opts));
    await expect(leader.write(put('k4', 'v'), opts)).rejects.toSatisfy((e: unknown) => isRaftKvError(e, 'RESOURCE_EXHAUSTED'));
    const reads = [0, 1, 2].map(() => leader.read(get('k0'), { serializable: false, deadlineMs: c.deadline() }));
    await expect(leader.read(get('k0'), { serializable: false, deadlineMs: c.deadline() })).rejects.toSatisfy((e: unknown) =>
      isRaftKvError(e, 'RESOURCE_EXHAUSTED'),
    );
    await c.settle();
    for (const w of writes) await expect(w).resolves.toMatchObject({ result: { type: 'put' } });
    for (const r of reads) await r;
    // Slots are freed once answered.
    await c.run(leader.write(put('k5', 'v'), opts));
    await c.destroy();

    cluster = await TestCluster.start(1, { maxInboxItems: 3 });
    const c2 = cluster;
    const l2 = await c2.waitForLeader();
    const o2 = { clientId: '', seq: 0, deadlineMs: c2.deadline() };
    const queued = [0, 1, 2].map((i) => l2.write(put(`q${i}`, 'v'), o2));
    await expect(l2.write(put('q3', 'v'), o2)).rejects.toSatisfy(
      (e: unknown) => isRaftKvError(e, 'RESOURCE_EXHAUSTED') && /inbox full/.test(e.message),
    );
    await c2.settle();
    for (const w of queued) await w;
  });

  it('group commit: writes arriving while an fsync is in flight share the next one', async () => {
    const c = await startCluster(3);
    const leader = await c.waitForLeader();
    const followers = [...c.nodes.values()].filter((n) => n.id !== leader.id);
    const syncsBefore = leader.stats.syncs;
    const followerSyncsBefore = followers.map((f) => f.stats.syncs);
    const waves = 20;
    const perWave = 10;
    const writes: Promise<unknown>[] = [];
    for (let w = 0; w < waves; w++) {
      for (let i = 0; i < perWave; i++) {
        writes.push(leader.write(put(`g${w}-${i}`, 'v'), { clientId: '', seq: 0, deadlineMs: c.deadline() }));
      }
      // Let the loop run (it is typically awaiting an fsync when the next wave arrives).
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    await c.settle();
    const results = (await Promise.all(writes)) as { header: { index: number } }[];
    const n = waves * perWave;
    expect(new Set(results.map((r) => r.header.index)).size).toBe(n);
    const syncs = leader.stats.syncs - syncsBefore;
    const followerSyncs = followers.map((f, i) => f.stats.syncs - (followerSyncsBefore[i] ?? 0));
    console.log(`group commit: ${n} writes in ${waves} waves: ${syncs} leader fsyncs, follower fsyncs ${followerSyncs.join(', ')}`);
    expect(syncs).toBeLessThanOrEqual(waves + 2);
    expect(syncs).toBeLessThan(n / 5);
    for (const fs of followerSyncs) expect(fs).toBeLessThan(n / 5);
    // They were batched behind one ReadIndex round too.
    const rb = leader.stats.readBatches;
    const reads = Array.from({ length: 50 }, () => leader.read(get('g1-1'), { serializable: false, deadlineMs: c.deadline() }));
    await c.settle();
    await Promise.all(reads);
    expect(leader.stats.readBatches - rb).toBe(1);
  });
});

/** A WAL whose sync() fails with DISK_FULL while `disk.full` is set. */
interface DiskState {
  full: boolean;
  failures: number;
}
function fullableWal(inner: WalStorage, disk: DiskState): DurableLog {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === 'sync') {
        return async () => {
          if (disk.full) {
            disk.failures++;
            throw new RaftKvError('DISK_FULL', 'test: no space left on device');
          }
          await target.sync();
        };
      }
      const v: unknown = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

describe('node driver: disk full', () => {
  it('refuses writes while the disk is full, keeps serving serializable reads, resumes when space returns', async () => {
    cluster = await TestCluster.create(1);
    const c = cluster;
    onTestFailed(() => console.error(`seed: SEED=${c.seed}`));
    const cfg = c.config(1);
    await mkdir(cfg.dataDir, { recursive: true });
    await checkDataDirIdentity(cfg.dataDir, { nodeId: 1, clusterId: cfg.clusterId });
    const wal: DiskState = { full: false, failures: 0 };
    const inner = await WalStorage.open(join(cfg.dataDir, 'wal'), { initialConfState: { voters: [1], learners: [] } });
    const sm = await KvStateMachine.open(join(cfg.dataDir, 'kv'), { limits: cfg.kvLimits });
    const node = await c.startMember(1, {}, { wal: fullableWal(inner, wal), stateMachine: sm });
    await c.waitForLeader();
    await c.run(node.write(put('k', 'before'), { clientId: '', seq: 0, deadlineMs: c.deadline(60_000) }));
    wal.full = true;
    const stuck = node.write(put('k', 'during'), { clientId: '', seq: 0, deadlineMs: c.deadline(60_000) });
    stuck.catch(() => undefined); // awaited below; silences the rejection if an assertion fails first
    await c.settle();
    expect(node.isDiskFull).toBe(true);
    await expect(node.write(put('k2', 'x'), { clientId: '', seq: 0, deadlineMs: c.deadline() })).rejects.toSatisfy((e: unknown) =>
      isRaftKvError(e, 'DISK_FULL'),
    );
    const r = await node.read(get('k'), { serializable: true, deadlineMs: c.deadline() });
    expect(r.result.kvs.map((kv) => dec(kv.value))).toEqual(['before']);
    for (let i = 0; i < 3; i++) {
      c.clock.advance(1000); // retries every second, still full
      await c.settle();
    }
    expect(node.isDiskFull).toBe(true);
    expect(wal.failures).toBeGreaterThanOrEqual(3);
    wal.full = false;
    const done = await c.run(stuck, 15);
    expect(done.result.type).toBe('put');
    expect(node.isDiskFull).toBe(false);
    const after = await c.run(node.write(put('k3', 'y'), { clientId: '', seq: 0, deadlineMs: c.deadline() }), 5);
    expect(after.header.index).toBeGreaterThan(done.header.index);
  });
});

describe('node driver: joining with an empty directory', () => {
  it('answers votes before it has the log (else a quorum that needs it deadlocks), and never campaigns itself', async () => {
    cluster = await TestCluster.create(1);
    const c = cluster;
    const joiner = await c.startMember(4, { initialClusterState: 'existing', initialMembers: [peer(4), peer(9)] });
    const control = await c.startMember(5, { initialClusterState: 'new', initialMembers: [peer(5), peer(9)] });
    const probe = c.hub.transport(9, join(c.baseDir, 'probe-inbox'));
    const got: Message[] = [];
    await probe.start({ onMessages: (m) => got.push(...m), onSnapshot: () => undefined, onPeerUnreachable: () => undefined });
    probe.setPeer(4, 'x');
    probe.setPeer(5, 'x');
    const vote = (to: number): Message => ({ type: 'vote', from: 9, to, term: 5, index: 10, logTerm: 3, transfer: false });
    probe.send([vote(4), vote(5)]);
    await c.settle();
    const granted = (from: number): Message[] => got.filter((m) => m.type === 'vote-resp' && m.from === from && !m.reject && m.term === 5);
    expect(granted(5)).toHaveLength(1);
    expect(granted(4)).toHaveLength(1); // the joiner's empty log is behind the candidate's: granted
    expect(joiner.status().term).toBe(5);
    // Many election timeouts later it has sent nothing of its own: it is in no configuration it knows.
    for (let i = 0; i < 20; i++) {
      c.clock.advance(1000);
      await c.settle();
    }
    expect(got.filter((m) => m.from === 4 && m.type !== 'vote-resp')).toEqual([]);
    expect(joiner.status().role).toBe('follower');
    expect(control.status().term).toBeGreaterThanOrEqual(5);
    await probe.stop();
  });
});
