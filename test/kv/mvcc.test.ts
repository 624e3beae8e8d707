// The MVCC store's history on disk: the history key layout, compaction that really deletes (and resumes after a
// crash midway), snapshots that carry the history, and the refusal of a directory written before revisions.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import type { ApplyOutcome } from '../../src/kv/state-machine.js';
import { HISTORY_HI, HISTORY_LO, historyKey, parseHistoryKey } from '../../src/kv/history.js';
import { KEY_MVCC } from '../../src/kv/schema.js';
import type { Command, RangeRequest } from '../../src/kv/types.js';
import { compareBytes } from '../../src/kv/validate.js';
import { isRaftKvError } from '../../src/shared/errors.js';
import { ALL, LogBuilder, dec, del, enc, put, seedFromEnv, seededRng, tempDir } from './helpers.js';

const at = (revision: number, key = 'k'): RangeRequest => ({ key: enc(key), end: new Uint8Array(0), limit: 0, keysOnly: false, countOnly: false, revision });
const compact = (revision: number, physical = true): Command => ({ type: 'compact', revision, physical });

async function liveDb(kvDir: string): Promise<string> {
  return join(kvDir, (await readFile(join(kvDir, 'CURRENT'), 'utf8')).trim());
}

/** The history records in a closed store's LevelDB: user key -> main revisions, oldest first. */
async function historyOnDisk(kvDir: string): Promise<Map<string, number[]>> {
  const db = new ClassicLevel<Uint8Array, Uint8Array>(await liveDb(kvDir), { keyEncoding: 'view', valueEncoding: 'view' });
  const out = new Map<string, number[]>();
  try {
    for await (const k of db.keys({ gte: HISTORY_LO, lt: HISTORY_HI })) {
      const h = parseHistoryKey(k);
      out.set(dec(h.key), [...(out.get(dec(h.key)) ?? []), h.main]);
    }
  } finally {
    await db.close();
  }
  return out;
}

function errorCode(o: ApplyOutcome | undefined): string {
  if (o?.type !== 'error') throw new Error(`expected an error, got ${JSON.stringify(o)}`);
  return o.error.code;
}

describe('MVCC history', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let kvDir: string;
  let log: LogBuilder;
  beforeEach(async () => {
    dir = await tempDir('mvcc');
    kvDir = join(dir.path, 'kv');
    log = new LogBuilder();
  });
  afterEach(async () => {
    await dir.cleanup();
  });

  const seed = seedFromEnv();
  it(`history keys sort by user key, then revision, whatever bytes the keys hold (seed ${seed})`, () => {
    const rng = seededRng(seed);
    const rows: { key: Uint8Array; main: number; sub: number }[] = [];
    for (let i = 0; i < 300; i++) {
      const key = Uint8Array.from({ length: 1 + rng.int(4) }, () => [0, 1, 0xff, 0x61][rng.int(4)] ?? 0);
      rows.push({ key, main: [1, 2, 255, 256, 2 ** 32, 2 ** 40 + 3][rng.int(6)] ?? 1, sub: rng.int(3) });
    }
    const byLayout = [...rows].sort((a, b) => compareBytes(historyKey(a.key, a.main, a.sub), historyKey(b.key, b.main, b.sub)));
    const byMeaning = [...rows].sort((a, b) => compareBytes(a.key, b.key) || a.main - b.main || a.sub - b.sub);
    expect(byLayout, `seed ${seed}`).toEqual(byMeaning);
    for (const r of rows) expect(parseHistoryKey(historyKey(r.key, r.main, r.sub))).toEqual(r);
  });

  it('compaction keeps each key\'s newest revision at or below it (none for a deleted key), and reads obey it', async () => {
    let sm = await KvStateMachine.open(kvDir);
    for (let i = 0; i < 10; i++) log.cmd(put('k', `v${i}`)); // revisions 2..11
    log.cmd(put('gone', 'x')); // 12
    log.cmd(del('gone')); // 13: a tombstone
    log.cmd(put('k', 'after')); // 14
    await sm.apply(log.take());
    expect(sm.revision).toBe(14);
    expect(dec((await sm.range(at(5))).kvs[0]?.value ?? enc('-'))).toBe('v3');
    log.cmd(compact(13));
    log.cmd(compact(13)); // again: ErrCompacted
    log.cmd(compact(15)); // beyond the current revision: ErrFutureRev
    const out = await sm.apply(log.take());
    expect(out[0]).toEqual({ type: 'result', result: { type: 'compact', revision: 14 } });
    expect([errorCode(out[1]), errorCode(out[2])]).toEqual(['COMPACTED', 'FUTURE_REV']);
    await expect(sm.range(at(12))).rejects.toSatisfy((e) => isRaftKvError(e, 'COMPACTED') && (e as Error).message === 'etcdserver: mvcc: required revision has been compacted');
    await expect(sm.range(at(15))).rejects.toSatisfy((e) => isRaftKvError(e, 'FUTURE_REV'));
    expect(dec((await sm.range(at(13))).kvs[0]?.value ?? enc('-'))).toBe('v9'); // the compaction revision itself reads
    expect((await sm.range(at(13, 'gone'))).count).toBe(0);
    await sm.whenCompacted(13);
    await sm.close();
    // 'gone' keeps only its tombstone at the compaction revision itself: a watch may start there and must see it.
    expect(await historyOnDisk(kvDir)).toEqual(new Map([['gone', [13]], ['k', [11, 14]]]));
    sm = await KvStateMachine.open(kvDir);
    expect([sm.revision, sm.compactedRevision]).toEqual([14, 13]);
    expect(dec((await sm.range(at(13))).kvs[0]?.value ?? enc('-'))).toBe('v9');
    expect((await sm.historyEvents({ key: enc('gone'), end: new Uint8Array(0) }, 13, 14, 10)).events.map((e) => [e.type, e.kv.modRevision])).toEqual([['delete', 13]]);
    log.cmd(compact(14)); // the next compaction takes the tombstone too
    await sm.apply(log.take());
    await sm.whenCompacted(14);
    await sm.close();
    expect(await historyOnDisk(kvDir)).toEqual(new Map([['k', [14]]])); // 'gone' left no record at all
    sm = await KvStateMachine.open(kvDir);
    await sm.close();
  });

  it('a compaction stopped midway (a crash) resumes at the next open and finishes', async () => {
    let failAt = 3;
    let crashed = (): void => undefined;
    const crash = new Promise<void>((resolve) => {
      crashed = resolve;
    });
    let sm = await KvStateMachine.open(kvDir, {
      failpoint: (p) => {
        if (p !== 'compaction-batch' || --failAt !== 0) return;
        crashed();
        throw new Error('crash in the middle of a compaction');
      },
    });
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 1000; i++) log.cmd(put(`k${i % 500}`, `r${round}`));
      await sm.apply(log.take()); // 10 revisions per key: 5,000 history records
    }
    log.cmd(compact(sm.revision));
    await sm.apply(log.take());
    await crash; // two batches of deletions are in the write buffer, the third never comes
    let waited = false;
    void sm.whenCompacted(sm.revision).then(() => {
      waited = true;
    });
    await sm.close();
    expect(waited).toBe(false);
    const partial = await historyOnDisk(kvDir);
    const records = [...partial.values()].reduce((n, revs) => n + revs.length, 0);
    expect(records).toBeGreaterThan(500); // stopped after two of its batches of deletions
    expect(records).toBeLessThan(5000);
    sm = await KvStateMachine.open(kvDir);
    await sm.whenCompacted(sm.compactedRevision);
    expect((await sm.range({ ...ALL, limit: 0, keysOnly: false, countOnly: true })).count).toBe(500);
    await sm.close();
    const after = await historyOnDisk(kvDir);
    expect([...after.values()].every((revs) => revs.length === 1)).toBe(true);
    expect(after.size).toBe(500);
  });

  it('after a compaction and a defragment the store holds the space of what is left, and every live key', async () => {
    const sm = await KvStateMachine.open(kvDir);
    try {
      const value = 'v'.repeat(1024);
      for (let round = 0; round < 10; round++) {
        for (let i = 0; i < 500; i++) log.cmd(put(`k${i}`, `${round}${value}`));
        await sm.apply(log.take()); // 5,000 revisions of 1 KiB
      }
      log.cmd(compact(sm.revision));
      await sm.apply(log.take());
      await sm.whenCompacted(sm.compactedRevision);
      await sm.defragment();
      // Before: ~5 MiB of history. What is left: ~2 x 500 KiB (the live values and their one history record each).
      // (LevelDB also compacts on its own: this does not tell defragment's share from the background's.)
      expect(await sm.dataSizeBytes()).toBeLessThan(3 * 1024 * 1024);
      expect((await sm.range({ ...ALL, limit: 0, keysOnly: false, countOnly: true })).count).toBe(500);
    } finally {
      await sm.close();
    }
  });

  it('a snapshot carries the history and the compaction state; a restore reads past revisions', async () => {
    const a = await KvStateMachine.open(join(dir.path, 'a'));
    const b = await KvStateMachine.open(join(dir.path, 'b'));
    try {
      for (let i = 0; i < 6; i++) log.cmd(put('k', `v${i}`)); // 2..7
      log.cmd(compact(4));
      await a.apply(log.take());
      const snap = await a.createSnapshot(join(dir.path, 'snaps'), 2);
      await b.restoreSnapshot(snap.path);
      expect([b.revision, b.compactedRevision]).toEqual([7, 4]);
      expect(dec((await b.range(at(5))).kvs[0]?.value ?? enc('-'))).toBe('v3');
      await expect(b.range(at(3))).rejects.toSatisfy((e) => isRaftKvError(e, 'COMPACTED'));
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('refuses, by name, a directory written before revisions', async () => {
    const sm = await KvStateMachine.open(kvDir);
    log.cmd(put('k', 'v'));
    await sm.apply(log.take());
    await sm.close();
    const db = new ClassicLevel<Uint8Array, Uint8Array>(await liveDb(kvDir), { keyEncoding: 'view', valueEncoding: 'view' });
    await db.del(KEY_MVCC); // what a directory of the earlier format lacks
    await db.close();
    await expect(KvStateMachine.open(kvDir)).rejects.toSatisfy(
      (e) => isRaftKvError(e, 'FAILED_PRECONDITION') && /before MVCC revisions/.test((e as Error).message),
    );
  });
});
