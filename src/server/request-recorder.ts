// Requests this member served (every KV read and write, whichever protocol carried it: raftkv's unary calls,
// its multiplexed stream, etcd's API), counted for the dashboard: requests per second and latency quantiles
// over the last few seconds. gRPC calls are counted by grpc-metrics.ts instead; one KV.Stream call there
// carries many requests, which is why requests are counted here, at the node's door (serve.ts's LateNode).
//
// Memory is bounded: one slot per second for WINDOW_SECONDS, each a count, an error count and a histogram of
// latencies in LATENCY_BUCKETS_MS (quantiles are read from the histogram: at most one bucket's width off).

/** Seconds of history kept (the dashboard shows rates over the last RATE_SECONDS full seconds). */
export const WINDOW_SECONDS = 10;
/** Rates and quantiles are over this many complete seconds: one second alone jumps with every batch. */
export const RATE_SECONDS = 2;

/** Latency bucket upper bounds, ms: ~19% apart from 0.05 ms to ~20 s. */
const LATENCY_BUCKETS_MS: readonly number[] = Array.from({ length: 72 }, (_, i) => 0.05 * 1.2 ** i);

export type RequestKind = 'read' | 'write';

interface Slot {
  second: number; // the whole second (monotonic clock) it counts
  count: number;
  errors: number;
  readonly buckets: number[]; // per LATENCY_BUCKETS_MS, plus one for larger
}

export interface RequestStats {
  readonly readsPerSecond: number;
  readonly writesPerSecond: number;
  readonly errorsPerSecond: number;
  /** Over reads and writes of the last RATE_SECONDS seconds (0 when there were none). */
  readonly p50Ms: number;
  readonly p99Ms: number;
}

export class RequestRecorder {
  private readonly slots: Record<RequestKind, Slot[]> = { read: [], write: [] };

  constructor(private readonly nowMs: () => number = () => performance.now()) {}

  /** Times `p` as one request of `kind`; returns it unchanged. */
  track<T>(kind: RequestKind, p: Promise<T>): Promise<T> {
    const started = this.nowMs();
    void p.then(
      () => this.record(kind, this.nowMs() - started, false),
      () => this.record(kind, this.nowMs() - started, true),
    );
    return p;
  }

  record(kind: RequestKind, durationMs: number, failed: boolean): void {
    const second = Math.floor(this.nowMs() / 1000);
    const slot = this.slotFor(kind, second);
    slot.count++;
    if (failed) slot.errors++;
    let b = LATENCY_BUCKETS_MS.findIndex((upper) => durationMs <= upper);
    if (b < 0) b = LATENCY_BUCKETS_MS.length;
    slot.buckets[b] = (slot.buckets[b] ?? 0) + 1;
  }

  /** Rates and quantiles over the last RATE_SECONDS complete seconds. */
  stats(): RequestStats {
    const current = Math.floor(this.nowMs() / 1000);
    const inWindow = (s: Slot): boolean => s.second < current && s.second >= current - RATE_SECONDS;
    const reads = this.slots.read.filter(inWindow);
    const writes = this.slots.write.filter(inWindow);
    const sum = (slots: Slot[], f: (s: Slot) => number): number => slots.reduce((n, s) => n + f(s), 0);
    const merged = new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0);
    for (const s of [...reads, ...writes]) for (let i = 0; i < merged.length; i++) merged[i] = (merged[i] ?? 0) + (s.buckets[i] ?? 0);
    const total = merged.reduce((a, b) => a + b, 0);
    const quantile = (q: number): number => {
      if (total === 0) return 0;
      let seen = 0;
      for (let i = 0; i < merged.length; i++) {
        seen += merged[i] ?? 0;
        if (seen >= q * total) return LATENCY_BUCKETS_MS[i] ?? LATENCY_BUCKETS_MS[LATENCY_BUCKETS_MS.length - 1] ?? 0;
      }
      return 0;
    };
    return {
      readsPerSecond: sum(reads, (s) => s.count) / RATE_SECONDS,
      writesPerSecond: sum(writes, (s) => s.count) / RATE_SECONDS,
      errorsPerSecond: (sum(reads, (s) => s.errors) + sum(writes, (s) => s.errors)) / RATE_SECONDS,
      p50Ms: quantile(0.5),
      p99Ms: quantile(0.99),
    };
  }

  private slotFor(kind: RequestKind, second: number): Slot {
    const slots = this.slots[kind];
    const last = slots[slots.length - 1];
    if (last !== undefined && last.second === second) return last;
    const slot: Slot = { second, count: 0, errors: 0, buckets: new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0) };
    slots.push(slot);
    while (slots.length > 0 && (slots[0]?.second ?? second) <= second - WINDOW_SECONDS) slots.shift();
    return slot;
  }
}
