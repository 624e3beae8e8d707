// How the state machine lays out its LevelDB store: key spaces and the records of each.
//
// LevelDB keys (byte strings; one-byte prefixes keep the spaces apart and in this order):
//   'd' + user key          StoredValue (codec.ts) of the key's live revision: createRevision, modRevision,
//                           version, lease, value. A deleted key has none (its tombstone is in 'h').
//   'h' + escaped key + rev every revision of every key until compaction (history.ts has the layout)
//   'm' + "applied"         uvarint appliedIndex | uvarint appliedTerm
//   'm' + "members"         UTF-8 JSON {"members":[Member...]} sorted by id; the ConfState is derived from it
//   'm' + "digest"          the key-space digest as of the applied index (key-space-digest.ts); absent in
//                           directories written before it existed: computed by a scan at the next open
//   'm' + "mvcc"            the store revision and the compaction state (history.ts); absent in a directory
//                           written before revisions (with applied index > 0): refused at open
//   's' + clientId (UTF-8)  u8 1 | uvarint lastSeq | uvarint lastIndex | Answer (codec.ts)
import { RaftKvError } from '../shared/errors.js';
import type { Member } from '../shared/member.js';
import type { Index, Term } from '../raft/types.js';
import { ByteReader, ByteWriter, readAnswer, writeAnswer } from './codec.js';
import type { SessionAnswer } from './codec.js';

export const PREFIX_DATA = 0x64; // 'd'

export const PREFIX_META = 0x6d; // 'm'

export const PREFIX_SESSION = 0x73; // 's'

export const KEY_APPLIED = Uint8Array.from(Buffer.from('mapplied', 'latin1'));

export const KEY_MEMBERS = Uint8Array.from(Buffer.from('mmembers', 'latin1'));

export const KEY_DIGEST = Uint8Array.from(Buffer.from('mdigest', 'latin1'));

export const KEY_MVCC = Uint8Array.from(Buffer.from('mmvcc', 'latin1'));

export const DATA_LO = Uint8Array.of(PREFIX_DATA);

export const DATA_HI = Uint8Array.of(PREFIX_DATA + 1);

export const SESSION_LO = Uint8Array.of(PREFIX_SESSION);

export const SESSION_HI = Uint8Array.of(PREFIX_SESSION + 1);

const SESSION_RECORD_VERSION = 2; // 1: answers before revisions (refused)

export function prefixed(prefix: number, key: Uint8Array): Uint8Array {
  const out = new Uint8Array(key.length + 1);
  out[0] = prefix;
  out.set(key, 1);
  return out;
}

/** A byte string as a JS string whose code-unit order is the bytes' order (for maps and sorting). */
export function keyString(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');
}

export function sessionKey(clientId: string): Uint8Array {
  return prefixed(PREFIX_SESSION, Buffer.from(clientId, 'utf8'));
}

export function encodeApplied(index: Index, term: Term): Uint8Array {
  return new ByteWriter(16).uvarint(index).uvarint(term).finish();
}

export function decodeApplied(b: Uint8Array): { index: Index; term: Term } {
  const r = new ByteReader(b);
  const index = r.uvarint();
  const term = r.uvarint();
  r.end();
  return { index, term };
}

export interface Session {
  lastSeq: number; // seq of the last request applied for this client
  lastIndex: Index; // index of the last entry that used the session (LRU order of the sessions map)
}

export function encodeSession(s: Session, answer: SessionAnswer): Uint8Array {
  const w = new ByteWriter(64).u8(SESSION_RECORD_VERSION).uvarint(s.lastSeq).uvarint(s.lastIndex);
  writeAnswer(w, answer);
  return w.finish();
}

export function decodeSession(b: Uint8Array): { session: Session; answer: SessionAnswer } {
  const r = new ByteReader(b);
  const version = r.u8();
  if (version !== SESSION_RECORD_VERSION) {
    throw new RaftKvError('DATA_CORRUPTION', `kv: unknown session record format ${version}`);
  }
  const lastSeq = r.uvarint();
  const lastIndex = r.uvarint();
  const answer = readAnswer(r);
  r.end();
  return { session: { lastSeq, lastIndex }, answer };
}

export function encodeMembers(members: ReadonlyMap<number, Member>): Uint8Array {
  const list = [...members.values()].sort((a, b) => a.id - b.id);
  return Buffer.from(JSON.stringify({ members: list }), 'utf8');
}

export function decodeMembers(b: Uint8Array): Map<number, Member> {
  const bad = (): RaftKvError => new RaftKvError('DATA_CORRUPTION', 'kv: malformed member table');
  let o: unknown;
  try {
    o = JSON.parse(Buffer.from(b).toString('utf8'));
  } catch {
    throw bad();
  }
  const list = (o as { members?: unknown } | null)?.members;
  if (!Array.isArray(list)) throw bad();
  const out = new Map<number, Member>();
  for (const m of list as unknown[]) {
    const r = m as Record<string, unknown> | null;
    if (
      r === null ||
      typeof r !== 'object' ||
      !Number.isSafeInteger(r['id']) ||
      typeof r['peerAddress'] !== 'string' ||
      typeof r['clientAddress'] !== 'string' ||
      typeof r['learner'] !== 'boolean'
    ) {
      throw bad();
    }
    const id = r['id'] as number;
    out.set(id, { id, peerAddress: r['peerAddress'], clientAddress: r['clientAddress'], learner: r['learner'] });
  }
  return out;
}
