// Binary encoding of WAL records (the format is documented at the top of wal.ts).
import { entryTypeCode, entryTypeOfCode } from '../shared/entry-type-code.js';
import { crc32 } from 'node:zlib';
import type { ConfState, Entry, HardState, Index, NodeId, SnapshotMetadata } from '../raft/types.js';

export const WAL_MAGIC = 0x574b5252; // "RRKW" little-endian: the first bytes of every segment's header payload
export const WAL_FORMAT_VERSION = 1;
/** length u32 + crc u32 + type u8. */
export const FRAME_HEADER_BYTES = 9;
/** A record longer than this is a framing error (no entry is this large). */
export const MAX_RECORD_BYTES = 256 * 1024 * 1024;

export const RECORD_TYPE = { header: 1, entry: 2, hardState: 3, snapshot: 4, truncate: 5 } as const;
/** The one record of the last-segment file (not a segment record: inside a segment it is corruption). */
export const LAST_SEGMENT_RECORD_TYPE = 6;

export type SnapshotRecordKind = 'compact' | 'install';

export type WalRecord =
  | { readonly type: 'header'; readonly seq: number; readonly firstIndex: Index }
  | { readonly type: 'entry'; readonly entry: Entry }
  | { readonly type: 'hard-state'; readonly hardState: HardState }
  | { readonly type: 'snapshot'; readonly kind: SnapshotRecordKind; readonly metadata: SnapshotMetadata }
  | { readonly type: 'truncate'; readonly lastIndexKept: Index };

const TWO_32 = 0x1_0000_0000;

function assertU64(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`wal codec: ${what} ${n} is not a non-negative safe integer`);
}

function assertU32(n: number, what: string): void {
  if (!Number.isInteger(n) || n < 0 || n >= TWO_32) throw new Error(`wal codec: ${what} ${n} is not a u32`);
}

function putU64(buf: Buffer, offset: number, n: number): void {
  buf.writeUInt32LE(n % TWO_32, offset);
  buf.writeUInt32LE(Math.floor(n / TWO_32), offset + 4);
}

function getU64(buf: Buffer, offset: number): number {
  const n = buf.readUInt32LE(offset) + buf.readUInt32LE(offset + 4) * TWO_32;
  if (n > Number.MAX_SAFE_INTEGER) throw new WalDecodeError(`u64 at offset ${offset} exceeds 2^53`);
  return n;
}

/** A record whose checksum matched but whose payload does not parse: never a torn write. */
export class WalDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WalDecodeError';
  }
}

/** Allocates a framed record with `payloadBytes` of payload; the caller fills the payload then calls seal(). */
function frame(type: number, payloadBytes: number): Buffer {
  const buf = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payloadBytes);
  buf.writeUInt32LE(1 + payloadBytes, 0);
  buf.writeUInt8(type, 8);
  return buf;
}

function seal(buf: Buffer): Buffer {
  buf.writeUInt32LE(crc32(buf.subarray(8)), 4);
  return buf;
}

const P = FRAME_HEADER_BYTES; // payload offset inside a framed record

export function encodeHeader(seq: number, firstIndex: Index): Buffer {
  assertU64(seq, 'seq');
  assertU64(firstIndex, 'firstIndex');
  const buf = frame(RECORD_TYPE.header, 4 + 4 + 8 + 8);
  buf.writeUInt32LE(WAL_MAGIC, P);
  buf.writeUInt32LE(WAL_FORMAT_VERSION, P + 4);
  putU64(buf, P + 8, seq);
  putU64(buf, P + 16, firstIndex);
  return seal(buf);
}

const ENTRY_FIXED_BYTES = 8 + 8 + 1;

export function encodeEntry(e: Entry): Buffer {
  assertU64(e.index, 'index');
  assertU64(e.term, 'term');
  const buf = frame(RECORD_TYPE.entry, ENTRY_FIXED_BYTES + e.data.byteLength);
  putU64(buf, P, e.index);
  putU64(buf, P + 8, e.term);
  buf.writeUInt8(entryTypeCode(e.type), P + 16);
  buf.set(e.data, P + ENTRY_FIXED_BYTES);
  return seal(buf);
}

export function encodeHardState(hs: HardState): Buffer {
  assertU64(hs.term, 'term');
  assertU32(hs.vote, 'vote');
  assertU64(hs.commit, 'commit');
  const buf = frame(RECORD_TYPE.hardState, 8 + 4 + 8);
  putU64(buf, P, hs.term);
  buf.writeUInt32LE(hs.vote, P + 8);
  putU64(buf, P + 12, hs.commit);
  return seal(buf);
}

export function encodeSnapshot(kind: SnapshotRecordKind, m: SnapshotMetadata): Buffer {
  assertU64(m.index, 'index');
  assertU64(m.term, 'term');
  const { voters, learners } = m.confState;
  const buf = frame(RECORD_TYPE.snapshot, 1 + 8 + 8 + 4 + 4 * voters.length + 4 + 4 * learners.length);
  buf.writeUInt8(kind === 'install' ? 1 : 0, P);
  putU64(buf, P + 1, m.index);
  putU64(buf, P + 9, m.term);
  let o = P + 17;
  for (const ids of [voters, learners]) {
    buf.writeUInt32LE(ids.length, o);
    o += 4;
    for (const id of ids) {
      assertU32(id, 'node id');
      buf.writeUInt32LE(id, o);
      o += 4;
    }
  }
  return seal(buf);
}

export function encodeTruncate(lastIndexKept: Index): Buffer {
  assertU64(lastIndexKept, 'lastIndexKept');
  const buf = frame(RECORD_TYPE.truncate, 8);
  putU64(buf, P, lastIndexKept);
  return seal(buf);
}

/** The content of the last-segment file: magic u32 | version u32 | seq u64, framed like a segment record. */
export function encodeLastSegment(seq: number): Buffer {
  assertU64(seq, 'seq');
  const buf = frame(LAST_SEGMENT_RECORD_TYPE, 4 + 4 + 8);
  buf.writeUInt32LE(WAL_MAGIC, P);
  buf.writeUInt32LE(WAL_FORMAT_VERSION, P + 4);
  putU64(buf, P + 8, seq);
  return seal(buf);
}

/** The seq recorded in a last-segment file's bytes. Throws WalDecodeError if they are not exactly one such record. */
export function decodeLastSegment(buf: Buffer): number {
  const len = checkFrame(buf, 0);
  if (typeof len === 'string') throw new WalDecodeError(len);
  if (8 + len !== buf.length) throw new WalDecodeError(`${buf.length - 8 - len} bytes after the record`);
  const type = buf.readUInt8(8);
  if (type !== LAST_SEGMENT_RECORD_TYPE) throw new WalDecodeError(`record type ${type}, expected ${LAST_SEGMENT_RECORD_TYPE}`);
  if (len - 1 !== 16) throw new WalDecodeError(`payload of ${len - 1} bytes, expected 16`);
  const magic = buf.readUInt32LE(P);
  if (magic !== WAL_MAGIC) throw new WalDecodeError(`bad magic ${hex32(magic)}`);
  const version = buf.readUInt32LE(P + 4);
  if (version !== WAL_FORMAT_VERSION) throw new WalDecodeError(`unsupported format version ${version}`);
  return getU64(buf, P + 8);
}

export type FrameResult =
  | { readonly ok: true; readonly type: number; readonly payload: Buffer; readonly nextOffset: number }
  | { readonly ok: false; readonly reason: string };

/**
 * Checks the frame at `offset` (length in bounds, checksum) without decoding it: returns its length field
 * (type + payload bytes) or why it is bad. Allocation-light: recovery calls it once per record.
 */
export function checkFrame(buf: Buffer, offset: number): number | string {
  const remaining = buf.length - offset;
  if (remaining < FRAME_HEADER_BYTES) return `incomplete record header (${remaining} bytes to EOF)`;
  const len = buf.readUInt32LE(offset);
  if (len < 1 || len > MAX_RECORD_BYTES) return `bad record length ${len}`;
  if (len > remaining - 8) return `incomplete record (length ${len}, ${remaining - 8} bytes to EOF)`;
  const want = buf.readUInt32LE(offset + 4);
  const got = crc32(buf.subarray(offset + 8, offset + 8 + len));
  if (want !== got) return `bad checksum (stored ${hex32(want)}, computed ${hex32(got)})`;
  return len;
}

/** checkFrame, then the type and payload of a good frame. */
export function readFrame(buf: Buffer, offset: number): FrameResult {
  const len = checkFrame(buf, offset);
  if (typeof len === 'string') return { ok: false, reason: len };
  return { ok: true, type: buf.readUInt8(offset + 8), payload: buf.subarray(offset + 9, offset + 8 + len), nextOffset: offset + 8 + len };
}

/** Decodes a checksum-verified entry record in place: the payload is buf[payloadOffset, +payloadBytes). */
export function decodeEntryAt(buf: Buffer, payloadOffset: number, payloadBytes: number): Entry {
  if (payloadBytes < ENTRY_FIXED_BYTES) throw new WalDecodeError(`entry payload of ${payloadBytes} bytes, expected >= ${ENTRY_FIXED_BYTES}`);
  const code = buf.readUInt8(payloadOffset + 16);
  const type = entryTypeOfCode(code);
  if (type === undefined) throw new WalDecodeError(`unknown entry type ${code}`);
  return {
    index: getU64(buf, payloadOffset),
    term: getU64(buf, payloadOffset + 8),
    type,
    data: new Uint8Array(buf.buffer, buf.byteOffset + payloadOffset + ENTRY_FIXED_BYTES, payloadBytes - ENTRY_FIXED_BYTES),
  };
}

function hex32(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

/** Decodes a checksum-verified payload. Throws WalDecodeError if it does not parse. */
export function decodeRecord(type: number, payload: Buffer): WalRecord {
  const need = (n: number, exact: boolean): void => {
    if (exact ? payload.length !== n : payload.length < n) {
      throw new WalDecodeError(`record type ${type}: payload of ${payload.length} bytes, expected ${exact ? '' : '>= '}${n}`);
    }
  };
  switch (type) {
    case RECORD_TYPE.header: {
      need(24, true);
      const magic = payload.readUInt32LE(0);
      if (magic !== WAL_MAGIC) throw new WalDecodeError(`bad magic ${hex32(magic)}`);
      const version = payload.readUInt32LE(4);
      if (version !== WAL_FORMAT_VERSION) throw new WalDecodeError(`unsupported format version ${version}`);
      return { type: 'header', seq: getU64(payload, 8), firstIndex: getU64(payload, 16) };
    }
    case RECORD_TYPE.entry:
      return { type: 'entry', entry: decodeEntryAt(payload, 0, payload.length) };
    case RECORD_TYPE.hardState:
      need(20, true);
      return {
        type: 'hard-state',
        hardState: { term: getU64(payload, 0), vote: payload.readUInt32LE(8), commit: getU64(payload, 12) },
      };
    case RECORD_TYPE.snapshot: {
      need(25, false);
      const kindCode = payload.readUInt8(0);
      if (kindCode > 1) throw new WalDecodeError(`unknown snapshot record kind ${kindCode}`);
      let o = 17;
      const lists: NodeId[][] = [];
      for (let l = 0; l < 2; l++) {
        need(o + 4, false);
        const n = payload.readUInt32LE(o);
        o += 4;
        need(o + 4 * n, false);
        const ids: NodeId[] = [];
        for (let i = 0; i < n; i++) ids.push(payload.readUInt32LE(o + 4 * i));
        o += 4 * n;
        lists.push(ids);
      }
      need(o, true);
      const confState: ConfState = { voters: lists[0] ?? [], learners: lists[1] ?? [] };
      return {
        type: 'snapshot',
        kind: kindCode === 1 ? 'install' : 'compact',
        metadata: { index: getU64(payload, 1), term: getU64(payload, 9), confState },
      };
    }
    case RECORD_TYPE.truncate:
      need(8, true);
      return { type: 'truncate', lastIndexKept: getU64(payload, 0) };
    default:
      throw new WalDecodeError(`unknown record type ${type}`);
  }
}

export function assertNever(x: never): never {
  throw new Error(`unexpected value: ${String(x)}`);
}
