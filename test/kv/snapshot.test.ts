import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { copyFile, readdir, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KvStateMachine, latestSnapshot, verifySnapshotFile } from '../../src/kv/state-machine.js';
import type { KvFailPoint, KvStateMachineOptions } from '../../src/kv/state-machine.js';
import type { Entry } from '../../src/raft/types.js';
import { isRaftKvError } from '../../src/shared/errors.js';
import { LogBuilder, dumpState, enc, put, seedFromEnv, seededRng, tempDir, txn } from './helpers.js';

const opts: KvStateMachineOptions = { limits: { maxKeyBytes: 64, maxValueBytes: 4096, maxTxnOps: 8, maxResponseBytes: 1024 * 1024 } };

/** A deterministic workload: puts over a key space, some deletes, sessions, and conf changes. */
function workload(log: LogBuilder, n: number, seed: number): Entry[] {
  const rng = seededRng(seed);
  if (log.lastIndex === 0) {
    log.conf('add-voter', 1, '127.0.0.1:7001', '127.0.0.1:8001');
    log.conf('add-learner', 2, '127.0.0.1:7002', '127.0.0.1:8002');
  }
  for (let i = 0; i < n; i++) {
    const k = `key/${String(rng.int(5000)).padStart(5, '0')}`;
    const r = rng.int(20);
    if (r === 0) log.cmd({ type: 'delete', range: { key: enc(k), end: enc('') }, prevKv: false });
    else if (r === 1) log.cmd(txn([{ key: enc(k), target: 'version', op: '>', number: 1 }], [{ type: 'put', key: enc(k), value: enc('hot'), prevKv: false }]));
    else log.cmd(put(k, `v${log.lastIndex + 1}-${'x'.repeat(rng.int(200))}`), `client-${rng.int(30)}`, log.lastIndex + 1);
  }
  return log.take();
}

function expectCorruption(err: unknown): void {
  expect(isRaftKvError(err, 'DATA_CORRUPTION'), String(err)).toBe(true);
}

describe('KvStateMachine snapshots', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  const seed = seedFromEnv();
  beforeEach(async () => {
    dir = await tempDir('snap');
  });
  afterEach(async () => {
    await dir.cleanup();
  });
  const p = (...parts: string[]): string => join(dir.path, ...parts);

  it(`a snapshot taken while writes go on restores into a state equal to a replay up to its index (seed ${seed})`, async () => {
    const log = new LogBuilder();
    const entries = workload(log, 12_000, seed);
    const sm = await KvStateMachine.open(p('a'), opts);
    const replica = await KvStateMachine.open(p('b'), opts);
    const reference = await KvStateMachine.open(p('ref'), opts);
    try {
      await sm.apply(entries.slice(0, 10_000));
      const snap = sm.createSnapshot(p('snaps'), 3);
      let snapshotDone = false;
      void snap.then(() => {
        snapshotDone = true;
      });
      let appliedDuring = 0;
      for (let i = 10_000; i < entries.length; i += 100) {
        await sm.apply(entries.slice(i, i + 100));
        if (!snapshotDone) appliedDuring++;
      }
      const { path, metadata } = await snap;
      expect(appliedDuring, 'writes went on while the snapshot streamed').toBeGreaterThan(0);
      expect(metadata.index).toBe(10_000);
      expect(metadata.confState).toEqual({ voters: [1], learners: [2] });
      expect(await verifySnapshotFile(path)).toEqual(metadata);

      expect(await replica.restoreSnapshot(path)).toEqual(metadata);
      await reference.apply(entries.slice(0, 10_000));
      expect([replica.appliedIndex, replica.appliedTerm]).toEqual([10_000, 1]);
      expect(replica.members()).toEqual(reference.members());
      expect(await dumpState(replica, p('dump-b')), `seed ${seed}`).toEqual(await dumpState(reference, p('dump-ref')));

      // Both go on identically after the restore, session deduplication included.
      const rest = entries.slice(10_000);
      const outA = await replica.apply(rest);
      const outB = await reference.apply(rest);
      expect(outA).toEqual(outB);
      expect(await dumpState(replica, p('dump-b')), `seed ${seed}`).toEqual(await dumpState(sm, p('dump-a')));
      // And the restore survives a reopen.
      await replica.close();
      const reopened = await KvStateMachine.open(p('b'), opts);
      expect(reopened.appliedIndex).toBe(entries.length);
      expect(await dumpState(reopened, p('dump-b2'))).toEqual(await dumpState(sm, p('dump-a')));
      await reopened.close();
      expect((await readdir(p('b'))).sort()).toEqual(['CURRENT', 'db-2']);
    } finally {
      await sm.close();
      await replica.close();
      await reference.close();
    }
  });

  it(`refuses corrupt snapshots: every bit flip and truncation tried (seed ${seed})`, async () => {
    const rng = seededRng(seed);
    const log = new LogBuilder();
    const sm = await KvStateMachine.open(p('a'), opts);
    const target = await KvStateMachine.open(p('t'), opts);
    try {
      await sm.apply(workload(log, 300, seed));
      const { path } = await sm.createSnapshot(p('snaps'), 1);
      const good = await readFile(path);
      await target.apply(workload(new LogBuilder(), 20, seed + 1));
      const before = await dumpState(target, p('dump-t'));
      const bad = p('bad.snap');
      for (let i = 0; i < 40; i++) {
        const copy = Buffer.from(good);
        const bit = rng.int(copy.length * 8);
        copy[bit >> 3] = (copy[bit >> 3] ?? 0) ^ (1 << (bit & 7));
        await writeFile(bad, copy);
        await verifySnapshotFile(bad).then(
          () => expect.fail(`seed ${seed}: bit flip at bit ${bit} accepted`),
          expectCorruption,
        );
      }
      for (const len of [0, 10, 16, 40, ...Array.from({ length: 20 }, () => rng.int(good.length)), good.length - 1]) {
        await writeFile(bad, good.subarray(0, len));
        await verifySnapshotFile(bad).then(() => expect.fail(`seed ${seed}: truncation to ${len} accepted`), expectCorruption);
      }
      await writeFile(bad, Buffer.concat([good, Buffer.of(0)]));
      await verifySnapshotFile(bad).then(() => expect.fail('an appended byte was accepted'), expectCorruption);
      // A refused restore leaves the state machine as it was, with no leftover directory.
      const flipped = Buffer.from(good);
      flipped[Math.floor(good.length / 2)] = (flipped[Math.floor(good.length / 2)] ?? 0) ^ 0x40;
      await writeFile(bad, flipped);
      await target.restoreSnapshot(bad).then(() => expect.fail('corrupt restore accepted'), expectCorruption);
      expect(await dumpState(target, p('dump-t'))).toEqual(before);
      expect((await readdir(p('t'))).sort()).toEqual(['CURRENT', 'db-1']);
    } finally {
      await sm.close();
      await target.close();
    }
  });

  it('a crash between write and rename leaves the previous snapshot the latest valid one', async () => {
    const log = new LogBuilder();
    let crash = false;
    const sm = await KvStateMachine.open(p('a'), {
      ...opts,
      failpoint: (point: KvFailPoint) => {
        if (crash && point === 'snapshot-before-rename') throw new Error(`failpoint ${point}`);
      },
    });
    try {
      await sm.apply(workload(log, 200, seed));
      const first = await sm.createSnapshot(p('snaps'), 2);
      await sm.apply(workload(log, 200, seed + 1));
      crash = true;
      await expect(sm.createSnapshot(p('snaps'), 2)).rejects.toThrow(/failpoint/);
      const names = (await readdir(p('snaps'))).sort();
      expect(names).toHaveLength(2);
      expect(names[1]).toMatch(/\.snap\.tmp$/);
      // The complete but unrenamed file is never taken for a snapshot.
      expect(await latestSnapshot(p('snaps'))).toEqual({ path: first.path, metadata: first.metadata });
      crash = false;
      const second = await sm.createSnapshot(p('snaps'), 2);
      expect(second.metadata.index).toBe(402);
      expect((await readdir(p('snaps'))).filter((n) => n.endsWith('.tmp'))).toEqual([]);
      expect(await sm.latestSnapshot(p('snaps'))).toEqual(second);
    } finally {
      await sm.close();
    }
  });

  it('keeps the newest `keep` snapshots; latestSnapshot skips a corrupt newest one', async () => {
    const log = new LogBuilder();
    const sm = await KvStateMachine.open(p('a'), opts);
    try {
      const made = [];
      for (let i = 0; i < 4; i++) {
        await sm.apply(workload(log, 50, seed + i));
        made.push(await sm.createSnapshot(p('snaps'), 2));
      }
      const names = (await readdir(p('snaps'))).sort();
      expect(names.map((n) => join(p('snaps'), n))).toEqual([made[2]?.path, made[3]?.path]);
      const newest = made[3]?.path ?? '';
      await truncate(newest, (await stat(newest)).size - 5);
      expect(await latestSnapshot(p('snaps'))).toEqual(made[2]);
      expect(await latestSnapshot(p('nothing-here'))).toBeUndefined();
    } finally {
      await sm.close();
    }
  });

  it('restore is atomic: a crash before the CURRENT swap keeps the old state, after it the new one', async () => {
    const log = new LogBuilder();
    const source = await KvStateMachine.open(p('src'), opts);
    await source.apply(workload(log, 500, seed));
    const { path, metadata } = await source.createSnapshot(p('snaps'), 1);
    const expected = await dumpState(source, p('dump-src'));
    await source.close();

    for (const point of ['restore-before-swap', 'restore-after-swap'] as const) {
      const target = p(`t-${point}`);
      const old = await KvStateMachine.open(target, opts);
      await old.apply(workload(new LogBuilder(), 30, seed + 7));
      const oldState = await dumpState(old, p('dump-old'));
      await old.close();
      const sm = await KvStateMachine.open(target, {
        ...opts,
        failpoint: (at) => {
          if (at === point) throw new Error(`failpoint ${at}`);
        },
      });
      await expect(sm.restoreSnapshot(path)).rejects.toThrow(/failpoint/);
      await sm.close(); // the "crash": the process stops here, files as they are
      expect((await readdir(target)).sort()).toEqual(['CURRENT', 'db-1', 'db-2']);
      const reopened = await KvStateMachine.open(target, opts);
      try {
        if (point === 'restore-before-swap') {
          expect(reopened.appliedIndex).toBe(32);
          expect(await dumpState(reopened, p('dump-r'))).toEqual(oldState);
          expect((await readdir(target)).sort()).toEqual(['CURRENT', 'db-1']);
        } else {
          expect(reopened.appliedIndex).toBe(metadata.index);
          expect(await dumpState(reopened, p('dump-r'))).toEqual(expected);
          expect((await readdir(target)).sort()).toEqual(['CURRENT', 'db-2']);
        }
      } finally {
        await reopened.close();
      }
    }
  });

  it('reads running during a restore and a close see the old or the new state, never a closed store', async () => {
    const source = await KvStateMachine.open(p('src'), opts);
    const sm = await KvStateMachine.open(p('a'), opts);
    try {
      await source.apply(workload(new LogBuilder(), 3000, seed));
      const { path, metadata } = await source.createSnapshot(p('snaps'), 1);
      await sm.apply(workload(new LogBuilder(), 10, seed + 3));
      const req = { key: Uint8Array.of(0), end: Uint8Array.of(0), limit: 1, keysOnly: true, countOnly: false };
      const counts = new Set<number>();
      let done = false;
      const restoring = sm.restoreSnapshot(path).finally(() => {
        done = true;
      });
      let reads = 0;
      while (!done) {
        // Several reads in flight at once, as a driver serving serializable reads would have.
        const batch = await Promise.all([sm.range(req), sm.range(req), sm.range(req)]);
        for (const r of batch) counts.add(r.count);
        reads += batch.length;
      }
      expect(await restoring).toEqual(metadata);
      expect(reads).toBeGreaterThan(0);
      const final = (await sm.range(req)).count;
      expect([...counts].every((c) => c === final || c <= 10), `counts seen ${[...counts].join(',')}`).toBe(true);
      // Settled handlers attached before close: a read may fail (UNAVAILABLE) while close is still running.
      const racing = Promise.allSettled([sm.range(req), sm.range(req)]);
      await sm.close();
      const settled = await racing;
      for (const r of settled) {
        if (r.status === 'rejected') expect(isRaftKvError(r.reason, 'UNAVAILABLE'), String(r.reason)).toBe(true);
      }
    } finally {
      await source.close();
      await sm.close();
    }
  });

  it('refuses to restore a snapshot older than the applied index', async () => {
    const log = new LogBuilder();
    const sm = await KvStateMachine.open(p('a'), opts);
    try {
      await sm.apply(workload(log, 20, seed));
      const { path } = await sm.createSnapshot(p('snaps'), 1);
      await copyFile(path, p('old.snap'));
      await sm.apply(workload(log, 5, seed));
      await expect(sm.restoreSnapshot(p('old.snap'))).rejects.toSatisfy((e) => isRaftKvError(e, 'FAILED_PRECONDITION'));
      expect(sm.appliedIndex).toBe(27);
    } finally {
      await sm.close();
    }
  });
});
