// `raftkv snapshot restore`: a NEW cluster member's data directory made from a backup, as `etcdutl snapshot
// restore` makes one. Run once per member of the new cluster (the same file, the same --initial-cluster, each its
// own --id and --data-dir), then `raftkv serve` on each brings the cluster up with the data.
//
// What it writes in the (empty) data directory:
// - node.json: this member of this cluster, a fresh incarnation (identity.ts);
// - kv/: every key of the backup with its history and MVCC revision (the revision goes on from the backup's),
//   the new member table from --initial-cluster (all voters), applied index N and term 1, where N is the number
//   of members (etcd's restore also starts the log after N conf-change entries); no client sessions, no alarms;
// - wal/: a log that starts with a snapshot at (N, term 1) whose voters are the new members, hard state term 1,
//   commit N. Every member restored from the same file with the same --initial-cluster holds the identical log
//   and state, so they elect a leader in term 2 and go on from index N + 1. A member added later is sent a
//   snapshot (the log holds nothing before N + 1), never entries that would miss the restored data.
// The backup is verified whole before anything is written (backup-file.ts); a directory that is not empty is
// refused; a failure part-way removes what this run wrote (node.json, kv/, wal/), nothing else.
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { inspectBackup, restoreBackupInto } from '../kv/backup-file.js';
import type { BackupSummary } from '../kv/backup-file.js';
import { RaftKvError } from '../shared/errors.js';
import type { Member } from '../shared/member.js';
import { WalStorage } from '../storage/wal-storage.js';
import type { NodeId } from '../raft/types.js';
import type { PeerConfig } from './config.js';
import { DataDirLock, LOCK_FILE } from './data-dir-lock.js';
import { IDENTITY_FILE, checkDataDirIdentity } from './identity.js';

export { inspectBackup } from '../kv/backup-file.js';
export type { BackupSummary } from '../kv/backup-file.js';

export interface RestoreOptions {
  readonly backupPath: string;
  readonly dataDir: string;
  readonly id: NodeId;
  readonly clusterId: string;
  readonly initialMembers: readonly PeerConfig[];
}

export interface RestoreReport {
  readonly backup: BackupSummary;
  readonly dataDir: string;
  readonly revision: number;
  readonly keys: number;
  readonly index: number; // the new cluster's log starts after this index (term 1)
  readonly members: readonly Member[];
}

/** Entries a data directory may hold and still count as empty (a fresh volume, our own lock). */
const EMPTY_OK = new Set(['lost+found', LOCK_FILE]);

async function entriesOf(dir: string): Promise<string[] | undefined> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export async function restoreDataDir(opts: RestoreOptions): Promise<RestoreReport> {
  if (!opts.initialMembers.some((m) => m.id === opts.id)) {
    throw new RaftKvError('INVALID_ARGUMENT', `snapshot restore: --initial-cluster does not list this member (--id ${opts.id})`);
  }
  const before = await entriesOf(opts.dataDir);
  const stray = (before ?? []).filter((n) => !EMPTY_OK.has(n));
  if (stray.length > 0) {
    throw new RaftKvError(
      'FAILED_PRECONDITION',
      `snapshot restore: data directory ${opts.dataDir} is not empty (${stray.slice(0, 5).join(', ')}); restore makes a new member's directory: give an empty or new --data-dir`,
    );
  }
  const backup = await inspectBackup(opts.backupPath); // verified whole: a damaged file is refused here
  await mkdir(opts.dataDir, { recursive: true });
  const lock = await DataDirLock.acquire(opts.dataDir);
  const written = [IDENTITY_FILE, 'kv', 'wal'];
  try {
    await checkDataDirIdentity(opts.dataDir, { nodeId: opts.id, clusterId: opts.clusterId });
    const members: Member[] = [...opts.initialMembers]
      .sort((a, b) => a.id - b.id)
      .map((m) => ({ id: m.id, peerAddress: m.peerAddress, clientAddress: m.clientAddress, learner: false }));
    const voters = members.map((m) => m.id);
    const index = members.length;
    const store = await restoreBackupInto(backup, join(opts.dataDir, 'kv'), members, { index, term: 1 });
    const confState = { voters, learners: [] };
    const wal = await WalStorage.bootstrap(join(opts.dataDir, 'wal'), confState);
    try {
      await wal.applySnapshot({ metadata: { index, term: 1, confState } });
      wal.setHardState({ term: 1, vote: 0, commit: index });
      await wal.sync();
    } finally {
      await wal.close();
    }
    return { backup, dataDir: opts.dataDir, revision: store.revision, keys: store.keys, index, members };
  } catch (err) {
    for (const name of written) await rm(join(opts.dataDir, name), { recursive: true, force: true });
    throw err;
  } finally {
    await lock.release();
  }
}
