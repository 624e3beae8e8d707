// Crash tests with real processes: a child appends to the WAL and reports what is durable; the parent SIGKILLs
// it at seeded random moments (CRASH_KILLS times, default 30), reopens the WAL after each kill and checks that
// every entry reported durable is there with the right content. The child runs from a copy of its sources
// transpiled here with TypeScript (no build step needed; `node dist/test/storage/wal-crash-child.js` works too).
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WalStorage } from '../../src/storage/wal-storage.js';
import { CRASH_SEGMENT_SIZE_BYTES, crashEntry } from './wal-crash-child.js';
import { plain, removeDir, seededRng, tempDir, testSeed } from './helpers.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
let buildDir = '';
const dirs: string[] = [];

/** Transpiles the child and everything it imports into a temp dir (ESM, .js imports already in place). */
function transpileChild(): string {
  const out = tempDir('wal-crash-build');
  dirs.push(out);
  const sources = [
    ...fs.readdirSync(path.join(root, 'src/storage')).map((f) => `src/storage/${f}`),
    ...fs.readdirSync(path.join(root, 'src/shared')).map((f) => `src/shared/${f}`),
    'src/raft/types.ts',
    'src/raft/errors.ts',
    'src/raft/rng.ts',
    'src/raft/util.ts',
    'src/shared/errors.ts',
    'test/storage/helpers.ts',
    'test/storage/wal-crash-child.ts',
  ].filter((f) => f.endsWith('.ts'));
  for (const rel of sources) {
    const js = ts.transpileModule(fs.readFileSync(path.join(root, rel), 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 },
      fileName: rel,
    }).outputText;
    const dest = path.join(out, rel.replace(/\.ts$/, '.js'));
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.writeFileSync(dest, js);
  }
  fs.writeFileSync(path.join(out, 'package.json'), '{"type":"module"}\n');
  return out;
}

beforeAll(() => {
  buildDir = transpileChild();
});
afterAll(() => {
  for (const d of dirs) removeDir(d);
});

interface Run {
  child: ChildProcess;
  reported: Map<number, number>; // index -> term, every "d" line
  lines: number; // "d" lines seen
  stderr: string;
  exited: Promise<void>;
}

function startChild(walDir: string, seed: number, onLine: (run: Run) => void): Run {
  const child = spawn(process.execPath, [path.join(buildDir, 'test/storage/wal-crash-child.js'), walDir, String(seed)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const run: Run = {
    child,
    reported: new Map(),
    lines: 0,
    stderr: '',
    exited: new Promise((resolve) => child.once('exit', () => resolve())),
  };
  let buf = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      const m = /^d (\d+) (\d+)$/.exec(line);
      if (m !== null) {
        run.reported.set(Number(m[1]), Number(m[2]));
        run.lines++;
      } else if (!line.startsWith('ready')) {
        run.stderr += `unexpected stdout: ${line}\n`;
      }
      onLine(run);
    }
  });
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => (run.stderr += chunk));
  return run;
}

describe('WAL crash test (real processes, SIGKILL)', () => {
  it('keeps every entry reported durable across random kills', async () => {
    const seed = testSeed();
    const kills = Number(process.env['CRASH_KILLS'] ?? '30');
    const rng = seededRng(seed);
    const walDir = tempDir('wal-crash');
    dirs.push(walDir);
    const durable = new Map<number, number>(); // every index ever reported durable -> term
    let tornTails = 0;
    let totalReports = 0;
    for (let k = 0; k < kills; k++) {
      const where = `seed ${seed} kill ${k}`;
      // Kill after a random number of reports, or at a random moment shortly after start (during recovery).
      const afterReports = rng.int(3) === 0 ? -1 : 1 + rng.int(400);
      const delayMs = rng.int(40);
      let killTimer: NodeJS.Timeout | undefined;
      const run = startChild(walDir, seed * 1000 + k, (r) => {
        if (afterReports >= 0 && r.lines >= afterReports && !r.child.killed) r.child.kill('SIGKILL');
      });
      if (afterReports < 0) killTimer = setTimeout(() => run.child.kill('SIGKILL'), delayMs);
      // A child that dies on its own (not killed) is a failure; one that never reaches its kill point hangs the test.
      await run.exited;
      if (killTimer !== undefined) clearTimeout(killTimer);
      expect(run.child.signalCode, `${where}: child exited by itself: ${run.stderr}`).toBe('SIGKILL');
      expect(run.stderr.includes('unexpected stdout'), `${where}: ${run.stderr}`).toBe(false);
      totalReports += run.lines;
      for (const [i, t] of run.reported) durable.set(i, t);

      const w = await WalStorage.open(walDir, {
        segmentSizeBytes: CRASH_SEGMENT_SIZE_BYTES,
        logger: (_level, msg) => {
          if (msg.includes('torn')) tornTails++;
        },
      });
      try {
        const first = w.firstIndex();
        const last = w.lastIndex();
        for (const [i, t] of durable) {
          if (i < first) continue; // compacted into the snapshot
          expect(i, `${where}: reported index ${i} beyond the recovered last index ${last}`).toBeLessThanOrEqual(last);
          expect(w.term(i), `${where}: term of ${i}`).toBe(t);
        }
        if (last >= first) {
          const all = w.entries(first, last + 1, Infinity);
          expect(plain(all), `${where}: content`).toEqual(plain(all.map((e) => crashEntry(e.index, e.term))));
          for (let j = 1; j < all.length; j++) {
            expect((all[j]?.term ?? 0) >= (all[j - 1]?.term ?? 0), `${where}: terms regress at ${all[j]?.index}`).toBe(true);
          }
        }
      } finally {
        await w.close();
      }
    }
    expect(totalReports, `seed ${seed}: the children reported nothing`).toBeGreaterThan(kills);
    console.log(`wal crash test: seed ${seed}, ${kills} kills, ${totalReports} durable reports, ${durable.size} indexes, ${tornTails} torn tails seen`);
  });
});
