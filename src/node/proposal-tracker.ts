// The proposal tracker: client writes and membership changes the core accepted, each awaiting the entry at the
// log index the core gave it. The entry's outcome answers the proposal when it is the entry proposed (same
// term); another entry at that index (a new leader's log replaced it) means the proposal was dropped and the
// client may safely retry. A snapshot from the leader covering a proposal's index leaves its outcome unknown.
import type { Entry, Index, Term } from '../raft/types.js';
import { assertNever } from '../raft/util.js';
import { RaftKvError } from '../shared/errors.js';
import type { AdminReply, Member, WriteReply } from './api.js';
import { assert } from './assert.js';
import type { RoomContext } from './node-context.js';
import type { ApplyOutcome } from './ports.js';
import type { PendingRequest } from './request.js';

/** A proposal in the core, awaiting the entry at its index. */
export type PendingProposal =
  | { readonly kind: 'write'; readonly term: Term; readonly request: PendingRequest<WriteReply> }
  | { readonly kind: 'conf-change'; readonly term: Term; readonly request: PendingRequest<AdminReply> };

export class ProposalTracker {
  // Invariant: every index is above appliedThrough (entries apply in index order, and a proposal's index is
  // beyond the leader's log, so beyond every committed and applied entry).
  private readonly byIndex = new Map<Index, PendingProposal>(); // proposals in the core, by log index
  private appliedThrough: Index = 0; // the highest index settle() or supersede() was told of

  constructor(
    private readonly ctx: RoomContext,
    private readonly members: () => readonly Member[], // the member table, a membership change's answer
  ) {}

  get size(): number {
    return this.byIndex.size;
  }

  /** The core accepted `p` at `index`. A proposal still waiting there lost its entry to a new leader's log. */
  track(index: Index, p: PendingProposal): void {
    const old = this.byIndex.get(index);
    if (old !== undefined) {
      // The entry the old proposal waited for was overwritten before it applied (a new leader's log).
      old.request.reject(new RaftKvError('PROPOSAL_DROPPED', `entry ${index} of term ${old.term} was replaced; safe to retry`));
    }
    this.byIndex.set(index, p);
  }

  /**
   * Answers the client writes among `entries` as soon as the state machine knows their outcomes (a committed
   * entry's outcome cannot change); other proposals, and writes whose entry was replaced, wait for settle().
   */
  settleWrites(entries: readonly Entry[], outcomes: readonly ApplyOutcome[]): void {
    assert(outcomes.length === entries.length, `state machine answered ${outcomes.length} outcomes for ${entries.length} entries`);
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      const outcome = outcomes[i];
      assert(e !== undefined && outcome !== undefined, 'entry/outcome index');
      const p = this.byIndex.get(e.index);
      if (p === undefined || p.kind !== 'write' || p.term !== e.term) continue; // a replaced entry: settle() says so
      this.byIndex.delete(e.index);
      this.answerWrite(p.request, e.index, outcome);
    }
  }

  /** Entry `e` has been applied with `outcome` (its batch landed): answers the proposal waiting for it. */
  settle(e: Entry, outcome: ApplyOutcome): void {
    this.appliedThrough = Math.max(this.appliedThrough, e.index);
    const p = this.byIndex.get(e.index);
    if (p === undefined) return;
    this.byIndex.delete(e.index);
    if (p.term !== e.term) {
      p.request.reject(new RaftKvError('PROPOSAL_DROPPED', `entry ${e.index} of term ${p.term} was replaced by term ${e.term}; safe to retry`, this.ctx.leaderHint()));
      return;
    }
    switch (p.kind) {
      case 'write':
        this.answerWrite(p.request, e.index, outcome);
        break;
      case 'conf-change':
        if (outcome.type === 'error') p.request.reject(outcome.error);
        else p.request.resolve(this.members());
        break;
      default:
        assertNever(p);
    }
  }

  /** A snapshot from the leader replaced the log up to `index`: the proposals it covers have an unknown fate. */
  supersede(index: Index): void {
    this.appliedThrough = Math.max(this.appliedThrough, index);
    for (const [i, p] of this.byIndex) {
      if (i <= index) {
        this.byIndex.delete(i);
        p.request.reject(new RaftKvError('UNAVAILABLE', `entry ${i} was superseded by a snapshot from the leader; outcome unknown`));
      }
    }
  }

  /** Rejects every proposal (the node stops or failed). */
  failAll(err: Error): void {
    for (const p of this.byIndex.values()) p.request.reject(err);
    this.byIndex.clear();
  }

  assertInvariants(): void {
    for (const [index, p] of this.byIndex) {
      assert(Number.isSafeInteger(index) && index > this.appliedThrough, `proposal at index ${index}, at or below the applied ${this.appliedThrough}`);
      assert(p.term >= 1, `proposal at index ${index} of term ${p.term}`);
    }
  }

  private answerWrite(request: PendingRequest<WriteReply>, index: Index, outcome: ApplyOutcome): void {
    switch (outcome.type) {
      case 'result':
        request.resolve({ header: this.ctx.header(index), result: outcome.result });
        break;
      case 'error':
        request.reject(outcome.error);
        break;
      case 'none':
        throw new Error(`state machine gave no result for the client write at index ${index}`);
      default:
        assertNever(outcome);
    }
  }
}
