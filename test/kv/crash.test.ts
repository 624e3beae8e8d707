// A real child process applies the crash model's log in a loop (snapshotting while it writes) and is SIGKILLed
// at seeded random moments. After every kill: the state equals the model at appliedIndex (nothing applied twice,
// nothing skipped), nothing the child saw flushed is lost, and the latest snapshot verifies. At the end: the
// survivor equals a fresh replay of the log byte for byte, and its latest snapshot restores to the same state
// as a replay up to the snapshot's index. Replay a failure with SEED=<seed>.
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { KvStateMachine, latestSnapshot } from '../../src/kv/state-machine.js';
import type { KeyValue } from '../../src/kv/types.js';
import { entriesFrom, expectedConfState, expectedKeys } from './crash-model.js';
import { ALL, dec, dumpState, seedFromEnv, seededRng, tempDir } from './helpers.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CHILD = join(ROOT, 'dist', 'test', 'kv', 'crash-child.js');
const KILLS = 24;

function assertChildBuilt(): void {
  if (!existsSync(CHILD)) throw new Error(`${CHILD} is missing: run \`npm run build\` first`);
  const built = statSync(CHILD).mtimeMs;
  for (const src of ['src/kv/state-machine.ts', 'src/kv/codec.ts', 'src/kv/snapshot-file.ts', 'test/kv/crash-child.ts', 'test/kv/crash-model.ts']) {
    if (statSync(join(ROOT, src)).mtimeMs > built) throw new Error(`${CHILD} is older than ${src}: run \`npm run build\``);
  }
}

const show = (kv: KeyValue): string => `${dec(kv.key)}=${dec(kv.value)} c${kv.createRevision} m${kv.modRevision} v${kv.version}`;

/** Runs the child until it has reported `batches` applied batches, then SIGKILLs it. Returns the last flushed index reported. */
async function runAndKill(
  kvDir: string,
  snapDir: string,
  seed: number,
  batches: number,
  delayMs: number,
  untilSnapshot = false,
): Promise<{ opened: number; reported: number }> {
  const child = spawn(process.execPath, [CHILD, kvDir, snapDir, String(seed)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
  let opened = -1;
  let reported = -1;
  let seen = 0;
  let snapshotted = false;
  const lines = createInterface({ input: child.stdout });
  for await (const line of lines) {
    const [what, n] = line.split(' ');
    if (what === 'open') opened = Number(n);
    if (what === 'applied') seen++;
    if (what === 'flushed') reported = Number(n);
    if (what === 'snapshot') snapshotted = true;
    if (seen >= batches && (!untilSnapshot || snapshotted)) break;
  }
  // The kill lands a seeded random while after the last report: inside a batch, a snapshot, or between them.
  // Lines printed meanwhile are not read, so `reported` stays a lower bound of what the child applied.
  if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
  child.kill('SIGKILL');
  const { code, signal } = await exited;
  if (signal !== 'SIGKILL') throw new Error(`child exited early (code ${code}, signal ${signal}): ${stderr}`);
  return { opened, reported };
}

async function applyRange(sm: KvStateMachine, from: number, to: number): Promise<void> {
  for (let i = from; i <= to; i += 500) await sm.apply(entriesFrom(i, Math.min(500, to - i + 1)));
}

describe('kv crash safety with a real child process', () => {
  const seed = seedFromEnv();

  it(`survives ${KILLS} SIGKILLs at seeded random moments (seed ${seed})`, async () => {
    assertChildBuilt();
    const rng = seededRng(seed);
    const dir = await tempDir('crash');
    const kvDir = join(dir.path, 'kv');
    const snapDir = join(dir.path, 'snap');
    try {
      let lastReported = 0;
      for (let kill = 0; kill < KILLS; kill++) {
        const batches = rng.int(3) === 0 ? 1 : 1 + rng.int(25);
        const delayMs = rng.int(3) === 0 ? 0 : rng.int(40);
        // Early kills can all land before any snapshot finished: the last run goes on until one has, so the
        // end check (a snapshot restores to a replay of the log up to its index) always has one to check.
        const last = kill === KILLS - 1;
        const { opened, reported } = await runAndKill(kvDir, snapDir, rng.int(2 ** 31), batches, delayMs, last);
        const at = `seed ${seed}, kill ${kill}`;
        expect(opened, `${at}: reopened below what a previous run saw applied`).toBeGreaterThanOrEqual(lastReported);
        const sm = await KvStateMachine.open(kvDir, { sessionTtlEntries: 500, maxSessions: 2 });
        try {
          const applied = sm.appliedIndex;
          expect(applied, `${at}: a batch the child saw flushed was lost`).toBeGreaterThanOrEqual(reported);
          const all = await sm.range({ ...ALL, limit: 0, keysOnly: false, countOnly: false });
          expect(all.kvs.map(show), `${at}: state at applied index ${applied}`).toEqual(expectedKeys(applied));
          expect(sm.confState(), at).toEqual(expectedConfState(applied));
          const snap = await latestSnapshot(snapDir);
          if (snap !== undefined) expect(snap.metadata.index, at).toBeLessThanOrEqual(applied);
          // keep = 2, plus one when the kill fell between a new snapshot's rename and the pruning of the oldest.
          const files = existsSync(snapDir) ? (await readdir(snapDir)).filter((n) => n.endsWith('.snap')) : [];
          expect(files.length, `${at}: ${files.join(' ')}`).toBeLessThanOrEqual(3);
          lastReported = Math.max(reported, applied);
        } finally {
          await sm.close();
        }
      }
      expect(lastReported, `seed ${seed}: the child made progress`).toBeGreaterThan(KILLS);
      console.log(`kv crash test: seed ${seed}, ${KILLS} kills, applied index reached ${lastReported}`);

      // The survivor equals a replay of the log, record for record (data, sessions, members, applied index).
      const survivor = await KvStateMachine.open(kvDir, { sessionTtlEntries: 500, maxSessions: 2 });
      const replay = await KvStateMachine.open(join(dir.path, 'replay'), { sessionTtlEntries: 500, maxSessions: 2 });
      const fromSnap = await KvStateMachine.open(join(dir.path, 'from-snap'), { sessionTtlEntries: 500, maxSessions: 2 });
      try {
        const snap = await latestSnapshot(snapDir);
        expect(snap, `seed ${seed}: at least one snapshot survived`).toBeDefined();
        const snapIndex = snap?.metadata.index ?? 0;
        await applyRange(replay, 1, snapIndex);
        await fromSnap.restoreSnapshot(snap?.path ?? '');
        expect(await dumpState(fromSnap, join(dir.path, 'd1')), `seed ${seed}`).toEqual(await dumpState(replay, join(dir.path, 'd2')));
        await applyRange(replay, snapIndex + 1, survivor.appliedIndex);
        expect(replay.appliedIndex).toBe(survivor.appliedIndex);
        expect(await dumpState(survivor, join(dir.path, 'd3')), `seed ${seed}`).toEqual(await dumpState(replay, join(dir.path, 'd4')));
      } finally {
        await survivor.close();
        await replay.close();
        await fromSnap.close();
      }
    } finally {
      await dir.cleanup();
    }
  }, 600_000); // 24 process starts: generous for a loaded 2-core CI machine
});
