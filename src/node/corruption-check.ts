// The corruption check (etcd's --experimental-corrupt-check-time, here on by default): every
// corruptCheckIntervalMs the state machine rescans its store against the digest apply kept, one scan at a time.
// A mismatch, or raiseCorrupt() from a server that compared digests across members, is the CORRUPT alarm: the
// member stops (the loop dies with DATA_CORRUPTION; `raftkv serve` exits 70) and refuses to start again until
// the operator has replaced its data (the message names the remedy).
import type { CancelTimer } from '../shared/clock.js';
import { RaftKvError, isRaftKvError } from '../shared/errors.js';
import { REPLACE_MEMBER_REMEDY } from '../shared/remedies.js';
import type { RoomContext } from './node-context.js';
import type { StateMachine } from './ports.js';

export interface CorruptionCheckDeps {
  readonly sm: Pick<StateMachine, 'verifyKeySpace'>;
  /** stop() was called: no new scan, and a failing one is not reported. */
  stopping(): boolean;
  /** The CORRUPT alarm: the loop rethrows it and dies. */
  fail(err: Error): void;
  /** A scan finished (the node may be idle now). */
  onIdle(): void;
}

export class CorruptionCheck {
  private cancelTimer: CancelTimer | undefined; // the periodic check's timer
  private running = false; // one scan at a time (a scan of a large store takes seconds)

  constructor(
    private readonly ctx: RoomContext,
    private readonly deps: CorruptionCheckDeps,
  ) {}

  /** A scan is running. */
  get busy(): boolean {
    return this.running;
  }

  /** Scans every `intervalMs` (0: never). */
  start(intervalMs: number): void {
    if (intervalMs > 0) this.cancelTimer = this.ctx.clock.setInterval(() => void this.run(), intervalMs);
  }

  stop(): void {
    this.cancelTimer?.();
  }

  /** One scan, unless one is running or the state machine cannot. Never rejects. */
  async run(): Promise<void> {
    const { sm } = this.deps;
    if (this.running || this.deps.stopping() || sm.verifyKeySpace === undefined) return;
    this.running = true;
    try {
      await sm.verifyKeySpace();
    } catch (err) {
      if (isRaftKvError(err, 'DATA_CORRUPTION')) {
        this.ctx.log.fatal({ err: err.message }, 'CORRUPT: the state machine does not match its digest; this member stops serving');
        this.deps.fail(err); // the message names the store and the remedy
      } else if (!this.deps.stopping() && !isRaftKvError(err, 'DISK_FULL')) {
        this.ctx.log.warn({ err }, 'corruption check could not run');
      }
    } finally {
      this.running = false;
      this.deps.onIdle();
    }
  }

  /** The CORRUPT alarm raised from outside (a digest that differs from the other members'). */
  raise(reason: string): void {
    const err = new RaftKvError('DATA_CORRUPTION', `CORRUPT: ${reason}; ${REPLACE_MEMBER_REMEDY}`);
    this.ctx.log.fatal({ err: err.message }, 'CORRUPT: this member stops serving');
    this.deps.fail(err);
  }
}
