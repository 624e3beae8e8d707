import { afterEach, describe, expect, it, onTestFailed } from 'vitest';
import { isRaftKvError } from '../../src/node/errors.js';
import { TestCluster, dec, get, put } from './harness.js';

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.destroy();
  cluster = undefined;
});

async function start3(): Promise<TestCluster> {
  cluster = await TestCluster.start(3);
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

  it('a follower answers NOT_LEADER with the leader id and client address', async () => {
    const c = await start3();
    const leader = await c.waitForLeader();
    const follower = [...c.nodes.values()].find((n) => n.id !== leader.id);
    expect(follower).toBeDefined();
    if (follower === undefined) return;
    for (const p of [
      follower.write(put('a', 'b'), { clientId: '', seq: 0, deadlineMs: c.deadline() }),
      follower.read(get('a'), { serializable: false, deadlineMs: c.deadline() }),
    ]) {
      await expect(p).rejects.toSatisfy(
        (e: unknown) =>
          isRaftKvError(e, 'NOT_LEADER') && e.leader?.leaderId === leader.id && e.leader.leaderAddress === `mem-client-${leader.id}:2`,
      );
    }
  });
});
