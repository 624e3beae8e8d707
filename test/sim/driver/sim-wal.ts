// The driver simulation's WAL: the DurableLog port (what WalStorage offers the driver) over an in-memory record
// stream with the split a real disk has. What the process wrote is visible to the core at once; it becomes
// durable when an fsync covering it completes (group commit: one fsync covers every record appended before it
// starts). A crash keeps the durable image plus a prefix of the unsynced records: whole write batches, or with
// torn writes a prefix of one batch too, as the real WAL's recovery truncates a torn tail.
//
// Faults: fsync latency (slow fsync), and a full disk: an fsync then fails with RaftKvError('DISK_FULL') and
// its records stay buffered for the next sync(), exactly as wal.ts does after ENOSPC.
import { RaftError } from '../../../src/raft/errors.js';
import type { ConfState, Entry, HardState, Index, Rng, Snapshot, SnapshotMetadata, Term } from '../../../src/raft/types.js';
import { NONE, entrySizeBytes } from '../../../src/raft/types.js';
import { RaftKvError } from '../../../src/shared/errors.js';
import type { DurableLog } from '../../../src/node/ports.js';
import type { DurableLogView, WrittenLogView } from '../checkers.js';
import type { SimProperty } from '../violation.js';
import type { SimClock } from './sim-clock.js';
import { WalImage } from './wal-image.js';
import type { WalRecord } from './wal-image.js';

/** Records a violation without throwing into the driver (the run stops after the current event). */
export interface ViolationSink {
  fail(property: SimProperty, detail: string): void;
}

export interface WalFaults {
  fsyncLatencyMs(): number;
  /** The disk has no space now: the fsync that completes fails. */
  isFull(): boolean;
}

/** What the simulation's checkers see of the driver's WAL writes, as they happen. */
export interface WalObserver {
  onAppend(entries: readonly Entry[]): void; // after the written view holds them
  onHardState(hs: HardState): void;
  onSnapshotRecord(metadata: SnapshotMetadata, install: boolean): void;
}

const RECORD_BYTES = 32; // what stats() counts per record besides an entry's payload (a frame header, roughly)

/** One member's disk as far as the WAL goes: what survives crashes. */
export class WalDisk implements DurableLogView {
  private image: WalImage | undefined; // undefined until the first open creates the WAL

  constructor(
    readonly id: number,
    private readonly sink: ViolationSink,
  ) {}

  get exists(): boolean {
    return this.image !== undefined;
  }

  /** The WAL of a first open: the index-0 snapshot carries the initial membership (empty for a joiner). */
  create(confState: ConfState): void {
    if (this.image !== undefined) throw new Error(`wal disk ${this.id}: created twice`);
    this.image = new WalImage({ index: 0, term: 0, confState });
  }

  durable(): WalImage {
    if (this.image === undefined) throw new Error(`wal disk ${this.id}: no WAL yet`);
    return this.image;
  }

  /** Records reached the platter, in order. Term and vote must never regress on disk. */
  makeDurable(records: readonly WalRecord[]): void {
    const img = this.durable();
    for (const r of records) {
      const before = img.hardState;
      img.apply(r);
      const after = img.hardState;
      if (after.term < before.term) this.sink.fail('durability', `n${this.id}: durable term went from ${before.term} to ${after.term}`);
      if (after.term === before.term && before.vote !== NONE && after.vote !== before.vote) {
        this.sink.fail('durability', `n${this.id}: durable vote in term ${after.term} changed from ${before.vote} to ${after.vote}`);
      }
    }
  }

  durableFirstIndex(): Index {
    return this.image === undefined ? 1 : this.image.firstIndex();
  }

  durableLastIndex(): Index {
    return this.image === undefined ? 0 : this.image.lastIndex();
  }

  durableTerm(i: Index): Term | undefined {
    return this.image?.termAt(i);
  }

  durableEntry(i: Index): Entry | undefined {
    return this.image?.entryAt(i);
  }

  durableHardState(): HardState {
    return this.durable().hardState;
  }
}

interface SyncWaiter {
  readonly target: number; // records appended when sync() was called
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

/** The DurableLog port of one process incarnation. After its crash every call is a no-op or never settles. */
export class SimWal implements DurableLog, WrittenLogView {
  private readonly view: WalImage; // what the process has written (the core reads this)
  private snap: Snapshot; // view.snapshot as the core's Snapshot object
  private readonly pending: WalRecord[] = []; // appended, not yet durable, in order
  private readonly pendingBatch: number[] = []; // write batch of each pending record (one flush = one batch)
  private batch = 0; // batch of records appended now
  private appended = 0; // records appended by this incarnation
  private durableRecords = 0; // of which durable
  private waiters: SyncWaiter[] = []; // sync() callers, targets ascending
  private flushRunning = false;
  private closed = false;
  private alive = true;
  syncs = 0; // fsyncs completed (for the trace)

  constructor(
    private readonly disk: WalDisk,
    private readonly created: boolean,
    private readonly clock: SimClock,
    private readonly faults: WalFaults,
    private readonly observer: WalObserver,
  ) {
    this.view = disk.durable().clone();
    this.snap = { metadata: this.view.snapshot };
  }

  // ---- LogStorage, as WalStorage answers it

  isNew(): boolean {
    return this.created;
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: this.view.hardState, confState: this.view.snapshot.confState };
  }

  firstIndex(): Index {
    return this.view.firstIndex();
  }

  lastIndex(): Index {
    return this.view.lastIndex();
  }

  term(i: Index): Term {
    const snapIndex = this.view.snapshot.index;
    if (i < snapIndex) throw new RaftError('COMPACTED', `term(${i}): compacted (first index ${snapIndex + 1})`);
    const t = this.view.termAt(i);
    if (t === undefined) throw new RaftError('UNAVAILABLE', `term(${i}): beyond last index ${this.lastIndex()}`);
    return t;
  }

  entries(lo: Index, hi: Index, maxBytes: number): Entry[] {
    const snapIndex = this.view.snapshot.index;
    if (lo <= snapIndex) throw new RaftError('COMPACTED', `entries(${lo}): compacted (first index ${snapIndex + 1})`);
    if (hi > this.lastIndex() + 1) throw new Error(`sim wal: entries(${lo}, ${hi}) beyond last index ${this.lastIndex()}`);
    const out: Entry[] = [];
    let size = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.view.entryAt(i);
      if (e === undefined) throw new Error(`sim wal: hole at ${i}`);
      size += entrySizeBytes(e);
      if (out.length > 0 && size > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  // ---- writes (WalStorage semantics: buffered, durable after the next sync)

  append(entries: readonly Entry[]): void {
    const first = entries[0];
    if (!this.alive || first === undefined) return;
    for (let i = 1; i < entries.length; i++) {
      if (entries[i]?.index !== first.index + i) throw new Error('sim wal: appended entries are not contiguous');
    }
    const firstKept = this.firstIndex();
    if (first.index + entries.length - 1 < firstKept) return; // all compacted
    const toAppend = first.index < firstKept ? entries.slice(firstKept - first.index) : entries;
    const start = toAppend[0];
    if (start === undefined) throw new Error('sim wal: nothing to append');
    if (start.index > this.lastIndex() + 1) throw new Error(`sim wal: gap, appending ${start.index} after ${this.lastIndex()}`);
    if (start.index <= this.lastIndex()) this.write({ kind: 'truncate', lastKept: start.index - 1 });
    for (const e of toAppend) this.write({ kind: 'entry', entry: e });
    this.observer.onAppend(toAppend);
  }

  setHardState(hs: HardState): void {
    if (!this.alive) return;
    const cur = this.view.hardState;
    if (cur.term === hs.term && cur.vote === hs.vote && cur.commit === hs.commit) return;
    this.write({ kind: 'hard-state', hardState: hs });
    this.observer.onHardState(hs);
  }

  sync(_opts?: { readonly blocking?: boolean }): Promise<void> {
    if (!this.alive) return new Promise<void>(() => undefined);
    if (this.closed) return Promise.reject(new Error('wal: closed'));
    const target = this.appended;
    if (this.durableRecords >= target) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ target, resolve, reject });
      this.kick();
    });
  }

  async applySnapshot(snap: Snapshot): Promise<void> {
    if (!this.alive) return new Promise<void>(() => undefined);
    const cur = this.view.snapshot.index;
    if (snap.metadata.index <= cur && cur > 0) throw new RaftError('SNAPSHOT_OUT_OF_DATE', `snapshot ${snap.metadata.index} <= ${cur}`);
    this.write({ kind: 'snapshot', install: true, metadata: snap.metadata });
    this.observer.onSnapshotRecord(snap.metadata, true);
    await this.sync();
  }

  async compact(snap: Snapshot): Promise<void> {
    if (!this.alive) return new Promise<void>(() => undefined);
    const m = snap.metadata;
    const cur = this.view.snapshot.index;
    if (m.index <= cur) throw new RaftError('SNAPSHOT_OUT_OF_DATE', `compact(${m.index}) <= snapshot ${cur}`);
    if (m.index > this.lastIndex()) throw new Error(`sim wal: compact(${m.index}) beyond last index ${this.lastIndex()}`);
    const t = this.term(m.index);
    if (t !== m.term) throw new Error(`sim wal: compact(${m.index}): snapshot term ${m.term}, entry term ${t}`);
    this.write({ kind: 'snapshot', install: false, metadata: m });
    this.observer.onSnapshotRecord(m, false);
    await this.sync();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.sync();
    } finally {
      this.closed = true;
    }
  }

  stats(): { readonly bytes: number } {
    let bytes = 0;
    for (const e of this.view.entries) bytes += entrySizeBytes(e) + RECORD_BYTES;
    return { bytes };
  }

  // ---- what the simulation sees

  writtenFirstIndex(): Index {
    return this.view.firstIndex();
  }

  writtenLastIndex(): Index {
    return this.view.lastIndex();
  }

  writtenTerm(i: Index): Term | undefined {
    return this.view.termAt(i);
  }

  writtenHardState(): HardState {
    return this.view.hardState;
  }

  get unsyncedRecords(): number {
    return this.pending.length;
  }

  /**
   * The process dies. The disk keeps what was durable plus a prefix of the unsynced records: a random number of
   * whole write batches (`keepAll`: every record, as after a clean close), with `torn` a prefix of the next one.
   */
  crash(rng: Rng, torn: boolean, keepAll: boolean): { kept: number; lost: number } {
    this.alive = false;
    const n = this.pending.length;
    let keep = n;
    if (!keepAll) {
      const starts: number[] = [];
      for (let k = 0; k < n; k++) if (k === 0 || this.pendingBatch[k] !== this.pendingBatch[k - 1]) starts.push(k);
      const keptBatches = rng.int(starts.length + 1);
      keep = starts[keptBatches] ?? n;
      if (torn && keep < n) {
        const end = starts[keptBatches + 1] ?? n;
        keep += rng.int(end - keep + 1);
      }
    }
    this.disk.makeDurable(this.pending.slice(0, keep));
    this.pending.length = 0;
    this.pendingBatch.length = 0;
    this.waiters = [];
    return { kept: keep, lost: n - keep };
  }

  private write(r: WalRecord): void {
    this.view.apply(r);
    if (r.kind === 'snapshot') this.snap = { metadata: r.metadata };
    this.pending.push(r);
    this.pendingBatch.push(this.batch);
    this.appended++;
  }

  private kick(): void {
    if (this.flushRunning) return;
    this.flushRunning = true;
    void this.flushLoop();
  }

  /** One write + fdatasync per round for everything pending when it starts. Never rejects. */
  private async flushLoop(): Promise<void> {
    while (this.pending.length > 0) {
      const count = this.pending.length;
      this.batch++; // records appended from now on go into the next write
      await this.clock.delay(this.faults.fsyncLatencyMs());
      if (!this.alive) return;
      if (this.faults.isFull()) {
        // wal.ts truncates the segment back to its durable size; the records stay buffered for the next sync().
        const waiters = this.waiters;
        this.waiters = [];
        for (const w of waiters) w.reject(new RaftKvError('DISK_FULL', `wal: no space left on device (simulated, member ${this.disk.id})`));
        this.flushRunning = false;
        return;
      }
      this.disk.makeDurable(this.pending.splice(0, count));
      this.pendingBatch.splice(0, count);
      this.durableRecords += count;
      this.syncs++;
      while (this.waiters.length > 0 && (this.waiters[0]?.target ?? Infinity) <= this.durableRecords) this.waiters.shift()?.resolve();
    }
    this.flushRunning = false;
  }
}
