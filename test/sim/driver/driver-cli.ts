// `npm run sim -- --driver ...`: seeds of the production driver under the seeded simulation, with a summary
// (seeds per minute per cluster size, what the seeds exercised). Parsed by ../sim-cli.ts.
import { performance } from 'node:perf_hooks';
import { nodesForSeed } from '../sim-defaults.js';
import { emptyDriverStats, formatDriverFailure, runDriverSimulation } from './driver-simulation.js';
import type { DriverFault, DriverSimResult, DriverSimStats } from './driver-simulation.js';

export interface DriverCliOptions {
  readonly seeds: number;
  readonly seed: number;
  readonly nodes: 3 | 5 | undefined; // undefined: 3 on even seeds, 5 on odd
  readonly ticks: number;
  readonly driverFault: DriverFault | undefined;
  readonly driverLogs: boolean;
  readonly liveness: boolean;
  readonly strict: boolean; // known driver issues are violations
  readonly durabilityChecks: boolean; // persist-before-send and commit-on-a-quorum checked directly
  readonly progress: number; // a progress line every this many seeds (0: never)
  readonly maxReports: number; // full failure reports printed
  readonly traceSize: number;
}

const COVERAGE: readonly (keyof DriverSimStats)[] = ['k2RemoteReplies', 'crashes', 'crashPoints', 'gracefulStops', 'walFullEpisodes', 'kvFullEpisodes', 'confChanges', 'snapshotsInstalled', 'transfers'];

/** Runs the seeds; resolves to the number of failed seeds. */
export async function runDriverCli(o: DriverCliOptions): Promise<number> {
  const started = performance.now();
  const perNodes = new Map<number, { seeds: number; ms: number }>();
  const failures: DriverSimResult[] = [];
  const totals = emptyDriverStats();
  const seedsWith = new Map<keyof DriverSimStats, number>();
  for (let k = 0; k < o.seeds; k++) {
    const seed = o.seed + k;
    const nodes = o.nodes ?? nodesForSeed(seed);
    const t0 = performance.now();
    const r = await runDriverSimulation({
      seed,
      nodes,
      ticks: o.ticks,
      traceSize: o.traceSize,
      liveness: o.liveness,
      strict: o.strict,
      durabilityChecks: o.durabilityChecks,
      driverLogs: o.driverLogs,
      ...(o.driverFault !== undefined ? { driverFault: o.driverFault } : {}),
    });
    const agg = perNodes.get(nodes) ?? { seeds: 0, ms: 0 };
    agg.seeds++;
    agg.ms += performance.now() - t0;
    perNodes.set(nodes, agg);
    for (const key of Object.keys(totals) as (keyof DriverSimStats)[]) totals[key] += r.stats[key];
    for (const key of COVERAGE) if (r.stats[key] > 0) seedsWith.set(key, (seedsWith.get(key) ?? 0) + 1);
    if (!r.ok) {
      failures.push(r);
      if (failures.length <= o.maxReports) process.stdout.write(`${formatDriverFailure(r)}\n`);
      else process.stdout.write(`FAIL seed=${seed} nodes=${nodes} ${r.violation?.property ?? ''}: ${r.violation?.detail ?? ''}\n`);
    }
    if (o.seeds === 1) process.stdout.write(`seed ${seed} nodes ${nodes}: ${r.ok ? 'ok' : 'FAIL'} trace ${r.traceHash} ${JSON.stringify(r.stats)}\n`);
    if (o.progress > 0 && (k + 1) % o.progress === 0) {
      const min = (performance.now() - started) / 60_000;
      process.stdout.write(`progress: ${k + 1}/${o.seeds} seeds, ${failures.length} failed, ${Math.round((k + 1) / min)} seeds/min\n`);
    }
  }
  const totalMs = performance.now() - started;
  for (const [nodes, agg] of [...perNodes.entries()].sort((a, b) => a[0] - b[0])) {
    process.stdout.write(`driver nodes=${nodes}: ${agg.seeds} seeds in ${(agg.ms / 1000).toFixed(1)} s = ${Math.round((agg.seeds * 60_000) / agg.ms)} seeds/min (ticks ${o.ticks})\n`);
  }
  process.stdout.write(
    `driver total: ${o.seeds} seeds (${o.seed}..${o.seed + o.seeds - 1}), ${failures.length} failed, ${totals.events} events, ${(totalMs / 1000).toFixed(1)} s, ${Math.round((o.seeds * 60_000) / totalMs)} seeds/min\n`,
  );
  if (o.seeds > 1) {
    const cov = COVERAGE.map((key) => `${key} ${seedsWith.get(key) ?? 0}`).join(', ');
    process.stdout.write(`coverage (seeds with): ${cov}; totals ${JSON.stringify(totals)}\n`);
  }
  if (failures.length > 0) {
    const shown = failures.slice(0, 50).map((f) => `${f.seed}(${f.nodes}n ${f.violation?.property ?? ''})`);
    process.stdout.write(`failing seeds: ${shown.join(' ')}${failures.length > 50 ? ' ...' : ''}\n`);
  }
  return failures.length;
}
