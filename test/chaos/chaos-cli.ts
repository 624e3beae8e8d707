// `npm run chaos -- [--nodes 3|5] [--time SECONDS] [--seed S] [--nemesis kill,pause,partition,member,transfer,damage]
//                   [--clients N] [--keys N] [--run-dir DIR] [--client kv|raw] [--snapshot-count N]
//                   [--hold-ms MIN-MAX] [--quiet-ms MIN-MAX] [--quiet] [--tls] [--watchers N] [--leases] [--port-range MIN-MAX]`
//   (--tls: TLS with client certificates on every port; --watchers/--leases: watchers and lease workers, watch-check.ts)
// `npm run chaos -- --check RUN_DIR` re-checks a recorded run's history.jsonl (same exit codes).
// Runs one chaos run against real `raftkv serve` processes (build first: `npm run build`), prints the run
// folder, and exits 0 if the run passed, 1 on any violation (not linearizable, or an acknowledged write
// lost), 2 if the run could not be checked (unknown), 64 for bad flags.
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runChaos } from './harness.js';
import { readHistoryFile } from './history.js';
import { checkFinalState, checkLinearizability } from './linearizability.js';
import { NEMESIS_KINDS, parseNemesisKinds } from './nemesis.js';

function intFlag(name: string, v: string | undefined, dflt: number, min: number, max: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer in [${min}, ${max}], got "${v}"`);
  return n;
}

/** "MIN-MAX" or "N" milliseconds. */
function rangeFlag(name: string, v: string): [number, number] {
  const m = /^(\d+)(?:-(\d+))?$/.exec(v);
  const lo = Number(m?.[1]);
  const hi = Number(m?.[2] ?? m?.[1]);
  if (m === null || !(lo > 0) || hi < lo) throw new Error(`--${name} must be MS or MIN-MAX in ms, got "${v}"`);
  return [lo, hi];
}

/** `--check RUN_DIR`: re-runs the checks on a recorded run (history.jsonl, final values from report.json). */
function recheck(dir: string): number {
  const history = readHistoryFile(join(dir, 'history.jsonl'));
  const lin = checkLinearizability(history);
  let finalNote = 'no report.json: final state not checked';
  let lost = 0;
  try {
    const report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as { finalValues: Record<string, string | null> | null };
    if (report.finalValues !== null) {
      const final = checkFinalState(history, new Map(Object.entries(report.finalValues)));
      lost = final.lost.length;
      finalNote = `RPO: ${lost} lost of ${final.acknowledgedWrites} acknowledged writes`;
    } else finalNote = 'the run has no final values: final state not checked';
  } catch (err) {
    finalNote = `report.json unreadable (${err instanceof Error ? err.message : String(err)}): final state not checked`;
  }
  process.stdout.write(`${history.length} ops; linearizability: ${lin.verdict} (${lin.steps} steps); ${finalNote}\n`);
  if (lin.firstViolation !== undefined) process.stdout.write(lin.firstViolation.text + '\n');
  if (lin.verdict === 'violation' || lost > 0) return 1;
  return lin.verdict === 'unknown' ? 2 : 0;
}

function parseClient(v: string | undefined): 'kv' | 'raw' {
  if (v === undefined || v === 'kv') return 'kv';
  if (v === 'raw') return 'raw';
  throw new Error(`--client must be kv or raw, got "${v}"`);
}

async function main(argv: string[]): Promise<number> {
  let opts;
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        nodes: { type: 'string' },
        time: { type: 'string' },
        seed: { type: 'string' },
        nemesis: { type: 'string' },
        clients: { type: 'string' },
        keys: { type: 'string' },
        'run-dir': { type: 'string' },
        quiet: { type: 'boolean' },
        client: { type: 'string' },
        'snapshot-count': { type: 'string' },
        'hold-ms': { type: 'string' },
        'port-range': { type: 'string' },
        'quiet-ms': { type: 'string' },
        check: { type: 'string' },
        tls: { type: 'boolean' },
        watchers: { type: 'string' },
        leases: { type: 'boolean' },
      },
      strict: true,
    });
    if (values.check !== undefined) return recheck(values.check);
    const nodes = intFlag('nodes', values.nodes, 3, 3, 5);
    if (nodes !== 3 && nodes !== 5) throw new Error('--nodes must be 3 or 5');
    opts = {
      nodes,
      timeSeconds: intFlag('time', values.time, 60, 1, 24 * 3600),
      seed: intFlag('seed', values.seed, Math.floor(Math.random() * 2 ** 31), 0, 2 ** 31),
      nemeses: parseNemesisKinds(values.nemesis ?? NEMESIS_KINDS.join(',')),
      clients: intFlag('clients', values.clients, 5, 1, 64),
      keys: intFlag('keys', values.keys, 4, 1, 1000),
      client: parseClient(values.client),
      ...(values.tls === true ? { tls: true } : {}),
      watchers: intFlag('watchers', values.watchers, 0, 0, 64),
      ...(values.leases === true ? { leases: true } : {}),
      ...(values['snapshot-count'] !== undefined ? { snapshotCount: intFlag('snapshot-count', values['snapshot-count'], 0, 1, 10_000_000) } : {}),
      ...(values['hold-ms'] !== undefined ? { holdMs: rangeFlag('hold-ms', values['hold-ms']) } : {}),
      ...(values['port-range'] !== undefined ? { portRange: rangeFlag('port-range', values['port-range']) } : {}),
      ...(values['quiet-ms'] !== undefined ? { quietMs: rangeFlag('quiet-ms', values['quiet-ms']) } : {}),
      ...(values['run-dir'] !== undefined ? { runDir: values['run-dir'] } : {}),
      ...(values.quiet === true ? {} : { log: (line: string) => process.stderr.write(line + '\n') }),
    };
  } catch (err) {
    process.stderr.write(`chaos: ${err instanceof Error ? err.message : String(err)}\n`);
    return 64;
  }
  process.stdout.write(`chaos: seed ${opts.seed}, ${opts.nodes} nodes, ${opts.timeSeconds} s, nemesis ${opts.nemeses.join(',')}\n`);
  const { runDir, report } = await runChaos(opts);
  const r = report;
  process.stdout.write(
    [
      `run folder: ${runDir}`,
      `verdict: ${r.verdict.toUpperCase()}${r.reasons.length > 0 ? ' (' + r.reasons.join('; ') + ')' : ''}`,
      `ops: ${r.ops.total} (${r.ops.ok} ok, ${r.ops.failed} failed, ${r.ops.indeterminate} indeterminate); faults: ${r.faults.length}; leader changes: ${r.leaderChanges}`,
      `RPO: ${r.rpo.lostWrites} lost of ${r.rpo.acknowledgedWrites} acknowledged writes; linearizability: ${r.linearizability.verdict}`,
      `RTO (ms) per fault: ${r.faults.map((f) => (f.rtoMs === null ? '—' : f.rtoMs.toFixed(0))).join(', ') || 'none'}`,
      ...(r.damage.faults > 0 ? [`damage: ${r.damage.faults} faults: ${r.damage.refused} refused (replaced), ${r.damage.recovered} recovered, ${r.damage.failed} failed, ${r.damage.skipped} skipped`] : []),
      `see ${runDir}/report.md and ${runDir}/timeline.html`,
      '',
    ].join('\n'),
  );
  if (r.verdict === 'fail') return 1;
  if (r.verdict === 'unknown') return 2;
  return 0;
}

// Ctrl-C / SIGTERM: exit, which kills every serve process this run started (processes.ts exit hook).
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`chaos: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
