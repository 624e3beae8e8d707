// watch-fanout end to end on a small raftkv cluster: 20 watchers spread over 2 forked watch processes
// (bench/watch-pool.ts, bench/watch-worker.ts from dist/), a writer at a fixed rate; every acknowledged put reaches
// every watcher once (the delivery audit finds nothing), and the report's figures add up. Ports 25600-25899.
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runCoordBench } from '../../bench/coord-bench.js';
import { WATCH_WORKER_JS } from '../../bench/watch-pool.js';
import { RAFTKV_TARGET, type CoordTarget } from '../client/coord-targets.js';

let target: CoordTarget | undefined;

beforeAll(async () => {
  if (!existsSync(WATCH_WORKER_JS)) throw new Error(`${WATCH_WORKER_JS} is missing: run \`npm run build\` first`);
  target = await RAFTKV_TARGET.start(25600);
}, 60_000);

afterAll(async () => {
  await target?.close();
}, 30_000);

it('delivers every acknowledged put to every watcher across 2 watch processes, once and in order', async () => {
  const t = target as CoordTarget;
  const lines: string[] = [];
  const [report] = await runCoordBench('raftkv', t.endpoints, {
    scenarios: ['watch-fanout'],
    durationS: 1,
    warmupS: 0.2,
    watchers: 20,
    watchPutsPerS: 40,
    watchProcs: 2,
    valueSize: 16,
    leases: 0,
    leaseTtlS: 10,
    leaseStreams: 1,
    servers: [],
    log: (l) => lines.push(l),
  });
  expect(report).toBeDefined();
  const r = report as NonNullable<typeof report>;
  expect(r.problems, lines.join('\n')).toEqual([]);
  expect(r.detail.watchProcs).toBe(2);
  expect(r.detail.putErrors).toBe(0);
  expect(r.detail.puts).toBeGreaterThan(10);
  expect(r.detail.missingEvents).toBe(0);
  expect(r.detail.duplicateEvents).toBe(0);
  // Every put's event reached all 20 watchers, and only those events were counted.
  expect(r.ops).toBe((r.detail.puts ?? 0) * 20 + (r.detail.unacknowledgedEvents ?? 0));
  expect(r.latency.count).toBe(r.ops - (r.detail.unacknowledgedEvents ?? 0));
  expect(r.latency.p50Ms).toBeGreaterThanOrEqual(0);
  expect(r.latency.p99Ms).toBeLessThan(5000);
  expect(lines.some((l) => l.includes('20 watchers ready') && l.includes('over 2 processes'))).toBe(true);
}, 60_000);
