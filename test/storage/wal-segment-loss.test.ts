// Lost WAL segments (deleted while the member was stopped) at every position are DATA_CORRUPTION naming the
// missing segment, the directory and the remedy; the states the WAL itself leaves behind (compaction, a crash
// during a cut, a directory from before the last-segment file) still open.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isRaftKvError } from '../../src/shared/errors.js';
import { nodeFs } from '../../src/storage/fs-like.js';
import type { FsLike } from '../../src/storage/fs-like.js';
import { LAST_SEGMENT_FILE } from '../../src/storage/wal.js';
import { WalStorage } from '../../src/storage/wal-storage.js';
import { dirContents, entry, plain, tempDirs, walFiles, openWalFailure } from './helpers.js';

const { newDir, copyDir, cleanup } = tempDirs('wal-loss');
afterAll(cleanup);

const SEGMENT_BYTES = 2048;

/** A WAL of entries 1..n (32-byte payloads) in segments of SEGMENT_BYTES, synced every 5 entries. */
async function buildWal(dir: string, n: number): Promise<void> {
  const w = await WalStorage.bootstrap(dir, { voters: [1, 2, 3], learners: [] }, { segmentSizeBytes: SEGMENT_BYTES });
  for (let i = 1; i <= n; i++) {
    w.append([entry(i, 1, 32)]);
    if (i % 5 === 0) {
      w.setHardState({ term: 1, vote: 2, commit: i - 1 });
      await w.sync();
    }
  }
  await w.close();
}

function seqOf(name: string): number {
  return parseInt(name.slice(0, 16), 16);
}
function firstIndexOf(name: string): number {
  return parseInt(name.slice(17, 33), 16);
}

/** Opening `dir` fails with DATA_CORRUPTION whose message contains every `parts`, and changes no file. */
async function expectLost(dir: string, parts: readonly string[]): Promise<string> {
  const before = dirContents(dir);
  const caught = await openWalFailure(dir);
  expect(isRaftKvError(caught, 'DATA_CORRUPTION'), `expected DATA_CORRUPTION, got ${String(caught)}`).toBe(true);
  const msg = caught instanceof Error ? caught.message : '';
  for (const p of parts) expect(msg).toContain(p);
  expect(msg).toMatch(/restore the missing segment file .*or remove this member \(raftkv member remove ID\), wipe its data directory, add it back \(raftkv member add\) and start it with --initial-cluster-state existing/);
  expect(dirContents(dir), 'corruption must not change any file').toEqual(before);
  return msg;
}

describe('WAL: lost segments', () => {
  it('the last segment lost: corruption naming it (seq, first index) and the directory', async () => {
    const dir = newDir();
    await buildWal(dir, 150);
    const files = walFiles(dir);
    expect(files.length).toBeGreaterThan(3);
    const last = files[files.length - 1] ?? '';
    const prev = files[files.length - 2] ?? '';
    const d = copyDir(dir);
    fs.rmSync(path.join(d, last));
    await expectLost(d, [
      path.join(d, prev),
      last,
      `seq ${seqOf(last)}, first index ${firstIndexOf(last)}`,
      `missing from ${d}`,
      `ends here at index ${firstIndexOf(last) - 1}`,
    ]);
  });

  it('the last two segments lost: corruption naming the first of them and the newest recorded seq', async () => {
    const dir = newDir();
    await buildWal(dir, 150);
    const files = walFiles(dir);
    const last = files[files.length - 1] ?? '';
    const second = files[files.length - 2] ?? '';
    fs.rmSync(path.join(dir, last));
    fs.rmSync(path.join(dir, second));
    await expectLost(dir, [second, `seq ${seqOf(second)}, first index ${firstIndexOf(second)}`, `up to seq ${seqOf(last)}`, `missing from ${dir}`]);
  });

  it('the only segment lost: corruption, not a fresh WAL', async () => {
    const dir = newDir();
    await buildWal(dir, 10);
    const files = walFiles(dir);
    expect(files).toHaveLength(1);
    fs.rmSync(path.join(dir, files[0] ?? ''));
    await expectLost(dir, [path.join(dir, LAST_SEGMENT_FILE), `no segment file in ${dir}`, 'seq 1']);
  });

  it('a middle segment lost: corruption naming it (seq, first index) and the directory', async () => {
    const dir = newDir();
    await buildWal(dir, 150);
    const files = walFiles(dir);
    const mid = files[2] ?? '';
    fs.rmSync(path.join(dir, mid));
    await expectLost(dir, [
      `${path.join(dir, files[3] ?? '')} at offset 0: segment sequence gap`,
      mid,
      `seq ${seqOf(mid)}, first index ${firstIndexOf(mid)}`,
      `missing from ${dir}`,
    ]);
  });

  it('the first segment lost (nothing compacted): corruption naming its seq and the directory', async () => {
    const dir = newDir();
    await buildWal(dir, 150);
    const [f0, f1] = walFiles(dir);
    if (f0 === undefined || f1 === undefined) throw new Error('segments');
    fs.rmSync(path.join(dir, f0));
    await expectLost(dir, [`${path.join(dir, f1)} at offset 0`, `segment seq ${seqOf(f0)}, ending at index ${firstIndexOf(f1) - 1}`, `missing from ${dir}`]);
  });

  it('the first remaining segment lost after a compaction deleted the older ones: corruption', async () => {
    const dir = newDir();
    await buildWal(dir, 300);
    let w = await WalStorage.open(dir, { segmentSizeBytes: SEGMENT_BYTES });
    await w.compact({ metadata: { index: 200, term: 1, confState: { voters: [1, 2, 3], learners: [] } } });
    await w.close();
    const files = walFiles(dir);
    expect(seqOf(files[0] ?? '')).toBeGreaterThan(1); // compaction deleted the front: that still opens
    w = await WalStorage.open(dir, { segmentSizeBytes: SEGMENT_BYTES });
    expect(w.firstIndex()).toBe(201);
    await w.close();
    const d = copyDir(dir);
    // The oldest remaining segment holds entries past the snapshot (200): losing it is a loss.
    const oldest = files[0] ?? '';
    expect(firstIndexOf(oldest)).toBeLessThanOrEqual(201);
    fs.rmSync(path.join(d, oldest));
    await expectLost(d, [`segment seq ${seqOf(oldest)}`, `missing from ${d}`]);
  });
});

describe('WAL: states the WAL leaves behind still open', () => {
  it('records the newest seq in the last-segment file at creation, at every cut and on open', async () => {
    const dir = newDir();
    const marker = path.join(dir, LAST_SEGMENT_FILE);
    const w = await WalStorage.bootstrap(dir, { voters: [1], learners: [] }, { segmentSizeBytes: SEGMENT_BYTES });
    const recorded = (): number => fs.readFileSync(marker).readUInt32LE(9 + 8); // seq u64 low word (see wal.ts)
    expect(recorded()).toBe(1);
    for (let i = 1; i <= 100; i++) w.append([entry(i, 1, 32)]);
    await w.sync();
    const files = w.segmentFiles();
    expect(files.length).toBeGreaterThan(2);
    expect(recorded()).toBe(seqOf(files[files.length - 1] ?? ''));
    await w.close();
    // A directory written before the file existed (or by code that ignores it): opens, and gets one.
    fs.rmSync(marker);
    const again = await WalStorage.open(dir, { segmentSizeBytes: SEGMENT_BYTES });
    expect(again.lastIndex()).toBe(100);
    expect(recorded()).toBe(seqOf(files[files.length - 1] ?? ''));
    await again.close();
  });

  it('a crash after a cut renamed the new segment in but before the last-segment file caught up: opens', async () => {
    const dir = newDir();
    await buildWal(dir, 150);
    const marker = path.join(dir, LAST_SEGMENT_FILE);
    const files = walFiles(dir);
    // The directory one cut earlier, recorded as such: without the newest segment, the file says its seq - 1 ...
    const d = copyDir(dir);
    const lastName = files[files.length - 1] ?? '';
    const lastBytes = fs.readFileSync(path.join(d, lastName));
    fs.rmSync(path.join(d, lastName));
    fs.rmSync(path.join(d, LAST_SEGMENT_FILE));
    const before = await WalStorage.open(d, { segmentSizeBytes: SEGMENT_BYTES }); // records the older seq
    expect(before.lastIndex()).toBe(firstIndexOf(lastName) - 1);
    await before.close();
    // ... then the new segment appears (its rename was durable) while the file still says the older seq.
    fs.writeFileSync(path.join(d, lastName), lastBytes);
    fs.writeFileSync(path.join(d, `${LAST_SEGMENT_FILE}.tmp`), Buffer.from('half a record'));
    const r = await WalStorage.open(d, { segmentSizeBytes: SEGMENT_BYTES });
    expect(r.lastIndex()).toBe(150);
    expect(plain(r.entries(1, 151, Infinity))).toEqual(plain([...Array(150).keys()].map((i) => entry(i + 1, 1, 32))));
    expect(fs.existsSync(path.join(d, `${LAST_SEGMENT_FILE}.tmp`))).toBe(false);
    expect(fs.readFileSync(path.join(d, LAST_SEGMENT_FILE))).toEqual(fs.readFileSync(marker));
    await r.close();
  });

  it('a cut whose last-segment update fails is logged, and the next cut catches the file up', async () => {
    const dir = newDir();
    let failRename = true;
    const flaky: FsLike = {
      ...nodeFs,
      rename: async (from, to) => {
        if (failRename && path.basename(to) === LAST_SEGMENT_FILE) throw Object.assign(new Error('EIO: test'), { code: 'EIO' });
        return nodeFs.rename(from, to);
      },
    };
    const warnings: string[] = [];
    const w = await WalStorage.open(dir, {
      fs: flaky,
      segmentSizeBytes: SEGMENT_BYTES,
      initialConfState: { voters: [1], learners: [] },
      logger: (level, msg) => {
        if (level === 'warn') warnings.push(msg);
      },
    });
    expect(fs.existsSync(path.join(dir, LAST_SEGMENT_FILE))).toBe(false);
    for (let i = 1; i <= 100; i++) w.append([entry(i, 1, 32)]);
    await w.sync();
    expect(warnings.some((m) => m.includes('recording the last segment failed'))).toBe(true);
    failRename = false;
    for (let i = 101; i <= 200; i++) w.append([entry(i, 1, 32)]);
    await w.sync();
    const files = w.segmentFiles();
    expect(fs.readFileSync(path.join(dir, LAST_SEGMENT_FILE)).readUInt32LE(9 + 8)).toBe(seqOf(files[files.length - 1] ?? ''));
    await w.close();
  });

  it('a last-segment file that does not decode is corruption, naming it', async () => {
    const dir = newDir();
    await buildWal(dir, 20);
    const marker = path.join(dir, LAST_SEGMENT_FILE);
    const buf = fs.readFileSync(marker);
    buf[buf.length - 1] = (buf[buf.length - 1] ?? 0) ^ 1;
    fs.writeFileSync(marker, buf);
    const before = dirContents(dir);
    await expect(WalStorage.open(dir)).rejects.toSatisfy(
      (e: unknown) => isRaftKvError(e, 'DATA_CORRUPTION') && e.message.startsWith(`${marker} at offset 0: bad checksum`),
    );
    expect(dirContents(dir)).toEqual(before);
  });
});
