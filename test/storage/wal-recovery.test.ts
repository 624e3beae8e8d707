// Recovery of the WAL: round trips, torn tails, bit flips, lost/truncated/reordered segments, conflicting
// suffixes across restarts, ENOSPC, leftover temporary files, and group commit.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isRaftKvError } from '../../src/shared/errors.js';
import { readFrame } from '../../src/storage/wal-codec.js';
import { WalStorage } from '../../src/storage/wal-storage.js';
import type { WalOptions } from '../../src/storage/wal-storage.js';
import { FaultFs } from './fault-fs.js';
import { dirContents, entries, entry, plain, removeDir, seededRng, tempDirs, testSeed, walFiles, openWalFailure } from './helpers.js';

const { newDir, copyDir, cleanup } = tempDirs('wal-rec');
afterAll(cleanup);

interface LogLine {
  level: string;
  msg: string;
  fields: object | undefined;
}
function capture(): { logs: LogLine[]; logger: NonNullable<WalOptions['logger']> } {
  const logs: LogLine[] = [];
  return { logs, logger: (level, msg, fields) => logs.push({ level, msg, fields }) };
}

/** Offsets of the records in a segment file. */
function recordOffsets(file: string): number[] {
  const buf = fs.readFileSync(file);
  const out: number[] = [];
  let o = 0;
  while (o < buf.length) {
    const fr = readFrame(buf, o);
    if (!fr.ok) throw new Error(`${file} at ${o}: ${fr.reason}`);
    out.push(o);
    o = fr.nextOffset;
  }
  return out;
}

/** Offsets of the records in a segment file, up to the zeros after the last one (a preallocated file). */
function recordOffsetsUntilZeros(file: string): number[] {
  const buf = fs.readFileSync(file);
  const out: number[] = [];
  let o = 0;
  while (o < buf.length && buf.readUInt32LE(o) !== 0) {
    const fr = readFrame(buf, o);
    if (!fr.ok) throw new Error(`${file} at ${o}: ${fr.reason}`);
    out.push(o);
    o = fr.nextOffset;
  }
  out.push(o); // where the next record goes
  return out;
}

/** A WAL of entries 1..n (term = 1 + index/50, 32-byte payloads), synced every `syncEvery`. */
async function buildWal(dir: string, n: number, segmentSizeBytes: number, syncEvery = 5): Promise<void> {
  const w = await WalStorage.bootstrap(dir, { voters: [1, 2, 3], learners: [] }, { segmentSizeBytes });
  for (let i = 1; i <= n; i++) {
    w.append([entry(i, 1 + Math.floor(i / 50), 32)]);
    if (i % syncEvery === 0) {
      w.setHardState({ term: 1 + Math.floor(i / 50), vote: 2, commit: i - 1 });
      await w.sync();
    }
  }
  await w.close();
}

function expectedEntries(from: number, to: number): ReturnType<typeof plain> {
  const out = [];
  for (let i = from; i <= to; i++) out.push(entry(i, 1 + Math.floor(i / 50), 32));
  return plain(out);
}

async function expectCorruption(dir: string, file: string, offset: number | undefined, what?: RegExp, context = ''): Promise<void> {
  const before = dirContents(dir);
  const caught = await openWalFailure(dir);
  expect(isRaftKvError(caught, 'DATA_CORRUPTION'), `${context} expected DATA_CORRUPTION, got ${String(caught)}`).toBe(true);
  const msg = caught instanceof Error ? caught.message : '';
  expect(msg, context).toContain(`${path.join(dir, file)} at offset ${offset ?? ''}`);
  if (what !== undefined) expect(msg).toMatch(what);
  expect(dirContents(dir), `${context} corruption must not change any file`).toEqual(before);
}

describe('WAL recovery', () => {
  it('round-trips entries, hard state and snapshots across many segments, deleting segments below the snapshot', async () => {
    const dir = newDir();
    await buildWal(dir, 400, 2048);
    let w = await WalStorage.open(dir, { segmentSizeBytes: 2048 });
    expect(w.isNew()).toBe(false);
    expect(w.lastIndex()).toBe(400);
    expect(w.initialState()).toEqual({ hardState: { term: 9, vote: 2, commit: 399 }, confState: { voters: [1, 2, 3], learners: [] } });
    expect(plain(w.entries(1, 401, Infinity))).toEqual(expectedEntries(1, 400));
    const segmentsBefore = w.stats().segments;
    expect(segmentsBefore).toBeGreaterThan(5);
    await w.compact({ metadata: { index: 300, term: w.term(300), confState: { voters: [1, 2], learners: [3] } } });
    const after = w.stats();
    expect(after.segments).toBeLessThan(segmentsBefore);
    expect(walFiles(dir)).toEqual(w.segmentFiles());
    await w.close();
    w = await WalStorage.open(dir, { segmentSizeBytes: 2048 });
    expect(w.firstIndex()).toBe(301);
    expect(w.lastIndex()).toBe(400);
    expect(w.snapshot().metadata).toEqual({ index: 300, term: 7, confState: { voters: [1, 2], learners: [3] } });
    expect(plain(w.entries(301, 401, Infinity))).toEqual(expectedEntries(301, 400));
    expect(w.stats()).toEqual(after);
    await w.close();
  });

  it('bounds segments by segmentSizeBytes even when one sync covers many records; a larger record goes alone', async () => {
    const dir = newDir();
    const w = await WalStorage.bootstrap(dir, { voters: [1], learners: [] }, { segmentSizeBytes: 1024 });
    w.append(entries(1, 100, 1, 40));
    w.append([entry(101, 1, 3000)]);
    w.append(entries(102, 110, 1, 40));
    await w.sync();
    const sizes = walFiles(dir).map((n) => fs.statSync(path.join(dir, n)).size);
    expect(sizes.length).toBeGreaterThan(7);
    expect(sizes.filter((b) => b > 1024)).toHaveLength(1); // the one holding only the 3000-byte entry
    await w.close();
    const again = await WalStorage.open(dir);
    expect(plain(again.entries(1, 111, Infinity))).toEqual(plain([...entries(1, 100, 1, 40), entry(101, 1, 3000), ...entries(102, 110, 1, 40)]));
    await again.close();
  });

  it('preallocates the segment being written; a crash leaves zeros after the last record: the log ends there, silently', async () => {
    const dir = newDir();
    const segmentSizeBytes = 64 * 1024;
    const w = await WalStorage.bootstrap(dir, { voters: [1, 2, 3], learners: [] }, { segmentSizeBytes });
    for (let i = 1; i <= 1000; i++) {
      w.append([entry(i, 1, 200)]);
      if (i % 10 === 0) await w.sync();
    }
    const files = walFiles(dir);
    expect(files.length).toBeGreaterThan(2);
    const sizes = files.map((f) => fs.statSync(path.join(dir, f)).size);
    const lastFile = files[files.length - 1] ?? '';
    // Cut segments were trimmed to their records; the open one is preallocated.
    for (const f of files.slice(0, -1)) expect(() => recordOffsets(path.join(dir, f)), f).not.toThrow();
    expect(sizes[sizes.length - 1]).toBe(segmentSizeBytes);
    // A crash now: the files as they are, zeros and all.
    const crashed = copyDir(dir);
    const { logs, logger } = capture();
    const r = await WalStorage.open(crashed, { logger, segmentSizeBytes });
    expect(logs.filter((l) => l.level === 'warn')).toEqual([]);
    expect(r.lastIndex()).toBe(1000);
    // Writing resumes right after the last record, in the preallocated file.
    const before = recordOffsetsUntilZeros(path.join(crashed, lastFile));
    r.append([entry(1001, 2, 200)]);
    await r.sync();
    expect(fs.statSync(path.join(crashed, lastFile)).size).toBe(segmentSizeBytes);
    const after = recordOffsetsUntilZeros(path.join(crashed, lastFile));
    expect(after.slice(0, before.length)).toEqual(before);
    expect(after.length).toBe(before.length + 1);
    await r.close();
    // A clean close trims the zeros.
    expect(() => recordOffsets(path.join(crashed, lastFile))).not.toThrow();
    const again = await WalStorage.open(crashed);
    expect(plain(again.entries(again.firstIndex(), 1002, Infinity))).toEqual(plain([...entries(again.firstIndex(), 1000, 1, 200), entry(1001, 2, 200)]));
    await again.close();
    await w.close();
  });

  it('a torn record before the preallocated zeros is a torn tail; zeros after a record of an older segment are corruption', async () => {
    const dir = newDir();
    const w = await WalStorage.bootstrap(dir, { voters: [1, 2, 3], learners: [] }, { segmentSizeBytes: 8 * 1024 * 1024 });
    w.append(entries(1, 20, 1, 100));
    await w.sync();
    const [seg] = walFiles(dir);
    if (seg === undefined) throw new Error('no segment');
    const crashed = copyDir(dir);
    await w.close();
    const f = path.join(crashed, seg);
    const offsets = recordOffsetsUntilZeros(f);
    const last = offsets[offsets.length - 1] ?? 0;
    const buf = fs.readFileSync(f);
    expect(buf.length).toBe(8 * 1024 * 1024);
    buf.fill(0, last - 40, last); // the last record's end never reached the disk
    fs.writeFileSync(f, buf);
    const { logs, logger } = capture();
    const r = await WalStorage.open(crashed, { logger });
    expect(r.lastIndex()).toBe(19);
    expect(logs.some((l) => l.level === 'warn' && l.msg.includes('torn'))).toBe(true);
    await r.close();
    // Zeros after the records of a segment that is not the last: never written by the WAL, so corruption.
    const multi = newDir();
    await buildWal(multi, 120, 2048);
    const files = walFiles(multi);
    const first = files[0];
    if (first === undefined || files.length < 3) throw new Error('expected several segments');
    fs.appendFileSync(path.join(multi, first), Buffer.alloc(4096));
    await expectCorruption(multi, first, undefined, /length 0|record header/);
  });

  it('truncates a torn tail at every byte offset of the last record, and reports it', async () => {
    const dir = newDir();
    await buildWal(dir, 20, 1 << 20);
    const [seg] = walFiles(dir);
    if (seg === undefined) throw new Error('no segment');
    const file = path.join(dir, seg);
    const offsets = recordOffsets(file);
    const lastStart = offsets[offsets.length - 1] ?? 0;
    // The last record is the hard state after entry 20; the one before it is entry 20.
    const size = fs.statSync(file).size;
    for (let cut = lastStart - 1; cut < size; cut++) {
      const d = copyDir(dir);
      fs.truncateSync(path.join(d, seg), cut);
      const { logs, logger } = capture();
      const w = await WalStorage.open(d, { logger });
      const tornAt = cut < lastStart ? offsets[offsets.length - 2] : lastStart;
      expect(w.lastIndex(), `cut at ${cut}`).toBe(cut < lastStart ? 19 : 20);
      expect(plain(w.entries(1, w.lastIndex() + 1, Infinity))).toEqual(expectedEntries(1, w.lastIndex()));
      const warn = logs.find((l) => l.level === 'warn');
      if (cut === lastStart) expect(warn, `cut at ${cut}`).toBeUndefined();
      else expect(warn?.fields, `cut at ${cut}`).toMatchObject({ file: path.join(d, seg), offset: tornAt });
      // Appending after the truncated tail works, and survives another restart.
      w.append([entry(w.lastIndex() + 1, 1, 32)]);
      await w.sync();
      await w.close();
      const again = await WalStorage.open(d, { logger });
      expect(again.lastIndex()).toBe(cut < lastStart ? 20 : 21);
      await again.close();
      removeDir(d);
    }
  });

  it('treats a bad last record followed by zeros or garbage to EOF as a torn tail', async () => {
    const seed = testSeed();
    const rng = seededRng(seed);
    const dir = newDir();
    await buildWal(dir, 20, 1 << 20);
    const [seg] = walFiles(dir);
    if (seg === undefined) throw new Error('no segment');
    const offsets = recordOffsets(path.join(dir, seg));
    const last = offsets[offsets.length - 1] ?? 0;
    for (const tail of ['zeros', 'garbage', 'flip'] as const) {
      const d = copyDir(dir);
      const f = path.join(d, seg);
      const buf = fs.readFileSync(f);
      if (tail === 'flip') {
        buf[buf.length - 1] = (buf[buf.length - 1] ?? 0) ^ 0x10; // bad checksum on the very last record
        fs.writeFileSync(f, buf);
      } else {
        const junk = Buffer.alloc(3000);
        if (tail === 'garbage') for (let i = 0; i < junk.length; i++) junk[i] = rng.int(256);
        buf.fill(0xee, last + 12); // the last record's payload overwritten ...
        fs.writeFileSync(f, Buffer.concat([buf, junk])); // ... and junk after it
      }
      const { logs, logger } = capture();
      const w = await WalStorage.open(d, { logger });
      expect(w.lastIndex(), `${tail}, seed ${seed}`).toBe(20);
      expect(logs.some((l) => l.level === 'warn' && l.msg.includes('torn')), `${tail}, seed ${seed}`).toBe(true);
      expect(fs.statSync(f).size).toBe(last);
      await w.close();
    }
  });

  it('reports a flipped bit in any field of a record before the tail as corruption, naming file and offset', async () => {
    const dir = newDir();
    await buildWal(dir, 120, 2048);
    const files = walFiles(dir);
    expect(files.length).toBeGreaterThan(2);
    for (const seg of [files[0], files[files.length - 1]]) {
      if (seg === undefined) continue;
      const offsets = recordOffsets(path.join(dir, seg));
      const mid = offsets[Math.floor(offsets.length / 2)] ?? 0;
      const fields: Record<string, number[]> = {
        length: [mid, mid + 1, mid + 3],
        crc: [mid + 4, mid + 7],
        type: [mid + 8],
        payload: [mid + 9, mid + 20],
      };
      for (const [field, positions] of Object.entries(fields)) {
        for (const pos of positions) {
          for (const bit of [0, 7]) {
            const d = copyDir(dir);
            const f = path.join(d, seg);
            const buf = fs.readFileSync(f);
            buf[pos] = (buf[pos] ?? 0) ^ (1 << bit);
            fs.writeFileSync(f, buf);
            await expectCorruption(d, seg, mid);
            removeDir(d);
            void field;
          }
        }
      }
    }
  });

  it('fuzz: any single flipped bit is corruption at its record, or a torn tail if in the very last record', async () => {
    const seed = testSeed();
    const rng = seededRng(seed);
    const dir = newDir();
    await buildWal(dir, 100, 1500);
    const files = walFiles(dir);
    for (let iter = 0; iter < 60; iter++) {
      const fi = rng.int(files.length);
      const seg = files[fi] ?? '';
      const offsets = recordOffsets(path.join(dir, seg));
      const size = fs.statSync(path.join(dir, seg)).size;
      const pos = rng.int(size);
      const bit = rng.int(8);
      const recordStart = offsets.filter((o) => o <= pos).pop() ?? 0;
      const inLastRecord = fi === files.length - 1 && recordStart === offsets[offsets.length - 1];
      const d = copyDir(dir);
      const f = path.join(d, seg);
      const buf = fs.readFileSync(f);
      buf[pos] = (buf[pos] ?? 0) ^ (1 << bit);
      fs.writeFileSync(f, buf);
      const where = `seed ${seed} iter ${iter}: ${seg} byte ${pos} bit ${bit}`;
      if (inLastRecord) {
        const { logs, logger } = capture();
        const w = await WalStorage.open(d, { logger });
        expect(logs.some((l) => l.msg.includes('torn')), where).toBe(true);
        expect(plain(w.entries(1, w.lastIndex() + 1, Infinity)), where).toEqual(expectedEntries(1, w.lastIndex()));
        expect(w.lastIndex(), where).toBeGreaterThanOrEqual(99);
        await w.close();
      } else {
        await expectCorruption(d, seg, recordStart, undefined, where);
      }
      removeDir(d);
    }
  });

  it('detects lost, truncated and reordered segments', async () => {
    const dir = newDir();
    await buildWal(dir, 150, 2048);
    const files = walFiles(dir);
    expect(files.length).toBeGreaterThan(3);
    const [f0, f1, f2] = files;
    if (f0 === undefined || f1 === undefined || f2 === undefined) throw new Error('segments');

    // A middle segment lost: a gap in the sequence.
    let d = copyDir(dir);
    fs.rmSync(path.join(d, f1));
    await expectCorruption(d, f2, 0, /sequence gap/);

    // The first segment lost (nothing compacted): entries missing.
    d = copyDir(dir);
    fs.rmSync(path.join(d, f0));
    await expectCorruption(d, f1, 0, /missing/);

    // A non-last segment truncated inside a record.
    d = copyDir(dir);
    const size1 = fs.statSync(path.join(d, f1)).size;
    const lastRec = recordOffsets(path.join(d, f1)).pop() ?? 0;
    fs.truncateSync(path.join(d, f1), size1 - 3);
    await expectCorruption(d, f1, lastRec, /incomplete/);

    // A non-last segment truncated at a record boundary: the next segment does not follow.
    d = copyDir(dir);
    const offs = recordOffsets(path.join(d, f1));
    fs.truncateSync(path.join(d, f1), offs[offs.length - 4] ?? 0);
    await expectCorruption(d, f2, 0, /out of order/);

    // Two segments swapped (renamed onto each other).
    d = copyDir(dir);
    fs.renameSync(path.join(d, f1), path.join(d, 'x'));
    fs.renameSync(path.join(d, f2), path.join(d, f1));
    fs.renameSync(path.join(d, 'x'), path.join(d, f2));
    await expectCorruption(d, f1, 0, /file name says/);

    // A segment renamed to the place of a later one (same seq, other index): its header disagrees.
    d = copyDir(dir);
    const renamed = `${f1.slice(0, 17)}00000000000fffff.wal`;
    fs.renameSync(path.join(d, f1), path.join(d, renamed));
    await expectCorruption(d, renamed, 0, /file name says/);
  });

  it('replays a conflicting-suffix truncation after a restart, also below the current segment', async () => {
    const dir = newDir();
    let w = await WalStorage.bootstrap(dir, { voters: [1], learners: [] }, { segmentSizeBytes: 1024 });
    w.append(entries(1, 60, 1, 32));
    await w.sync();
    const segs = w.stats().segments;
    w.append(entries(5, 7, 2, 32)); // truncates entries 5..60, written in the 2nd+ segment
    await w.sync();
    w.append(entries(8, 70, 2, 32));
    w.append(entries(40, 41, 3, 32));
    await w.sync();
    expect(w.stats().segments).toBeGreaterThan(segs);
    const expected = plain([...entries(1, 4, 1, 32), ...entries(5, 39, 2, 32), ...entries(40, 41, 3, 32)]);
    expect(plain(w.entries(1, 42, Infinity))).toEqual(expected);
    await w.close();
    w = await WalStorage.open(dir, { segmentSizeBytes: 1024 });
    expect(w.lastIndex()).toBe(41);
    expect(plain(w.entries(1, 42, Infinity))).toEqual(expected);
    // Compaction past the truncation point deletes the older segments; the rest still replays.
    await w.compact({ metadata: { index: 41, term: 3, confState: { voters: [1], learners: [] } } });
    w.append(entries(42, 45, 3, 32));
    await w.close();
    w = await WalStorage.open(dir, { segmentSizeBytes: 1024 });
    expect(w.firstIndex()).toBe(42);
    expect(plain(w.entries(42, 46, Infinity))).toEqual(plain(entries(42, 45, 3, 32)));
    // Kept: the newest segment starting at or below the snapshot (41), and those after it.
    const firstIndexes = w.segmentFiles().map((n) => parseInt(n.slice(17, 33), 16));
    expect(firstIndexes[0]).toBeLessThanOrEqual(42);
    expect(firstIndexes.slice(1).every((f) => f > 42), firstIndexes.join(',')).toBe(true);
    await w.close();
  });

  it('after a snapshot install, starts a new segment and deletes every older one', async () => {
    const dir = newDir();
    await buildWal(dir, 200, 2048);
    let w = await WalStorage.open(dir, { segmentSizeBytes: 2048 });
    expect(w.stats().segments).toBeGreaterThan(3);
    await w.applySnapshot({ metadata: { index: 150, term: 9, confState: { voters: [1, 2, 3], learners: [] } } });
    w.setHardState({ term: 9, vote: 0, commit: 150 });
    await w.sync();
    expect(w.stats().segments).toBe(1);
    expect(walFiles(dir)).toEqual(w.segmentFiles());
    await w.close();
    w = await WalStorage.open(dir);
    expect({ first: w.firstIndex(), last: w.lastIndex(), term: w.term(150) }).toEqual({ first: 151, last: 150, term: 9 });
    expect(w.initialState().hardState).toEqual({ term: 9, vote: 0, commit: 150 });
    await w.close();
  });

  it('removes an unfinished segment left by a crash between write and rename', async () => {
    const dir = newDir();
    await buildWal(dir, 10, 1 << 20);
    fs.writeFileSync(path.join(dir, '0000000000000002-000000000000000b.wal.tmp'), Buffer.from('half a preamble'));
    const { logs, logger } = capture();
    const w = await WalStorage.open(dir, { logger });
    expect(w.lastIndex()).toBe(10);
    expect(fs.readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    expect(logs.some((l) => l.msg.includes('unfinished'))).toBe(true);
    await w.close();
  });

  it('refuses to bootstrap a directory that already holds a WAL', async () => {
    const dir = newDir();
    await buildWal(dir, 3, 1 << 20);
    await expect(WalStorage.bootstrap(dir, { voters: [9], learners: [] })).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
    const w = await WalStorage.open(dir);
    expect(w.initialState().confState).toEqual({ voters: [1, 2, 3], learners: [] });
    await w.close();
  });
});

describe('WAL on a full disk (ENOSPC through FsLike)', () => {
  it('fails writes with DISK_FULL, leaves a valid log, and accepts them again once space returns', async () => {
    const dir = newDir();
    const ffs = new FaultFs();
    const w = await WalStorage.bootstrap(dir, { voters: [1], learners: [] }, { fs: ffs, segmentSizeBytes: 1 << 20 });
    w.append(entries(1, 10, 1, 100));
    await w.sync();
    ffs.spaceLeftBytes = 250; // room for about 2 of the next 5 records: a partial write
    w.append(entries(11, 15, 1, 100));
    await expect(w.sync()).rejects.toMatchObject({ code: 'DISK_FULL' });
    // More appends while full are buffered; the retry fails again.
    w.append(entries(16, 17, 1, 100));
    await expect(w.sync()).rejects.toMatchObject({ code: 'DISK_FULL' });
    // What is on disk now is a clean log of the durable entries (no half-accepted record).
    const view = copyDir(dir);
    const { logs, logger } = capture();
    const r = await WalStorage.open(view, { logger });
    expect(r.lastIndex()).toBe(10);
    expect(logs.filter((l) => l.level === 'warn')).toEqual([]);
    await r.close();
    // A failed fdatasync is not trusted either: the data is written again.
    ffs.spaceLeftBytes = Infinity;
    ffs.datasyncFailures = 1;
    await expect(w.sync()).rejects.toMatchObject({ code: 'DISK_FULL' });
    // Space is back: the retry succeeds and everything is durable.
    await w.sync();
    expect(w.lastIndex()).toBe(17);
    await w.close();
    const again = await WalStorage.open(dir);
    expect(plain(again.entries(1, 18, Infinity))).toEqual(plain(entries(1, 17, 1, 100)));
    await again.close();
  });

  it('sync({ blocking }) fdatasyncs on the calling thread, with the same failure handling', async () => {
    const dir = newDir();
    const ffs = new FaultFs();
    const w = await WalStorage.bootstrap(dir, { voters: [1], learners: [] }, { fs: ffs, segmentSizeBytes: 1 << 20 });
    const before = { all: ffs.datasyncs, blocking: ffs.blockingDatasyncs };
    w.append(entries(1, 5, 1, 100));
    await w.sync({ blocking: true });
    expect(ffs.blockingDatasyncs - before.blocking).toBe(1);
    w.append(entries(6, 8, 1, 100));
    await w.sync(); // not blocking: the thread pool
    expect(ffs.blockingDatasyncs - before.blocking).toBe(1);
    expect(ffs.datasyncs - before.all).toBe(2);
    // A failed blocking fdatasync: DISK_FULL, and the records are written again by the next sync.
    ffs.datasyncFailures = 1;
    w.append(entries(9, 10, 1, 100));
    await expect(w.sync({ blocking: true })).rejects.toMatchObject({ code: 'DISK_FULL' });
    await w.sync({ blocking: true });
    await w.close();
    const again = await WalStorage.open(dir);
    expect(plain(again.entries(1, 11, Infinity))).toEqual(plain(entries(1, 10, 1, 100)));
    await again.close();
  });

  it('keeps appending to the current segment when a new one cannot be created', async () => {
    const dir = newDir();
    const ffs = new FaultFs();
    const { logs, logger } = capture();
    const w = await WalStorage.bootstrap(dir, { voters: [1], learners: [] }, { fs: ffs, segmentSizeBytes: 512, logger });
    ffs.failOpenForWrite = true;
    for (let i = 1; i <= 20; i++) {
      w.append([entry(i, 1, 64)]);
      await w.sync();
    }
    expect(w.stats().segments).toBe(1);
    expect(logs.some((l) => l.msg.includes('cutting'))).toBe(true);
    ffs.failOpenForWrite = false;
    w.append([entry(21, 1, 64)]);
    await w.sync();
    expect(w.stats().segments).toBe(2);
    await w.close();
    const again = await WalStorage.open(dir);
    expect(plain(again.entries(1, 22, Infinity))).toEqual(plain([...Array(21).keys()].map((i) => entry(i + 1, 1, 64))));
    await again.close();
  });
});

describe('WAL group commit', () => {
  it('resolves sync() only after the covering fdatasync, and covers concurrent appends with few fdatasyncs', async () => {
    const dir = newDir();
    const ffs = new FaultFs();
    const w = await WalStorage.bootstrap(dir, { voters: [1], learners: [] }, { fs: ffs });
    let release: () => void = () => {};
    ffs.datasyncGate = new Promise<void>((r) => (release = r));
    w.append([entry(1, 1)]);
    let resolved = false;
    const first = w.sync().then(() => (resolved = true));
    // While the first fdatasync is held, 63 more appenders arrive.
    const rest: Promise<void>[] = [];
    for (let i = 2; i <= 64; i++) {
      w.append([entry(i, 1)]);
      rest.push(w.sync());
    }
    await new Promise((r) => setImmediate(r));
    expect(resolved).toBe(false);
    expect(ffs.datasyncs).toBe(0);
    ffs.datasyncGate = undefined;
    release();
    await first;
    await Promise.all(rest);
    expect(ffs.datasyncs).toBe(2); // one for entry 1, one for the 63 that queued behind it
    await w.close();
  });
});
