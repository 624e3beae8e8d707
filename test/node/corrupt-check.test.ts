// The periodic corruption check while a member runs (issue 10, case 3): the state machine is rescanned
// against the digest apply keeps every corruptCheckIntervalMs; damage found this way is the CORRUPT alarm:
// the member stops (the loop dies with DATA_CORRUPTION naming the store and the remedy) instead of serving
// absence. Also keySpaceDigest(): the same digest on every member at the same index.
import { join } from 'node:path';
import { afterEach, expect, it, onTestFailed } from 'vitest';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import { isRaftKvError } from '../../src/shared/errors.js';
import { WalStorage } from '../../src/storage/wal-storage.js';
import { TICK_MS, TestCluster, put } from './harness.js';

const CHECK_MS = 2_000;
let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.destroy();
  cluster = undefined;
});

it('a key lost from LevelDB while the member runs is found by the next periodic check, and the member stops', async () => {
  const c = await TestCluster.create(1, { corruptCheckIntervalMs: CHECK_MS });
  cluster = c;
  c.fatalExpected = true;
  onTestFailed(() => console.error(`seed: SEED=${c.seed}`));
  const dir = c.dataDir(1);
  // The member's stores opened here, so the test can reach under the state machine (as a failing disk would).
  await c.startMember(1); // bootstraps the directory
  await c.stopMember(1);
  const wal = await WalStorage.open(join(dir, 'wal'));
  const sm = await KvStateMachine.open(join(dir, 'kv'));
  const node = await c.startMember(1, {}, { wal, stateMachine: sm });
  await c.waitForLeader();
  for (let i = 0; i < 20; i++) await c.run(node.write(put(`k${i}`, `v${i}`), { clientId: '', seq: 0, deadlineMs: c.deadline() }));
  await sm.flush();
  // One check passes on a healthy store.
  await c.ticks(CHECK_MS / TICK_MS + 1);
  await sm.verifyKeySpace(); // the check's scan has finished (one at a time) and found nothing
  expect(c.fatal.size).toBe(0);
  const db = (sm as unknown as { db: { del(key: Uint8Array): Promise<void> } }).db;
  await db.del(Uint8Array.from(Buffer.from('dk7', 'latin1')));
  await c.tickUntil(() => c.fatal.has(1), CHECK_MS / TICK_MS + 5, 'the check raised CORRUPT');
  const err = c.fatal.get(1);
  expect(isRaftKvError(err, 'DATA_CORRUPTION'), String(err)).toBe(true);
  expect(err?.message).toMatch(/is damaged: at applied index \d+ its key space scans to [0-9a-f]{16}\/19 .* but apply recorded [0-9a-f]{16}\/20; remove this member/);
  await expect(node.write(put('after', 'x'), { clientId: '', seq: 0, deadlineMs: c.deadline() })).rejects.toMatchObject({ code: 'UNAVAILABLE' });
});

it('every member reports the same digest at the same index, and an index not yet applied is answered once it is', async () => {
  const c = await TestCluster.start(3);
  cluster = c;
  onTestFailed(() => console.error(`seed: SEED=${c.seed}`));
  const leader = await c.waitForLeader();
  let last = 0;
  for (let i = 0; i < 30; i++) last = (await c.run(leader.write(put(`k${i % 7}`, `v${i}`), { clientId: '', seq: 0, deadlineMs: c.deadline() }))).header.index;
  await c.ticks(3);
  const at = last - 10;
  const digests = await Promise.all([1, 2, 3].map((id) => c.node(id).keySpaceDigest(at, c.deadline())));
  expect(new Set(digests.map((d) => `${d.index}:${d.lane1}:${d.lane2}:${d.count}`)).size).toBe(1);
  expect(digests[0]?.count).toBe(7);
  // An index not yet applied is answered once it is.
  const ahead = c.node(leader.id).keySpaceDigest(last + 1, c.deadline());
  await c.run(leader.write(put('k0', 'later'), { clientId: '', seq: 0, deadlineMs: c.deadline() }));
  expect((await ahead).index).toBe(last + 1);
  await expect(c.run(c.node(leader.id).keySpaceDigest(last + 100, c.deadline(1_000)), 20)).rejects.toMatchObject({ code: 'DEADLINE_EXCEEDED' });
});
