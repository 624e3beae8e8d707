// The damage nemesis's pieces without a cluster: each damage over a synthetic data directory, the WAL frame
// walker, and the judgement of a start (the refusal contract).
import { existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DAMAGES, REFUSAL_REMEDY, applyDamage, judgeStart, saveState, viewDataDir, walFrames, type DamageName } from './damage.js';
import { SeededRng } from './nemesis.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function frame(type: number, payloadBytes: number): Buffer {
  const b = Buffer.alloc(8 + 1 + payloadBytes, 7);
  b.writeUInt32LE(1 + payloadBytes, 0);
  b.writeUInt32LE(0xdeadbeef, 4); // the walker does not check checksums
  b[8] = type;
  return b;
}

/** A segment of `records` frames followed by `zeros` preallocated zero bytes. */
function segment(records: number, zeros: number): Buffer {
  const parts = [frame(1, 24), frame(4, 37), frame(3, 20)];
  for (let i = parts.length; i < records; i++) parts.push(frame(2, 40 + i));
  return Buffer.concat([...parts.slice(0, records), Buffer.alloc(zeros)]);
}

/** A stopped member's directory as raftkv lays it out (contents are stand-ins, sizes are what matter). */
function dataDir(): string {
  const root = mkdtempSync(join(tmpdir(), 'raftkv-damage-'));
  dirs.push(root);
  const d = join(root, 'data');
  mkdirSync(join(d, 'kv', 'db-2'), { recursive: true });
  mkdirSync(join(d, 'wal'), { recursive: true });
  writeFileSync(join(d, 'node.json'), JSON.stringify({ format: 1, nodeId: 1, clusterId: 'c', incarnation: 'abc' }));
  writeFileSync(join(d, 'kv', 'CURRENT'), 'db-2\n');
  writeFileSync(join(d, 'kv', 'db-2', 'CURRENT'), 'MANIFEST-000004\n');
  writeFileSync(join(d, 'kv', 'db-2', 'MANIFEST-000004'), Buffer.alloc(90, 1));
  writeFileSync(join(d, 'kv', 'db-2', '000007.ldb'), Buffer.alloc(5000, 2));
  writeFileSync(join(d, 'kv', 'db-2', '000009.ldb'), Buffer.alloc(3000, 3));
  writeFileSync(join(d, 'kv', 'db-2', '000010.log'), Buffer.alloc(2000, 4));
  writeFileSync(join(d, 'wal', `${'1'.padStart(16, '0')}-${'1'.padStart(16, '0')}.wal`), segment(10, 0));
  writeFileSync(join(d, 'wal', `${'2'.padStart(16, '0')}-${'a'.padStart(16, '0')}.wal`), segment(12, 4096));
  writeFileSync(join(d, 'wal', 'last-segment'), Buffer.alloc(25, 5));
  return d;
}

describe('walFrames', () => {
  it('walks the frames up to the preallocated zeros or EOF', () => {
    const buf = segment(5, 100);
    const frames = walFrames(buf);
    expect(frames.length).toBe(5);
    expect(frames[0]).toEqual({ offset: 0, bytes: 33 });
    const last = frames[4];
    expect(last === undefined ? -1 : last.offset + last.bytes).toBe(buf.length - 100);
    expect(walFrames(buf.subarray(0, buf.length - 100 - 3)).length).toBe(4); // a cut record is not a frame
  });
});

describe('damages over a data directory', () => {
  it('every damage has a victim here and does what its detail says', () => {
    for (const damage of DAMAGES) {
      const d = dataDir();
      const view = viewDataDir(d, damage.name === 'kv-rolled-back' ? { kvCopy: join(d, 'kv'), takenAt: 'x' } : undefined);
      const victims = damage.victims(view);
      if (damage.name === 'kv-rolled-back') {
        expect(victims).toEqual([join(d, 'kv')]);
        continue; // needs a copy outside kv/ (covered below)
      }
      expect(victims.length, damage.name).toBeGreaterThan(0);
      const victim = victims[0] ?? '';
      const before = existsSync(victim) ? readFileSync(victim) : Buffer.alloc(0);
      const detail = damage.apply(victim, new SeededRng(1), view);
      expect(detail.length, damage.name).toBeGreaterThan(0);
      const after = existsSync(victim) ? readFileSync(victim) : undefined;
      expect(after === undefined || !after.equals(before), `${damage.name} changed ${victim}`).toBe(true);
    }
  });

  it('applies a seeded choice: the same seed on the same directory does the same damage', () => {
    const a = applyDamage(dataDir(), new SeededRng(42));
    const b = applyDamage(dataDir(), new SeededRng(42));
    expect(a?.name).toBeDefined();
    expect(b?.name).toBe(a?.name);
    expect(b?.detail).toBe(a?.detail);
  });

  it('skips damages whose files do not exist (no table yet, one segment with only its preamble)', () => {
    const d = dataDir();
    rmSync(join(d, 'kv', 'db-2', '000007.ldb'));
    rmSync(join(d, 'kv', 'db-2', '000009.ldb'));
    rmSync(join(d, 'wal', `${'1'.padStart(16, '0')}-${'1'.padStart(16, '0')}.wal`));
    writeFileSync(join(d, 'wal', `${'2'.padStart(16, '0')}-${'a'.padStart(16, '0')}.wal`), segment(3, 100));
    const view = viewDataDir(d, undefined);
    const names = DAMAGES.filter((x) => x.victims(view).length > 0).map((x) => x.name);
    const skipped: DamageName[] = ['leveldb-table-removed', 'leveldb-table-truncated', 'leveldb-table-bitflip', 'wal-torn-tail', 'wal-partial-write', 'kv-rolled-back'];
    for (const n of skipped) expect(names).not.toContain(n);
    expect(names).toContain('wal-segment-removed');
    for (let seed = 0; seed < 30; seed++) {
      const e = dataDir();
      rmSync(join(e, 'kv', 'db-2', '000007.ldb'));
      rmSync(join(e, 'kv', 'db-2', '000009.ldb'));
      const r = applyDamage(e, new SeededRng(seed));
      expect(r === undefined || !r.name.startsWith('leveldb-table'), r?.name).toBe(true);
      expect(r?.name).not.toBe('kv-rolled-back'); // only when asked for, with a copy
    }
  });

  it('wal-torn-tail cuts into the last record; wal-bitflip never touches it', () => {
    const d = dataDir();
    const view = viewDataDir(d, undefined);
    const last = view.segments[1] ?? '';
    const frames = walFrames(readFileSync(last));
    const lastFrame = frames[frames.length - 1];
    const torn = DAMAGES.find((x) => x.name === 'wal-torn-tail');
    torn?.apply(last, new SeededRng(3), view);
    const size = statSync(last).size;
    expect(lastFrame !== undefined && size > lastFrame.offset && size < lastFrame.offset + lastFrame.bytes).toBe(true);

    const e = dataDir();
    const v2 = viewDataDir(e, undefined);
    const seg = v2.segments[1] ?? '';
    const original = readFileSync(seg);
    const lf = walFrames(original).at(-1);
    const flip = DAMAGES.find((x) => x.name === 'wal-bitflip');
    for (let seed = 0; seed < 20; seed++) flip?.apply(seg, new SeededRng(seed), v2);
    const now = readFileSync(seg);
    expect(lf !== undefined && now.subarray(lf.offset).equals(original.subarray(lf.offset))).toBe(true);
  });

  it('rolls kv/ back to a saved copy when asked for', () => {
    const d = dataDir();
    writeFileSync(join(d, 'kv', 'marker'), 'old');
    const saved = saveState(d, join(d, '..', 'saved'), '3.5s');
    writeFileSync(join(d, 'kv', 'marker'), 'new');
    writeFileSync(join(d, 'kv', 'db-2', '000011.ldb'), Buffer.alloc(10, 9)); // written after the copy
    const r = applyDamage(d, new SeededRng(7), saved);
    expect(r?.name).toBe('kv-rolled-back');
    expect(r?.detail).toContain('from 3.5s');
    expect(readFileSync(join(d, 'kv', 'marker'), 'utf8')).toBe('old');
    expect(existsSync(join(d, 'kv', 'db-2', '000011.ldb'))).toBe(false);
    expect(existsSync(join(d, 'kv', 'db-2', '000007.ldb'))).toBe(true);
  });
});

describe('judgeStart: the refusal contract', () => {
  const refusal = `raftkv: kv: cannot open the LevelDB store /x/kv/db-1: Corruption: 1 missing files; ${REFUSAL_REMEDY}: it catches up from the leader`;
  const pino = '{"level":30,"time":"t","msg":"election timeout rng seeded"}';
  const exited = (code: number | null, output: string, signal: string | null = null) => ({ kind: 'exited' as const, afterMs: 5, status: { code, signal, output } });

  it('a refusal with the remedy: refused, replace the member', () => {
    const v = judgeStart(exited(1, `${refusal}\n`), 'refused');
    expect(v).toEqual({ outcome: `refused: ${refusal}`, failure: undefined, replace: true });
  });

  it('a refusal without the remedy fails the run (and the member is still replaced)', () => {
    const v = judgeStart(exited(1, 'raftkv: kv: malformed member table\n'), 'either');
    expect(v.failure).toContain('does not name the remedy');
    expect(v.replace).toBe(true);
  });

  it('a crash (exit 70), a refusal after serving, or a silent start fail the run', () => {
    expect(judgeStart(exited(70, `${pino}\n`), 'either').failure).toContain('code 70');
    expect(judgeStart(exited(1, `{"level":30,"msg":"serving"}\n${refusal}\n`), 'either').failure).toContain('after it had started');
    expect(judgeStart(exited(null, '', 'SIGSEGV'), 'either').failure).toContain('SIGSEGV');
    expect(judgeStart({ kind: 'silent', afterMs: 30_000, output: pino }, 'either').failure).toContain('neither served nor exited');
  });

  it('holds each damage to its expectation', () => {
    const serving = { kind: 'serving' as const, afterMs: 300, output: '{"level":40,"msg":"wal: truncating torn tail"}\n' };
    expect(judgeStart(serving, 'recovered')).toEqual({ outcome: 'recovered: serving after 300 ms (wal: truncating torn tail)', failure: undefined, replace: false });
    expect(judgeStart(serving, 'refused').failure).toContain('must refuse');
    expect(judgeStart(exited(1, refusal), 'recovered').failure).toContain('must repair');
    expect(judgeStart(exited(1, refusal), 'either').failure).toBeUndefined();
  });
});
