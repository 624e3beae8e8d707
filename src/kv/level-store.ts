// The state machine's directory (data-dir/kv) and its LevelDB stores: generations, opening, and what LevelDB's
// errors mean.
//
// Directory layout:
//   CURRENT        "db-<n>\n": names the live LevelDB directory. Replaced by tmp + fsync + rename + dir fsync;
//                  that rename is the commit point of a snapshot restore. Written once db-1 exists (first open).
//   db-<n>/        the live LevelDB store, opened without create-if-missing: a LevelDB that lost its own
//                  CURRENT or MANIFEST is refused (DATA_CORRUPTION naming it), never replaced by an empty one
//   db-<m>/, m!=n  the other side of an interrupted restore (the new one before the swap, or the old one after
//                  it): removed only once db-<n> has opened and its key space matched its digest
// Without CURRENT, a directory holding anything but an untouched db-1 (a first open that crashed before
// writing CURRENT) is refused and nothing is removed: the pointer was lost, and guessing could delete the
// live store.
import { existsSync } from 'node:fs';
import { readdir, rm, stat, statfs } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { RaftKvError } from '../shared/errors.js';
import { readTextIfExists, writeFileDurably } from '../shared/durable-file.js';
import { REPLACE_MEMBER_REMEDY } from '../shared/remedies.js';
import type { KvLogger } from './types.js';

export const CURRENT = 'CURRENT';

/** What an operator does about a damaged state machine; every DATA_CORRUPTION about it ends with this. */
export const KV_CORRUPTION_REMEDY = REPLACE_MEMBER_REMEDY;

export const DEFAULT_WRITE_BUFFER_BYTES = 4 * 1024 * 1024; // LevelDB memtable size: flushed to a level-0 table when full

export const INGEST_WRITE_BUFFER_BYTES = 64 * 1024 * 1024; // bulk load of a restore: fewer, larger level-0 tables

// A stalled store is reopened only with this much free: its new log, MANIFEST and a memtable's worth of table.
export const REOPEN_MIN_FREE_BYTES = 2 * DEFAULT_WRITE_BUFFER_BYTES;

export type Db = ClassicLevel<Uint8Array, Uint8Array>;

/**
 * Opens a LevelDB store. 'existing' never creates one: a store that lost its CURRENT or MANIFEST, or a table
 * file its MANIFEST names, is refused with LevelDB's own reason (DATA_CORRUPTION), not replaced by an empty one.
 */
export async function openDb(path: string, writeBufferSize: number, mode: 'create' | 'existing'): Promise<Db> {
  patchedLevelDbChecked ??= checkPatchedLevelDb();
  if (patchedLevelDbChecked !== '') throw new RaftKvError('FAILED_PRECONDITION', patchedLevelDbChecked);
  // Every option must be a number: classic-level reads a present-but-undefined option as garbage (it once
  // left the memtable unflushed: LevelDB's log and the process's memory grew with every write).
  const db = new ClassicLevel<Uint8Array, Uint8Array>(path, {
    keyEncoding: 'view',
    valueEncoding: 'view',
    writeBufferSize,
    createIfMissing: mode === 'create',
    errorIfExists: false,
  });
  try {
    await db.open();
  } catch (err) {
    if (mode === 'create') throw err;
    throw new RaftKvError('DATA_CORRUPTION', `kv: cannot open the LevelDB store ${path}: ${levelCause(err)}; ${KV_CORRUPTION_REMEDY}`);
  }
  return db;
}

// Written by scripts/build-leveldb.mjs next to the classic-level binary it built with raftkv's LevelDB fix.
const PATCHED_LEVELDB_STAMP = 'raftkv-leveldb-patch.sha256';

let patchedLevelDbChecked: string | undefined; // '' once the binary in use is known to be the patched build, else why not

/**
 * '' if classic-level loads the binary scripts/build-leveldb.mjs built (LevelDB 1.20 with the fix for
 * google/leveldb issue 320: compaction with snapshots held can bring a deleted key back), else the reason to refuse
 * to open a store: the prebuilt binary classic-level ships (an install with --ignore-scripts, or PREBUILDS_ONLY)
 * would lose deletes and return old values (FOUND-BUGS 4).
 */
function checkPatchedLevelDb(): string {
  const require = createRequire(import.meta.url);
  const pkgDir = dirname(require.resolve('classic-level/package.json'));
  const nodeGypBuild = createRequire(join(pkgDir, 'package.json'))('node-gyp-build') as { resolve(dir: string): string };
  const binary = nodeGypBuild.resolve(pkgDir);
  if (basename(dirname(binary)) === 'Release' && existsSync(join(dirname(binary), PATCHED_LEVELDB_STAMP))) return '';
  return `kv: classic-level loads ${binary}, not the LevelDB raftkv builds with its fix for google/leveldb issue 320 (a compaction while a snapshot is held can bring deleted keys back); run \`node scripts/build-leveldb.mjs\` in the raftkv directory (npm install and npm ci run it), and do not set PREBUILDS_ONLY`;
}

/** LevelDB's own message under classic-level's wrapper ("Database failed to open" says nothing). */
export function levelCause(err: unknown): string {
  const cause = (err as { cause?: unknown } | null)?.cause;
  if (cause instanceof Error) return cause.message;
  return err instanceof Error ? err.message : String(err);
}

/**
 * True if the store at `path` was created and never written (a first open that crashed before CURRENT): no table
 * file and only empty logs. Decided from the file listing alone: opening a store rewrites its MANIFEST and log.
 */
export async function isUntouchedDb(path: string): Promise<boolean> {
  for (const name of await readdir(path)) {
    if (name.endsWith('.ldb') || name.endsWith('.sst')) return false;
    if (name.endsWith('.log') && (await stat(join(path, name))).size > 0) return false;
  }
  return true;
}

export async function freeBytes(dir: string): Promise<number> {
  const st = await statfs(dir);
  return st.bavail * st.bsize;
}

/** ENOSPC, as LevelDB reports it (an IO error whose text carries strerror) or as Node does (err.code). */
export function isNoSpace(err: unknown): boolean {
  if ((err as NodeJS.ErrnoException | null)?.code === 'ENOSPC') return true;
  return /No space left on device/.test(levelCause(err));
}

export function isRaftKvErrorCode(err: unknown, code: RaftKvError['code']): boolean {
  return err instanceof RaftKvError && err.code === code;
}

export async function dirSizeBytes(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir)) {
    const s = await stat(join(dir, name));
    if (s.isFile()) total += s.size;
  }
  return total;
}

/** The generation CURRENT names (after checking that its store exists), or 1 in a fresh directory (created). */
export async function liveGeneration(dir: string): Promise<number> {
  const pointer = join(dir, CURRENT);
  const text = await readTextIfExists(pointer);
  const names = (await readdir(dir)).filter((n) => n !== CURRENT && n !== `${CURRENT}.tmp`);
  if (text === undefined) {
    // A fresh directory, or a first open that crashed between creating db-1 and writing CURRENT (db-1 then
    // holds nothing: the first apply comes after open). Anything else means the pointer was lost.
    if (names.length > 1 || (names.length === 1 && (names[0] !== 'db-1' || !(await isUntouchedDb(join(dir, 'db-1')))))) {
      throw new RaftKvError(
        'DATA_CORRUPTION',
        `kv: ${pointer} is missing but ${dir} holds ${names.slice(0, 5).join(', ')}: the pointer to the live LevelDB store ` +
          `is lost and nothing was removed; if you know which db-N is live, write "db-N" into ${pointer}; otherwise ${KV_CORRUPTION_REMEDY}`,
      );
    }
    const db = await openDb(join(dir, 'db-1'), DEFAULT_WRITE_BUFFER_BYTES, 'create');
    await db.close();
    await writeFileDurably(dir, CURRENT, 'db-1\n');
    return 1;
  }
  const m = /^db-(\d+)$/.exec(text.trim());
  if (m?.[1] === undefined) {
    throw new RaftKvError('DATA_CORRUPTION', `kv: ${pointer} holds ${JSON.stringify(text.trim())}, not "db-N"; ${KV_CORRUPTION_REMEDY}`);
  }
  const live = `db-${m[1]}`;
  if (!names.includes(live)) {
    throw new RaftKvError(
      'DATA_CORRUPTION',
      `kv: ${pointer} names ${live}, which does not exist (${dir} holds ${names.slice(0, 5).join(', ') || 'nothing else'}); ` +
        `nothing was removed; ${KV_CORRUPTION_REMEDY}`,
    );
  }
  return Number(m[1]);
}

/** Removes every generation but `live` (call only once the live one verified). */
export async function removeOtherGenerations(dir: string, live: number, logger: KvLogger | undefined): Promise<void> {
  for (const name of await readdir(dir)) {
    if (/^db-\d+$/.test(name) && name !== `db-${live}`) {
      logger?.info({ dir, name }, 'kv: removing the other side of an interrupted restore');
      await rm(join(dir, name), { recursive: true, force: true });
    }
  }
}

/** Commits generation `n` as the live one (the commit point of a restore). */
export async function setLiveGeneration(dir: string, n: number): Promise<void> {
  await writeFileDurably(dir, CURRENT, `db-${n}\n`);
}
