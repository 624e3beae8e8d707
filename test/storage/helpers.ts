// Shared helpers for the storage tests: seeded randomness, entries with checkable content, temp dirs.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Entry, EntryType, Index, Term } from '../../src/raft/types.js';

export { seededRng } from '../../src/raft/rng.js';

/** A seed from SEED or the clock; print it with every failure message. */
export function testSeed(): number {
  const env = process.env['SEED'];
  return env !== undefined && env !== '' ? Number(env) : Date.now() % 1_000_000_007;
}

/** Deterministic payload for (index, term): the content checks compare against it. */
export function payloadFor(index: Index, term: Term, sizeBytes: number): Uint8Array {
  const data = new Uint8Array(sizeBytes);
  let x = (index * 2654435761 + term * 40503) >>> 0;
  for (let i = 0; i < sizeBytes; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    data[i] = x >>> 24;
  }
  return data;
}

export function entry(index: Index, term: Term, sizeBytes = 16, type: EntryType = 'normal'): Entry {
  return { index, term, type, data: payloadFor(index, term, sizeBytes) };
}

export function entries(from: Index, to: Index, term: Term, sizeBytes = 16): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push(entry(i, term, sizeBytes));
  return out;
}

/** Plain-object form of entries, so equality does not depend on Buffer vs Uint8Array. */
export function plain(es: readonly Entry[]): { index: Index; term: Term; type: EntryType; data: number[] }[] {
  return es.map((e) => ({ index: e.index, term: e.term, type: e.type, data: Array.from(e.data) }));
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `raftkv-${prefix}-`));
}

export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

/** Snapshot of a directory's files and their bytes (to prove nothing was touched). */
export function dirContents(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const name of fs.readdirSync(dir).sort()) out.set(name, fs.readFileSync(path.join(dir, name)));
  return out;
}

export function walFiles(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((n) => n.endsWith('.wal'))
    .sort();
}

/** Temp dirs of one test file, removed after it: `newDir()` and `copyDir(src)` (register `cleanup` in afterAll). */
export function tempDirs(tag: string): { newDir: () => string; copyDir: (src: string) => string; cleanup: () => void } {
  const dirs: string[] = [];
  const newDir = (): string => {
    const d = tempDir(tag);
    dirs.push(d);
    return d;
  };
  return {
    newDir,
    copyDir: (src) => {
      const d = newDir();
      fs.cpSync(src, d, { recursive: true });
      return d;
    },
    cleanup: () => {
      for (const d of dirs.splice(0)) removeDir(d);
    },
  };
}

/** Opens the WAL in `dir` expecting a failure; returns what it threw (undefined if it opened) and closes it otherwise. */
export async function openWalFailure(dir: string): Promise<unknown> {
  try {
    const { WalStorage } = await import('../../src/storage/wal-storage.js');
    const w = await WalStorage.open(dir, { logger: () => {} });
    await w.close();
    return undefined;
  } catch (err) {
    return err;
  }
}
