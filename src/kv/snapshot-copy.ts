// Copies between the state machine's LevelDB and a snapshot file (snapshot-file.ts is the format): a LevelDB
// view streamed into a new file, and a file ingested into a fresh LevelDB directory, verified on the way (its
// applied record against its header, its records against the digest it carries) before the caller swaps the
// directory in.
import { rm } from 'node:fs/promises';
import type { Iterator as LevelIterator } from 'classic-level';
import { RaftKvError } from '../shared/errors.js';
import type { Index, Term } from '../raft/types.js';
import { decodeStoredValue } from './codec.js';
import { decodeMvcc } from './history.js';
import { KeySpaceDigest, decodeDigest, digestsEqual, encodeDigest, formatDigest } from './key-space-digest.js';
import type { DigestValue } from './key-space-digest.js';
import { INGEST_WRITE_BUFFER_BYTES, openDb } from './level-store.js';
import type { Db } from './level-store.js';
import { KEY_APPLIED, KEY_DIGEST, KEY_MVCC, PREFIX_DATA, PREFIX_META, decodeApplied, encodeApplied } from './schema.js';
import { SnapshotFileWriter, readSnapshotFile } from './snapshot-file.js';
import type { SnapshotHeader } from './snapshot-file.js';
import { compareBytes } from './validate.js';
import type { BatchOp } from './write-buffer.js';

const SNAPSHOT_READ_ENTRIES = 20_000; // records per iterator read while streaming a snapshot

/**
 * Streams every record of `iterator` (a LevelDB view, closed here) into a new snapshot file in `snapDir` with
 * `header`; returns its path once it is renamed into place. A failure leaves no partial file behind.
 */
export async function writeSnapshotFrom(
  iterator: LevelIterator<Db, Uint8Array, Uint8Array>,
  snapDir: string,
  header: SnapshotHeader,
  failpoint: ((point: 'snapshot-before-rename') => void) | undefined,
): Promise<string> {
  let writer: SnapshotFileWriter | undefined;
  try {
    writer = await SnapshotFileWriter.create(snapDir, header);
    for (;;) {
      const chunk = await iterator.nextv(SNAPSHOT_READ_ENTRIES);
      if (chunk.length === 0) break;
      for (const [k, v] of chunk) await writer.record(k, v);
    }
    return await writer.commit(failpoint);
  } catch (err) {
    await writer?.abort(); // a no-op once commit() has closed the file
    throw err;
  } finally {
    await iterator.close();
  }
}

/**
 * Ingests the snapshot file at `path` (whose verified header is `header`) into a new LevelDB directory
 * `nextDir` (emptied first), synced. DATA_CORRUPTION when its applied record does not match the header or its
 * records do not match the digest it carries; FAILED_PRECONDITION for a snapshot from before MVCC revisions.
 * On any failure `nextDir` is removed.
 */
export async function ingestSnapshot(path: string, header: { readonly index: Index; readonly term: Term }, nextDir: string): Promise<void> {
  await rm(nextDir, { recursive: true, force: true });
  const fresh = await openDb(nextDir, INGEST_WRITE_BUFFER_BYTES, 'create');
  const seen: { applied: { index: Index; term: Term } | undefined; digest: DigestValue | undefined; mvcc: boolean } = {
    applied: undefined,
    digest: undefined,
    mvcc: false,
  };
  const ingested = new KeySpaceDigest();
  try {
    await readSnapshotFile(path, async (records) => {
      const ops: BatchOp[] = [];
      for (const { key, value } of records) {
        if (key[0] === PREFIX_DATA) ingested.add(key.subarray(1), decodeStoredValue(value));
        else if (key[0] === PREFIX_META && compareBytes(key, KEY_APPLIED) === 0) seen.applied = decodeApplied(value);
        else if (key[0] === PREFIX_META && compareBytes(key, KEY_DIGEST) === 0) seen.digest = decodeDigest(value);
        else if (key[0] === PREFIX_META && compareBytes(key, KEY_MVCC) === 0) seen.mvcc = decodeMvcc(value).revision >= 1;
        ops.push({ type: 'put', key, value });
      }
      await fresh.batch(ops);
    });
    if (seen.applied?.index !== header.index || seen.applied.term !== header.term) {
      throw new RaftKvError('DATA_CORRUPTION', `kv: snapshot ${path}: applied record does not match its header`);
    }
    if (!seen.mvcc && header.index > 0) {
      throw new RaftKvError('FAILED_PRECONDITION', `kv: snapshot ${path} was written by a raftkv before MVCC revisions and holds no history`);
    }
    // A snapshot from before digests carries none: the ingested records' digest is stored instead.
    if (seen.digest !== undefined && !digestsEqual(seen.digest, ingested.value())) {
      throw new RaftKvError(
        'DATA_CORRUPTION',
        `kv: snapshot ${path}: its records digest to ${formatDigest(ingested.value())}, not the ${formatDigest(seen.digest)} it carries`,
      );
    }
    await fresh.batch(
      [
        { type: 'put', key: KEY_DIGEST, value: encodeDigest(ingested.value()) },
        { type: 'put', key: KEY_APPLIED, value: encodeApplied(header.index, header.term) },
      ],
      { sync: true },
    );
  } catch (err) {
    await fresh.close();
    await rm(nextDir, { recursive: true, force: true });
    throw err;
  }
  await fresh.close();
}
