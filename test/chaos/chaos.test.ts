// A SHORT chaos run per nemesis on 3 real nodes (in CI). Needs `npm run build` (npm test builds first).
// Replay a failure with the printed seed: SEED=<seed> npx vitest run test/chaos/chaos.test.ts
import { describe, expect, it } from 'vitest';
import { runChaos, type ChaosOptions } from './harness.js';
import { NEMESIS_KINDS, type NemesisKind } from './nemesis.js';

const BASE_SEED = Number(process.env['SEED'] ?? 20261124);
const SECONDS = Number(process.env['CHAOS_SECONDS'] ?? 15);
// damage: frequent snapshots, so that the WAL gets compacted and a rolled-back state machine can fall behind
// the log's snapshot (restored from a snapshot file), and re-added members install snapshots.
const EXTRA: Partial<Record<NemesisKind, Partial<ChaosOptions>>> = { damage: { snapshotCount: 300 } };

async function expectPass(opts: ChaosOptions): Promise<void> {
  const { report, runDir } = await runChaos(opts);
  const why = `seed ${opts.seed}, run folder ${runDir}: ${report.reasons.join('; ')}`;
  expect(report.faults.length, `no fault injected (${why})`).toBeGreaterThan(0);
  expect(report.ops.ok, `no op acknowledged (${why})`).toBeGreaterThan(0);
  expect(report.rpo.lostWrites, why).toBe(0);
  expect(report.linearizability.verdict, why).toBe('ok');
  expect(report.verdict, why).toBe('pass');
}

describe('chaos (3 real nodes, ~15 s per nemesis)', () => {
  NEMESIS_KINDS.forEach((kind, i) => {
    it(`${kind}: linearizable, no acknowledged write lost`, async () => {
      await expectPass({ nodes: 3, timeSeconds: SECONDS, seed: BASE_SEED + i, nemeses: [kind], clients: 4, ...EXTRA[kind] });
    }, 240_000); // a stuck cluster costs up to ~2 min of bounded waits before the run gives up
  });

  // The secure path is the tested path: TLS with client certificates on every client and peer port.
  it('kill and partition, with TLS and client certificates on every port: linearizable, no acknowledged write lost', async () => {
    await expectPass({ nodes: 3, timeSeconds: SECONDS, seed: BASE_SEED + NEMESIS_KINDS.length, nemeses: ['kill', 'partition'], clients: 4, tls: true });
  }, 240_000);
});

/** A short run with watchers and lease workers under `nemeses`: watch-check.ts's checks and the run's verdict. */
async function expectWatchersPass(seed: number, nemeses: NemesisKind[]): Promise<void> {
  const { report, runDir, watchCheck } = await runChaos({ nodes: 3, timeSeconds: Math.min(SECONDS, 12), seed, nemeses, clients: 3, watchers: 6, leases: true });
  const why = `seed ${seed}, run folder ${runDir}: ${report.reasons.join('; ')}`;
  expect(report.faults.length, `no fault injected (${why})`).toBeGreaterThan(0);
  expect(watchCheck, `the watch check did not run (${why})`).toBeDefined();
  expect(watchCheck?.events ?? 0, `no event watched (${why})`).toBeGreaterThan(0);
  expect(watchCheck?.problems ?? [], why).toEqual([]);
  expect(report.verdict, why).toBe('pass');
}

// Watchers (library and raw, some resumed by hand) and lease workers under kills, pauses and partitions.
describe('chaos with watchers and leases (3 real nodes, ~12 s)', () => {
  it('kill: every watcher ordered, unique, atomic, reliable and resumable; leases expire, revoke and stay kept alive', async () => {
    await expectWatchersPass(BASE_SEED + 100, ['kill']);
  }, 240_000);

  it('pause and partition: the same checks while members are frozen (SIGSTOP) and cut off', async () => {
    await expectWatchersPass(BASE_SEED + 101, ['pause', 'partition']);
  }, 240_000);
});
