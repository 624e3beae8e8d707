// The segmented write-ahead log: the durable side of the Raft log (entries, hard state, snapshot markers).
// Why one file of ~870 lines: the format (described below), its writer and its recovery reader, with the
// torn-write and corruption rules each reader step enforces, must change together; a split would separate them.
//
// ON-DISK FORMAT (version 1)
// A WAL is a directory of segment files named `<seq>-<firstIndex>.wal`, both 16 lower-case hex digits:
// `seq` numbers segments 1, 2, 3, ... with no gaps; `firstIndex` is the log's last index + 1 when the segment
// was cut (its first entry's index unless a truncation follows). The name alone cannot order segments (a
// truncation can make a later segment start at a lower index), hence the sequence number (etcd's scheme).
// A segment is a sequence of records, all integers little-endian:
//
//   length u32 | crc u32 | type u8 | payload (length - 1 bytes)
//
// `length` counts type + payload; `crc` is CRC-32 (zlib.crc32) over type + payload. Record types:
//   1 header     magic u32 0x574b5252 | version u32 = 1 | seq u64 | firstIndex u64   (first record of a segment)
//   2 entry      index u64 | term u64 | entryType u8 (0 normal, 1 conf-change) | data (rest of the payload)
//   3 hard state term u64 | vote u32 | commit u64
//   4 snapshot   kind u8 (0 compact, 1 install) | index u64 | term u64 | nVoters u32 | voters u32* |
//                nLearners u32 | learners u32*
//   5 truncate   lastIndexKept u64   (the entries after it are discarded: a conflicting suffix, §5.3)
// (u64 = two u32, low word first; values stay below 2^53.)
//
// Every segment starts with a preamble written to `<name>.tmp`, fsynced, renamed and the directory fsynced,
// so a segment exists complete or not at all: header, snapshot (compact) = the snapshot at the cut, hard
// state = the hard state at the cut. Hence the oldest remaining segment always carries the latest state
// from before it, and segments wholly below a durable snapshot can be deleted.
//
// Replay (recovery): segments in seq order; the log state is (snapshot, hard state, entries). An entry must
// have index lastIndex + 1 (anything else is a gap or a reorder); a compact marker drops the entries up to
// its index; an install marker resets the log to the snapshot; a truncate record drops the entries after
// lastIndexKept. Entries between the oldest segment's preamble snapshot and its firstIndex are unknown until
// a later snapshot marker covers them; if none does, a segment was lost: corruption.
//
// The last-segment file: `last-segment` in the same directory holds exactly one record, framed as above:
//   6 last segment  magic u32 0x574b5252 | version u32 = 1 | seq u64   (only in this file; in a segment: corruption)
// It records the seq of the newest segment. It is written (to `last-segment.tmp`, fsynced, renamed, directory
// fsynced) only after that segment's rename is durable: when the WAL is created, after every cut, and on open
// when it is missing or records an older seq. Segments are deleted oldest first and never the newest, so the
// segment it names exists, or a newer one does (a crash or a failed write before it was updated leaves it
// older: that only weakens the check, it is logged and caught up at the next cut or open). A directory
// written before this file existed has none: it gets one on its first open; code that predates the file
// ignores it (it is not a segment name), and the next open catches it up.
//
// Lost segments (a file deleted or misplaced while the member was stopped) are corruption, wherever they were:
// the first (entries below the oldest segment not covered by a snapshot marker, above), one in the middle (a
// sequence gap; each segment's firstIndex must follow the log before it), or the last (the newest segment's
// seq is below the one the last-segment file records; or no segment at all next to a last-segment file). The
// message names the missing segment (seq, and first index where the log says it) and the directory. A front
// segment below a durable snapshot is not lost: compaction deletes those (see the preamble above).
//
// Failure rules: a bad frame (short, bad length, bad checksum) in the LAST segment with no valid record after
// it up to EOF is a torn tail (a crash mid-write): it is truncated and reported through the logger. Any other
// bad frame, an undecodable record, a sequence gap, an index gap or a header that does not match its name or
// position is corruption: RaftKvError('DATA_CORRUPTION', '<file> at offset <n>: <what>'), nothing deleted.
// (A power loss that persists a later page but not an earlier one is reported as corruption, not as a torn
// tail: a crash of the process never does this, the page cache survives it.)
//
// Preallocation: the segment being written is extended (sparse, ftruncate) to segmentSizeBytes before its
// first record, so that an fdatasync does not also have to commit a new file size (measured here: 0.25 ->
// 0.20 ms per fdatasync with three members syncing at once). The zeros after the last record are its end: in
// the LAST segment, a frame that starts a run of zeros to EOF ends the log (no warning, nothing truncated;
// writing resumes there). A segment is trimmed to its records, durably, before the next one is cut (so only the
// last segment can end in zeros) and when the WAL closes.
//
// Writing: appends are encoded at once and buffered; one flush writes everything buffered with one positional
// write and one fdatasync (group commit), and resolves every sync() waiting on those records. A write stops at
// segmentSizeBytes: the rest goes to a new segment (a segment exceeds the size only when one record does, or
// when a new segment cannot be created). An install marker ends its segment. On a failed write or
// fdatasync (ENOSPC: DISK_FULL) the file is truncated back to its last durable size and the records stay
// buffered: the next sync() writes them again (after a failed fsync the page cache cannot be trusted).
import { REPLACE_MEMBER_REMEDY } from '../shared/remedies.js';
import * as path from 'node:path';
import { EMPTY_HARD_STATE } from '../raft/types.js';
import type { ConfState, Entry, HardState, Index, SnapshotMetadata } from '../raft/types.js';
import { RaftKvError } from '../shared/errors.js';
import { errnoCode, nodeFs } from './fs-like.js';
import type { FileHandleLike, FsLike } from './fs-like.js';
import {
  FRAME_HEADER_BYTES,
  MAX_RECORD_BYTES,
  RECORD_TYPE,
  WalDecodeError,
  assertNever,
  checkFrame,
  decodeEntryAt,
  decodeLastSegment,
  decodeRecord,
  encodeEntry,
  encodeHardState,
  encodeHeader,
  encodeLastSegment,
  encodeSnapshot,
  encodeTruncate,
} from './wal-codec.js';
import type { SnapshotRecordKind, WalRecord } from './wal-codec.js';
import { crc32 } from 'node:zlib';

export type WalLogger = (level: 'info' | 'warn', msg: string, fields?: object) => void;

export interface WalOptions {
  segmentSizeBytes?: number; // default 64 MiB
  logger?: WalLogger; // default: warnings as JSON lines on stderr
  fs?: FsLike; // default: node:fs/promises
  /** Only used when the directory holds no WAL: the ConfState of the snapshot at index 0 (bootstrap). */
  initialConfState?: ConfState;
  /** After every fdatasync of appended records: how long it took (metrics, the slow-fdatasync warning). */
  onSync?: (durationMs: number) => void;
}

export const DEFAULT_SEGMENT_SIZE_BYTES = 64 * 1024 * 1024;

const SEGMENT_NAME = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/;

/** Records the newest segment's seq (see the top); never matches SEGMENT_NAME. */
export const LAST_SEGMENT_FILE = 'last-segment';
const LAST_SEGMENT_TMP = `${LAST_SEGMENT_FILE}.tmp`;

/** What an operator can do about a lost segment (the end of every lost-segment message). */
const LOST_SEGMENT_REMEDY = `restore the missing segment file (from a backup), or ${REPLACE_MEMBER_REMEDY}`;

export function segmentName(seq: number, firstIndex: Index): string {
  return `${seq.toString(16).padStart(16, '0')}-${firstIndex.toString(16).padStart(16, '0')}.wal`;
}

interface Segment {
  readonly seq: number;
  readonly firstIndex: Index; // log last index + 1 when the segment was cut
  readonly path: string;
  bytes: number; // durable size
}

/** What the log holds after recovery. */
export interface RecoveredLog {
  readonly isNew: boolean; // the directory held no WAL: it was just created
  readonly snapshot: SnapshotMetadata;
  readonly hardState: HardState;
  readonly entries: Entry[]; // snapshot.index + 1 .. lastIndex, contiguous
}

/** The log's state after every record appended so far (what a preamble written now must say). */
interface StreamState {
  snapshot: SnapshotMetadata;
  hardState: HardState;
  lastIndex: Index;
}

interface PendingRecord {
  readonly buf: Buffer; // the framed record
  readonly after: StreamState; // the log's state once this record is applied
  readonly cutAfter: boolean; // start a new segment right after it (snapshot install)
}

interface Waiter {
  readonly target: number; // resolves once durableRecords >= target
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

const defaultLogger: WalLogger = (level, msg, fields) => {
  if (level === 'warn') process.stderr.write(`${JSON.stringify({ level, msg, ...fields })}\n`);
};

/** DATA_CORRUPTION naming the place; it ends with the remedy (a lost segment's message names its own first). */
function corruption(file: string, offset: number, what: string): RaftKvError {
  const remedy = what.includes(REPLACE_MEMBER_REMEDY) ? '' : `; ${REPLACE_MEMBER_REMEDY}`;
  return new RaftKvError('DATA_CORRUPTION', `${file} at offset ${offset}: ${what}${remedy}`);
}

/** Maps a write/sync failure: ENOSPC is an expected failure (DISK_FULL), anything else stays as thrown. */
function mapWriteError(err: unknown, file: string): unknown {
  if (errnoCode(err) === 'ENOSPC') return new RaftKvError('DISK_FULL', `wal: no space left on device writing ${file}`);
  return err;
}

export class Wal {
  private readonly dir: string;
  private readonly fs: FsLike;
  private readonly logger: WalLogger;
  private onSync: ((durationMs: number) => void) | undefined; // WalOptions.onSync (set once, in open)
  private readonly segmentSizeBytes: number;
  private readonly segments: Segment[]; // seq-ordered, contiguous seqs; the last one is open for appends
  private handle: FileHandleLike; // the last segment, open 'r+'
  private stream: StreamState; // state after every appended record (durable or not)
  private durableState: StreamState; // state after the last durable record (the preamble of the next cut)
  private pending: PendingRecord[] = []; // records not yet durable, in append order
  private appendedRecords = 0; // records ever appended (monotonic)
  private durableRecords = 0; // records durable (<= appendedRecords)
  private waiters: Waiter[] = []; // sync() callers, targets ascending
  private flushRunning = false; // one flush loop at a time
  private blockingSync = false; // the next write fdatasyncs on the calling thread (a sync({ blocking }) is waiting)
  private flushDone: Promise<void> = Promise.resolve(); // the running (or last) flush loop
  private segmentHasRecords = true; // the current segment holds more than its preamble (false right after a cut)
  private truncateNeeded = false; // a failed write may have left bytes past the durable size
  private allocatedBytes: number; // size of the current segment's file: its records then preallocated zeros
  private dirSyncNeeded = false; // a segment was renamed in but the directory fsync failed
  private recordedLastSeq = 0; // the seq the last-segment file durably records (0: no file)
  private closed = false;

  private constructor(
    dir: string,
    fs: FsLike,
    logger: WalLogger,
    segmentSizeBytes: number,
    segments: Segment[],
    handle: FileHandleLike,
    stream: StreamState,
    allocatedBytes: number,
  ) {
    this.allocatedBytes = allocatedBytes;
    this.dir = dir;
    this.fs = fs;
    this.logger = logger;
    this.segmentSizeBytes = segmentSizeBytes;
    this.segments = segments;
    this.handle = handle;
    this.stream = stream;
    this.durableState = { ...stream };
  }

  /** Opens (recovering) or creates the WAL in `dir`. Throws DATA_CORRUPTION without touching any file. */
  static async open(dir: string, opts: WalOptions = {}): Promise<{ wal: Wal; recovered: RecoveredLog }> {
    const fs = opts.fs ?? nodeFs;
    const logger = opts.logger ?? defaultLogger;
    const segmentSizeBytes = opts.segmentSizeBytes ?? DEFAULT_SEGMENT_SIZE_BYTES;
    if (!(segmentSizeBytes > 0)) throw new RaftKvError('INVALID_ARGUMENT', `wal: segmentSizeBytes ${segmentSizeBytes}`);
    await fs.mkdir(dir);
    const names = (await fs.readdir(dir)).sort();
    const tmpNames = names.filter((n) => n.endsWith('.wal.tmp'));
    // undefined: no last-segment file (a new directory, or one written before the file existed).
    const recordedSeq = names.includes(LAST_SEGMENT_FILE) ? await readLastSegment(fs, dir) : undefined;
    const found: Segment[] = [];
    for (const name of names) {
      const m = SEGMENT_NAME.exec(name);
      if (m === null) continue;
      found.push({ seq: parseInt(m[1] ?? '', 16), firstIndex: parseInt(m[2] ?? '', 16), path: path.join(dir, name), bytes: 0 });
    }
    found.sort((a, b) => a.seq - b.seq);

    let recovered: RecoveredLog;
    let segments: Segment[];
    let lastFileBytes: number;
    if (found.length === 0) {
      if (recordedSeq !== undefined) {
        throw corruption(
          path.join(dir, LAST_SEGMENT_FILE),
          0,
          `no segment file in ${dir}, but this file records segment seq ${recordedSeq}: every segment (up to seq ${recordedSeq}) is missing; ${LOST_SEGMENT_REMEDY}`,
        );
      }
      const snapshot: SnapshotMetadata = { index: 0, term: 0, confState: opts.initialConfState ?? { voters: [], learners: [] } };
      const created = await createSegment(fs, dir, 1, { snapshot, hardState: EMPTY_HARD_STATE, lastIndex: 0 });
      await created.handle.close();
      await syncDir(fs, dir);
      segments = [created.segment];
      lastFileBytes = created.segment.bytes;
      recovered = { isNew: true, snapshot, hardState: EMPTY_HARD_STATE, entries: [] };
      logger('info', 'wal: created', { dir });
    } else {
      const r = await replay(fs, found);
      const newest = found[found.length - 1];
      if (newest !== undefined && recordedSeq !== undefined && newest.seq < recordedSeq) {
        const lastIndex = r.snapshot.index + r.entries.length;
        const next = newest.seq + 1;
        const more = recordedSeq > next ? ` and the segments after it up to seq ${recordedSeq}` : '';
        throw corruption(
          newest.path,
          newest.bytes,
          `the log ends here at index ${lastIndex}, but ${LAST_SEGMENT_FILE} records segment seq ${recordedSeq}: ` +
            `segment ${segmentName(next, lastIndex + 1)} (seq ${next}, first index ${lastIndex + 1})${more} is missing from ${dir} ` +
            `(and with it the entries from index ${lastIndex + 1} on); ${LOST_SEGMENT_REMEDY}`,
        );
      }
      if (r.torn !== undefined) {
        const { segment, offset, reason } = r.torn;
        logger('warn', 'wal: truncating torn tail', { file: segment.path, offset, reason, bytesDropped: r.torn.fileBytes - offset });
        const h = await fs.open(segment.path, 'r+');
        try {
          await h.truncate(offset);
          await h.datasync();
        } finally {
          await h.close();
        }
      }
      segments = found;
      lastFileBytes = r.torn !== undefined ? r.torn.offset : r.lastFileBytes;
      recovered = { isNew: false, snapshot: r.snapshot, hardState: r.hardState, entries: r.entries };
    }
    for (const t of tmpNames) {
      logger('info', 'wal: removing an unfinished segment', { file: t });
      await fs.unlink(path.join(dir, t));
    }
    if (names.includes(LAST_SEGMENT_TMP)) await fs.unlink(path.join(dir, LAST_SEGMENT_TMP)); // an unfinished update
    const last = segments[segments.length - 1];
    if (last === undefined) throw new Error('wal: no segment after open');
    const handle = await fs.open(last.path, 'r+');
    const lastIndex = recovered.snapshot.index + recovered.entries.length;
    const wal = new Wal(dir, fs, logger, segmentSizeBytes, segments, handle, {
      snapshot: recovered.snapshot,
      hardState: recovered.hardState,
      lastIndex,
    }, lastFileBytes);
    wal.recordedLastSeq = recordedSeq ?? 0;
    wal.onSync = opts.onSync;
    await wal.recordLastSegment();
    await wal.deleteObsoleteSegments();
    return { wal, recovered };
  }

  appendEntry(e: Entry): void {
    const buf = encodeEntry(e);
    this.stream.lastIndex = e.index;
    this.push(buf, false);
  }

  appendHardState(hs: HardState): void {
    const buf = encodeHardState(hs);
    this.stream.hardState = hs;
    this.push(buf, false);
  }

  appendSnapshot(kind: SnapshotRecordKind, metadata: SnapshotMetadata): void {
    const buf = encodeSnapshot(kind, metadata);
    this.stream.snapshot = metadata;
    if (kind === 'install') this.stream.lastIndex = metadata.index;
    // After an install, a new segment whose preamble is the snapshot makes every older segment obsolete.
    this.push(buf, kind === 'install');
  }

  appendTruncate(lastIndexKept: Index): void {
    const buf = encodeTruncate(lastIndexKept);
    this.stream.lastIndex = lastIndexKept;
    this.push(buf, false);
  }

  /**
   * Group commit: resolves once every record appended before this call is durable. `blocking`: the next
   * fdatasync runs on the calling thread instead of the thread pool, which saves two thread wake-ups when the
   * caller has nothing else to do meanwhile (a follower about to acknowledge); the event loop stalls for it.
   */
  sync(opts: { readonly blocking?: boolean } = {}): Promise<void> {
    if (this.closed) return Promise.reject(new Error('wal: closed'));
    const target = this.appendedRecords;
    if (this.durableRecords >= target) return Promise.resolve();
    if (opts.blocking === true) this.blockingSync = true;
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ target, resolve, reject });
      this.kick();
    });
  }

  /** Flushes what is buffered (errors propagate) and closes the segment file. */
  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.sync();
    } finally {
      await this.flushDone; // never rejects; the loop must not touch the handle after it is closed
      this.closed = true;
      await this.trimPreallocation().catch((err: unknown) => {
        // Harmless: the zeros after the last record end the log on the next open.
        this.logger('warn', 'wal: trimming the preallocated tail on close failed', { file: this.currentSegment().path, error: String(err) });
      });
      await this.handle.close();
    }
  }

  stats(): { segments: number; bytes: number } {
    let bytes = 0;
    for (const s of this.segments) bytes += s.bytes;
    return { segments: this.segments.length, bytes };
  }

  /** Segment file names, oldest first (for tests and status). */
  segmentFiles(): string[] {
    return this.segments.map((s) => path.basename(s.path));
  }

  /** Queues a record; call after updating this.stream to the state the record leads to. */
  private push(buf: Buffer, cutAfter: boolean): void {
    if (this.closed) throw new Error('wal: append after close');
    this.pending.push({ buf, after: { ...this.stream }, cutAfter });
    this.appendedRecords++;
  }

  /**
   * How many leading pending records go into the current segment's next write: those that fit in it, at
   * least one if it holds nothing but its preamble, 0 if it is full; a write ends after a record that asks
   * for a cut.
   */
  private recordsForNextWrite(): number {
    let room = this.segmentSizeBytes - this.currentSegment().bytes;
    let n = 0;
    for (const r of this.pending) {
      if (r.buf.length > room && (n > 0 || this.segmentHasRecords)) break;
      room -= r.buf.length;
      n++;
      if (r.cutAfter) break;
    }
    return n;
  }

  private kick(): void {
    if (this.flushRunning) return;
    this.flushRunning = true;
    this.flushDone = this.flushLoop().catch((err: unknown) => {
      // A bug (flushLoop handles I/O failures itself): fail every waiter rather than leave it hanging.
      this.flushRunning = false;
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w.reject(err);
    });
  }

  /** Never rejects: failures reject the waiters. Clears flushRunning synchronously when it stops. */
  private async flushLoop(): Promise<void> {
    for (;;) {
      if (this.pending.length === 0) {
        this.flushRunning = false;
        return;
      }
      let count = this.recordsForNextWrite();
      if (count === 0) {
        // The current segment is full: start a new one (if that fails, write into this one anyway).
        await this.tryCut();
        count = this.recordsForNextWrite();
        if (count === 0) {
          // No new segment: this one grows past its size (up to the next forced cut, if any).
          const cutAt = this.pending.findIndex((r) => r.cutAfter);
          count = cutAt >= 0 ? cutAt + 1 : this.pending.length;
        }
      }
      const records = this.pending.slice(0, count);
      try {
        await this.writeBatch(records);
      } catch (err) {
        // The records stay pending: the next sync() writes them again.
        const mapped = mapWriteError(err, this.currentSegment().path);
        const waiters = this.waiters;
        this.waiters = [];
        for (const w of waiters) w.reject(mapped);
        this.flushRunning = false;
        return;
      }
      this.pending.splice(0, count);
      this.durableRecords += count;
      const last = records[records.length - 1];
      if (last === undefined) throw new Error('wal: empty write');
      this.durableState = last.after;
      // Housekeeping before the waiters resume, so that compact()/applySnapshot() return with it done.
      if (last.cutAfter || this.currentSegment().bytes >= this.segmentSizeBytes) await this.tryCut();
      await this.deleteObsoleteSegments();
      while (this.waiters.length > 0 && (this.waiters[0]?.target ?? Infinity) <= this.durableRecords) {
        this.waiters.shift()?.resolve();
      }
    }
  }

  /** Cuts a new segment after the last durable record; on failure keeps the current one (logged). */
  private async tryCut(): Promise<void> {
    try {
      await this.cut(this.durableState);
    } catch (err) {
      // The current segment stays valid and open: appends continue in it; the next full write cuts again.
      this.logger('warn', 'wal: cutting a new segment failed', { error: String(err) });
    }
  }

  private currentSegment(): Segment {
    const s = this.segments[this.segments.length - 1];
    if (s === undefined) throw new Error('wal: no current segment');
    return s;
  }

  /** Writes the batch at the durable end of the current segment and fdatasyncs it. */
  private async writeBatch(records: readonly PendingRecord[]): Promise<void> {
    const seg = this.currentSegment();
    if (this.truncateNeeded) {
      this.allocatedBytes = seg.bytes;
      await this.handle.truncate(seg.bytes);
      this.truncateNeeded = false;
    }
    if (this.dirSyncNeeded) {
      await syncDir(this.fs, this.dir);
      this.dirSyncNeeded = false;
    }
    const first = records[0];
    const buf = records.length === 1 && first !== undefined ? first.buf : Buffer.concat(records.map((r) => r.buf));
    try {
      const end = seg.bytes + buf.length;
      if (end > this.allocatedBytes) {
        const size = Math.max(end, this.segmentSizeBytes);
        this.allocatedBytes = size; // at worst the file is smaller: the write extends it
        await this.handle.truncate(size);
      }
      let written = 0;
      while (written < buf.length) {
        const { bytesWritten } = await this.handle.write(buf, written, buf.length - written, seg.bytes + written);
        if (!(bytesWritten > 0)) throw new Error(`wal: write returned ${bytesWritten}`);
        written += bytesWritten;
      }
      const blocking = this.blockingSync && this.handle.datasyncBlocking !== undefined;
      this.blockingSync = false;
      const syncStartMs = performance.now();
      if (blocking) this.handle.datasyncBlocking?.();
      else await this.handle.datasync();
      this.onSync?.(performance.now() - syncStartMs);
    } catch (err) {
      // Whatever reached the file past the durable size is not accepted: cut it off (or on the next try).
      this.truncateNeeded = true;
      this.allocatedBytes = seg.bytes;
      try {
        await this.handle.truncate(seg.bytes);
        this.truncateNeeded = false;
      } catch (truncErr) {
        this.logger('warn', 'wal: truncating after a failed write failed; retried before the next write', {
          file: seg.path,
          error: String(truncErr),
        });
      }
      throw err;
    }
    seg.bytes += buf.length;
    this.segmentHasRecords = true;
  }

  /** Starts a new segment whose preamble is `state` (the state after the last flushed record). */
  private async cut(state: StreamState): Promise<void> {
    const prev = this.currentSegment();
    // Durably, before the next segment exists: only the last segment may end in zeros.
    if (await this.trimPreallocation()) await this.handle.datasync();
    const { segment, handle } = await createSegment(this.fs, this.dir, prev.seq + 1, state);
    // Renamed in: from here on the new segment is the log's tail, whatever fails next.
    const old = this.handle;
    this.handle = handle;
    this.allocatedBytes = segment.bytes;
    this.segments.push(segment);
    this.segmentHasRecords = false;
    this.dirSyncNeeded = true;
    await old.close().catch((err: unknown) => {
      this.logger('warn', 'wal: closing the previous segment failed', { file: prev.path, error: String(err) });
    });
    await syncDir(this.fs, this.dir); // on failure: retried by the next write, before it is reported durable
    this.dirSyncNeeded = false;
    await this.recordLastSegment();
  }

  /**
   * Brings the last-segment file up to the current segment (whose rename must be durable). A failure is
   * logged, not thrown: the file then records an older seq, which only weakens the lost-segment check until
   * the next cut or open catches it up.
   */
  private async recordLastSegment(): Promise<void> {
    const seq = this.currentSegment().seq;
    if (this.recordedLastSeq >= seq) return;
    try {
      await writeLastSegment(this.fs, this.dir, seq);
      this.recordedLastSeq = seq;
    } catch (err) {
      this.logger('warn', 'wal: recording the last segment failed; retried at the next cut or open', {
        file: path.join(this.dir, LAST_SEGMENT_FILE),
        seq,
        error: String(err),
      });
    }
  }

  /** Cuts the current segment's file back to its records; true if it was longer. */
  private async trimPreallocation(): Promise<boolean> {
    const seg = this.currentSegment();
    if (this.allocatedBytes <= seg.bytes) return false;
    this.allocatedBytes = seg.bytes;
    await this.handle.truncate(seg.bytes);
    return true;
  }

  /** Deletes, oldest first, the segments wholly below the durable snapshot. */
  private async deleteObsoleteSegments(): Promise<void> {
    if (this.dirSyncNeeded) return;
    let keepFrom = 0; // the largest k with segments[k].firstIndex - 1 <= durable snapshot index
    for (let k = 0; k < this.segments.length; k++) {
      const s = this.segments[k];
      if (s !== undefined && s.firstIndex - 1 <= this.durableState.snapshot.index) keepFrom = k;
    }
    if (keepFrom === 0) return;
    let deleted = 0;
    for (let k = 0; k < keepFrom; k++) {
      const s = this.segments[0];
      if (s === undefined) break;
      try {
        await this.fs.unlink(s.path);
      } catch (err) {
        this.logger('warn', 'wal: deleting an obsolete segment failed', { file: s.path, error: String(err) });
        break;
      }
      this.segments.shift();
      deleted++;
    }
    if (deleted > 0) {
      try {
        await syncDir(this.fs, this.dir);
      } catch (err) {
        this.logger('warn', 'wal: fsync of the directory after deleting segments failed', { error: String(err) });
      }
      this.logger('info', 'wal: deleted obsolete segments', { count: deleted });
    }
  }
}

/** Writes all of buf at `position`, looping over short writes. */
async function writeFully(handle: FileHandleLike, buf: Buffer, position: number): Promise<void> {
  let written = 0;
  while (written < buf.length) {
    const { bytesWritten } = await handle.write(buf, written, buf.length - written, position + written);
    if (!(bytesWritten > 0)) throw new Error(`wal: write returned ${bytesWritten}`);
    written += bytesWritten;
  }
}

/** The seq the last-segment file in `dir` records; DATA_CORRUPTION if it does not decode. */
async function readLastSegment(fs: FsLike, dir: string): Promise<number> {
  const file = path.join(dir, LAST_SEGMENT_FILE);
  const raw = await fs.readFile(file);
  const buf = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  try {
    return decodeLastSegment(buf);
  } catch (err) {
    if (err instanceof WalDecodeError) {
      throw corruption(file, 0, `${err.message} (this file records the newest segment's seq; it is written whole or not at all)`);
    }
    throw err;
  }
}

/** Replaces the last-segment file with one recording `seq`: tmp, fsync, rename, directory fsync. */
async function writeLastSegment(fs: FsLike, dir: string, seq: number): Promise<void> {
  const file = path.join(dir, LAST_SEGMENT_FILE);
  const tmp = path.join(dir, LAST_SEGMENT_TMP);
  const handle = await fs.open(tmp, 'w');
  try {
    await writeFully(handle, encodeLastSegment(seq), 0);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.rename(tmp, file); // a leftover tmp after a failure is removed by the next open
  await syncDir(fs, dir);
}

async function syncDir(fs: FsLike, dir: string): Promise<void> {
  const h = await fs.open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

/**
 * Writes `<name>.tmp` with the preamble, fsyncs it and renames it in; the returned handle (still open on the
 * renamed file) is where appends go. The caller fsyncs the directory. Throws before the rename on failure.
 */
async function createSegment(
  fs: FsLike,
  dir: string,
  seq: number,
  state: StreamState,
): Promise<{ segment: Segment; handle: FileHandleLike }> {
  const firstIndex = state.lastIndex + 1;
  const file = path.join(dir, segmentName(seq, firstIndex));
  const tmp = `${file}.tmp`;
  const preamble = Buffer.concat([
    encodeHeader(seq, firstIndex),
    encodeSnapshot('compact', state.snapshot),
    encodeHardState(state.hardState),
  ]);
  let handle: FileHandleLike | undefined;
  try {
    handle = await fs.open(tmp, 'w');
    await writeFully(handle, preamble, 0);
    await handle.sync();
    await fs.rename(tmp, file);
  } catch (err) {
    await handle?.close();
    await fs.unlink(tmp).catch((unlinkErr: unknown) => {
      if (errnoCode(unlinkErr) !== 'ENOENT') throw unlinkErr;
    });
    throw mapWriteError(err, tmp);
  }
  return { segment: { seq, firstIndex, path: file, bytes: preamble.length }, handle };
}

interface ReplayResult {
  snapshot: SnapshotMetadata;
  hardState: HardState;
  entries: Entry[];
  torn: { segment: Segment; offset: number; reason: string; fileBytes: number } | undefined;
  lastFileBytes: number; // size of the last segment's file (records, then any preallocated zeros)
}

const VALID_TYPES = new Set<number>(Object.values(RECORD_TYPE));

const ZERO_CHUNK = Buffer.alloc(64 * 1024);

/** The index after the last non-zero byte of buf (0 if all zeros); compares in chunks (memcmp), then bytes. */
function endOfNonZero(buf: Buffer): number {
  let end = buf.length;
  while (end > 0) {
    const start = Math.max(0, end - ZERO_CHUNK.length);
    if (buf.compare(ZERO_CHUNK, 0, end - start, start, end) !== 0) break;
    end = start;
  }
  while (end > 0 && buf[end - 1] === 0) end--;
  return end;
}

/** True if some offset >= from starts a well-framed record with a matching checksum. */
function validRecordAfter(buf: Buffer, from: number, nonZeroEnd: number): boolean {
  // A record's length field is not zero, so no record starts at or after nonZeroEnd.
  for (let p = from; p < nonZeroEnd && p + FRAME_HEADER_BYTES <= buf.length; p++) {
    const len = buf.readUInt32LE(p);
    if (len < 1 || len > MAX_RECORD_BYTES || len > buf.length - p - 8) continue;
    if (!VALID_TYPES.has(buf.readUInt8(p + 8))) continue;
    if (crc32(buf.subarray(p + 8, p + 8 + len)) === buf.readUInt32LE(p + 4)) return true;
  }
  return false;
}

/** Reads and checks every segment; throws DATA_CORRUPTION (changing nothing) or returns the log state. */
async function replay(fs: FsLike, segments: Segment[]): Promise<ReplayResult> {
  let snapshot: SnapshotMetadata = { index: 0, term: 0, confState: { voters: [], learners: [] } };
  let hardState: HardState = EMPTY_HARD_STATE;
  let base = 0; // entries (snapshot.index, base] are unknown (in segments before the oldest); (base, lastIndex] known
  let entries: Entry[] = []; // base + 1 .. lastIndex
  let torn: ReplayResult['torn'];
  let lastFileBytes = 0;
  const lastIndex = (): Index => base + entries.length;

  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i];
    if (seg === undefined) break;
    const prev = segments[i - 1];
    if (prev !== undefined && seg.seq !== prev.seq + 1) {
      const next = prev.seq + 1;
      const more = seg.seq > next + 1 ? ` and the segments after it up to seq ${seg.seq - 1}` : '';
      throw corruption(
        seg.path,
        0,
        `segment sequence gap: expected seq ${next} after ${path.basename(prev.path)}: segment ${segmentName(next, lastIndex() + 1)} ` +
          `(seq ${next}, first index ${lastIndex() + 1})${more} is missing from ${path.dirname(seg.path)}; ${LOST_SEGMENT_REMEDY}`,
      );
    }
    const raw = await fs.readFile(seg.path);
    const buf = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength); // no copy
    const isLast = i === segments.length - 1;
    if (isLast) lastFileBytes = buf.length;
    const nonZeroEnd = isLast ? endOfNonZero(buf) : buf.length;
    let end = buf.length; // where this segment's records end
    let offset = 0;
    let sawHeader = false;
    while (offset < end) {
      if (offset >= nonZeroEnd && sawHeader) {
        end = offset; // the preallocated zeros after the last record
        break;
      }
      const len = checkFrame(buf, offset);
      if (typeof len === 'string') {
        if (isLast && sawHeader && !validRecordAfter(buf, offset + 1, nonZeroEnd)) {
          torn = { segment: seg, offset, reason: len, fileBytes: buf.length };
          break;
        }
        throw corruption(seg.path, offset, len);
      }
      const nextOffset = offset + 8 + len;
      const type = buf.readUInt8(offset + 8);
      if (type === RECORD_TYPE.entry && sawHeader) {
        // The hot path, without the record wrapper: 100,000 entries must replay in well under a second.
        let e: Entry;
        try {
          e = decodeEntryAt(buf, offset + FRAME_HEADER_BYTES, len - 1);
        } catch (err) {
          if (err instanceof WalDecodeError) throw corruption(seg.path, offset, err.message);
          throw err;
        }
        if (e.index !== lastIndex() + 1) throw corruption(seg.path, offset, `entry index ${e.index} does not follow last index ${lastIndex()}`);
        entries.push(e);
        offset = nextOffset;
        continue;
      }
      let rec: WalRecord;
      try {
        rec = decodeRecord(type, buf.subarray(offset + FRAME_HEADER_BYTES, nextOffset));
      } catch (err) {
        if (err instanceof WalDecodeError) throw corruption(seg.path, offset, err.message);
        throw err;
      }
      const fail = (what: string): RaftKvError => corruption(seg.path, offset, what);
      if (!sawHeader) {
        if (rec.type !== 'header') throw fail(`the first record is a ${rec.type}, not a segment header`);
        if (rec.seq !== seg.seq || rec.firstIndex !== seg.firstIndex) {
          throw fail(`header says seq ${rec.seq} first index ${rec.firstIndex}, the file name says seq ${seg.seq} first index ${seg.firstIndex}`);
        }
        if (i === 0) {
          base = rec.firstIndex - 1;
        } else if (rec.firstIndex !== lastIndex() + 1) {
          throw fail(`segment out of order: it starts at index ${rec.firstIndex} but the log before it ends at ${lastIndex()}`);
        }
        sawHeader = true;
        offset = nextOffset;
        continue;
      }
      switch (rec.type) {
        case 'header':
          throw fail('a segment header in the middle of a segment');
        case 'entry': {
          const e = rec.entry;
          if (e.index !== lastIndex() + 1) throw fail(`entry index ${e.index} does not follow last index ${lastIndex()}`);
          entries.push(e);
          break;
        }
        case 'hard-state':
          hardState = rec.hardState;
          break;
        case 'snapshot': {
          const m = rec.metadata;
          if (m.index < snapshot.index) throw fail(`snapshot marker at ${m.index} is below the snapshot at ${snapshot.index}`);
          if (rec.kind === 'install') {
            snapshot = m;
            base = m.index;
            entries = [];
            break;
          }
          if (m.index > lastIndex()) throw fail(`compaction marker at ${m.index} is past the last index ${lastIndex()}`);
          if (m.index > base) {
            const t = entries[m.index - base - 1]?.term;
            if (t !== m.term) throw fail(`compaction marker at ${m.index} has term ${m.term}, the entry has term ${t}`);
            entries = entries.slice(m.index - base);
            base = m.index;
          }
          snapshot = m;
          break;
        }
        case 'truncate': {
          const t = rec.lastIndexKept;
          if (t < snapshot.index || t > lastIndex()) {
            throw fail(`truncation after ${t} outside the log (${snapshot.index}, ${lastIndex()}]`);
          }
          if (t >= base) entries.length = t - base;
          else {
            base = t;
            entries = [];
          }
          break;
        }
        default:
          assertNever(rec);
      }
      offset = nextOffset;
    }
    if (!sawHeader) throw corruption(seg.path, 0, 'empty segment (no header)');
    seg.bytes = torn !== undefined && torn.segment === seg ? torn.offset : end;
  }
  if (base > snapshot.index) {
    const oldest = segments[0];
    const lost = oldest !== undefined && oldest.seq > 1 ? `segment seq ${oldest.seq - 1}, ending at index ${base},` : `a segment ending at index ${base}`;
    throw corruption(
      oldest?.path ?? '?',
      0,
      `entries ${snapshot.index + 1}..${base} are missing: a segment before this one was lost ` +
        `(${lost} is missing from ${oldest !== undefined ? path.dirname(oldest.path) : '?'}, and no snapshot marker covers it); ${LOST_SEGMENT_REMEDY}`,
    );
  }
  return { snapshot, hardState, entries, torn, lastFileBytes };
}
