// Child process of crash.test.ts (compiled to dist/test/kv/crash-child.js by `npm run build`):
// applies the crash model's log in random-sized batches forever, snapshotting now and then while it writes,
// until the parent SIGKILLs it. Usage: node crash-child.js <kvDir> <snapDir> <seed>
// Prints "open <appliedIndex>" once, "applied <index>" after each batch has resolved, and "flushed <index>"
// once everything up to index is in LevelDB (sm.flush()), and "snapshot <index>" when a snapshot is on disk.
import { KvStateMachine } from '../../src/kv/state-machine.js';
import { seededRng } from '../../src/raft/rng.js';
import { entriesFrom } from './crash-model.js';

async function main(): Promise<void> {
  const [kvDir, snapDir, seedText] = process.argv.slice(2);
  if (kvDir === undefined || snapDir === undefined || seedText === undefined) {
    throw new Error('usage: crash-child.js <kvDir> <snapDir> <seed>');
  }
  const seeded = seededRng(Number(seedText));
  const rng = (n: number): number => seeded.int(n);
  const sm = await KvStateMachine.open(kvDir, { sessionTtlEntries: 500, maxSessions: 2 });
  process.stdout.write(`open ${sm.appliedIndex}\n`);
  let snapshotting = false;
  for (let batch = 0; ; batch++) {
    // Like a driver replaying its WAL after a restart: start a little below the applied index.
    const from = Math.max(1, sm.appliedIndex + 1 - rng(4));
    const count = sm.appliedIndex + 1 - from + 1 + rng(150);
    await sm.apply(entriesFrom(from, count));
    process.stdout.write(`applied ${sm.appliedIndex}\n`);
    // What survives a crash is what reached LevelDB (the rest a driver replays from its WAL).
    if (rng(3) === 0) process.stdout.write(`flushed ${await sm.flush()}\n`);
    if (!snapshotting && rng(4) === 0) {
      snapshotting = true;
      sm.createSnapshot(snapDir, 2).then(
        (snap) => {
          snapshotting = false;
          process.stdout.write(`snapshot ${snap.metadata.index}\n`);
        },
        (err: unknown) => {
          process.stderr.write(`snapshot failed: ${String(err)}\n`);
          process.exit(2);
        },
      );
    }
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`crash-child: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
