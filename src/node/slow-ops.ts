// Slow things, logged as etcd logs them: one structured warn line each, with the figures, and counted through
// NodeMetrics. The thresholds are etcd's, so an operator's alerts and habits carry over.
import type { pino } from 'pino';
import type { NodeMetrics } from './node-metrics.js';

/** etcd's warnApplyDuration: an apply batch slower than this holds up every write and read behind it. */
export const SLOW_APPLY_MS = 100;
/** etcd's warnSyncDuration: an fdatasync this slow is a disk that will soon cost the cluster its leader. */
export const SLOW_FDATASYNC_MS = 1000;
/**
 * etcd's heartbeat timeout detector: a leader whose heartbeats to a follower are further apart than this many
 * heartbeat intervals is overloaded (usually a slow disk or a stalled loop); past the election timeout the
 * follower campaigns.
 */
export const LATE_HEARTBEAT_FACTOR = 2;

/** The WAL's fsync observer: a histogram sample, and etcd's "slow fdatasync" warning past SLOW_FDATASYNC_MS. */
export function walSyncObserver(log: pino.Logger, metrics: NodeMetrics): (durationMs: number) => void {
  return (durationMs) => {
    metrics.onWalFsync(durationMs);
    if (durationMs > SLOW_FDATASYNC_MS) {
      log.warn({ tookMs: Math.round(durationMs), expectedDurationMs: SLOW_FDATASYNC_MS }, 'slow fdatasync');
    }
  };
}

/**
 * After an apply batch: a metrics sample, and etcd's "apply request took too long" past `thresholdMs` (etcd's
 * --experimental-warning-apply-duration, SLOW_APPLY_MS by default). etcd times each request's apply; raftkv applies
 * a batch of entries at once, so the line names the batch (prefix "" as etcd's for an applied write).
 */
export function observeApply(log: pino.Logger, metrics: NodeMetrics, entries: number, firstIndex: number, durationMs: number, thresholdMs = SLOW_APPLY_MS): void {
  const slow = durationMs > thresholdMs;
  metrics.onApply(entries, durationMs, slow);
  if (slow) {
    log.warn({ tookMs: Math.round(durationMs), expectedDurationMs: thresholdMs, prefix: '', entries, firstIndex }, 'apply request took too long');
  }
}
