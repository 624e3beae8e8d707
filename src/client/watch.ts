// A watch over etcd's Watch service as an async iterator of event batches (one per WatchResponse) that resumes by
// itself: when its stream fails (a member killed, restarted, partitioned, or without a leader under `hasleader`)
// it reconnects to the next endpoint with backoff and creates the watch again at the last delivered revision + 1,
// so no event is repeated or skipped (an event below that revision, should a member send one, is dropped). A
// resume revision that was compacted meanwhile ends the iterator with a WatchCompactedError. return() (a `break`
// out of `for await`) or the abort signal cancels the server-side watch.
//
// Revisions: the first create carries `fromRevision` (0: "from now"); once created at "now", the next revision is
// the header's + 1 (what clientv3 does, so a reconnect before any event misses nothing). Progress notifications
// (`progressNotify`) advance it to their header revision + 1: etcd sends one only when the watcher is synced.
import type { ClientDuplexStream } from '@grpc/grpc-js';
import { RaftKvError } from '../shared/errors.js';
import { prefixEnd } from '../kv/types.js';
import { fromEtcdError } from '../protocol/etcd-errors.js';
import { Event_EventType, WatchCreateRequest_FilterType } from '../protocol/etcd-proto.js';
import type { KeyValue as EtcdKeyValue, MessageInit, WatchRequest, WatchResponse } from '../protocol/etcd-proto.js';
import type { EtcdChannel } from './etcd-channel.js';

export type { EtcdKeyValue };

export interface WatchOptions {
  readonly prefix?: boolean; // every key under keyOrPrefix
  readonly end?: Uint8Array | string; // or the range [key, end) (etcd's range_end; "\0" = every key >= key)
  readonly fromRevision?: bigint | number; // replay history from this revision (0/absent: from now)
  readonly prevKv?: boolean; // each event carries the key's previous value
  readonly filters?: readonly ('noput' | 'nodelete')[]; // leave out puts / deletes (etcd's NOPUT / NODELETE)
  readonly progressNotify?: boolean; // ask for progress notifications (yielded as batches with progress: true)
  readonly signal?: AbortSignal; // aborting it ends the iterator (and cancels the server-side watch)
}

export interface WatchEvent {
  readonly type: 'put' | 'delete';
  readonly kv: EtcdKeyValue; // a delete's kv has the key and the delete's mod_revision
  readonly prevKv: EtcdKeyValue | undefined; // with prevKv, when the key existed
}

export interface WatchBatch {
  /** The revision the batch is at: its last event's mod revision, or a progress notification's header revision. */
  readonly revision: bigint;
  readonly events: readonly WatchEvent[];
  readonly progress: boolean; // a progress notification (no events): every event up to `revision` was delivered
  readonly endpoint: string; // the member it came from
}

/** The resume (or start) revision was compacted: events between it and compactRevision are gone for good. */
export class WatchCompactedError extends RaftKvError {
  constructor(
    readonly requestedRevision: bigint,
    readonly compactRevision: bigint,
  ) {
    super('COMPACTED', `watch: revision ${requestedRevision} was compacted (the compacted revision is ${compactRevision})`);
  }
}

/** Batches buffered before the stream is paused (the consumer is slower than the member). */
const MAX_BUFFERED_BATCHES = 256;
/** How long a cancel may take to reach the member before the stream is torn down anyway. */
const CANCEL_GRACE_MS = 1000;

type WatchCall = ClientDuplexStream<MessageInit<WatchRequest>, WatchResponse>;

/** How one stream attempt ended. */
type AttemptEnd = { readonly kind: 'retry'; readonly error: RaftKvError; readonly madeProgress: boolean } | { readonly kind: 'stop' } | { readonly kind: 'fail'; readonly error: RaftKvError };

function bytesOf(b: Uint8Array | string): Buffer {
  return typeof b === 'string' ? Buffer.from(b, 'utf8') : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

function eventOf(e: WatchResponse['events'][number]): WatchEvent | undefined {
  if (e.kv === null) return undefined;
  switch (e.type) {
    case Event_EventType.PUT:
      return { type: 'put', kv: e.kv, prevKv: e.prevKv ?? undefined };
    case Event_EventType.DELETE:
      return { type: 'delete', kv: e.kv, prevKv: e.prevKv ?? undefined };
    default:
      return undefined;
  }
}

export class Watcher implements AsyncIterableIterator<WatchBatch> {
  private readonly key: Buffer;
  private readonly rangeEnd: Buffer;
  private nextRev: bigint; // the first revision not yet delivered (0: "from now", before the first create)
  private readonly queue: WatchBatch[] = [];
  private readonly waiters: { resolve: (r: IteratorResult<WatchBatch>) => void; reject: (e: unknown) => void }[] = [];
  private terminal: { readonly error: RaftKvError | undefined } | undefined; // set once: done (or failed)
  private call: WatchCall | undefined;
  private watchId: bigint | undefined;
  private stopped = false;
  private readonly stopController = new AbortController(); // wakes a backoff sleep on stop
  private resolveReady!: () => void;
  /** Resolves once the watch is created on some member (writes after that are seen even from "now"). */
  readonly ready: Promise<void>;
  /** Stream attempts that failed and were resumed elsewhere (or on the same member, once back). */
  reconnects = 0;

  constructor(
    private readonly channel: EtcdChannel,
    keyOrPrefix: Uint8Array | string,
    private readonly opts: WatchOptions = {},
  ) {
    this.key = bytesOf(keyOrPrefix);
    if (opts.prefix === true && opts.end !== undefined) throw new RaftKvError('INVALID_ARGUMENT', 'watch: prefix and end cannot both be given');
    this.rangeEnd = opts.prefix === true ? Buffer.from(prefixEnd(this.key)) : opts.end !== undefined ? bytesOf(opts.end) : Buffer.alloc(0);
    const from = opts.fromRevision ?? 0;
    if ((typeof from === 'number' && !Number.isSafeInteger(from)) || BigInt(from) < 0n) throw new RaftKvError('INVALID_ARGUMENT', `watch: fromRevision must be a non-negative integer, got ${String(from)}`);
    this.nextRev = BigInt(from);
    this.ready = new Promise((resolve) => {
      this.resolveReady = resolve;
    });
    if (opts.signal?.aborted === true) this.stop();
    else opts.signal?.addEventListener('abort', () => this.stop(), { once: true });
    void this.run();
  }

  /** The revision a resume would start at (the last delivered revision + 1; 0 before the watch was created from "now"). */
  get nextRevision(): bigint {
    return this.nextRev;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<WatchBatch>> {
    const batch = this.queue.shift();
    if (batch !== undefined) {
      if (this.queue.length < MAX_BUFFERED_BATCHES / 2) this.call?.resume();
      return Promise.resolve({ value: batch, done: false });
    }
    if (this.terminal !== undefined) {
      return this.terminal.error !== undefined ? Promise.reject(this.terminal.error) : Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Cancels the watch (a `break` out of `for await` calls this). */
  return(): Promise<IteratorResult<WatchBatch>> {
    this.stop();
    return Promise.resolve({ value: undefined, done: true });
  }

  /** Cancels the watch on the member and ends the iterator (after the batches already buffered). */
  cancel(): void {
    this.stop();
  }

  private stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.stopController.abort();
    const call = this.call;
    if (call !== undefined) {
      if (this.watchId !== undefined) call.write({ cancelRequest: { watchId: this.watchId } });
      call.end();
      const cancel = this.channel.clock.setTimeout(() => call.cancel(), CANCEL_GRACE_MS);
      call.on('close', cancel);
    }
    this.finish(undefined);
  }

  private finish(error: RaftKvError | undefined): void {
    if (this.terminal !== undefined) return;
    this.terminal = { error };
    this.resolveReady();
    for (const w of this.waiters.splice(0)) {
      if (error !== undefined) w.reject(error);
      else w.resolve({ value: undefined, done: true });
    }
  }

  private deliver(batch: WatchBatch): void {
    const w = this.waiters.shift();
    if (w !== undefined) return w.resolve({ value: batch, done: false });
    this.queue.push(batch);
    if (this.queue.length >= MAX_BUFFERED_BATCHES) this.call?.pause();
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped && !this.channel.isClosed) {
      const endpoint = this.channel.current;
      const end = await this.attempt(endpoint);
      switch (end.kind) {
        case 'stop':
          return;
        case 'fail':
          this.finish(end.error);
          return;
        case 'retry':
          failures = end.madeProgress ? 1 : failures + 1;
          this.reconnects++;
          this.channel.failover(endpoint);
          await this.channel.sleep(this.channel.backoffMs(failures), this.stopController.signal);
          break;
        default: {
          const never: never = end;
          throw new Error(`unexpected attempt end ${JSON.stringify(never)}`);
        }
      }
    }
    this.finish(this.stopped ? undefined : new RaftKvError('FAILED_PRECONDITION', 'watch: the client was closed'));
  }

  /** One stream: create the watch at nextRev, deliver what comes, until the stream fails or the watch stops. */
  private attempt(endpoint: string): Promise<AttemptEnd> {
    return new Promise<AttemptEnd>((resolve) => {
      let settled = false;
      let created = false;
      let madeProgress = false;
      const requested = this.nextRev;
      let call: WatchCall;
      try {
        call = this.channel.stream('Watch', 'Watch').call;
      } catch (err) {
        resolve({ kind: 'fail', error: fromEtcdError(err) });
        return;
      }
      this.call = call;
      this.watchId = undefined;
      const settle = (end: AttemptEnd): void => {
        if (settled) return;
        settled = true;
        cancelCreateTimer();
        if (this.call === call) this.call = undefined;
        if (end.kind !== 'stop') call.cancel();
        resolve(this.stopped ? { kind: 'stop' } : end);
      };
      // A member that takes the connection but never answers the create (stopped, or stuck) is given up on.
      const cancelCreateTimer = this.channel.clock.setTimeout(() => {
        if (!created) settle({ kind: 'retry', error: new RaftKvError('UNAVAILABLE', `watch: ${endpoint} did not confirm the watch in ${this.channel.attemptTimeoutMs} ms`), madeProgress });
      }, this.channel.attemptTimeoutMs);
      call.on('data', (resp: WatchResponse) => {
        if (settled) return;
        if (resp.canceled) {
          if (resp.compactRevision > 0n) return settle({ kind: 'fail', error: new WatchCompactedError(this.nextRev, resp.compactRevision) });
          const reason = resp.cancelReason === '' ? 'the member cancelled the watch' : resp.cancelReason;
          // A member that lost its leader cancels watches under `hasleader`: another member may serve it.
          if (/no leader|not leader|unavailable/i.test(reason)) return settle({ kind: 'retry', error: new RaftKvError('UNAVAILABLE', reason), madeProgress });
          return settle({ kind: 'fail', error: new RaftKvError('FAILED_PRECONDITION', `watch cancelled by ${endpoint}: ${reason}`) });
        }
        const headerRev = resp.header?.revision ?? 0n;
        if (resp.created) {
          created = true;
          madeProgress = true;
          cancelCreateTimer();
          this.watchId = resp.watchId;
          if (this.nextRev === 0n) this.nextRev = headerRev + 1n;
          this.resolveReady();
          if (resp.events.length === 0) return;
        }
        const events = resp.events.flatMap((e) => {
          const ev = eventOf(e);
          return ev !== undefined && ev.kv.modRevision >= this.nextRev ? [ev] : [];
        });
        const last = events[events.length - 1];
        if (last !== undefined) {
          madeProgress = true;
          this.nextRev = last.kv.modRevision + 1n;
          this.deliver({ revision: last.kv.modRevision, events, progress: false, endpoint });
        } else if (resp.events.length === 0 && !resp.created) {
          // A progress notification: every event up to its header revision was sent.
          if (headerRev + 1n > this.nextRev) this.nextRev = headerRev + 1n;
          if (this.opts.progressNotify === true) this.deliver({ revision: headerRev, events: [], progress: true, endpoint });
        }
      });
      call.on('error', (err: unknown) => settle({ kind: 'retry', error: fromEtcdError(err), madeProgress }));
      call.on('end', () => settle({ kind: 'retry', error: new RaftKvError('UNAVAILABLE', `watch: ${endpoint} ended the stream`), madeProgress }));
      const filters = (this.opts.filters ?? []).map((f) => (f === 'noput' ? WatchCreateRequest_FilterType.NOPUT : WatchCreateRequest_FilterType.NODELETE));
      call.write({
        createRequest: {
          key: this.key,
          rangeEnd: this.rangeEnd,
          startRevision: requested,
          progressNotify: this.opts.progressNotify ?? false,
          filters,
          prevKv: this.opts.prevKv ?? false,
        },
      });
    });
  }
}
