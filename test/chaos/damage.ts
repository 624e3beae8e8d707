// The damage nemesis's faults: what can happen to a STOPPED member's data directory (a file lost, truncated or
// with flipped bits, the state machine rolled back), each a small named function over the directory, and the
// judgement of the member's next start.
//
// The layout they work on (see src/storage/wal.ts and src/kv/state-machine.ts):
//   <data>/wal/<seq16hex>-<firstIndex16hex>.wal   segments; records `length u32 | crc u32 | type u8 | payload`,
//                                                 the last segment preallocated with zeros after its records
//   <data>/wal/last-segment                       the newest segment's seq
//   <data>/kv/CURRENT                             "db-N\n": the live LevelDB store
//   <data>/kv/db-N/                               LevelDB: CURRENT, MANIFEST-*, *.ldb tables, *.log
//
// The contract at start (what the member must do, checked by judgeStart): either it starts and serves with
// all its acknowledged data, or it refuses: exit status 1 before serving anything, one `raftkv: ...` line on
// stderr that ends with REFUSAL_REMEDY. Each damage says which of the two it must get ('either' where the
// flipped bits may land on bytes nothing reads, e.g. a LevelDB block of values already overwritten).
import { closeSync, cpSync, existsSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { ExitStatus } from './processes.js';

/** What a refusal's line must say: the operator's way out (README "Damaged disks and data directories"). */
export const REFUSAL_REMEDY =
  'remove this member (raftkv member remove ID), wipe its data directory, add it back (raftkv member add) and start it with --initial-cluster-state existing';

/** The seeded choices a damage makes (SeededRng in nemesis.ts). */
export interface DamageRng {
  int(maxExclusive: number): number;
  pick<T>(xs: readonly T[]): T;
  shuffle<T>(xs: readonly T[]): T[];
}

export type DamageExpectation = 'refused' | 'recovered' | 'either';

/** A stopped member's data directory as the damages see it. */
export interface DataDirView {
  readonly dataDir: string;
  readonly kvDir: string;
  readonly liveDb: string | undefined; // kv/db-N named by kv/CURRENT, if it exists
  readonly walDir: string;
  readonly segments: readonly string[]; // segment paths in seq order
  readonly saved: SavedState | undefined; // an earlier copy of this directory's kv/ (saveState)
}

/** A copy of kv/ taken earlier in the same fault (saveState): what a "rolled back" state machine goes back to. */
export interface SavedState {
  readonly kvCopy: string;
  readonly takenAt: string; // when, as the nemesis's log says it (e.g. "12.3s")
}

export interface Damage {
  readonly name: DamageName;
  readonly expect: DamageExpectation;
  /** The files it could hit, sorted (empty: not applicable to this directory now). */
  victims(dir: DataDirView): string[];
  /** Damages `victim` (seeded); returns what it did, naming the file. */
  apply(victim: string, rng: DamageRng, dir: DataDirView): string;
}

export type DamageName =
  | 'kv-pointer-removed'
  | 'kv-pointer-dangling'
  | 'leveldb-current-removed'
  | 'leveldb-manifest-removed'
  | 'leveldb-table-removed'
  | 'leveldb-table-truncated'
  | 'leveldb-table-bitflip'
  | 'leveldb-log-bitflip'
  | 'wal-segment-removed'
  | 'wal-bitflip'
  | 'wal-torn-tail'
  | 'wal-partial-write'
  | 'kv-rolled-back';

const SEGMENT_NAME = /^[0-9a-f]{16}-[0-9a-f]{16}\.wal$/;
const FRAME_HEADER_BYTES = 8; // length u32 | crc u32
const PREAMBLE_RECORDS = 3; // header, snapshot, hard state: a segment's first records (written whole, renamed)

function files(dir: string | undefined, test: (name: string) => boolean): string[] {
  if (dir === undefined || !existsSync(dir)) return [];
  return readdirSync(dir)
    .filter(test)
    .sort()
    .map((n) => join(dir, n))
    .filter((p) => statSync(p).isFile());
}

function nonEmpty(paths: string[]): string[] {
  return paths.filter((p) => statSync(p).size > 0);
}

/** A record of a WAL segment: where its frame starts and how long it is (header included). */
export interface WalFrame {
  readonly offset: number;
  readonly bytes: number;
}

/** A segment file's frames and its last one (the file must hold a record). */
function lastWalFrame(path: string): { frames: WalFrame[]; last: WalFrame } {
  const frames = walFrames(readFileSync(path));
  const last = frames[frames.length - 1];
  if (last === undefined) throw new Error(`${path}: no record`);
  return { frames, last };
}

/** The record frames of a segment file, up to its first zero length (the preallocated tail) or EOF. */
export function walFrames(buf: Buffer): WalFrame[] {
  const out: WalFrame[] = [];
  let offset = 0;
  while (offset + FRAME_HEADER_BYTES <= buf.length) {
    const len = buf.readUInt32LE(offset);
    if (len === 0 || offset + FRAME_HEADER_BYTES + len > buf.length) break;
    out.push({ offset, bytes: FRAME_HEADER_BYTES + len });
    offset += FRAME_HEADER_BYTES + len;
  }
  return out;
}

/** Flips one seeded bit in each of `count` seeded bytes of `file` in [from, to); returns the offsets, sorted. */
function flipBits(file: string, from: number, to: number, count: number, rng: DamageRng): string {
  const fd = openSync(file, 'r+');
  const done: string[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const at = from + rng.int(to - from);
      const bit = rng.int(8);
      const b = Buffer.alloc(1);
      readSync(fd, b, 0, 1, at);
      b[0] = (b[0] ?? 0) ^ (1 << bit);
      writeSync(fd, b, 0, 1, at);
      done.push(`${at}.${bit}`);
    }
  } finally {
    closeSync(fd);
  }
  return done.join(', ');
}

function rel(dir: DataDirView, path: string): string {
  return path.startsWith(dir.dataDir + '/') ? path.slice(dir.dataDir.length + 1) : path;
}

function segmentPosition(dir: DataDirView, seg: string): string {
  const i = dir.segments.indexOf(seg);
  const n = dir.segments.length;
  return n === 1 ? 'the only segment' : i === 0 ? `the first of ${n} segments` : i === n - 1 ? `the last of ${n} segments` : `segment ${i + 1} of ${n} (middle)`;
}

const tables = (d: DataDirView): string[] => nonEmpty(files(d.liveDb, (n) => n.endsWith('.ldb') || n.endsWith('.sst')));

export const DAMAGES: readonly Damage[] = [
  {
    name: 'kv-pointer-removed',
    expect: 'refused',
    victims: (d) => files(d.kvDir, (n) => n === 'CURRENT'),
    apply: (v, _rng, d) => {
      rmSync(v);
      return `removed ${rel(d, v)}`;
    },
  },
  {
    name: 'kv-pointer-dangling',
    expect: 'refused',
    victims: (d) => (d.liveDb === undefined ? [] : files(d.kvDir, (n) => n === 'CURRENT')),
    apply: (v, rng, d) => {
      const live = Number(/(\d+)$/.exec(d.liveDb ?? '')?.[1] ?? '1');
      let m = live + 1 + rng.int(3);
      while (existsSync(join(d.kvDir, `db-${m}`))) m++;
      writeFileSync(v, `db-${m}\n`);
      return `${rel(d, v)} now names db-${m}, which does not exist (was db-${live})`;
    },
  },
  {
    name: 'leveldb-current-removed',
    expect: 'refused',
    victims: (d) => files(d.liveDb, (n) => n === 'CURRENT'),
    apply: (v, _rng, d) => {
      rmSync(v);
      return `removed LevelDB's ${rel(d, v)}`;
    },
  },
  {
    name: 'leveldb-manifest-removed',
    expect: 'refused',
    victims: (d) => files(d.liveDb, (n) => n.startsWith('MANIFEST-')),
    apply: (v, _rng, d) => {
      rmSync(v);
      return `removed ${rel(d, v)}`;
    },
  },
  {
    name: 'leveldb-table-removed',
    expect: 'refused',
    victims: tables,
    apply: (v, _rng, d) => {
      rmSync(v);
      return `removed table ${rel(d, v)}`;
    },
  },
  {
    name: 'leveldb-table-truncated',
    expect: 'refused',
    victims: tables,
    apply: (v, rng, d) => {
      const size = statSync(v).size;
      const to = rng.int(size);
      truncateSync(v, to);
      return `truncated table ${rel(d, v)} from ${size} to ${to} bytes`;
    },
  },
  {
    name: 'leveldb-table-bitflip',
    expect: 'either',
    victims: tables,
    apply: (v, rng, d) => {
      const size = statSync(v).size;
      return `flipped bits in table ${rel(d, v)} (${size} bytes) at byte.bit ${flipBits(v, 0, size, 1 + rng.int(3), rng)}`;
    },
  },
  {
    // LevelDB's own log of writes not yet in a table: it skips what fails its checksum; the WAL replays the rest.
    name: 'leveldb-log-bitflip',
    expect: 'either',
    victims: (d) => nonEmpty(files(d.liveDb, (n) => n.endsWith('.log'))),
    apply: (v, rng, d) => {
      const size = statSync(v).size;
      return `flipped bits in LevelDB's log ${rel(d, v)} (${size} bytes) at byte.bit ${flipBits(v, 0, size, 1 + rng.int(3), rng)}`;
    },
  },
  {
    name: 'wal-segment-removed',
    expect: 'refused',
    victims: (d) => [...d.segments],
    apply: (v, _rng, d) => {
      const what = segmentPosition(d, v);
      rmSync(v);
      return `removed WAL segment ${rel(d, v)} (${what})`;
    },
  },
  {
    // Flipped bits in a record that is not the last one of the last segment: corruption, never a torn tail.
    name: 'wal-bitflip',
    expect: 'refused',
    victims: (d) => d.segments.filter((s) => eligibleFlipFrames(d, s).length > 0),
    apply: (v, rng, d) => {
      const frame = rng.pick(eligibleFlipFrames(d, v));
      const frames = walFrames(readFileSync(v));
      const i = frames.findIndex((f) => f.offset === frame.offset);
      return `flipped bits in record ${i + 1} of ${frames.length} (offset ${frame.offset}, ${frame.bytes} bytes) of WAL segment ${rel(d, v)} (${segmentPosition(d, v)}) at byte.bit ${flipBits(v, frame.offset, frame.offset + frame.bytes, 1 + rng.int(2), rng)}`;
    },
  },
  {
    // The brief's torn tail: the last segment cut part-way into its last record. Note: that record may have
    // been fsynced and acknowledged before the kill (a real crash tears only a write not yet synced), so this
    // is harsher than a crash; the cluster must still hold every acknowledged write (the others have it).
    name: 'wal-torn-tail',
    expect: 'recovered',
    victims: (d) => lastSegmentWithRecordsPastPreamble(d),
    apply: (v, rng, d) => {
      const { frames, last } = lastWalFrame(v);
      const keep = 1 + rng.int(last.bytes - 1);
      truncateSync(v, last.offset + keep);
      return `truncated WAL segment ${rel(d, v)} (${segmentPosition(d, v)}) part-way into its last record (record ${frames.length}, offset ${last.offset}: kept ${keep} of its ${last.bytes} bytes)`;
    },
  },
  {
    // What a crash in the middle of a write leaves: the start of a record after the last one, never synced.
    name: 'wal-partial-write',
    expect: 'recovered',
    victims: (d) => lastSegmentWithRecordsPastPreamble(d),
    apply: (v, rng, d) => {
      const { last } = lastWalFrame(v);
      const at = last.offset + last.bytes;
      const length = 20 + rng.int(200); // what the record's length field claims
      const written = 1 + rng.int(FRAME_HEADER_BYTES + length - 1); // how much of it reached the file
      const frame = Buffer.alloc(FRAME_HEADER_BYTES + length);
      frame.writeUInt32LE(length, 0);
      for (let i = 4; i < frame.length; i++) frame[i] = 1 + rng.int(255);
      const fd = openSync(v, 'r+');
      try {
        writeSync(fd, frame, 0, written, at);
      } finally {
        closeSync(fd);
      }
      return `wrote the first ${written} of ${frame.length} bytes of a record after the last record of WAL segment ${rel(d, v)} (offset ${at})`;
    },
  },
  {
    // The state machine loses its last writes: kv/ goes back to a copy taken earlier in the same fault (the
    // member ran on in between). The WAL replays what it lacks, or, if the WAL was compacted past the copy, a
    // snapshot file is restored first. Only applied when asked for (applyDamage's `rollbackTo`).
    name: 'kv-rolled-back',
    expect: 'recovered',
    victims: (d) => (d.saved !== undefined && existsSync(d.saved.kvCopy) ? [d.saved.kvCopy] : []),
    apply: (v, _rng, d) => {
      rmSync(d.kvDir, { recursive: true, force: true });
      cpSync(v, d.kvDir, { recursive: true });
      return `replaced kv/ by its copy from ${d.saved?.takenAt ?? '?'} (the state machine lost every write since)`;
    },
  },
];

function eligibleFlipFrames(d: DataDirView, seg: string): WalFrame[] {
  const frames = walFrames(readFileSync(seg));
  return seg === d.segments[d.segments.length - 1] ? frames.slice(0, -1) : frames;
}

function lastSegmentWithRecordsPastPreamble(d: DataDirView): string[] {
  const last = d.segments[d.segments.length - 1];
  if (last === undefined) return [];
  return walFrames(readFileSync(last)).length > PREAMBLE_RECORDS ? [last] : [];
}

export function viewDataDir(dataDir: string, saved: SavedState | undefined): DataDirView {
  const kvDir = join(dataDir, 'kv');
  const pointer = join(kvDir, 'CURRENT');
  const name = existsSync(pointer) ? /^(db-\d+)\s*$/.exec(readFileSync(pointer, 'utf8'))?.[1] : undefined;
  const liveDb = name !== undefined && existsSync(join(kvDir, name)) ? join(kvDir, name) : undefined;
  const walDir = join(dataDir, 'wal');
  const segments = files(walDir, (n) => SEGMENT_NAME.test(n));
  return { dataDir, kvDir, liveDb, walDir, segments, saved };
}

export interface AppliedDamage {
  readonly name: DamageName;
  readonly expect: DamageExpectation;
  readonly victim: string; // relative to the data directory
  readonly detail: string;
}

/** Copies a stopped member's kv/ to `saveDir` (replacing an older copy): a later kv-rolled-back goes back to it. */
export function saveState(dataDir: string, saveDir: string, takenAt: string): SavedState {
  rmSync(saveDir, { recursive: true, force: true });
  mkdirSync(saveDir, { recursive: true });
  const kvCopy = join(saveDir, 'kv');
  cpSync(join(dataDir, 'kv'), kvCopy, { recursive: true });
  return { kvCopy, takenAt };
}

/**
 * Applies one seeded damage to a stopped member's data directory: the damages in a seeded order, the first
 * that has a victim here, the victim picked among those that exist. With `rollbackTo`, exactly kv-rolled-back
 * to that copy. Undefined: nothing applies.
 */
export function applyDamage(dataDir: string, rng: DamageRng, rollbackTo?: SavedState): AppliedDamage | undefined {
  const view = viewDataDir(dataDir, rollbackTo);
  const candidates = rollbackTo !== undefined ? DAMAGES.filter((d) => d.name === 'kv-rolled-back') : rng.shuffle(DAMAGES);
  for (const damage of candidates) {
    const victims = damage.victims(view);
    if (victims.length === 0) continue;
    const victim = rng.pick(victims);
    const detail = damage.apply(victim, rng, view);
    return { name: damage.name, expect: damage.expect, victim: rel(view, victim), detail };
  }
  return undefined;
}

/** How a start on a damaged directory went, as the harness saw it. */
export type StartResult =
  | { readonly kind: 'serving'; readonly afterMs: number; readonly output: string } // answered a status call
  | { readonly kind: 'exited'; readonly afterMs: number; readonly status: ExitStatus }
  | { readonly kind: 'silent'; readonly afterMs: number; readonly output: string }; // neither, within the limit

export interface StartVerdict {
  readonly outcome: string; // "recovered ..." or "refused: <line>" or what went wrong
  readonly failure: string | undefined; // set: the run fails
  readonly replace: boolean; // the member did not start: do the remedy (remove, wipe, re-add, start as existing)
}

/** The `msg` of each warn-or-worse pino line in `output` (what a start repaired), at most `max`. */
function warnings(output: string, max: number): string[] {
  const out: string[] = [];
  for (const line of output.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const o = JSON.parse(line) as { level?: unknown; msg?: unknown };
      if (typeof o.level === 'number' && o.level >= 40 && typeof o.msg === 'string' && !out.includes(o.msg)) out.push(o.msg);
    } catch {
      continue; // not a pino line (a line cut by the kill, or another process's output)
    }
    if (out.length >= max) break;
  }
  return out;
}

function lastLines(output: string, n: number): string {
  return output.trim().split('\n').slice(-n).join(' | ');
}

/** The refusal lines: what bin/raftkv.js prints for an error that stops the command. */
export function refusalLines(output: string): string[] {
  return output.split('\n').filter((l) => l.startsWith('raftkv: '));
}

/** True if the output shows the member got as far as serving (a refusal happens before). */
function servedSomething(output: string): boolean {
  return output.includes('"msg":"node started"') || output.includes('"msg":"serving"');
}

/** Judges a start on a damaged directory against the contract (see the top) and the damage's expectation. */
export function judgeStart(r: StartResult, expect: DamageExpectation): StartVerdict {
  switch (r.kind) {
    case 'serving': {
      const w = warnings(r.output, 3);
      const outcome = `recovered: serving after ${r.afterMs} ms${w.length > 0 ? ` (${w.join('; ')})` : ''}`;
      const failure = expect === 'refused' ? `started on a directory it must refuse (${outcome})` : undefined;
      return { outcome, failure, replace: false };
    }
    case 'exited': {
      const { code, signal, output } = r.status;
      const lines = refusalLines(output);
      const first = lines[0];
      if (code === 1 && signal === null && first !== undefined && !servedSomething(output)) {
        if (lines.length === 1 && first.includes(REFUSAL_REMEDY)) {
          const outcome = `refused: ${first}`;
          return { outcome, failure: expect === 'recovered' ? `refused a directory it must repair (${first})` : undefined, replace: true };
        }
        const what = lines.length === 1 ? 'the refusal does not name the remedy' : `${lines.length} refusal lines, not one`;
        return { outcome: `refused without the remedy: ${first}`, failure: `${what} ("${REFUSAL_REMEDY}"): ${lines.join(' / ')}`, replace: true };
      }
      const outcome = `exited with code ${String(code)}, signal ${String(signal)} after ${r.afterMs} ms`;
      return { outcome, failure: `${outcome}${servedSomething(output) ? ' (after it had started)' : ''}, not a refusal: ${lastLines(output, 3)}`, replace: true };
    }
    case 'silent': {
      const outcome = `neither served nor exited within ${r.afterMs} ms`;
      return { outcome, failure: `${outcome}: ${lastLines(r.output, 3)}`, replace: true };
    }
    default: {
      const never: never = r;
      throw new Error(`unknown start result ${JSON.stringify(never)}`);
    }
  }
}
