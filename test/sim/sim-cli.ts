// `npm run sim -- --seeds N [--seed S] [--nodes 3|5] [--steps K] [--fault F] [--progress M]`
// Runs seeds S..S+N-1 (S defaults to $SEED or 1; N to 1 with a seed given, else 100). Without --nodes a seed
// runs with 3 nodes when even and 5 when odd, so a printed seed replays alone. Exits 1 on any violation.
// `--driver` runs the second level instead: the production driver (RaftKvNode) under the seeded simulation
// (test/sim/driver), with `--ticks K` (fault-phase ticks), `--driver-fault F` and `--driver-logs`.
import { performance } from 'node:perf_hooks';
import type { TestingFault } from '../../src/raft/config.js';
import { DEFAULT_STEPS, nodesForSeed } from './sim-defaults.js';
import { runDriverCli } from './driver/driver-cli.js';
import { DRIVER_DEFAULT_TICKS, DRIVER_FAULTS, type DriverFault } from './driver/driver-simulation.js';
import { emptyStats, formatFailure, runSimulation, type ProfileKind, type SimResult, type SimStats } from './simulator.js';

interface CliOptions {
  seeds: number;
  seed: number;
  nodes: 3 | 5 | undefined;
  steps: number;
  fault: TestingFault | undefined;
  progress: number; // print a progress line every this many seeds (0: never)
  maxReports: number; // full failure reports printed
  syncBeforeApply: boolean; // driver policy, see SimOptions
  traceSize: number; // events shown in a failure report
  tornWrites: boolean | undefined; // crash model, see SimOptions (undefined: drawn from the seed)
  commitRuleCheck: boolean; // see SimOptions
  profile: ProfileKind;
  liveness: boolean; // run the heal + liveness phase
  driverFault: 'ack-before-fsync' | undefined; // see SimOptions
  driver: boolean; // run the production driver level (test/sim/driver)
  ticks: number; // --driver: fault-phase ticks
  driverLevelFault: DriverFault | undefined; // --driver: see DriverSimOptions
  driverLogs: boolean; // --driver: the driver's log lines in failure reports
  strict: boolean; // --driver: known driver issues (FOUND-BUGS.md) are violations
  durabilityChecks: boolean; // --driver: persist-before-send and commit-on-a-quorum checked directly
}

function usage(msg: string): never {
  process.stderr.write(`${msg}\nusage: npm run sim -- --seeds N [--seed S] [--nodes 3|5] [--steps K] [--fault commit-old-term|vote-without-up-to-date-check] [--progress M] [--reports R] [--trace EVENTS] [--sync-before-apply] [--torn-writes|--whole-batches] [--no-commit-rule] [--profile mixed|figure-8] [--no-liveness] [--driver-fault ack-before-fsync]\n       npm run sim -- --driver --seeds N [--seed S] [--nodes 3|5] [--ticks K] [--driver-fault ${DRIVER_FAULTS.join('|')}] [--driver-logs] [--strict] [--no-durability-checks] [--progress M] [--reports R] [--trace EVENTS] [--no-liveness]\n`);
  process.exit(2);
}

function intArg(name: string, v: string | undefined): number {
  if (v === undefined || !/^\d+$/.test(v)) usage(`${name} needs a non-negative integer, got ${String(v)}`);
  return Number(v);
}

function parse(argv: readonly string[]): CliOptions {
  const envSeed = process.env['SEED'];
  const o: CliOptions = {
    seeds: 0,
    seed: envSeed !== undefined && envSeed !== '' ? intArg('SEED', envSeed) : -1,
    nodes: undefined,
    steps: DEFAULT_STEPS,
    fault: undefined,
    progress: 0,
    maxReports: 3,
    syncBeforeApply: false,
    traceSize: 40,
    tornWrites: undefined,
    commitRuleCheck: true,
    profile: 'mixed',
    liveness: true,
    driverFault: undefined,
    driver: false,
    ticks: DRIVER_DEFAULT_TICKS,
    driverLevelFault: undefined,
    driverLogs: false,
    strict: false,
    durabilityChecks: true,
  };
  let driverFaultArg: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    const v = argv[i + 1];
    switch (a) {
      case '--seeds':
        o.seeds = intArg(a, v);
        i++;
        break;
      case '--seed':
        o.seed = intArg(a, v);
        i++;
        break;
      case '--nodes': {
        const n = intArg(a, v);
        if (n !== 3 && n !== 5) usage('--nodes must be 3 or 5');
        o.nodes = n;
        i++;
        break;
      }
      case '--steps':
        o.steps = intArg(a, v);
        i++;
        break;
      case '--progress':
        o.progress = intArg(a, v);
        i++;
        break;
      case '--reports':
        o.maxReports = intArg(a, v);
        i++;
        break;
      case '--trace':
        o.traceSize = intArg(a, v);
        i++;
        break;
      case '--torn-writes':
        o.tornWrites = true;
        break;
      case '--whole-batches':
        o.tornWrites = false;
        break;
      case '--profile':
        if (v !== 'mixed' && v !== 'figure-8') usage(`unknown --profile ${String(v)}`);
        o.profile = v;
        i++;
        break;
      case '--driver-fault':
        driverFaultArg = v;
        i++;
        break;
      case '--driver':
        o.driver = true;
        break;
      case '--ticks':
        o.ticks = intArg(a, v);
        i++;
        break;
      case '--driver-logs':
        o.driverLogs = true;
        break;
      case '--strict':
        o.strict = true;
        break;
      case '--no-durability-checks':
        o.durabilityChecks = false;
        break;
      case '--no-liveness':
        o.liveness = false;
        break;
      case '--no-commit-rule':
        o.commitRuleCheck = false;
        break;
      case '--sync-before-apply':
        o.syncBeforeApply = true;
        break;
      case '--fault':
        if (v !== 'commit-old-term' && v !== 'vote-without-up-to-date-check') usage(`unknown --fault ${String(v)}`);
        o.fault = v;
        i++;
        break;
      default:
        usage(`unknown argument ${a}`);
    }
  }
  if (driverFaultArg !== undefined) {
    if (o.driver) {
      const f = DRIVER_FAULTS.find((x) => x === driverFaultArg);
      if (f === undefined) usage(`unknown --driver-fault ${driverFaultArg} (with --driver: ${DRIVER_FAULTS.join(', ')})`);
      o.driverLevelFault = f;
    } else {
      if (driverFaultArg !== 'ack-before-fsync') usage(`unknown --driver-fault ${driverFaultArg}`);
      o.driverFault = driverFaultArg;
    }
  }
  if (o.seeds === 0) o.seeds = o.seed >= 0 ? 1 : 100;
  if (o.seed < 0) o.seed = 1;
  return o;
}

function main(): void {
  const o = parse(process.argv.slice(2));
  if (o.driver) {
    void runDriverCli({
      seeds: o.seeds,
      seed: o.seed,
      nodes: o.nodes,
      ticks: o.ticks,
      driverFault: o.driverLevelFault,
      driverLogs: o.driverLogs,
      liveness: o.liveness,
      strict: o.strict,
      durabilityChecks: o.durabilityChecks,
      progress: o.progress,
      maxReports: o.maxReports,
      traceSize: o.traceSize,
    }).then(
      (failed) => {
        if (failed > 0) process.exitCode = 1;
      },
      (err: unknown) => {
        process.stderr.write(`driver simulation crashed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
        process.exitCode = 2;
      },
    );
    return;
  }
  const started = performance.now();
  const perNodes = new Map<number, { seeds: number; ms: number }>();
  const failures: SimResult[] = [];
  let events = 0;
  const totals = emptyStats();
  let seedsWithCrash = 0;
  let seedsWithConfChange = 0;
  let seedsWithSnapshotInstall = 0;
  let seedsWithTransfer = 0;
  for (let k = 0; k < o.seeds; k++) {
    const seed = o.seed + k;
    const nodes = o.nodes ?? nodesForSeed(seed);
    const t0 = performance.now();
    const r = runSimulation({ seed, nodes, steps: o.steps, testingFault: o.fault, syncBeforeApply: o.syncBeforeApply, traceSize: o.traceSize, tornWrites: o.tornWrites, commitRuleCheck: o.commitRuleCheck, profile: o.profile, liveness: o.liveness, driverFault: o.driverFault });
    const dt = performance.now() - t0;
    const agg = perNodes.get(nodes) ?? { seeds: 0, ms: 0 };
    agg.seeds++;
    agg.ms += dt;
    perNodes.set(nodes, agg);
    events += r.stats.events;
    for (const key of Object.keys(totals) as (keyof SimStats)[]) totals[key] += r.stats[key];
    if (r.stats.crashes > 0) seedsWithCrash++;
    if (r.stats.confChangesApplied > 0) seedsWithConfChange++;
    if (r.stats.snapshotsInstalled > 0) seedsWithSnapshotInstall++;
    if (r.stats.transfers > 0) seedsWithTransfer++;
    if (!r.ok) {
      failures.push(r);
      if (failures.length <= o.maxReports) process.stdout.write(`${formatFailure(r)}\n`);
      else process.stdout.write(`FAIL seed=${seed} nodes=${nodes} ${r.violation?.property ?? ''}: ${r.violation?.detail ?? ''}\n`);
    }
    if (o.seeds === 1) {
      process.stdout.write(`seed ${seed} nodes ${nodes}: ${r.ok ? 'ok' : 'FAIL'} trace ${r.traceHash} ${JSON.stringify(r.stats)}\n`);
    }
    if (o.progress > 0 && (k + 1) % o.progress === 0) {
      const min = (performance.now() - started) / 60_000;
      process.stdout.write(`progress: ${k + 1}/${o.seeds} seeds, ${failures.length} failed, ${Math.round((k + 1) / min)} seeds/min\n`);
    }
  }
  const totalMs = performance.now() - started;
  for (const [nodes, agg] of [...perNodes.entries()].sort((a, b) => a[0] - b[0])) {
    process.stdout.write(
      `nodes=${nodes}: ${agg.seeds} seeds in ${(agg.ms / 1000).toFixed(1)} s = ${Math.round((agg.seeds * 60_000) / agg.ms)} seeds/min (steps ${o.steps})\n`,
    );
  }
  process.stdout.write(
    `total: ${o.seeds} seeds (${o.seed}..${o.seed + o.seeds - 1}), ${failures.length} failed, ${events} events, ${(totalMs / 1000).toFixed(1)} s, ${Math.round((o.seeds * 60_000) / totalMs)} seeds/min\n`,
  );
  if (o.seeds > 1) {
    process.stdout.write(
      `coverage: seeds with crashes ${seedsWithCrash}, conf changes ${seedsWithConfChange}, snapshot installs ${seedsWithSnapshotInstall}, transfers ${seedsWithTransfer}; totals ${JSON.stringify(totals)}\n`,
    );
  }
  if (failures.length > 0) {
    const shown = failures.slice(0, 50).map((f) => `${f.seed}(${f.nodes}n ${f.violation?.property ?? ''})`);
    process.stdout.write(`failing seeds: ${shown.join(' ')}${failures.length > 50 ? ' ...' : ''}\n`);
    process.exitCode = 1;
  }
}

// `npm run sim | head` closes our stdout early: stop quietly instead of crashing on EPIPE.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

main();
