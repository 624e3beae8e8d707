// `npm run bench:vs-etcd`: starts a 3-member etcd and a 3-member raftkv on loopback in turn, runs every
// workload against each, measures failover (kill -9 the leader under load), stops everything, and prints
// the side-by-side table with the raftkv/etcd ratio per workload. Results also go to <run dir>/vs-etcd.json.
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import type { ClusterUnderTest } from './cluster-under-test.js';
import { EtcdCluster } from './etcd-cluster.js';
import { measureFailover, type FailoverResult } from './failover.js';
import { REPO_ROOT } from '../cluster/serve-process.js';
import { RaftKvCluster } from './raftkv-cluster.js';
import { clientTls, makeClusterCertificates } from '../cluster/tls-certs.js';
import { fmt, formatTable, workloadTable, type WorkloadReport } from './report.js';
import { randomSeed } from './rng.js';
import { parseWorkloads, runBench } from './run-bench.js';
import { parseCoordScenarios, runCoordBench, type CoordBenchOptions, type CoordReport } from './coord-bench.js';
import type { TargetName } from './target.js';

const run = promisify(execFile);

const USAGE = `usage: npm run bench:vs-etcd -- [flags]
  --workload NAME[,NAME]|all|none  (default all)  --duration S   per workload (default 10)
  --keys N (default 10000)    --value-size B (default 256)     --warmup S (default 1)
  --failover-reps N           kill -9 the leader N times per system (default 3; 0 = skip)
  --only raftkv|etcd          run one system only
  --run-dir DIR               data dirs, logs and vs-etcd.json (default runs/vs-etcd-<time>)
  --seed N                    --no-progress
  --check-perf s|m|l|xl       also run \`etcdctl check perf --load=LOAD\` against each system (60 s each)
  --tls                       both systems with TLS and client certificates on every port (one local CA,
                              cluster/tls-certs.ts; the same certificates for etcd and raftkv)
  --raftkv-transport stream|unary|etcd  raftkv client: KV calls on one stream per member (default), unary calls
                                   like etcd's, or the etcd target's own code over raftkv's etcd API
  --coord watch-fanout,lease-keepalive|all|none  coordination scenarios after the workloads (default all)
  --watchers N (default 1000)  --watch-rate PUTS/S (default 100)   watch-fanout's size and the writer's rate
  --watch-procs N (default 2)  processes watch-fanout's watchers are spread over (so one event loop is not the cap)
  --leases N (default 10000)   --lease-ttl S (default 30)  --lease-streams N (default 8)   lease-keepalive's size
  --raftkv-args="FLAGS"      extra \`raftkv serve\` flags for every member, e.g. --raftkv-args="--commit-broadcast lazy"
  --base-port P               etcd on P (clients) / P+10 (peers), raftkv on P+100 / P+110 (default 23790 / 24790)`;

interface SystemResult {
  readonly name: TargetName;
  readonly version: string;
  readonly reports: readonly WorkloadReport[];
  readonly failover: FailoverResult | undefined;
  readonly idleRssMiB: readonly number[]; // each member right after start
  readonly checkPerf: CheckPerfResult | undefined; // etcdctl check perf, when asked
  readonly coord: readonly CoordReport[]; // the coordination scenarios (watch fan-out, lease keep-alives)
}

interface CheckPerfResult {
  readonly load: string;
  readonly verdict: 'PASS' | 'FAIL';
  readonly lines: readonly string[]; // etcdctl's PASS/FAIL lines (throughput, slowest request, stddev)
}

/** `etcdctl check perf --load=LOAD` against `endpoints` (its verdict is its exit status; its lines say why). */
async function checkPerf(endpoints: readonly string[], load: string, tlsDir: string | undefined): Promise<CheckPerfResult> {
  const tls = tlsDir === undefined ? [] : ((t) => ['--cacert', t.caFile, '--cert', t.certFile, '--key', t.keyFile])(clientTls(tlsDir));
  const args = ['--endpoints', endpoints.join(','), ...tls, 'check', 'perf', `--load=${load}`, '--auto-compact', '--auto-defrag'];
  const env = { ...process.env, ETCDCTL_API: '3' };
  const res = await run('etcdctl', args, { env, timeout: 10 * 60_000 }).then(
    (r) => ({ ok: true, out: r.stdout + r.stderr }),
    (err: { stdout?: string; stderr?: string }) => ({ ok: false, out: (err.stdout ?? '') + (err.stderr ?? '') }),
  );
  const lines = res.out.split('\n').filter((l) => /^(PASS|FAIL)/.test(l.trim())).map((l) => l.trim());
  return { load, verdict: res.ok ? 'PASS' : 'FAIL', lines };
}

async function runSystem(
  cluster: ClusterUnderTest,
  opts: { workloads: string; durationS: number; warmupS: number; keys: number; valueSize: number; seed: number; failoverReps: number; progress: boolean; raftkvTransport: string; tlsDir: string | undefined; checkPerf: string | undefined; coord: Omit<CoordBenchOptions, 'servers' | 'log' | 'durationS' | 'warmupS' | 'valueSize' | 'tls'> },
): Promise<SystemResult> {
  const log = (line: string): void => {
    process.stderr.write(`[${cluster.name}] ${line}\n`);
  };
  log(`starting 3 members (${cluster.version}${cluster.name === 'raftkv' ? `, client transport ${opts.raftkvTransport}` : ''})`);
  const t0 = performance.now();
  await cluster.start();
  log(`ready in ${((performance.now() - t0) / 1000).toFixed(1)} s; client endpoints ${cluster.clientEndpoints.join(',')}`);
  try {
    const { rssMiB } = await import('./proc-stats.js');
    const idleRssMiB = cluster.pids().map((p) => rssMiB(p.pid));
    const target = await cluster.makeTarget();
    let reports: WorkloadReport[];
    try {
      reports = await runBench(target, {
        workloads: parseWorkloads(opts.workloads),
        keys: opts.keys,
        keySize: 8,
        valueSize: opts.valueSize,
        durationS: opts.durationS,
        ops: undefined,
        warmupS: opts.warmupS,
        concurrency: undefined,
        seed: opts.seed,
        timeoutMs: 5000,
        preload: true,
        progress: opts.progress,
        servers: cluster.pids(),
      });
    } finally {
      target.close();
    }
    let perf: CheckPerfResult | undefined;
    if (opts.checkPerf !== undefined) {
      log(`etcdctl check perf --load=${opts.checkPerf}`);
      perf = await checkPerf(cluster.clientEndpoints, opts.checkPerf, opts.tlsDir);
      log(`check perf: ${perf.verdict} (${perf.lines.join('; ')})`);
    }
    const tls = opts.tlsDir === undefined ? {} : { tls: clientTls(opts.tlsDir) };
    const coord = await runCoordBench(cluster.name, cluster.clientEndpoints, { ...opts.coord, ...tls, durationS: opts.durationS, warmupS: opts.warmupS, valueSize: opts.valueSize, servers: cluster.pids(), log });
    const failover =
      opts.failoverReps > 0
        ? await measureFailover(cluster, { repetitions: opts.failoverReps, concurrency: 16, requestTimeoutMs: 1000, giveUpMs: 30_000, seed: opts.seed, log })
        : undefined;
    return { name: cluster.name, version: cluster.version, reports, failover, idleRssMiB, checkPerf: perf, coord };
  } finally {
    log('stopping');
    await cluster.stop();
  }
}

function comparisonTable(raftkv: SystemResult | undefined, etcd: SystemResult | undefined): string {
  const names = [...new Set([...(raftkv?.reports ?? []), ...(etcd?.reports ?? [])].map((r) => r.workload))];
  const ratio = (a: number | undefined, b: number | undefined): string => (a === undefined || b === undefined || b === 0 ? '-' : fmt(a / b));
  const rows = names.map((w) => {
    const r = raftkv?.reports.find((x) => x.workload === w);
    const e = etcd?.reports.find((x) => x.workload === w);
    return [
      w,
      r === undefined ? '-' : fmt(r.throughputOpsPerS, 0),
      e === undefined ? '-' : fmt(e.throughputOpsPerS, 0),
      ratio(r?.throughputOpsPerS, e?.throughputOpsPerS),
      r === undefined ? '-' : fmt(r.latency.p50Ms),
      e === undefined ? '-' : fmt(e.latency.p50Ms),
      r === undefined ? '-' : fmt(r.latency.p99Ms),
      e === undefined ? '-' : fmt(e.latency.p99Ms),
      ratio(r?.latency.p99Ms, e?.latency.p99Ms),
      r === undefined ? '-' : fmt(Math.max(...r.servers.map((s) => s.rssMaxMiB)), 0),
      e === undefined ? '-' : fmt(Math.max(...e.servers.map((s) => s.rssMaxMiB)), 0),
    ];
  });
  const fo = (s: SystemResult | undefined): string => (s?.failover === undefined ? '-' : fmt(s.failover.medianMs, 0));
  rows.push(['failover (median ms)', fo(raftkv), fo(etcd), ratio(raftkv?.failover?.medianMs, etcd?.failover?.medianMs), '', '', '', '', '', '', '']);
  return formatTable(
    ['workload', 'raftkv ops/s', 'etcd ops/s', 'ratio', 'raftkv p50', 'etcd p50', 'raftkv p99', 'etcd p99', 'p99 ratio', 'raftkv RSS', 'etcd RSS'],
    rows,
  );
}

/** The coordination scenarios side by side: events/s or keep-alives/s, latency, the members' CPU and RSS. */
function coordTable(raftkv: SystemResult | undefined, etcd: SystemResult | undefined): string {
  const names = [...new Set([...(raftkv?.coord ?? []), ...(etcd?.coord ?? [])].map((r) => r.scenario))];
  const cpu = (r: CoordReport | undefined): string => (r === undefined ? '-' : r.servers.map((s) => fmt(s.cpuPercent, 0)).join('/'));
  const rss = (r: CoordReport | undefined): string => (r === undefined ? '-' : fmt(Math.max(...r.servers.map((s) => s.rssMaxMiB)), 0));
  const rows = names.map((n) => {
    const r = raftkv?.coord.find((x) => x.scenario === n);
    const e = etcd?.coord.find((x) => x.scenario === n);
    const size = r?.size ?? e?.size ?? 0;
    return [
      `${n} (${size})`,
      r === undefined ? '-' : fmt(r.opsPerS, 0),
      e === undefined ? '-' : fmt(e.opsPerS, 0),
      r === undefined ? '-' : fmt(r.latency.p50Ms),
      e === undefined ? '-' : fmt(e.latency.p50Ms),
      r === undefined ? '-' : fmt(r.latency.p99Ms),
      e === undefined ? '-' : fmt(e.latency.p99Ms),
      cpu(r),
      cpu(e),
      rss(r),
      rss(e),
    ];
  });
  return formatTable(['scenario (size)', 'raftkv /s', 'etcd /s', 'raftkv p50', 'etcd p50', 'raftkv p99', 'etcd p99', 'raftkv CPU%', 'etcd CPU%', 'raftkv RSS', 'etcd RSS'], rows);
}

async function main(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      workload: { type: 'string', default: 'all' },
      duration: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '1' },
      keys: { type: 'string', default: '10000' },
      'value-size': { type: 'string', default: '256' },
      'failover-reps': { type: 'string', default: '3' },
      only: { type: 'string' },
      'run-dir': { type: 'string' },
      seed: { type: 'string' },
      'no-progress': { type: 'boolean', default: false },
      'raftkv-transport': { type: 'string', default: 'stream' },
      tls: { type: 'boolean', default: false },
      'check-perf': { type: 'string' },
      coord: { type: 'string', default: 'all' },
      watchers: { type: 'string', default: '1000' },
      'watch-rate': { type: 'string', default: '100' },
      'watch-procs': { type: 'string', default: '2' },
      leases: { type: 'string', default: '10000' },
      'lease-ttl': { type: 'string', default: '30' },
      'lease-streams': { type: 'string', default: '8' },
      'base-port': { type: 'string' },
      'raftkv-args': { type: 'string', default: '' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const num = (s: string, name: string): number => {
    const n = Number(s);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a non-negative number, got "${s}"\n${USAGE}`);
    return n;
  };
  if (values.only !== undefined && values.only !== 'raftkv' && values.only !== 'etcd') throw new Error(`--only must be raftkv or etcd\n${USAGE}`);
  const transport = values['raftkv-transport'];
  if (transport !== 'stream' && transport !== 'unary' && transport !== 'etcd') throw new Error(`--raftkv-transport must be stream, unary or etcd\n${USAGE}`);
  const runDir = values['run-dir'] ?? join(REPO_ROOT, 'runs', `vs-etcd-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  mkdirSync(runDir, { recursive: true });
  const seed = values.seed === undefined ? randomSeed() : num(values.seed, 'seed');
  const opts = {
    workloads: values.workload,
    durationS: num(values.duration, 'duration'),
    warmupS: num(values.warmup, 'warmup'),
    keys: num(values.keys, 'keys'),
    valueSize: num(values['value-size'], 'value-size'),
    seed,
    failoverReps: num(values['failover-reps'], 'failover-reps'),
    progress: !values['no-progress'],
    raftkvTransport: transport,
    // Members 1-5: the three started and the learners the recovery measurements may add.
    tlsDir: values.tls ? makeClusterCertificates(join(runDir, 'tls'), [1, 2, 3, 4, 5]).dir : undefined,
    checkPerf: values['check-perf'],
    coord: {
      scenarios: parseCoordScenarios(values.coord),
      watchers: num(values.watchers, 'watchers'),
      watchPutsPerS: Math.max(1, num(values['watch-rate'], 'watch-rate')),
      watchProcs: Math.max(1, num(values['watch-procs'], 'watch-procs')),
      leases: num(values.leases, 'leases'),
      leaseTtlS: Math.max(1, num(values['lease-ttl'], 'lease-ttl')),
      leaseStreams: Math.max(1, num(values['lease-streams'], 'lease-streams')),
    },
  };
  if (opts.checkPerf !== undefined && !['s', 'm', 'l', 'xl'].includes(opts.checkPerf)) throw new Error(`--check-perf must be s, m, l or xl\n${USAGE}`);
  const basePort = values['base-port'] === undefined ? undefined : num(values['base-port'], 'base-port');
  const loadAvgAtStart = loadavg();
  process.stderr.write(`vs-etcd: run dir ${runDir}, seed ${seed}, load average ${loadAvgAtStart.map((x) => x.toFixed(1)).join(' ')} on ${cpus().length} CPUs\n`);

  const tlsOpt = opts.tlsDir !== undefined ? { tlsDir: opts.tlsDir } : {};
  let etcd: SystemResult | undefined;
  let raftkv: SystemResult | undefined;
  if (values.only !== 'raftkv') {
    etcd = await runSystem(new EtcdCluster({ runDir, size: 3, clientBasePort: basePort ?? 23790, peerBasePort: (basePort ?? 23790) + 10, ...tlsOpt }), opts);
  }
  if (values.only !== 'etcd') {
    raftkv = await runSystem(new RaftKvCluster({ runDir, size: 3, clientBasePort: basePort === undefined ? 24790 : basePort + 100, peerBasePort: basePort === undefined ? 24800 : basePort + 110, transport, extraFlags: values['raftkv-args'].split(' ').filter((x) => x !== ''), ...tlsOpt }), opts);
  }
  const all = [...(raftkv?.reports ?? []), ...(etcd?.reports ?? [])];
  const out = {
    runDir,
    seed,
    // A load average above the CPU count means other work shared the machine: the figures are noisy.
    machine: { cpus: cpus().length, node: process.version, loadAvgAtStart, loadAvgAtEnd: loadavg() },
    options: opts,
    systems: [raftkv, etcd].filter((s) => s !== undefined),
  };
  writeFileSync(join(runDir, 'vs-etcd.json'), `${JSON.stringify(out, null, 2)}\n`);
  process.stdout.write(`\n${workloadTable(all)}\n\n${comparisonTable(raftkv, etcd)}\n`);
  if ((raftkv?.coord.length ?? 0) + (etcd?.coord.length ?? 0) > 0) {
    process.stdout.write(`\n${coordTable(raftkv, etcd)}\n`);
    for (const s of [raftkv, etcd]) for (const c of s?.coord ?? []) process.stdout.write(`${s?.name ?? ''} ${c.scenario}: setup ${fmt(c.setupS, 1)} s, ${Object.entries(c.detail).map(([k, v]) => `${k} ${fmt(v, Number.isInteger(v) ? 0 : 1)}`).join(', ')}\n`);
  }
  for (const s of [raftkv, etcd]) {
    if (s?.failover !== undefined) {
      process.stdout.write(`${s.name} failover samples (ms): ${s.failover.samples.map((x) => fmt(x.failoverMs, 0)).join(', ')}\n`);
    }
    if (s !== undefined) process.stdout.write(`${s.name} idle RSS per member (MiB): ${s.idleRssMiB.map((x) => fmt(x, 0)).join(', ')}\n`);
    if (s?.checkPerf !== undefined) process.stdout.write(`${s.name} etcdctl check perf --load=${s.checkPerf.load}: ${s.checkPerf.verdict}\n${s.checkPerf.lines.map((l) => `  ${l}`).join('\n')}\n`);
  }
  const noisy = Math.max(loadAvgAtStart[0] ?? 0, loadavg()[0] ?? 0) > cpus().length;
  if (noisy) process.stdout.write(`NOISY: load average ${loadAvgAtStart.map((x) => x.toFixed(1)).join(' ')} at start, ${loadavg().map((x) => x.toFixed(1)).join(' ')} at end, on ${cpus().length} CPUs\n`);
  const problems = [raftkv, etcd].flatMap((s) => (s?.coord ?? []).flatMap((c) => c.problems.map((p) => `${s?.name ?? ''} ${c.scenario}: ${p}`)));
  for (const p of problems) process.stdout.write(`FAILED: ${p}\n`);
  process.stdout.write(`(seed ${seed}; ratio = raftkv / etcd; latencies in ms; RSS = largest member, MiB; details in ${join(runDir, 'vs-etcd.json')})\n`);
  return problems.length > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench:vs-etcd: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
