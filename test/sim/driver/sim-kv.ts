// The driver simulation's state machine: the StateMachine port with KvStateMachine's semantics that matter to the
// driver. Applies run in call order on one serial chain (apply, snapshot capture, restore, close), each batch
// readable as soon as it lands; batches reach the store later (write-behind: a flush APPLY_FLUSH_INTERVAL_MS
// after the first unflushed batch, one store batch per flush). The store keeps what was flushed; a flush is
// durable against a process crash but a power loss may lose the flushes since the last synced write (createSnapshot
// forces one, as KvStateMachine's synced applied-index put does). A crash loses every unflushed batch: the driver
// must replay them from the WAL.
//
// Snapshots are in-memory files (SimFileStore) named by path. createSnapshot flushes and syncs first, so the WAL
// may be compacted up to it; a TEST ONLY switch (snapshotWithoutFlush) skips the flush, as a KvStateMachine that
// forgot flushAll() would: the file and the synced applied index then claim entries the store does not hold.
// A full disk stalls the flush (onFlushStalled; retryFlush() writes the waiting batches once space is back).
import { join } from 'node:path';
import type { Member } from '../../../src/node/api.js';
import { RaftKvError } from '../../../src/shared/errors.js';
import type { ApplyOutcome, SnapshotFile, StateMachine } from '../../../src/node/ports.js';
import type { ConfState, Entry, Index, Rng, SnapshotMetadata, Term } from '../../../src/raft/types.js';
import { APPLY_FLUSH_INTERVAL_MS } from '../../../src/kv/write-behind.js';
import type { RangeRequest, RangeResult } from '../../../src/kv/types.js';
import { KvImage } from './kv-image.js';
import type { SimClock } from './sim-clock.js';
import type { SimFileStore } from './sim-files.js';
import type { ViolationSink } from './sim-wal.js';

export interface KvFaults {
  applyLatencyMs(): number;
  flushLatencyMs(): number;
  snapshotWriteLatencyMs(): number;
  restoreLatencyMs(): number;
  /** The store's disk has no space now: a flush fails (stalls). */
  isFull(): boolean;
  /** TEST ONLY: createSnapshot without flushing the write buffer first. */
  readonly snapshotWithoutFlush: boolean;
}

/** What the simulation sees of the state machine, as it happens (checkers, and crash points of the nemesis). */
export interface KvObserver {
  onApply(entry: Entry, chain: number, image: KvImage): void;
  onRestore(metadata: SnapshotMetadata, chain: number): void;
  onRestoreStart(): void; // the core accepted a snapshot and the driver restores it: a crash point
  onRestoreDone(): void; // restored, the WAL does not record it yet: a crash point
  onSnapshotFlushed(): void; // createSnapshot flushed and synced, the WAL not compacted yet: a crash point
}

// Flushed-but-unsynced batches kept apart for a power loss; older ones count as written back by the OS (synced).
const MAX_UNSYNCED_FLUSHES = 64;
const APPROX_KEY_BYTES = 64; // what dataSizeBytes() counts per key
const SNAPSHOT_FILE_RE = /^snapshot-(\d{16})\.snap$/;

/** One member's state machine store: what survives crashes. */
export class KvDisk {
  private synced = new KvImage(); // survives any crash
  private unsynced: KvImage[] = []; // flushed since the last synced write, oldest first (a power loss keeps a prefix)

  latest(): KvImage {
    return this.unsynced[this.unsynced.length - 1] ?? this.synced;
  }

  write(image: KvImage): void {
    this.unsynced.push(image);
    if (this.unsynced.length > MAX_UNSYNCED_FLUSHES) this.synced = this.unsynced.shift() ?? this.synced;
  }

  /** A synced write: everything flushed so far is durable; `relabel` rewrites the applied index (see createSnapshot). */
  sync(relabel?: { applied: Index; appliedTerm: Term }): void {
    const img = this.latest().clone();
    if (relabel !== undefined) {
      img.applied = relabel.applied;
      img.appliedTerm = relabel.appliedTerm;
    }
    this.synced = img;
    this.unsynced = [];
  }

  /** A restore swaps in a new store, durably. */
  replace(image: KvImage): void {
    this.synced = image.clone();
    this.unsynced = [];
  }

  /** The process dies: a process crash keeps every flush (the OS has them), a power loss a prefix. */
  crash(rng: Rng, powerLoss: boolean): { kept: number; lost: number } {
    const n = this.unsynced.length;
    const keep = powerLoss ? rng.int(n + 1) : n;
    const last = this.unsynced[keep - 1];
    if (last !== undefined) this.synced = last;
    this.unsynced = [];
    return { kept: keep, lost: n - keep };
  }

  /** The image a restarted process opens. */
  open(): KvImage {
    return this.latest().clone();
  }
}

/** Runs async jobs one after the other, in call order (a failed job does not stop the next). */
class Serial {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(job: () => Promise<T>): Promise<T> {
    const p = this.tail.then(job);
    this.tail = p.catch(() => undefined);
    return p;
  }
}

export class SimKv implements StateMachine {
  private state: KvImage; // applied: what reads see
  private unflushed: KvImage[] = []; // batches applied and not yet handed to the store (the image after each)
  private waiting: KvImage[] = []; // handed to a flush that has not landed (stalled: until retryFlush)
  private flushDone: Promise<void> = Promise.resolve(); // the flush in progress (never rejects)
  private cancelFlushTimer: (() => void) | undefined;
  private stalled: RaftKvError | undefined; // a flush found the disk full; nothing lands until retryFlush()
  private closed = false;
  private readonly serial = new Serial(); // apply, snapshot capture, restore, close
  private readonly snapshotSerial = new Serial(); // snapshot files are written one at a time
  onFlushFailure: ((err: Error) => void) | undefined;
  onFlushStalled: ((err: Error) => void) | undefined;

  constructor(
    readonly id: number,
    private readonly disk: KvDisk,
    private readonly files: SimFileStore,
    private readonly clock: SimClock,
    private readonly faults: KvFaults,
    private readonly observer: KvObserver,
    private readonly sink: ViolationSink,
  ) {
    this.state = disk.open();
  }

  get appliedIndex(): Index {
    return this.state.applied;
  }

  get revision(): number {
    return this.state.revision;
  }

  /** The simulation applies no compaction (KvImage refuses it): never compacted. */
  get compactedRevision(): number {
    return -1;
  }

  whenCompacted(): Promise<void> {
    return Promise.resolve();
  }

  /** The simulated store has no files to give space back from. */
  defragment(): Promise<void> {
    return Promise.resolve();
  }

  get appliedTerm(): Term {
    return this.state.appliedTerm;
  }

  /** The applied image (the simulation's convergence check reads it). */
  get image(): KvImage {
    return this.state;
  }

  members(): readonly Member[] {
    return this.state.memberList();
  }

  confState(): ConfState {
    return this.state.confState();
  }

  dataSizeBytes(): Promise<number> {
    return Promise.resolve(this.state.keys.size * APPROX_KEY_BYTES);
  }

  apply(entries: readonly Entry[], onOutcomes?: (outcomes: readonly ApplyOutcome[]) => void): Promise<readonly ApplyOutcome[]> {
    return this.serial.run(async () => {
      this.check();
      await this.clock.delay(this.faults.applyLatencyMs());
      let expect = this.state.applied + 1;
      let lastTerm = this.state.appliedTerm;
      for (const e of entries) {
        if (e.index < expect) continue;
        if (e.index !== expect) {
          this.sink.fail('state-machine-safety', `n${this.id}: apply gap: entry ${e.index} handed to the state machine after ${expect - 1}`);
          throw new Error(`kv: apply gap: entry ${e.index} after ${expect - 1}`);
        }
        if (e.term < lastTerm) {
          this.sink.fail('state-machine-safety', `n${this.id}: entry ${e.index} has term ${e.term} below ${lastTerm}`);
          throw new Error(`kv: entry ${e.index} has term ${e.term} below ${lastTerm}`);
        }
        expect++;
        lastTerm = e.term;
      }
      const outcomes: ApplyOutcome[] = [];
      const next = this.state.clone();
      for (const e of entries) {
        if (e.index <= next.applied) {
          outcomes.push({ type: 'none' });
          continue;
        }
        outcomes.push(next.applyEntry(e));
        this.observer.onApply(e, next.chain, next);
      }
      if (next.applied === this.state.applied) return outcomes;
      this.state = next;
      this.unflushed.push(next);
      if (this.cancelFlushTimer === undefined) {
        this.cancelFlushTimer = this.clock.setTimeout(() => {
          this.cancelFlushTimer = undefined;
          void this.startFlush(); // never rejects
        }, APPLY_FLUSH_INTERVAL_MS);
      }
      onOutcomes?.(outcomes);
      return outcomes;
    });
  }

  range(req: RangeRequest): Promise<RangeResult> {
    if (this.closed) return Promise.reject(new RaftKvError('UNAVAILABLE', 'kv: the state machine is closed'));
    return Promise.resolve(this.state.range(req));
  }

  get isFlushStalled(): boolean {
    return this.stalled !== undefined;
  }

  async retryFlush(): Promise<boolean> {
    if (this.stalled === undefined) return true;
    const done = this.flushDone.then(async () => {
      if (this.stalled === undefined) return;
      await this.clock.delay(this.faults.flushLatencyMs());
      if (this.faults.isFull()) return; // still no space
      const last = this.waiting[this.waiting.length - 1];
      if (last !== undefined) this.disk.write(last);
      this.waiting = [];
      this.stalled = undefined;
    });
    this.flushDone = done;
    await done;
    if (this.stalled !== undefined) return false;
    void this.startFlush(); // what applied meanwhile (never rejects)
    return true;
  }

  createSnapshot(snapDir: string, keep: number): Promise<SnapshotFile> {
    if (!Number.isSafeInteger(keep) || keep < 1) return Promise.reject(new RaftKvError('INVALID_ARGUMENT', 'kv: keep must be >= 1'));
    const captured = this.serial.run(async () => {
      this.check();
      if (this.faults.snapshotWithoutFlush) {
        // TEST ONLY: the synced applied-index write goes ahead, over a store missing the unflushed batches.
        this.disk.sync({ applied: this.state.applied, appliedTerm: this.state.appliedTerm });
      } else {
        await this.flushAll();
        this.disk.sync();
      }
      this.observer.onSnapshotFlushed();
      const metadata: SnapshotMetadata = { index: this.state.applied, term: this.state.appliedTerm, confState: this.state.confState() };
      const image = this.faults.snapshotWithoutFlush ? this.disk.latest().clone() : this.state.clone();
      image.applied = metadata.index;
      image.appliedTerm = metadata.term;
      return { metadata, image };
    });
    return this.snapshotSerial.run(async () => {
      const { metadata, image } = await captured;
      await this.clock.delay(this.faults.snapshotWriteLatencyMs());
      const path = join(snapDir, `snapshot-${metadata.index.toString().padStart(16, '0')}.snap`);
      this.files.put(path, { metadata, image });
      for (const name of this.snapshotNames(snapDir).slice(keep)) this.files.remove(join(snapDir, name));
      return { path, metadata };
    });
  }

  latestSnapshot(snapDir: string): Promise<SnapshotFile | undefined> {
    const newest = this.snapshotNames(snapDir)[0];
    const blob = newest === undefined ? undefined : this.files.get(join(snapDir, newest));
    if (newest === undefined || blob === undefined) return Promise.resolve(undefined);
    return Promise.resolve({ path: join(snapDir, newest), metadata: blob.metadata });
  }

  restoreSnapshot(path: string): Promise<SnapshotMetadata> {
    return this.serial.run(async () => {
      this.check();
      await this.flushAll(); // superseded, but no batch may land once the store is swapped out
      const blob = this.files.get(path);
      if (blob === undefined) throw new Error(`sim kv: no snapshot file ${path}`);
      if (blob.metadata.index < this.state.applied) {
        throw new RaftKvError('FAILED_PRECONDITION', `kv: snapshot ${path} at index ${blob.metadata.index} is older than applied index ${this.state.applied}`);
      }
      this.observer.onRestoreStart();
      await this.clock.delay(this.faults.restoreLatencyMs());
      this.state = blob.image.clone();
      this.unflushed = [];
      this.disk.replace(this.state);
      this.observer.onRestore(blob.metadata, this.state.chain);
      this.observer.onRestoreDone();
      return blob.metadata;
    });
  }

  verifyKeySpace(): Promise<unknown> {
    return this.serial.run(() => {
      this.check();
      return Promise.resolve(undefined);
    });
  }

  close(): Promise<void> {
    return this.serial.run(async () => {
      if (this.closed) return;
      this.closed = true;
      await this.startFlush();
    });
  }

  /** The snapshot files in `snapDir`, newest first. */
  private snapshotNames(snapDir: string): string[] {
    return this.files
      .list(snapDir)
      .filter((n) => SNAPSHOT_FILE_RE.test(n))
      .sort()
      .reverse();
  }

  private check(): void {
    if (this.closed) throw new RaftKvError('UNAVAILABLE', 'kv: the state machine is closed');
  }

  /** Everything applied so far is in the store when it resolves; throws the stall while the disk is full. */
  private async flushAll(): Promise<void> {
    await this.startFlush();
    if (this.stalled !== undefined) throw this.stalled;
  }

  /** Hands the unflushed batches to the store as one batch, after the flush in progress. Never rejects. */
  private startFlush(): Promise<void> {
    this.cancelFlushTimer?.();
    this.cancelFlushTimer = undefined;
    if (this.unflushed.length === 0) return this.flushDone;
    const mine = this.unflushed;
    this.waiting.push(...mine);
    this.unflushed = [];
    this.flushDone = this.flushDone.then(async () => {
      if (this.stalled !== undefined || this.waiting[0] !== mine[0]) return; // waits for retryFlush() (or it landed)
      await this.clock.delay(this.faults.flushLatencyMs());
      if (this.faults.isFull()) {
        this.stalled = new RaftKvError('DISK_FULL', `kv: no space for a store batch (simulated, member ${this.id}); it waits in memory`);
        this.onFlushStalled?.(this.stalled);
        return;
      }
      const last = mine[mine.length - 1];
      if (last !== undefined) this.disk.write(last);
      this.waiting.splice(0, mine.length);
    });
    return this.flushDone;
  }
}
