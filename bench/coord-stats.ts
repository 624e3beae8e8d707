// The bookkeeping of the coordination scenarios (coord-bench.ts), pure and clock-free so it can be unit-tested:
// - DeliveryLatency: put-acknowledged -> event-received per (write, watcher). An event may arrive before the
//   writer's acknowledgement (a watcher on the leader hears of the apply before the client does): it is held until
//   the ack is known and then counted as 0 ms ("early"), since the figure is "how long after the writer knew".
//   The put-sent -> event-received latency is kept too (the whole path; it has no such floor).
// - DeliveryAudit: every watcher must see each acknowledged revision once, in increasing order: an event at or
//   below the watcher's last one is a duplicate (or out of order), an acknowledged revision a watcher never got
//   is missing. Either fails the scenario (a fast watch that loses or repeats events is not a result).
// - RoundTrips: keep-alive send -> answer, matched by lease id in send order (a member answers one stream's
//   keep-alives of one lease in the order they were sent).
import { LatencyHistogram } from './histogram.js';

export class DeliveryLatency {
  readonly histogram = new LatencyHistogram(); // put acknowledged -> event received (0 when the event came first)
  readonly fromSend = new LatencyHistogram(); // put sent -> event received (the whole path, never negative)
  readonly putAck = new LatencyHistogram(); // put sent -> acknowledged (the writer's own latency)
  private readonly acks = new Map<number, { readonly ackMs: number; readonly sentMs: number }>(); // by revision
  private readonly early = new Map<number, number[]>(); // revision -> receive times of events before its ack
  events = 0; // every event received (early ones included)
  earlyEvents = 0; // received before the writer's ack
  unknownEvents = 0; // revisions never acknowledged (still early at summary time)

  /** The write sent at `sentMs` was acknowledged at `ackMs` with `revision`. */
  ack(revision: number, ackMs: number, sentMs: number = ackMs): void {
    this.acks.set(revision, { ackMs, sentMs });
    this.putAck.recordUs(Math.max(0, ackMs - sentMs) * 1000);
    const held = this.early.get(revision);
    if (held !== undefined) {
      this.early.delete(revision);
      for (const at of held) {
        this.histogram.recordUs(0);
        this.fromSend.recordUs(Math.max(0, at - sentMs) * 1000);
      }
    }
  }

  /** A watcher received the event of `revision` at `atMs`. */
  received(revision: number, atMs: number): void {
    this.events++;
    const a = this.acks.get(revision);
    if (a === undefined) {
      this.earlyEvents++;
      const held = this.early.get(revision);
      if (held === undefined) this.early.set(revision, [atMs]);
      else held.push(atMs);
      return;
    }
    if (atMs < a.ackMs) this.earlyEvents++;
    this.histogram.recordUs(Math.max(0, atMs - a.ackMs) * 1000);
    this.fromSend.recordUs(Math.max(0, atMs - a.sentMs) * 1000);
  }

  /** The revisions the writer saw acknowledged. */
  acknowledged(): IterableIterator<number> {
    return this.acks.keys();
  }

  /** Events whose write was never acknowledged (a put that timed out but was applied) stay out of the histograms. */
  finish(): void {
    for (const held of this.early.values()) this.unknownEvents += held.length;
    this.early.clear();
  }
}

export class DeliveryAudit {
  private readonly last: Float64Array; // per watcher: the last revision it received (0: none yet)
  private readonly receivedBy = new Map<number, number>(); // revision -> watchers that received it (once, in order)
  duplicates = 0; // events at or below their watcher's last revision

  constructor(readonly watchers: number) {
    this.last = new Float64Array(watchers);
  }

  received(watcher: number, revision: number): void {
    if (!Number.isInteger(watcher) || watcher < 0 || watcher >= this.watchers) throw new Error(`DeliveryAudit: no watcher ${watcher}`);
    if (revision <= (this.last[watcher] ?? 0)) {
      this.duplicates++;
      return;
    }
    this.last[watcher] = revision;
    this.receivedBy.set(revision, (this.receivedBy.get(revision) ?? 0) + 1);
  }

  /** (acknowledged revision, watcher) pairs that never arrived. */
  missing(acknowledged: Iterable<number>): number {
    let n = 0;
    for (const rev of acknowledged) n += this.watchers - (this.receivedBy.get(rev) ?? 0);
    return n;
  }
}

export class RoundTrips {
  histogram = new LatencyHistogram();
  private readonly sent = new Map<string, number[]>(); // lease id -> send times, oldest first
  answered = 0;
  unmatched = 0; // answers for which no send was pending (a bug on either side)

  sentAt(id: bigint, atMs: number): void {
    const k = id.toString();
    const q = this.sent.get(k);
    if (q === undefined) this.sent.set(k, [atMs]);
    else q.push(atMs);
  }

  answeredAt(id: bigint, atMs: number): void {
    const q = this.sent.get(id.toString());
    const t = q?.shift();
    if (t === undefined) {
      this.unmatched++;
      return;
    }
    this.answered++;
    this.histogram.recordUs(Math.max(0, atMs - t) * 1000);
  }

  /** Starts the measured window: what was answered before it (a warm-up) is forgotten; sends still pending stay matched. */
  resetStats(): void {
    this.histogram = new LatencyHistogram();
    this.answered = 0;
    this.unmatched = 0;
  }

  /** Keep-alives sent and not answered yet. */
  get outstanding(): number {
    let n = 0;
    for (const q of this.sent.values()) n += q.length;
    return n;
  }
}
