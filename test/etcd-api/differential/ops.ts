// The seeded generator of the differential test: one random sequence of etcd KV requests (Range, Put,
// DeleteRange, Txn, Compact, and requests etcd refuses) over a dozen colliding keys. What it draws depends only
// on the seed and on what the reference (etcd) answered so far (its revision and compacted revision), so a seed
// replays the same sequence against the same etcd.
import type {
  CompactionRequest,
  Compare,
  DeleteRangeRequest,
  MessageInit,
  PutRequest,
  RangeRequest,
  RequestOp,
  TxnRequest,
} from '../../../src/protocol/etcd-proto.js';
import { Compare_CompareResult, Compare_CompareTarget } from '../../../src/protocol/etcd-proto.js';
import type { SeededRng } from '../../../src/raft/rng.js';

// protobufjs leaves an empty bytes field off the wire, but etcd tells an explicitly empty range_end from an
// unset one (on a Range or a read-only Txn it means every key >= key). Two op fields send one anyway (compare.ts):
// explicitEmptyRangeEnd on a Range, and successRangeWithEmptyEnd (a Range appended to the Txn's success ops).
export type DiffOp =
  | { readonly kind: string; readonly method: 'Range'; readonly request: MessageInit<RangeRequest>; readonly explicitEmptyRangeEnd?: true }
  | { readonly kind: string; readonly method: 'Put'; readonly request: MessageInit<PutRequest> }
  | { readonly kind: string; readonly method: 'DeleteRange'; readonly request: MessageInit<DeleteRangeRequest> }
  | {
      readonly kind: string;
      readonly method: 'Txn';
      readonly request: MessageInit<TxnRequest>;
      readonly successRangeWithEmptyEnd?: MessageInit<RangeRequest>;
    }
  | { readonly kind: string; readonly method: 'Compact'; readonly request: MessageInit<CompactionRequest> };

/** What the generator knows of the store: the reference's revision and compacted revision (0: none yet). */
export interface GenState {
  revision: bigint;
  compacted: bigint;
}

/**
 * What the generator leaves out, e.g. while a known mismatch is being fixed: op kinds (DiffOp.kind) and the
 * features named in FEATURES.
 */
export type GenOptions = { readonly exclude: ReadonlySet<string> };

/** Parts of ops that can be left out by name (GenOptions.exclude). */
export const FEATURES = {
  negativeLease: 'negative-lease', // a Put with a negative lease id inside a Txn, or with ignore_lease
  // A Txn holding both a Put that may fail on apply (a lease, ignore_value, ignore_lease) and a Range that may
  // fail (a negative, compacted or future revision): which error wins.
  txnPutAndRangeErrors: 'txn-put-and-range-errors',
  // A top-level Put with both a lease id and ignore_value (on a missing key: which error wins).
  putLeaseAndIgnoreValue: 'put-lease-and-ignore-value',
  // A Txn branch with an invalid Put (value with ignore_value, lease with ignore_lease) before an empty RequestOp.
  txnBadOpBeforeEmptyOp: 'txn-bad-op-before-empty-op',
  // etcd 3.4.23 panics ("unexpected error during txn": key not found) on a Txn that deletes a key with
  // range_end "\0" and then puts it with ignore_lease or ignore_value: its duplicate check sees [key, "\0") as
  // empty and its put check reads the store before the txn. Never drawn unless asked for (it kills etcd).
  etcdPanicOpenDeleteThenIgnorePut: 'etcd-panic-open-delete-then-ignore-put',
  // Puts of the seldom-written keys too, so that more than 12 keys exist: etcd sorts a range by a non-key
  // target with Go's sort.Sort, stable (insertion sort) up to 12 kvs only, so ties of 13 or more come in
  // pdqsort's order. Left out, only the 12 KEYS are written.
  moreThan12Keys: 'more-than-12-keys',
} as const;

function txnOps(t: MessageInit<TxnRequest>): MessageInit<RequestOp>[] {
  const out: MessageInit<RequestOp>[] = [];
  for (const op of [...(t.success ?? []), ...(t.failure ?? [])]) {
    if (op === null) continue;
    out.push(op);
    if (op.requestTxn !== undefined && op.requestTxn !== null) out.push(...txnOps(op.requestTxn));
  }
  return out;
}

/** True if the txn (at any depth) deletes with range_end "\0" and puts with ignore_value or ignore_lease. */
function hasOpenDeleteAndIgnorePut(t: MessageInit<TxnRequest>): boolean {
  const ops = txnOps(t);
  const openDelete = ops.some((op) => {
    const end = op.requestDeleteRange?.rangeEnd;
    return end !== undefined && end !== null && end.length === 1 && end[0] === 0;
  });
  const ignorePut = ops.some((op) => op.requestPut?.ignoreLease === true || op.requestPut?.ignoreValue === true);
  return openDelete && ignorePut;
}

/** True if some Put of the txn (at any depth, either branch) may fail on apply. */
function hasRiskyPut(t: MessageInit<TxnRequest>): boolean {
  return [...(t.success ?? []), ...(t.failure ?? [])].some((op) => {
    if (op === null) return false;
    const p = op.requestPut;
    if (p !== undefined && p !== null && ((p.lease ?? 0n) !== 0n || p.ignoreValue === true || p.ignoreLease === true)) return true;
    return op.requestTxn !== undefined && op.requestTxn !== null && hasRiskyPut(op.requestTxn);
  });
}

/** True if some Range of the txn (at any depth, either branch) may fail on its revision. */
function hasRiskyRange(t: MessageInit<TxnRequest>, s: GenState): boolean {
  return [...(t.success ?? []), ...(t.failure ?? [])].some((op) => {
    if (op === null) return false;
    const rev = op.requestRange?.revision ?? 0n;
    if (rev < 0n || (rev > 0n && (rev <= s.compacted || rev > s.revision))) return true;
    return op.requestTxn !== undefined && op.requestTxn !== null && hasRiskyRange(op.requestTxn, s);
  });
}

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

/** The keys: prefixes of each other, one holding a 0x00 byte, one of a single 0xff (its prefix end is "\0"). */
export const KEYS: readonly Buffer[] = ['a', 'a\0', 'a\0b', 'ab', 'abc', 'abd', 'b', 'ba', 'c', 'foo', 'foo/bar', '\xff'].map(b);
/** Keys seldom written (a tenth of the keys drawn): mostly missing keys, and range bounds between the others. */
const MISSING: readonly Buffer[] = ['aa', 'abcd', 'bb', 'd', 'foo/', 'zz'].map(b);
const VALUES: readonly Buffer[] = ['', 'v0', 'v1', 'v2', 'v3', 'x', 'zz', '\0'].map(b);
const NO_SUCH_LEASE = 0x1234_5678_9abcn;

/** etcd's clientv3.GetPrefixRangeEnd: the key with its last byte below 0xff incremented, or "\0" if none is. */
export function prefixEnd(key: Buffer): Buffer {
  for (let i = key.length - 1; i >= 0; i--) {
    const c = key[i] ?? 0xff;
    if (c < 0xff) {
      const end = Buffer.from(key.subarray(0, i + 1));
      end[i] = c + 1;
      return end;
    }
  }
  return Buffer.from([0]);
}

export class OpGenerator {
  constructor(
    private readonly rng: SeededRng,
    private readonly opts: GenOptions = { exclude: new Set() },
  ) {}

  private chance(p: number): boolean {
    return this.rng.float() < p;
  }

  private pick<T>(xs: readonly T[]): T {
    const x = xs[this.rng.int(xs.length)];
    if (x === undefined) throw new Error('pick from an empty list');
    return x;
  }

  private int(lo: number, hi: number): number {
    return lo + this.rng.int(hi - lo + 1); // inclusive
  }

  private key(): Buffer {
    return this.chance(0.9) ? this.pick(KEYS) : this.pick(MISSING);
  }

  /** A key to put: any key, or one of the 12 KEYS while more-than-12-keys is left out. */
  private writeKey(): Buffer {
    return this.has(FEATURES.moreThan12Keys) ? this.key() : this.pick(KEYS);
  }

  private value(): Buffer {
    return this.pick(VALUES);
  }

  /** A key range: one key (range_end unset), [key, end) with end anywhere (below key too), a prefix, or key.. ("\0"). */
  private keyRange(): { key: Buffer; rangeEnd?: Buffer } {
    const key = this.key();
    const r = this.rng.float();
    if (r < 0.45) return { key };
    if (r < 0.7) return { key, rangeEnd: this.chance(0.8) ? this.pick(KEYS) : this.pick(MISSING) };
    if (r < 0.9) return { key, rangeEnd: prefixEnd(key) };
    return { key, rangeEnd: Buffer.from([0]) };
  }

  /** A revision somewhere in [compacted - 1, revision + 1], mostly in the kept history. */
  private revisionNear(s: GenState): bigint {
    const lo = s.compacted > 0n ? s.compacted : 1n;
    const span = Number(s.revision - lo);
    const r = this.rng.float();
    if (r < 0.85) return lo + BigInt(this.int(0, Math.max(0, span)));
    if (r < 0.92) return lo - 1n;
    return s.revision + 1n;
  }

  private readRevision(s: GenState): bigint {
    const r = this.rng.float();
    if (r < 0.5) return 0n;
    if (r < 0.6) return s.revision;
    if (r < 0.8) return this.revisionNear(s); // past, kept (or just compacted, or just future)
    if (r < 0.86) return s.compacted - BigInt(this.int(0, 2)); // at or below the compacted revision
    if (r < 0.93) return -BigInt(this.int(1, 3)); // negative
    return s.revision + BigInt(this.pick([1, 2, 100])); // future
  }

  private filterRevision(s: GenState): bigint {
    return this.chance(0.85) ? 0n : BigInt(this.int(0, Number(s.revision) + 1));
  }

  range(s: GenState): MessageInit<RangeRequest> {
    const req: { -readonly [K in keyof MessageInit<RangeRequest>]: MessageInit<RangeRequest>[K] } = { ...this.keyRange() };
    const rev = this.readRevision(s);
    if (rev !== 0n) req.revision = rev;
    if (this.chance(0.4)) req.sortOrder = this.int(0, 2);
    if (this.chance(0.4)) req.sortTarget = this.int(0, 4);
    if (this.chance(0.5)) req.limit = this.chance(0.05) ? -1n : BigInt(this.int(0, 4));
    if (this.chance(0.2)) req.keysOnly = true;
    if (this.chance(0.1)) req.countOnly = true;
    if (this.chance(0.3)) req.serializable = true;
    req.minModRevision = this.filterRevision(s);
    req.maxModRevision = this.filterRevision(s);
    req.minCreateRevision = this.filterRevision(s);
    req.maxCreateRevision = this.filterRevision(s);
    return req;
  }

  private has(feature: string): boolean {
    return !this.opts.exclude.has(feature);
  }

  put(key: Buffer = this.writeKey(), inTxn = false): MessageInit<PutRequest> {
    const req: { -readonly [K in keyof MessageInit<PutRequest>]: MessageInit<PutRequest>[K] } = { key, value: this.value() };
    if (this.chance(0.5)) req.prevKv = true;
    const r = this.rng.float();
    if (r < 0.03) req.lease = NO_SUCH_LEASE;
    else if (r < 0.04) req.lease = -1n;
    const leaseSet = req.lease !== undefined;
    if (this.chance(0.08) && (inTxn || !leaseSet || this.has(FEATURES.putLeaseAndIgnoreValue))) {
      req.ignoreValue = true;
      if (this.chance(0.8)) req.value = Buffer.alloc(0);
    }
    if (this.chance(0.08)) {
      req.ignoreLease = true;
      if (this.chance(0.3)) req.lease = NO_SUCH_LEASE;
    }
    if (req.lease === -1n && (inTxn || req.ignoreLease === true) && !this.has(FEATURES.negativeLease)) req.lease = NO_SUCH_LEASE;
    return req;
  }

  del(): MessageInit<DeleteRangeRequest> {
    return { ...this.keyRange(), ...(this.chance(0.5) ? { prevKv: true } : {}) };
  }

  compare(s: GenState): MessageInit<Compare> {
    const target: Compare_CompareTarget = this.int(0, 4);
    const result: Compare_CompareResult = this.int(0, 3);
    const c: { -readonly [K in keyof MessageInit<Compare>]: MessageInit<Compare>[K] } = { key: this.key(), target, result };
    const r = this.rng.float();
    if (r < 0.15) c.rangeEnd = this.chance(0.5) ? prefixEnd(c.key as Buffer) : this.pick(KEYS);
    else if (r < 0.2) c.rangeEnd = Buffer.from([0]);
    // Mostly the union member of the target; sometimes none, or another member (etcd compares against 0 / nil).
    const u = this.rng.float();
    const member: Compare_CompareTarget | undefined = u < 0.9 ? target : u < 0.95 ? undefined : this.int(0, 4);
    switch (member) {
      case Compare_CompareTarget.VALUE:
        c.value = this.value();
        break;
      case Compare_CompareTarget.VERSION:
        c.version = BigInt(this.int(0, 4));
        break;
      case Compare_CompareTarget.CREATE:
        c.createRevision = this.chance(0.2) ? 0n : this.revisionNear(s);
        break;
      case Compare_CompareTarget.MOD:
        c.modRevision = this.chance(0.2) ? 0n : this.revisionNear(s);
        break;
      case Compare_CompareTarget.LEASE:
        c.lease = this.chance(0.8) ? 0n : NO_SUCH_LEASE;
        break;
      case undefined:
        break;
    }
    return c;
  }

  requestOp(s: GenState, depth: number): MessageInit<RequestOp> {
    const r = this.rng.float();
    if (r < 0.35) return { requestPut: this.put(this.writeKey(), true) };
    if (r < 0.55) return { requestDeleteRange: this.del() };
    if (r < 0.85 || depth >= 2) return { requestRange: this.range(s) };
    return { requestTxn: this.txn(s, depth + 1) };
  }

  txn(s: GenState, depth = 0): MessageInit<TxnRequest> {
    const compare = Array.from({ length: this.int(0, 3) }, () => this.compare(s));
    const ops = (): MessageInit<RequestOp>[] => Array.from({ length: this.int(0, depth === 0 ? 4 : 2) }, () => this.requestOp(s, depth));
    return { compare, success: ops(), failure: ops() };
  }

  /** A txn of compares and Ranges only (nested ones too): served through ReadIndex, not the log (etcd's isTxnReadonly). */
  readOnlyTxn(s: GenState, depth = 0): MessageInit<TxnRequest> {
    const compare = Array.from({ length: this.int(0, 3) }, () => this.compare(s));
    const op = (): MessageInit<RequestOp> => (depth < 2 && this.chance(0.15) ? { requestTxn: this.readOnlyTxn(s, depth + 1) } : { requestRange: this.range(s) });
    const ops = (): MessageInit<RequestOp>[] => Array.from({ length: this.int(0, depth === 0 ? 4 : 2) }, op);
    return { compare, success: ops(), failure: ops() };
  }

  compact(s: GenState): MessageInit<CompactionRequest> {
    const r = this.rng.float();
    let revision: bigint;
    if (r < 0.7) revision = s.revision - BigInt(this.int(0, 20));
    else if (r < 0.8) revision = s.compacted - BigInt(this.int(0, 2)); // already compacted
    else if (r < 0.9) revision = s.revision + BigInt(this.int(1, 3)); // future
    else revision = BigInt(this.int(-1, 1)); // 0, 1 or negative
    return { revision, ...(this.chance(0.3) ? { physical: true } : {}) };
  }

  /** Requests etcd refuses before (or while) applying them. */
  bad(s: GenState): DiffOp {
    const r = this.rng.int(13);
    const empty = Buffer.alloc(0);
    switch (r) {
      case 0:
        return { kind: 'bad:empty-key-put', method: 'Put', request: { key: empty, value: this.value() } };
      case 1:
        return { kind: 'bad:empty-key-range', method: 'Range', request: { key: empty, ...(this.chance(0.5) ? { rangeEnd: this.pick(KEYS) } : {}) } };
      case 2:
        return { kind: 'bad:empty-key-delete', method: 'DeleteRange', request: { key: empty } };
      case 3: {
        const key = this.pick(KEYS);
        const other = this.chance(0.5) ? { requestPut: this.put(key, true) } : { requestDeleteRange: { key, ...(this.chance(0.5) ? { rangeEnd: prefixEnd(key) } : {}) } };
        const branch = [{ requestPut: this.put(key, true) }, other];
        return { kind: 'bad:txn-duplicate-key', method: 'Txn', request: this.chance(0.5) ? { success: branch } : { compare: [this.compare(s)], failure: branch } };
      }
      case 4: {
        const n = 129;
        const where = this.rng.int(3);
        const many = Array.from({ length: n }, () => ({ requestRange: { key: this.pick(KEYS) } }));
        const compares = Array.from({ length: n }, () => this.compare(s));
        return { kind: 'bad:txn-too-many-ops', method: 'Txn', request: where === 0 ? { success: many } : where === 1 ? { failure: many } : { compare: compares } };
      }
      case 5: {
        // A nested txn may hold 128 minus its parent's op count.
        const parentOps = this.int(60, 127);
        const inner = 128 - parentOps + this.int(0, 1); // 1 above the limit half the time
        const parent = Array.from({ length: parentOps - 1 }, () => ({ requestRange: { key: this.pick(KEYS) } }));
        const nested = { requestTxn: { success: Array.from({ length: inner }, () => ({ requestRange: { key: this.pick(KEYS) } })) } };
        return { kind: 'bad:txn-nested-too-many-ops', method: 'Txn', request: { success: [...parent, nested] } };
      }
      case 6: {
        const put = this.has(FEATURES.txnBadOpBeforeEmptyOp) ? this.put(this.writeKey(), true) : { key: this.writeKey(), value: this.value() };
        const branch = [...(this.chance(0.5) ? [{ requestPut: put }] : []), {}];
        return { kind: 'bad:txn-empty-request-op', method: 'Txn', request: this.chance(0.5) ? { success: branch } : { failure: branch } };
      }
      case 7: {
        const op = this.pick<MessageInit<RequestOp>>([{ requestPut: { key: empty, value: this.value() } }, { requestRange: { key: empty } }, { requestDeleteRange: { key: empty } }]);
        const nest = this.chance(0.3);
        const success = nest ? [{ requestTxn: { success: [op] } }] : [op];
        return { kind: 'bad:txn-empty-key', method: 'Txn', request: this.chance(0.3) ? { compare: [{ ...this.compare(s), key: empty }] } : { success } };
      }
      case 9: {
        // Enum values outside etcd's enums (proto3 keeps them): a sort order, or (etcd 3.4 panics) a sort target.
        const range = { ...this.range(s), sortOrder: this.pick([3, 7, 100]) };
        return this.chance(0.5)
          ? { kind: 'bad:unknown-sort-order', method: 'Range', request: range }
          : { kind: 'bad:unknown-sort-order', method: 'Txn', request: { success: [{ requestRange: range }] } };
      }
      case 10: {
        const range = { ...this.range(s), sortTarget: this.pick([5, 9]) };
        return { kind: 'bad:unknown-sort-target', method: 'Range', request: range };
      }
      case 11:
      case 12: {
        const c = { ...this.compare(s), ...(r === 11 ? { result: this.pick([4, 9]) } : { target: this.pick([5, 9]) }) };
        const kind = r === 11 ? 'bad:unknown-compare-result' : 'bad:unknown-compare-target';
        return { kind, method: 'Txn', request: { compare: [c], success: [{ requestRange: { key: this.pick(KEYS) } }], failure: [{ requestPut: { key: this.pick(KEYS), value: this.value() } }] } };
      }
      default:
        // A compare with an empty key in a txn that is otherwise fine.
        return { kind: 'bad:txn-compare-empty-key', method: 'Txn', request: { compare: [{ ...this.compare(s), key: empty }], success: [{ requestRange: { key: this.pick(KEYS) } }] } };
    }
  }

  private draw(s: GenState): DiffOp {
    const r = this.rng.float();
    if (r < 0.3) return { kind: 'put', method: 'Put', request: this.put() };
    if (r < 0.4) return { kind: 'delete', method: 'DeleteRange', request: this.del() };
    if (r < 0.6) {
      for (;;) {
        const txn = this.txn(s);
        if (!this.has(FEATURES.txnPutAndRangeErrors) && hasRiskyPut(txn) && hasRiskyRange(txn, s)) continue;
        if (!this.has(FEATURES.etcdPanicOpenDeleteThenIgnorePut) && hasOpenDeleteAndIgnorePut(txn)) continue;
        return { kind: 'txn', method: 'Txn', request: txn };
      }
    }
    if (r < 0.65) return { kind: 'txn-read-only', method: 'Txn', request: this.readOnlyTxn(s) };
    if (r < 0.89) return { kind: 'range', method: 'Range', request: this.range(s) };
    if (r < 0.9) {
      // An explicitly empty range_end: a Range, or a read-only Txn ending with one.
      const { rangeEnd: _end, ...range } = this.range(s);
      if (this.chance(0.5)) return { kind: 'range-explicit-empty-end', method: 'Range', request: range, explicitEmptyRangeEnd: true };
      const request = { compare: Array.from({ length: this.int(0, 2) }, () => this.compare(s)), success: [{ requestRange: this.range(s) }] };
      return { kind: 'txn-explicit-empty-end', method: 'Txn', request, successRangeWithEmptyEnd: range };
    }
    if (r < 0.915) return { kind: 'compact', method: 'Compact', request: this.compact(s) };
    return this.bad(s);
  }

  /** The next op, drawing again while it is of an excluded kind. */
  next(s: GenState): DiffOp {
    for (;;) {
      const op = this.draw(s);
      if (!this.opts.exclude.has(op.kind)) return op;
    }
  }
}
