// `npm run bench -- [flags]`: the load generator. Runs workloads against a running raftkv or etcd cluster and
// prints throughput, latency percentiles, errors and each server's CPU and RSS, as a table or as JSON.
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { workloadTable } from './report.js';
import { randomSeed } from './rng.js';
import { createTarget, discoverServerPids, parseWorkloads, runBench } from './run-bench.js';
import { WORKLOADS } from './workloads.js';
import { DIAL_FLAG_OPTIONS, dialTlsFromFlags } from '../src/cli/dial-flags.js';

const USAGE = `usage: npm run bench -- --target raftkv|etcd --endpoints H:P,H:P,... [flags]
  --workload NAME[,NAME]|all   ${WORKLOADS.map((w) => w.name).join(', ')} (default all)
  --keys N                     key space, keys picked uniformly (default 10000)
  --key-size B                 (default 8)      --value-size B   (default 256)
  --duration S | --ops N       measured time per workload (default 10 s) or operations
  --warmup S                   unmeasured warm-up per workload in duration mode (default 1)
  --concurrency N              requests in flight, overrides each workload's own
  --conns N                    etcd: HTTP/2 connections per member (default 1)
  --raftkv-transport stream|unary  raftkv client: KV calls on one stream per member (default) or unary calls
  --timeout-ms MS              per request (default 5000)
  --cacert F --cert F --key F  TLS (etcd's client flags; also --insecure-skip-tls-verify, tests only)
  --pids P,P,...               server pids to measure (default: found from the endpoints' ports)
  --seed N                     key sequence seed (default random, printed)
  --no-preload                 do not put the key space before read workloads
  --no-progress                no progress bar on stderr
  --json                       print the results as JSON instead of a table
Endpoints also from RAFTKV_ENDPOINTS (raftkv) or ETCD_ENDPOINTS (etcd).`;

function intFlag(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a non-negative number, got "${value}"`);
  return n;
}

export async function main(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      target: { type: 'string' },
      endpoints: { type: 'string' },
      workload: { type: 'string', default: 'all' },
      keys: { type: 'string' },
      'key-size': { type: 'string' },
      'value-size': { type: 'string' },
      duration: { type: 'string' },
      ops: { type: 'string' },
      warmup: { type: 'string' },
      concurrency: { type: 'string' },
      conns: { type: 'string' },
      'raftkv-transport': { type: 'string', default: 'stream' },
      'timeout-ms': { type: 'string' },
      pids: { type: 'string' },
      seed: { type: 'string' },
      'no-preload': { type: 'boolean', default: false },
      'no-progress': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
      ...DIAL_FLAG_OPTIONS,
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const target = values.target;
  if (target !== 'raftkv' && target !== 'etcd') throw new Error(`--target must be raftkv or etcd\n${USAGE}`);
  const endpointsText = values.endpoints ?? (target === 'raftkv' ? process.env.RAFTKV_ENDPOINTS : process.env.ETCD_ENDPOINTS);
  if (endpointsText === undefined || endpointsText === '') throw new Error(`--endpoints is required\n${USAGE}`);
  const endpoints = endpointsText.split(',').map((s) => s.trim().replace(/^https?:\/\//, ''));
  if (values.duration !== undefined && values.ops !== undefined) throw new Error('give --duration or --ops, not both');
  const ops = values.ops === undefined ? undefined : intFlag(values.ops, 'ops', 0);
  const durationS = ops === undefined ? intFlag(values.duration, 'duration', 10) : undefined;
  const seed = intFlag(values.seed, 'seed', randomSeed());
  const keys = intFlag(values.keys, 'keys', 10_000);
  if (keys < 1) throw new Error('--keys must be >= 1');

  const servers =
    values.pids === undefined
      ? discoverServerPids(endpoints)
      : values.pids.split(',').map((p, i) => ({ label: endpoints[i] ?? `pid ${p}`, pid: intFlag(p, 'pids', 0) }));
  process.stderr.write(`bench: target ${target} at ${endpoints.join(',')}, seed ${seed}, servers ${servers.map((s) => s.pid).join(',') || 'none'}\n`);

  const transport = values['raftkv-transport'];
  if (transport !== 'stream' && transport !== 'unary') throw new Error(`--raftkv-transport must be stream or unary, got "${transport}"`);
  const https = endpointsText.split(',').some((s) => s.trim().startsWith('https://'));
  const tls = dialTlsFromFlags(values, process.env) ?? (https ? {} : undefined);
  const t = await createTarget(target, endpoints, intFlag(values.conns, 'conns', 1), transport, tls);
  try {
    const reports = await runBench(t, {
      workloads: parseWorkloads(values.workload),
      keys,
      keySize: intFlag(values['key-size'], 'key-size', 8),
      valueSize: intFlag(values['value-size'], 'value-size', 256),
      durationS,
      ops,
      warmupS: intFlag(values.warmup, 'warmup', 1),
      concurrency: values.concurrency === undefined ? undefined : intFlag(values.concurrency, 'concurrency', 1),
      seed,
      timeoutMs: intFlag(values['timeout-ms'], 'timeout-ms', 5000),
      preload: !values['no-preload'],
      progress: !values['no-progress'],
      servers,
    });
    const load = loadavg().map((x) => x.toFixed(1)).join(' ');
    if (values.json) process.stdout.write(`${JSON.stringify({ seed, loadAvg: loadavg(), cpus: cpus().length, reports }, null, 2)}\n`);
    else process.stdout.write(`${workloadTable(reports)}\n(seed ${seed}; latencies of successful requests; server CPU% of one core per member; load average ${load} on ${cpus().length} CPUs)\n`);
  } finally {
    t.close();
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
