// The leader's view of one follower's log (§5.3 nextIndex/matchIndex) and how it sends to it:
// probe (one 'app' at a time until a match is found), replicate (pipelined, bounded by Inflights),
// snapshot (waiting for an out-of-band snapshot to land).
import type { Index } from './types.js';
import { Inflights } from './inflights.js';
import { assert, assertNever } from './util.js';

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export class Progress {
  /** Highest index known to match the leader's log. Invariant: match < next. */
  match: Index;
  /** Next index to send. */
  next: Index;
  state: ProgressState = 'probe';
  /** In snapshot state: the index of the snapshot being sent. */
  pendingSnapshot: Index = 0;
  /** Heard from since the last check-quorum round. */
  recentActive: boolean;
  /** In probe state: an 'app' is out and unanswered; further appends wait for a response or heartbeat. */
  probeSent = false;
  readonly inflights: Inflights;
  isLearner: boolean;

  constructor(next: Index, maxInflight: number, isLearner: boolean, recentActive: boolean) {
    this.match = 0;
    this.next = next;
    this.inflights = new Inflights(maxInflight);
    this.isLearner = isLearner;
    this.recentActive = recentActive;
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    if (this.state === 'snapshot') {
      const pending = this.pendingSnapshot;
      this.resetState('probe');
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState('probe');
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState('replicate');
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: Index): void {
    this.resetState('snapshot');
    this.pendingSnapshot = snapshotIndex;
  }

  /** A successful append response up to n. Returns false if stale. */
  maybeUpdate(n: Index): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  /** Replicate state: entries up to n were sent optimistically. */
  optimisticUpdate(n: Index): void {
    this.next = n + 1;
  }

  /**
   * A rejected append for prevLogIndex `rejected`; `matchHint` is where the follower's log may match.
   * Returns false if the rejection is stale (from an earlier probe).
   */
  maybeDecrTo(rejected: Index, matchHint: Index): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false; // stale
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false; // not the probe we sent last
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    assert(this.next >= 1, 'progress: next below 1');
    this.probeSent = false;
    return true;
  }

  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.full();
      case 'snapshot':
        return true;
      default:
        return assertNever(this.state);
    }
  }
}
