// The snapshot directory (data-dir/snap): which files count, the newest that verifies, pruning.
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { RaftKvError } from '../shared/errors.js';
import type { SnapshotMetadata } from '../raft/types.js';
import { listSnapshotFiles, verifySnapshotHeader } from './snapshot-file.js';
import type { KvLogger } from './types.js';

/** Keeps the newest `keep` snapshot files and removes stray .tmp files (a crash between write and rename). */
export async function pruneSnapshots(snapDir: string, keep: number): Promise<void> {
  const files = await listSnapshotFiles(snapDir);
  for (const f of files.slice(keep)) await rm(join(snapDir, f.name), { force: true });
  for (const name of await readdir(snapDir)) {
    if (name.startsWith('snapshot-') && name.endsWith('.snap.tmp')) await rm(join(snapDir, name), { force: true });
  }
}

/** Checks a snapshot file (magic, framing, record count, SHA-256) and returns its metadata; throws DATA_CORRUPTION. */
export async function verifySnapshotFile(path: string): Promise<SnapshotMetadata> {
  const h = await verifySnapshotHeader(path);
  return { index: h.index, term: h.term, confState: h.confState };
}

/** The newest snapshot in `snapDir` that verifies, if any (corrupt files are logged and skipped, not deleted). */
export async function latestSnapshot(
  snapDir: string,
  logger?: KvLogger,
): Promise<{ path: string; metadata: SnapshotMetadata } | undefined> {
  for (const f of await listSnapshotFiles(snapDir)) {
    const path = join(snapDir, f.name);
    try {
      return { path, metadata: await verifySnapshotFile(path) };
    } catch (err) {
      if (!(err instanceof RaftKvError && err.code === 'DATA_CORRUPTION')) throw err;
      logger?.warn({ path, err: err.message }, 'kv: skipping a corrupt snapshot');
    }
  }
  return undefined;
}
