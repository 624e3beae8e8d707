// Plain-text tables and the JSON shape of a benchmark result.
import type { LatencySummaryMs } from './histogram.js';
import type { ProcessUsage } from './proc-stats.js';
import type { TargetName } from './target.js';

export interface WorkloadReport {
  readonly target: TargetName;
  readonly workload: string;
  readonly description: string;
  readonly concurrency: number;
  readonly keys: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly seed: number;
  readonly ops: number;
  readonly errors: Readonly<Record<string, number>>;
  readonly casConflicts: number;
  readonly elapsedS: number;
  readonly throughputOpsPerS: number;
  readonly latency: LatencySummaryMs;
  readonly servers: readonly ProcessUsage[]; // each member's CPU and RSS over the measured run
  readonly benchCpuPercent: number; // the load generator's own CPU (a saturated client caps the figures)
  readonly startedAt: string; // ISO time
}

export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

export function fmt(n: number, digits = 2): string {
  if (Number.isNaN(n)) return '-';
  return n.toFixed(digits);
}

export function errorsText(errors: Readonly<Record<string, number>>): string {
  const parts = Object.entries(errors).map(([code, n]) => `${code}:${n}`);
  return parts.length === 0 ? '0' : parts.join(',');
}

export function workloadTable(reports: readonly WorkloadReport[]): string {
  const rows = reports.map((r) => [
    `${r.target}/${r.workload}`,
    String(r.concurrency),
    String(r.ops),
    fmt(r.throughputOpsPerS, 0),
    fmt(r.latency.p50Ms),
    fmt(r.latency.p90Ms),
    fmt(r.latency.p99Ms),
    fmt(r.latency.p999Ms),
    fmt(r.latency.maxMs),
    errorsText(r.errors) + (r.casConflicts > 0 ? ` (cas conflicts ${r.casConflicts})` : ''),
    r.servers.map((s) => fmt(s.cpuPercent, 0)).join('/'),
    r.servers.map((s) => fmt(s.rssMaxMiB, 0)).join('/'),
    fmt(r.benchCpuPercent, 0),
  ]);
  return formatTable(
    ['workload', 'conc', 'ops', 'ops/s', 'p50 ms', 'p90 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'errors', 'server CPU%', 'server RSS MiB', 'bench CPU%'],
    rows,
  );
}
