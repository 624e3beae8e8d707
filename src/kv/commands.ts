// Pieces of command execution shared by the state machine's apply path: a batch's overlay of its own writes,
// compare operators, the KeyValue view of a stored record, and an apply outcome from a stored session answer.
import { RaftKvError } from '../shared/errors.js';
import type { Index } from '../raft/types.js';
import { assertNever } from './codec.js';
import type { SessionAnswer, StoredValue } from './codec.js';
import type { MvccState } from './history.js';
import { keyString } from './schema.js';
import type { CommandResult, Compare, Envelope, KeyRange, KeyValue, KvEvent, Lease, Op, TxnOp } from './types.js';
import { compareBytes, isOpenEnd } from './validate.js';

export type ApplyOutcome =
  | { readonly type: 'none' } // no-op, conf-change, or an entry at or below appliedIndex (skipped)
  | { readonly type: 'result'; readonly result: CommandResult }
  | { readonly type: 'error'; readonly error: RaftKvError }; // a limit violated, a stale session seq, ...

/**
 * etcd's isTxnReadonly: no put and no delete on either branch, nested txns included. Such a txn changes nothing
 * whichever branch it takes, so it is served like a Range (ReadIndex, or locally when serializable), not logged.
 */
export function isTxnReadonly(t: TxnOp): boolean {
  const readOnly = (ops: readonly Op[]): boolean =>
    ops.every((op) => {
      switch (op.type) {
        case 'range':
          return true;
        case 'put':
        case 'delete':
          return false;
        case 'txn':
          return isTxnReadonly(op);
        default:
          return assertNever(op);
      }
    });
  return readOnly(t.success) && readOnly(t.failure);
}

export function cmpOp(cmp: number, op: Compare['op']): boolean {
  switch (op) {
    case '=':
      return cmp === 0;
    case '!=':
      return cmp !== 0;
    case '<':
      return cmp < 0;
    case '>':
      return cmp > 0;
    default:
      return assertNever(op);
  }
}

/** etcd's compareKV: a missing key (undefined) has every number 0 and an empty value. */
export function compareKv(c: Compare, sv: StoredValue | undefined): boolean {
  switch (c.target) {
    case 'value':
      return cmpOp(compareBytes(sv?.value ?? new Uint8Array(0), c.value), c.op);
    case 'version':
      return cmpOp(Math.sign((sv?.version ?? 0) - c.number), c.op);
    case 'create':
      return cmpOp(Math.sign((sv?.createRevision ?? 0) - c.number), c.op);
    case 'mod':
      return cmpOp(Math.sign((sv?.modRevision ?? 0) - c.number), c.op);
    case 'lease':
      return cmpOp(Math.sign((sv?.lease ?? 0) - c.number), c.op);
    default:
      return assertNever(c);
  }
}

export function toKeyValue(key: Uint8Array, sv: StoredValue): KeyValue {
  return { key, value: sv.value, createRevision: sv.createRevision, modRevision: sv.modRevision, version: sv.version, lease: sv.lease };
}

/** The revision a command's writes get: all share `main`, each change takes the next `sub` (etcd's sub revision). */
export interface WriteTx {
  readonly main: number; // the store revision + 1
  sub: number; // changes made so far; > 0 means the command changed something and the revision moves to main
}

/** Writes of the batch being applied, seen by later entries of the same batch before LevelDB has them. */
export class Overlay {
  /** Envelopes of this batch's normal entries, decoded once (by prefetch), by entry index. */
  readonly envelopes = new Map<Index, Envelope>();
  readonly data = new Map<string, { key: Uint8Array; sv: StoredValue | undefined }>(); // undefined = deleted
  /** Values read from LevelDB for this batch (no other writer exists while a batch is applied). */
  readonly cache = new Map<string, StoredValue | undefined>();
  /** History records ('h' keys, history.ts) written by this batch, by LevelDB key as a latin1 string. */
  readonly history = new Map<string, { key: Uint8Array; value: Uint8Array }>();
  /** Attachment records ('a', leases.ts) this batch adds (true) or removes (false), by LevelDB key as a latin1 string. */
  readonly attached = new Map<string, { key: Uint8Array; present: boolean }>();
  /** Leases this batch grants, checkpoints (a Lease) or revokes (undefined), by id. */
  readonly leases = new Map<number, Lease | undefined>();
  /** Every change of the batch in apply order (revision, then sub-revision): what watchers are sent. */
  readonly events: KvEvent[] = [];
  /** Per key written: the key as it was before the revision that last wrote it (etcd's prev_kv at main - 1). */
  readonly before = new Map<string, { main: number; prevKv: KeyValue | undefined }>();
  digestChanged = false; // a write since the digest was last added to the history
  compacted = false; // a compact command in this batch moved mvcc.compacted: start the background deletion
  alarmsChanged = false; // an alarm command in this batch changed the alarm table: write it with the batch
  authChanged = false; // an auth command in this batch changed the auth store: write it with the batch
  entryIndex = 0; // the log index of the entry being applied (a simple token ends with it, as etcd's)

  /** The revision state as the batch's entries see it; readers see the state machine's until the batch is buffered. */
  constructor(readonly mvcc: MvccState) {}

  inRange(range: KeyRange): { ks: string; key: Uint8Array; sv: StoredValue | undefined }[] {
    const lo = keyString(range.key);
    const hi = isOpenEnd(range.end) ? undefined : keyString(range.end);
    const out: { ks: string; key: Uint8Array; sv: StoredValue | undefined }[] = [];
    for (const [ks, v] of this.data) {
      if (ks >= lo && (hi === undefined || ks < hi)) out.push({ ks, key: v.key, sv: v.sv });
    }
    return out.sort((a, b) => (a.ks < b.ks ? -1 : a.ks > b.ks ? 1 : 0));
  }
}

export function answerOutcome(a: SessionAnswer): ApplyOutcome {
  switch (a.type) {
    case 'result':
      return { type: 'result', result: a.result };
    case 'error':
      return { type: 'error', error: new RaftKvError(a.code, a.message) };
    default:
      return assertNever(a);
  }
}
