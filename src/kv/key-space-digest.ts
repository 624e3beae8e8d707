// A running digest of the key space: the multiset of (key, createRevision, modRevision, version, lease, value) records,
// kept up to date by every apply and stored in the same LevelDB batch as the applied index. It is a function
// of the applied log prefix alone, so every member has the same digest at the same applied index; and it is
// a function of the records alone, so a full scan of LevelDB must reproduce it. A scan that does not (a bit
// flip inside a table, a lost table file, keys LevelDB no longer finds) is corruption, found before the
// member serves (at open) and while it runs (the periodic check), instead of being served as absence.
//
// Each record hashes to two 32-bit lanes in one pass over its bytes, four at a time (a murmur3 block step for
// one lane, FNV-style for the other, from different starts, then murmur3's finaliser); the digest is their sums
// mod 2^32 plus the record count, so adding and removing a record are O(record) and order does not matter. It
// detects accidents (the disk, a bug), not an adversary. (A scan of 1M records of 256 bytes spends ~0.4 s here.)
//
// Stored format (meta key 'm' + "digest"): u8 version 1 | uvarint lane1 | uvarint lane2 | uvarint count.
import type { StoredValue } from './codec.js';
import { ByteReader, ByteWriter } from './codec.js';
import { RaftKvError } from '../shared/errors.js';

const DIGEST_RECORD_VERSION = 1;
const FNV_PRIME = 0x01000193;
const LANE1_OFFSET = 0x811c9dc5; // FNV-1a's offset basis
const LANE2_OFFSET = 0x9e3779b9; // another start, so the lanes are independent

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const M1 = 0xcc9e2d51; // murmur3's word constants
const M2 = 0x1b873593;

/** Both lanes over `b`, four bytes at a time (murmur3's block step); the tail byte by byte. */
function mixBytes(lanes: Lanes, b: Uint8Array): void {
  let h1 = lanes.h1;
  let h2 = lanes.h2;
  const end = b.length & ~3;
  for (let i = 0; i < end; i += 4) {
    const w = (b[i] as number) | ((b[i + 1] as number) << 8) | ((b[i + 2] as number) << 16) | ((b[i + 3] as number) << 24);
    let k = Math.imul(w, M1);
    k = Math.imul((k << 15) | (k >>> 17), M2);
    h1 ^= k;
    h1 = Math.imul((h1 << 13) | (h1 >>> 19), 5) + 0xe6546b64;
    h2 = Math.imul(h2 ^ k, FNV_PRIME);
  }
  for (let i = end; i < b.length; i++) {
    const k = b[i] as number;
    h1 = Math.imul(h1 ^ k, FNV_PRIME);
    h2 = Math.imul(h2 ^ (k + 0x9e), FNV_PRIME);
  }
  lanes.h1 = h1;
  lanes.h2 = h2;
}

function mixNumber(lanes: Lanes, n: number): void {
  // Indices and versions are safe integers: mix the low and high 32 bits into both lanes.
  const lo = n >>> 0;
  const hi = Math.floor(n / 2 ** 32);
  lanes.h1 = Math.imul(Math.imul(lanes.h1 ^ lo, FNV_PRIME) ^ hi, FNV_PRIME);
  lanes.h2 = Math.imul(Math.imul(lanes.h2 ^ hi, M1) ^ lo, M2);
}

interface Lanes {
  h1: number;
  h2: number;
}

const scratch: Lanes = { h1: 0, h2: 0 }; // reused by recordHash (synchronous; no state survives a call)

/** The record's two 32-bit hashes, in `scratch`. */
function recordHash(key: Uint8Array, sv: StoredValue): Lanes {
  scratch.h1 = LANE1_OFFSET;
  scratch.h2 = LANE2_OFFSET;
  mixNumber(scratch, key.length);
  mixBytes(scratch, key);
  mixNumber(scratch, sv.createRevision);
  mixNumber(scratch, sv.modRevision);
  mixNumber(scratch, sv.version);
  mixNumber(scratch, sv.lease);
  mixNumber(scratch, sv.value.length);
  mixBytes(scratch, sv.value);
  scratch.h1 = fmix32(scratch.h1);
  scratch.h2 = fmix32(scratch.h2);
  return scratch;
}

/** The digest's value at one moment (immutable). */
export interface DigestValue {
  readonly lane1: number; // sum of the records' first hashes, mod 2^32
  readonly lane2: number; // sum of their second hashes, mod 2^32
  readonly count: number; // number of live keys
}

export const EMPTY_DIGEST: DigestValue = { lane1: 0, lane2: 0, count: 0 };

/** "<lane1><lane2>/<count>" in hex and decimal, as logs, errors and `raftkv check` print it. */
export function formatDigest(d: DigestValue): string {
  return `${d.lane1.toString(16).padStart(8, '0')}${d.lane2.toString(16).padStart(8, '0')}/${d.count}`;
}

export function digestsEqual(a: DigestValue, b: DigestValue): boolean {
  return a.lane1 === b.lane1 && a.lane2 === b.lane2 && a.count === b.count;
}

export class KeySpaceDigest {
  private lane1 = 0;
  private lane2 = 0;
  private count = 0;

  constructor(from: DigestValue = EMPTY_DIGEST) {
    this.set(from);
  }

  set(d: DigestValue): void {
    this.lane1 = d.lane1;
    this.lane2 = d.lane2;
    this.count = d.count;
  }

  add(key: Uint8Array, sv: StoredValue): void {
    const h = recordHash(key, sv);
    this.lane1 = (this.lane1 + h.h1) >>> 0;
    this.lane2 = (this.lane2 + h.h2) >>> 0;
    this.count++;
  }

  remove(key: Uint8Array, sv: StoredValue): void {
    const h = recordHash(key, sv);
    this.lane1 = (this.lane1 - h.h1) >>> 0;
    this.lane2 = (this.lane2 - h.h2) >>> 0;
    this.count--;
    if (this.count < 0) throw new Error('kv: key-space digest count below zero (a record removed twice)');
  }

  /** Replaces `prev` (undefined: the key did not exist) by `next` (undefined: deleted). */
  replace(key: Uint8Array, prev: StoredValue | undefined, next: StoredValue | undefined): void {
    if (prev !== undefined) this.remove(key, prev);
    if (next !== undefined) this.add(key, next);
  }

  value(): DigestValue {
    return { lane1: this.lane1, lane2: this.lane2, count: this.count };
  }
}

export function encodeDigest(d: DigestValue): Uint8Array {
  return new ByteWriter(16).u8(DIGEST_RECORD_VERSION).uvarint(d.lane1).uvarint(d.lane2).uvarint(d.count).finish();
}

export function decodeDigest(b: Uint8Array): DigestValue {
  const r = new ByteReader(b);
  const version = r.u8();
  if (version !== DIGEST_RECORD_VERSION) throw new RaftKvError('DATA_CORRUPTION', `kv: unknown key-space digest format ${version}`);
  const lane1 = r.uvarint();
  const lane2 = r.uvarint();
  const count = r.uvarint();
  r.end();
  if (lane1 >= 2 ** 32 || lane2 >= 2 ** 32) throw new RaftKvError('DATA_CORRUPTION', 'kv: key-space digest lane out of range');
  return { lane1, lane2, count };
}
