// A seeded nemesis over the real driver (in-process: real WAL + LevelDB, memory transport, manual clock):
// link cuts, heals, graceful restarts and time, under concurrent writes. Afterwards, healed: every
// acknowledged write is readable, nothing was applied twice (every key has version 1), and all members
// converge to the same state. A failure prints SEED=... to replay.
import { afterEach, expect, it, onTestFailed } from 'vitest';
import { seededRng } from '../../src/raft/rng.js';
import { prefixEnd } from '../../src/kv/types.js';
import type { RangeRequest } from '../../src/kv/types.js';
import { TestCluster, dec, enc, put } from './harness.js';

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.destroy();
  cluster = undefined;
});

const everything: RangeRequest = { key: enc('k'), end: prefixEnd(enc('k')), limit: 0, keysOnly: false, countOnly: false };

it('keeps every acknowledged write through partitions and restarts, and members converge', async () => {
  cluster = await TestCluster.start(3, { snapshotEveryEntries: 25 });
  const c = cluster;
  onTestFailed(() => console.error(`seed: SEED=${c.seed}`));
  const rng = seededRng(c.seed);
  const ids = [1, 2, 3];
  const acked = new Map<string, string>();
  const pending: Promise<unknown>[] = [];
  let seq = 0;
  const log: string[] = [];
  await c.waitForLeader();
  for (let round = 0; round < 40; round++) {
    const action = rng.int(6);
    switch (action) {
      case 0: {
        const a = ids[rng.int(3)] ?? 1;
        const b = ids.filter((x) => x !== a)[rng.int(2)] ?? 2;
        c.hub.cut(a, b);
        log.push(`cut ${a}-${b}`);
        break;
      }
      case 1:
        c.hub.heal();
        log.push('heal');
        break;
      case 2: {
        const id = ids[rng.int(3)] ?? 1;
        log.push(`restart ${id}`);
        await c.stopMember(id);
        await c.startMember(id);
        break;
      }
      default: {
        const leader = c.leader();
        if (leader === undefined) break;
        const n = 1 + rng.int(8);
        log.push(`write ${n} via ${leader.id}`);
        for (let i = 0; i < n; i++) {
          const key = `k${seq}`;
          const value = `v${seq}-r${round}`;
          seq++;
          const p = leader.write(put(key, value), { clientId: '', seq: 0, deadlineMs: c.deadline(2_000) }).then(
            () => acked.set(key, value),
            () => undefined, // unknown outcome: may or may not be applied
          );
          pending.push(p);
        }
      }
    }
    await c.ticks(1 + rng.int(12));
  }
  c.hub.heal();
  // Let every outstanding write finish (answer or deadline).
  let settled = false;
  void Promise.all(pending).then(() => (settled = true));
  await c.tickUntil(() => settled, 100, 'outstanding writes settle');
  const leader = await c.waitForLeader(300);
  const barrier = await c.run(leader.write(put('k-barrier', 'x'), { clientId: '', seq: 0, deadlineMs: c.deadline() }), 30);
  await c.tickUntil(() => [...c.nodes.values()].every((n) => n.status().appliedIndex >= barrier.header.index), 60, 'members converge');
  const lin = await c.run(leader.read(everything, { serializable: false, deadlineMs: c.deadline() }), 10);
  const state = new Map(lin.result.kvs.map((kv) => [dec(kv.key), kv]));
  for (const [k, v] of acked) expect(state.get(k) && dec(state.get(k)!.value), `acknowledged ${k}`).toBe(v);
  for (const kv of lin.result.kvs) expect(kv.version, `key ${dec(kv.key)} applied once`).toBe(1);
  const views = await Promise.all(
    [...c.nodes.values()].map(async (n) => {
      const r = await n.read(everything, { serializable: true, deadlineMs: c.deadline() });
      return r.result.kvs.map((kv) => `${dec(kv.key)}=${dec(kv.value)}@${kv.modRevision}`).join(',');
    }),
  );
  expect(new Set(views).size, 'identical state on every member').toBe(1);
  console.log(`nemesis seed ${c.seed}: ${seq} writes issued, ${acked.size} acknowledged, ${lin.result.kvs.length - 1} applied; ${log.filter((l) => l.startsWith('restart')).length} restarts, snapshots installed ${[...c.nodes.values()].map((n) => n.stats.snapshotsInstalled).join('/')}`);
});
