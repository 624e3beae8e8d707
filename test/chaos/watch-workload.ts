// The chaos run's watchers and lease workers (checked by watch-check.ts), over etcd's v3 API through the project's
// client library (src/client: EtcdChannel, Watcher, Lease):
// - library watchers: Watcher, which resumes by itself after a broken stream (one segment each; some also cancel
//   and resume by hand at the last seen revision + 1 every few seconds: a new segment);
// - raw watchers: a Watch stream of their own with no client-side filtering (the library drops events below its
//   resume revision, which would hide a member that repeats or goes back), resumed by hand at the last seen
//   revision + 1 whenever the stream breaks (one segment per stream);
// - lease workers: a lease granted, a key put with it, then kept alive (TTL 10 s), left to expire (TTL 2 s) or
//   revoked after a while; at the end expired and revoked keys must be gone and kept-alive ones still there.
// Every watcher watches the prefix WATCH_PREFIX, which holds the chaos workers' keys and the lease keys.
import { setMaxListeners } from 'node:events';
import { EtcdChannel } from '../../src/client/etcd-channel.js';
import { Watcher, WatchCompactedError, type WatchBatch } from '../../src/client/watch.js';
import { grantLease, type Lease } from '../../src/client/lease.js';
import type { DialTlsConfig } from '../../src/client/dial-options.js';
import { fromEtcdError } from '../../src/protocol/etcd-errors.js';
import { Event_EventType } from '../../src/protocol/etcd-proto.js';
import type { KeyValue, WatchResponse } from '../../src/protocol/etcd-types.js';
import type { SeededRng } from './nemesis.js';
import type { AckWrite, CompactedResume, LeaseMode, LeaseRecord, SeenEvent, SegmentEnd, WatchRecord, WatchSegment } from './watch-check.js';

/** The watched prefix: the chaos keys are k0..kN and the lease keys kl<n>. */
export const WATCH_PREFIX = 'k';
const PREFIX_END = 'l';
const KEEPALIVE_TTL_S = 10; // longer than any fault the nemesis holds (4 s) plus an election
const EXPIRE_TTL_S = 2; // above raftkv's minimum TTL for a 500 ms election timeout
const REVOKE_TTL_S = 6; // if its revoke never gets through, it expires before the end's wait is over
const RESUME_EVERY_MS: readonly [number, number] = [1500, 4000]; // hand resumes of library watchers
const RAW_CREATE_TIMEOUT_MS = 2000; // a member that takes the stream but never confirms the watch is given up on
const RAW_RETRY_MS = 200;
const LEASE_EVERY_MS: readonly [number, number] = [300, 900];
const MAX_LEASES = 24; // per run: enough for every mode several times, few enough to read back at the end

export interface WatchWorkloadOptions {
  readonly endpoints: readonly string[];
  readonly tls?: DialTlsConfig;
  readonly watchers: number; // library + raw watchers, half each (at least one of each)
  readonly leases: boolean;
  readonly rng: SeededRng;
  readonly log: (line: string) => void;
  readonly electionTimeoutMs: number;
}

interface SegmentBuilder {
  readonly fromRevision: number;
  readonly events: SeenEvent[];
  end: SegmentEnd | undefined;
}

class WatchLog {
  readonly segments: SegmentBuilder[] = [];
  private batches = 0;
  lastRevision = 0; // of the last event seen, over all segments

  constructor(
    readonly name: string,
    readonly prevKv: boolean,
  ) {}

  open(fromRevision: number): SegmentBuilder {
    const s: SegmentBuilder = { fromRevision, events: [], end: undefined };
    this.segments.push(s);
    return s;
  }

  /** The revision a resume starts at: the last seen + 1, or the last segment's start when it saw nothing. */
  resumeRevision(): number {
    const lastFrom = this.segments[this.segments.length - 1]?.fromRevision ?? 1;
    return this.lastRevision + 1 > lastFrom ? this.lastRevision + 1 : lastFrom;
  }

  record(s: SegmentBuilder, events: readonly { type: 'put' | 'delete'; kv: KeyValue; prevKv: KeyValue | null }[]): void {
    const batch = ++this.batches;
    for (const e of events) {
      const revision = Number(e.kv.modRevision);
      s.events.push({
        batch,
        type: e.type,
        key: e.kv.key.toString('utf8'),
        revision,
        createRevision: Number(e.kv.createRevision),
        version: Number(e.kv.version),
        value: e.type === 'put' ? e.kv.value.toString('utf8') : '',
        prevKv: e.prevKv === null ? null : { value: e.prevKv.value.toString('utf8'), modRevision: Number(e.prevKv.modRevision) },
      });
      if (revision > this.lastRevision) this.lastRevision = revision;
    }
  }

  toRecord(): WatchRecord {
    return { name: this.name, prevKv: this.prevKv, segments: this.segments.map((s): WatchSegment => ({ fromRevision: s.fromRevision, events: s.events, end: s.end ?? { kind: 'stopped' } })) };
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

interface LeaseState {
  id: string;
  key: string;
  mode: LeaseMode;
  putRevision: number | undefined;
  revokeRevision: number | undefined;
  lost: string | undefined;
  lease: Lease | undefined;
  final: LeaseRecord['final'];
}

export class WatchWorkload {
  private readonly channel: EtcdChannel;
  private readonly logs: WatchLog[] = [];
  private readonly loops: Promise<void>[] = [];
  private readonly leaseStates: LeaseState[] = [];
  private readonly leaseWrites: AckWrite[] = [];
  private stopping = false;
  private leasesStopped = false;
  private readonly stopWatchers = new AbortController();
  private readonly current = new Set<Watcher>();
  private leaseLoop: Promise<void> = Promise.resolve();
  startRevision = 0;

  constructor(private readonly opts: WatchWorkloadOptions) {
    setMaxListeners(0, this.stopWatchers.signal); // every watcher (and each raw segment) listens to it
    this.channel = new EtcdChannel({ endpoints: opts.endpoints, ...(opts.tls !== undefined ? { tls: opts.tls } : {}), timeoutMs: 4000, attemptTimeoutMs: 1000, backoffMinMs: 50, backoffMaxMs: 500 });
  }

  /** Reads the current revision, then starts the watchers at seeded revisions up to it (+1) and the lease workers. */
  async start(): Promise<void> {
    const r = await this.channel.unary('KV', 'Range', { key: Buffer.from(WATCH_PREFIX), rangeEnd: Buffer.from(PREFIX_END), countOnly: true }, 'read');
    const rev = Number(r.header?.revision ?? 0n);
    this.startRevision = rev;
    const n = Math.max(2, this.opts.watchers);
    for (let i = 0; i < n; i++) {
      const raw = i % 2 === 1;
      const prevKv = i % 3 !== 2;
      const from = Math.max(1, rev + 1 - this.opts.rng.int(Math.min(rev, 20) + 1)); // some start in the past
      const log = new WatchLog(`${raw ? 'raw' : 'library'}-watcher-${i}${prevKv ? '-prevkv' : ''}`, prevKv);
      this.logs.push(log);
      this.loops.push(raw ? this.rawWatcher(log, from) : this.libraryWatcher(log, from, i % 4 === 0));
    }
    if (this.opts.leases) this.leaseLoop = this.leaseWorker();
    this.opts.log(`watch workload: ${n} watchers from revision ~${rev}${this.opts.leases ? ', lease worker' : ''}`);
  }

  /** The acknowledged lease puts, for the checker (the workers' own writes come from the harness). */
  get writes(): readonly AckWrite[] {
    return this.leaseWrites;
  }

  private async libraryWatcher(log: WatchLog, from: number, resumeByHand: boolean): Promise<void> {
    let next = from;
    while (!this.stopping) {
      const seg = log.open(next);
      const w = new Watcher(this.channel, WATCH_PREFIX, { end: PREFIX_END, fromRevision: next, prevKv: log.prevKv, signal: this.stopWatchers.signal });
      this.current.add(w);
      const handTimer = resumeByHand ? setTimeout(() => w.cancel(), this.opts.rng.between(RESUME_EVERY_MS[0], RESUME_EVERY_MS[1])) : undefined;
      try {
        for await (const b of w as AsyncIterable<WatchBatch>) log.record(seg, b.events.map((e) => ({ type: e.type, kv: e.kv, prevKv: e.prevKv ?? null })));
        seg.end = { kind: 'stopped' };
      } catch (err) {
        seg.end = err instanceof WatchCompactedError ? { kind: 'compacted', compactRevision: Number(err.compactRevision) } : { kind: 'error', message: errorText(err) };
        this.opts.log(`${log.name}: ${errorText(err)}`);
        return;
      } finally {
        if (handTimer !== undefined) clearTimeout(handTimer);
        this.current.delete(w);
      }
      next = log.resumeRevision();
    }
  }

  /** One raw Watch stream per segment; a broken stream is resumed at the last seen revision + 1 elsewhere. */
  private async rawWatcher(log: WatchLog, from: number): Promise<void> {
    let next = from;
    while (!this.stopping) {
      const seg = log.open(next);
      const end = await this.rawSegment(log, seg);
      seg.end = end;
      if (end.kind !== 'stopped') {
        this.opts.log(`${log.name}: ${JSON.stringify(end)}`);
        return;
      }
      next = log.resumeRevision();
      if (!this.stopping) await delay(RAW_RETRY_MS);
    }
  }

  private rawSegment(log: WatchLog, seg: SegmentBuilder): Promise<SegmentEnd> {
    return new Promise<SegmentEnd>((resolve) => {
      let opened;
      try {
        opened = this.channel.stream('Watch', 'Watch');
      } catch (err) {
        resolve({ kind: 'error', message: errorText(err) });
        return;
      }
      const { endpoint, call } = opened;
      let done = false;
      let created = false;
      const finish = (end: SegmentEnd, failed: boolean): void => {
        if (done) return;
        done = true;
        clearTimeout(createTimer);
        this.stopWatchers.signal.removeEventListener('abort', onStop);
        call.cancel();
        if (failed) this.channel.failover(endpoint);
        resolve(end);
      };
      const onStop = (): void => finish({ kind: 'stopped' }, false);
      this.stopWatchers.signal.addEventListener('abort', onStop, { once: true });
      const createTimer = setTimeout(() => {
        if (!created) finish({ kind: 'stopped' }, true);
      }, RAW_CREATE_TIMEOUT_MS);
      call.on('data', (resp: WatchResponse) => {
        if (done) return;
        if (resp.canceled) {
          if (resp.compactRevision > 0n) return finish({ kind: 'compacted', compactRevision: Number(resp.compactRevision) }, false);
          return finish({ kind: 'stopped' }, true); // no leader (hasleader): resume on another member
        }
        if (resp.created) created = true;
        const events = resp.events.flatMap((e) => (e.kv === null ? [] : [{ type: e.type === Event_EventType.DELETE ? ('delete' as const) : ('put' as const), kv: e.kv, prevKv: e.prevKv }]));
        if (events.length > 0) log.record(seg, events);
      });
      call.on('error', () => finish({ kind: 'stopped' }, true));
      call.on('end', () => finish({ kind: 'stopped' }, true));
      if (this.stopWatchers.signal.aborted) return onStop();
      call.write({ createRequest: { key: Buffer.from(WATCH_PREFIX), rangeEnd: Buffer.from(PREFIX_END), startRevision: BigInt(seg.fromRevision), prevKv: log.prevKv } });
    });
  }

  private async leaseWorker(): Promise<void> {
    const modes: readonly LeaseMode[] = ['keepalive', 'expire', 'revoke'];
    const pendingRevokes: Promise<void>[] = [];
    for (let n = 0; !this.leasesStopped && n < MAX_LEASES; n++) {
      const mode = modes[n % modes.length] ?? 'expire';
      const ttl = mode === 'keepalive' ? KEEPALIVE_TTL_S : mode === 'expire' ? EXPIRE_TTL_S : REVOKE_TTL_S;
      let lease: Lease;
      try {
        lease = await grantLease(this.channel, ttl, { keepAlive: false });
      } catch (err) {
        this.opts.log(`lease grant failed: ${errorText(err)}`);
        await delay(this.opts.rng.between(LEASE_EVERY_MS[0], LEASE_EVERY_MS[1]));
        continue;
      }
      const st: LeaseState = { id: lease.hex, key: `kl${n}`, mode, putRevision: undefined, revokeRevision: undefined, lost: undefined, lease, final: undefined };
      this.leaseStates.push(st);
      if (mode === 'keepalive') {
        lease.onLost((l) => {
          if (!this.leasesStopped) st.lost = `${l.reason}: ${l.message}`;
        });
        lease.startKeepAlive();
      }
      const value = `lease-${lease.hex}`;
      try {
        const r = await this.channel.unary('KV', 'Put', { key: Buffer.from(st.key), value: Buffer.from(value), lease: lease.id }, 'write');
        st.putRevision = Number(r.header?.revision ?? 0n);
        this.leaseWrites.push({ key: st.key, revision: st.putRevision, type: 'put', value });
      } catch (err) {
        this.opts.log(`lease put ${st.key} failed (indeterminate): ${errorText(err)}`);
      }
      if (mode === 'revoke') pendingRevokes.push(this.revokeLater(st, lease));
      await delay(this.opts.rng.between(LEASE_EVERY_MS[0], LEASE_EVERY_MS[1]));
    }
    await Promise.all(pendingRevokes);
  }

  private async revokeLater(st: LeaseState, lease: Lease): Promise<void> {
    await delay(this.opts.rng.between(500, 3000));
    for (let attempt = 0; attempt < 20; attempt++) {
      try {
        const r = await this.channel.unary('Lease', 'LeaseRevoke', { ID: lease.id }, 'write');
        st.revokeRevision = Number(r.header?.revision ?? 0n);
        return;
      } catch (err) {
        const e = fromEtcdError(err);
        if (e.code === 'LEASE_NOT_FOUND') return; // an earlier attempt was applied
        await delay(300); // an ambiguous revoke is retried: revoking twice is harmless
      }
    }
    st.mode = 'expire'; // never revoked: it expires after its TTL instead (the end waits for it)
  }

  /**
   * The end, on a healed cluster after the workers stopped: reads every lease key (waiting, bounded, for expired
   * and revoked ones to go); waits until every watcher has seen the current revision (`endRevision`); then
   * compacts there and opens a watch one revision below it, which must be cancelled with that compact revision.
   */
  async finish(): Promise<{ watchers: WatchRecord[]; endRevision: number; compactedResume: CompactedResume | undefined; leases: LeaseRecord[]; notes: string[] }> {
    const notes: string[] = [];
    this.leasesStopped = true;
    await Promise.race([this.leaseLoop, delay(20_000)]); // the lease worker's revokes

    // Lease keys: expired and revoked ones must go within TTL + election timeout (+ slack for the heal).
    const leaseUntil = Date.now() + Math.max(EXPIRE_TTL_S, REVOKE_TTL_S) * 1000 + this.opts.electionTimeoutMs + 5000;
    for (const st of this.leaseStates) {
      for (;;) {
        try {
          const r = await this.channel.unary('KV', 'Range', { key: Buffer.from(st.key) }, 'read');
          const kv = r.kvs[0];
          st.final = kv === undefined ? { present: false, modRevision: 0 } : { present: true, modRevision: Number(kv.modRevision) };
        } catch (err) {
          notes.push(`final read of ${st.key}: ${errorText(err)}`);
          st.final = undefined;
        }
        if (st.mode === 'keepalive' || st.final === undefined || !st.final.present || Date.now() > leaseUntil) break;
        await delay(200);
      }
    }
    // Every watcher must reach the current revision (the lease deletes included).
    const after = await this.currentRevision();
    const until = Date.now() + 20_000;
    while (Date.now() < until && this.logs.some((l) => l.lastRevision < after)) await delay(100);
    const behind = this.logs.filter((l) => l.lastRevision < after);
    if (behind.length > 0) notes.push(`watchers behind revision ${after} after 20 s: ${behind.map((l) => `${l.name}@${l.lastRevision}`).join(', ')}`);

    let compactedResume: CompactedResume | undefined;
    if (after >= 2) {
      try {
        await this.channel.unary('KV', 'Compact', { revision: BigInt(after), physical: true }, 'write');
        compactedResume = await this.watchCompacted(after - 1, after);
      } catch (err) {
        notes.push(`compaction at ${after} failed: ${errorText(err)}`);
      }
    }
    this.stopping = true;
    this.stopWatchers.abort();
    for (const w of this.current) w.cancel();
    for (const st of this.leaseStates) st.lease?.stopKeepAlive();
    await Promise.race([Promise.all(this.loops), delay(5000)]);
    return {
      watchers: this.logs.map((l) => l.toRecord()),
      endRevision: after,
      compactedResume,
      leases: this.leaseStates.map((s) => ({ id: s.id, key: s.key, mode: s.mode, putRevision: s.putRevision, revokeRevision: s.revokeRevision, lost: s.lost, final: s.final })),
      notes: [...notes, `watchers from revision ${this.startRevision} (some earlier) to ${after}; compacted at ${after}`],
    };
  }

  private async currentRevision(): Promise<number> {
    const r = await this.channel.unary('KV', 'Range', { key: Buffer.from(WATCH_PREFIX), rangeEnd: Buffer.from(PREFIX_END), countOnly: true }, 'read');
    return Number(r.header?.revision ?? 0n);
  }

  private async watchCompacted(from: number, compactRevision: number): Promise<CompactedResume> {
    const w = new Watcher(this.channel, WATCH_PREFIX, { end: PREFIX_END, fromRevision: from });
    let count = 0;
    const timer = setTimeout(() => w.cancel(), 5000);
    try {
      for await (const b of w as AsyncIterable<WatchBatch>) count += b.events.length;
      return { fromRevision: from, compactRevision, got: { kind: 'events', count } };
    } catch (err) {
      return { fromRevision: from, compactRevision, got: err instanceof WatchCompactedError ? { kind: 'compacted', compactRevision: Number(err.compactRevision) } : { kind: 'error', message: errorText(err) } };
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    this.stopping = true;
    this.leasesStopped = true;
    this.stopWatchers.abort();
    for (const st of this.leaseStates) st.lease?.stopKeepAlive();
    this.channel.close();
  }
}
