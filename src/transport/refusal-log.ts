// A rate-limited warning log for refused peer traffic. A refusal is worth one line that says who and why, but a
// hostile or broken sender can repeat it at line rate: each distinct reason (its key) is logged at most once per
// REFUSAL_LOG_INTERVAL_MS, the next line saying how many were suppressed meanwhile, and at most
// REFUSAL_LOG_MAX_KEYS reasons are remembered (the oldest forgotten first), so the log cannot grow the heap.
import type { pino } from 'pino';

/** One line per reason per 10 s: enough to see an attack or a misconfiguration, too few to flood the log. */
export const REFUSAL_LOG_INTERVAL_MS = 10_000;
/** Distinct reasons remembered: keys carry sender-chosen values (ids, cluster ids), so they are bounded. */
export const REFUSAL_LOG_MAX_KEYS = 1024;

export class RefusalLog {
  private readonly seen = new Map<string, { loggedAtMs: number; suppressed: number }>(); // insertion order = age

  constructor(
    private readonly logger: pino.Logger,
    private readonly now: () => number = Date.now,
  ) {}

  warn(key: string, obj: object, msg: string): void {
    const t = this.now();
    const entry = this.seen.get(key);
    if (entry !== undefined && t - entry.loggedAtMs < REFUSAL_LOG_INTERVAL_MS) {
      entry.suppressed++;
      return;
    }
    const suppressed = entry?.suppressed ?? 0;
    this.seen.delete(key);
    this.seen.set(key, { loggedAtMs: t, suppressed: 0 });
    while (this.seen.size > REFUSAL_LOG_MAX_KEYS) {
      const oldest = this.seen.keys().next().value;
      if (oldest === undefined) break;
      this.seen.delete(oldest);
    }
    this.logger.warn(suppressed > 0 ? { ...obj, suppressedSinceLastLine: suppressed } : obj, msg);
  }
}
