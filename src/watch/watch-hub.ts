// A member's watchers (etcd's watchableStore): fed by every applied revision, and by the history for watchers
// that start in the past or fall behind. The etcd Watch service (src/server/etcd-watch-service.ts) maps its
// streams and watch ids onto these watchers; nothing here knows gRPC.
//
// Each watcher wants `nextRevision` next. It is in one of two groups:
// - synced: caught up with the hub's revision; every applied revision's events reach it as they are applied
//   (notify), one message per revision (so all events of one revision arrive together: atomic);
// - catching up: it started in the past, or its sink was full when a revision came (a slow client never makes
//   apply wait, nor other watchers: etcd's victims). It is fed from the ring of recent revisions when the ring
//   still holds nextRevision, else from the history (KvStateMachine.historyEvents) in bounded batches, each
//   batch whole revisions, then joins the synced group once nothing is left to send.
// A watcher's nextRevision only moves forward, and only past revisions it was sent (or that had nothing for it):
// events are ordered, never repeated, never skipped. A watcher whose nextRevision falls below the compacted
// revision is told so (etcd's compact_revision) and ended.
//
// A snapshot install (restored) replaces the state without events: every watcher catches up from the history.
import type { KeyRange, KvEvent } from '../kv/types.js';
import { RaftKvError } from '../shared/errors.js';

/** What the hub reads: the state machine. */
export interface WatchSource {
  readonly revision: number; // the store revision as of the applied index
  readonly compactedRevision: number;
  historyEvents(range: KeyRange, fromRevision: number, toRevision: number, maxEvents: number): Promise<{ events: KvEvent[]; coveredTo: number }>;
}

export interface WatchSpec {
  readonly range: KeyRange; // end empty: one key; end "\0": every key >= key
  readonly startRevision: number; // <= 0: the next revision
  readonly noPut: boolean; // etcd's NOPUT filter
  readonly noDelete: boolean; // etcd's NODELETE filter
  readonly prevKv: boolean;
}

export type WatchMessage =
  | { readonly type: 'events'; readonly events: readonly KvEvent[]; readonly revision: number } // revision: caught up to
  | { readonly type: 'compacted'; readonly compactRevision: number } // the watcher has ended
  | { readonly type: 'progress'; readonly revision: number }; // nothing for it up to revision

/** Where a watcher's messages go (a Watch stream). */
export interface WatchSink {
  /** True while the sink takes more without growing past its bound; when it is false the watcher catches up later. */
  ready(): boolean;
  send(message: WatchMessage): void;
  /** A watcher of this sink caught up (joined the synced group). */
  onSynced?(): void;
}

export interface Watcher {
  readonly id: number; // the hub's, unique per member
  readonly synced: boolean;
  readonly nextRevision: number;
  cancel(): void;
}

/** Watchers a member serves at once: each costs memory and a range check per applied revision. */
export const MAX_WATCHERS = 100_000;
/** Events the ring of recent revisions holds (whole revisions): catch-up without reading LevelDB. */
export const RING_MAX_EVENTS = 50_000;
/** Events in one catch-up message (whole revisions; one larger revision goes alone): bounded memory per send. */
export const CATCH_UP_BATCH_EVENTS = 1000;

interface WatcherState extends Watcher {
  readonly spec: WatchSpec;
  readonly sink: WatchSink;
  synced: boolean;
  nextRevision: number;
  catchingUp: boolean; // a catch-up step is running
  sentSinceProgress: boolean; // events went out since the last progress notification
  ended: boolean;
}

function inRange(key: Uint8Array, r: KeyRange): boolean {
  const c = Buffer.compare(key, r.key);
  if (r.end.length === 0) return c === 0;
  if (c < 0) return false;
  if (r.end.length === 1 && r.end[0] === 0) return true;
  return Buffer.compare(key, r.end) < 0;
}

export class WatchHub {
  private readonly watchers = new Map<number, WatcherState>();
  private nextId = 1;
  private revision: number; // the last revision notified (or restored)
  private ring: { revision: number; events: readonly KvEvent[] }[] = []; // recent revisions, oldest first
  private ringEvents = 0; // events in the ring
  private ringStart: number; // the ring holds every revision from ringStart to revision
  private closed = false;

  private readonly ringMaxEvents: number;
  private readonly catchUpBatchEvents: number;

  constructor(
    private readonly source: WatchSource,
    private readonly onError: (err: unknown) => void,
    limits: { readonly ringMaxEvents?: number; readonly catchUpBatchEvents?: number } = {}, // tests make them small
  ) {
    this.ringMaxEvents = limits.ringMaxEvents ?? RING_MAX_EVENTS;
    this.catchUpBatchEvents = limits.catchUpBatchEvents ?? CATCH_UP_BATCH_EVENTS;
    this.revision = source.revision;
    this.ringStart = this.revision + 1;
  }

  get currentRevision(): number {
    return this.revision;
  }

  get size(): number {
    return this.watchers.size;
  }

  /** RESOURCE_EXHAUSTED past MAX_WATCHERS. The watcher starts synced when it starts at the next revision or later. */
  watch(spec: WatchSpec, sink: WatchSink): Watcher {
    if (this.closed) throw new RaftKvError('UNAVAILABLE', 'watch: the member is stopping');
    if (this.watchers.size >= MAX_WATCHERS) throw new RaftKvError('RESOURCE_EXHAUSTED', `watch: at most ${MAX_WATCHERS} watchers per member`);
    const next = spec.startRevision <= 0 ? this.revision + 1 : spec.startRevision;
    const id = this.nextId++;
    const w: WatcherState = {
      id,
      spec,
      sink,
      synced: next > this.revision,
      nextRevision: next,
      catchingUp: false,
      sentSinceProgress: false,
      ended: false,
      cancel: () => {
        w.ended = true;
        this.watchers.delete(id);
      },
    };
    this.watchers.set(id, w);
    if (!w.synced) this.kick(w);
    return w;
  }

  /** The sink of `w` has room again: a watcher that fell behind resumes catching up. */
  resume(w: Watcher): void {
    const s = this.watchers.get(w.id);
    if (s !== undefined && !s.synced) this.kick(s);
  }

  /** One applied batch: its events by revision (in order), or a restore that replaced everything. */
  onApplied(revision: number, events: readonly KvEvent[], restored: boolean): void {
    if (restored) {
      this.revision = revision;
      this.ring = [];
      this.ringEvents = 0;
      this.ringStart = revision + 1;
      for (const w of this.watchers.values()) {
        if (w.nextRevision <= revision) {
          w.synced = false;
          this.kick(w);
        }
      }
      return;
    }
    let i = 0;
    while (i < events.length) {
      const rev = events[i]?.kv.modRevision ?? 0;
      let j = i;
      while (j < events.length && events[j]?.kv.modRevision === rev) j++;
      this.notify(rev, events.slice(i, j));
      i = j;
    }
    this.revision = Math.max(this.revision, revision);
  }

  private notify(rev: number, events: readonly KvEvent[]): void {
    if (rev <= this.revision) throw new Error(`watch: revision ${rev} notified after ${this.revision}`);
    this.revision = rev;
    this.ring.push({ revision: rev, events });
    this.ringEvents += events.length;
    while (this.ringEvents > this.ringMaxEvents && this.ring.length > 1) {
      const old = this.ring.shift();
      if (old === undefined) break;
      this.ringEvents -= old.events.length;
      this.ringStart = old.revision + 1;
    }
    for (const w of this.watchers.values()) {
      if (!w.synced || w.nextRevision > rev) continue;
      const mine = this.filter(w, events);
      if (mine.length === 0) {
        w.nextRevision = rev + 1;
        continue;
      }
      if (!w.sink.ready()) {
        w.synced = false; // a victim: it catches up (from the ring) once its sink drains
        continue;
      }
      w.nextRevision = rev + 1;
      w.sentSinceProgress = true;
      w.sink.send({ type: 'events', events: mine, revision: rev });
    }
  }

  /** A progress notification to every synced watcher that `want`s one (etcd's progress_notify ticker). */
  progressNotify(want: (w: Watcher) => boolean): void {
    for (const w of this.watchers.values()) {
      if (!w.synced || !want(w)) continue;
      if (w.sentSinceProgress) {
        w.sentSinceProgress = false;
        continue;
      }
      if (w.sink.ready()) w.sink.send({ type: 'progress', revision: this.revision });
    }
  }

  close(): void {
    this.closed = true;
    for (const w of this.watchers.values()) w.ended = true;
    this.watchers.clear();
  }

  /** The events of `events` for `w`: `events` itself when it takes all of them unchanged (so watchers share it). */
  private filter(w: WatcherState, events: readonly KvEvent[]): readonly KvEvent[] {
    const out: KvEvent[] = [];
    let same = true;
    const compacted = this.source.compactedRevision;
    for (const e of events) {
      if (e.type === 'put' ? w.spec.noPut : w.spec.noDelete) continue;
      if (!inRange(e.kv.key, w.spec.range)) continue;
      // etcd reads prev_kv at modRevision - 1: nothing once that is compacted. It never reads one for a create
      // event (a put with create_revision == mod_revision: etcd's IsCreateEvent), even when the key existed at
      // modRevision - 1 because the same txn deleted it first (DeleteRange [k, "\0") then Put k).
      const isCreate = e.type === 'put' && e.kv.createRevision === e.kv.modRevision;
      const prevKv = w.spec.prevKv && !isCreate && e.kv.modRevision - 1 >= compacted ? e.prevKv : undefined;
      if (prevKv === e.prevKv) out.push(e);
      else {
        out.push({ ...e, prevKv });
        same = false;
      }
    }
    return same && out.length === events.length ? events : out;
  }

  /** Runs catch-up steps for `w` until it is synced, ended, or its sink is full (resume() starts it again). */
  private kick(w: WatcherState): void {
    if (w.catchingUp || w.ended || this.closed) return;
    w.catchingUp = true;
    this.catchUp(w)
      .catch((err: unknown) => {
        if (!w.ended) this.onError(err);
      })
      .finally(() => {
        w.catchingUp = false;
      });
  }

  private async catchUp(w: WatcherState): Promise<void> {
    while (!w.ended && !w.synced && w.sink.ready()) {
      if (w.nextRevision < this.source.compactedRevision) {
        this.end(w, { type: 'compacted', compactRevision: this.source.compactedRevision });
        return;
      }
      if (w.nextRevision > this.revision) {
        w.synced = true;
        w.sink.onSynced?.();
        return;
      }
      if (w.nextRevision >= this.ringStart) {
        this.fromRing(w); // synchronous: nothing is notified in between, so the watcher ends up synced
        continue;
      }
      const from = w.nextRevision;
      const to = this.ringStart - 1;
      let batch: { events: KvEvent[]; coveredTo: number };
      try {
        batch = await this.source.historyEvents(w.spec.range, from, to, this.catchUpBatchEvents);
      } catch (err) {
        if (err instanceof RaftKvError && err.code === 'COMPACTED') {
          this.end(w, { type: 'compacted', compactRevision: this.source.compactedRevision });
          return;
        }
        throw err;
      }
      if (w.ended || w.nextRevision !== from) return; // cancelled, or restored and restarted meanwhile
      const mine = this.filter(w, batch.events);
      w.nextRevision = batch.coveredTo + 1;
      if (mine.length > 0) {
        w.sentSinceProgress = true;
        w.sink.send({ type: 'events', events: mine, revision: batch.coveredTo });
      }
    }
  }

  /** Sends what the ring holds for `w` from nextRevision on, CATCH_UP_BATCH_EVENTS at a time; synced once sent. */
  private fromRing(w: WatcherState): void {
    let pending: KvEvent[] = [];
    let upTo = w.nextRevision - 1;
    const flush = (): void => {
      w.nextRevision = upTo + 1;
      if (pending.length > 0) {
        w.sentSinceProgress = true;
        w.sink.send({ type: 'events', events: pending, revision: upTo });
        pending = [];
      }
    };
    for (const r of this.ring) {
      if (r.revision < w.nextRevision) continue;
      const mine = this.filter(w, r.events);
      if (pending.length > 0 && pending.length + mine.length > this.catchUpBatchEvents) {
        flush();
        if (!w.sink.ready()) return; // the rest when it drains
      }
      pending.push(...mine);
      upTo = r.revision;
    }
    upTo = this.revision;
    flush();
    w.synced = true;
    w.sink.onSynced?.();
  }

  private end(w: WatcherState, message: WatchMessage): void {
    w.sink.send(message);
    w.cancel();
  }
}
