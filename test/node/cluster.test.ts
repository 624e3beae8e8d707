import { afterEach, describe, expect, it, onTestFailed } from 'vitest';
import { isRaftKvError } from '../../src/shared/errors.js';
import { verifySnapshotFile } from '../../src/kv/state-machine.js';
import type { NodeConfig } from '../../src/node/config.js';
import { TestCluster, dec, get, put } from './harness.js';

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.destroy();
  cluster = undefined;
});

async function start3(overrides: Partial<NodeConfig> = {}): Promise<TestCluster> {
  cluster = await TestCluster.start(3, overrides);
  const c = cluster;
  onTestFailed(() => console.error(`seed: SEED=${c.seed}`));
  return c;
}

describe('node driver: 3-node in-process cluster', () => {
  it('elects a leader, writes through it and reads linearizably and serializably', async () => {
    const c = await start3();
    const leader = await c.waitForLeader();
    const w = await c.run(leader.write(put('k1', 'v1'), { clientId: '', seq: 0, deadlineMs: c.deadline() }));
    expect(w.result.type).toBe('put');
    expect(w.header.memberId).toBe(leader.id);
    expect(w.header.leaderId).toBe(leader.id);
    expect(w.header.index).toBeGreaterThan(0);
    const r = await c.run(leader.read(get('k1'), { serializable: false, deadlineMs: c.deadline() }));
    expect(r.result.kvs.map((kv) => dec(kv.value))).toEqual(['v1']);
    expect(r.header.index).toBeGreaterThanOrEqual(w.header.index);
    // Every member applies it.
    await c.tickUntil(() => [...c.nodes.values()].every((n) => n.status().appliedIndex >= w.header.index), 20, 'all applied');
    for (const n of c.nodes.values()) {
      const s = await n.read(get('k1'), { serializable: true, deadlineMs: c.deadline() });
      expect(s.result.kvs.map((kv) => dec(kv.value))).toEqual(['v1']);
    }
  });

  it('a follower answers a write NOT_LEADER with the leader id and client address', async () => {
    const c = await start3();
    const leader = await c.waitForLeader();
    const follower = [...c.nodes.values()].find((n) => n.id !== leader.id);
    expect(follower).toBeDefined();
    if (follower === undefined) return;
    await expect(follower.write(put('a', 'b'), { clientId: '', seq: 0, deadlineMs: c.deadline() })).rejects.toSatisfy(
      (e: unknown) =>
        isRaftKvError(e, 'NOT_LEADER') && e.leader?.leaderId === leader.id && e.leader.leaderAddress === `mem-client-${leader.id}:2`,
    );
  });

  it('a follower serves a linearizable read: it asks the leader for the read index and waits until it applied it', async () => {
    const c = await start3({ commitBroadcast: 'lazy' }); // so that the follower is seen behind before the read
    const leader = await c.waitForLeader();
    const follower = [...c.nodes.values()].find((n) => n.id !== leader.id);
    if (follower === undefined) throw new Error('no follower');
    await c.run(leader.write(put('a', '1'), { clientId: '', seq: 0, deadlineMs: c.deadline() }));
    // Commits reach followers lazily: the follower has not applied the write yet, a serializable read is stale.
    const stale = await follower.read(get('a'), { serializable: true, deadlineMs: c.deadline() });
    expect(stale.result.kvs).toEqual([]);
    const r = await c.run(follower.read(get('a'), { serializable: false, deadlineMs: c.deadline() }), 5);
    expect(r.result.kvs.map((kv) => dec(kv.value))).toEqual(['1']);
    expect(r.header.memberId).toBe(follower.id);
    expect(r.header.index).toBeGreaterThanOrEqual(leader.status().commitIndex);
  });

  it("a follower's read index request lost on the way is asked again; a leader change fails it, retryable", async () => {
    const c = await start3();
    const leader = await c.waitForLeader();
    const follower = [...c.nodes.values()].find((n) => n.id !== leader.id);
    if (follower === undefined) throw new Error('no follower');
    c.hub.cut(follower.id, leader.id, true); // the follower's messages to the leader are lost
    const pending = follower.read(get('a'), { serializable: false, deadlineMs: c.deadline(3_000) });
    let settled = false;
    void pending.then(() => (settled = true), () => (settled = true));
    await c.ticks(2);
    expect(settled).toBe(false);
    c.hub.heal();
    const r = await c.run(pending, 40); // asked again after READ_INDEX_RETRY_TICKS (without: DEADLINE_EXCEEDED)
    expect(r.header.memberId).toBe(follower.id);
    // A read waiting on a leader that goes away fails (UNAVAILABLE or NOT_LEADER), and the client retries it.
    c.hub.cut(follower.id, leader.id, true);
    const orphan = follower.read(get('a'), { serializable: false, deadlineMs: c.deadline(60_000) });
    void orphan.catch(() => undefined);
    await c.settle();
    c.hub.isolate(leader.id, [...c.nodes.keys()]);
    await expect(c.run(orphan, 100)).rejects.toSatisfy((e: unknown) => isRaftKvError(e, 'UNAVAILABLE') || isRaftKvError(e, 'NOT_LEADER'));
  });
});

describe('node driver: failures and partitions', () => {
  it('answers UNAVAILABLE at once (no waiting) on a leader cut off from its quorum', async () => {
    const c = await start3();
    const old = await c.waitForLeader();
    const others = [...c.nodes.keys()].filter((id) => id !== old.id);
    c.hub.isolate(old.id, others);
    // Check-quorum: the isolated leader steps down within an election timeout or two.
    await c.tickUntil(() => old.status().role !== 'leader', 40, 'isolated leader steps down');
    const t0 = c.clock.now();
    await expect(old.write(put('x', '1'), { clientId: '', seq: 0, deadlineMs: c.deadline() })).rejects.toSatisfy(
      (e: unknown) => isRaftKvError(e, 'UNAVAILABLE') || isRaftKvError(e, 'NOT_LEADER'),
    );
    await expect(old.read(get('x'), { serializable: false, deadlineMs: c.deadline() })).rejects.toSatisfy(
      (e: unknown) => isRaftKvError(e, 'UNAVAILABLE') || isRaftKvError(e, 'NOT_LEADER'),
    );
    expect(c.clock.now()).toBe(t0); // answered without any time passing
    // The majority elects a new leader meanwhile.
    await c.tickUntil(() => others.some((id) => c.node(id).status().role === 'leader'), 60, 'majority elects');
    // Once the pre-vote fails the isolated node knows no leader: UNAVAILABLE, not a stale NOT_LEADER hint.
    await c.tickUntil(() => old.status().leaderId === 0, 60, 'isolated node forgets the leader');
    await expect(old.write(put('x', '1'), { clientId: '', seq: 0, deadlineMs: c.deadline() })).rejects.toSatisfy((e: unknown) =>
      isRaftKvError(e, 'UNAVAILABLE'),
    );
  });

  it('serves serializable reads on an isolated follower', async () => {
    const c = await start3();
    const leader = await c.waitForLeader();
    const w = await c.run(leader.write(put('k', 'before'), { clientId: '', seq: 0, deadlineMs: c.deadline() }));
    const follower = [...c.nodes.values()].find((n) => n.id !== leader.id);
    if (follower === undefined) throw new Error('no follower');
    await c.tickUntil(() => follower.status().appliedIndex >= w.header.index, 10, 'follower applied');
    c.hub.isolate(follower.id, [...c.nodes.keys()]);
    await c.run(leader.write(put('k', 'after'), { clientId: '', seq: 0, deadlineMs: c.deadline() }));
    await c.ticks(30);
    const r = await follower.read(get('k'), { serializable: true, deadlineMs: c.deadline() });
    expect(r.result.kvs.map((kv) => dec(kv.value))).toEqual(['before']); // stale but served
    expect(r.header.memberId).toBe(follower.id);
    expect(r.header.index).toBe(follower.status().appliedIndex);
    await expect(follower.read(get('k'), { serializable: false, deadlineMs: c.deadline() })).rejects.toSatisfy(
      (e: unknown) => isRaftKvError(e, 'UNAVAILABLE') || isRaftKvError(e, 'NOT_LEADER'),
    );
  });

  it('a write proposed by a deposed leader and overwritten by the new leader is answered PROPOSAL_DROPPED', async () => {
    const c = await start3();
    const old = await c.waitForLeader();
    const others = [...c.nodes.keys()].filter((id) => id !== old.id);
    c.hub.isolate(old.id, others);
    const lost = old.write(put('lost', '1'), { clientId: '', seq: 0, deadlineMs: c.deadline(600_000) });
    lost.catch(() => undefined); // awaited below
    await c.settle();
    await c.tickUntil(() => others.some((id) => c.node(id).status().role === 'leader'), 80, 'majority elects');
    const next = c.leader();
    if (next === undefined || next.id === old.id) throw new Error('no new leader');
    const kept = await c.run(next.write(put('kept', '2'), { clientId: '', seq: 0, deadlineMs: c.deadline() }));
    c.hub.heal();
    await c.tickUntil(() => old.status().appliedIndex >= kept.header.index, 60, 'old leader catches up');
    await expect(lost).rejects.toSatisfy((e: unknown) => isRaftKvError(e, 'PROPOSAL_DROPPED'));
    const r = await old.read(get('lost'), { serializable: true, deadlineMs: c.deadline() });
    expect(r.result.kvs).toHaveLength(0);
  });

  it('a write whose deadline passes is answered DEADLINE_EXCEEDED', async () => {
    const c = await start3();
    const leader = await c.waitForLeader();
    c.hub.isolate(leader.id, [...c.nodes.keys()]);
    const p = leader.write(put('late', '1'), { clientId: '', seq: 0, deadlineMs: c.clock.now() + 3 * 100 });
    const settled = c.run(p, 5);
    await expect(settled).rejects.toSatisfy((e: unknown) => isRaftKvError(e, 'DEADLINE_EXCEEDED'));
    // A request whose deadline has already passed is not even queued.
    await expect(leader.read(get('x'), { serializable: false, deadlineMs: c.clock.now() })).rejects.toSatisfy((e: unknown) =>
      isRaftKvError(e, 'DEADLINE_EXCEEDED'),
    );
  });

  it('a restarted follower catches up from the log', async () => {
    const c = await start3();
    const leader = await c.waitForLeader();
    const follower = [...c.nodes.keys()].find((id) => id !== leader.id) ?? 0;
    await c.stopMember(follower);
    let last = 0;
    for (let i = 0; i < 20; i++) {
      last = (await c.run(leader.write(put(`k${i}`, `v${i}`), { clientId: '', seq: 0, deadlineMs: c.deadline() }))).header.index;
    }
    const back = await c.startMember(follower);
    await c.tickUntil(() => back.status().appliedIndex >= last, 30, 'restarted follower catches up');
    const r = await back.read(get('k19'), { serializable: true, deadlineMs: c.deadline() });
    expect(r.result.kvs.map((kv) => dec(kv.value))).toEqual(['v19']);
    expect(back.stats.snapshotsInstalled).toBe(0);
  });

  it('a far-behind follower catches up by snapshot after the leader compacted its log', async () => {
    cluster = await TestCluster.start(3, { snapshotEveryEntries: 10 });
    const c = cluster;
    onTestFailed(() => console.error(`seed: SEED=${c.seed}`));
    const leader = await c.waitForLeader();
    const follower = [...c.nodes.keys()].find((id) => id !== leader.id) ?? 0;
    await c.stopMember(follower);
    let last = 0;
    for (let i = 0; i < 45; i++) {
      last = (await c.run(leader.write(put(`k${i}`, `v${i}`), { clientId: '', seq: 0, deadlineMs: c.deadline() }))).header.index;
    }
    expect(leader.stats.snapshotsTaken).toBeGreaterThanOrEqual(3);
    expect(leader.status().snapshotIndex).toBeGreaterThan(10);
    const sentBefore = c.hub.stats.snapshotsSent;
    c.hub.failNextSnapshots = 1; // the first transfer breaks: the leader reports it and sends again later
    const back = await c.startMember(follower);
    await c.tickUntil(() => back.status().appliedIndex >= last, 60, 'snapshot catch-up');
    expect(c.hub.stats.snapshotsFailed).toBe(1);
    expect(c.hub.stats.snapshotsSent).toBeGreaterThan(sentBefore);
    expect(back.stats.snapshotsInstalled).toBe(1);
    for (const k of [0, 20, 44]) {
      const r = await back.read(get(`k${k}`), { serializable: true, deadlineMs: c.deadline() });
      expect(r.result.kvs.map((kv) => dec(kv.value))).toEqual([`v${k}`]);
    }
    // And it keeps following with ordinary appends.
    const w = await c.run(leader.write(put('after', 'snap'), { clientId: '', seq: 0, deadlineMs: c.deadline() }));
    await c.tickUntil(() => back.status().appliedIndex >= w.header.index, 10, 'follows after snapshot');
    // saveSnapshot() writes a fresh, verifiable snapshot file on demand.
    const path = await c.run(leader.saveSnapshot());
    const meta = await verifySnapshotFile(path);
    expect(meta.index).toBe(leader.status().appliedIndex);
    expect(meta.confState.voters).toEqual([1, 2, 3]);
    // It survives a restart after the install (the WAL and the state machine agree).
    await c.stopMember(follower);
    const again = await c.startMember(follower);
    expect(again.status().appliedIndex).toBeGreaterThanOrEqual(w.header.index);
  });
});
