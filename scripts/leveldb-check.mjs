#!/usr/bin/env node
// Checks that the LevelDB classic-level loads does not bring a deleted key back after a compaction
// (google/leveldb issue 320; raftkv's FOUND-BUGS 4). The stock classic-level 3.0.0 ships LevelDB 1.20, which
// does; scripts/build-leveldb.mjs builds it with the fix. Deterministic: it lays out the files by hand.
//   1. 'y' alone at level 2, then 'j' and 'z' at level 1 (a memtable flush lands on the deepest level it overlaps
//      nothing in, so a later flush of 'k' stays at level 0);
//   2. with an iterator open (an implicit snapshot, so compaction keeps every record), 3,000 puts of 'k' with
//      incompressible 1 KiB values and a delete of 'k', flushed, then compacted into level 1: the records of
//      'k' straddle three or four 1 MiB files;
//   3. the iterator closed, a compaction of the whole range: a manual compaction takes level 1 one file at a
//      time, so without the fix the first file (the delete and the newest puts) is dropped and the second file's
//      newest put lands at level 2, live again.
// Exit 0 and "ok" when the key stays deleted, exit 1 with "RESURRECTED" when it comes back.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';

const VERSIONS = 3000; // x 1 KiB: about 3 MiB, three or four files of MAX_FILE_BYTES
const MAX_FILE_BYTES = 1 << 20; // LevelDB's smallest max_file_size
const dir = mkdtempSync(join(tmpdir(), 'raftkv-leveldb-check-'));
const db = new ClassicLevel(dir, { keyEncoding: 'utf8', valueEncoding: 'utf8', writeBufferSize: 16 << 20, maxFileSize: MAX_FILE_BYTES });
try {
  await db.open();
  const flush = () => db.compactRange('a', 'b'); // flushes the memtable; no file overlaps [a, b]
  await db.put('y', 'filler');
  await flush();
  await db.batch([{ type: 'put', key: 'j', value: 'filler' }, { type: 'put', key: 'z', value: 'filler' }]);
  await flush();
  const held = db.iterator();
  await held.next();
  for (let i = 0; i < VERSIONS; i++) await db.put('k', `${i}:${randomBytes(512).toString('hex')}`);
  await db.del('k');
  await flush();
  await db.compactRange('k', 'k');
  const straddling = Number(await db.getProperty('leveldb.num-files-at-level1'));
  await held.close();
  if (straddling < 3) throw new Error(`leveldb-check: the layout did not form (${straddling} files at level 1, want 3 or more)`);
  await db.compactRange('a', 'z');
  const got = await db.get('k');
  if (got !== undefined) {
    console.log(`leveldb-check: RESURRECTED: a deleted key reads ${got.slice(0, 12)}... after a compaction (google/leveldb issue 320)`);
    process.exitCode = 1;
  } else {
    console.log('leveldb-check: ok (a deleted key stays deleted through compaction with snapshots)');
  }
} finally {
  await db.close();
  rmSync(dir, { recursive: true, force: true });
}
