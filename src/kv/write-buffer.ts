// The state machine's write-behind buffers: applied batches not yet in LevelDB, as LevelDB batch operations
// keyed by their full LevelDB key (the last write per key wins), with their approximate size.
import { keyString } from './schema.js';

export type BatchOp = { type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array };

/** Writes not yet in LevelDB, the last per key (by keyString of the full LevelDB key). */
export class WriteBuffer {
  readonly ops = new Map<string, BatchOp>();
  bytes = 0;

  add(op: BatchOp): void {
    this.ops.set(keyString(op.key), op);
    this.bytes += op.key.length + (op.type === 'put' ? op.value.length : 0) + 32;
  }

  /** undefined: not here (ask LevelDB); null: deleted here; else the value. */
  get(key: Uint8Array): Uint8Array | null | undefined {
    const op = this.ops.get(keyString(key));
    if (op === undefined) return undefined;
    return op.type === 'put' ? op.value : null;
  }
}

/** Two key-ordered write lists as one; on the same key `newer` wins. */
export function mergeWrites<T extends { ks: string }>(older: readonly T[], newer: readonly T[]): T[] {
  const byKey = new Map<string, T>();
  for (const w of older) byKey.set(w.ks, w);
  for (const w of newer) byKey.set(w.ks, w);
  return [...byKey.values()].sort((a, b) => (a.ks < b.ks ? -1 : a.ks > b.ks ? 1 : 0));
}
