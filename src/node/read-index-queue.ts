// The ReadIndex queue: linearizable reads (§6.4), one ReadIndex round per loop turn for all of that turn's
// reads. On the leader a heartbeat round confirms the round; on a follower the core asks the leader for its
// read index. Either way the core answers with a ReadState (context, index) and the reads are served here, off
// the loop, once this member has applied up to that index (any member answers linearizable reads). A round
// whose leader changes before it is confirmed fails (retryable), as etcd's does, rather than being served at an
// index the new leader never vouched for. keySpaceDigest() callers wait here too, for their index to be applied.
// The loop owns the core: it asks for the round (RawNode.readIndex) and hands the ReadStates in.
import type { Index, NodeId, ReadState } from '../raft/types.js';
import { NONE } from '../raft/types.js';
import type { RangeRequest } from '../kv/types.js';
import { RaftKvError } from '../shared/errors.js';
import type { KeySpaceDigestAt, ReadReply } from './api.js';
import { assert, toError } from './assert.js';
import type { RoomContext } from './node-context.js';
import type { StateMachine } from './ports.js';
import type { PendingRequest } from './request.js';

// A follower asks the leader again for a read index not answered within this many ticks (the request or its
// answer may have been lost; etcd's follower retries after 500 ms too). The leader answers each request; the
// first answer serves the batch, later ones find it gone.
export const READ_INDEX_RETRY_TICKS = 5;
const CONTEXT_BYTES = 8; // a round's context: its sequence number, big-endian

export interface PendingRead {
  readonly range: RangeRequest;
  readonly request: PendingRequest<ReadReply>;
}

/** The linearizable reads of one loop turn, behind one ReadIndex context. */
interface ReadBatch {
  readonly reads: readonly PendingRead[];
  index: Index | undefined; // the read index, once the leader confirmed it (ReadState)
  readonly context: Uint8Array; // the ReadIndex request's context (a follower re-sends it)
  waitedTicks: number; // ticks since a follower last asked the leader for this batch's read index
}

function contextKey(ctx: Uint8Array): string {
  return Buffer.from(ctx.buffer, ctx.byteOffset, ctx.byteLength).toString('hex');
}

export class ReadIndexQueue {
  private readSeq = 0; // ReadIndex context counter (the last context handed out)
  private readonly unconfirmed = new Map<string, ReadBatch>(); // awaiting their ReadState, by context; index undefined
  private ready: ReadBatch[] = []; // read index known, awaiting apply
  private inflightReads = 0; // reads being served from the state machine
  private digestWaiters: { index: Index; request: PendingRequest<KeySpaceDigestAt> }[] = []; // keySpaceDigest() until applied
  private appliedWaiters: { index: Index; request: PendingRequest<void> }[] = []; // waitApplied() until applied

  constructor(
    private readonly ctx: RoomContext,
    private readonly sm: Pick<StateMachine, 'appliedIndex' | 'range' | 'digestAt'>,
    private readonly onIdle: () => void, // a served read finished (the node may be idle now)
  ) {}

  /** Reads are being served from the state machine. */
  get busy(): boolean {
    return this.inflightReads > 0;
  }

  /** The context of the next ReadIndex round (the loop asks the core with it, then calls add()). */
  nextContext(): Uint8Array {
    const ctx = new Uint8Array(CONTEXT_BYTES);
    new DataView(ctx.buffer).setBigUint64(0, BigInt(++this.readSeq));
    return ctx;
  }

  /** The core took the round `context` for `reads`. */
  add(context: Uint8Array, reads: readonly PendingRead[]): void {
    this.unconfirmed.set(contextKey(context), { reads, index: undefined, context, waitedTicks: 0 });
  }

  /**
   * On a follower that knows the leader, after `ticks` ticks: the contexts of the rounds unanswered for
   * READ_INDEX_RETRY_TICKS, for the loop to ask the leader again.
   */
  dueForRetry(ticks: number): Uint8Array[] {
    const due: Uint8Array[] = [];
    for (const batch of this.unconfirmed.values()) {
      batch.waitedTicks += ticks;
      if (batch.waitedTicks < READ_INDEX_RETRY_TICKS) continue;
      batch.waitedTicks = 0;
      due.push(batch.context);
    }
    return due;
  }

  /** The core's answers: those rounds' reads wait for the apply of their index. */
  onReadStates(states: readonly ReadState[]): void {
    for (const rs of states) {
      const key = contextKey(rs.context);
      const batch = this.unconfirmed.get(key);
      if (batch === undefined) continue; // a batch we already failed (lost leadership)
      this.unconfirmed.delete(key);
      batch.index = rs.index;
      this.ready.push(batch);
    }
  }

  /**
   * The soft state changed: a deposed leader's rounds will never be confirmed, and a follower's went to a leader
   * that is gone. They fail (retryable); `leader` is the new one (NONE: unknown).
   */
  onLeaderChange(lostLeadership: boolean, leaderChanged: boolean, leader: NodeId): void {
    if (!(lostLeadership || leaderChanged) || this.unconfirmed.size === 0) return;
    const err =
      leader === NONE
        ? this.ctx.notLeaderError()
        : new RaftKvError('UNAVAILABLE', `node ${this.ctx.id}: the leader changed during a linearizable read; retry`, this.ctx.leaderHint());
    for (const batch of this.unconfirmed.values()) for (const r of batch.reads) r.request.reject(err);
    this.unconfirmed.clear();
  }

  /** Serves the reads (and digests) whose index the state machine has applied. */
  serveReady(): void {
    if (this.digestWaiters.length > 0) this.serveDigestWaiters();
    if (this.appliedWaiters.length > 0) {
      const applied = this.sm.appliedIndex;
      this.appliedWaiters = this.appliedWaiters.filter((w) => {
        if (w.request.settled) return false;
        if (w.index > applied) return true;
        w.request.resolve();
        return false;
      });
    }
    if (this.ready.length === 0) return;
    const applied = this.sm.appliedIndex;
    const waiting: ReadBatch[] = [];
    for (const batch of this.ready) {
      if (batch.index === undefined || batch.index > applied) {
        waiting.push(batch);
        continue;
      }
      for (const r of batch.reads) if (!r.request.settled) this.serveRead(r, applied);
    }
    this.ready = waiting;
  }

  /** keySpaceDigest(): answered now if `index` is applied, else once it is. */
  digest(index: Index, request: PendingRequest<KeySpaceDigestAt>): void {
    if (index <= this.sm.appliedIndex) this.answerDigest(index, request);
    else this.digestWaiters.push({ index, request });
  }

  /** waitApplied(): resolved now if `index` is applied, else once it is (or at its deadline). */
  applied(index: Index, request: PendingRequest<void>): void {
    if (index <= this.sm.appliedIndex) request.resolve();
    else this.appliedWaiters.push({ index, request });
  }

  /** Rejects every read waiting for its read index or its apply (digest and apply waiters keep their deadline). */
  failAll(err: Error): void {
    for (const b of this.unconfirmed.values()) for (const r of b.reads) r.request.reject(err);
    this.unconfirmed.clear();
    for (const b of this.ready) for (const r of b.reads) r.request.reject(err);
    this.ready = [];
  }

  assertInvariants(): void {
    assert(this.inflightReads >= 0, `${this.inflightReads} reads in flight`);
    for (const [key, b] of this.unconfirmed) {
      assert(b.index === undefined, `unconfirmed read batch ${key} has read index ${String(b.index)}`);
      assert(key === contextKey(b.context), `read batch filed under ${key}, context ${contextKey(b.context)}`);
      assert(b.waitedTicks >= 0 && b.waitedTicks < READ_INDEX_RETRY_TICKS, `read batch ${key} waited ${b.waitedTicks} ticks without a retry`);
      const seq = new DataView(b.context.buffer, b.context.byteOffset, b.context.byteLength).getBigUint64(0);
      assert(seq >= 1n && seq <= BigInt(this.readSeq), `read batch ${key} beyond the last context ${this.readSeq}`);
    }
    for (const b of this.ready) assert(b.index !== undefined, 'a confirmed read batch without a read index');
    for (const w of this.digestWaiters) assert(w.index >= 1, `a digest waits for index ${w.index}`);
  }

  private serveDigestWaiters(): void {
    const applied = this.sm.appliedIndex;
    const waiting: typeof this.digestWaiters = [];
    for (const w of this.digestWaiters) {
      if (w.request.settled) continue;
      if (w.index > applied) waiting.push(w);
      else this.answerDigest(w.index, w.request);
    }
    this.digestWaiters = waiting;
  }

  private answerDigest(index: Index, request: PendingRequest<KeySpaceDigestAt>): void {
    const d = this.sm.digestAt?.(index);
    if (d === undefined) {
      request.reject(new RaftKvError('NOT_FOUND', `member ${this.ctx.id} no longer remembers the key-space digest at index ${index} (applied ${this.sm.appliedIndex})`));
      return;
    }
    request.resolve({ memberId: this.ctx.id, index, lane1: d.lane1, lane2: d.lane2, count: d.count });
  }

  /** Served off the loop: the state machine's read view is at least at `applied` (>= the read index). */
  private serveRead(r: PendingRead, applied: Index): void {
    this.inflightReads++;
    this.sm
      .range(r.range)
      .then(
        (result) => r.request.resolve({ header: this.ctx.header(applied), result }),
        (err: unknown) => r.request.reject(toError(err)),
      )
      .finally(() => {
        this.inflightReads--;
        this.onIdle();
      });
  }
}
