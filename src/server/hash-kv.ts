// etcd's HashKV: a hash of the MVCC key space as of a revision. raftkv's is the key-space digest
// (src/kv/key-space-digest.ts: every live key with its create and mod revisions, version, lease and value) of the
// key space at that revision, read through the MVCC history page by page: the key space at a revision never
// changes, so every member that has applied it answers the same hash, whatever it applied since and however far
// its physical compaction got; a member whose data differs answers another. At the current revision it equals
// the running digest the corrupt check compares (the same records, the same sum).
//
// etcd hashes the history records up to the revision instead (its values are not comparable with raftkv's; only
// equality between members matters). Revision 0 is this member's current revision; below the compacted revision
// COMPACTED, above the current one FUTURE_REV (etcd's ErrCompacted and ErrFutureRev).
import type { KvNode } from '../node/api.js';
import { KeySpaceDigest } from '../kv/key-space-digest.js';
import type { DigestValue } from '../kv/key-space-digest.js';
import { isRaftKvError } from '../shared/errors.js';

/** Keys read per page: bounded memory for any store size. */
export const HASH_KV_PAGE_KEYS = 1000;

export interface HashKvAnswer {
  readonly hash: number; // uint32: the digest's first lane
  readonly digest: DigestValue;
  readonly revision: number; // the revision hashed
  readonly compactRevision: number;
}

const FROM_KEY_END = Uint8Array.of(0); // etcd's range_end "\0": every key >= key

function after(key: Uint8Array): Uint8Array {
  const next = new Uint8Array(key.length + 1);
  next.set(key);
  return next;
}

/** The digest of the key space at `revision` (0: the current one) on this member's applied state. */
export async function hashKv(node: Pick<KvNode, 'read' | 'status'>, revision: bigint, deadlineMs: number, pageKeys = HASH_KV_PAGE_KEYS): Promise<HashKvAnswer> {
  const s = node.status();
  // Beyond 2^53 no revision exists: FUTURE_REV from the read below.
  const at = revision === 0n ? s.revision : revision > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(revision);
  const digest = new KeySpaceDigest();
  let from: Uint8Array = Uint8Array.of(0);
  let page = pageKeys;
  for (;;) {
    let reply;
    try {
      reply = await node.read({ key: from, end: FROM_KEY_END, limit: page, keysOnly: false, countOnly: false, revision: at }, { serializable: true, deadlineMs });
    } catch (err) {
      // Large values: a page over the response size limit is read again in smaller pages.
      if (isRaftKvError(err, 'RESOURCE_EXHAUSTED') && page > 1) {
        page = Math.max(1, Math.floor(page / 2));
        continue;
      }
      throw err;
    }
    const { kvs, more } = reply.result;
    for (const kv of kvs) digest.add(kv.key, kv);
    const last = kvs[kvs.length - 1];
    if (!more || last === undefined) break;
    from = after(last.key);
  }
  const value = digest.value();
  return { hash: value.lane1, digest: value, revision: at, compactRevision: node.status().compactedRevision };
}
