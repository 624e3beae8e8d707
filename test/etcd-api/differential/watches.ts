// Watchers of the differential test: the same seeded Watch create requests (a key, a range or a prefix; a start
// revision in the kept history, at the compaction or below it, or "now"; prev_kv; one filter or none) opened on
// etcd and on raftkv at the same point of the op sequence, each on a stream of its own. At the end every watcher
// is brought to a known revision (one txn puts every watched key, a second deletes them) and the two event
// streams must be the same, event by event, with the same created and compacted answers.
import * as grpc from '@grpc/grpc-js';
import { Event_EventType, etcdBidiStream } from '../../../src/protocol/etcd-proto.js';
import type { MessageInit, WatchCreateRequest, WatchResponse } from '../../../src/protocol/etcd-proto.js';
import type { SeededRng } from '../../../src/raft/rng.js';
import { normalise, type Json } from './compare.js';
import { KEYS, prefixEnd, type GenState } from './ops.js';

/** One side's watch stream and what it answered. */
export class WatchRecording {
  readonly responses: WatchResponse[] = [];
  private readonly stream: ReturnType<typeof etcdBidiStream<'Watch', 'Watch'>>;
  failure: string | undefined; // the stream ended with an error

  constructor(client: grpc.Client, request: MessageInit<WatchCreateRequest>) {
    this.stream = etcdBidiStream(client, 'Watch', 'Watch');
    this.stream.on('data', (r: WatchResponse) => this.responses.push(r));
    this.stream.on('error', (err: grpc.ServiceError) => {
      if (err.code !== grpc.status.CANCELLED) this.failure = `${err.code} ${err.details}`;
    });
    this.stream.write({ createRequest: request });
  }

  /** Ended by the server (created and canceled, or compacted). */
  get canceled(): boolean {
    return this.responses.some((r) => r.canceled);
  }

  /** The highest revision of an event received. */
  get lastEventRevision(): bigint {
    let max = 0n;
    for (const r of this.responses) for (const e of r.events) if ((e.kv?.modRevision ?? 0n) > max) max = e.kv?.modRevision ?? 0n;
    return max;
  }

  /**
   * What is compared: the create answer, every event in order, the end (without per-response grouping). Events
   * `leftOut` says are not compared (see compactionTombstones) are left out.
   */
  json(leftOut: (e: WatchResponse['events'][number]) => boolean = () => false): Json {
    const created = this.responses[0];
    return {
      created: created === undefined ? null : normalise({ header: created.header, watchId: created.watchId, created: created.created, canceled: created.canceled, cancelReason: created.cancelReason }),
      events: this.responses.slice(1).flatMap((r) => r.events.filter((e) => !leftOut(e)).map((e) => normalise(e))),
      end: normalise(this.responses.slice(1).filter((r) => r.canceled).map((r) => ({ canceled: r.canceled, compactRevision: r.compactRevision, cancelReason: r.cancelReason }))),
    };
  }

  /** raftkv's own promise, checked on its side: all events of one revision in one response. */
  splitRevision(): bigint | undefined {
    const where = new Map<bigint, number>();
    for (const [i, r] of this.responses.entries()) {
      for (const e of r.events) {
        const rev = e.kv?.modRevision ?? 0n;
        const seen = where.get(rev);
        if (seen !== undefined && seen !== i) return rev;
        where.set(rev, i);
      }
    }
    return undefined;
  }

  /** The DELETE events at `revision` it received (compactionTombstones). */
  deletesAt(revision: bigint): number {
    return this.responses.reduce((n, r) => n + r.events.filter((e) => e.type === Event_EventType.DELETE && e.kv?.modRevision === revision).length, 0);
  }

  close(): void {
    this.stream.cancel();
  }
}

/**
 * etcd 3.4.23's compaction drops a tombstone whose revision is the compaction revision itself (etcd-io/etcd#18089,
 * fixed by #18274 in 3.4.33 and 3.5.15: "keep tombstone if revision == compactAtRev"), so a watch that starts at
 * the compacted revision misses the deletes made at that revision once the compaction has run (it runs in the
 * background: a watch opened before it finished still sees them). raftkv keeps that tombstone, as fixed etcd does.
 * For such a watcher those DELETE events are not compared; raftkv must have at least as many of them as etcd.
 * Undefined when the watcher does not start at the compacted revision.
 */
export function compactionTombstones(request: MessageInit<WatchCreateRequest>, compactedAtOpen: bigint): ((e: WatchResponse['events'][number]) => boolean) | undefined {
  const start = BigInt(request.startRevision ?? 0n);
  if (compactedAtOpen <= 0n || start !== compactedAtOpen) return undefined;
  return (e) => e.type === Event_EventType.DELETE && e.kv?.modRevision === compactedAtOpen;
}

/** A random Watch create request over the differential test's keys. */
export function randomWatch(rng: SeededRng, s: GenState): MessageInit<WatchCreateRequest> {
  const pick = <T>(xs: readonly T[]): T => {
    const x = xs[rng.int(xs.length)];
    if (x === undefined) throw new Error('pick from an empty list');
    return x;
  };
  const key = pick(KEYS);
  const shape = rng.int(4);
  const rangeEnd = shape === 0 ? undefined : shape === 1 ? prefixEnd(key) : shape === 2 ? Buffer.from([0]) : pick(KEYS);
  const lo = s.compacted > 0n ? s.compacted : 1n;
  const r = rng.float();
  const startRevision = r < 0.3 ? 0n : r < 0.85 ? lo + BigInt(rng.int(Number(s.revision - lo) + 1)) : r < 0.95 ? lo - 1n : s.revision + 1n;
  const filter = rng.int(6);
  return {
    key,
    ...(rangeEnd === undefined ? {} : { rangeEnd }),
    ...(startRevision > 0n ? { startRevision } : {}),
    ...(rng.int(2) === 0 ? { prevKv: true } : {}),
    ...(filter === 0 ? { filters: [0] } : filter === 1 ? { filters: [1] } : {}),
  };
}

/** The keys to put, then delete, so that every watcher sees an event at the end (one inside each range). */
export function sentinelKeys(requests: readonly MessageInit<WatchCreateRequest>[]): Buffer[] {
  const keys = new Map<string, Buffer>();
  for (const r of requests) {
    const k = Buffer.from(r.key ?? Buffer.alloc(0));
    keys.set(k.toString('hex'), k);
  }
  return [...keys.values()];
}
