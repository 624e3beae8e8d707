// Admission: the gates a client request passes before it is queued for the loop, and the limits on how many
// may wait at once. Nothing here touches the core: a request is checked against the last known state (fail
// fast: a follower answers NOT_LEADER with a hint, a member with no leader UNAVAILABLE, a full disk DISK_FULL),
// then it takes a slot that it frees when it settles (answer, error or deadline).
import type { NodeId } from '../raft/types.js';
import type { Clock } from '../shared/clock.js';
import { RaftKvError } from '../shared/errors.js';
import { assert } from './assert.js';
import { PendingRequest } from './request.js';
import { REQUEST_ERROR_CODES, isRaftKvError } from '../shared/errors.js';
import { NO_NODE_METRICS } from './node-metrics.js';
import type { NodeMetrics } from './node-metrics.js';

/** The limits (NodeConfig's). */
export interface AdmissionLimits {
  readonly maxPendingProposals: number; // writes and membership changes, queued or in the core
  readonly maxPendingReads: number; // linearizable reads awaiting their read index or the apply
}

/** What the gates read; every piece of it is owned elsewhere (the loop, the disk-full room, the known leader). */
export interface AdmissionState {
  readonly id: NodeId;
  /** The fatal error that ended the loop, if any. */
  failure(): Error | undefined;
  /** stop() was called. */
  stopping(): boolean;
  /** A disk refused a write: writes wait until space returns. */
  diskFull(): boolean;
  /** This member leads, as of the last Ready. */
  leads(): boolean;
  /** Some leader is known (to forward a ReadIndex request to). */
  leaderKnown(): boolean;
  notLeaderError(): RaftKvError;
}

export class Admission {
  private pendingWrites = 0; // unsettled writes + membership changes (queued or proposed); <= maxPendingProposals
  private pendingReads = 0; // unsettled linearizable reads; <= maxPendingReads

  constructor(
    private readonly limits: AdmissionLimits,
    private readonly clock: Clock,
    private readonly state: AdmissionState,
    private readonly metrics: NodeMetrics = NO_NODE_METRICS,
  ) {}

  /** UNAVAILABLE once the loop failed or stop() was called. */
  checkRunning(): void {
    const failure = this.state.failure();
    if (failure !== undefined) throw new RaftKvError('UNAVAILABLE', `node ${this.state.id} failed: ${failure.message}`);
    if (this.state.stopping()) throw new RaftKvError('UNAVAILABLE', `node ${this.state.id} is stopping`);
  }

  /** A write or a membership change: running, disk not full, and this member leads. */
  checkAcceptingWrites(): void {
    this.checkRunning();
    if (this.state.diskFull()) throw new RaftKvError('DISK_FULL', `node ${this.state.id}: the disk is full; writes resume when space returns`);
    this.checkLeader();
  }

  /** Fail fast: NOT_LEADER with a hint on a follower, UNAVAILABLE with no known leader. */
  checkLeader(): void {
    if (this.state.leads()) return;
    throw this.state.notLeaderError();
  }

  checkDeadline(deadlineMs: number, what: string): void {
    if (!(deadlineMs > this.clock.now())) throw new RaftKvError('DEADLINE_EXCEEDED', `${what}: the deadline had passed on arrival`);
  }

  /** A slot for a write or a membership change (RESOURCE_EXHAUSTED beyond maxPendingProposals). */
  writeSlot<T>(deadlineMs: number, what: string): PendingRequest<T> {
    this.checkDeadline(deadlineMs, what);
    if (this.pendingWrites >= this.limits.maxPendingProposals) {
      throw new RaftKvError('RESOURCE_EXHAUSTED', `too many pending proposals (maxPendingProposals ${this.limits.maxPendingProposals})`);
    }
    this.pendingWrites++;
    this.metrics.onProposalStarted();
    return new PendingRequest<T>(this.clock, deadlineMs, what, (err) => {
      this.pendingWrites--;
      // An error the state machine decided on apply is the proposal's outcome; any other means it got none.
      this.metrics.onProposalSettled(err !== undefined && !(isRaftKvError(err) && REQUEST_ERROR_CODES.has(err.code)));
    });
  }

  /** A slot for a linearizable read: it needs a leader to ask (RESOURCE_EXHAUSTED beyond maxPendingReads). */
  readSlot<T>(deadlineMs: number): PendingRequest<T> {
    this.checkDeadline(deadlineMs, 'read');
    if (!this.state.leaderKnown()) throw this.state.notLeaderError(); // any member serves it, given a leader to ask
    if (this.pendingReads >= this.limits.maxPendingReads) {
      throw new RaftKvError('RESOURCE_EXHAUSTED', `too many pending linearizable reads (maxPendingReads ${this.limits.maxPendingReads})`);
    }
    this.pendingReads++;
    return new PendingRequest<T>(this.clock, deadlineMs, 'read', () => {
      this.pendingReads--;
    });
  }

  assertInvariants(): void {
    // A slot is taken only below the limit and freed exactly once (PendingRequest settles once).
    assert(this.pendingWrites >= 0 && this.pendingWrites <= this.limits.maxPendingProposals, `pending writes ${this.pendingWrites} outside [0, ${this.limits.maxPendingProposals}]`);
    assert(this.pendingReads >= 0 && this.pendingReads <= this.limits.maxPendingReads, `pending reads ${this.pendingReads} outside [0, ${this.limits.maxPendingReads}]`);
  }
}
