// Disk-full parking: ENOSPC is a wait, not a death. When the WAL refuses a write or an fsync with DISK_FULL, the
// loop parks here for DISK_FULL_RETRY_MS and then retries the step that failed (the WAL keeps what it buffered);
// when the state machine's LevelDB refuses a background flush, its applied batches wait in memory (reads see
// them) and the flush is retried every DISK_FULL_RETRY_MS until it lands. Meanwhile writes are refused with
// DISK_FULL. stop() interrupts both waits.
import { isRaftKvError } from '../shared/errors.js';
import type { CancelTimer } from '../shared/clock.js';
import { assert } from './assert.js';
import type { RoomContext } from './node-context.js';
import type { StateMachine } from './ports.js';

export const DISK_FULL_RETRY_MS = 1000;

export interface DiskFullDeps {
  readonly sm: Pick<StateMachine, 'retryFlush'>;
  /** stop() was called: no more retries, and the loop's wait ends. */
  stopping(): boolean;
  /** A retry failed for another reason than a full disk: the node dies (the loop rethrows it). */
  fail(err: unknown): void;
  /** The loop parked, or a retry finished (the node may be idle now). */
  onIdle(): void;
}

export class DiskFull {
  // Invariant: walFull exactly when walFullSinceMs is set; the loop sleeps here only while walFull.
  private walFull = false; // the WAL refused a write with ENOSPC; writes are refused until a retry succeeds
  private walFullSinceMs: number | undefined; // when the WAL first refused the write it still retries (clock ms)
  private kvFull = false; // the state machine's LevelDB refused a batch with ENOSPC; writes refused until it lands
  private cancelKvRetry: CancelTimer | undefined; // the next state machine flush retry
  private kvRetrying = false; // a state machine flush retry is running (the node is not idle)
  private sleeping = false; // the loop waits out DISK_FULL_RETRY_MS before its next WAL retry
  private wakeLoop: (() => void) | undefined; // ends that wait early (until its timer fires)

  constructor(
    private readonly ctx: RoomContext,
    private readonly deps: DiskFullDeps,
  ) {}

  /** Writes are refused (DISK_FULL): the WAL or the state machine has found the disk full. */
  get writesRefused(): boolean {
    return this.walFull || this.kvFull;
  }

  /** The loop waits out DISK_FULL_RETRY_MS before its next WAL retry: only time moves it on. */
  get loopSleeping(): boolean {
    return this.sleeping;
  }

  /** A state machine flush retry is running. */
  get busy(): boolean {
    return this.kvRetrying;
  }

  /** How long the WAL has refused the write the loop still retries (0: it has not). */
  walFullForMs(): number {
    return this.walFullSinceMs === undefined ? 0 : this.ctx.clock.now() - this.walFullSinceMs;
  }

  /**
   * The WAL refused a write or sync with `err`: if it is DISK_FULL, writes are refused and the loop waits
   * DISK_FULL_RETRY_MS before the caller retries. Anything else, or DISK_FULL while stopping, is rethrown.
   */
  async parkOnWal(err: unknown): Promise<void> {
    if (!isRaftKvError(err, 'DISK_FULL') || this.deps.stopping()) throw err;
    if (!this.walFull) {
      this.walFull = true;
      this.walFullSinceMs = this.ctx.clock.now();
      this.ctx.log.error({ ...this.ctx.logFields(), err }, `disk full: writes refused, retrying every ${DISK_FULL_RETRY_MS} ms`);
    }
    await this.sleepInterruptibly(DISK_FULL_RETRY_MS);
    if (this.deps.stopping()) throw err;
  }

  /** A WAL write or sync succeeded: if the loop was parked, writes resume. */
  leaveWal(): void {
    if (!this.walFull) return;
    this.walFull = false;
    this.walFullSinceMs = undefined;
    this.ctx.log.warn(this.ctx.logFields(), 'disk has space again: writes resume');
  }

  /**
   * The state machine's LevelDB found the disk full. Applied batches wait in its memory (reads see them, and
   * the WAL holds them until a snapshot, which waits too); writes are refused with DISK_FULL and the flush is
   * retried every DISK_FULL_RETRY_MS until it lands.
   */
  onKvFull(err: Error): void {
    if (!this.kvFull) {
      this.kvFull = true;
      this.ctx.log.error({ ...this.ctx.logFields(), err: err.message }, `disk full: writes refused, retrying every ${DISK_FULL_RETRY_MS} ms`);
    }
    this.scheduleKvRetry();
  }

  /** stop(): no further flush retry; the loop's wait (if any) ends now. */
  cancelKvRetries(): void {
    this.cancelKvRetry?.();
  }

  /** Ends the loop's wait before its next WAL retry now (stop()). */
  wake(): void {
    this.wakeLoop?.();
  }

  assertInvariants(): void {
    assert(this.walFull === (this.walFullSinceMs !== undefined), `WAL full ${this.walFull} but full since ${String(this.walFullSinceMs)}`);
    assert(!this.sleeping || this.walFull, 'the loop waits for a WAL retry but the WAL is not full');
    assert(this.wakeLoop === undefined || this.sleeping, 'a wake-up for a wait the loop is not in');
    assert(!(this.kvRetrying && this.cancelKvRetry !== undefined), 'a flush retry runs while the next one is scheduled');
  }

  private scheduleKvRetry(): void {
    if (this.cancelKvRetry !== undefined || this.deps.stopping()) return;
    this.cancelKvRetry = this.ctx.clock.setTimeout(() => {
      this.cancelKvRetry = undefined;
      void this.retryKvFlush(); // never rejects
    }, DISK_FULL_RETRY_MS);
  }

  private async retryKvFlush(): Promise<void> {
    let landed = false;
    this.kvRetrying = true;
    try {
      landed = (await this.deps.sm.retryFlush?.()) ?? true;
    } catch (err) {
      this.deps.fail(err); // the loop rethrows it
      return;
    } finally {
      this.kvRetrying = false;
      this.deps.onIdle();
    }
    if (!landed) {
      this.scheduleKvRetry();
      return;
    }
    this.kvFull = false;
    this.ctx.log.warn(this.ctx.logFields(), 'disk has space again: state machine writes landed, writes resume');
  }

  private async sleepInterruptibly(ms: number): Promise<void> {
    this.sleeping = true;
    this.deps.onIdle();
    await new Promise<void>((resolve) => {
      const cancel = this.ctx.clock.setTimeout(() => {
        this.wakeLoop = undefined;
        resolve();
      }, ms);
      this.wakeLoop = () => {
        cancel();
        this.wakeLoop = undefined;
        resolve();
      };
    });
    this.sleeping = false;
  }
}
