// Leadership transfer and handover: transferLeadership() callers wait here for the leader to change, once the
// core has started the transfer (§3.10). They are answered when the soft state names the new leader (resolved if
// it is the target, FAILED_PRECONDITION if another member won), or at once when the core abandons a transfer
// whose target did not catch up within an election timeout and stays leader. A leader's graceful stop() first
// hands over here: to its most up-to-date voter, waiting a bounded time, then stops anyway.
import type { RaftStatus } from '../raft/raw-node.js';
import type { Index, NodeId, Role } from '../raft/types.js';
import { NONE } from '../raft/types.js';
import { RaftKvError } from '../shared/errors.js';
import { assert } from './assert.js';
import type { RoomContext } from './node-context.js';
import { PendingRequest } from './request.js';

// stop() waits this many election timeouts for the handover before it stops anyway.
const HANDOVER_ELECTION_TIMEOUTS = 2;

export class LeadershipTransfer {
  private readonly waiters: { readonly to: NodeId; readonly request: PendingRequest<void> }[] = []; // transfers the core started
  private handingOverNow = false; // stop() is waiting for a leadership handover

  constructor(
    private readonly ctx: RoomContext,
    private readonly electionTimeoutMs: number, // electionTimeoutTicks x tickIntervalMs
  ) {}

  /** Transfers are waiting for the leader to change. */
  get waiting(): boolean {
    return this.waiters.length > 0;
  }

  /** stop() is waiting for a leadership handover. */
  get handingOver(): boolean {
    return this.handingOverNow;
  }

  /** The core started a transfer to `to` for `request`. */
  started(to: NodeId, request: PendingRequest<void>): void {
    this.waiters.push({ to, request });
  }

  /** The soft state names a new leader (NONE: none known yet, so nothing is decided). */
  onLeaderChange(leader: NodeId): void {
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i];
      if (w === undefined) continue;
      if (w.to === leader) w.request.resolve();
      else if (leader !== NONE) {
        w.request.reject(new RaftKvError('FAILED_PRECONDITION', `leadership went to ${leader}, not ${w.to}`, this.ctx.leaderHint()));
      } else continue;
      this.waiters.splice(i, 1);
    }
  }

  /**
   * The core's role and transfer target: a leader with no transfer under way abandoned it (its target did not
   * catch up within an election timeout, §3.10). Its callers learn it now instead of at their deadline (chaos seed 51).
   */
  settleAbandoned(role: Role, leadTransferee: NodeId): void {
    if (role !== 'leader' || leadTransferee !== NONE) return;
    for (const w of this.waiters) {
      w.request.reject(
        new RaftKvError('UNAVAILABLE', `transfer to member ${w.to} abandoned: it did not catch up within an election timeout; member ${this.ctx.id} still leads`, this.ctx.leaderHint()),
      );
    }
    this.waiters.length = 0;
  }

  /**
   * stop() on a leader: hands over to its most up-to-date voter (`st` is the core's status; `transfer` queues a
   * transfer for the loop), waiting at most HANDOVER_ELECTION_TIMEOUTS election timeouts. Never rejects.
   */
  async handOver(st: RaftStatus, transfer: (to: NodeId, request: PendingRequest<void>) => void): Promise<void> {
    this.handingOverNow = true;
    try {
      const best = handoverTarget(st, this.ctx.id);
      if (best === undefined) return;
      const { log, clock } = this.ctx;
      log.info({ ...this.ctx.logFields(), to: best.id, match: best.match }, 'graceful stop: transferring leadership');
      const waitMs = HANDOVER_ELECTION_TIMEOUTS * this.electionTimeoutMs;
      const request = new PendingRequest<void>(clock, clock.now() + waitMs, `transfer leadership to ${best.id}`, () => undefined);
      transfer(best.id, request);
      try {
        await request.promise;
        log.info({ term: this.ctx.logFields().term, to: best.id }, 'graceful stop: leadership handed over');
      } catch (err) {
        log.warn({ ...this.ctx.logFields(), err }, 'graceful stop: leadership transfer did not finish; stopping anyway');
      }
    } finally {
      this.handingOverNow = false;
    }
  }

  /** Rejects every waiting transfer (the node stops or failed). */
  failAll(err: Error): void {
    for (const w of this.waiters) w.request.reject(err);
    this.waiters.length = 0;
  }

  assertInvariants(): void {
    // transferLeadership() to itself returns at once, and the handover never picks this member.
    for (const w of this.waiters) assert(w.to !== NONE && w.to !== this.ctx.id, `a transfer waits for member ${w.to} (this member: ${this.ctx.id})`);
  }
}

/** The voter to hand over to: followers heard from recently first, then the most up to date. */
function handoverTarget(st: RaftStatus, self: NodeId): { id: NodeId; match: Index } | undefined {
  let best: { id: NodeId; match: Index } | undefined;
  let bestActive = false;
  for (const [id, p] of st.progress) {
    if (id === self || !st.confState.voters.includes(id)) continue;
    const better = best === undefined || (p.recentActive && !bestActive) || (p.recentActive === bestActive && p.match > best.match);
    if (better) {
      best = { id, match: p.match };
      bestActive = p.recentActive;
    }
  }
  return best;
}
