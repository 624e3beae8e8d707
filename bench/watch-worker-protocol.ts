// The messages between watch-fanout's parent (watch-pool.ts) and its watcher processes (watch-worker.ts), over
// Node's IPC channel with `serialization: 'advanced'` (typed arrays travel as such), and the clock both sides
// stamp with: CLOCK_MONOTONIC (process.hrtime), which every process on the machine shares, unlike
// performance.now(), whose origin is each process's start.
import type { DialTlsConfig } from '../src/shared/tls-files.js';

/** Milliseconds on the machine-wide monotonic clock (comparable across processes). */
export function monoMs(): number {
  return Number(process.hrtime.bigint() / 1000n) / 1000;
}

/** Parent -> worker. */
export type ToWorker =
  | { readonly type: 'start'; readonly endpoints: readonly string[]; readonly prefix: string; readonly firstWatcher: number; readonly watchers: number; readonly tls?: DialTlsConfig }
  | { readonly type: 'count'; readonly fromRevision: number } // from now on, report events above this revision
  | { readonly type: 'stop' };

/** Worker -> parent. */
export type FromWorker =
  | { readonly type: 'ready' } // every watcher is created on a member
  | { readonly type: 'counting' } // the 'count' message took effect: no event above fromRevision was dropped
  | { readonly type: 'events'; readonly triples: Float64Array } // (watcher index, revision, received at monoMs) x n
  | { readonly type: 'stopped'; readonly cpuPercent: number; readonly reconnects: number; readonly watchErrors: number };

/** How often a worker sends the events it received (a batch per interval keeps IPC cheap and the figures fresh). */
export const EVENT_FLUSH_INTERVAL_MS = 50;
