// Pieces of command execution shared by the state machine's apply path: a batch's overlay of its own writes,
// compare operators, the KeyValue view of a stored record, and an apply outcome from a stored session answer.
import { RaftKvError } from '../shared/errors.js';
import type { Index } from '../raft/types.js';
import { assertNever } from './codec.js';
import type { SessionAnswer, StoredValue } from './codec.js';
import { keyString } from './schema.js';
import type { CommandResult, Compare, Envelope, KeyRange, KeyValue } from './types.js';
import { isOpenEnd } from './validate.js';

export type ApplyOutcome =
  | { readonly type: 'none' } // no-op, conf-change, or an entry at or below appliedIndex (skipped)
  | { readonly type: 'result'; readonly result: CommandResult }
  | { readonly type: 'error'; readonly error: RaftKvError }; // a limit violated, a stale session seq, ...

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

export function toKeyValue(key: Uint8Array, sv: StoredValue, keysOnly = false): KeyValue {
  return {
    key,
    value: keysOnly ? new Uint8Array(0) : sv.value,
    createIndex: sv.createIndex,
    modIndex: sv.modIndex,
    version: sv.version,
  };
}

/** Writes of the batch being applied, seen by later entries of the same batch before LevelDB has them. */
export class Overlay {
  /** Envelopes of this batch's normal entries, decoded once (by prefetch), by entry index. */
  readonly envelopes = new Map<Index, Envelope>();
  readonly data = new Map<string, { key: Uint8Array; sv: StoredValue | undefined }>(); // undefined = deleted
  /** Values read from LevelDB for this batch (no other writer exists while a batch is applied). */
  readonly cache = new Map<string, StoredValue | undefined>();
  digestChanged = false; // a write since the digest was last added to the history

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
