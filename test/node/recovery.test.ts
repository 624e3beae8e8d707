// Restart recovery of the driver: the WAL and the state machine disagree after a crash, and the node
// reconciles them before the core starts.
import { cp, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, expect, it, onTestFailed } from 'vitest';
import { WalStorage } from '../../src/storage/wal-storage.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import { isRaftKvError } from '../../src/shared/errors.js';
import { checkDataDirIdentity } from '../../src/node/identity.js';
import { TestCluster, dec, get, put } from './harness.js';

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.destroy();
  cluster = undefined;
});

async function writeN(c: TestCluster, from: number, n: number): Promise<number> {
  const leader = await c.waitForLeader();
  let last = 0;
  for (let i = from; i < from + n; i++) {
    last = (await c.run(leader.write(put(`k${i}`, `v${i}`), { clientId: '', seq: 0, deadlineMs: c.deadline() }))).header.index;
  }
  return last;
}

async function expectKeys(c: TestCluster, id: number, keys: number[]): Promise<void> {
  for (const i of keys) {
    const r = await c.node(id).read(get(`k${i}`), { serializable: true, deadlineMs: c.deadline() });
    expect(r.result.kvs.map((kv) => dec(kv.value)), `k${i}`).toEqual([`v${i}`]);
  }
}

it('restarts when the durable commit index is below what the state machine applied', async () => {
  cluster = await TestCluster.start(1);
  const c = cluster;
  onTestFailed(() => console.error(`seed: SEED=${c.seed}`));
  const last = await writeN(c, 0, 5);
  await c.stopMember(1);
  // A crash before the commit-only hard state was synced: the WAL says commit 2, LevelDB says applied `last`.
  const wal = await WalStorage.open(join(c.dataDir(1), 'wal'));
  const hs = wal.initialState().hardState;
  expect(hs.commit).toBe(last);
  wal.setHardState({ ...hs, commit: 2 });
  await wal.sync();
  await wal.close();
  const n = await c.startMember(1);
  expect(n.status().appliedIndex).toBe(last);
  expect(n.status().commitIndex).toBeGreaterThanOrEqual(last);
  await expectKeys(c, 1, [0, 4]);
  const more = await writeN(c, 5, 1);
  expect(more).toBeGreaterThan(last);
});

it('restores the newest snapshot when the state machine lost writes the WAL already compacted away', async () => {
  cluster = await TestCluster.start(1, { snapshotEveryEntries: 10 });
  const c = cluster;
  onTestFailed(() => console.error(`seed: SEED=${c.seed}`));
  await writeN(c, 0, 3);
  await c.stopMember(1);
  const backup = join(c.baseDir, 'kv-backup');
  await cp(join(c.dataDir(1), 'kv'), backup, { recursive: true });
  await c.startMember(1);
  const last = await writeN(c, 3, 30);
  expect(c.node(1).status().snapshotIndex).toBeGreaterThan(10);
  await c.stopMember(1);
  // The state machine "loses" everything after the backup (as if its unsynced writes vanished).
  await rm(join(c.dataDir(1), 'kv'), { recursive: true, force: true });
  await cp(backup, join(c.dataDir(1), 'kv'), { recursive: true });
  const n = await c.startMember(1);
  await c.settle();
  expect(n.status().appliedIndex).toBe(last);
  await expectKeys(c, 1, [0, 2, 3, 15, 32]);
});

it('a driver loop that dies reports it once (onFatal) and answers UNAVAILABLE instead of hanging', async () => {
  cluster = await TestCluster.create(1);
  const c = cluster;
  c.fatalExpected = true;
  const cfg = c.config(1);
  await mkdir(cfg.dataDir, { recursive: true });
  await checkDataDirIdentity(cfg.dataDir, { nodeId: 1, clusterId: cfg.clusterId });
  const wal = await WalStorage.open(join(cfg.dataDir, 'wal'), { initialConfState: { voters: [1], learners: [] } });
  const real = await KvStateMachine.open(join(cfg.dataDir, 'kv'), { limits: cfg.kvLimits });
  let broken = false;
  const sm = new Proxy(real, {
    get(target, prop, receiver) {
      if (prop === 'apply' && broken) return () => Promise.reject(new Error('test: LevelDB I/O error'));
      const v: unknown = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  const node = await c.startMember(1, {}, { wal, stateMachine: sm });
  await c.waitForLeader();
  await c.run(node.write(put('a', '1'), { clientId: '', seq: 0, deadlineMs: c.deadline() }));
  broken = true;
  const w = node.write(put('b', '2'), { clientId: '', seq: 0, deadlineMs: c.deadline(600_000) });
  await expect(c.run(w)).rejects.toSatisfy((e: unknown) => isRaftKvError(e, 'UNAVAILABLE') && /LevelDB I\/O error/.test(e.message));
  expect(c.fatal.get(1)?.message).toMatch(/LevelDB I\/O error/);
  expect(node.fatalError).toBeDefined();
  await expect(node.write(put('c', '3'), { clientId: '', seq: 0, deadlineMs: c.deadline() })).rejects.toSatisfy((e: unknown) =>
    isRaftKvError(e, 'UNAVAILABLE'),
  );
});
