// What the driver needs from the durable log (WalStorage) and the state machine (KvStateMachine), stated
// structurally so the loop can be read (and exercised) against these contracts alone.
import type { AuthView } from '../kv/auth-store.js';
import type { DigestValue } from '../kv/key-space-digest.js';
import type { ConfState, Entry, HardState, Index, LogStorage, Snapshot, SnapshotMetadata, Term } from '../raft/types.js';
import type { AlarmMember, CommandResult, KeyRange, KvEvent, Lease, RangeRequest, RangeResult, TxnOp, TxnResult } from '../kv/types.js';
import type { AppliedChange } from '../kv/state-machine.js';
import type { Member } from './api.js';

export interface DurableLog extends LogStorage {
  /** True when the directory held no log before open(). */
  isNew(): boolean;
  append(entries: readonly Entry[]): void | Promise<void>;
  setHardState(hs: HardState): void | Promise<void>;
  /** Makes every append and hard state so far durable (one fsync for all of them: group commit). */
  sync(opts?: { readonly blocking?: boolean }): Promise<void>;
  applySnapshot(snap: Snapshot): Promise<void>;
  compact(snap: Snapshot): Promise<void>;
  close(): Promise<void>;
  /** Bytes of the WAL on disk (reported in status). */
  stats?(): { readonly bytes: number };
}

/** The state machine's answer for one applied entry. */
export type ApplyOutcome =
  | { readonly type: 'none' } // no-op entries, conf changes
  | { readonly type: 'result'; readonly result: CommandResult }
  | { readonly type: 'error'; readonly error: Error };

export interface SnapshotFile {
  readonly path: string;
  readonly metadata: SnapshotMetadata;
}

export interface StateMachine {
  readonly appliedIndex: Index;
  readonly appliedTerm: Term;
  readonly revision: number; // the store revision as of appliedIndex
  readonly compactedRevision: number; // -1 before the first compaction
  /** Resolves once the compaction at `revision` has removed its history from disk. */
  whenCompacted(revision: number): Promise<void>;
  /** Gives the space of deleted records back to the file system (etcd's Defragment). */
  defragment(): Promise<void>;
  members(): readonly Member[];
  confState(): ConfState;
  dataSizeBytes(): Promise<number>;
  /** The raised alarms as of appliedIndex (kv/alarms.ts). Absent: a state machine without alarms (none raised). */
  alarmList?(): readonly AlarmMember[];
  /** The auth store as of appliedIndex (kv/auth-store.ts). Absent: a state machine without auth (always off). */
  authView?(): AuthView;
  /** Resolves once applied (reads see it); `onOutcomes` may get the outcomes earlier (see KvStateMachine.apply). */
  apply(entries: readonly Entry[], onOutcomes?: (outcomes: readonly ApplyOutcome[]) => void): Promise<readonly ApplyOutcome[]>;
  range(req: RangeRequest): Promise<RangeResult>;
  /** A read-only txn on the applied state, between applied batches (KvStateMachine.readTxn). Absent: through the log. */
  readTxn?(txn: TxnOp): Promise<{ result: TxnResult; index: Index }>;
  createSnapshot(snapDir: string, keep: number): Promise<SnapshotFile>;
  latestSnapshot(snapDir: string): Promise<SnapshotFile | undefined>;
  restoreSnapshot(path: string): Promise<SnapshotMetadata>;
  close(): Promise<void>;
  /** Set by the node: a write the state machine does in the background failed (the node then stops). */
  onFlushFailure?: ((err: Error) => void) | undefined;
  /** Set by the node: a background write found the disk full; the node refuses writes and calls retryFlush(). */
  onFlushStalled?: ((err: Error) => void) | undefined;
  /** Set by the node: one background LevelDB batch of applied writes landed after durationMs (metrics). */
  onBackendCommit?: ((durationMs: number) => void) | undefined;
  /** After a stall: true once the waiting writes landed, false while the disk is still full. */
  retryFlush?(): Promise<boolean>;
  /** Scans the stored state and compares it with what apply recorded; throws DATA_CORRUPTION on a mismatch. */
  verifyKeySpace?(): Promise<unknown>;
  /** The key-space digest as of `index` (<= appliedIndex), if still remembered. */
  digestAt?(index: Index): DigestValue | undefined;
  // Watches and leases (a state machine without them serves neither: the simulator's).
  /** Set by the node: each applied batch's events and lease changes, once readable. */
  onApplied?: ((change: AppliedChange) => void) | undefined;
  /** Events of `range` from the history (KvStateMachine.historyEvents). */
  historyEvents?(range: KeyRange, fromRevision: number, toRevision: number, maxEvents: number): Promise<{ events: KvEvent[]; coveredTo: number }>;
  lease?(id: number): Lease | undefined;
  leaseList?(): Lease[];
  attachedKeys?(id: number): Promise<Uint8Array[]>;
}

/**
 * The driver's own file operations (snapshot directories, received snapshot files), behind a port so that a
 * simulated cluster runs without disk I/O. Production: node:fs (see diskFiles in node.ts).
 */
export interface NodeFiles {
  /** mkdir -p. */
  mkdir(dir: string): Promise<void>;
  /** The names of the entries of `dir`. */
  list(dir: string): Promise<string[]>;
  /** rm -f: removing a file that does not exist is not an error. */
  remove(path: string): Promise<void>;
}
