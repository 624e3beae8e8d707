// The state machine's snapshot file: a consistent dump of the LevelDB store, streamed, checksummed.
//
// Format (version 1), big-endian fixed-width integers:
//   magic        8 bytes  "RKVSNAP\0"
//   version      u32      1
//   headerLen    u32      length of the header
//   header       UTF-8 JSON {"index":N,"term":T,"confState":{"voters":[..],"learners":[..]},"members":[Member..]}
//   records*     uvarint keyLen (> 0) | key | uvarint valueLen | value   -- raw LevelDB pairs in key order
//   end          u8 0     (a keyLen of 0: no LevelDB key is empty)
//   count        u64      number of records
//   checksum     32 bytes SHA-256 of every byte before it
// Written as `<name>.tmp`, fsynced, renamed to `<name>`, directory fsynced. Names are
// `snapshot-<index, 20 digits>-<term, 20 digits>.snap`, so name order is (index, term) order.
// A reader checks the magic, the version, the framing, the count and the checksum; any mismatch or a
// truncated file is RaftKvError('DATA_CORRUPTION') naming the file and the offset.
import { createHash } from 'node:crypto';
import type { Hash } from 'node:crypto';
import { open, readdir, rename, rm } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { RaftKvError } from '../shared/errors.js';
import { fsyncDir } from '../shared/durable-file.js';
import type { Member } from '../shared/member.js';
import type { ConfState, SnapshotMetadata } from '../raft/types.js';

const MAGIC = Buffer.from('RKVSNAP\0', 'latin1');
const FORMAT_VERSION = 1;
const DIGEST_BYTES = 32;
const MAX_HEADER_BYTES = 16 * 1024 * 1024;
const IO_CHUNK_BYTES = 1024 * 1024;
const NAME_RE = /^snapshot-(\d{20})-(\d{20})\.snap$/;

/** What the header records besides the Raft metadata: the member table as of `index`. */
export interface SnapshotHeader extends SnapshotMetadata {
  readonly members: readonly Member[];
}

export function snapshotFileName(index: number, term: number): string {
  return `snapshot-${String(index).padStart(20, '0')}-${String(term).padStart(20, '0')}.snap`;
}

/** Snapshot files in `dir` (not .tmp), newest first. A missing directory has none. */
export async function listSnapshotFiles(dir: string): Promise<{ name: string; index: number; term: number }[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: { name: string; index: number; term: number }[] = [];
  for (const name of names) {
    const m = NAME_RE.exec(name);
    if (m?.[1] !== undefined && m[2] !== undefined) out.push({ name, index: Number(m[1]), term: Number(m[2]) });
  }
  return out.sort((a, b) => (a.name < b.name ? 1 : a.name > b.name ? -1 : 0));
}

/** Streams records into `<dir>/<name>.tmp`; `commit()` fsyncs, renames and fsyncs the directory. */
export class SnapshotFileWriter {
  private readonly hash: Hash = createHash('sha256');
  private buf = Buffer.allocUnsafe(IO_CHUNK_BYTES);
  private len = 0; // bytes buffered, not yet written
  private count = 0; // records written
  private done = false; // commit() or abort() ran

  private constructor(
    private readonly fh: FileHandle,
    readonly tmpPath: string,
    readonly path: string,
  ) {}

  static async create(dir: string, header: SnapshotHeader): Promise<SnapshotFileWriter> {
    const name = snapshotFileName(header.index, header.term);
    const path = join(dir, name);
    const tmpPath = `${path}.tmp`;
    const fh = await open(tmpPath, 'w');
    const w = new SnapshotFileWriter(fh, tmpPath, path);
    const json = Buffer.from(
      JSON.stringify({ index: header.index, term: header.term, confState: header.confState, members: header.members }),
      'utf8',
    );
    const fixed = Buffer.alloc(16);
    MAGIC.copy(fixed, 0);
    fixed.writeUInt32BE(FORMAT_VERSION, 8);
    fixed.writeUInt32BE(json.length, 12);
    await w.push(fixed);
    await w.push(json);
    return w;
  }

  private async flush(): Promise<void> {
    if (this.len === 0) return;
    const chunk = this.buf.subarray(0, this.len);
    this.hash.update(chunk);
    let off = 0;
    while (off < chunk.length) {
      const { bytesWritten } = await this.fh.write(chunk, off, chunk.length - off);
      off += bytesWritten;
    }
    this.len = 0;
  }

  private async push(b: Uint8Array): Promise<void> {
    await this.room(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }

  /** Makes room for n more buffered bytes (flushing first if needed). */
  private async room(n: number): Promise<void> {
    if (this.len + n <= this.buf.length) return;
    await this.flush();
    if (n > this.buf.length) this.buf = Buffer.allocUnsafe(n);
  }

  private varint(n: number): void {
    let v = n;
    while (v >= 0x80) {
      this.buf[this.len++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.len++] = v;
  }

  async record(key: Uint8Array, value: Uint8Array): Promise<void> {
    if (key.length === 0) throw new Error('snapshot record with an empty key');
    await this.room(16 + key.length + value.length);
    this.varint(key.length);
    this.buf.set(key, this.len);
    this.len += key.length;
    this.varint(value.length);
    this.buf.set(value, this.len);
    this.len += value.length;
    this.count++;
  }

  /** Finishes the file and makes it durable under its final name. Returns that path. */
  async commit(failpoint?: (point: 'snapshot-before-rename') => void): Promise<string> {
    const tail = Buffer.alloc(9);
    tail.writeUInt8(0, 0);
    tail.writeBigUInt64BE(BigInt(this.count), 1);
    await this.push(tail);
    await this.flush();
    await this.fh.write(this.hash.digest());
    await this.fh.sync();
    await this.fh.close();
    this.done = true;
    failpoint?.('snapshot-before-rename');
    await rename(this.tmpPath, this.path);
    await fsyncDir(join(this.path, '..'));
    return this.path;
  }

  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.fh.close();
    await rm(this.tmpPath, { force: true });
  }
}

function corrupt(path: string, offset: number, what: string): RaftKvError {
  return new RaftKvError('DATA_CORRUPTION', `snapshot ${path}: ${what} at offset ${offset}`);
}

/** Sequential, bounds-checked reader of a snapshot file that hashes what it reads. */
class SnapshotFileReader {
  private buf = Buffer.alloc(0);
  private start = 0; // next unread byte in buf
  private fileOffset = 0; // file offset of buf[0]
  private readOffset = 0; // next file offset to read from disk
  private readonly hash: Hash = createHash('sha256');
  private readonly bodyEnd: number; // file offset where the checksum starts

  constructor(
    private readonly fh: FileHandle,
    private readonly path: string,
    private readonly size: number,
  ) {
    this.bodyEnd = size - DIGEST_BYTES;
  }

  get offset(): number {
    return this.fileOffset + this.start;
  }

  /** Makes at least n unread bytes available, never past the checksum. */
  private async ensure(n: number): Promise<void> {
    if (this.buf.length - this.start >= n) return;
    if (this.offset + n > this.bodyEnd) throw corrupt(this.path, this.offset, 'truncated file');
    const keep = this.buf.subarray(this.start);
    const want = Math.max(n - keep.length, Math.min(IO_CHUNK_BYTES, this.bodyEnd - this.readOffset));
    const next = Buffer.allocUnsafe(keep.length + want);
    keep.copy(next, 0);
    let filled = keep.length;
    while (filled < next.length) {
      const { bytesRead } = await this.fh.read(next, filled, next.length - filled, this.readOffset);
      if (bytesRead === 0) throw corrupt(this.path, this.readOffset, 'file shrank while reading');
      this.hash.update(next.subarray(filled, filled + bytesRead));
      filled += bytesRead;
      this.readOffset += bytesRead;
    }
    this.fileOffset += this.start;
    this.buf = next;
    this.start = 0;
  }

  async raw(n: number): Promise<Buffer> {
    await this.ensure(n);
    const out = this.buf.subarray(this.start, this.start + n);
    this.start += n;
    return out;
  }

  async uvarint(): Promise<number> {
    await this.ensure(Math.min(8, this.bodyEnd - this.offset));
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      const byte = this.buf[this.start];
      if (byte === undefined) throw corrupt(this.path, this.offset, 'truncated varint');
      this.start++;
      result += (byte & 0x7f) * mul;
      if (byte < 0x80) {
        if (result > Number.MAX_SAFE_INTEGER) throw corrupt(this.path, this.offset, 'varint beyond 2^53');
        return result;
      }
      mul *= 0x80;
    }
    throw corrupt(this.path, this.offset, 'varint longer than 8 bytes');
  }

  /** Checks that the body was consumed exactly and the stored checksum matches. */
  async finish(): Promise<void> {
    if (this.offset !== this.bodyEnd) throw corrupt(this.path, this.offset, 'trailing bytes after the end marker');
    const stored = Buffer.alloc(DIGEST_BYTES);
    const { bytesRead } = await this.fh.read(stored, 0, DIGEST_BYTES, this.bodyEnd);
    if (bytesRead !== DIGEST_BYTES) throw corrupt(this.path, this.bodyEnd, 'truncated checksum');
    if (!this.hash.digest().equals(stored)) throw corrupt(this.path, this.bodyEnd, 'checksum mismatch');
  }
}

function parseHeader(path: string, json: Buffer): SnapshotHeader {
  let h: unknown;
  try {
    h = JSON.parse(json.toString('utf8'));
  } catch (err) {
    throw new RaftKvError('DATA_CORRUPTION', `snapshot ${path}: header is not JSON (${String(err)})`);
  }
  const bad = (): RaftKvError => new RaftKvError('DATA_CORRUPTION', `snapshot ${path}: malformed header`);
  if (typeof h !== 'object' || h === null) throw bad();
  const o = h as Record<string, unknown>;
  const isIds = (x: unknown): x is number[] => Array.isArray(x) && x.every((n) => Number.isSafeInteger(n));
  const cs = o['confState'] as Record<string, unknown> | undefined;
  if (!Number.isSafeInteger(o['index']) || !Number.isSafeInteger(o['term'])) throw bad();
  if (typeof cs !== 'object' || cs === null || !isIds(cs['voters']) || !isIds(cs['learners'])) throw bad();
  if (!Array.isArray(o['members'])) throw bad();
  const members: Member[] = [];
  for (const m of o['members'] as unknown[]) {
    const r = m as Record<string, unknown>;
    if (
      typeof m !== 'object' ||
      m === null ||
      !Number.isSafeInteger(r['id']) ||
      typeof r['peerAddress'] !== 'string' ||
      typeof r['clientAddress'] !== 'string' ||
      typeof r['learner'] !== 'boolean'
    ) {
      throw bad();
    }
    members.push({
      id: r['id'] as number,
      peerAddress: r['peerAddress'],
      clientAddress: r['clientAddress'],
      learner: r['learner'],
    });
  }
  const confState: ConfState = { voters: cs['voters'], learners: cs['learners'] };
  return { index: o['index'] as number, term: o['term'] as number, confState, members };
}

/**
 * Reads a whole snapshot file, calling `onRecords` with batches of records (if given), and verifies framing,
 * count and checksum. Throws DATA_CORRUPTION. The records passed before a failure must be discarded.
 * `lengthBytes`: read only that prefix of the file as the snapshot (one inside etcdctl's padded copy, backup-file.ts).
 */
export async function readSnapshotFile(
  path: string,
  onRecords?: (records: { key: Uint8Array; value: Uint8Array }[]) => Promise<void>,
  batchRecords = 10_000,
  lengthBytes?: number,
): Promise<SnapshotHeader> {
  const fh = await open(path, 'r');
  try {
    const size = Math.min(lengthBytes ?? Number.MAX_SAFE_INTEGER, (await fh.stat()).size);
    if (size < 16 + 9 + DIGEST_BYTES) throw corrupt(path, 0, `file of ${size} bytes is too short`);
    const r = new SnapshotFileReader(fh, path, size);
    const fixed = await r.raw(16);
    if (!fixed.subarray(0, 8).equals(MAGIC)) throw corrupt(path, 0, 'bad magic');
    const version = fixed.readUInt32BE(8);
    if (version !== FORMAT_VERSION) throw corrupt(path, 8, `unknown format version ${version}`);
    const headerLen = fixed.readUInt32BE(12);
    if (headerLen > MAX_HEADER_BYTES) throw corrupt(path, 12, `header length ${headerLen}`);
    const header = parseHeader(path, Buffer.from(await r.raw(headerLen)));
    let count = 0;
    let batch: { key: Uint8Array; value: Uint8Array }[] = [];
    for (;;) {
      const keyLen = await r.uvarint();
      if (keyLen === 0) break;
      const keyBytes = await r.raw(keyLen);
      // Copies (plain Uint8Arrays): the reader's buffer is reused.
      const key = onRecords === undefined ? keyBytes : new Uint8Array(keyBytes);
      const valueLen = await r.uvarint();
      const valueBytes = await r.raw(valueLen);
      const value = onRecords === undefined ? valueBytes : new Uint8Array(valueBytes);
      count++;
      if (onRecords !== undefined) {
        batch.push({ key, value });
        if (batch.length >= batchRecords) {
          await onRecords(batch);
          batch = [];
        }
      }
    }
    const countAt = r.offset;
    const stored = (await r.raw(8)).readBigUInt64BE(0);
    if (stored !== BigInt(count)) throw corrupt(path, countAt, `record count ${stored} != ${count} records read`);
    await r.finish();
    if (onRecords !== undefined && batch.length > 0) await onRecords(batch);
    return header;
  } finally {
    await fh.close();
  }
}

/** Checks a snapshot file (magic, framing, count, checksum) and returns its metadata; throws DATA_CORRUPTION. */
export async function verifySnapshotHeader(path: string): Promise<SnapshotHeader> {
  return readSnapshotFile(path);
}
