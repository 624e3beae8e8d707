// Time for the driver: ticks come from one interval timer, deadlines and retries from one-shot timers.
// Production uses the system clock; tests inject a ManualClock and move time themselves (no sleeps).

/** Cancels a timer; calling it twice is harmless. */
export type CancelTimer = () => void;

export interface Clock {
  /** Milliseconds on the same scale as request deadlines (Date.now() for the system clock). */
  now(): number;
  setInterval(fn: () => void, intervalMs: number): CancelTimer;
  setTimeout(fn: () => void, delayMs: number): CancelTimer;
}

/**
 * The longest delay one Node timer can wait: Node clamps a larger setTimeout/setInterval delay to 1 ms (with a
 * TimeoutOverflowWarning), so a 30-day deadline would fire at once. systemClock.setTimeout chains timers of at
 * most this length; callers that take a timeout from a user (client options, CLI flags) refuse larger ones.
 */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => Date.now(),
  setInterval(fn, intervalMs) {
    if (!(intervalMs <= MAX_TIMER_DELAY_MS)) throw new Error(`systemClock: interval ${intervalMs} ms exceeds ${MAX_TIMER_DELAY_MS} ms`);
    const t = setInterval(fn, intervalMs);
    return () => clearInterval(t);
  },
  setTimeout(fn, delayMs) {
    // A delay longer than one timer can wait: wait MAX_TIMER_DELAY_MS, then the rest (Infinity: never fires).
    let t: NodeJS.Timeout;
    const arm = (remainingMs: number): void => {
      t = remainingMs > MAX_TIMER_DELAY_MS ? setTimeout(() => arm(remainingMs - MAX_TIMER_DELAY_MS), MAX_TIMER_DELAY_MS) : setTimeout(fn, remainingMs);
    };
    arm(delayMs);
    return () => clearTimeout(t);
  },
};

interface ManualTimer {
  readonly id: number; // creation order: ties at the same due time fire in this order
  dueMs: number; // next firing time
  readonly intervalMs: number; // 0 for a one-shot timer
  readonly fn: () => void;
}

/**
 * A clock that only moves when told to. `advance(ms)` fires, in time order, every timer due within the
 * window (intervals as many times as they are due). Callbacks run synchronously inside advance().
 */
export class ManualClock implements Clock {
  private nowMs: number; // the current time
  private nextId = 1; // id of the next timer
  private readonly timers = new Map<number, ManualTimer>(); // live timers by id

  constructor(startMs = 1_000_000) {
    this.nowMs = startMs;
  }

  now(): number {
    return this.nowMs;
  }

  setInterval(fn: () => void, intervalMs: number): CancelTimer {
    if (!(intervalMs > 0)) throw new Error(`ManualClock: interval must be positive, got ${intervalMs}`);
    return this.add(fn, intervalMs, intervalMs);
  }

  setTimeout(fn: () => void, delayMs: number): CancelTimer {
    return this.add(fn, Math.max(0, delayMs), 0);
  }

  /** Moves time forward by `ms`, firing due timers in order. */
  advance(ms: number): void {
    if (ms < 0) throw new Error(`ManualClock: cannot go back in time (${ms} ms)`);
    const endMs = this.nowMs + ms;
    for (;;) {
      let next: ManualTimer | undefined;
      for (const t of this.timers.values()) {
        if (t.dueMs <= endMs && (next === undefined || t.dueMs < next.dueMs || (t.dueMs === next.dueMs && t.id < next.id))) {
          next = t;
        }
      }
      if (next === undefined) break;
      this.nowMs = Math.max(this.nowMs, next.dueMs);
      if (next.intervalMs > 0) next.dueMs += next.intervalMs;
      else this.timers.delete(next.id);
      next.fn();
    }
    this.nowMs = endMs;
  }

  /** Number of live timers (tests check that a stopped node leaves none behind). */
  pendingTimers(): number {
    return this.timers.size;
  }

  private add(fn: () => void, delayMs: number, intervalMs: number): CancelTimer {
    const id = this.nextId++;
    this.timers.set(id, { id, dueMs: this.nowMs + delayMs, intervalMs, fn });
    return () => {
      this.timers.delete(id);
    };
  }
}
