// A backup file, as `raftkv snapshot save` or `etcdctl snapshot save` (against raftkv) wrote it: checked whole,
// summarised (`raftkv snapshot status`) and loaded into a new member's state machine (`raftkv snapshot restore`).
//
// Two shapes are accepted:
// - 'raftkv': raftkv's snapshot file as it is (snapshot-file.ts), ending with the SHA-256 of every byte before it.
// - 'etcdctl': what raftkv's Maintenance.Snapshot streams (etcd-maintenance-service.ts): that same file, zero bytes
//   up to a multiple of 512, then the SHA-256 of all of it (etcdctl 3.4 checks that shape). Both checksums are
//   verified: the outer one first, then the inner file's (which ends at its own digest, before the zeros).
// Any mismatch, truncation or framing error is DATA_CORRUPTION naming the file; nothing is written before the
// whole file has verified (restore reads it twice: once to verify, once to load).
import { createHash } from 'node:crypto';
import { mkdir, open } from 'node:fs/promises';
import { RaftKvError } from '../shared/errors.js';
import type { Member } from '../shared/member.js';
import { KEY_ALARMS } from './alarms.js';
import { decodeStoredValue } from './codec.js';
import { decodeMvcc } from './history.js';
import { EMPTY_DIGEST, KeySpaceDigest, decodeDigest, digestsEqual, encodeDigest, formatDigest } from './key-space-digest.js';
import type { DigestValue } from './key-space-digest.js';
import { INGEST_WRITE_BUFFER_BYTES, liveGeneration, openDb } from './level-store.js';
import type { Db } from './level-store.js';
import { KEY_APPLIED, KEY_DIGEST, KEY_MEMBERS, KEY_MVCC, PREFIX_DATA, PREFIX_META, PREFIX_SESSION, encodeApplied, encodeMembers } from './schema.js';
import { readSnapshotFile } from './snapshot-file.js';
import { compareBytes } from './validate.js';
import type { Index, Term } from '../raft/types.js';
import { join } from 'node:path';

const ETCDCTL_ALIGN_BYTES = 512; // etcdctl's save: size % 512 == 32
const SHA256_BYTES = 32;
const HASH_CHUNK_BYTES = 1024 * 1024;

export interface BackupSummary {
  readonly path: string;
  readonly format: 'raftkv' | 'etcdctl';
  readonly sizeBytes: number; // the whole file
  readonly sha256: string; // hex: the raftkv snapshot's own digest (its last 32 bytes)
  readonly revision: number; // the store revision it holds (etcd's snapshot status "revision")
  readonly compactedRevision: number; // -1: never compacted
  readonly keys: number; // live keys
  readonly records: number; // LevelDB records (keys, history, meta)
  readonly index: Index; // the Raft index and term it was taken at, in the cluster it came from
  readonly term: Term;
  readonly members: readonly Member[]; // that cluster's members
  /** Bytes of the raftkv snapshot inside the file (the whole file for 'raftkv'). */
  readonly lengthBytes: number;
}

function damaged(path: string, what: string): RaftKvError {
  return new RaftKvError('DATA_CORRUPTION', `backup ${path} is damaged: ${what}; nothing was written`);
}

/** SHA-256 of bytes [0, end) of the file, and the 32 bytes stored at [end, end + 32). */
async function hashPrefix(path: string, end: number): Promise<{ computed: Buffer; stored: Buffer }> {
  const fh = await open(path, 'r');
  try {
    const hash = createHash('sha256');
    const buf = Buffer.allocUnsafe(HASH_CHUNK_BYTES);
    for (let at = 0; at < end; ) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, end - at), at);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      at += bytesRead;
    }
    const stored = Buffer.alloc(SHA256_BYTES);
    await fh.read(stored, 0, SHA256_BYTES, end);
    return { computed: hash.digest(), stored };
  } finally {
    await fh.close();
  }
}

async function readRange(path: string, start: number, end: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(end - start);
    await fh.read(buf, 0, buf.length, start);
    return buf;
  } finally {
    await fh.close();
  }
}

interface Scan {
  readonly revision: number;
  readonly compactedRevision: number;
  readonly keys: number;
  readonly records: number;
  readonly digest: DigestValue | undefined; // the digest record it carries
  readonly computed: DigestValue; // its data records' digest
}

async function scan(path: string, lengthBytes: number): Promise<{ header: Awaited<ReturnType<typeof readSnapshotFile>>; scan: Scan }> {
  let revision = 1;
  let compactedRevision = -1;
  let records = 0;
  let digest: DigestValue | undefined;
  const computed = new KeySpaceDigest();
  const header = await readSnapshotFile(
    path,
    (batch) => {
      for (const { key, value } of batch) {
        records++;
        if (key[0] === PREFIX_DATA) computed.add(key.subarray(1), decodeStoredValue(value));
        else if (key[0] === PREFIX_META && compareBytes(key, KEY_MVCC) === 0) {
          const m = decodeMvcc(value);
          revision = m.revision;
          compactedRevision = m.compacted;
        } else if (key[0] === PREFIX_META && compareBytes(key, KEY_DIGEST) === 0) digest = decodeDigest(value);
      }
      return Promise.resolve();
    },
    10_000,
    lengthBytes,
  );
  const c = computed.value();
  return { header, scan: { revision, compactedRevision, keys: c.count, records, digest, computed: c } };
}

/** Where the raftkv snapshot ends inside the file, and which shape the file has. Throws DATA_CORRUPTION. */
async function locate(path: string, sizeBytes: number): Promise<{ format: 'raftkv' | 'etcdctl'; lengthBytes: number; candidates: number[] }> {
  if (sizeBytes % ETCDCTL_ALIGN_BYTES !== SHA256_BYTES || sizeBytes < ETCDCTL_ALIGN_BYTES + SHA256_BYTES) {
    return { format: 'raftkv', lengthBytes: sizeBytes, candidates: [sizeBytes] };
  }
  // etcdctl's shape, or a raftkv file whose size happens to be 512k + 32: the outer digest decides first.
  const bodyEnd = sizeBytes - SHA256_BYTES;
  const { computed, stored } = await hashPrefix(path, bodyEnd);
  if (!computed.equals(stored)) throw damaged(path, `its SHA-256 trailer (etcdctl's) does not match its contents`);
  // The inner file ends at its own digest, then zeros (fewer than 512): its last byte is the last non-zero one, or
  // a little after when its digest ends in zero bytes. Each candidate is verified whole; the first that does wins.
  const tailStart = Math.max(0, bodyEnd - ETCDCTL_ALIGN_BYTES - SHA256_BYTES);
  const tail = await readRange(path, tailStart, bodyEnd);
  let last = tail.length - 1;
  while (last >= 0 && tail[last] === 0) last--;
  const candidates: number[] = [];
  for (let end = tailStart + last + 1; end <= bodyEnd && end - (tailStart + last + 1) < SHA256_BYTES; end++) candidates.push(end);
  candidates.push(sizeBytes); // a plain raftkv file of that size
  return { format: 'etcdctl', lengthBytes: bodyEnd, candidates };
}

/** Verifies the whole backup and summarises it. Throws DATA_CORRUPTION (naming the file) if anything is off. */
export async function inspectBackup(path: string): Promise<BackupSummary> {
  let sizeBytes: number;
  try {
    const fh = await open(path, 'r');
    sizeBytes = (await fh.stat()).size;
    await fh.close();
  } catch (err) {
    throw new RaftKvError('INVALID_ARGUMENT', `backup ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const where = await locate(path, sizeBytes);
  let lastError: unknown;
  for (const lengthBytes of where.candidates) {
    try {
      const { header, scan: s } = await scan(path, lengthBytes);
      if (s.digest !== undefined && !digestsEqual(s.digest, s.computed)) {
        throw damaged(path, `its records digest to ${formatDigest(s.computed)}, not the ${formatDigest(s.digest)} it carries`);
      }
      const digestBytes = await readRange(path, lengthBytes - SHA256_BYTES, lengthBytes);
      return {
        path,
        format: lengthBytes === sizeBytes ? 'raftkv' : 'etcdctl',
        sizeBytes,
        sha256: digestBytes.toString('hex'),
        revision: s.revision,
        compactedRevision: s.compactedRevision,
        keys: s.keys,
        records: s.records,
        index: header.index,
        term: header.term,
        members: header.members,
        lengthBytes,
      };
    } catch (err) {
      if (!(err instanceof RaftKvError && err.code === 'DATA_CORRUPTION')) throw err;
      lastError = err;
    }
  }
  const reason = lastError instanceof Error ? lastError.message.replace(/^snapshot \S+: /, '') : 'no raftkv snapshot inside';
  throw damaged(path, reason);
}

/** What restoreBackupInto wrote: the state machine's applied index/term and what it holds. */
export interface RestoredStore {
  readonly revision: number;
  readonly keys: number;
}

/**
 * Writes a new state machine store in `kvDir` (which must not exist or be empty) from a verified backup: every
 * key with its history and MVCC revision, but a new member table (`members`), an applied index and term of the
 * new cluster's (the index its log starts after), no client sessions and no alarms (a new cluster's history
 * starts here). The digest is recomputed and checked against the one the backup carries.
 */
export async function restoreBackupInto(
  summary: BackupSummary,
  kvDir: string,
  members: readonly Member[],
  applied: { readonly index: Index; readonly term: Term },
): Promise<RestoredStore> {
  await mkdir(kvDir, { recursive: true });
  const generation = await liveGeneration(kvDir); // a fresh directory: db-1, created
  const db: Db = await openDb(join(kvDir, `db-${generation}`), INGEST_WRITE_BUFFER_BYTES, 'existing');
  try {
    const digest = new KeySpaceDigest(EMPTY_DIGEST);
    let carried: DigestValue | undefined;
    const skipped = [KEY_APPLIED, KEY_MEMBERS, KEY_DIGEST, KEY_ALARMS];
    await readSnapshotFile(
      summary.path,
      async (batch) => {
        const ops: { type: 'put'; key: Uint8Array; value: Uint8Array }[] = [];
        for (const { key, value } of batch) {
          if (key[0] === PREFIX_SESSION) continue;
          if (key[0] === PREFIX_META && compareBytes(key, KEY_DIGEST) === 0) carried = decodeDigest(value);
          if (key[0] === PREFIX_META && skipped.some((k) => compareBytes(k, key) === 0)) continue;
          if (key[0] === PREFIX_DATA) digest.add(key.subarray(1), decodeStoredValue(value));
          ops.push({ type: 'put', key, value });
        }
        await db.batch(ops);
      },
      10_000,
      summary.lengthBytes,
    );
    if (carried !== undefined && !digestsEqual(carried, digest.value())) {
      throw new RaftKvError('DATA_CORRUPTION', `backup ${summary.path} changed while it was restored: its records digest to ${formatDigest(digest.value())}, not ${formatDigest(carried)}`);
    }
    const table = new Map<number, Member>(members.map((m) => [m.id, { ...m }]));
    await db.batch(
      [
        { type: 'put', key: KEY_MEMBERS, value: encodeMembers(table) },
        { type: 'put', key: KEY_DIGEST, value: encodeDigest(digest.value()) },
        { type: 'put', key: KEY_APPLIED, value: encodeApplied(applied.index, applied.term) },
      ],
      { sync: true },
    );
    return { revision: summary.revision, keys: digest.value().count };
  } finally {
    await db.close();
  }
}
