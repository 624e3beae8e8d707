// etcd's Watch service (etcdserverpb.Watch, one bidirectional stream per client namespace) on the client port:
// maps a stream's watch ids onto this member's watchers (src/watch/watch-hub.ts), which any member serves from
// its applied state. What a client sees, as etcd 3.4 does it:
// - create: answered `created` with the header at the current revision, before any event of the watch; watch id
//   0 asks for the next free id of the stream (the first is 0), a taken id or an empty range is answered created
//   and canceled with etcd's reason; an empty key means "\0", range_end "\0" means every key >= key;
// - events: one response per revision for a synced watcher (header = that revision); a catching-up watcher gets
//   whole revisions in batches (header = the last revision the batch covers: resuming at header + 1 misses
//   nothing); prev_kv when asked (nothing once modRevision - 1 is compacted); NOPUT/NODELETE filters; with
//   `fragment`, a response larger than --max-request-bytes goes in pieces, all but the last marked fragment;
// - a start revision below the compacted revision: a response with compact_revision, canceled (header revision 0);
// - cancel: answered canceled for a watch of the stream, nothing for an unknown id;
// - progress_notify: every watchProgressNotifyIntervalMs a synced watcher that was sent nothing gets an empty
//   response at the current revision; progress_request: one response with watch id -1 at the current revision
//   once every watcher of the stream is synced (etcd 3.5's rule: a bookmark never runs ahead of what was sent);
// - `hasleader` metadata: refused without a leader, and ended (UNAVAILABLE "etcdserver: no leader") once the
//   member has had no leader for noLeaderCancelMs.
// A stream holds at most WATCH_STREAM_BUFFER_RESPONSES unsent responses; past that its watchers fall behind and
// catch up when it drains (a slow client never slows apply or other clients).
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { ServerDuplexStream } from '@grpc/grpc-js';
import type pino from 'pino';
import type { KvNode } from '../node/api.js';
import type { Clock } from '../shared/clock.js';
import { NO_WATCH_METRICS } from '../shared/watch-lease-metrics.js';
import type { WatchMetrics } from '../shared/watch-lease-metrics.js';
import { RaftKvError } from '../shared/errors.js';
import type { KeyRange, KeyValue, KvEvent } from '../kv/types.js';
import type { Watcher, WatchMessage, WatchSink } from '../watch/watch-hub.js';
import { Event_EventType, PreEncoded, WatchCreateRequest_FilterType, etcdCodec } from '../protocol/etcd-proto.js';
import type { EtcdServiceHandlers, MessageInit, ResponseInit } from '../protocol/etcd-proto.js';
import type * as etcd from '../protocol/etcd-proto.js';
import { ETCD_NO_LEADER, toEtcdStatus } from '../protocol/etcd-errors.js';
import { clampToSafe, etcdHandlerKit, kvToEtcd } from './etcd-kv-service.js';
import type { AuthGate } from './auth-gate.js';

export interface EtcdWatchOptions {
  readonly node: KvNode;
  readonly maxRequestBytes: number;
  readonly defaultTimeoutMs: number;
  readonly logger: pino.Logger;
  readonly clock: Clock;
  readonly watchProgressNotifyIntervalMs: number; // etcd's default: 10 minutes
  readonly noLeaderCancelMs: number; // etcd: 3 election timeouts
  readonly metrics?: WatchMetrics; // etcd's watcher and watch stream gauges
  readonly auth?: AuthGate; // a watch needs read on its range once authentication is on
}

/** A gRPC code as Go names it (codes.PermissionDenied prints "PermissionDenied"). */
function goCodeName(code: GrpcStatus): string {
  return String(GrpcStatus[code]).toLowerCase().replace(/(^|_)([a-z])/g, (_m, _u: string, c: string) => c.toUpperCase());
}

/** etcd's default progress notification interval (--experimental-watch-progress-notify-interval). */
export const DEFAULT_WATCH_PROGRESS_NOTIFY_INTERVAL_MS = 10 * 60_000;
/** Unsent responses a stream may hold before its watchers fall behind (etcd's chanBufLen is 128). */
export const WATCH_STREAM_BUFFER_RESPONSES = 128;
/** Watchers on one stream (etcd has no limit; the member's own, MAX_WATCHERS, bounds them all). */
export const MAX_WATCHERS_PER_STREAM = 10_000;

export const ETCD_WATCH_RANGE_EMPTY = 'mvcc: watcher range is empty';
export const ETCD_WATCH_DUPLICATE_ID = 'mvcc: duplicate watch ID provided on the WatchStream';

const ZERO_KEY = Uint8Array.of(0);
const WATCH_RESPONSE = etcdCodec('etcdserverpb.WatchResponse');

/** etcd's watch range: an empty key is "\0"; range_end empty is the one key, "\0" every key >= key. */
function watchRange(req: etcd.WatchCreateRequest): KeyRange | undefined {
  const key = req.key.length === 0 ? ZERO_KEY : new Uint8Array(req.key);
  const end = new Uint8Array(req.rangeEnd);
  if (end.length > 0 && !(end.length === 1 && end[0] === 0) && Buffer.compare(key, end) >= 0) return undefined;
  return { key, end };
}

function eventToEtcd(e: KvEvent): MessageInit<etcd.Event> {
  return {
    type: e.type === 'put' ? Event_EventType.PUT : Event_EventType.DELETE,
    kv: kvToEtcd(e.kv),
    prevKv: e.prevKv === undefined ? null : kvToEtcd(e.prevKv),
  };
}

function kvBytes(kv: KeyValue | undefined): number {
  return kv === undefined ? 0 : kv.key.length + kv.value.length + 48;
}

interface StreamWatch {
  readonly id: bigint; // the stream's watch id
  readonly progressNotify: boolean;
  readonly fragment: boolean;
  watcher: Watcher | undefined; // set once created
}

export function createEtcdWatchService(opts: EtcdWatchOptions): { service: EtcdServiceHandlers<'Watch'>; close(): void } {
  const { node } = opts;
  const metrics = opts.metrics ?? NO_WATCH_METRICS;
  const { header } = etcdHandlerKit(opts);
  const streams = new Set<WatchStream>();
  // Watch responses are written on the next turn of the event loop, all streams at once: an applied revision's
  // fan-out (encoding one response per watcher, hundreds per put) then comes after the replies to the writes
  // of that apply instead of before them (etcd's watch sends run on their own goroutines, off the apply path).
  // Each stream's responses keep their order; the hub's bookkeeping (what each watcher was sent) stays synchronous.
  const toFlush = new Set<WatchStream>();
  let flushScheduled = false;
  // One revision's header and events, encoded once for every watcher that gets exactly those events (the hub
  // hands them the same array) during this turn of the event loop; each response is those bytes plus its
  // watch_id field (protobuf fields may come in any order). Forgotten at the flush, so a header is never stale.
  let shared: { readonly events: readonly KvEvent[]; readonly revision: number; readonly bytes: Buffer } | undefined;
  const encodedFor = (events: readonly KvEvent[], revision: number, watchId: bigint): PreEncoded => {
    if (shared?.events !== events || shared.revision !== revision) shared = { events, revision, bytes: WATCH_RESPONSE.encode({ header: headerAt(revision), events: events.map(eventToEtcd) }) };
    return new PreEncoded(watchId === 0n ? shared.bytes : Buffer.concat([shared.bytes, WATCH_RESPONSE.encode({ watchId })]));
  };
  const flushAll = (): void => {
    flushScheduled = false;
    shared = undefined;
    const batch = [...toFlush];
    toFlush.clear();
    for (const s of batch) s.flush();
  };
  const flushSoon = (s: WatchStream): void => {
    toFlush.add(s);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flushAll);
    }
  };
  const headerAt = (revision: number): MessageInit<etcd.ResponseHeader> => {
    const s = node.status();
    return header({ memberId: s.id, term: s.term, index: s.appliedIndex, leaderId: s.leaderId }, revision);
  };

  class WatchStream {
    private readonly watches = new Map<bigint, StreamWatch>();
    private nextId = 0n;
    private progressRequested = false; // a progress request waits for every watcher to be synced
    private ended = false;
    private noLeaderSinceMs: number | undefined;
    private pending: ResponseInit<etcd.WatchResponse>[] = []; // responses not written yet (flushSoon)
    private fellBehind = false; // ready() said no since the last resume: a watcher may be catching up

    constructor(
      private readonly call: ServerDuplexStream<etcd.WatchRequest, ResponseInit<etcd.WatchResponse>>,
      readonly requireLeader: boolean,
    ) {
      call.on('data', (req: etcd.WatchRequest) => {
        try {
          this.onRequest(req);
        } catch (err) {
          this.fail(err);
        }
      });
      call.on('end', () => this.close(true));
      call.on('error', () => this.close(false));
      call.on('cancelled', () => this.close(false));
      call.on('drain', () => this.resume());
    }

    /** Queued: written by the next flush, after the replies of the apply that produced it (see flushSoon). */
    private write(res: ResponseInit<etcd.WatchResponse>): void {
      if (this.ended) return;
      this.pending.push(res);
      if (this.pending.length === 1) flushSoon(this);
    }

    /** Writes what is queued, in order; resumes watchers that fell behind if the backlog cleared without a 'drain'. */
    flush(): void {
      if (this.ended) return;
      const out = this.pending;
      this.pending = [];
      for (const res of out) this.call.write(res);
      if (this.fellBehind && this.ready()) this.resume();
    }

    private resume(): void {
      this.fellBehind = false;
      for (const w of this.watches.values()) if (w.watcher !== undefined && !w.watcher.synced) node.watchHub().resume(w.watcher);
      this.answerProgress();
    }

    private ready(): boolean {
      const ok = !this.ended && this.call.writableLength + this.pending.length < WATCH_STREAM_BUFFER_RESPONSES;
      if (!ok) this.fellBehind = true;
      return ok;
    }

    private onRequest(req: etcd.WatchRequest): void {
      switch (req.requestUnion) {
        case 'createRequest':
          if (req.createRequest !== undefined) this.create(req.createRequest);
          return;
        case 'cancelRequest': {
          const id = req.cancelRequest?.watchId ?? 0n;
          const w = this.watches.get(id);
          if (w === undefined) return; // etcd answers nothing for an unknown id
          if (w.watcher !== undefined) metrics.watchersChanged(-1);
          w.watcher?.cancel();
          this.watches.delete(id);
          this.write({ header: headerAt(node.watchHub().currentRevision), watchId: id, canceled: true });
          this.answerProgress();
          return;
        }
        case 'progressRequest':
          this.progressRequested = true;
          this.answerProgress();
          return;
        case undefined:
          return; // etcd ignores a request with nothing set
        default: {
          const never: never = req.requestUnion;
          throw new Error(`watch: unknown request ${String(never)}`);
        }
      }
    }

    private create(req: etcd.WatchCreateRequest): void {
      const hub = node.watchHub();
      const rev = hub.currentRevision;
      const refuse = (reason: string): void => this.write({ header: headerAt(rev), watchId: -1n, created: true, canceled: true, cancelReason: reason });
      const range = watchRange(req);
      if (range === undefined) return refuse(ETCD_WATCH_RANGE_EMPTY);
      try {
        opts.auth?.checkRange(this.call, 'read', range);
      } catch (err) {
        // etcd answers created and canceled with its gRPC error's text as the reason
        if (!(err instanceof RaftKvError)) throw err;
        const status = toEtcdStatus(err);
        return refuse(`rpc error: code = ${goCodeName(status.code)} desc = ${status.details}`);
      }
      let id = req.watchId;
      if (id === 0n) {
        while (this.watches.has(this.nextId)) this.nextId++;
        id = this.nextId++;
      } else if (this.watches.has(id)) {
        return refuse(ETCD_WATCH_DUPLICATE_ID);
      }
      if (this.watches.size >= MAX_WATCHERS_PER_STREAM) return refuse(`etcdserver: too many watchers on one stream (at most ${MAX_WATCHERS_PER_STREAM})`);
      const w: StreamWatch = { id, progressNotify: req.progressNotify, fragment: req.fragment, watcher: undefined };
      this.watches.set(id, w);
      const startRevision = clampToSafe(req.startRevision);
      this.write({ header: headerAt(rev), watchId: id, created: true });
      const sink: WatchSink = {
        ready: () => this.ready(),
        send: (m) => this.deliver(w, m),
        onSynced: () => this.answerProgress(),
      };
      try {
        w.watcher = hub.watch(
          {
            range,
            startRevision: startRevision <= 0 ? rev + 1 : startRevision,
            noPut: req.filters.includes(WatchCreateRequest_FilterType.NOPUT),
            noDelete: req.filters.includes(WatchCreateRequest_FilterType.NODELETE),
            prevKv: req.prevKv,
          },
          sink,
        );
        metrics.watchersChanged(1);
      } catch (err) {
        this.watches.delete(id);
        if (!(err instanceof RaftKvError)) throw err;
        this.write({ header: headerAt(rev), watchId: id, canceled: true, cancelReason: err.message });
      }
    }

    private deliver(w: StreamWatch, m: WatchMessage): void {
      if (!this.watches.has(w.id)) return;
      switch (m.type) {
        case 'events':
          this.sendEvents(w, m.events, m.revision);
          return;
        case 'compacted':
          this.watches.delete(w.id);
          metrics.watchersChanged(-1);
          this.write({ header: headerAt(0), watchId: w.id, compactRevision: BigInt(m.compactRevision), canceled: true });
          return;
        case 'progress':
          if (w.progressNotify) this.write({ header: headerAt(m.revision), watchId: w.id });
          return;
        default: {
          const never: never = m;
          throw new Error(`watch: unknown message ${JSON.stringify(never)}`);
        }
      }
    }

    /** One response, or with `fragment` pieces of at most --max-request-bytes (etcd's sendFragments). */
    private sendEvents(w: StreamWatch, events: readonly KvEvent[], revision: number): void {
      if (!w.fragment || events.length < 2 || events.reduce((n, e) => n + kvBytes(e.kv) + kvBytes(e.prevKv), 0) <= opts.maxRequestBytes) {
        this.write(encodedFor(events, revision, w.id));
        return;
      }
      const h = headerAt(revision);
      let piece: MessageInit<etcd.Event>[] = [];
      let bytes = 0;
      for (const e of events) {
        const b = kvBytes(e.kv) + kvBytes(e.prevKv);
        if (piece.length > 0 && bytes + b > opts.maxRequestBytes) {
          this.write({ header: h, watchId: w.id, events: piece, fragment: true });
          piece = [];
          bytes = 0;
        }
        piece.push(eventToEtcd(e));
        bytes += b;
      }
      this.write({ header: h, watchId: w.id, events: piece });
    }

    /** A pending progress request is answered once every watcher of the stream is synced. */
    answerProgress(): void {
      if (!this.progressRequested || !this.ready()) return;
      for (const w of this.watches.values()) if (w.watcher !== undefined && !w.watcher.synced) return;
      this.progressRequested = false;
      this.write({ header: headerAt(node.watchHub().currentRevision), watchId: -1n });
    }

    /** The leader watch (hasleader streams): ended after noLeaderCancelMs without a leader. */
    checkLeader(nowMs: number): void {
      if (!this.requireLeader) return;
      if (node.status().leaderId !== 0) {
        this.noLeaderSinceMs = undefined;
        return;
      }
      this.noLeaderSinceMs ??= nowMs;
      if (nowMs - this.noLeaderSinceMs >= opts.noLeaderCancelMs) this.fail(new RaftKvError('UNAVAILABLE', ETCD_NO_LEADER));
    }

    fail(err: unknown): void {
      if (this.ended) return;
      if (!(err instanceof RaftKvError)) opts.logger.error({ err }, 'internal error in Watch/Watch');
      this.close(false);
      this.call.emit('error', toEtcdStatus(err));
    }

    close(endCall: boolean): void {
      if (this.ended) return;
      this.ended = true;
      streams.delete(this);
      metrics.watchStreamsChanged(-1);
      for (const w of this.watches.values()) {
        if (w.watcher !== undefined) metrics.watchersChanged(-1);
        w.watcher?.cancel();
      }
      this.watches.clear();
      if (endCall) {
        for (const res of this.pending) this.call.write(res); // what was queued before the client ended its side
        this.call.end();
      }
      this.pending = [];
    }
  }

  const cancelProgress = opts.clock.setInterval(() => {
    try {
      node.watchHub().progressNotify(() => true);
    } catch (err) {
      if (!(err instanceof RaftKvError)) opts.logger.error({ err }, 'watch: progress notification failed');
    }
  }, opts.watchProgressNotifyIntervalMs);
  const cancelLeaderCheck = opts.clock.setInterval(() => {
    const now = opts.clock.now();
    for (const s of [...streams]) s.checkLeader(now);
  }, Math.max(10, Math.floor(opts.noLeaderCancelMs / 3)));

  return {
    service: {
      Watch: (call) => {
        const requireLeader = call.metadata.get('hasleader').some((v) => String(v) === 'true');
        if (requireLeader && node.status().leaderId === 0) {
          call.emit('error', toEtcdStatus(new RaftKvError('UNAVAILABLE', ETCD_NO_LEADER)));
          return;
        }
        try {
          node.watchHub(); // UNAVAILABLE while the member is starting
        } catch (err) {
          call.emit('error', toEtcdStatus(err));
          return;
        }
        // A token from another member may name an entry not applied here yet: wait for it before any create.
        const ready = opts.auth?.ready(call, Date.now() + opts.defaultTimeoutMs) ?? Promise.resolve();
        ready.then(
          () => {
            streams.add(new WatchStream(call, requireLeader));
            metrics.watchStreamsChanged(1);
          },
          (err: unknown) => call.emit('error', toEtcdStatus(err)),
        );
      },
    },
    close(): void {
      cancelProgress();
      cancelLeaderCheck();
      for (const s of [...streams]) s.close(true);
    },
  };
}
