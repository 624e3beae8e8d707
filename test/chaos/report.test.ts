import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseHistory, type HistoryOp } from './history.js';
import { checkFinalState, checkLinearizability } from './linearizability.js';
import type { FaultRecord } from './nemesis.js';
import { buildReport, countLeaderChanges, recoveryMs, renderMarkdown, renderTimeline, writeRunFiles, type RunInput } from './report.js';

const MS = 1e6;
function op(client: number, o: HistoryOp['op'], key: string, value: string | null, callMs: number, retMs: number | null, ok: boolean, result: string | null = null, expected: string | null = null): HistoryOp {
  return { client, op: o, key, value, expected, call: callMs * MS, return: retMs === null ? null : retMs * MS, ok, result };
}

// A synthetic run: writes every 50 ms, a kill at 1000 ms healed at 2000 ms during which writes time out.
function synthetic(): { history: HistoryOp[]; faults: FaultRecord[] } {
  const history: HistoryOp[] = [];
  let n = 0;
  for (let t = 0; t < 3000; t += 50) {
    if (t >= 1000 && t < 1400) history.push(op(1, 'put', 'a', `v${n++}`, t, null, false));
    else if (t >= 1400 && t < 1600) history.push(op(1, 'put', 'a', `v${n++}`, t, t + 20, false)); // NOT_LEADER
    else history.push(op(1, 'put', 'a', `v${n++}`, t, t + 10, true));
    history.push(op(2, 'get', 'a', null, t + 20, t + 25, true, `v${n - 1}`));
  }
  // Fix the gets: during the outage the last acknowledged value is the one before t=1000.
  for (const h of history) {
    if (h.op === 'get' && h.call >= 1000 * MS && h.call < 1600 * MS) (h as { result: string | null }).result = 'v19';
  }
  const faults: FaultRecord[] = [{ kind: 'kill', detail: 'kill -9 member 1 (leader)', targets: [1], startNs: 1000 * MS, healNs: 2000 * MS, error: undefined }];
  return { history, faults };
}

function input(history: HistoryOp[], faults: FaultRecord[], finalValues: Map<string, string | null>): RunInput {
  return {
    runDir: '/tmp/x',
    seed: 7,
    nodes: 3,
    timeSeconds: 3,
    nemeses: ['kill'],
    clients: 2,
    keys: ['a'],
    startedAt: '2026-01-01T00:00:00Z',
    durationNs: 3000 * MS,
    history,
    faults,
    leaders: [
      { ns: 0, leader: 1, term: 2 },
      { ns: 1100 * MS, leader: 0, term: 2 },
      { ns: 1500 * MS, leader: 2, term: 3 },
    ],
    finalValues,
    linearizability: checkLinearizability(history),
    finalState: checkFinalState(history, finalValues),
    notes: [],
  };
}

describe('chaos report', () => {
  it('counts ops, computes RTO and leader changes, and passes a clean run', () => {
    const { history, faults } = synthetic();
    const last = history.filter((h) => h.op === 'put' && h.ok).at(-1)?.value ?? null;
    const r = buildReport(input(history, faults, new Map([['a', last]])));
    expect(r.linearizability.verdict).toBe('ok');
    expect(r.verdict).toBe('pass');
    expect(r.ops.byOp.put).toEqual({ total: 60, ok: 48, failed: 4, indeterminate: 8 });
    expect(r.ops.indeterminate).toBe(8);
    // The first acknowledged write called after 1000 ms is the one at 1600 ms, back at 1610 ms.
    expect(r.faults[0]?.rtoMs).toBe(610);
    expect(r.faults[0]?.rtoAfterHealMs).toBe(10);
    expect(r.leaderChanges).toBe(1);
    expect(r.rtoSummaryMs).toEqual({ median: 610, max: 610, unrecovered: 0 });
    expect(r.rpo.lostWrites).toBe(0);
    const md = renderMarkdown(r);
    expect(md).toContain('# Chaos run: PASS');
    expect(md).toContain('| 1 | 1.00 | 2.00 | kill -9 member 1 (leader) |  | 610 | 10 |');
  });

  it('fails a run with a lost write or a violation, and explains it', () => {
    const { history, faults } = synthetic();
    const lost = buildReport(input(history, faults, new Map([['a', 'v3']])));
    expect(lost.verdict).toBe('fail');
    expect(lost.rpo.lostWrites).toBeGreaterThan(0);
    const bad = [...history, op(3, 'get', 'a', null, 5000, 5010, true, 'v2')];
    const r = buildReport(input(bad, faults, new Map([['a', history.filter((h) => h.op === 'put' && h.ok).at(-1)?.value ?? null]])));
    expect(r.verdict).toBe('fail');
    expect(r.reasons[0]).toMatch(/not linearizable/);
    expect(renderMarkdown(r)).toContain('get -> "v2"');
    expect(renderTimeline(r, bad)).toContain('First linearizability violation');
  });

  it('shows each damage fault with its outcome, and counts them by outcome', () => {
    const { history } = synthetic();
    const base = { kind: 'damage' as const, targets: [1], startNs: 1000 * MS, healNs: 2000 * MS, error: undefined };
    const faults: FaultRecord[] = [
      { ...base, detail: 'kill -9 member 1, damage its data: leveldb-table-removed: removed table kv/db-1/000007.ldb', outcome: 'refused: raftkv: kv: ...; replaced' },
      { ...base, detail: 'kill -9 member 1, damage its data: wal-torn-tail: ...', outcome: 'recovered: serving after 300 ms (wal: truncating torn tail)' },
      { ...base, detail: 'kill -9 member 1, damage its data: wal-bitflip: ...', outcome: 'refused without the remedy: raftkv: ...', failure: 'the refusal does not name the remedy' },
      { ...base, targets: [], detail: 'damage skipped: no leader' },
    ];
    const r = buildReport(input(history, faults, new Map([['a', null]])));
    expect(r.damage).toEqual({ faults: 4, refused: 1, recovered: 1, failed: 1, skipped: 1 });
    expect(r.faults[2]?.failure).toBe('the refusal does not name the remedy');
    const md = renderMarkdown(r);
    expect(md).toContain('| recovered: serving after 300 ms (wal: truncating torn tail) |');
    expect(md).toContain('**FAILURE**: the refusal does not name the remedy; refused without the remedy');
    expect(md).toContain('Damage: 4 fault(s): 1 refused (then replaced), 1 recovered, 1 failed, 1 skipped.');
  });

  it('escapes table cells in markdown', () => {
    const { history } = synthetic();
    const faults: FaultRecord[] = [{ kind: 'partition', detail: 'bridge: [1] | 2 | [3] (stall)', targets: [1, 2, 3], startNs: 0, healNs: 5 * MS, error: 'a | b' }];
    const md = renderMarkdown(buildReport(input(history, faults, new Map([['a', 'v59']]))));
    expect(md).toContain('| bridge: [1] \\| 2 \\| [3] (stall) |');
    expect(md).toContain('| a \\| b |');
  });

  it('fails when the cluster never served the final reads (no recovery after healing)', () => {
    const { history, faults } = synthetic();
    const r = buildReport({ ...input(history, faults, new Map()), finalValues: undefined });
    expect(r.verdict).toBe('fail');
    expect(r.reasons.join()).toMatch(/liveness/);
  });

  it('is unknown when the search budget runs out', () => {
    const { history, faults } = synthetic();
    const i = input(history, faults, new Map([['a', 'v59']]));
    const r = buildReport({ ...i, linearizability: { ...i.linearizability, verdict: 'unknown' } });
    expect(r.verdict).toBe('unknown');
  });

  it('writes the run files: a history that parses back, JSON, markdown, and a self-contained SVG page', () => {
    const { history, faults } = synthetic();
    const dir = mkdtempSync(join(tmpdir(), 'chaos-report-'));
    try {
      const r = buildReport(input(history, faults, new Map([['a', 'v59']])));
      writeRunFiles(dir, r, history);
      expect(parseHistory(readFileSync(join(dir, 'history.jsonl'), 'utf8'))).toEqual(history);
      expect((JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as { verdict: string }).verdict).toBe(r.verdict);
      const html = readFileSync(join(dir, 'timeline.html'), 'utf8');
      expect(html.startsWith('<!doctype html>')).toBe(true);
      expect(html.match(/<svg /g)).toHaveLength(1);
      expect(html).toContain('</svg>');
      expect(html).not.toMatch(/(src|href)="http/); // self-contained
      // One mark per op: 52 answered ops as circles/rects... every op appears once with a tooltip.
      expect(html.match(/<title>client /g)).toHaveLength(history.length);
      // The fault window is shaded from 1 s to 2 s.
      expect(html).toContain('kill -9 member 1 (leader)');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('helpers: recoveryMs and countLeaderChanges', () => {
    expect(recoveryMs([op(1, 'put', 'a', 'x', 5, 9, true), op(1, 'get', 'a', null, 6, 7, true, 'x')], 5 * MS)).toBe(4);
    expect(recoveryMs([op(1, 'put', 'a', 'x', 4, 9, true)], 5 * MS)).toBeNull();
    expect(countLeaderChanges([{ ns: 0, leader: 1, term: 1 }, { ns: 1, leader: 0, term: 1 }, { ns: 2, leader: 1, term: 1 }, { ns: 3, leader: 1, term: 2 }, { ns: 4, leader: 3, term: 3 }])).toBe(2);
  });
});
