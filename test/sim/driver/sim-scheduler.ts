// The driver simulation's one timeline. Every timer of every node, every delivery, fsync, flush and fault is an
// event at a simulated millisecond (ties in insertion order). After each event the scheduler lets the promise
// work it started run to quiescence before the next one: one setImmediate turn runs the whole microtask queue
// (nothing in a run does real I/O or sets real timers, so nothing else can be waiting). A run is therefore a
// function of its seed alone, never of wall time or machine speed.
import { EventQueue } from '../event-queue.js';

/** Lets every promise callback queued so far (and those they queue) run. */
export function settle(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve));
}

export class SimScheduler {
  private readonly queue = new EventQueue<() => void>();
  private nowValue = 0; // simulated ms
  events = 0; // events run so far

  get nowMs(): number {
    return this.nowValue;
  }

  /** Runs `fn` at `timeMs` (never in the past). */
  at(timeMs: number, fn: () => void): void {
    this.queue.push(Math.max(timeMs, this.nowValue), fn);
  }

  after(delayMs: number, fn: () => void): void {
    this.at(this.nowValue + Math.max(0, delayMs), fn);
  }

  /** Runs the next event and lets what it started settle; false when no event is left. */
  async step(): Promise<boolean> {
    const next = this.queue.pop();
    if (next === undefined) return false;
    this.nowValue = next.time;
    this.events++;
    next.event();
    await settle();
    return true;
  }
}
