// What the simulated clients did at the driver's API (RaftKvNode.write / read) and the client-visible checks:
// - every write puts a value no other write uses, so the applied log says which write an entry is, and a value
//   at two log indexes is a write applied twice;
// - an acknowledged write is the entry at the index its reply names (else it was lost or replaced);
// - a read served at applied index A returns the key's state at A in the (one) applied log;
// - a linearizable read is served at an index at least as high as every write acknowledged before it was called
//   (any key), and returns a value at least as new as every write to its key acknowledged before it was called
//   (a simple per-key register check); a value no write put is never returned.
import type { Entry, Index, NodeId } from '../../../src/raft/types.js';
import { decodeEnvelope } from '../../../src/kv/codec.js';
import { SimViolation } from '../violation.js';

export type WriteStatus = 'pending' | 'acked' | 'failed' | 'unknown';

export interface WriteRecord {
  readonly id: number;
  readonly key: string;
  readonly value: string;
  readonly node: NodeId;
  readonly invokedMs: number;
  status: WriteStatus;
  index: Index; // the entry's index once acknowledged (0 before)
  detail: string; // the error of a failed write
}

export interface ReadRecord {
  readonly id: number;
  readonly key: string;
  readonly node: NodeId;
  readonly linearizable: boolean;
  readonly invokedMs: number;
  readonly minIndex: Index; // highest index of a write (any key) acknowledged before the call
  readonly minKeyIndex: Index; // highest index of a write to this key acknowledged before the call
}

interface AppliedWrite {
  readonly index: Index;
  readonly value: string;
}

const text = new TextDecoder();

export class ClientHistory {
  private nextId = 1;
  private readonly writes = new Map<string, WriteRecord>(); // by value
  private readonly appliedByKey = new Map<string, AppliedWrite[]>(); // the applied log's puts per key, by index
  private readonly appliedIndexOf = new Map<string, Index>(); // value -> the index it was applied at
  private maxAcked: Index = 0;
  private readonly maxAckedByKey = new Map<string, Index>();
  writesInvoked = 0;
  writesAcked = 0;
  writesFailed = 0;
  readsInvoked = 0;
  readsChecked = 0;

  invokeWrite(key: string, node: NodeId, nowMs: number): WriteRecord {
    const id = this.nextId++;
    const w: WriteRecord = { id, key, value: `w${id}`, node, invokedMs: nowMs, status: 'pending', index: 0, detail: '' };
    this.writes.set(w.value, w);
    this.writesInvoked++;
    return w;
  }

  invokeRead(key: string, node: NodeId, linearizable: boolean, nowMs: number): ReadRecord {
    this.readsInvoked++;
    return { id: this.nextId++, key, node, linearizable, invokedMs: nowMs, minIndex: this.maxAcked, minKeyIndex: this.maxAckedByKey.get(key) ?? 0 };
  }

  /** The entry at `e.index` was applied for the first time anywhere (first applications come in index order). */
  onFirstApply(e: Entry): void {
    const put = decodePut(e);
    if (put === undefined) return;
    const before = this.appliedIndexOf.get(put.value);
    if (before !== undefined) {
      throw new SimViolation('applied-twice', `write ${put.value} (key ${put.key}) is in the applied log at ${before} and again at ${e.index}`);
    }
    this.appliedIndexOf.set(put.value, e.index);
    let list = this.appliedByKey.get(put.key);
    if (list === undefined) this.appliedByKey.set(put.key, (list = []));
    list.push({ index: e.index, value: put.value });
  }

  onAck(w: WriteRecord, index: Index): void {
    const at = this.appliedIndexOf.get(w.value);
    if (at !== index) {
      throw new SimViolation('acknowledged-write-lost', `write ${w.value} (key ${w.key}) acknowledged at index ${index} by n${w.node}, but the applied log has it at ${String(at)}`);
    }
    w.status = 'acked';
    w.index = index;
    this.writesAcked++;
    this.maxAcked = Math.max(this.maxAcked, index);
    this.maxAckedByKey.set(w.key, Math.max(this.maxAckedByKey.get(w.key) ?? 0, index));
  }

  onWriteFailed(w: WriteRecord, detail: string): void {
    w.status = 'failed';
    w.detail = detail;
    this.writesFailed++;
  }

  /** The serving member crashed with the write in flight: its outcome is unknown. */
  onWriteLost(w: WriteRecord): void {
    if (w.status === 'pending') w.status = 'unknown';
  }

  onReadResult(r: ReadRecord, servedAt: Index, value: string | undefined): void {
    this.readsChecked++;
    const what = `${r.linearizable ? 'linearizable' : 'serializable'} read r${r.id} of ${r.key} on n${r.node}`;
    if (value !== undefined && !this.writes.has(value)) throw new SimViolation('linearizability', `${what} returned ${value}, which no write put`);
    const expected = this.stateAt(r.key, servedAt);
    if (expected?.value !== value) {
      throw new SimViolation(
        'linearizability',
        `${what} served at index ${servedAt} returned ${String(value)}, but the applied log has ${String(expected?.value)} (index ${String(expected?.index)}) for ${r.key} there`,
      );
    }
    if (!r.linearizable) return;
    if (servedAt < r.minIndex) {
      throw new SimViolation('linearizability', `${what} served at index ${servedAt}, below index ${r.minIndex} acknowledged before the read was called`);
    }
    const got = value === undefined ? 0 : (this.appliedIndexOf.get(value) ?? 0);
    if (got < r.minKeyIndex) {
      throw new SimViolation('linearizability', `${what} returned ${String(value)} (index ${got}), older than a write to ${r.key} acknowledged at ${r.minKeyIndex} before the read was called`);
    }
  }

  /** The last write to `key` at or below `index` in the applied log. */
  stateAt(key: string, index: Index): AppliedWrite | undefined {
    const list = this.appliedByKey.get(key);
    if (list === undefined) return undefined;
    let lo = 0;
    let hi = list.length - 1;
    let found: AppliedWrite | undefined;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const w = list[mid];
      if (w === undefined) break;
      if (w.index <= index) {
        found = w;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }

  get highestAcked(): Index {
    return this.maxAcked;
  }

  ackedWrites(): WriteRecord[] {
    return [...this.writes.values()].filter((w) => w.status === 'acked');
  }
}

/** The key and value of a client put entry, if `e` is one. */
function decodePut(e: Entry): { key: string; value: string } | undefined {
  if (e.type !== 'normal' || e.data.byteLength === 0) return undefined;
  try {
    const cmd = decodeEnvelope(e.data).command;
    return cmd.type === 'put' ? { key: text.decode(cmd.key), value: text.decode(cmd.value) } : undefined;
  } catch (err) {
    throw new SimViolation('state-machine-safety', `entry ${e.index} does not decode: ${String(err)}`);
  }
}
