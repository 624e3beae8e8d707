// A chaos run's report: the numbers (report.json), a page for people (report.md), and a timeline picture
// (timeline.html: one self-contained SVG, latency of every op over time with the fault windows shaded).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NodeId } from '../../src/raft/types.js';
import { writeHistoryFile, writtenValue, type HistoryOp, type OpKind } from './history.js';
import type { FinalStateResult, LinearizabilityResult, Verdict } from './linearizability.js';
import type { FaultRecord, NemesisKind } from './nemesis.js';

export interface LeaderObservation {
  readonly ns: number; // when the harness saw it (history clock)
  readonly leader: NodeId; // 0 = no leader
  readonly term: number;
}

export interface RunInput {
  readonly runDir: string;
  readonly seed: number;
  readonly nodes: number;
  readonly timeSeconds: number;
  readonly nemeses: readonly NemesisKind[];
  readonly clients: number;
  readonly keys: readonly string[];
  readonly startedAt: string; // ISO time
  readonly durationNs: number; // the whole recorded run
  readonly history: readonly HistoryOp[];
  readonly faults: readonly FaultRecord[];
  readonly leaders: readonly LeaderObservation[]; // each observed change
  readonly finalValues: ReadonlyMap<string, string | null> | undefined; // undefined: the final read failed
  readonly linearizability: LinearizabilityResult;
  readonly finalState: FinalStateResult;
  readonly notes: readonly string[];
  /** Failures seen outside the history (e.g. a member process that crashed): each fails the run. */
  readonly problems?: readonly string[];
}

interface Counts {
  total: number;
  ok: number;
  failed: number;
  indeterminate: number;
}

export interface FaultReport {
  readonly kind: NemesisKind;
  readonly detail: string;
  readonly targets: readonly NodeId[];
  readonly startMs: number; // from the run's start
  readonly healMs: number | null;
  /** Fault -> the first acknowledged write called after the fault started (null: none). */
  readonly rtoMs: number | null;
  /** Heal -> the first acknowledged write called after the heal. */
  readonly rtoAfterHealMs: number | null;
  readonly error: string | null;
  readonly outcome: string | null; // what came of it (damage: recovered / refused: <line> / ...)
  readonly failure: string | null; // the system broke its contract here (fails the run)
}

/** The damage nemesis's faults by outcome. */
export interface DamageSummary {
  readonly faults: number;
  readonly recovered: number; // started and served
  readonly refused: number; // refused with the remedy, then replaced
  readonly failed: number; // anything else (each one also a reason of the verdict)
  readonly skipped: number; // no leader, or no running member to damage
}

export function damageSummary(faults: readonly FaultReport[]): DamageSummary {
  const d = faults.filter((f) => f.kind === 'damage');
  return {
    faults: d.length,
    recovered: d.filter((f) => f.failure === null && (f.outcome ?? '').startsWith('recovered')).length,
    refused: d.filter((f) => f.failure === null && (f.outcome ?? '').startsWith('refused:')).length,
    failed: d.filter((f) => f.failure !== null).length,
    skipped: d.filter((f) => f.targets.length === 0).length,
  };
}

export interface ChaosReport {
  readonly runDir: string;
  readonly startedAt: string;
  readonly seed: number;
  readonly nodes: number;
  readonly timeSeconds: number;
  readonly nemeses: readonly NemesisKind[];
  readonly clients: number;
  readonly keys: readonly string[];
  readonly durationMs: number;
  readonly ops: Counts & { readonly byOp: Record<OpKind, Counts>; readonly throughputPerS: number };
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly max: number }; // acknowledged ops
  readonly faults: readonly FaultReport[];
  readonly damage: DamageSummary;
  /** Over the faults that recovered: median and max RTO from the fault; faults never followed by a write. */
  readonly rtoSummaryMs: { readonly median: number | null; readonly max: number | null; readonly unrecovered: number };
  readonly leaderChanges: number;
  readonly leaders: readonly { readonly atMs: number; readonly leader: NodeId; readonly term: number }[];
  readonly rpo: {
    readonly acknowledgedWrites: number;
    readonly lostWrites: number; // must be 0
    readonly lost: readonly { readonly key: string; readonly value: string | null; readonly reason: string }[];
  };
  readonly finalValues: Record<string, string | null> | null;
  readonly linearizability: {
    readonly verdict: Verdict;
    readonly steps: number;
    readonly keys: readonly { readonly key: string; readonly verdict: Verdict; readonly ops: number; readonly steps: number }[];
    readonly explanation: string | null;
  };
  readonly verdict: 'pass' | 'fail' | 'unknown';
  readonly reasons: readonly string[]; // why it failed or is unknown
  readonly notes: readonly string[];
}

function counts(ops: readonly HistoryOp[]): Counts {
  const c: Counts = { total: 0, ok: 0, failed: 0, indeterminate: 0 };
  for (const h of ops) {
    c.total++;
    if (h.return === null) c.indeterminate++;
    else if (h.ok) c.ok++;
    else c.failed++;
  }
  return c;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? 0;
}

const round = (x: number): number => Math.round(x * 1000) / 1000;
const ms = (ns: number): number => round(ns / 1e6);

/** Acknowledged writes (a cas counts whether or not it swapped: the cluster answered). */
function isAckedWrite(h: HistoryOp): boolean {
  return h.ok && h.return !== null && writtenValue(h) !== undefined;
}

/** The first acknowledged write called at or after `fromNs`: how long after `fromNs` it returned. */
export function recoveryMs(history: readonly HistoryOp[], fromNs: number): number | null {
  let best: number | null = null;
  for (const h of history) {
    if (!isAckedWrite(h) || h.call < fromNs || h.return === null) continue;
    if (best === null || h.return < best) best = h.return;
  }
  return best === null ? null : ms(best - fromNs);
}

/** Leader changes: observations whose (leader, term) differs from the previous known leader, ignoring gaps (leader 0). */
export function countLeaderChanges(leaders: readonly LeaderObservation[]): number {
  let changes = 0;
  let last: LeaderObservation | undefined;
  for (const o of leaders) {
    if (o.leader === 0) continue;
    if (last !== undefined && (last.leader !== o.leader || last.term !== o.term)) changes++;
    last = o;
  }
  return changes;
}

function rtoSummary(faults: readonly FaultReport[]): ChaosReport['rtoSummaryMs'] {
  const rtos = faults.map((f) => f.rtoMs).filter((x): x is number => x !== null).sort((a, b) => a - b);
  return {
    median: rtos.length === 0 ? null : (rtos[Math.floor((rtos.length - 1) / 2)] ?? null),
    max: rtos.length === 0 ? null : (rtos[rtos.length - 1] ?? null),
    unrecovered: faults.length - rtos.length,
  };
}

export function buildReport(input: RunInput): ChaosReport {
  const h = input.history;
  const byOp = {
    put: counts(h.filter((o) => o.op === 'put')),
    get: counts(h.filter((o) => o.op === 'get')),
    delete: counts(h.filter((o) => o.op === 'delete')),
    cas: counts(h.filter((o) => o.op === 'cas')),
  };
  const latencies = h
    .filter((o) => o.ok && o.return !== null)
    .map((o) => ((o.return ?? o.call) - o.call) / 1e6)
    .sort((a, b) => a - b);
  const faults: FaultReport[] = input.faults.map((f) => ({
    kind: f.kind,
    detail: f.detail,
    targets: f.targets,
    startMs: ms(f.startNs),
    healMs: f.healNs === null ? null : ms(f.healNs),
    rtoMs: recoveryMs(h, f.startNs),
    rtoAfterHealMs: f.healNs === null ? null : recoveryMs(h, f.healNs),
    error: f.error ?? null,
    outcome: f.outcome ?? null,
    failure: f.failure ?? null,
  }));
  const lin = input.linearizability;
  const reasons: string[] = [];
  if (lin.verdict === 'violation') reasons.push(`not linearizable: ${lin.firstViolation?.text.split('\n')[0] ?? ''}`);
  for (const p of input.problems ?? []) reasons.push(p);
  if (input.finalState.lost.length > 0) reasons.push(`${input.finalState.lost.length} acknowledged write(s) lost (RPO > 0)`);
  const unknown: string[] = [];
  if (lin.verdict === 'unknown') unknown.push('the linearizability search ran out of its step budget');
  if (input.finalValues === undefined) {
    // Every fault was healed and every member restarted: a cluster that still cannot serve a read is stuck.
    reasons.push('liveness: the cluster did not recover after every fault was healed (final reads failed; RPO not checked)');
  }
  const ackedOk = byOp.put.ok + byOp.cas.ok + byOp.delete.ok;
  if (ackedOk === 0) unknown.push('no write was acknowledged during the run');
  const verdict = reasons.length > 0 ? 'fail' : unknown.length > 0 ? 'unknown' : 'pass';
  const durationMs = ms(input.durationNs);
  return {
    runDir: input.runDir,
    startedAt: input.startedAt,
    seed: input.seed,
    nodes: input.nodes,
    timeSeconds: input.timeSeconds,
    nemeses: input.nemeses,
    clients: input.clients,
    keys: input.keys,
    durationMs,
    ops: { ...counts(h), byOp, throughputPerS: durationMs > 0 ? round((counts(h).ok * 1000) / durationMs) : 0 },
    latencyMs: { p50: round(percentile(latencies, 50)), p99: round(percentile(latencies, 99)), max: round(latencies[latencies.length - 1] ?? 0) },
    faults,
    damage: damageSummary(faults),
    rtoSummaryMs: rtoSummary(faults),
    leaderChanges: countLeaderChanges(input.leaders),
    leaders: input.leaders.map((o) => ({ atMs: ms(o.ns), leader: o.leader, term: o.term })),
    rpo: {
      acknowledgedWrites: input.finalState.acknowledgedWrites,
      lostWrites: input.finalState.lost.length,
      lost: input.finalState.lost.map((l) => ({ key: l.key, value: writtenValue(l.write)?.value ?? null, reason: l.reason })),
    },
    finalValues: input.finalValues === undefined ? null : Object.fromEntries([...input.finalValues].sort(([a], [b]) => a.localeCompare(b))),
    linearizability: {
      verdict: lin.verdict,
      steps: lin.steps,
      keys: lin.keys.map((k) => ({ key: k.key, verdict: k.verdict, ops: k.opCount, steps: k.steps })),
      explanation: lin.firstViolation?.text ?? null,
    },
    verdict,
    reasons: [...reasons, ...unknown],
    notes: input.notes,
  };
}

const fmt = (x: number | null): string => (x === null ? '—' : x.toFixed(0));
/** Text safe inside a markdown table cell. */
const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

export function renderMarkdown(r: ChaosReport): string {
  const lines: string[] = [];
  lines.push(`# Chaos run: ${r.verdict.toUpperCase()}`);
  lines.push('');
  lines.push(`- seed ${r.seed}, ${r.nodes} nodes, ${r.clients} clients, keys ${r.keys.join(', ')}, nemesis ${r.nemeses.join(',')}`);
  lines.push(`- started ${r.startedAt}, ran ${(r.durationMs / 1000).toFixed(1)} s; replay: \`npm run chaos -- --nodes ${r.nodes} --time ${r.timeSeconds} --seed ${r.seed} --nemesis ${r.nemeses.join(',')}\``);
  lines.push(`- run folder: \`${r.runDir}\` (history.jsonl, report.json, timeline.html, node logs in n*/raftkv.log)`);
  if (r.reasons.length > 0) {
    lines.push('');
    lines.push('## Why');
    for (const reason of r.reasons) lines.push(`- ${reason}`);
  }
  lines.push('');
  lines.push('## Operations');
  lines.push('');
  lines.push('| op | total | ok | failed | indeterminate |');
  lines.push('|---|---:|---:|---:|---:|');
  for (const k of ['put', 'get', 'cas', 'delete'] as const) {
    const c = r.ops.byOp[k];
    lines.push(`| ${k} | ${c.total} | ${c.ok} | ${c.failed} | ${c.indeterminate} |`);
  }
  lines.push(`| **all** | ${r.ops.total} | ${r.ops.ok} | ${r.ops.failed} | ${r.ops.indeterminate} |`);
  lines.push('');
  lines.push(`Acknowledged ops per second: ${r.ops.throughputPerS}. Latency of acknowledged ops: p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, max ${r.latencyMs.max} ms.`);
  lines.push('');
  lines.push('## Faults');
  lines.push('');
  lines.push('| # | at (s) | healed (s) | fault | outcome | RTO from fault (ms) | RTO from heal (ms) | error |');
  lines.push('|---:|---:|---:|---|---|---:|---:|---|');
  r.faults.forEach((f, i) => {
    const outcome = `${f.failure !== null ? '**FAILURE**: ' + f.failure + '; ' : ''}${f.outcome ?? ''}`;
    lines.push(
      `| ${i + 1} | ${(f.startMs / 1000).toFixed(2)} | ${f.healMs === null ? '—' : (f.healMs / 1000).toFixed(2)} | ${cell(f.detail)} | ${cell(outcome)} | ${fmt(f.rtoMs)} | ${fmt(f.rtoAfterHealMs)} | ${cell(f.error ?? '')} |`,
    );
  });
  if (r.damage.faults > 0) {
    lines.push('');
    lines.push(`Damage: ${r.damage.faults} fault(s): ${r.damage.refused} refused (then replaced), ${r.damage.recovered} recovered, ${r.damage.failed} failed, ${r.damage.skipped} skipped.`);
  }
  lines.push('');
  lines.push('RTO = time from the fault (or its heal) to the return of the first acknowledged write called after it.');
  lines.push(`RTO from fault: median ${fmt(r.rtoSummaryMs.median)} ms, max ${fmt(r.rtoSummaryMs.max)} ms; faults never followed by an acknowledged write: ${r.rtoSummaryMs.unrecovered}.`);
  lines.push('');
  lines.push(`## Leaders: ${r.leaderChanges} change(s)`);
  lines.push('');
  lines.push(r.leaders.map((l) => `${(l.atMs / 1000).toFixed(2)}s: ${l.leader === 0 ? 'none' : `${l.leader} (term ${l.term})`}`).join(' → ') || '(none observed)');
  lines.push('');
  lines.push('## Durability (RPO)');
  lines.push('');
  lines.push(`${r.rpo.acknowledgedWrites} acknowledged writes, **${r.rpo.lostWrites} lost**.`);
  for (const l of r.rpo.lost.slice(0, 20)) lines.push(`- key ${l.key}: ${JSON.stringify(l.value)} — ${l.reason}`);
  lines.push('');
  lines.push(`Final values: ${r.finalValues === null ? 'not read' : '`' + JSON.stringify(r.finalValues) + '`'}`);
  lines.push('');
  lines.push(`## Linearizability: ${r.linearizability.verdict}`);
  lines.push('');
  lines.push('| key | ops | verdict | search steps |');
  lines.push('|---|---:|---|---:|');
  for (const k of r.linearizability.keys) lines.push(`| ${k.key} | ${k.ops} | ${k.verdict} | ${k.steps} |`);
  if (r.linearizability.explanation !== null) {
    lines.push('');
    lines.push('```');
    lines.push(r.linearizability.explanation);
    lines.push('```');
  }
  if (r.notes.length > 0) {
    lines.push('');
    lines.push('## Notes');
    for (const n of r.notes) lines.push(`- ${n}`);
  }
  lines.push('');
  return lines.join('\n');
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const OP_COLORS: Record<OpKind, string> = { put: '#1f77b4', get: '#2ca02c', cas: '#9467bd', delete: '#7f7f7f' };
const FAULT_COLORS: Record<NemesisKind, string> = {
  kill: '#d62728',
  pause: '#ff7f0e',
  partition: '#8c564b',
  member: '#e377c2',
  transfer: '#17becf',
  damage: '#bcbd22',
};

/** The timeline page: latency (log scale) of every op at its call time, faults shaded, leader changes marked. */
export function renderTimeline(r: ChaosReport, history: readonly HistoryOp[]): string {
  const W = 1200;
  const H = 520;
  const left = 70;
  const right = 20;
  const top = 60;
  const bottom = 60;
  const plotW = W - left - right;
  const plotH = H - top - bottom;
  const endMs = Math.max(r.durationMs, 1);
  const x = (tMs: number): number => left + (Math.min(Math.max(tMs, 0), endMs) / endMs) * plotW;
  const okLat = history.filter((h) => h.return !== null).map((h) => ((h.return ?? h.call) - h.call) / 1e6);
  const maxLat = Math.max(10, ...okLat);
  const lo = Math.log10(0.1);
  const hi = Math.log10(maxLat * 1.5);
  const indetBand = top - 25; // indeterminate ops: a row above the plot
  const y = (latMs: number): number => top + plotH - ((Math.log10(Math.max(latMs, 0.1)) - lo) / (hi - lo)) * plotH;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`);
  parts.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="white"/>`);
  // Fault windows.
  r.faults.forEach((f, i) => {
    const x0 = x(f.startMs);
    const x1 = x(f.healMs ?? endMs);
    const color = FAULT_COLORS[f.kind];
    parts.push(
      `<rect x="${x0.toFixed(1)}" y="${top}" width="${Math.max(2, x1 - x0).toFixed(1)}" height="${plotH}" fill="${color}" fill-opacity="0.15" stroke="${color}" stroke-opacity="0.5"><title>${esc(`#${i + 1} ${f.detail}${f.outcome !== null ? `\n-> ${f.outcome}` : ''}${f.failure !== null ? `\nFAILURE: ${f.failure}` : ''}\nfrom ${(f.startMs / 1000).toFixed(2)}s to ${f.healMs === null ? 'end' : (f.healMs / 1000).toFixed(2) + 's'}\nRTO ${fmt(f.rtoMs)} ms`)}</title></rect>`,
    );
    parts.push(`<text x="${(x0 + 2).toFixed(1)}" y="${top + 12 + (i % 3) * 12}" fill="${color}">${esc(`#${i + 1} ${f.kind}`)}</text>`);
  });
  // Axes and grid.
  parts.push(`<line x1="${left}" y1="${top + plotH}" x2="${left + plotW}" y2="${top + plotH}" stroke="#333"/>`);
  parts.push(`<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotH}" stroke="#333"/>`);
  for (let e = Math.ceil(lo); e <= Math.floor(hi); e++) {
    const v = 10 ** e;
    const yy = y(v);
    parts.push(`<line x1="${left}" y1="${yy.toFixed(1)}" x2="${left + plotW}" y2="${yy.toFixed(1)}" stroke="#ddd"/>`);
    parts.push(`<text x="${left - 6}" y="${(yy + 4).toFixed(1)}" text-anchor="end">${v >= 1000 ? `${v / 1000}s` : `${v}ms`}</text>`);
  }
  const stepS = Math.max(1, Math.ceil(endMs / 1000 / 15));
  for (let s = 0; s * 1000 <= endMs; s += stepS) {
    const xx = x(s * 1000);
    parts.push(`<line x1="${xx.toFixed(1)}" y1="${top + plotH}" x2="${xx.toFixed(1)}" y2="${top + plotH + 5}" stroke="#333"/>`);
    parts.push(`<text x="${xx.toFixed(1)}" y="${top + plotH + 18}" text-anchor="middle">${s}s</text>`);
  }
  parts.push(`<text x="${left + plotW / 2}" y="${H - 22}" text-anchor="middle">time since start (call time of each op)</text>`);
  parts.push(`<text x="16" y="${top + plotH / 2}" transform="rotate(-90 16 ${top + plotH / 2})" text-anchor="middle">latency (log scale)</text>`);
  parts.push(`<text x="${left - 6}" y="${indetBand + 4}" text-anchor="end" fill="#d62728">indet.</text>`);
  // Leader changes.
  let prev: string | undefined;
  let shown = 0;
  for (const l of r.leaders) {
    const label = l.leader === 0 ? 'no leader' : `L${l.leader} t${l.term}`;
    if (label === prev) continue;
    prev = label;
    const xx = x(l.atMs);
    const ly = top + plotH - 4 - (shown++ % 3) * 11; // staggered so close changes stay readable
    parts.push(`<line x1="${xx.toFixed(1)}" y1="${top}" x2="${xx.toFixed(1)}" y2="${top + plotH}" stroke="#000" stroke-dasharray="3,3" stroke-opacity="0.35"/>`);
    parts.push(`<text x="${(xx + 2).toFixed(1)}" y="${ly}" fill="#555" font-size="10">${esc(label)}</text>`);
  }
  // Ops.
  for (const h of history) {
    const t = h.call / 1e6;
    const tip = esc(`client ${h.client} ${h.op} ${h.key}${h.value !== null ? ' ' + h.value : ''}${h.result !== null ? ' -> ' + h.result : ''} at ${(t / 1000).toFixed(3)}s`);
    if (h.return === null) {
      const xx = x(t);
      parts.push(`<path d="M${(xx - 3).toFixed(1)},${indetBand - 3} l6,6 m0,-6 l-6,6" stroke="#d62728"><title>${tip} (indeterminate)</title></path>`);
      continue;
    }
    const lat = (h.return - h.call) / 1e6;
    const color = h.ok ? OP_COLORS[h.op] : '#ff7f0e';
    const shape = h.ok
      ? `<circle cx="${x(t).toFixed(1)}" cy="${y(lat).toFixed(1)}" r="2" fill="${color}" fill-opacity="0.7">`
      : `<rect x="${(x(t) - 2).toFixed(1)}" y="${(y(lat) - 2).toFixed(1)}" width="4" height="4" fill="${color}">`;
    parts.push(`${shape}<title>${tip} ${h.ok ? '' : '(failed) '}${lat.toFixed(2)} ms</title>${h.ok ? '</circle>' : '</rect>'}`);
  }
  // Legend.
  let lx = left;
  for (const [k, c] of Object.entries(OP_COLORS)) {
    parts.push(`<circle cx="${lx + 5}" cy="14" r="4" fill="${c}"/><text x="${lx + 13}" y="18">${k} ok</text>`);
    lx += 70;
  }
  parts.push(`<rect x="${lx + 1}" y="10" width="8" height="8" fill="#ff7f0e"/><text x="${lx + 13}" y="18">failed</text>`);
  lx += 65;
  parts.push(`<path d="M${lx + 1},10 l8,8 m0,-8 l-8,8" stroke="#d62728"/><text x="${lx + 13}" y="18">indeterminate</text>`);
  lx += 100;
  for (const [k, c] of Object.entries(FAULT_COLORS)) {
    parts.push(`<rect x="${lx}" y="9" width="12" height="10" fill="${c}" fill-opacity="0.25" stroke="${c}"/><text x="${lx + 16}" y="18">${k}</text>`);
    lx += 75;
  }
  parts.push('</svg>');
  const title = `raftkv chaos run — seed ${r.seed} — ${r.verdict.toUpperCase()}`;
  const summary = `${r.nodes} nodes, nemesis ${r.nemeses.join(',')}, ${r.ops.total} ops (${r.ops.ok} ok, ${r.ops.failed} failed, ${r.ops.indeterminate} indeterminate), ${r.faults.length} faults, ${r.leaderChanges} leader changes, RPO ${r.rpo.lostWrites} lost, linearizability ${r.linearizability.verdict}`;
  return [
    '<!doctype html>',
    '<html><head><meta charset="utf-8"><title>' + esc(title) + '</title>',
    '<style>body{font-family:sans-serif;margin:20px}pre{background:#f6f6f6;padding:8px}</style></head><body>',
    `<h2>${esc(title)}</h2>`,
    `<p>${esc(summary)}</p>`,
    parts.join('\n'),
    '<p>Each dot is one operation, at its call time, with its latency. Shaded bands are fault windows (hover for details); dashed lines are leader changes observed by the harness.</p>',
    r.linearizability.explanation === null ? '' : `<h3>First linearizability violation</h3><pre>${esc(r.linearizability.explanation)}</pre>`,
    '</body></html>',
    '',
  ].join('\n');
}

/** Writes history.jsonl, report.json, report.md and timeline.html into the run folder. */
export function writeRunFiles(dir: string, report: ChaosReport, history: readonly HistoryOp[]): void {
  writeHistoryFile(join(dir, 'history.jsonl'), history);
  writeFileSync(join(dir, 'report.json'), JSON.stringify(report, null, 2) + '\n');
  writeFileSync(join(dir, 'report.md'), renderMarkdown(report));
  writeFileSync(join(dir, 'timeline.html'), renderTimeline(report, history));
}
