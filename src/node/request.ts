// One client request awaiting its answer: settles once (answer, error or deadline), then forgets its timer.
import type { CancelTimer, Clock } from '../shared/clock.js';
import { RaftKvError } from '../shared/errors.js';

export class PendingRequest<T> {
  readonly promise: Promise<T>;
  private settledFlag = false; // true once resolved or rejected; later settles are ignored
  private resolveFn!: (v: T) => void;
  private rejectFn!: (e: Error) => void;
  private readonly cancelDeadline: CancelTimer;

  /**
   * @param deadlineMs absolute deadline on `clock`; past it the request rejects with DEADLINE_EXCEEDED.
   * @param onSettle called exactly once when the request settles (frees its slot in a bounded table), with the
   *   error it was rejected with (undefined: resolved).
   */
  constructor(clock: Clock, deadlineMs: number, what: string, private readonly onSettle: (err: Error | undefined) => void) {
    this.promise = new Promise<T>((resolve, reject) => {
      this.resolveFn = resolve;
      this.rejectFn = reject;
    });
    const delayMs = deadlineMs - clock.now();
    this.cancelDeadline = clock.setTimeout(() => {
      this.reject(new RaftKvError('DEADLINE_EXCEEDED', `${what}: deadline exceeded (outcome unknown)`));
    }, Math.max(0, delayMs));
  }

  get settled(): boolean {
    return this.settledFlag;
  }

  resolve(value: T): void {
    if (this.settle(undefined)) this.resolveFn(value);
  }

  reject(err: Error): void {
    if (this.settle(err)) this.rejectFn(err);
  }

  private settle(err: Error | undefined): boolean {
    if (this.settledFlag) return false;
    this.settledFlag = true;
    this.cancelDeadline();
    this.onSettle(err);
    return true;
  }
}
