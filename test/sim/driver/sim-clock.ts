// A node's Clock in the driver simulation: its timers are events on the shared SimScheduler. One SimClock per
// process incarnation; a crash kills it, and a killed clock's timers never fire (a dead process runs nothing).
import type { CancelTimer, Clock } from '../../../src/shared/clock.js';
import type { SimScheduler } from './sim-scheduler.js';

export class SimClock implements Clock {
  private alive = true;
  fired = 0; // timer callbacks run (for the trace)

  constructor(
    private readonly scheduler: SimScheduler,
    private readonly onFire: () => void = () => undefined,
  ) {}

  now(): number {
    return this.scheduler.nowMs;
  }

  setTimeout(fn: () => void, delayMs: number): CancelTimer {
    let cancelled = false;
    if (this.alive && Number.isFinite(delayMs)) {
      this.scheduler.after(Math.max(0, delayMs), () => {
        if (cancelled || !this.alive) return;
        cancelled = true;
        this.fire(fn);
      });
    }
    return () => {
      cancelled = true;
    };
  }

  setInterval(fn: () => void, intervalMs: number): CancelTimer {
    if (!(intervalMs > 0)) throw new Error(`SimClock: interval must be positive, got ${intervalMs}`);
    let cancelled = false;
    const arm = (): void => {
      this.scheduler.after(intervalMs, () => {
        if (cancelled || !this.alive) return;
        arm();
        this.fire(fn);
      });
    };
    if (this.alive) arm();
    return () => {
      cancelled = true;
    };
  }

  /** A promise resolved after `ms` of simulated time (at once for 0); never, once the clock is killed. */
  delay(ms: number): Promise<void> {
    if (ms <= 0 && this.alive) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.setTimeout(resolve, ms);
    });
  }

  get isAlive(): boolean {
    return this.alive;
  }

  /** The process died: no timer of this clock fires again. */
  kill(): void {
    this.alive = false;
  }

  private fire(fn: () => void): void {
    this.fired++;
    this.onFire();
    fn();
  }
}
