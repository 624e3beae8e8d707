// The MVCC history: every revision of every key, kept until compaction (etcd's "key" bucket, ordered by user
// key here instead of by revision, so a range at a past revision is one ordered scan and no in-memory index is
// needed: memory does not grow with the number of keys or revisions).
//
// LevelDB key:   'h' + escaped(user key) + 0x00 0x00 + u64 BE main revision + u32 BE sub revision
//   escaped(k):  k with each 0x00 byte written as 0x00 0xff. The terminator 0x00 0x00 sorts below any escaped
//                byte, so escaped keys keep the user keys' byte order and one key's revisions are contiguous,
//                oldest first.
// LevelDB value: u8 0x02 | flag tombstone | uvarint createRevision | uvarint version | uvarint lease | value
//                (a tombstone has create 0, version 0, lease 0 and no value)
//
// The MVCC record ('m' + "mvcc", schema.ts): u8 0x02 | uvarint revision | int compacted | int compactedOnDisk.
// `compacted` is the compaction revision reads obey (etcd's compactMainRev, -1 before any); `compactedOnDisk`
// the one whose deletions have all landed. compactedOnDisk < compacted after a restart means: resume.
import { RaftKvError } from '../shared/errors.js';
import { ByteReader, ByteWriter } from './codec.js';

export const PREFIX_HISTORY = 0x68; // 'h'

export const HISTORY_LO = Uint8Array.of(PREFIX_HISTORY);

export const HISTORY_HI = Uint8Array.of(PREFIX_HISTORY + 1);

const HISTORY_FORMAT_VERSION = 2;

const MVCC_FORMAT_VERSION = 2;

const SUFFIX_BYTES = 2 + 8 + 4; // terminator, main, sub

const TWO_32 = 0x1_0000_0000;

function garbage(what: string): RaftKvError {
  return new RaftKvError('DATA_CORRUPTION', `kv history: ${what}`);
}

/** 'h' + escaped(key) (no terminator): the start of every history key of `key` and of keys above it. */
function escapedPrefix(key: Uint8Array): Uint8Array {
  let zeros = 0;
  for (const b of key) if (b === 0) zeros++;
  const out = new Uint8Array(1 + key.length + zeros);
  out[0] = PREFIX_HISTORY;
  let j = 1;
  for (const b of key) {
    out[j++] = b;
    if (b === 0) out[j++] = 0xff;
  }
  return out;
}

/** The first history key of `key` (lowest revision): with `key` as a range start, the scan's lower bound. */
export function historyStart(key: Uint8Array): Uint8Array {
  const p = escapedPrefix(key);
  const out = new Uint8Array(p.length + 2);
  out.set(p);
  return out; // ... 0x00 0x00, then nothing: below every revision of `key`
}

export function historyKey(key: Uint8Array, main: number, sub: number): Uint8Array {
  const p = escapedPrefix(key);
  const out = new Uint8Array(p.length + SUFFIX_BYTES);
  out.set(p);
  const dv = new DataView(out.buffer, out.byteOffset + p.length + 2);
  dv.setUint32(0, Math.floor(main / TWO_32));
  dv.setUint32(4, main % TWO_32);
  dv.setUint32(8, sub);
  return out;
}

/** The user key and revision of a history key. */
export function parseHistoryKey(k: Uint8Array): { key: Uint8Array; main: number; sub: number } {
  if (k[0] !== PREFIX_HISTORY || k.length < 1 + SUFFIX_BYTES) throw garbage('malformed key');
  const end = k.length - SUFFIX_BYTES;
  const key: number[] = [];
  for (let i = 1; i < end; i++) {
    const b = k[i] ?? 0;
    key.push(b);
    if (b === 0) {
      if (k[i + 1] !== 0xff) throw garbage('bad escape');
      i++;
    }
  }
  if (k[end] !== 0 || k[end + 1] !== 0) throw garbage('missing terminator');
  const dv = new DataView(k.buffer, k.byteOffset + end + 2, 12);
  const main = dv.getUint32(0) * TWO_32 + dv.getUint32(4);
  if (!Number.isSafeInteger(main)) throw garbage('revision beyond 2^53');
  return { key: Uint8Array.from(key), main, sub: dv.getUint32(8) };
}

/** One revision of a key; `tombstone` marks a delete. */
export interface HistoryRecord {
  readonly tombstone: boolean;
  readonly createRevision: number;
  readonly version: number;
  readonly lease: number;
  readonly value: Uint8Array;
}

export function encodeHistoryRecord(r: HistoryRecord): Uint8Array {
  return new ByteWriter(16 + r.value.length)
    .u8(HISTORY_FORMAT_VERSION)
    .flag(r.tombstone)
    .uvarint(r.createRevision)
    .uvarint(r.version)
    .uvarint(r.lease)
    .raw(r.value)
    .finish();
}

export function decodeHistoryRecord(b: Uint8Array): HistoryRecord {
  const r = new ByteReader(b);
  const v = r.u8();
  if (v !== HISTORY_FORMAT_VERSION) throw garbage(`unknown record format ${v}`);
  const tombstone = r.flag();
  const createRevision = r.uvarint();
  const version = r.uvarint();
  const lease = r.uvarint();
  const value = r.rest();
  if (tombstone ? createRevision !== 0 || version !== 0 || value.length !== 0 : createRevision < 2 || version === 0) {
    throw garbage(`inconsistent record tombstone=${tombstone} create=${createRevision} version=${version}`);
  }
  return { tombstone, createRevision, version, lease, value };
}

export const TOMBSTONE: HistoryRecord = { tombstone: true, createRevision: 0, version: 0, lease: 0, value: new Uint8Array(0) };

/** The store's revision and compaction state. */
export interface MvccState {
  revision: number; // the current store revision: 1 on an empty store, +1 per transaction that changed something
  compacted: number; // reads below it fail with COMPACTED; -1 before the first compaction (as etcd's)
  compactedOnDisk: number; // every deletion of the compaction at this revision has landed
}

export const INITIAL_MVCC: Readonly<MvccState> = { revision: 1, compacted: -1, compactedOnDisk: -1 };

export function encodeMvcc(s: MvccState): Uint8Array {
  return new ByteWriter(24).u8(MVCC_FORMAT_VERSION).uvarint(s.revision).int(s.compacted).int(s.compactedOnDisk).finish();
}

export function decodeMvcc(b: Uint8Array): MvccState {
  const r = new ByteReader(b);
  const v = r.u8();
  if (v !== MVCC_FORMAT_VERSION) throw garbage(`unknown MVCC record format ${v}`);
  const revision = r.uvarint();
  const compacted = r.int();
  const compactedOnDisk = r.int();
  r.end();
  if (revision < 1 || compacted > revision || compactedOnDisk > compacted) {
    throw garbage(`inconsistent MVCC record revision=${revision} compacted=${compacted} onDisk=${compactedOnDisk}`);
  }
  return { revision, compacted, compactedOnDisk };
}
