// The replicated state machine on LevelDB (classic-level): applies committed entries, serves local reads,
// writes and restores snapshots.
//
// Its rooms, each a file with the state it owns: the write-behind (applied batches on their way to LevelDB,
// a full disk's stall and retry): write-behind.ts over write-buffer.ts; reads of the MVCC key space at the
// current and past revisions and a watcher's past events: mvcc-reader.ts; etcd's applier (what one command does
// to a batch's Overlay): applier.ts; the background deletion of compacted history: history-compactor.ts;
// streaming a snapshot out and ingesting one: snapshot-copy.ts. And the parts they use: the directory and
// LevelDB stores (level-store.ts), the key layout (schema.ts), the member table (members.ts), client sessions
// (sessions.ts), the snapshot format and directory (snapshot-file.ts, snapshot-dir.ts), the key-space digest
// (key-space-digest.ts), the history layout (history.ts), what etcd does to a range after the read
// (range-query.ts), the checks etcd makes before a request (validate.ts).
//
// Why this file is still ~950 lines: it is the one owner of the state those rooms share (the live store and its
// generation, the applied index and term, members, sessions, leases, alarms, auth, digest and MVCC revision as
// of it) and of the serial order every step takes through it (apply, read txns, compaction steps, snapshot
// capture, restore, close, the read gate), with one invariant (LevelDB holds whole apply batches with their
// applied index and revision; everything else is in the write-behind, in order). The rooms get that state only
// through the narrow host interfaces built in the constructor; what is left here is the batch itself (apply,
// prefetch, sessions, the batch's LevelDB ops), open and load, and the orchestration of snapshots and restores.
//
// Every apply() writes all of an entry batch's effects, the sessions, the members and the applied index/term in
// ONE LevelDB batch: a restart resumes exactly after the last applied entry. The batch is not fsynced (LevelDB
// has written it to the OS when it resolves, which survives a process crash); createSnapshot() forces a synced
// write first, so everything a snapshot covers is durable in LevelDB before the WAL may be compacted.
//
// Semantics:
// - etcd's MVCC: one store revision, 1 on an empty store, +1 per command that changed something (a put, a delete
//   that deleted a key, a txn with writes); a command's writes share it (sub-revisions order them). Keys carry
//   create_revision, mod_revision, version (puts since creation) and lease. A delete removes the live record and
//   writes a tombstone into the history; the next put starts a new generation at version 1. Log indexes of
//   no-ops, conf changes and refused commands do not move the revision.
// - History ('h', history.ts) is kept until a compact command; ranges read it at a past revision. Compaction
//   deletes in the background, COMPACTION_BATCH_RECORDS at a time, and resumes at open after a crash.
// - txn: every compare on the chosen path (nested txns too) is decided on the state before the txn; the path's
//   puts, then its ranges, are checked (etcd's order); then the ops run in order, each seeing the earlier ones.
//   A 'value' compare on a missing key is false for every op (as in etcd).
// - Client sessions (Envelope.clientId != ""): seq == the session's last seq returns the stored first answer
//   without applying again; seq < last is a FAILED_PRECONDITION error outcome; seq > last applies and stores
//   the answer (result or error). Expiry is driven by the log only, so it is identical on every replica: after
//   applying entry i, sessions last used at index <= i - sessionTtlEntries are dropped, then the least recently
//   used (by index) until at most maxSessions remain. Sessions live in LevelDB and therefore in snapshots.
// - Limits (validate.ts) are checked again on apply: a violating command is an INVALID_ARGUMENT error outcome.
//   Replicas must run with the same limits. An undecodable normal entry is a DATA_CORRUPTION error outcome
//   (applied as a no-op on every replica alike) rather than a crash that would stop every replica at once.
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Iterator as LevelIterator } from 'classic-level';
import { REQUEST_ERROR_CODES, RaftKvError } from '../shared/errors.js';
import type { Member } from '../shared/member.js';
import { decodeConfChange } from '../raft/conf-change.js';
import type { ConfState, Entry, Index, SnapshotMetadata, Term } from '../raft/types.js';
import { assertNever, decodeEnvelope, decodeStoredValue, encodeStoredValue } from './codec.js';
import type { SessionAnswer, StoredValue } from './codec.js';
import { Overlay, answerOutcome } from './commands.js';
import type { WriteTx } from './commands.js';
import { INITIAL_MVCC, decodeMvcc, encodeMvcc } from './history.js';
import type { MvccState } from './history.js';
import type { ApplyOutcome } from './commands.js';
import { EMPTY_DIGEST, KeySpaceDigest, decodeDigest, digestsEqual, encodeDigest, formatDigest } from './key-space-digest.js';
import type { DigestValue } from './key-space-digest.js';
import {
  DEFAULT_WRITE_BUFFER_BYTES,
  KV_CORRUPTION_REMEDY,
  dirSizeBytes,
  isRaftKvErrorCode,
  levelCause,
  liveGeneration,
  openDb,
  removeOtherGenerations,
  setLiveGeneration,
} from './level-store.js';
import type { Db } from './level-store.js';
import { applyConfChangeToTable, confStateOf } from './members.js';
import {
  DATA_HI,
  DATA_LO,
  KEY_APPLIED,
  KEY_DIGEST,
  KEY_MEMBERS,
  KEY_MVCC,
  PREFIX_DATA,
  SESSION_HI,
  SESSION_LO,
  decodeApplied,
  decodeMembers,
  decodeSession,
  encodeApplied,
  encodeMembers,
  encodeSession,
  keyString,
  prefixed,
  sessionKey,
} from './schema.js';
import type { Session } from './schema.js';
import { DEFAULT_MAX_SESSIONS, DEFAULT_SESSION_TTL_ENTRIES, SessionTable } from './sessions.js';
import { Serial } from './serial.js';
import { AlarmTable, KEY_ALARMS } from './alarms.js';
import { AuthStore, KEY_AUTH } from './auth-store.js';
import type { AuthView } from './auth-store.js';
import { verifySnapshotHeader } from './snapshot-file.js';
import { latestSnapshot, pruneSnapshots } from './snapshot-dir.js';
import { DEFAULT_KV_LIMITS } from './types.js';
import type {
  AlarmMember,
  Command,
  KeyRange,
  KvEvent,
  KvLimits,
  KvLogger,
  Lease,
  Op,
  RangeRequest,
  RangeResult,
  TxnOp,
  TxnResult,
} from './types.js';
import {
  validateCommand,
  validateRange,
} from './validate.js';
import { SYSTEM_TIMERS, WriteBehind } from './write-behind.js';
import { MvccReader } from './mvcc-reader.js';
import { Applier } from './applier.js';
import { ingestSnapshot, writeSnapshotFrom } from './snapshot-copy.js';
import { HistoryCompactor } from './history-compactor.js';
import type { KvTimers } from './write-behind.js';
import type { BatchOp } from './write-buffer.js';
import {
  LEASE_HI,
  LEASE_LO,
  decodeLease,
  encodeLease,
  leaseIdOfKey,
  leaseKey,
} from './leases.js';

export type { ApplyOutcome } from './commands.js';
export type { KvLogger } from './types.js';
export { KV_CORRUPTION_REMEDY } from './level-store.js';
export { encodeMemberContext, decodeMemberContext, confStateOf } from './members.js';
export type { MemberContext } from './members.js';
export { latestSnapshot, verifySnapshotFile } from './snapshot-dir.js';

export type { KvTimers } from './write-behind.js';

export type KvFailPoint = 'snapshot-before-rename' | 'restore-before-swap' | 'restore-after-swap' | 'flush' | 'compaction-batch';

export interface KvStateMachineOptions {
  readonly limits?: KvLimits;
  readonly sessionTtlEntries?: number; // default 100_000 applied entries
  readonly maxSessions?: number; // default 100_000
  readonly logger?: KvLogger;
  /** Tests only: called at each KvFailPoint; a throw there simulates a crash. */
  readonly failpoint?: (point: KvFailPoint) => void;
  /** The write-behind flush timer (default: Node's, unref'd). The node passes its clock, so a simulation drives it. */
  readonly timers?: KvTimers;
  /** Scan the key space at open and compare it with the stored digest (default true; tests of the scan's absence only). */
  readonly verifyOnOpen?: boolean;
}

/** What one applied batch changed, for watchers and the leader's lessor (KvStateMachine.onApplied). */
export interface AppliedChange {
  readonly revision: number; // the store revision after the batch
  readonly events: readonly KvEvent[]; // in revision, then sub-revision order
  readonly leases: ReadonlyMap<number, Lease | undefined>; // granted or checkpointed (the lease), revoked (undefined)
  readonly restored: boolean; // a snapshot replaced the whole state: no events, re-read everything
}

export { DEFAULT_MAX_SESSIONS, DEFAULT_SESSION_TTL_ENTRIES } from './sessions.js';

const SNAPSHOT_READ_BYTES = 4 * 1024 * 1024; // iterator read-ahead while streaming a snapshot
const VERIFY_READ_ENTRIES = 20_000; // keys per iterator read of verifyKeySpace()
// digestAt() answers for this many recent digest changes: enough for members' applied indices to meet while
// writes go on (a lagging member is checked at an index its peers still remember), 2 numbers + index each.
export const DIGEST_HISTORY_LENGTH = 10_000;

export class KvStateMachine {
  private appliedIndexValue: Index = 0; // last entry whose effects are readable (in LevelDB or the write buffers)
  private appliedTermValue: Term = 0; // term of that entry
  private readonly memberTable = new Map<number, Member>(); // as of appliedIndex
  private readonly alarms = new AlarmTable(); // the cluster's alarms as of appliedIndex (alarms.ts)
  private readonly auth = new AuthStore(); // users, roles, auth on/off as of appliedIndex (auth-store.ts)
  private mvcc: MvccState = { ...INITIAL_MVCC }; // the store revision and compaction state as of appliedIndex
  private readonly compactor: HistoryCompactor; // deletes compacted history in the background (history-compactor.ts)
  /** As of appliedIndex; Map order is LRU order: lastIndex strictly increasing from first to last. */
  private readonly sessions: SessionTable; // client sessions as of appliedIndex (loaded from their records at open)
  private readonly serial = new Serial();
  private readonly snapshotSerial = new Serial(); // one createSnapshot at a time: its .tmp cleanup is then safe
  private readonly snapshotsInFlight = new Set<Promise<unknown>>(); // streams reading the live db
  private readonly readsInFlight = new Set<Promise<unknown>>(); // range() calls reading the live db
  private readGate: Promise<void> | undefined; // set while the live db is swapped or closed: new reads wait
  private readonly digest = new KeySpaceDigest(); // the key space as of appliedIndex (with the write buffers)
  private digestStored = false; // LevelDB holds a digest record (false: a directory from before digests)
  private digestHistory: { index: Index; value: DigestValue }[] = []; // the digest after each change, oldest first
  private readonly writes: WriteBehind; // applied batches on their way to LevelDB (write-behind.ts)
  private readonly reader: MvccReader; // ranges and history over LevelDB and the buffers (mvcc-reader.ts)
  private readonly applier: Applier; // runs a command against a batch's Overlay (applier.ts)
  /** Called once when a background LevelDB batch fails (the state machine is then broken). */
  onFlushFailure: ((err: Error) => void) | undefined;
  /**
   * Called when a background batch fails for want of space (DISK_FULL). Nothing is lost or broken: the batches
   * stay in memory (reads see them), later ones queue behind them, and retryFlush() writes them in order.
   */
  onFlushStalled: ((err: Error) => void) | undefined;
  /** Called after each background LevelDB batch of applied writes landed, with how long it took (etcd's backend commit). */
  onBackendCommit: ((durationMs: number) => void) | undefined;
  private closed = false;
  private readonly limits: KvLimits;
  private readonly leaseTable = new Map<number, Lease>(); // as of appliedIndex (loaded from 'l' at open)
  /** Set by the node: every applied batch's changes, in order, after they are readable (watchers, the lessor). */
  onApplied: ((change: AppliedChange) => void) | undefined;

  private constructor(
    private readonly dir: string,
    private db: Db,
    private generation: number, // n of the live db-<n>
    private readonly opts: KvStateMachineOptions,
  ) {
    this.limits = opts.limits ?? DEFAULT_KV_LIMITS;
    this.writes = new WriteBehind(
      {
        dir,
        db: () => this.db,
        reopen: () =>
          this.withReadsQuiesced(async () => {
            await this.db.close();
            this.db = await openDb(join(this.dir, `db-${this.generation}`), DEFAULT_WRITE_BUFFER_BYTES, 'existing');
          }),
        appliedIndex: () => this.appliedIndexValue,
        logger: opts.logger,
        failpoint: opts.failpoint,
        onFailure: (err) => this.onFlushFailure?.(err),
        onStalled: (err) => this.onFlushStalled?.(err),
        onCommit: (durationMs) => this.onBackendCommit?.(durationMs),
      },
      opts.timers ?? SYSTEM_TIMERS,
    );
    this.compactor = new HistoryCompactor({
      serial: this.serial,
      db: () => this.db,
      writes: this.writes,
      mvcc: () => this.mvcc,
      check: () => this.check(),
      flushAll: () => this.flushAll(),
      readsInFlight: this.readsInFlight,
      logger: opts.logger,
      failpoint: opts.failpoint,
    });
    this.reader = new MvccReader({ db: () => this.db, writes: this.writes, mvcc: () => this.mvcc, limits: this.limits, check: () => this.check() });
    this.applier = new Applier({ reader: this.reader, digest: this.digest, leases: this.leaseTable, alarms: this.alarms, auth: this.auth });
    this.sessions = new SessionTable(opts.sessionTtlEntries ?? DEFAULT_SESSION_TTL_ENTRIES, opts.maxSessions ?? DEFAULT_MAX_SESSIONS);
  }

  /**
   * Opens the state machine in `dir` (creating it in an empty or missing directory), checks its key space
   * against its digest, then removes what an interrupted restore left. Refuses (DATA_CORRUPTION, naming the file
   * and the remedy) a directory whose generation pointer or LevelDB store is missing or damaged; removes nothing
   * before the live store has verified.
   */
  static async open(dir: string, opts: KvStateMachineOptions = {}): Promise<KvStateMachine> {
    await mkdir(dir, { recursive: true });
    const generation = await liveGeneration(dir);
    const live = `db-${generation}`;
    const db = await openDb(join(dir, live), DEFAULT_WRITE_BUFFER_BYTES, 'existing');
    const sm = new KvStateMachine(dir, db, generation, opts);
    try {
      await sm.load();
      if (opts.verifyOnOpen !== false || !sm.digestStored) await sm.verifyKeySpace();
    } catch (err) {
      await db.close();
      // A record load() could not decode: name the store and the remedy too.
      if (isRaftKvErrorCode(err, 'DATA_CORRUPTION') && !(err as Error).message.includes(KV_CORRUPTION_REMEDY)) {
        throw new RaftKvError('DATA_CORRUPTION', `kv: the LevelDB store ${join(dir, live)} is damaged: ${(err as Error).message}; ${KV_CORRUPTION_REMEDY}`);
      }
      if (err instanceof RaftKvError) throw err;
      // LevelDB opened but cannot read its own tables (truncated, flipped bits in a block, ...).
      throw new RaftKvError('DATA_CORRUPTION', `kv: the LevelDB store ${join(dir, live)} is damaged: ${levelCause(err)}; ${KV_CORRUPTION_REMEDY}`);
    }
    await removeOtherGenerations(dir, generation, opts.logger);
    sm.compactor.resume();
    return sm;
  }

  /** Loads applied index/term, members and sessions from the live db. */
  private async load(): Promise<void> {
    const applied = await this.db.get(KEY_APPLIED);
    const a = applied === undefined ? { index: 0, term: 0 } : decodeApplied(applied);
    this.appliedIndexValue = a.index;
    this.appliedTermValue = a.term;
    const mvcc = await this.db.get(KEY_MVCC);
    if (mvcc === undefined && a.index > 0) {
      throw new RaftKvError(
        'FAILED_PRECONDITION',
        `kv: the store ${join(this.dir, `db-${this.generation}`)} was written by a raftkv before MVCC revisions and holds no history; ` +
          'this version cannot serve it: start from an empty data directory (and copy the keys over with a client)',
      );
    }
    this.mvcc = mvcc === undefined ? { ...INITIAL_MVCC } : decodeMvcc(mvcc);
    this.memberTable.clear();
    const members = await this.db.get(KEY_MEMBERS);
    if (members !== undefined) for (const [id, m] of decodeMembers(members)) this.memberTable.set(id, m);
    this.alarms.load(await this.db.get(KEY_ALARMS));
    this.auth.load(await this.db.get(KEY_AUTH));
    const digest = await this.db.get(KEY_DIGEST);
    this.digestStored = digest !== undefined;
    this.digest.set(digest === undefined ? EMPTY_DIGEST : decodeDigest(digest));
    this.digestHistory = [{ index: this.appliedIndexValue, value: this.digest.value() }];
    const loaded: [string, Session][] = [];
    for await (const [k, v] of this.db.iterator({ gte: SESSION_LO, lt: SESSION_HI })) {
      const clientId = Buffer.from(k.subarray(1)).toString('utf8');
      loaded.push([clientId, decodeSession(v).session]);
    }
    this.sessions.load(loaded);
    this.leaseTable.clear();
    for await (const [k, v] of this.db.iterator({ gte: LEASE_LO, lt: LEASE_HI })) {
      const id = leaseIdOfKey(k);
      this.leaseTable.set(id, decodeLease(id, v));
    }
  }

  get appliedIndex(): Index {
    return this.appliedIndexValue;
  }

  /** The key-space digest as of appliedIndex. */
  digestNow(): { index: Index; digest: DigestValue } {
    return { index: this.appliedIndexValue, digest: this.digest.value() };
  }

  /**
   * The digest as of `index` (a function of the log prefix, identical on every member), or undefined when this
   * member has not applied `index` yet or no longer remembers it (DIGEST_HISTORY_LENGTH changes ago).
   */
  digestAt(index: Index): DigestValue | undefined {
    if (index > this.appliedIndexValue) return undefined;
    let found: DigestValue | undefined;
    for (let i = this.digestHistory.length - 1; i >= 0; i--) {
      const h = this.digestHistory[i];
      if (h !== undefined && h.index <= index) {
        found = h.value;
        break;
      }
    }
    return found;
  }

  /**
   * Scans the whole key space as LevelDB holds it and compares it with the digest kept by apply. Throws
   * DATA_CORRUPTION (naming the store, both digests and the remedy) on a mismatch, an undecodable record, or a
   * LevelDB read error. Applies go on meanwhile: the scan reads a LevelDB snapshot taken between two batches.
   * A directory without a stored digest (written before it existed) gets the scanned one stored instead.
   */
  async verifyKeySpace(): Promise<{ index: Index; digest: DigestValue }> {
    const captured = await this.serial.run(async () => {
      this.check();
      await this.flushAll();
      const it = this.db.iterator({ gte: DATA_LO, lt: DATA_HI, highWaterMarkBytes: SNAPSHOT_READ_BYTES });
      return { index: this.appliedIndexValue, expected: this.digestStored ? this.digest.value() : undefined, it };
    });
    const store = join(this.dir, `db-${this.generation}`);
    const scan = (async (): Promise<DigestValue> => {
      const got = new KeySpaceDigest();
      try {
        for (;;) {
          const chunk = await captured.it.nextv(VERIFY_READ_ENTRIES);
          if (chunk.length === 0) break;
          for (const [k, v] of chunk) {
            let sv: StoredValue;
            try {
              sv = decodeStoredValue(v);
            } catch (err) {
              throw new RaftKvError('DATA_CORRUPTION', `kv: ${store}: undecodable record for key ${JSON.stringify(Buffer.from(k.subarray(1)).toString('latin1'))} (${(err as Error).message}); ${KV_CORRUPTION_REMEDY}`);
            }
            got.add(k.subarray(1), sv);
          }
        }
      } catch (err) {
        if (isRaftKvErrorCode(err, 'DATA_CORRUPTION')) throw err;
        throw new RaftKvError('DATA_CORRUPTION', `kv: ${store}: LevelDB failed while reading the key space (${levelCause(err)}); ${KV_CORRUPTION_REMEDY}`);
      } finally {
        await captured.it.close();
      }
      return got.value();
    })();
    this.readsInFlight.add(scan);
    let scanned: DigestValue;
    try {
      scanned = await scan;
    } finally {
      this.readsInFlight.delete(scan);
    }
    if (captured.expected === undefined) {
      await this.serial.run(async () => {
        this.check();
        if (this.appliedIndexValue !== captured.index || this.digestStored) return; // applies went on: their batches carry it
        this.digest.set(scanned);
        this.digestHistory = [{ index: captured.index, value: scanned }];
        await this.db.put(KEY_DIGEST, encodeDigest(scanned), { sync: true });
        this.digestStored = true;
        this.opts.logger?.info({ store, index: captured.index, digest: formatDigest(scanned) }, 'kv: key-space digest computed and stored');
      });
      return { index: captured.index, digest: scanned };
    }
    if (!digestsEqual(scanned, captured.expected)) {
      throw new RaftKvError(
        'DATA_CORRUPTION',
        `kv: ${store} is damaged: at applied index ${captured.index} its key space scans to ${formatDigest(scanned)} ` +
          `(digest/keys) but apply recorded ${formatDigest(captured.expected)}; ${KV_CORRUPTION_REMEDY}`,
      );
    }
    return { index: captured.index, digest: scanned };
  }

  get appliedTerm(): Term {
    return this.appliedTermValue;
  }

  /** The member table as applied, sorted by id. */
  members(): Member[] {
    return [...this.memberTable.values()].sort((a, b) => a.id - b.id);
  }

  confState(): ConfState {
    return confStateOf(this.memberTable.values());
  }

  /** The auth store as of appliedIndex (auth-store.ts). */
  authView(): AuthView {
    return this.auth;
  }

  /** The raised alarms as of appliedIndex (etcd's alarm list). */
  alarmList(): AlarmMember[] {
    return this.alarms.list();
  }

  /** Number of live client sessions (for status and tests). */
  sessionCount(): number {
    return this.sessions.size;
  }

  private check(): void {
    if (this.closed) throw new RaftKvError('UNAVAILABLE', 'kv: the state machine is closed');
    this.writes.checkNotBroken();
  }

  /**
   * Records the initial membership of a brand-new cluster directly (no log entry), on an empty state machine
   * (appliedIndex 0, no members). The Raft storage must start with the same voters (confState()).
   */
  async bootstrap(members: readonly Member[]): Promise<void> {
    await this.serial.run(async () => {
      this.check();
      if (this.appliedIndexValue !== 0 || this.memberTable.size !== 0) {
        throw new RaftKvError('FAILED_PRECONDITION', 'kv: bootstrap needs an empty state machine');
      }
      const table = new Map<number, Member>();
      for (const m of members) {
        if (!Number.isSafeInteger(m.id) || m.id <= 0 || table.has(m.id)) {
          throw new RaftKvError('INVALID_ARGUMENT', `kv: bad or duplicate member id ${m.id}`);
        }
        table.set(m.id, { ...m });
      }
      await this.db.put(KEY_MEMBERS, encodeMembers(table), { sync: true });
      for (const [id, m] of table) this.memberTable.set(id, m);
    });
  }

  /**
   * Applies committed entries in order, in ONE LevelDB batch together with the applied index and term.
   * Entries at or below appliedIndex are skipped (outcome 'none'); the rest must follow on contiguously.
   * outcomes[i] belongs to entries[i].
   *
   * `onOutcomes`, if given, receives the outcomes as soon as they are computed, while the batch is still being
   * written: a committed entry's outcome is decided by the log alone (a crash before the batch lands replays
   * it from the WAL to the same outcome), so writes can be answered a LevelDB round trip earlier. The returned
   * promise resolves once the batch landed (appliedIndex advanced, reads see it); the next apply() starts after.
   */
  async apply(entries: readonly Entry[], onOutcomes?: (outcomes: readonly ApplyOutcome[]) => void): Promise<ApplyOutcome[]> {
    return this.serial.run(() => this.applyNow(entries, onOutcomes));
  }

  private async applyNow(entries: readonly Entry[], onOutcomes: ((outcomes: readonly ApplyOutcome[]) => void) | undefined): Promise<ApplyOutcome[]> {
    this.check();
    let expect = this.appliedIndexValue + 1;
    let lastTerm = this.appliedTermValue;
    for (const e of entries) {
      if (e.index < expect) continue;
      // Bugs, not expected failures: the driver hands over committed entries in order.
      if (e.index !== expect) throw new Error(`kv: apply gap: entry ${e.index} after ${expect - 1}`);
      if (e.term < lastTerm) throw new Error(`kv: entry ${e.index} has term ${e.term} below ${lastTerm}`);
      expect++;
      lastTerm = e.term;
    }
    try {
      return await this.applyChecked(entries, onOutcomes);
    } catch (err) {
      // In-memory sessions and members may be ahead of LevelDB now: refused until closed and reopened.
      throw this.writes.breakWith(err);
    }
  }

  /** True while batches wait for disk space (see onFlushStalled). */
  get isFlushStalled(): boolean {
    return this.writes.stalled !== undefined;
  }

  /**
   * After a DISK_FULL stall: writes the waiting batches in order (WriteBehind.retry). Returns true when the
   * stall is over (a compaction the full disk stopped then goes on), false while there is still no space.
   */
  async retryFlush(): Promise<boolean> {
    const over = await this.writes.retry();
    if (over) this.compactor.resume();
    return over;
  }

  /** Resolves once everything applied before the call is in LevelDB (not fsynced); returns that applied index. */
  async flush(): Promise<Index> {
    const index = this.appliedIndexValue;
    await this.flushAll();
    return index;
  }

  /** Everything applied before this call is in LevelDB (not fsynced) when it resolves. Throws if a batch failed. */
  private async flushAll(): Promise<void> {
    await this.writes.flushAll();
    this.check();
  }

  private async applyChecked(entries: readonly Entry[], onOutcomes: ((outcomes: readonly ApplyOutcome[]) => void) | undefined): Promise<ApplyOutcome[]> {
    const outcomes: ApplyOutcome[] = [];
    const overlay = new Overlay({ ...this.mvcc });
    const batch: BatchOp[] = [];
    const sessionWrites = new Map<string, SessionAnswer>(); // answers stored in this batch, by clientId
    let index = this.appliedIndexValue;
    let term = this.appliedTermValue;
    let membersChanged = false;
    const fresh = entries.filter((e) => e.index > this.appliedIndexValue);
    this.prefetch(fresh, overlay);
    for (const e of entries) {
      if (e.index <= this.appliedIndexValue) {
        outcomes.push({ type: 'none' });
        continue;
      }
      index = e.index;
      term = e.term;
      switch (e.type) {
        case 'conf-change':
          applyConfChangeToTable(this.memberTable, decodeConfChange(e.data), this.opts.logger);
          membersChanged = true;
          outcomes.push({ type: 'none' });
          break;
        case 'normal':
          outcomes.push(e.data.length === 0 ? { type: 'none' } : await this.applyNormal(e, overlay, sessionWrites));
          break;
        default:
          assertNever(e.type);
      }
      this.expireSessions(index, sessionWrites, batch);
      if (overlay.digestChanged) {
        overlay.digestChanged = false;
        this.digestHistory.push({ index, value: this.digest.value() });
      }
    }
    if (this.digestHistory.length > DIGEST_HISTORY_LENGTH * 2) this.digestHistory = this.digestHistory.slice(-DIGEST_HISTORY_LENGTH);
    if (index === this.appliedIndexValue) return outcomes;
    for (const v of overlay.data.values()) {
      const key = prefixed(PREFIX_DATA, v.key);
      batch.push(v.sv === undefined ? { type: 'del', key } : { type: 'put', key, value: encodeStoredValue(v.sv) });
    }
    for (const h of overlay.history.values()) batch.push({ type: 'put', key: h.key, value: h.value });
    for (const a of overlay.attached.values()) batch.push(a.present ? { type: 'put', key: a.key, value: new Uint8Array(0) } : { type: 'del', key: a.key });
    for (const [id, l] of overlay.leases) batch.push(l === undefined ? { type: 'del', key: leaseKey(id) } : { type: 'put', key: leaseKey(id), value: encodeLease(l) });
    batch.push({ type: 'put', key: KEY_MVCC, value: encodeMvcc(overlay.mvcc) });
    for (const [clientId, answer] of sessionWrites) {
      const s = this.sessions.get(clientId);
      if (s === undefined) throw new Error(`kv: session ${clientId} written but not live`);
      batch.push({ type: 'put', key: sessionKey(clientId), value: encodeSession(s, answer) });
    }
    if (membersChanged) batch.push({ type: 'put', key: KEY_MEMBERS, value: encodeMembers(this.memberTable) });
    if (overlay.alarmsChanged) batch.push({ type: 'put', key: KEY_ALARMS, value: this.alarms.encode() });
    if (overlay.authChanged) batch.push({ type: 'put', key: KEY_AUTH, value: this.auth.encode() });
    batch.push({ type: 'put', key: KEY_APPLIED, value: encodeApplied(index, term) });
    batch.push({ type: 'put', key: KEY_DIGEST, value: encodeDigest(this.digest.value()) });
    // Readable now through the write buffer; in LevelDB within APPLY_FLUSH_INTERVAL_MS (the applied record with it).
    this.writes.add(batch);
    this.appliedIndexValue = index;
    this.appliedTermValue = term;
    this.mvcc = overlay.mvcc;
    for (const [id, l] of overlay.leases) {
      if (l === undefined) this.leaseTable.delete(id);
      else this.leaseTable.set(id, l);
    }
    if (overlay.compacted) this.compactor.start();
    if (overlay.events.length > 0 || overlay.leases.size > 0) {
      this.onApplied?.({ revision: this.mvcc.revision, events: overlay.events, leases: overlay.leases, restored: false });
    }
    onOutcomes?.(outcomes);
    await this.writes.drainIfBehind();
    return outcomes;
  }

  /**
   * Reads every single key the batch's commands name (puts, compares, single-key ops) with getSync: a point
   * read from LevelDB's memtable or block cache takes microseconds, a thread-pool round trip far longer.
   * The previous batch has landed (applies are serial), so LevelDB holds every earlier write.
   */
  private prefetch(entries: readonly Entry[], overlay: Overlay): void {
    const keys = new Map<string, Uint8Array>();
    const add = (k: Uint8Array): void => {
      keys.set(keyString(k), k);
    };
    const addTxn = (t: TxnOp): void => {
      for (const c of t.compares) if ((c.end ?? new Uint8Array(0)).length === 0) add(c.key);
      t.success.forEach(addOp);
      t.failure.forEach(addOp);
    };
    const addOp = (op: Op): void => {
      if (op.type === 'put') add(op.key);
      else if (op.type === 'delete' && op.range.end.length === 0) add(op.range.key);
      else if (op.type === 'txn') addTxn(op);
    };
    for (const e of entries) {
      if (e.type !== 'normal' || e.data.length === 0) continue;
      let cmd: Command;
      try {
        const env = decodeEnvelope(e.data);
        overlay.envelopes.set(e.index, env);
        cmd = env.command;
      } catch {
        continue; // reported by applyNormal
      }
      switch (cmd.type) {
        case 'put':
          add(cmd.key);
          break;
        case 'delete':
          if (cmd.range.end.length === 0) add(cmd.range.key);
          break;
        case 'txn':
          addTxn(cmd);
          break;
        case 'compact':
        case 'lease-grant':
        case 'lease-revoke':
        case 'lease-checkpoint':
        case 'alarm':
        case 'auth':
          break;
        default:
          assertNever(cmd);
      }
    }
    for (const [ks, k] of keys) {
      const v = this.writes.getSync(prefixed(PREFIX_DATA, k));
      overlay.cache.set(ks, v === undefined ? undefined : decodeStoredValue(v));
    }
  }

  private async applyNormal(
    e: Entry,
    overlay: Overlay,
    sessionWrites: Map<string, SessionAnswer>,
  ): Promise<ApplyOutcome> {
    let env = overlay.envelopes.get(e.index);
    try {
      env ??= decodeEnvelope(e.data);
    } catch (err) {
      const error = err instanceof RaftKvError ? err : new RaftKvError('DATA_CORRUPTION', String(err));
      this.opts.logger?.warn({ index: e.index, err: error.message }, 'kv: undecodable entry applied as a no-op');
      return { type: 'error', error };
    }
    const { clientId, seq } = env;
    if (clientId !== '') {
      const s = this.sessions.get(clientId);
      if (s !== undefined && seq < s.lastSeq) {
        return {
          type: 'error',
          error: new RaftKvError(
            'FAILED_PRECONDITION',
            `kv: stale request: client ${clientId} seq ${seq} is below its last applied seq ${s.lastSeq}`,
          ),
        };
      }
      if (s !== undefined && seq === s.lastSeq) {
        const answer = sessionWrites.get(clientId) ?? (await this.storedAnswer(clientId));
        this.sessions.touch(clientId, { lastSeq: seq, lastIndex: e.index });
        sessionWrites.set(clientId, answer);
        return answerOutcome(answer);
      }
    }
    let answer: SessionAnswer;
    try {
      validateCommand(env.command, this.limits);
      this.alarms.checkCommand(env.command); // NOSPACE raised: what would grow the store is refused
      const tx: WriteTx = { main: overlay.mvcc.revision + 1, sub: 0 };
      overlay.entryIndex = e.index;
      const result = await this.applier.execute(env.command, overlay, tx);
      if (tx.sub > 0) overlay.mvcc.revision = tx.main; // +1 per command that changed something
      answer = { type: 'result', result };
    } catch (err) {
      // Request errors are raised before a command writes anything (precheck), so the overlay holds none of it.
      if (!(err instanceof RaftKvError) || !REQUEST_ERROR_CODES.has(err.code)) throw err;
      answer = { type: 'error', code: err.code, message: err.message };
    }
    if (clientId !== '') {
      this.sessions.touch(clientId, { lastSeq: seq, lastIndex: e.index });
      sessionWrites.set(clientId, answer);
    }
    return answerOutcome(answer);
  }

  private async storedAnswer(clientId: string): Promise<SessionAnswer> {
    const v = await this.writes.get(sessionKey(clientId));
    if (v === undefined) throw new Error(`kv: session ${clientId} is live but has no record`);
    return decodeSession(v).answer;
  }

  /** The sessions that expire after entry `index` (sessions.ts): their records go, and any answer stored in this batch. */
  private expireSessions(index: Index, sessionWrites: Map<string, SessionAnswer>, batch: BatchOp[]): void {
    for (const clientId of this.sessions.expire(index)) {
      sessionWrites.delete(clientId);
      batch.push({ type: 'del', key: sessionKey(clientId) });
    }
  }

  // ------------------------------------------------------------ reads and leases

  /** The lease `id` as of appliedIndex. */
  lease(id: number): Lease | undefined {
    return this.leaseTable.get(id);
  }

  /** Every lease as of appliedIndex. */
  leaseList(): Lease[] {
    return [...this.leaseTable.values()];
  }

  /** The keys attached to lease `id` as of appliedIndex (etcd's TimeToLive with keys). */
  attachedKeys(id: number): Promise<Uint8Array[]> {
    this.check();
    return this.reader.attachedKeys(id, undefined);
  }

  /**
   * The changes to keys of `range` at revisions `fromRevision`..`toRevision` with their prevKv, at most about
   * `maxEvents` (whole revisions), and the last revision the answer covers completely (MvccReader.historyEvents).
   * COMPACTED below the compacted revision.
   */
  historyEvents(range: KeyRange, fromRevision: number, toRevision: number, maxEvents: number): Promise<{ events: KvEvent[]; coveredTo: number }> {
    return this.reader.historyEvents(range, fromRevision, toRevision, maxEvents);
  }

  /**
   * A local read of the applied state (at least appliedIndex as of the call). The caller decides whether that
   * is linearizable (ReadIndex) or serializable. Throws INVALID_ARGUMENT for a bad request, COMPACTED or
   * FUTURE_REV for a revision out of the history.
   */
  async range(req: RangeRequest): Promise<RangeResult> {
    this.check();
    validateRange(req, this.limits);
    while (this.readGate !== undefined) await this.readGate;
    this.check();
    const read = this.reader.range(req, undefined, this.mvcc.revision);
    this.readsInFlight.add(read);
    try {
      return await read;
    } finally {
      this.readsInFlight.delete(read);
    }
  }

  /**
   * A read-only txn (isTxnReadonly: the caller checks) on the applied state, between two applied batches, decided
   * exactly as apply would decide it (the same compares, checks and ranges, header revision the current one), so
   * the ReadIndex path and the log path answer alike. Throws as apply would (COMPACTED, FUTURE_REV, ...).
   */
  async readTxn(t: TxnOp): Promise<{ result: TxnResult; index: Index }> {
    this.check();
    while (this.readGate !== undefined) await this.readGate;
    // Holding the apply chain (restores and close run on it too); counted as a read of the live db only once
    // it holds it (a restore on the chain waits for the reads in flight: counting it while queued would deadlock).
    return this.serial.run(async () => {
      this.check();
      const index = this.appliedIndexValue;
      const read = this.applier.execute(t, new Overlay({ ...this.mvcc }), { main: this.mvcc.revision + 1, sub: 0 });
      this.readsInFlight.add(read);
      try {
        const result = await read;
        if (result.type !== 'txn') throw new Error(`kv: a read-only txn answered a ${result.type} result`);
        return { result, index };
      } finally {
        this.readsInFlight.delete(read);
      }
    });
  }

  /** Runs `fn` (which closes or replaces the live db) once no read uses the db; reads arriving meanwhile wait. */
  private async withReadsQuiesced<T>(fn: () => Promise<T>): Promise<T> {
    let open = (): void => undefined;
    this.readGate = new Promise<void>((resolve) => {
      open = resolve;
    });
    try {
      await Promise.allSettled([...this.readsInFlight, ...this.snapshotsInFlight]);
      return await fn();
    } finally {
      this.readGate = undefined;
      open();
    }
  }

  // ------------------------------------------------------------ revisions and compaction

  /** The current store revision (etcd's header revision): 1 on an empty store. */
  get revision(): number {
    return this.mvcc.revision;
  }

  /** The compaction revision reads obey (-1 before the first compaction, as etcd's). */
  get compactedRevision(): number {
    return this.mvcc.compacted;
  }

  /** Resolves once every record the compaction at `revision` removes is gone from LevelDB (etcd's `physical`). */
  whenCompacted(revision: number): Promise<void> {
    return this.compactor.whenCompacted(revision);
  }

  // ------------------------------------------------------------ snapshots

  /**
   * Writes a snapshot of the applied state to `snapDir` and keeps the newest `keep` snapshot files.
   * The view is captured between two batches; applies go on while the file is streamed.
   */
  createSnapshot(snapDir: string, keep: number): Promise<{ path: string; metadata: SnapshotMetadata }> {
    if (!Number.isSafeInteger(keep) || keep < 1) {
      return Promise.reject(new RaftKvError('INVALID_ARGUMENT', 'kv: keep must be >= 1'));
    }
    // Enqueued now: the view is the state after every apply() called before this call, and before any later one.
    const captured = this.serial.run(async () => {
      this.check();
      await mkdir(snapDir, { recursive: true });
      await this.flushAll();
      // A synced write makes every earlier batch durable: the WAL may be compacted up to this snapshot.
      await this.db.put(KEY_APPLIED, encodeApplied(this.appliedIndexValue, this.appliedTermValue), { sync: true });
      const metadata: SnapshotMetadata = {
        index: this.appliedIndexValue,
        term: this.appliedTermValue,
        confState: this.confState(),
      };
      const members = this.members();
      // Its implicit LevelDB snapshot is the consistent view. Large reads: one thread-pool hop per ~4 MiB.
      const iterator = this.db.iterator({ highWaterMarkBytes: SNAPSHOT_READ_BYTES });
      return { metadata, members, iterator };
    });
    return this.snapshotSerial.run(async () => this.writeSnapshot(snapDir, keep, await captured));
  }

  private async writeSnapshot(
    snapDir: string,
    keep: number,
    captured: { metadata: SnapshotMetadata; members: Member[]; iterator: LevelIterator<Db, Uint8Array, Uint8Array> },
  ): Promise<{ path: string; metadata: SnapshotMetadata }> {
    const { metadata, members, iterator } = captured;
    // Also before writing: a crash between an earlier rename and its pruning left one file too many. So there
    // are never more than keep + 1 snapshot files.
    await pruneSnapshots(snapDir, keep);
    const stream = writeSnapshotFrom(iterator, snapDir, { ...metadata, members }, this.opts.failpoint);
    this.snapshotsInFlight.add(stream);
    let path: string;
    try {
      path = await stream;
    } finally {
      this.snapshotsInFlight.delete(stream);
    }
    await pruneSnapshots(snapDir, keep);
    this.opts.logger?.info({ path, index: metadata.index, term: metadata.term }, 'kv: snapshot written');
    return { path, metadata };
  }

  /** The newest snapshot in `snapDir` that verifies (corrupt ones are logged and skipped), if any. */
  async latestSnapshot(snapDir: string): Promise<{ path: string; metadata: SnapshotMetadata } | undefined> {
    return latestSnapshot(snapDir, this.opts.logger);
  }

  /**
   * Replaces the state with a snapshot file: verify it, ingest it into a fresh LevelDB directory, then swap
   * it in atomically (CURRENT rename). A crash at any point leaves either the old or the new state.
   * Refuses (FAILED_PRECONDITION) a snapshot older than appliedIndex.
   */
  restoreSnapshot(path: string): Promise<SnapshotMetadata> {
    return this.serial.run(async () => {
      this.check();
      await this.flushAll(); // superseded by the snapshot, but no batch may land in the db once it is swapped out
      const header = await verifySnapshotHeader(path);
      if (header.index < this.appliedIndexValue) {
        throw new RaftKvError(
          'FAILED_PRECONDITION',
          `kv: snapshot ${path} at index ${header.index} is older than applied index ${this.appliedIndexValue}`,
        );
      }
      const nextGen = this.generation + 1;
      const nextDir = join(this.dir, `db-${nextGen}`);
      await ingestSnapshot(path, header, nextDir);
      this.opts.failpoint?.('restore-before-swap');
      await setLiveGeneration(this.dir, nextGen); // the commit point
      this.opts.failpoint?.('restore-after-swap');
      const oldDir = join(this.dir, `db-${this.generation}`);
      this.compactor.stop(); // a running compaction stops at its next step; the restored record says what remains
      await this.withReadsQuiesced(async () => {
        await this.db.close();
        this.db = await openDb(nextDir, DEFAULT_WRITE_BUFFER_BYTES, 'existing');
        this.generation = nextGen;
        await this.load();
      });
      await rm(oldDir, { recursive: true, force: true });
      this.compactor.restart(); // the stopped one touches nothing more; what the restored record shows unfinished goes on
      this.onApplied?.({ revision: this.mvcc.revision, events: [], leases: new Map(), restored: true });
      this.opts.logger?.info({ path, index: header.index, term: header.term }, 'kv: snapshot restored');
      return { index: header.index, term: header.term, confState: header.confState };
    });
  }

  /**
   * etcd's Defragment for LevelDB: compacts every level of the store over the whole key range, so the space of
   * deleted and overwritten records (compacted history included) goes back to the file system. Applies go on
   * meanwhile (LevelDB compacts in the background); it resolves once the compaction is done.
   */
  async defragment(): Promise<void> {
    this.check();
    while (this.readGate !== undefined) await this.readGate;
    this.check();
    const run = this.db.compactRange(Uint8Array.of(0), Uint8Array.of(0xff, 0xff, 0xff, 0xff));
    this.readsInFlight.add(run); // a restore or close waits for it before it closes the store
    try {
      await run;
    } finally {
      this.readsInFlight.delete(run);
    }
  }

  /** Bytes of the live LevelDB directory on disk. */
  async dataSizeBytes(): Promise<number> {
    return dirSizeBytes(join(this.dir, `db-${this.generation}`));
  }

  async close(): Promise<void> {
    await this.serial.run(async () => {
      if (this.closed) return;
      this.closed = true; // reads waiting at the gate then fail with UNAVAILABLE
      this.compactor.stop();
      await this.writes.start(); // never rejects: after a failed batch the rest is replayed from the WAL
      await this.withReadsQuiesced(() => this.db.close());
    });
  }
}

/**
 * How the initial membership gets recorded: a node bootstrapping a NEW cluster (empty data directory,
 * initialClusterState 'new') calls this once with `initialMembers` as voters, before applying any entry; the
 * Raft storage starts with the same ConfState (sm.confState()). Later changes arrive as conf-change entries.
 * A member joining an existing cluster does NOT bootstrap: its table arrives with the leader's snapshot (or with
 * conf-change entries replayed from the log). Throws FAILED_PRECONDITION on a non-empty state machine.
 */
export async function bootstrapMembers(sm: KvStateMachine, members: readonly Member[]): Promise<void> {
  await sm.bootstrap(members);
}
