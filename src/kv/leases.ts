// Leases as the state machine stores them: the lease records, the index of keys attached to each lease, and
// the limits and messages of etcd's lease API. The deadlines are not here: only the leader keeps them, in
// memory (src/node/lessor.ts), and expiry reaches the state machine as a revoke through the log.
//
// LevelDB layout (schema.ts names the spaces):
//   'l' + u64 BE lease id                 u8 1 | uvarint ttlSeconds | uvarint remainingSeconds (0: none)
//   'a' + u64 BE lease id + user key      empty: the key's live record names this lease
// The attachment index moves in the same batch as the key (the state machine's write()), so a revoke reads
// the keys to delete with one prefix scan and TimeToLive lists them without scanning the key space.
import { RaftKvError } from '../shared/errors.js';
import { ByteReader, ByteWriter } from './codec.js';
import type { Lease, LeaseGrantOp } from './types.js';

export const PREFIX_LEASE = 0x6c; // 'l'
export const PREFIX_ATTACHED = 0x61; // 'a'

export const LEASE_LO = Uint8Array.of(PREFIX_LEASE);
export const LEASE_HI = Uint8Array.of(PREFIX_LEASE + 1);

/** etcd's MaxLeaseTTL (9,000,000,000 s): a grant above it is LEASE_TTL_TOO_LARGE. */
export const MAX_LEASE_TTL_SECONDS = 9_000_000_000;
/**
 * Leases live at once. etcd has no limit; each lease costs ~150 bytes of memory on every member (its record
 * here, its deadline on the leader), so a million is 150 MB: beyond it a grant is TOO_MANY_LEASES rather
 * than a member that runs out of memory.
 */
export const MAX_LEASES = 1_000_000;

export const ETCD_LEASE_EXISTS = 'etcdserver: lease already exists';
export const ETCD_LEASE_TTL_TOO_LARGE = 'etcdserver: too large lease TTL';

const LEASE_RECORD_VERSION = 1;

function idBytes(id: number): Uint8Array {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(id));
  return b;
}

export function leaseKey(id: number): Uint8Array {
  const out = new Uint8Array(9);
  out[0] = PREFIX_LEASE;
  out.set(idBytes(id), 1);
  return out;
}

export function leaseIdOfKey(k: Uint8Array): number {
  return Number(Buffer.from(k.buffer, k.byteOffset + 1, 8).readBigUInt64BE(0));
}

/** The attachment record of `key` to lease `id`. */
export function attachedKey(id: number, key: Uint8Array): Uint8Array {
  const out = new Uint8Array(9 + key.length);
  out[0] = PREFIX_ATTACHED;
  out.set(idBytes(id), 1);
  out.set(key, 9);
  return out;
}

/** [lo, hi) of the attachment records of lease `id`. */
export function attachedRange(id: number): { lo: Uint8Array; hi: Uint8Array } {
  const lo = new Uint8Array(9);
  lo[0] = PREFIX_ATTACHED;
  lo.set(idBytes(id), 1);
  const hi = new Uint8Array(9);
  hi[0] = PREFIX_ATTACHED;
  hi.set(idBytes(id + 1), 1);
  return { lo, hi };
}

/** The user key of an attachment record. */
export function keyOfAttached(k: Uint8Array): Uint8Array {
  return k.slice(9);
}

export function encodeLease(l: Lease): Uint8Array {
  return new ByteWriter(24).u8(LEASE_RECORD_VERSION).uvarint(l.ttlSeconds).uvarint(l.remainingSeconds).finish();
}

export function decodeLease(id: number, b: Uint8Array): Lease {
  const r = new ByteReader(b);
  const version = r.u8();
  if (version !== LEASE_RECORD_VERSION) throw new RaftKvError('DATA_CORRUPTION', `kv: lease ${id} record has unknown version ${version}`);
  const ttlSeconds = r.uvarint();
  const remainingSeconds = r.uvarint();
  r.end();
  return { id, ttlSeconds, remainingSeconds };
}

/** A lease id the API can carry losslessly: positive and a safe integer (etcd's are positive int64s). */
export function isLeaseId(id: number): boolean {
  return Number.isSafeInteger(id) && id > 0 && id < Number.MAX_SAFE_INTEGER;
}

/** The checks of a grant that do not depend on the state (the proposer makes them too, before proposing). */
export function checkLeaseGrant(op: LeaseGrantOp): void {
  if (!isLeaseId(op.id)) throw new RaftKvError('INVALID_ARGUMENT', `lease grant: id must be in 1..2^53-2, got ${op.id}`);
  if (!Number.isSafeInteger(op.ttlSeconds) || op.ttlSeconds < 0) throw new RaftKvError('INVALID_ARGUMENT', `lease grant: ttl must be a non-negative integer, got ${op.ttlSeconds}`);
  if (op.ttlSeconds > MAX_LEASE_TTL_SECONDS) throw new RaftKvError('LEASE_TTL_TOO_LARGE', ETCD_LEASE_TTL_TOO_LARGE);
}

/** etcd's minimum lease TTL: 1.5 election timeouts, rounded up to whole seconds (a shorter lease could expire in one failover). */
export function minLeaseTtlSeconds(electionTimeoutMs: number): number {
  return Math.max(1, Math.ceil((electionTimeoutMs * 1.5) / 1000));
}
