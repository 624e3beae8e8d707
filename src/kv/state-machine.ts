// The replicated state machine on LevelDB (classic-level): applies committed entries, serves local reads,
// writes and restores snapshots.
//
// Directory layout of `dir` (the node's data-dir/kv):
//   CURRENT        "db-<n>\n": names the live LevelDB directory. Replaced by tmp + fsync + rename + dir fsync;
//                  that rename is the commit point of a snapshot restore. Written once db-1 exists (first open).
//   db-<n>/        the live LevelDB store, opened without create-if-missing: a LevelDB that lost its own
//                  CURRENT or MANIFEST is refused (DATA_CORRUPTION naming it), never replaced by an empty one
//   db-<m>/, m!=n  the other side of an interrupted restore (the new one before the swap, or the old one after
//                  it): removed only once db-<n> has opened and its key space matched its digest
// Without CURRENT, a directory holding anything but an untouched db-1 (a first open that crashed before
// writing CURRENT) is refused and nothing is removed: the pointer was lost, and guessing could delete the
// live store. At open the whole key space is scanned and must reproduce the stored digest
// (key-space-digest.ts); verifyKeySpace() repeats that while running.
//
// LevelDB keys (byte strings; one-byte prefixes keep the spaces apart and in this order):
//   'd' + user key          StoredValue (codec.ts): createIndex, modIndex, version, value
//   'm' + "applied"         uvarint appliedIndex | uvarint appliedTerm
//   'm' + "members"         UTF-8 JSON {"members":[Member...]} sorted by id; the ConfState is derived from it
//   'm' + "digest"          the key-space digest as of the applied index (key-space-digest.ts); absent in
//                           directories written before it existed: computed by a scan at the next open
//   's' + clientId (UTF-8)  u8 1 | uvarint lastSeq | uvarint lastIndex | Answer (codec.ts)
// Every apply() writes all of an entry batch's effects, the sessions, the members and the applied index/term in
// ONE LevelDB batch: a restart resumes exactly after the last applied entry. The batch is not fsynced (LevelDB
// has written it to the OS when it resolves, which survives a process crash); createSnapshot() forces a synced
// write first, so everything a snapshot covers is durable in LevelDB before the WAL may be compacted.
//
// Semantics:
// - Keys carry etcd metadata: createIndex (index of the put that created the key since its last delete),
//   modIndex (index of the last put), version (puts since creation). A delete removes the key and its metadata.
// - txn: compares are evaluated against the state before the txn; then the ops of the chosen branch run in
//   order, each seeing the earlier ones (two puts to one key in a txn make version +2). All effects carry the
//   entry's index. A 'value' compare on a missing key is false for every op (as in etcd).
// - Client sessions (Envelope.clientId != ""): seq == the session's last seq returns the stored first answer
//   without applying again; seq < last is a FAILED_PRECONDITION error outcome; seq > last applies and stores
//   the answer (result or error). Expiry is driven by the log only, so it is identical on every replica: after
//   applying entry i, sessions last used at index <= i - sessionTtlEntries are dropped, then the least recently
//   used (by index) until at most maxSessions remain. Sessions live in LevelDB and therefore in snapshots.
// - Limits (validate.ts) are checked again on apply: a violating command is an INVALID_ARGUMENT error outcome.
//   Replicas must run with the same limits. An undecodable normal entry is a DATA_CORRUPTION error outcome
//   (applied as a no-op on every replica alike) rather than a crash that would stop every replica at once.
import { mkdir, open, readdir, readFile, rename, rm, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import type { Iterator as LevelIterator } from 'classic-level';
import { RaftKvError } from '../node/errors.js';
import type { Member } from '../node/api.js';
import { confChangeProblem, decodeConfChange } from '../raft/conf-change.js';
import type { ConfChange, ConfState, Entry, Index, SnapshotMetadata, Term } from '../raft/types.js';
import {
  ByteReader,
  ByteWriter,
  assertNever,
  decodeEnvelope,
  decodeStoredValue,
  encodeStoredValue,
  readAnswer,
  writeAnswer,
} from './codec.js';
import type { SessionAnswer, StoredValue } from './codec.js';
import {
  SnapshotFileWriter,
  fsyncDir,
  listSnapshotFiles,
  readSnapshotFile,
  verifySnapshotHeader,
} from './snapshot-file.js';
import { KeySpaceDigest, decodeDigest, digestsEqual, encodeDigest, formatDigest } from './key-space-digest.js';
import type { DigestValue } from './key-space-digest.js';
import { EMPTY_DIGEST } from './key-space-digest.js';
import { DEFAULT_KV_LIMITS } from './types.js';
import type {
  Command,
  CommandResult,
  Compare,
  Envelope,
  KeyRange,
  KeyValue,
  KvLimits,
  Op,
  OpResult,
  RangeRequest,
  RangeResult,
} from './types.js';
import { compareBytes, isOpenEnd, validateCommand, validateRange } from './validate.js';

export type ApplyOutcome =
  | { readonly type: 'none' } // no-op, conf-change, or an entry at or below appliedIndex (skipped)
  | { readonly type: 'result'; readonly result: CommandResult }
  | { readonly type: 'error'; readonly error: RaftKvError }; // a limit violated, a stale session seq, ...

/** The subset of a pino logger the state machine uses. */
export interface KvLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** Points where tests make the state machine "crash" (throw, leaving the files as they are). */
export type KvFailPoint = 'snapshot-before-rename' | 'restore-before-swap' | 'restore-after-swap' | 'flush';

export interface KvStateMachineOptions {
  readonly limits?: KvLimits;
  readonly sessionTtlEntries?: number; // default 100_000 applied entries
  readonly maxSessions?: number; // default 100_000
  readonly logger?: KvLogger;
  /** Tests only: called at each KvFailPoint; a throw there simulates a crash. */
  readonly failpoint?: (point: KvFailPoint) => void;
  /** Scan the key space at open and compare it with the stored digest (default true; tests of the scan's absence only). */
  readonly verifyOnOpen?: boolean;
}

export const DEFAULT_SESSION_TTL_ENTRIES = 100_000;
export const DEFAULT_MAX_SESSIONS = 100_000;

const PREFIX_DATA = 0x64; // 'd'
const PREFIX_META = 0x6d; // 'm'
const PREFIX_SESSION = 0x73; // 's'
const KEY_APPLIED = Uint8Array.from(Buffer.from('mapplied', 'latin1'));
const KEY_MEMBERS = Uint8Array.from(Buffer.from('mmembers', 'latin1'));
const KEY_DIGEST = Uint8Array.from(Buffer.from('mdigest', 'latin1'));
const DATA_LO = Uint8Array.of(PREFIX_DATA);
const DATA_HI = Uint8Array.of(PREFIX_DATA + 1);
const SESSION_LO = Uint8Array.of(PREFIX_SESSION);
const SESSION_HI = Uint8Array.of(PREFIX_SESSION + 1);
const SESSION_RECORD_VERSION = 1;
const CURRENT = 'CURRENT';
const SNAPSHOT_READ_BYTES = 4 * 1024 * 1024; // iterator read-ahead while streaming a snapshot
const SNAPSHOT_READ_ENTRIES = 20_000;
const SCAN_READ_BYTES = 1024 * 1024; // iterator read-ahead of range scans
const VERIFY_READ_ENTRIES = 20_000; // keys per iterator read of verifyKeySpace()
// digestAt() answers for this many recent digest changes: enough for members' applied indices to meet while
// writes go on (a lagging member is checked at an index its peers still remember), 2 numbers + index each.
export const DIGEST_HISTORY_LENGTH = 10_000;
/** What an operator does about a damaged state machine; every DATA_CORRUPTION about it ends with this. */
export const KV_CORRUPTION_REMEDY =
  'remove this member (raftkv member remove ID), wipe its data directory, add it back (raftkv member add) and start it ' +
  'with --initial-cluster-state existing: it catches up from the leader';
const DEFAULT_WRITE_BUFFER_BYTES = 4 * 1024 * 1024; // LevelDB memtable size: flushed to a level-0 table when full
const INGEST_WRITE_BUFFER_BYTES = 64 * 1024 * 1024; // bulk load of a restore: fewer, larger level-0 tables
// A stalled store is reopened only with this much free: its new log, MANIFEST and a memtable's worth of table.
const REOPEN_MIN_FREE_BYTES = 2 * DEFAULT_WRITE_BUFFER_BYTES;
// Write-behind (as etcd's backend batches its bbolt commits): applied batches gather in memory and reach
// LevelDB as one batch at most this often, or sooner past these sizes. One LevelDB write costs two thread
// hand-offs (a pool thread, then the event loop), measured at ~0.15-0.2 ms of a sequential put's latency on
// 2 cores. Nothing is at risk: the WAL holds every applied entry until a snapshot, which flushes first.
export const APPLY_FLUSH_INTERVAL_MS = 20;
export const APPLY_FLUSH_MAX_KEYS = 10_000;
export const APPLY_FLUSH_MAX_BYTES = 8 * 1024 * 1024;

type Db = ClassicLevel<Uint8Array, Uint8Array>;
type BatchOp = { type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array };

/** Writes not yet in LevelDB, the last per key (by keyString of the full LevelDB key). */
class WriteBuffer {
  readonly ops = new Map<string, BatchOp>();
  bytes = 0;

  add(op: BatchOp): void {
    this.ops.set(keyString(op.key), op);
    this.bytes += op.key.length + (op.type === 'put' ? op.value.length : 0) + 32;
  }

  /** undefined: not here (ask LevelDB); null: deleted here; else the value. */
  get(key: Uint8Array): Uint8Array | null | undefined {
    const op = this.ops.get(keyString(key));
    if (op === undefined) return undefined;
    return op.type === 'put' ? op.value : null;
  }
}

function prefixed(prefix: number, key: Uint8Array): Uint8Array {
  const out = new Uint8Array(key.length + 1);
  out[0] = prefix;
  out.set(key, 1);
  return out;
}

/** A byte string as a JS string whose code-unit order is the bytes' order (for maps and sorting). */
function keyString(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');
}

function sessionKey(clientId: string): Uint8Array {
  return prefixed(PREFIX_SESSION, Buffer.from(clientId, 'utf8'));
}

function encodeApplied(index: Index, term: Term): Uint8Array {
  return new ByteWriter(16).uvarint(index).uvarint(term).finish();
}

function decodeApplied(b: Uint8Array): { index: Index; term: Term } {
  const r = new ByteReader(b);
  const index = r.uvarint();
  const term = r.uvarint();
  r.end();
  return { index, term };
}

interface Session {
  lastSeq: number; // seq of the last request applied for this client
  lastIndex: Index; // index of the last entry that used the session (LRU order of the sessions map)
}

function encodeSession(s: Session, answer: SessionAnswer): Uint8Array {
  const w = new ByteWriter(64).u8(SESSION_RECORD_VERSION).uvarint(s.lastSeq).uvarint(s.lastIndex);
  writeAnswer(w, answer);
  return w.finish();
}

function decodeSession(b: Uint8Array): { session: Session; answer: SessionAnswer } {
  const r = new ByteReader(b);
  const version = r.u8();
  if (version !== SESSION_RECORD_VERSION) {
    throw new RaftKvError('DATA_CORRUPTION', `kv: unknown session record format ${version}`);
  }
  const lastSeq = r.uvarint();
  const lastIndex = r.uvarint();
  const answer = readAnswer(r);
  r.end();
  return { session: { lastSeq, lastIndex }, answer };
}

function encodeMembers(members: ReadonlyMap<number, Member>): Uint8Array {
  const list = [...members.values()].sort((a, b) => a.id - b.id);
  return Buffer.from(JSON.stringify({ members: list }), 'utf8');
}

function decodeMembers(b: Uint8Array): Map<number, Member> {
  const bad = (): RaftKvError => new RaftKvError('DATA_CORRUPTION', 'kv: malformed member table');
  let o: unknown;
  try {
    o = JSON.parse(Buffer.from(b).toString('utf8'));
  } catch {
    throw bad();
  }
  const list = (o as { members?: unknown } | null)?.members;
  if (!Array.isArray(list)) throw bad();
  const out = new Map<number, Member>();
  for (const m of list as unknown[]) {
    const r = m as Record<string, unknown> | null;
    if (
      r === null ||
      typeof r !== 'object' ||
      !Number.isSafeInteger(r['id']) ||
      typeof r['peerAddress'] !== 'string' ||
      typeof r['clientAddress'] !== 'string' ||
      typeof r['learner'] !== 'boolean'
    ) {
      throw bad();
    }
    const id = r['id'] as number;
    out.set(id, { id, peerAddress: r['peerAddress'], clientAddress: r['clientAddress'], learner: r['learner'] });
  }
  return out;
}

/** The ConfChange context of an add: where the new member listens. */
export interface MemberContext {
  readonly peerAddress: string;
  readonly clientAddress: string;
}

export function encodeMemberContext(ctx: MemberContext): Uint8Array {
  return Buffer.from(JSON.stringify({ peerAddress: ctx.peerAddress, clientAddress: ctx.clientAddress }), 'utf8');
}

/** undefined for an empty or malformed context (the change still applies; addresses stay as they were or ""). */
export function decodeMemberContext(b: Uint8Array): MemberContext | undefined {
  if (b.length === 0) return undefined;
  try {
    const o = JSON.parse(Buffer.from(b).toString('utf8')) as Record<string, unknown> | null;
    if (o !== null && typeof o['peerAddress'] === 'string' && typeof o['clientAddress'] === 'string') {
      return { peerAddress: o['peerAddress'], clientAddress: o['clientAddress'] };
    }
    return undefined;
  } catch {
    return undefined;
  }
}

/** The ConfState implied by a member table: voters and learners, sorted by id. */
export function confStateOf(members: Iterable<Member>): ConfState {
  const voters: number[] = [];
  const learners: number[] = [];
  for (const m of members) (m.learner ? learners : voters).push(m.id);
  return { voters: voters.sort((a, b) => a - b), learners: learners.sort((a, b) => a - b) };
}

function cmpOp(cmp: number, op: Compare['op']): boolean {
  switch (op) {
    case '=':
      return cmp === 0;
    case '!=':
      return cmp !== 0;
    case '<':
      return cmp < 0;
    case '>':
      return cmp > 0;
    default:
      return assertNever(op);
  }
}

function toKeyValue(key: Uint8Array, sv: StoredValue, keysOnly = false): KeyValue {
  return {
    key,
    value: keysOnly ? new Uint8Array(0) : sv.value,
    createIndex: sv.createIndex,
    modIndex: sv.modIndex,
    version: sv.version,
  };
}

/** Writes of the batch being applied, seen by later entries of the same batch before LevelDB has them. */
class Overlay {
  /** Envelopes of this batch's normal entries, decoded once (by prefetch), by entry index. */
  readonly envelopes = new Map<Index, Envelope>();
  readonly data = new Map<string, { key: Uint8Array; sv: StoredValue | undefined }>(); // undefined = deleted
  /** Values read from LevelDB for this batch (no other writer exists while a batch is applied). */
  readonly cache = new Map<string, StoredValue | undefined>();
  digestChanged = false; // a write since the digest was last added to the history

  inRange(range: KeyRange): { ks: string; key: Uint8Array; sv: StoredValue | undefined }[] {
    const lo = keyString(range.key);
    const hi = isOpenEnd(range.end) ? undefined : keyString(range.end);
    const out: { ks: string; key: Uint8Array; sv: StoredValue | undefined }[] = [];
    for (const [ks, v] of this.data) {
      if (ks >= lo && (hi === undefined || ks < hi)) out.push({ ks, key: v.key, sv: v.sv });
    }
    return out.sort((a, b) => (a.ks < b.ks ? -1 : a.ks > b.ks ? 1 : 0));
  }
}

/** A simple FIFO mutex: apply, snapshot capture, restore, bootstrap and close run one at a time. */
class Serial {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
}

async function writeFileDurably(dir: string, name: string, content: string): Promise<void> {
  const tmp = join(dir, `${name}.tmp`);
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(content, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, join(dir, name));
  await fsyncDir(dir);
}

/**
 * Opens a LevelDB store. 'existing' never creates one: a store that lost its CURRENT or MANIFEST, or a table
 * file its MANIFEST names, is refused with LevelDB's own reason (DATA_CORRUPTION), not replaced by an empty one.
 */
async function openDb(path: string, writeBufferSize: number, mode: 'create' | 'existing'): Promise<Db> {
  // Every option must be a number: classic-level reads a present-but-undefined option as garbage (it once
  // left the memtable unflushed: LevelDB's log and the process's memory grew with every write).
  const db = new ClassicLevel<Uint8Array, Uint8Array>(path, {
    keyEncoding: 'view',
    valueEncoding: 'view',
    writeBufferSize,
    createIfMissing: mode === 'create',
    errorIfExists: false,
  });
  try {
    await db.open();
  } catch (err) {
    if (mode === 'create') throw err;
    throw new RaftKvError('DATA_CORRUPTION', `kv: cannot open the LevelDB store ${path}: ${levelCause(err)}; ${KV_CORRUPTION_REMEDY}`);
  }
  return db;
}

/** LevelDB's own message under classic-level's wrapper ("Database failed to open" says nothing). */
function levelCause(err: unknown): string {
  const cause = (err as { cause?: unknown } | null)?.cause;
  if (cause instanceof Error) return cause.message;
  return err instanceof Error ? err.message : String(err);
}

/**
 * True if the store at `path` was created and never written (a first open that crashed before CURRENT): no table
 * file and only empty logs. Decided from the file listing alone: opening a store rewrites its MANIFEST and log.
 */
async function isUntouchedDb(path: string): Promise<boolean> {
  for (const name of await readdir(path)) {
    if (name.endsWith('.ldb') || name.endsWith('.sst')) return false;
    if (name.endsWith('.log') && (await stat(join(path, name))).size > 0) return false;
  }
  return true;
}

async function readTextIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function freeBytes(dir: string): Promise<number> {
  const st = await statfs(dir);
  return st.bavail * st.bsize;
}

/** ENOSPC, as LevelDB reports it (an IO error whose text carries strerror) or as Node does (err.code). */
function isNoSpace(err: unknown): boolean {
  if ((err as NodeJS.ErrnoException | null)?.code === 'ENOSPC') return true;
  return /No space left on device/.test(levelCause(err));
}

/** Two key-ordered write lists as one; on the same key `newer` wins. */
function mergeWrites<T extends { ks: string }>(older: readonly T[], newer: readonly T[]): T[] {
  const byKey = new Map<string, T>();
  for (const w of older) byKey.set(w.ks, w);
  for (const w of newer) byKey.set(w.ks, w);
  return [...byKey.values()].sort((a, b) => (a.ks < b.ks ? -1 : a.ks > b.ks ? 1 : 0));
}

function isRaftKvErrorCode(err: unknown, code: RaftKvError['code']): boolean {
  return err instanceof RaftKvError && err.code === code;
}

async function dirSizeBytes(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir)) {
    const s = await stat(join(dir, name));
    if (s.isFile()) total += s.size;
  }
  return total;
}

export class KvStateMachine {
  private appliedIndexValue: Index = 0; // last entry whose effects are readable (in LevelDB or the write buffers)
  private appliedTermValue: Term = 0; // term of that entry
  private readonly memberTable = new Map<number, Member>(); // as of appliedIndex
  /** As of appliedIndex; Map order is LRU order: lastIndex strictly increasing from first to last. */
  private readonly sessions = new Map<string, Session>();
  private readonly serial = new Serial();
  private readonly snapshotSerial = new Serial(); // one createSnapshot at a time: its .tmp cleanup is then safe
  private readonly snapshotsInFlight = new Set<Promise<unknown>>(); // streams reading the live db
  private readonly readsInFlight = new Set<Promise<unknown>>(); // range() calls reading the live db
  private readGate: Promise<void> | undefined; // set while the live db is swapped or closed: new reads wait
  private readonly digest = new KeySpaceDigest(); // the key space as of appliedIndex (with the write buffers)
  private digestStored = false; // LevelDB holds a digest record (false: a directory from before digests)
  private digestHistory: { index: Index; value: DigestValue }[] = []; // the digest after each change, oldest first
  private broken: Error | undefined; // a batch write failed: in-memory state may be ahead of LevelDB
  private unflushed = new WriteBuffer(); // applied writes not yet handed to LevelDB
  private readonly flushing: WriteBuffer[] = []; // handed to LevelDB (queued or being written), oldest first
  private flushDone: Promise<void> = Promise.resolve(); // the batch being written (never rejects; sets broken)
  private flushTimer: NodeJS.Timeout | undefined; // the next write-behind flush
  /** Called once when a background LevelDB batch fails (the state machine is then broken). */
  onFlushFailure: ((err: Error) => void) | undefined;
  /**
   * Called when a background batch fails for want of space (DISK_FULL). Nothing is lost or broken: the batches
   * stay in memory (reads see them), later ones queue behind them, and retryFlush() writes them in order.
   */
  onFlushStalled: ((err: Error) => void) | undefined;
  private stalled: RaftKvError | undefined; // a batch failed with ENOSPC: nothing is written until retryFlush()
  private closed = false;
  private readonly limits: KvLimits;
  private readonly sessionTtlEntries: number;
  private readonly maxSessions: number;

  private constructor(
    private readonly dir: string,
    private db: Db,
    private generation: number, // n of the live db-<n>
    private readonly opts: KvStateMachineOptions,
  ) {
    this.limits = opts.limits ?? DEFAULT_KV_LIMITS;
    this.sessionTtlEntries = opts.sessionTtlEntries ?? DEFAULT_SESSION_TTL_ENTRIES;
    this.maxSessions = opts.maxSessions ?? DEFAULT_MAX_SESSIONS;
    if (!(this.sessionTtlEntries >= 1 && this.maxSessions >= 1)) {
      throw new RaftKvError('INVALID_ARGUMENT', 'kv: sessionTtlEntries and maxSessions must be >= 1');
    }
  }

  /**
   * Opens the state machine in `dir` (creating it in an empty or missing directory), checks its key space
   * against its digest, then removes what an interrupted restore left. Refuses (DATA_CORRUPTION, naming the file
   * and the remedy) a directory whose generation pointer or LevelDB store is missing or damaged; removes nothing
   * before the live store has verified.
   */
  static async open(dir: string, opts: KvStateMachineOptions = {}): Promise<KvStateMachine> {
    await mkdir(dir, { recursive: true });
    const generation = await KvStateMachine.liveGeneration(dir);
    const live = `db-${generation}`;
    const db = await openDb(join(dir, live), DEFAULT_WRITE_BUFFER_BYTES, 'existing');
    const sm = new KvStateMachine(dir, db, generation, opts);
    try {
      await sm.load();
      if (opts.verifyOnOpen !== false || !sm.digestStored) await sm.verifyKeySpace();
    } catch (err) {
      await db.close();
      if (err instanceof RaftKvError) throw err;
      // LevelDB opened but cannot read its own tables (truncated, flipped bits in a block, ...).
      throw new RaftKvError('DATA_CORRUPTION', `kv: the LevelDB store ${join(dir, live)} is damaged: ${levelCause(err)}; ${KV_CORRUPTION_REMEDY}`);
    }
    for (const name of await readdir(dir)) {
      if (/^db-\d+$/.test(name) && name !== live) {
        opts.logger?.info({ dir, name }, 'kv: removing the other side of an interrupted restore');
        await rm(join(dir, name), { recursive: true, force: true });
      }
    }
    return sm;
  }

  /** The generation CURRENT names (after checking that its store exists), or 1 in a fresh directory. */
  private static async liveGeneration(dir: string): Promise<number> {
    const pointer = join(dir, CURRENT);
    const text = await readTextIfExists(pointer);
    const names = (await readdir(dir)).filter((n) => n !== CURRENT && n !== `${CURRENT}.tmp`);
    if (text === undefined) {
      // A fresh directory, or a first open that crashed between creating db-1 and writing CURRENT (db-1 then
      // holds nothing: the first apply comes after open). Anything else means the pointer was lost.
      if (names.length > 1 || (names.length === 1 && (names[0] !== 'db-1' || !(await isUntouchedDb(join(dir, 'db-1')))))) {
        throw new RaftKvError(
          'DATA_CORRUPTION',
          `kv: ${pointer} is missing but ${dir} holds ${names.slice(0, 5).join(', ')}: the pointer to the live LevelDB store ` +
            `is lost and nothing was removed; if you know which db-N is live, write "db-N" into ${pointer}; otherwise ${KV_CORRUPTION_REMEDY}`,
        );
      }
      const db = await openDb(join(dir, 'db-1'), DEFAULT_WRITE_BUFFER_BYTES, 'create');
      await db.close();
      await writeFileDurably(dir, CURRENT, 'db-1\n');
      return 1;
    }
    const m = /^db-(\d+)$/.exec(text.trim());
    if (m?.[1] === undefined) {
      throw new RaftKvError('DATA_CORRUPTION', `kv: ${pointer} holds ${JSON.stringify(text.trim())}, not "db-N"; ${KV_CORRUPTION_REMEDY}`);
    }
    const live = `db-${m[1]}`;
    if (!names.includes(live)) {
      throw new RaftKvError(
        'DATA_CORRUPTION',
        `kv: ${pointer} names ${live}, which does not exist (${dir} holds ${names.slice(0, 5).join(', ') || 'nothing else'}); ` +
          `nothing was removed; ${KV_CORRUPTION_REMEDY}`,
      );
    }
    return Number(m[1]);
  }

  /** Loads applied index/term, members and sessions from the live db. */
  private async load(): Promise<void> {
    const applied = await this.db.get(KEY_APPLIED);
    const a = applied === undefined ? { index: 0, term: 0 } : decodeApplied(applied);
    this.appliedIndexValue = a.index;
    this.appliedTermValue = a.term;
    this.memberTable.clear();
    const members = await this.db.get(KEY_MEMBERS);
    if (members !== undefined) for (const [id, m] of decodeMembers(members)) this.memberTable.set(id, m);
    const digest = await this.db.get(KEY_DIGEST);
    this.digestStored = digest !== undefined;
    this.digest.set(digest === undefined ? EMPTY_DIGEST : decodeDigest(digest));
    this.digestHistory = [{ index: this.appliedIndexValue, value: this.digest.value() }];
    const loaded: [string, Session][] = [];
    for await (const [k, v] of this.db.iterator({ gte: SESSION_LO, lt: SESSION_HI })) {
      const clientId = Buffer.from(k.subarray(1)).toString('utf8');
      loaded.push([clientId, decodeSession(v).session]);
    }
    loaded.sort((x, y) => x[1].lastIndex - y[1].lastIndex);
    this.sessions.clear();
    for (const [id, s] of loaded) this.sessions.set(id, s);
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

  /** Number of live client sessions (for status and tests). */
  sessionCount(): number {
    return this.sessions.size;
  }

  private check(): void {
    if (this.closed) throw new RaftKvError('UNAVAILABLE', 'kv: the state machine is closed');
    if (this.broken !== undefined) {
      throw new Error(`kv: a LevelDB batch failed earlier; reopen the state machine (${this.broken.message})`);
    }
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
      throw this.breakWith(err);
    }
  }

  /**
   * In-memory sessions and members may be ahead of LevelDB now (and LevelDB itself refuses writes after a
   * failed one): refuse further use until closed and reopened, which resumes after the last flushed entry.
   */
  private breakWith(err: unknown): Error {
    const e = err instanceof Error ? err : new Error(String(err));
    this.broken ??= e;
    if (isNoSpace(e)) return new RaftKvError('DISK_FULL', `kv: LevelDB write failed, reopen when space returns: ${levelCause(e)}`);
    return e;
  }

  /** True while batches wait for disk space (see onFlushStalled). */
  get isFlushStalled(): boolean {
    return this.stalled !== undefined;
  }

  /**
   * After a DISK_FULL stall: writes the waiting batches in order. LevelDB keeps a failed background write as a
   * sticky error, so a batch that fails again is retried once on a reopened store. Returns true when every
   * waiting batch landed (the stall is over), false while there is still no space. Other errors break the
   * state machine (as any failed batch does).
   */
  async retryFlush(): Promise<boolean> {
    if (this.stalled === undefined) return true;
    const done = this.flushDone.then(async () => {
      if (this.stalled === undefined || this.broken !== undefined) return;
      for (let reopened = false; this.flushing.length > 0; ) {
        const head = this.flushing[0];
        if (head === undefined) break;
        try {
          this.opts.failpoint?.('flush');
          await this.db.batch([...head.ops.values()]);
          this.flushing.shift();
        } catch (err) {
          if (!isNoSpace(err)) {
            this.opts.logger?.warn({ err: levelCause(err) }, 'kv: a LevelDB batch failed; the state machine must be reopened');
            this.onFlushFailure?.(this.breakWith(err));
            return;
          }
          // Still no space; or LevelDB's sticky error, which only a reopen clears (and a reopen writes a new log and
          // MANIFEST: without room for them it would leave no store at all).
          if (reopened || (await freeBytes(this.dir)) < REOPEN_MIN_FREE_BYTES) return;
          reopened = true;
          await this.withReadsQuiesced(async () => {
            await this.db.close();
            this.db = await openDb(join(this.dir, `db-${this.generation}`), DEFAULT_WRITE_BUFFER_BYTES, 'existing');
          });
        }
      }
      this.stalled = undefined;
      this.opts.logger?.info({ applied: this.appliedIndexValue }, 'kv: disk has space again: the waiting batches landed');
    });
    this.flushDone = done.catch((err: unknown) => {
      // The reopen failed: the store is unusable until the process restarts (recovery replays the WAL).
      this.onFlushFailure?.(this.breakWith(err));
    });
    await this.flushDone;
    if (this.stalled === undefined && this.broken === undefined) void this.startFlush(); // what applied meanwhile
    return this.stalled === undefined && this.broken === undefined;
  }

  // ------------------------------------------------------------ write-behind

  /** A LevelDB point read through the write buffers (newest first). */
  private getSync(key: Uint8Array): Uint8Array | undefined {
    const v = this.buffered(key);
    return v === undefined ? this.db.getSync(key) : (v ?? undefined);
  }

  private async getAsync(key: Uint8Array): Promise<Uint8Array | undefined> {
    const v = this.buffered(key);
    return v === undefined ? this.db.get(key) : (v ?? undefined);
  }

  /** undefined: in no write buffer; null: deleted there; else the newest buffered value. */
  private buffered(key: Uint8Array): Uint8Array | null | undefined {
    const v = this.unflushed.get(key);
    if (v !== undefined) return v;
    for (let i = this.flushing.length - 1; i >= 0; i--) {
      const f = this.flushing[i]?.get(key);
      if (f !== undefined) return f;
    }
    return undefined;
  }

  /** Resolves once everything applied before the call is in LevelDB (not fsynced); returns that applied index. */
  async flush(): Promise<Index> {
    const index = this.appliedIndexValue;
    await this.flushAll();
    return index;
  }

  /** Queues a batch of applied writes; starts a flush when the buffer is full, else makes sure one is timed. */
  private bufferWrites(batch: readonly BatchOp[]): void {
    for (const op of batch) this.unflushed.add(op);
    if (this.unflushed.ops.size >= APPLY_FLUSH_MAX_KEYS || this.unflushed.bytes >= APPLY_FLUSH_MAX_BYTES) {
      void this.startFlush(); // never rejects: a failure breaks the state machine and calls onFlushFailure
    } else if (this.flushTimer === undefined) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = undefined;
        void this.startFlush(); // never rejects (as above)
      }, APPLY_FLUSH_INTERVAL_MS);
      this.flushTimer.unref();
    }
  }

  /** Hands the buffered writes to LevelDB as one batch, after the batch being written (if any). */
  private startFlush(): Promise<void> {
    if (this.flushTimer !== undefined) {
      clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
    }
    if (this.unflushed.ops.size === 0) return this.flushDone;
    const buffer = this.unflushed;
    this.unflushed = new WriteBuffer();
    this.flushing.push(buffer);
    this.flushDone = this.flushDone.then(async () => {
      if (this.broken !== undefined) return; // reads fail from now on; the buffers stay for them to shadow
      if (this.stalled !== undefined) return; // waits for retryFlush(), behind the batch that did not fit
      try {
        this.opts.failpoint?.('flush');
        await this.db.batch([...buffer.ops.values()]);
        this.flushing.shift(); // it is `buffer`: batches land in order
      } catch (err) {
        if (isNoSpace(err)) {
          this.stalled = new RaftKvError('DISK_FULL', `kv: no space for a LevelDB batch (${levelCause(err)}); it waits in memory`);
          this.opts.logger?.warn({ err: levelCause(err), waiting: this.flushing.length }, 'kv: disk full: applied batches wait in memory');
          this.onFlushStalled?.(this.stalled);
          return;
        }
        const e = this.breakWith(err);
        this.opts.logger?.warn({ err: e.message }, 'kv: a LevelDB batch failed; the state machine must be reopened');
        this.onFlushFailure?.(e);
      }
    });
    return this.flushDone;
  }

  /**
   * Everything applied before this call is in LevelDB (not fsynced) when it resolves; later applies may be
   * too (LevelDB always holds whole apply batches). Throws if a batch failed.
   */
  private async flushAll(): Promise<void> {
    await this.startFlush();
    this.check();
    if (this.stalled !== undefined) throw this.stalled;
  }

  /** Like flushAll, but while the disk is full it returns with batches still waiting (scan() merges them). */
  private async flushIfPossible(): Promise<void> {
    await this.startFlush();
    this.check();
  }

  /** The waiting batches' writes to data keys in [lo, hi), newest per key, in key order (only while stalled). */
  private waitingInRange(lo: Uint8Array, hi: Uint8Array): { ks: string; key: Uint8Array; sv: StoredValue | undefined }[] {
    const newest = new Map<string, BatchOp>();
    for (const b of [...this.flushing, this.unflushed]) for (const [ks, op] of b.ops) newest.set(ks, op);
    const los = keyString(lo);
    const his = keyString(hi);
    const out: { ks: string; key: Uint8Array; sv: StoredValue | undefined }[] = [];
    for (const [ks, op] of newest) {
      if (ks < los || ks >= his) continue;
      out.push({ ks: ks.slice(1), key: op.key.subarray(1), sv: op.type === 'put' ? decodeStoredValue(op.value) : undefined });
    }
    return out.sort((a, b) => (a.ks < b.ks ? -1 : a.ks > b.ks ? 1 : 0));
  }

  private async applyChecked(entries: readonly Entry[], onOutcomes: ((outcomes: readonly ApplyOutcome[]) => void) | undefined): Promise<ApplyOutcome[]> {
    const outcomes: ApplyOutcome[] = [];
    const overlay = new Overlay();
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
          this.applyConfChange(decodeConfChange(e.data));
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
    for (const [clientId, answer] of sessionWrites) {
      const s = this.sessions.get(clientId);
      if (s === undefined) throw new Error(`kv: session ${clientId} written but not live`);
      batch.push({ type: 'put', key: sessionKey(clientId), value: encodeSession(s, answer) });
    }
    if (membersChanged) batch.push({ type: 'put', key: KEY_MEMBERS, value: encodeMembers(this.memberTable) });
    batch.push({ type: 'put', key: KEY_APPLIED, value: encodeApplied(index, term) });
    batch.push({ type: 'put', key: KEY_DIGEST, value: encodeDigest(this.digest.value()) });
    // Readable now through the write buffer; in LevelDB within APPLY_FLUSH_INTERVAL_MS (the applied record with it).
    this.bufferWrites(batch);
    this.appliedIndexValue = index;
    this.appliedTermValue = term;
    onOutcomes?.(outcomes);
    // Backpressure: when a second buffer already waits behind the batch being written, wait for both.
    if (this.flushing.length > 1) await this.flushDone;
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
    const addOp = (op: Op): void => {
      if (op.type === 'put') add(op.key);
      else if (op.type === 'delete' && op.range.end.length === 0) add(op.range.key);
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
          for (const c of cmd.compares) add(c.key);
          cmd.success.forEach(addOp);
          cmd.failure.forEach(addOp);
          break;
        default:
          assertNever(cmd);
      }
    }
    for (const [ks, k] of keys) {
      const v = this.getSync(prefixed(PREFIX_DATA, k));
      overlay.cache.set(ks, v === undefined ? undefined : decodeStoredValue(v));
    }
  }

  /** Follows the core's rule (confChangeProblem): an inapplicable change leaves the table unchanged. */
  private applyConfChange(cc: ConfChange): void {
    const problem = confChangeProblem(this.confState(), cc);
    if (problem !== undefined) {
      this.opts.logger?.warn({ nodeId: cc.nodeId, problem }, 'kv: conf change ignored');
      return;
    }
    const ctx = decodeMemberContext(cc.context);
    const prev = this.memberTable.get(cc.nodeId);
    switch (cc.type) {
      case 'add-voter':
      case 'add-learner':
        if (prev === undefined && ctx === undefined) {
          this.opts.logger?.warn({ nodeId: cc.nodeId }, 'kv: conf change adds a member without addresses');
        }
        this.memberTable.set(cc.nodeId, {
          id: cc.nodeId,
          peerAddress: ctx?.peerAddress ?? prev?.peerAddress ?? '',
          clientAddress: ctx?.clientAddress ?? prev?.clientAddress ?? '',
          learner: cc.type === 'add-learner',
        });
        return;
      case 'remove':
        this.memberTable.delete(cc.nodeId);
        return;
      default:
        assertNever(cc.type);
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
        this.touchSession(clientId, { lastSeq: seq, lastIndex: e.index });
        sessionWrites.set(clientId, answer);
        return answerOutcome(answer);
      }
    }
    let answer: SessionAnswer;
    try {
      validateCommand(env.command, this.limits);
      answer = { type: 'result', result: await this.execute(env.command, e.index, overlay) };
    } catch (err) {
      if (!(err instanceof RaftKvError) || err.code !== 'INVALID_ARGUMENT') throw err;
      answer = { type: 'error', code: err.code, message: err.message };
    }
    if (clientId !== '') {
      this.touchSession(clientId, { lastSeq: seq, lastIndex: e.index });
      sessionWrites.set(clientId, answer);
    }
    return answerOutcome(answer);
  }

  private async storedAnswer(clientId: string): Promise<SessionAnswer> {
    const v = await this.getAsync(sessionKey(clientId));
    if (v === undefined) throw new Error(`kv: session ${clientId} is live but has no record`);
    return decodeSession(v).answer;
  }

  /** Moves the session to the most recently used end. */
  private touchSession(clientId: string, s: Session): void {
    this.sessions.delete(clientId);
    this.sessions.set(clientId, s);
  }

  /** The log-driven expiry rule, after applying entry `index` (identical on every replica). */
  private expireSessions(index: Index, sessionWrites: Map<string, SessionAnswer>, batch: BatchOp[]): void {
    for (const [clientId, s] of this.sessions) {
      const expired = index - s.lastIndex >= this.sessionTtlEntries;
      if (!expired && this.sessions.size <= this.maxSessions) break;
      this.sessions.delete(clientId);
      sessionWrites.delete(clientId);
      batch.push({ type: 'del', key: sessionKey(clientId) });
    }
  }

  // ------------------------------------------------------------ commands

  private async read(key: Uint8Array, overlay: Overlay | undefined): Promise<StoredValue | undefined> {
    if (overlay !== undefined) {
      const ks = keyString(key);
      const w = overlay.data.get(ks);
      if (w !== undefined) return w.sv;
      if (overlay.cache.has(ks)) return overlay.cache.get(ks);
    }
    const v = await this.getAsync(prefixed(PREFIX_DATA, key));
    return v === undefined ? undefined : decodeStoredValue(v);
  }

  /** The live keys of a range in key order, the batch's own writes merged over LevelDB. */
  private async *scan(range: KeyRange, overlay: Overlay | undefined): AsyncGenerator<[Uint8Array, StoredValue]> {
    if (range.end.length === 0) {
      const sv = await this.read(range.key, overlay);
      if (sv !== undefined) yield [range.key, sv];
      return;
    }
    await this.flushIfPossible(); // the iterator reads LevelDB, which then holds every batch but this one's
    const gte = prefixed(PREFIX_DATA, range.key);
    const lt = isOpenEnd(range.end) ? DATA_HI : prefixed(PREFIX_DATA, range.end);
    // While the disk is full, batches wait in memory: they are merged like this batch's own writes (an apply
    // sees them too). This batch's writes are newer, so they replace a waiting write to the same key.
    const waiting = this.stalled === undefined ? [] : this.waitingInRange(gte, lt);
    const own = overlay?.inRange(range) ?? [];
    const pending = waiting.length === 0 ? own : mergeWrites(waiting, own);
    const shadowed = new Set(waiting.map((w) => w.ks));
    let p = 0;
    const it = this.db.iterator({ highWaterMarkBytes: SCAN_READ_BYTES, gte, lt });
    try {
      for (;;) {
        const chunk = await it.nextv(2000);
        if (chunk.length === 0) break;
        for (const [k, v] of chunk) {
          const key = k.subarray(1);
          const ks = keyString(key);
          // The batch's own writes up to and including this key come first (and replace it if equal).
          for (let w = pending[p]; w !== undefined && w.ks <= ks; w = pending[++p]) {
            if (w.sv !== undefined) yield [w.key, w.sv];
          }
          if (overlay?.data.has(ks) === true || shadowed.has(ks)) continue; // overwritten or deleted since LevelDB got it
          yield [new Uint8Array(key), decodeStoredValue(v)]; // a plain copy: LevelDB gives Buffers
        }
      }
    } finally {
      await it.close();
    }
    for (let w = pending[p]; w !== undefined; w = pending[++p]) if (w.sv !== undefined) yield [w.key, w.sv];
  }

  private async rangeWith(req: RangeRequest, overlay: Overlay | undefined): Promise<RangeResult> {
    const limit = req.limit === 0 || req.limit > this.limits.maxRangeLimit ? this.limits.maxRangeLimit : req.limit;
    const kvs: KeyValue[] = [];
    let count = 0;
    for await (const [key, sv] of this.scan(req, overlay)) {
      count++;
      if (!req.countOnly && kvs.length < limit) kvs.push(toKeyValue(key, sv, req.keysOnly));
    }
    return { kvs, more: !req.countOnly && count > kvs.length, count };
  }

  private async put(
    key: Uint8Array,
    value: Uint8Array,
    prevKv: boolean,
    index: Index,
    overlay: Overlay,
  ): Promise<KeyValue | undefined> {
    const prev = await this.read(key, overlay);
    const sv: StoredValue =
      prev === undefined
        ? { createIndex: index, modIndex: index, version: 1, value }
        : { createIndex: prev.createIndex, modIndex: index, version: prev.version + 1, value };
    this.write(overlay, key, prev, sv);
    return prevKv && prev !== undefined ? toKeyValue(key, prev) : undefined;
  }

  /** The one place a batch changes a key: the overlay and the digest move together. */
  private write(overlay: Overlay, key: Uint8Array, prev: StoredValue | undefined, next: StoredValue | undefined): void {
    overlay.data.set(keyString(key), { key, sv: next });
    this.digest.replace(key, prev, next);
    overlay.digestChanged = true;
  }

  private async deleteRange(
    range: KeyRange,
    prevKv: boolean,
    overlay: Overlay,
  ): Promise<{ deleted: number; prevKvs: KeyValue[] }> {
    const victims: [Uint8Array, StoredValue][] = [];
    for await (const kv of this.scan(range, overlay)) victims.push(kv);
    for (const [key, prev] of victims) this.write(overlay, key, prev, undefined);
    return { deleted: victims.length, prevKvs: prevKv ? victims.map(([k, sv]) => toKeyValue(k, sv)) : [] };
  }

  private async compare(c: Compare, overlay: Overlay): Promise<boolean> {
    const sv = await this.read(c.key, overlay);
    switch (c.target) {
      case 'value':
        return sv !== undefined && cmpOp(compareBytes(sv.value, c.value), c.op);
      case 'version':
        return cmpOp((sv?.version ?? 0) - c.number, c.op);
      case 'create':
        return cmpOp((sv?.createIndex ?? 0) - c.number, c.op);
      case 'mod':
        return cmpOp((sv?.modIndex ?? 0) - c.number, c.op);
      default:
        return assertNever(c);
    }
  }

  private async execute(cmd: Command, index: Index, overlay: Overlay): Promise<CommandResult> {
    switch (cmd.type) {
      case 'put':
        return { type: 'put', prevKv: await this.put(cmd.key, cmd.value, cmd.prevKv, index, overlay) };
      case 'delete':
        return { type: 'delete', ...(await this.deleteRange(cmd.range, cmd.prevKv, overlay)) };
      case 'txn': {
        let succeeded = true;
        for (const c of cmd.compares) {
          if (!(await this.compare(c, overlay))) {
            succeeded = false;
            break;
          }
        }
        const results: OpResult[] = [];
        for (const op of succeeded ? cmd.success : cmd.failure) {
          switch (op.type) {
            case 'put':
              results.push({ type: 'put', prevKv: await this.put(op.key, op.value, op.prevKv, index, overlay) });
              break;
            case 'delete':
              results.push({ type: 'delete', ...(await this.deleteRange(op.range, op.prevKv, overlay)) });
              break;
            case 'range':
              results.push({ type: 'range', result: await this.rangeWith(op.request, overlay) });
              break;
            default:
              assertNever(op);
          }
        }
        return { type: 'txn', succeeded, results };
      }
      default:
        return assertNever(cmd);
    }
  }

  /**
   * A local read of the applied state (at least appliedIndex as of the call). The caller decides whether that
   * is linearizable (ReadIndex) or serializable. Throws INVALID_ARGUMENT for a bad request.
   */
  async range(req: RangeRequest): Promise<RangeResult> {
    this.check();
    validateRange(req, this.limits);
    while (this.readGate !== undefined) await this.readGate;
    this.check();
    const read = this.rangeWith(req, undefined);
    this.readsInFlight.add(read);
    try {
      return await read;
    } finally {
      this.readsInFlight.delete(read);
    }
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
    const stream = (async () => {
      let writer: SnapshotFileWriter | undefined;
      try {
        writer = await SnapshotFileWriter.create(snapDir, { ...metadata, members });
        for (;;) {
          const chunk = await iterator.nextv(SNAPSHOT_READ_ENTRIES);
          if (chunk.length === 0) break;
          for (const [k, v] of chunk) await writer.record(k, v);
        }
        const path = await writer.commit(this.opts.failpoint);
        return path;
      } catch (err) {
        await writer?.abort(); // a no-op once commit() has closed the file
        throw err;
      } finally {
        await iterator.close();
      }
    })();
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
      await rm(nextDir, { recursive: true, force: true });
      const fresh = await openDb(nextDir, INGEST_WRITE_BUFFER_BYTES, 'create');
      const seen: { applied: { index: Index; term: Term } | undefined; digest: DigestValue | undefined } = { applied: undefined, digest: undefined };
      const ingested = new KeySpaceDigest();
      try {
        await readSnapshotFile(path, async (records) => {
          const ops: BatchOp[] = [];
          for (const { key, value } of records) {
            if (key[0] === PREFIX_DATA) ingested.add(key.subarray(1), decodeStoredValue(value));
            else if (key[0] === PREFIX_META && compareBytes(key, KEY_APPLIED) === 0) seen.applied = decodeApplied(value);
            else if (key[0] === PREFIX_META && compareBytes(key, KEY_DIGEST) === 0) seen.digest = decodeDigest(value);
            ops.push({ type: 'put', key, value });
          }
          await fresh.batch(ops);
        });
        if (seen.applied?.index !== header.index || seen.applied.term !== header.term) {
          throw new RaftKvError('DATA_CORRUPTION', `kv: snapshot ${path}: applied record does not match its header`);
        }
        // A snapshot from before digests carries none: the ingested records' digest is stored instead.
        if (seen.digest !== undefined && !digestsEqual(seen.digest, ingested.value())) {
          throw new RaftKvError(
            'DATA_CORRUPTION',
            `kv: snapshot ${path}: its records digest to ${formatDigest(ingested.value())}, not the ${formatDigest(seen.digest)} it carries`,
          );
        }
        await fresh.batch(
          [
            { type: 'put', key: KEY_DIGEST, value: encodeDigest(ingested.value()) },
            { type: 'put', key: KEY_APPLIED, value: encodeApplied(header.index, header.term) },
          ],
          { sync: true },
        );
      } catch (err) {
        await fresh.close();
        await rm(nextDir, { recursive: true, force: true });
        throw err;
      }
      await fresh.close();
      this.opts.failpoint?.('restore-before-swap');
      await writeFileDurably(this.dir, CURRENT, `db-${nextGen}\n`); // the commit point
      this.opts.failpoint?.('restore-after-swap');
      const oldDir = join(this.dir, `db-${this.generation}`);
      await this.withReadsQuiesced(async () => {
        await this.db.close();
        this.db = await openDb(nextDir, DEFAULT_WRITE_BUFFER_BYTES, 'existing');
        this.generation = nextGen;
        await this.load();
      });
      await rm(oldDir, { recursive: true, force: true });
      this.opts.logger?.info({ path, index: header.index, term: header.term }, 'kv: snapshot restored');
      return { index: header.index, term: header.term, confState: header.confState };
    });
  }

  /** Bytes of the live LevelDB directory on disk. */
  async dataSizeBytes(): Promise<number> {
    return dirSizeBytes(join(this.dir, `db-${this.generation}`));
  }

  async close(): Promise<void> {
    await this.serial.run(async () => {
      if (this.closed) return;
      this.closed = true; // reads waiting at the gate then fail with UNAVAILABLE
      await this.startFlush(); // never rejects: after a failed batch the rest is replayed from the WAL
      await this.withReadsQuiesced(() => this.db.close());
    });
  }
}

/** Keeps the newest `keep` snapshot files and removes stray .tmp files (a crash between write and rename). */
async function pruneSnapshots(snapDir: string, keep: number): Promise<void> {
  const files = await listSnapshotFiles(snapDir);
  for (const f of files.slice(keep)) await rm(join(snapDir, f.name), { force: true });
  for (const name of await readdir(snapDir)) {
    if (name.startsWith('snapshot-') && name.endsWith('.snap.tmp')) await rm(join(snapDir, name), { force: true });
  }
}

function answerOutcome(a: SessionAnswer): ApplyOutcome {
  switch (a.type) {
    case 'result':
      return { type: 'result', result: a.result };
    case 'error':
      return { type: 'error', error: new RaftKvError(a.code, a.message) };
    default:
      return assertNever(a);
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
