// Reads of the MVCC key space as the state machine holds it: LevelDB merged with the write-behind's buffers
// and, inside an apply, the batch's own writes (an Overlay). Ranges at the current revision read the live
// records ('k'); ranges at a past revision and a watcher's past events read the history ('h', history.ts). What
// etcd does to a range after the read (sort, limit, count, filters) is range-query.ts.
//
// The reader owns no state: the store, the buffers and the revision are the state machine's (MvccReaderHost),
// read at the moment of the call, so a read between two applies sees exactly the applied state.
import { RaftKvError } from '../shared/errors.js';
import { decodeStoredValue } from './codec.js';
import type { StoredValue } from './codec.js';
import { toKeyValue } from './commands.js';
import type { Overlay } from './commands.js';
import { HISTORY_HI, decodeHistoryRecord, historyStart, parseHistoryKey } from './history.js';
import type { HistoryRecord, MvccState } from './history.js';
import { attachedRange, keyOfAttached } from './leases.js';
import type { Db } from './level-store.js';
import { checkResponseBytes, finishRange, hasRevisionFilters, keysNeeded } from './range-query.js';
import { DATA_HI, PREFIX_DATA, keyString, prefixed } from './schema.js';
import type { KeyRange, KeyValue, KvEvent, KvLimits, RangeRequest, RangeResult } from './types.js';
import { ETCD_COMPACTED, ETCD_FUTURE_REV, isEmptyRange, isOpenEnd } from './validate.js';
import type { WriteBehind } from './write-behind.js';
import { mergeWrites } from './write-buffer.js';

const SCAN_READ_BYTES = 1024 * 1024; // iterator read-ahead of range scans
const SCAN_READ_ENTRIES = 2000; // records per iterator read of a range scan

/** What the reader reads, as of the call (the state machine's live state). */
export interface MvccReaderHost {
  db(): Db; // the live store (a restore swaps it)
  readonly writes: WriteBehind; // applied batches not yet in LevelDB
  mvcc(): MvccState; // the store revision and compaction state as of appliedIndex
  readonly limits: KvLimits; // maxResponseBytes bounds a client's range
  check(): void; // throws once the state machine is closed or broken
}

export class MvccReader {
  constructor(private readonly host: MvccReaderHost) {}

  /** The waiting batches' writes to data keys in [lo, hi), newest per key, in key order (only while stalled). */
  private waitingInRange(lo: Uint8Array, hi: Uint8Array): { ks: string; key: Uint8Array; sv: StoredValue | undefined }[] {
    const out: { ks: string; key: Uint8Array; sv: StoredValue | undefined }[] = [];
    for (const [ks, op] of this.host.writes.newestInRange(lo, hi)) {
      out.push({ ks: ks.slice(1), key: op.key.subarray(1), sv: op.type === 'put' ? decodeStoredValue(op.value) : undefined });
    }
    return out.sort((a, b) => (a.ks < b.ks ? -1 : a.ks > b.ks ? 1 : 0));
  }

  read(key: Uint8Array, overlay: Overlay | undefined): StoredValue | undefined {
    if (overlay !== undefined) {
      const ks = keyString(key);
      const w = overlay.data.get(ks);
      if (w !== undefined) return w.sv;
      if (overlay.cache.has(ks)) return overlay.cache.get(ks);
    }
    // On the calling thread, as the apply's prefetch does: an async get costs a pool thread, a promise and an
    // implicit LevelDB snapshot, and under 64 concurrent gets it held the event loop ~40 us per get (profiled)
    // against ~2 us for a cached sync get. A cold block blocks the loop for one disk read, like etcd's mmap read.
    const v = this.host.writes.getSync(prefixed(PREFIX_DATA, key));
    return v === undefined ? undefined : decodeStoredValue(v);
  }

  /** The live keys of a range in key order, the batch's own writes merged over LevelDB. */
  async *scan(range: KeyRange, overlay: Overlay | undefined): AsyncGenerator<[Uint8Array, StoredValue]> {
    if (isEmptyRange(range)) return;
    if (range.end.length === 0) {
      const sv = this.read(range.key, overlay);
      if (sv !== undefined) yield [range.key, sv];
      return;
    }
    // The iterator reads LevelDB, which then holds every batch but this one's. A client read (no overlay) does
    // not wait while the disk is full: it merges the waiting batches, and waiting would deadlock with a
    // retryFlush() that reopens the store once the reads in flight are done.
    if (overlay === undefined && this.host.writes.stalled !== undefined) this.host.check();
    else {
      await this.host.writes.flushIfPossible();
      this.host.check();
    }
    const gte = prefixed(PREFIX_DATA, range.key);
    const lt = isOpenEnd(range.end) ? DATA_HI : prefixed(PREFIX_DATA, range.end);
    // While the disk is full, batches wait in memory: they are merged like this batch's own writes (an apply
    // sees them too). This batch's writes are newer, so they replace a waiting write to the same key.
    const waiting = this.host.writes.stalled === undefined ? [] : this.waitingInRange(gte, lt);
    const own = overlay?.inRange(range) ?? [];
    const pending = waiting.length === 0 ? own : mergeWrites(waiting, own);
    const shadowed = new Set(waiting.map((w) => w.ks));
    let p = 0;
    const it = this.host.db().iterator({ highWaterMarkBytes: SCAN_READ_BYTES, gte, lt });
    try {
      for (;;) {
        const chunk = await it.nextv(SCAN_READ_ENTRIES);
        if (chunk.length === 0) break;
        for (const [k, v] of chunk) {
          const key = k.subarray(1);
          const ks = keyString(key);
          // The batch's own writes up to and including this key come first (and replace it if equal).
          for (let w = pending[p]; w !== undefined && w.ks <= ks; w = pending[++p]) {
            if (w.sv !== undefined) yield [w.key, w.sv];
          }
          if (overlay?.data.has(ks) === true || shadowed.has(ks)) continue; // overwritten or deleted since LevelDB got it
          yield [new Uint8Array(key), decodeStoredValue(v)]; // a plain copy: LevelDB gives Buffers
        }
      }
    } finally {
      await it.close();
    }
    for (let w = pending[p]; w !== undefined; w = pending[++p]) if (w.sv !== undefined) yield [w.key, w.sv];
  }

  /**
   * The keys of a range as of a past revision, in key order: per key, the newest history record at or below
   * `revision`, unless a tombstone. LevelDB's history merged with the write buffers' and this batch's.
   */
  private async *scanAt(range: KeyRange, revision: number, overlay: Overlay | undefined): AsyncGenerator<KeyValue> {
    if (isEmptyRange(range)) return;
    let current: { key: Uint8Array; ks: string; best: { main: number; rec: HistoryRecord } | undefined } | undefined;
    const finishKey = (c: NonNullable<typeof current>): KeyValue | undefined => {
      const b = c.best;
      if (b === undefined || b.rec.tombstone) return undefined;
      return { key: c.key, value: b.rec.value, createRevision: b.rec.createRevision, modRevision: b.main, version: b.rec.version, lease: b.rec.lease };
    };
    for await (const [k, v] of this.historyRecords(range, overlay)) {
      const h = parseHistoryKey(k);
      const ks = keyString(h.key);
      if (current === undefined || current.ks !== ks) {
        const done = current === undefined ? undefined : finishKey(current);
        current = { key: h.key, ks, best: undefined };
        if (done !== undefined) yield done;
      }
      if (v !== undefined && h.main <= revision) current.best = { main: h.main, rec: decodeHistoryRecord(v) };
    }
    if (current !== undefined) {
      const kv = finishKey(current);
      if (kv !== undefined) yield kv;
    }
  }

  /**
   * The history records of `range` in key order: LevelDB's merged with the write buffers' and `overlay`'s (the
   * batch being applied), a buffered write replacing LevelDB's record of the same key. `undefined` is a buffered
   * deletion (a compaction's) of a record LevelDB still has. The buffers are captured in the same turn as the
   * iterator (its implicit snapshot), so both are one view.
   */
  private async *historyRecords(range: KeyRange, overlay: Overlay | undefined): AsyncGenerator<[Uint8Array, Uint8Array | undefined]> {
    const lo = historyStart(range.key);
    const hi = range.end.length === 0 ? historyStart(Uint8Array.from([...range.key, 0])) : isOpenEnd(range.end) ? HISTORY_HI : historyStart(range.end);
    const pending = this.bufferedInRange(lo, hi, overlay);
    const it = this.host.db().iterator({ highWaterMarkBytes: SCAN_READ_BYTES, gte: lo, lt: hi });
    let p = 0;
    try {
      for (;;) {
        const chunk = await it.nextv(SCAN_READ_ENTRIES);
        if (chunk.length === 0) break;
        for (const [k, v] of chunk) {
          const ks = keyString(k);
          for (let w = pending[p]; w !== undefined && w.ks < ks; w = pending[++p]) yield [w.key, w.value];
          const w = pending[p];
          if (w !== undefined && w.ks === ks) {
            p++;
            yield [w.key, w.value];
          } else {
            yield [new Uint8Array(k), v]; // a plain copy: LevelDB gives Buffers
          }
        }
      }
    } finally {
      await it.close();
    }
    for (let w = pending[p]; w !== undefined; w = pending[++p]) yield [w.key, w.value];
  }

  /**
   * The changes to keys of `range` at revisions `fromRevision`..`toRevision` from the history, in revision then
   * sub-revision order, each with the key's previous record as prevKv: what a watcher that starts in the past
   * is sent. At most about `maxEvents` (whole revisions: the first one whole even if larger); `coveredTo` is the
   * last revision the answer covers completely. COMPACTED if `fromRevision` is at or below the compacted
   * revision (etcd lets a watcher start at the compaction revision itself: see below), FUTURE_REV never (the
   * caller asks for applied revisions).
   */
  async historyEvents(range: KeyRange, fromRevision: number, toRevision: number, maxEvents: number): Promise<{ events: KvEvent[]; coveredTo: number }> {
    this.host.check();
    if (fromRevision < this.host.mvcc().compacted) throw new RaftKvError('COMPACTED', ETCD_COMPACTED);
    const to = Math.min(toRevision, this.host.mvcc().revision);
    if (isEmptyRange(range) || fromRevision > to) return { events: [], coveredTo: to };
    let limit = to; // lowered when more than maxEvents were found: later revisions are left for the next call
    let events: KvEvent[] = [];
    // The key being read: its latest record so far (kv, at main) and the key as of the revision before that one.
    let prev: { ks: string; kv: KeyValue | undefined; main: number; before: KeyValue | undefined } | undefined;
    const trim = (): void => {
      events.sort((a, b) => a.kv.modRevision - b.kv.modRevision || a.sub - b.sub);
      const last = events[maxEvents - 1];
      if (last === undefined) return;
      const first = events[0]?.kv.modRevision ?? last.kv.modRevision;
      // Keep whole revisions: up to the one before the revision of the maxEvents-th (or that one, if it is the first).
      limit = last.kv.modRevision > first ? last.kv.modRevision - 1 : first;
      events = events.filter((e) => e.kv.modRevision <= limit);
    };
    const take = (k: Uint8Array, v: Uint8Array | undefined): void => {
      if (v === undefined) return; // deleted by a compaction still in the buffers
      const h = parseHistoryKey(k);
      const ks = keyString(h.key);
      if (prev?.ks !== ks) prev = { ks, kv: undefined, main: 0, before: undefined };
      if (h.main !== prev.main) prev.before = prev.kv; // etcd's prev_kv: the key at revision main - 1
      prev.main = h.main;
      const rec = decodeHistoryRecord(v);
      const kv: KeyValue = rec.tombstone
        ? { key: h.key, value: new Uint8Array(0), createRevision: 0, modRevision: h.main, version: 0, lease: 0 }
        : { key: h.key, value: rec.value, createRevision: rec.createRevision, modRevision: h.main, version: rec.version, lease: rec.lease };
      if (h.main >= fromRevision && h.main <= limit) {
        events.push({ type: rec.tombstone ? 'delete' : 'put', kv, prevKv: prev.before, sub: h.sub });
        if (events.length >= 2 * maxEvents) trim();
      }
      prev.kv = rec.tombstone ? undefined : kv;
    };
    for await (const [k, v] of this.historyRecords(range, undefined)) take(k, v);
    // A compaction applied while the scan ran may have deleted some of what it was to read.
    if (fromRevision < this.host.mvcc().compacted) throw new RaftKvError('COMPACTED', ETCD_COMPACTED);
    trim();
    return { events, coveredTo: limit };
  }

  /** The write buffers' and the batch's writes to LevelDB keys in [lo, hi), newest per key, in key order. */
  private bufferedInRange(lo: Uint8Array, hi: Uint8Array, overlay: Overlay | undefined): { ks: string; key: Uint8Array; value: Uint8Array | undefined }[] {
    const newest = new Map<string, { key: Uint8Array; value: Uint8Array | undefined }>();
    for (const [ks, op] of this.host.writes.newestInRange(lo, hi)) newest.set(ks, { key: op.key, value: op.type === 'put' ? op.value : undefined });
    if (overlay !== undefined) {
      const los = keyString(lo);
      const his = keyString(hi);
      for (const [ks, h] of overlay.history) if (ks >= los && ks < his) newest.set(ks, { key: h.key, value: h.value });
    }
    return [...newest].map(([ks, v]) => ({ ks, ...v })).sort((a, b) => (a.ks < b.ks ? -1 : a.ks > b.ks ? 1 : 0));
  }

  /**
   * etcd's Range: at `req.revision` (<= 0: `current`), FUTURE_REV above `current`, COMPACTED below the compacted
   * revision; the header revision is `current`.
   */
  async range(req: RangeRequest, overlay: Overlay | undefined, current: number): Promise<RangeResult> {
    const mvcc = overlay?.mvcc ?? this.host.mvcc();
    const asked = req.revision ?? 0;
    if (asked > current) throw new RaftKvError('FUTURE_REV', ETCD_FUTURE_REV);
    const revision = asked <= 0 ? current : asked;
    if (revision < mvcc.compacted) throw new RaftKvError('COMPACTED', ETCD_COMPACTED);
    // A range inside a txn being applied is not limited: its answer is decided by the log alone, on every member.
    const maxBytes = overlay === undefined ? this.host.limits.maxResponseBytes : Number.POSITIVE_INFINITY;
    const needed = keysNeeded(req);
    // Without a limit or filters the answer holds every key read (sorted or not): past the byte limit it can only
    // fail, so it fails before reading the rest.
    const failEarly = req.limit === 0 && !hasRevisionFilters(req);
    const kvs: KeyValue[] = [];
    let count = 0;
    let bytes = 0;
    const keep = (kv: KeyValue): void => {
      count++;
      if (req.countOnly || (needed !== 0 && kvs.length >= needed)) return;
      kvs.push(kv);
      bytes += kv.key.length + (req.keysOnly ? 0 : kv.value.length);
      if (failEarly && bytes > maxBytes) checkResponseBytes(kvs, maxBytes);
    };
    if (revision === current) {
      for await (const [key, sv] of this.scan(req, overlay)) keep(toKeyValue(key, sv));
    } else {
      for await (const kv of this.scanAt(req, revision, overlay)) keep(kv);
    }
    return finishRange(req, kvs, count, current, maxBytes);
  }

  /**
   * The keys attached to lease `id`, in key order: LevelDB's attachment records merged with the write buffers'
   * and the batch's (a put that attached or moved a key earlier in the batch counts).
   */
  async attachedKeys(id: number, overlay: Overlay | undefined): Promise<Uint8Array[]> {
    const { lo, hi } = attachedRange(id);
    const los = keyString(lo);
    const his = keyString(hi);
    const pending = new Map<string, boolean>(); // newest buffered state per attachment record
    for (const [ks, op] of this.host.writes.newestInRange(lo, hi)) pending.set(ks, op.type === 'put');
    if (overlay !== undefined) for (const [ks, a] of overlay.attached) if (ks >= los && ks < his) pending.set(ks, a.present);
    const found = new Map<string, Uint8Array>();
    for await (const k of this.host.db().keys({ gte: lo, lt: hi })) {
      const ks = keyString(k);
      if (!pending.has(ks)) found.set(ks, keyOfAttached(k));
    }
    for (const [ks, present] of pending) if (present) found.set(ks, keyOfAttached(Buffer.from(ks, 'latin1')));
    return [...found].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([, k]) => k);
  }
}
