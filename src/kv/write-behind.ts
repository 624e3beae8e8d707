// The state machine's write-behind (as etcd's backend batches its bbolt commits): applied batches gather in
// memory and reach LevelDB as one batch at most every APPLY_FLUSH_INTERVAL_MS, or sooner past the size limits.
// Reads look through the buffers (newest first) before LevelDB. Batches land in order, so LevelDB always holds
// whole apply batches with their applied index and revision; everything else is in the buffers, in order.
//
// A failed batch breaks the state machine (in-memory state may then be ahead of LevelDB, and LevelDB refuses
// writes after a failed one): reopening resumes after the last flushed entry, the WAL holding the rest. A batch
// that fails for want of space (DISK_FULL) instead stalls: it and every later batch wait in memory, reads see
// them, and retry() writes them in order once there is room.
import { RaftKvError } from '../shared/errors.js';
import type { Index } from '../raft/types.js';
import { REOPEN_MIN_FREE_BYTES, freeBytes, isNoSpace, levelCause } from './level-store.js';
import type { Db } from './level-store.js';
import { keyString } from './schema.js';
import type { KvLogger } from './types.js';
import { WriteBuffer } from './write-buffer.js';
import type { BatchOp } from './write-buffer.js';

// One LevelDB write costs two thread hand-offs (a pool thread, then the event loop), measured at ~0.15-0.2 ms
// of a sequential put's latency on 2 cores. Nothing is at risk by waiting: the WAL holds every applied entry
// until a snapshot, which flushes first.
export const APPLY_FLUSH_INTERVAL_MS = 20;
export const APPLY_FLUSH_MAX_KEYS = 10_000; // a larger buffer is flushed at once (bounds the memory it holds)
export const APPLY_FLUSH_MAX_BYTES = 8 * 1024 * 1024; // as above, by size

/** The one timer the write-behind sets (a node's Clock has this shape). */
export interface KvTimers {
  setTimeout(fn: () => void, delayMs: number): () => void; // returns a cancel function
}

export const SYSTEM_TIMERS: KvTimers = {
  setTimeout(fn, delayMs) {
    const t = setTimeout(fn, delayMs);
    t.unref(); // a pending write-behind flush never keeps the process alive (close() flushes)
    return () => clearTimeout(t);
  },
};

/** What the write-behind needs of the state machine that owns the store. */
export interface WriteBehindHost {
  readonly dir: string; // the state machine's directory (its free space decides whether a reopen may be tried)
  db(): Db; // the live store (a restore swaps it)
  /** Closes and reopens the live store once no read uses it (clears LevelDB's sticky error after ENOSPC). */
  reopen(): Promise<void>;
  appliedIndex(): Index; // for the log
  readonly logger: KvLogger | undefined;
  /** Tests only: a throw at 'flush' simulates a failed batch write. */
  readonly failpoint: ((point: 'flush') => void) | undefined;
  onFailure(err: Error): void; // once, when a batch failed (the state machine is then broken)
  onStalled(err: RaftKvError): void; // a batch found no space: batches wait in memory
  onCommit(durationMs: number): void; // a batch landed, after this long (etcd's backend commit)
}

export class WriteBehind {
  private unflushed = new WriteBuffer(); // applied writes not yet handed to LevelDB
  private readonly flushing: WriteBuffer[] = []; // handed to LevelDB (queued or being written), oldest first
  private flushDone: Promise<void> = Promise.resolve(); // the batch being written (never rejects; sets broken)
  private cancelTimer: (() => void) | undefined; // cancels the next timed flush
  private stalledError: RaftKvError | undefined; // a batch failed with ENOSPC: nothing is written until retry()
  private brokenError: Error | undefined; // a batch write failed: in-memory state may be ahead of LevelDB

  constructor(
    private readonly host: WriteBehindHost,
    private readonly timers: KvTimers,
  ) {}

  /** The first failed write, once the owner is broken (it must be reopened). */
  get broken(): Error | undefined {
    return this.brokenError;
  }

  /** Throws once a batch failed: the owner must be closed and reopened. */
  checkNotBroken(): void {
    if (this.brokenError !== undefined) {
      throw new Error(`kv: a LevelDB batch failed earlier; reopen the state machine (${this.brokenError.message})`);
    }
  }

  /** The DISK_FULL error while batches wait for space. */
  get stalled(): RaftKvError | undefined {
    return this.stalledError;
  }

  /**
   * Marks the owner broken (the first error is kept) and returns the error to throw: DISK_FULL for want of
   * space, else the error itself.
   */
  breakWith(err: unknown): Error {
    const e = err instanceof Error ? err : new Error(String(err));
    this.brokenError ??= e;
    if (isNoSpace(e)) return new RaftKvError('DISK_FULL', `kv: LevelDB write failed, reopen when space returns: ${levelCause(e)}`);
    return e;
  }

  /** A point read of a full LevelDB key through the buffers (newest first), on the calling thread. */
  getSync(key: Uint8Array): Uint8Array | undefined {
    const v = this.buffered(key);
    return v === undefined ? this.host.db().getSync(key) : (v ?? undefined);
  }

  /** As getSync, through LevelDB's thread pool. */
  async get(key: Uint8Array): Promise<Uint8Array | undefined> {
    const v = this.buffered(key);
    return v === undefined ? this.host.db().get(key) : (v ?? undefined);
  }

  /** undefined: in no buffer; null: deleted there; else the newest buffered value. */
  private buffered(key: Uint8Array): Uint8Array | null | undefined {
    const v = this.unflushed.get(key);
    if (v !== undefined) return v;
    for (let i = this.flushing.length - 1; i >= 0; i--) {
      const f = this.flushing[i]?.get(key);
      if (f !== undefined) return f;
    }
    return undefined;
  }

  /** The buffers' newest write per full LevelDB key in [lo, hi), by keyString (in no particular order). */
  newestInRange(lo: Uint8Array, hi: Uint8Array): Map<string, BatchOp> {
    const los = keyString(lo);
    const his = keyString(hi);
    const newest = new Map<string, BatchOp>();
    for (const b of [...this.flushing, this.unflushed]) for (const [ks, op] of b.ops) if (ks >= los && ks < his) newest.set(ks, op);
    return newest;
  }

  /** Queues a batch of applied writes; starts a flush when the buffer is full, else makes sure one is timed. */
  add(batch: readonly BatchOp[]): void {
    for (const op of batch) this.unflushed.add(op);
    if (this.unflushed.ops.size >= APPLY_FLUSH_MAX_KEYS || this.unflushed.bytes >= APPLY_FLUSH_MAX_BYTES) {
      void this.start(); // never rejects: a failure breaks the owner and calls onFailure
    } else if (this.cancelTimer === undefined) {
      this.cancelTimer = this.timers.setTimeout(() => {
        this.cancelTimer = undefined;
        void this.start(); // never rejects (as above)
      }, APPLY_FLUSH_INTERVAL_MS);
    }
  }

  /** Backpressure for apply: when a second buffer already waits behind the batch being written, wait for both. */
  async drainIfBehind(): Promise<void> {
    if (this.flushing.length > 1) await this.flushDone;
  }

  /** Hands the buffered writes to LevelDB as one batch, after the batch being written (if any). Never rejects. */
  start(): Promise<void> {
    if (this.cancelTimer !== undefined) {
      this.cancelTimer();
      this.cancelTimer = undefined;
    }
    if (this.unflushed.ops.size === 0) return this.flushDone;
    const buffer = this.unflushed;
    this.unflushed = new WriteBuffer();
    this.flushing.push(buffer);
    this.flushDone = this.flushDone.then(async () => {
      if (this.brokenError !== undefined) return; // reads fail from now on; the buffers stay for them to shadow
      if (this.stalledError !== undefined) return; // waits for retry(), behind the batch that did not fit
      try {
        this.host.failpoint?.('flush');
        const commitStartMs = performance.now();
        await this.host.db().batch([...buffer.ops.values()]);
        this.host.onCommit(performance.now() - commitStartMs);
        this.flushing.shift(); // it is `buffer`: batches land in order
      } catch (err) {
        if (isNoSpace(err)) {
          this.stalledError = new RaftKvError('DISK_FULL', `kv: no space for a LevelDB batch (${levelCause(err)}); it waits in memory`);
          this.host.logger?.warn({ err: levelCause(err), waiting: this.flushing.length }, 'kv: disk full: applied batches wait in memory');
          this.host.onStalled(this.stalledError);
          return;
        }
        const e = this.breakWith(err);
        this.host.logger?.warn({ err: e.message }, 'kv: a LevelDB batch failed; the state machine must be reopened');
        this.host.onFailure(e);
      }
    });
    return this.flushDone;
  }

  /**
   * Everything added before this call is in LevelDB (not fsynced) when it resolves; later batches may be too.
   * Throws the broken error if a batch failed, DISK_FULL while batches wait for space.
   */
  async flushAll(): Promise<void> {
    await this.flushIfPossible();
    if (this.stalledError !== undefined) throw this.stalledError;
  }

  /** Like flushAll, but while the disk is full it returns with batches still waiting (a scan merges them). */
  async flushIfPossible(): Promise<void> {
    await this.start();
    this.checkNotBroken();
  }

  /**
   * After a DISK_FULL stall: writes the waiting batches in order. LevelDB keeps a failed background write as a
   * sticky error, so a batch that fails again is retried once on a reopened store. Returns true when every
   * waiting batch landed (the stall is over; what was added meanwhile is then flushed), false while there is
   * still no space. Other errors break the owner (as any failed batch does).
   */
  async retry(): Promise<boolean> {
    if (this.stalledError === undefined) return true;
    const done = this.flushDone.then(async () => {
      if (this.stalledError === undefined || this.brokenError !== undefined) return;
      for (let reopened = false; this.flushing.length > 0; ) {
        const head = this.flushing[0];
        if (head === undefined) break;
        try {
          this.host.failpoint?.('flush');
          await this.host.db().batch([...head.ops.values()]);
          this.flushing.shift();
        } catch (err) {
          if (!isNoSpace(err)) {
            this.host.logger?.warn({ err: levelCause(err) }, 'kv: a LevelDB batch failed; the state machine must be reopened');
            this.host.onFailure(this.breakWith(err));
            return;
          }
          // Still no space; or LevelDB's sticky error, which only a reopen clears (and a reopen writes a new log and
          // MANIFEST: without room for them it would leave no store at all).
          if (reopened || (await freeBytes(this.host.dir)) < REOPEN_MIN_FREE_BYTES) return;
          reopened = true;
          await this.host.reopen();
        }
      }
      this.stalledError = undefined;
      this.host.logger?.info({ applied: this.host.appliedIndex() }, 'kv: disk has space again: the waiting batches landed');
    });
    this.flushDone = done.catch((err: unknown) => {
      // The reopen failed: the store is unusable until the process restarts (recovery replays the WAL).
      this.host.onFailure(this.breakWith(err));
    });
    await this.flushDone;
    const over = this.stalledError === undefined && this.brokenError === undefined;
    if (over) void this.start(); // what was added meanwhile
    return over;
  }
}
