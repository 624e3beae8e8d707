// The crash-test child: opens (recovering) the WAL in argv[2] and appends forever, printing "d <index> <term>"
// for every entry it has seen durable (sync() resolved). The parent (wal-crash.test.ts) SIGKILLs it at
// random moments and checks that every reported entry survived with the right content.
// Run: node dist/test/storage/wal-crash-child.js <dir> <seed>  (or the parent's own transpiled copy).
import type { Entry, Index, Term } from '../../src/raft/types.js';
import { nodeFs } from '../../src/storage/fs-like.js';
import type { FsLike } from '../../src/storage/fs-like.js';
import { WalStorage } from '../../src/storage/wal-storage.js';
import { payloadFor, seededRng } from './helpers.js';

/** The entry the child writes at (index, term): the parent recomputes it to check the content. */
export function crashEntry(index: Index, term: Term): Entry {
  return { index, term, type: 'normal', data: payloadFor(index, term, 16 + (index % 50)) };
}

export const CRASH_SEGMENT_SIZE_BYTES = 4096; // small: segments are cut and deleted all the time

/** The real file system, but every write is cut into short writes (so a kill can tear a record in two). */
function shortWritesFs(rng: { int(n: number): number }): FsLike {
  return {
    ...nodeFs,
    async open(p, flags) {
      const h = await nodeFs.open(p, flags);
      return { ...h, write: (buffer, offset, length, position) => h.write(buffer, offset, Math.min(length, 1 + rng.int(64)), position) };
    },
  };
}

async function main(): Promise<void> {
  const dir = process.argv[2];
  const seed = Number(process.argv[3] ?? '1');
  if (dir === undefined) throw new Error('usage: wal-crash-child <dir> <seed>');
  const rng = seededRng(seed);
  const w = await WalStorage.open(dir, {
    segmentSizeBytes: CRASH_SEGMENT_SIZE_BYTES,
    fs: shortWritesFs(seededRng(seed + 1)),
    initialConfState: { voters: [1], learners: [] },
    logger: (level, msg, fields) => process.stderr.write(`${level} ${msg} ${JSON.stringify(fields ?? {})}\n`),
  });
  let term = Math.max(1, w.initialState().hardState.term, w.term(w.lastIndex()));
  process.stdout.write(`ready ${w.lastIndex()}\n`);
  for (;;) {
    const op = rng.int(100);
    const last = w.lastIndex();
    if (op < 10) {
      // Tentative entries (maybe made durable, never reported), then overwritten by a higher term.
      w.append([crashEntry(last + 1, term), crashEntry(last + 2, term), crashEntry(last + 3, term)]);
      if (rng.int(2) === 0) await w.sync();
      term++;
      const at = last + 1 + rng.int(3);
      w.append([crashEntry(at, term)]);
      w.setHardState({ term, vote: 1, commit: at - 1 });
      await w.sync();
      process.stdout.write(`d ${at} ${term}\n`);
    } else if (op < 14 && last - w.firstIndex() > 200) {
      const at = last - 50;
      await w.compact({ metadata: { index: at, term: w.term(at), confState: { voters: [1], learners: [] } } });
    } else {
      // A group of concurrent appenders, each waiting for its own entry to be durable (group commit).
      const n = 1 + rng.int(8);
      const waits: Promise<void>[] = [];
      for (let k = 1; k <= n; k++) {
        const e = crashEntry(last + k, term);
        w.append([e]);
        if (k === n) w.setHardState({ term, vote: 1, commit: last });
        waits.push(w.sync().then(() => void process.stdout.write(`d ${e.index} ${e.term}\n`)));
      }
      await Promise.all(waits);
    }
  }
}

// Only when run as a program (the parent also imports crashEntry from this file).
if (process.argv[1]?.endsWith('wal-crash-child.js') === true) {
  main().catch((err: unknown) => {
    process.stderr.write(`wal-crash-child failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
