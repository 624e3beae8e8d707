// In-memory log storage for one simulated node, with the split a real disk has: what the process has written
// (visible to the core at once, like the page cache) and what is durable (synced). A crash keeps the durable
// image plus a random prefix of the unsynced writes (a torn WAL tail is truncated on recovery).
import { RaftError } from '../../src/raft/errors.js';
import type { ConfState, Entry, HardState, Index, LogStorage, Snapshot, Term } from '../../src/raft/types.js';
import { EMPTY_HARD_STATE, NONE } from '../../src/raft/types.js';
import { entrySizeBytes } from '../../src/raft/types.js';
import type { Rng } from '../../src/raft/types.js';
import type { SmSnapshot } from './state-machine.js';
import { SimViolation } from './violation.js';

/** One copy of a node's stable log: the entry before the first (offset), the entries, the snapshot, the hard state. */
class LogImage {
  hardState: HardState = EMPTY_HARD_STATE;
  offsetIndex: Index = 0; // index of the last compacted entry (entries[0].index === offsetIndex + 1)
  offsetTerm: Term = 0; // its term
  entries: Entry[] = [];
  snapshot: Snapshot; // latest snapshot; its index is >= offsetIndex
  payload: SmSnapshot; // the state machine's data at snapshot.metadata.index

  constructor(snapshot: Snapshot, payload: SmSnapshot) {
    this.snapshot = snapshot;
    this.payload = payload;
    this.offsetIndex = snapshot.metadata.index;
    this.offsetTerm = snapshot.metadata.term;
  }

  clone(): LogImage {
    const c = new LogImage(this.snapshot, this.payload);
    c.hardState = this.hardState;
    c.offsetIndex = this.offsetIndex;
    c.offsetTerm = this.offsetTerm;
    c.entries = this.entries.slice();
    return c;
  }

  lastIndex(): Index {
    return this.offsetIndex + this.entries.length;
  }

  /** Term at i, or undefined when i is compacted or beyond the log. */
  termAt(i: Index): Term | undefined {
    if (i === this.offsetIndex) return this.offsetTerm;
    if (i < this.offsetIndex || i > this.lastIndex()) return undefined;
    return this.entries[i - this.offsetIndex - 1]?.term;
  }

  entryAt(i: Index): Entry | undefined {
    if (i <= this.offsetIndex) return undefined;
    return this.entries[i - this.offsetIndex - 1];
  }

  append(ents: readonly Entry[]): void {
    const first = ents[0];
    if (first === undefined) return;
    for (let k = 1; k < ents.length; k++) {
      if ((ents[k] as Entry).index !== first.index + k) throw new Error(`storage: non-contiguous append at ${first.index}+${k}`);
    }
    if (first.index > this.lastIndex() + 1) {
      throw new Error(`storage: append at ${first.index} leaves a gap after lastIndex ${this.lastIndex()}`);
    }
    // Entries at or below the offset are already covered by the snapshot: skip them (as etcd's MemoryStorage).
    const skip = Math.max(0, this.offsetIndex + 1 - first.index);
    if (skip >= ents.length) return;
    const keepUpTo = first.index + skip - this.offsetIndex - 1; // number of our entries to keep
    this.entries.length = keepUpTo;
    for (let k = skip; k < ents.length; k++) this.entries.push(ents[k] as Entry);
  }

  applySnapshot(snap: Snapshot, payload: SmSnapshot): void {
    if (snap.metadata.index <= this.snapshot.metadata.index && this.snapshot.metadata.index > 0) {
      throw new Error(`storage: snapshot ${snap.metadata.index} is not newer than ${this.snapshot.metadata.index}`);
    }
    this.snapshot = snap;
    this.payload = payload;
    this.offsetIndex = snap.metadata.index;
    this.offsetTerm = snap.metadata.term;
    this.entries = [];
  }

  compact(i: Index): void {
    if (i <= this.offsetIndex) return;
    if (i > this.lastIndex()) throw new Error(`storage: compact ${i} beyond lastIndex ${this.lastIndex()}`);
    const t = this.termAt(i);
    if (t === undefined) throw new Error(`storage: compact ${i}: no term`);
    this.entries = this.entries.slice(i - this.offsetIndex);
    this.offsetIndex = i;
    this.offsetTerm = t;
  }
}

type WriteOp =
  | { readonly kind: 'append'; readonly entries: readonly Entry[] }
  | { readonly kind: 'hard-state'; readonly hardState: HardState }
  | { readonly kind: 'snapshot'; readonly snapshot: Snapshot; readonly payload: SmSnapshot };

function applyOp(img: LogImage, op: WriteOp): void {
  switch (op.kind) {
    case 'append':
      img.append(op.entries);
      return;
    case 'hard-state':
      img.hardState = op.hardState;
      return;
    case 'snapshot':
      img.applySnapshot(op.snapshot, op.payload);
      return;
    default: {
      const never: never = op;
      throw new Error(`unknown op ${String(never)}`);
    }
  }
}

export class SimStorage implements LogStorage {
  private visible: LogImage; // what the process has written (the core reads this)
  private durable: LogImage; // what survives a crash
  private pending: WriteOp[] = []; // written, not yet synced, in write order
  private pendingBatch: number[] = []; // batch number of each pending op (one batch per Ready)
  private batch = 0; // current batch number
  private readonly confState: () => ConfState; // the durable state machine's membership (initialState)

  constructor(initial: ConfState, payload: SmSnapshot, confState: () => ConfState) {
    const snap: Snapshot = { metadata: { index: 0, term: 0, confState: initial } };
    this.durable = new LogImage(snap, payload);
    this.visible = this.durable.clone();
    this.confState = confState;
  }

  // ---- LogStorage (what the core reads) ----

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: this.visible.hardState, confState: this.confState() };
  }

  entries(lo: Index, hi: Index, maxBytes: number): Entry[] {
    const v = this.visible;
    if (lo <= v.offsetIndex) throw new RaftError('COMPACTED', `entries(${lo}): compacted up to ${v.offsetIndex}`);
    if (hi > v.lastIndex() + 1) throw new RaftError('UNAVAILABLE', `entries(${lo}, ${hi}): lastIndex ${v.lastIndex()}`);
    const out: Entry[] = [];
    let size = 0;
    for (let i = lo; i < hi; i++) {
      const e = v.entryAt(i);
      if (e === undefined) throw new Error(`storage: hole at ${i}`);
      size += entrySizeBytes(e);
      if (out.length > 0 && size > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  term(i: Index): Term {
    const v = this.visible;
    if (i < v.offsetIndex) throw new RaftError('COMPACTED', `term(${i}): compacted up to ${v.offsetIndex}`);
    const t = v.termAt(i);
    if (t === undefined) throw new RaftError('UNAVAILABLE', `term(${i}): lastIndex ${v.lastIndex()}`);
    return t;
  }

  firstIndex(): Index {
    return this.visible.offsetIndex + 1;
  }

  lastIndex(): Index {
    return this.visible.lastIndex();
  }

  snapshot(): Snapshot {
    return this.visible.snapshot;
  }

  // ---- the driver's writes ----

  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const op: WriteOp = { kind: 'append', entries };
    this.visible.append(entries);
    this.pending.push(op);
    this.pendingBatch.push(this.batch);
  }

  setHardState(hs: HardState): void {
    this.visible.hardState = hs;
    this.pending.push({ kind: 'hard-state', hardState: hs });
    this.pendingBatch.push(this.batch);
  }

  applySnapshot(snap: Snapshot, payload: SmSnapshot): void {
    this.visible.applySnapshot(snap, payload);
    this.pending.push({ kind: 'snapshot', snapshot: snap, payload });
    this.pendingBatch.push(this.batch);
  }

  /** fsync: every write so far becomes durable. */
  sync(): void {
    for (const op of this.pending) this.applyDurable(op);
    this.pending = [];
    this.pendingBatch = [];
  }

  /** Ends the current write batch (the writes of one Ready): a crash keeps whole batches unless torn. */
  endBatch(): void {
    this.batch++;
  }

  /**
   * Power loss: keep the durable image plus a random prefix of the unsynced write batches. With `torn`, the
   * first lost batch may also leave a prefix of its writes (a WAL writing one record per entry / hard state).
   */
  crash(rng: Rng, torn: boolean): { keptOps: number; lostOps: number } {
    const n = this.pending.length;
    const starts: number[] = []; // index of the first op of each batch
    for (let k = 0; k < n; k++) if (k === 0 || this.pendingBatch[k] !== this.pendingBatch[k - 1]) starts.push(k);
    const keptBatches = rng.int(starts.length + 1);
    let keep = keptBatches < starts.length ? (starts[keptBatches] as number) : n;
    if (torn && keep < n) {
      const end = keptBatches + 1 < starts.length ? (starts[keptBatches + 1] as number) : n;
      keep += rng.int(end - keep + 1);
    }
    for (let k = 0; k < keep; k++) this.applyDurable(this.pending[k] as WriteOp);
    const next = this.pending[keep];
    if (torn && next !== undefined && next.kind === 'append' && next.entries.length > 1 && rng.int(2) === 0) {
      this.applyDurable({ kind: 'append', entries: next.entries.slice(0, rng.int(next.entries.length)) });
    }
    this.pending = [];
    this.pendingBatch = [];
    this.visible = this.durable.clone();
    return { keptOps: keep, lostOps: n - keep };
  }

  /** Unsynced writes that are not hard-state-only (a node must not snapshot/compact over those). */
  hasUnsyncedLogWrites(): boolean {
    return this.pending.some((op) => op.kind !== 'hard-state');
  }

  /**
   * The application's snapshot: metadata at `index` (<= applied, so durable) plus the state machine's payload.
   * Snapshot files are written, fsynced and renamed at once: durable immediately.
   */
  createSnapshot(index: Index, confState: ConfState, payload: SmSnapshot): Snapshot {
    if (this.hasUnsyncedLogWrites()) throw new Error('storage: createSnapshot with unsynced log writes');
    if (payload.applied !== index) throw new Error(`storage: payload at ${payload.applied}, snapshot at ${index}`);
    const t = this.durable.termAt(index);
    const tv = this.visible.termAt(index);
    if (t === undefined || tv !== t) {
      throw new SimViolation('durability', `createSnapshot(${index}): durable term ${String(t)}, written term ${String(tv)}`);
    }
    if (t !== payload.appliedTerm) {
      throw new SimViolation('state-machine-safety', `applied entry ${index} has term ${payload.appliedTerm}, the log has ${t}`);
    }
    const snap: Snapshot = { metadata: { index, term: t, confState } };
    for (const img of [this.durable, this.visible]) {
      img.snapshot = snap;
      img.payload = payload;
    }
    return snap;
  }

  /** Drops entries <= index (index must be covered by the latest snapshot). Durable immediately. */
  compact(index: Index): void {
    if (this.hasUnsyncedLogWrites()) throw new Error('storage: compact with unsynced log writes');
    if (index > this.durable.snapshot.metadata.index) throw new Error(`storage: compact ${index} beyond the snapshot`);
    this.durable.compact(index);
    this.visible.compact(index);
  }

  // ---- what the simulation reads ----

  snapshotPayload(): SmSnapshot {
    return this.visible.payload;
  }

  /** The written (visible) log, for the checkers: term at i or undefined. */
  writtenTerm(i: Index): Term | undefined {
    return this.visible.termAt(i);
  }

  writtenEntry(i: Index): Entry | undefined {
    return this.visible.entryAt(i);
  }

  writtenFirstIndex(): Index {
    return this.visible.offsetIndex + 1;
  }

  writtenLastIndex(): Index {
    return this.visible.lastIndex();
  }

  writtenHardState(): HardState {
    return this.visible.hardState;
  }

  durableHardState(): HardState {
    return this.durable.hardState;
  }

  durableLastIndex(): Index {
    return this.durable.lastIndex();
  }

  durableFirstIndex(): Index {
    return this.durable.offsetIndex + 1;
  }

  /** Term at i in the durable log (i = firstIndex-1 gives the snapshot's term), undefined outside. */
  durableTerm(i: Index): Term | undefined {
    return this.durable.termAt(i);
  }

  durableEntry(i: Index): Entry | undefined {
    return this.durable.entryAt(i);
  }

  private applyDurable(op: WriteOp): void {
    const before = this.durable.hardState;
    applyOp(this.durable, op);
    const after = this.durable.hardState;
    if (after.term < before.term) {
      throw new SimViolation('durability', `durable term went from ${before.term} to ${after.term}`);
    }
    if (after.term === before.term && before.vote !== NONE && after.vote !== before.vote) {
      throw new SimViolation('durability', `durable vote in term ${after.term} changed from ${before.vote} to ${after.vote}`);
    }
  }
}
