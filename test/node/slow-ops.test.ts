// etcd's slow-operation warnings: one structured line each with the figures, only past the named threshold,
// and counted through NodeMetrics.
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { NO_NODE_METRICS } from '../../src/node/node-metrics.js';
import type { NodeMetrics } from '../../src/node/node-metrics.js';
import { SLOW_APPLY_MS, SLOW_FDATASYNC_MS, observeApply, walSyncObserver } from '../../src/node/slow-ops.js';

function capture(): { log: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, lines };
}

describe('slow operations', () => {
  it('an fdatasync over SLOW_FDATASYNC_MS logs "slow fdatasync" with the figures; every one is a sample', () => {
    const { log, lines } = capture();
    const samples: number[] = [];
    const metrics: NodeMetrics = { ...NO_NODE_METRICS, onWalFsync: (ms) => samples.push(ms) };
    const observe = walSyncObserver(log, metrics);
    observe(2);
    observe(SLOW_FDATASYNC_MS);
    observe(SLOW_FDATASYNC_MS + 234.4);
    expect(samples).toEqual([2, SLOW_FDATASYNC_MS, SLOW_FDATASYNC_MS + 234.4]);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 40, msg: 'slow fdatasync', tookMs: 1234, expectedDurationMs: 1000 });
  });

  it('an apply batch over SLOW_APPLY_MS logs "apply request took too long" and counts as slow', () => {
    const { log, lines } = capture();
    const applies: [number, number, boolean][] = [];
    const metrics: NodeMetrics = { ...NO_NODE_METRICS, onApply: (n, ms, slow) => applies.push([n, ms, slow]) };
    observeApply(log, metrics, 5, 100, 3);
    observeApply(log, metrics, 40, 105, SLOW_APPLY_MS + 50);
    expect(applies).toEqual([
      [5, 3, false],
      [40, SLOW_APPLY_MS + 50, true],
    ]);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 40, msg: 'apply request took too long', tookMs: 150, expectedDurationMs: 100, entries: 40, firstIndex: 105 });
  });

  it('takes the threshold from --experimental-warning-apply-duration', () => {
    const { log, lines } = capture();
    observeApply(log, NO_NODE_METRICS, 3, 10, 150, 200);
    observeApply(log, NO_NODE_METRICS, 3, 13, 250, 200);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ msg: 'apply request took too long', tookMs: 250, expectedDurationMs: 200, prefix: '', firstIndex: 13 });
  });
});
