// Runs a list of workloads against one target and measures the servers while it does: the engine behind
// `npm run bench` and `npm run bench:vs-etcd`.
import type { DialTlsConfig } from '../src/client/index.js';
import { EtcdTarget } from './etcd-target.js';
import { RaftKvTarget } from './raftkv-target.js';
import { findListeningPid, ProcSampler } from './proc-stats.js';
import { ProgressBar } from './progress.js';
import type { WorkloadReport } from './report.js';
import type { BenchTarget, TargetName } from './target.js';
import { findWorkload, needsPreload, preloadKeys, runWorkload, WORKLOADS, type WorkloadSpec } from './workloads.js';

export interface BenchOptions {
  readonly workloads: readonly WorkloadSpec[];
  readonly keys: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly durationS: number | undefined;
  readonly ops: number | undefined;
  readonly warmupS: number;
  readonly concurrency: number | undefined; // overrides every workload's own
  readonly seed: number;
  readonly timeoutMs: number;
  readonly preload: boolean;
  readonly progress: boolean;
  /** The server processes to measure: label (endpoint) and pid. */
  readonly servers: readonly { readonly label: string; readonly pid: number }[];
}

/** raftkv: 'stream' (the client's default: KV calls multiplexed on one stream per member) or 'unary' (one gRPC call each, as etcd's API). */
/** raftkv's client over its multiplexed stream or unary calls, or the etcd target's code over etcd's API. */
export type RaftKvTransport = 'stream' | 'unary' | 'etcd';

/** `tls`: etcd's client flags (--cacert, --cert, --key), for a target with TLS on its client ports. */
export async function createTarget(name: TargetName, endpoints: readonly string[], connsPerEndpoint: number, raftkvTransport: RaftKvTransport = 'stream', tls?: DialTlsConfig): Promise<BenchTarget> {
  switch (name) {
    case 'etcd': {
      const t = new EtcdTarget({ endpoints, connsPerEndpoint, tls });
      await t.discoverLeader();
      return t;
    }
    case 'raftkv': {
      if (raftkvTransport === 'etcd') {
        // The same client code and unary calls as against etcd: the two servers' etcd API paths on equal terms.
        const t = new EtcdTarget({ endpoints, connsPerEndpoint, name: 'raftkv', tls });
        await t.discoverLeader();
        return t;
      }
      return RaftKvTarget.create(endpoints, raftkvTransport, tls);
    }
    default: {
      const never: never = name;
      throw new Error(`unknown target ${String(never)}`);
    }
  }
}

/** Pids of the processes listening on each endpoint's port (those we cannot find are left out, with a warning). */
export function discoverServerPids(endpoints: readonly string[]): { label: string; pid: number }[] {
  const out: { label: string; pid: number }[] = [];
  for (const ep of endpoints) {
    const port = Number(ep.slice(ep.lastIndexOf(':') + 1));
    const pid = Number.isInteger(port) ? findListeningPid(port) : undefined;
    if (pid === undefined) process.stderr.write(`bench: no process found listening on ${ep}: its CPU and RSS are not measured\n`);
    else out.push({ label: ep, pid });
  }
  return out;
}

export async function runBench(target: BenchTarget, opts: BenchOptions): Promise<WorkloadReport[]> {
  const reports: WorkloadReport[] = [];
  let preloaded = !opts.preload;
  for (const w of opts.workloads) {
    if (needsPreload(w.kind) && !preloaded) {
      const bar = new ProgressBar(`${target.name} preload ${opts.keys} keys`, opts.progress);
      const t0 = performance.now();
      await preloadKeys(
        target,
        { keys: opts.keys, keySize: opts.keySize, valueSize: opts.valueSize, concurrency: 64, timeoutMs: opts.timeoutMs, seed: opts.seed },
        (done) => bar.update(done / opts.keys, `${done} keys`),
      );
      bar.done(`${opts.keys} keys in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      preloaded = true;
    }
    const concurrency = opts.concurrency ?? w.concurrency;
    const bar = new ProgressBar(`${target.name} ${w.name} (${concurrency} in flight)`, opts.progress);
    const sampler = new ProcSampler(opts.servers);
    const startedAt = new Date().toISOString();
    const cpu0 = process.cpuUsage();
    const wall0 = performance.now();
    sampler.start();
    const result = await runWorkload(target, w.kind, {
      keys: opts.keys,
      keySize: opts.keySize,
      valueSize: opts.valueSize,
      durationS: opts.durationS,
      ops: opts.ops,
      warmupS: opts.warmupS,
      concurrency,
      seed: opts.seed,
      timeoutMs: opts.timeoutMs,
      onProgress: (p) => bar.update(p.fraction, `${p.measuredOps} ops, ${p.errors} errors`),
    });
    const servers = sampler.stop();
    const cpu = process.cpuUsage(cpu0);
    const benchCpuPercent = ((cpu.user + cpu.system) / 1000 / (performance.now() - wall0)) * 100;
    bar.done(`${result.throughputOpsPerS.toFixed(0)} ops/s, p99 ${result.latency.p99Ms.toFixed(2)} ms`);
    reports.push({
      target: target.name,
      workload: w.name,
      description: w.description,
      concurrency,
      keys: opts.keys,
      keySize: opts.keySize,
      valueSize: opts.valueSize,
      seed: opts.seed,
      ops: result.ops,
      errors: result.errors,
      casConflicts: result.casConflicts,
      elapsedS: result.elapsedS,
      throughputOpsPerS: result.throughputOpsPerS,
      latency: result.latency,
      servers,
      benchCpuPercent,
      startedAt,
    });
  }
  return reports;
}

export function parseWorkloads(spec: string): WorkloadSpec[] {
  if (spec === 'all') return [...WORKLOADS];
  if (spec === 'none') return [];
  return spec.split(',').map((s) => findWorkload(s.trim()));
}
