// The apply pipeline: committed entries into the state machine, in log order. Batches without a snapshot or a
// membership change go onto one ordered chain off the loop (the core's `applied` means "handed to apply", so
// advance() does not wait for them; their writes are answered and reads served as each batch lands); a batch
// with a conf change waits for the chain and is applied on the loop, between ready() and advance(), as the core
// requires. A failure off the loop (an apply, a background flush, a corruption check) is kept here and the loop
// rethrows it: the node dies as if the loop itself had failed.
import { decodeConfChange } from '../raft/conf-change.js';
import type { ConfChange, Entry, Index } from '../raft/types.js';
import { assert, toError } from './assert.js';
import type { ProposalTracker } from './proposal-tracker.js';
import type { StateMachine } from './ports.js';
import type { DriverStats } from './stats.js';

/** The loop's side of a committed membership change (the loop owns the core and the peers). */
export interface MembershipSink {
  /** Conf change `cc` of entry `index` goes to the core; `replayed`: the state machine applied it before a restart. */
  applyConfChange(cc: ConfChange, index: Index, replayed: boolean): void;
  /** After the replayed changes of a batch (a restart relearns the membership from the log). */
  relearned(): void;
  /** After a batch that changed the member table. */
  changed(): void;
}

export interface ApplyPipelineDeps {
  readonly sm: Pick<StateMachine, 'appliedIndex' | 'apply'>;
  readonly proposals: Pick<ProposalTracker, 'settleWrites' | 'settle'>;
  readonly membership: MembershipSink;
  readonly stats: Pick<DriverStats, 'entriesApplied'>;
  /** An off-loop batch landed (or was skipped after a failure): serve the reads it made possible. */
  afterOffLoopBatch(): void;
  /** A failure was recorded: wake the loop to rethrow it. */
  wakeLoop(): void;
  /** An off-loop batch finished (the node may be idle now). */
  onIdle(): void;
  /** A batch of `entries` entries from `firstIndex` was applied in durationMs (metrics, the slow-apply warning). */
  observeApply?(entries: number, firstIndex: Index, durationMs: number): void;
}

export class ApplyPipeline {
  private chain: Promise<void> = Promise.resolve(); // committed entries applied off the loop, in order (never rejects)
  private queued = 0; // batches queued on the chain and not yet applied
  private failureValue: Error | undefined; // the first failure off the loop: the loop rethrows it

  constructor(private readonly deps: ApplyPipelineDeps) {}

  /** The first failure recorded off the loop, if any. */
  get failure(): Error | undefined {
    return this.failureValue;
  }

  /** Batches are queued off the loop. */
  get busy(): boolean {
    return this.queued > 0;
  }

  /** Records a failure found off the loop (only the first is kept) and wakes the loop to rethrow it. */
  fail(err: unknown): void {
    this.failureValue ??= toError(err);
    this.deps.wakeLoop();
  }

  /** Applies `entries` (durable here, no conf change among them) off the loop, after the batches queued before them. */
  queue(entries: readonly Entry[]): void {
    this.queued++;
    this.chain = this.chain.then(async () => {
      try {
        if (this.failureValue === undefined) await this.apply(entries);
        this.deps.afterOffLoopBatch();
      } catch (err) {
        this.fail(err);
      } finally {
        this.queued--;
        this.deps.onIdle();
      }
    });
  }

  /** Waits until every queued batch landed; rethrows a failure. */
  async drain(): Promise<void> {
    await this.chain;
    if (this.failureValue !== undefined) throw this.failureValue;
  }

  /** Resolves when every queued batch landed or failed (never rejects). */
  settled(): Promise<void> {
    return this.chain;
  }

  /** Applies committed entries (on the loop for a conf change batch, else on the chain through queue()). */
  async apply(committed: readonly Entry[]): Promise<void> {
    const { sm, membership } = this.deps;
    // After a restart the core replays entries the state machine already applied: only their membership
    // changes matter (the core's ConfState comes from the log's snapshot plus the changes after it).
    const applied = sm.appliedIndex;
    let replayedConfChanges = false;
    for (const e of committed) {
      if (e.index > applied || e.type !== 'conf-change') continue;
      membership.applyConfChange(decodeConfChange(e.data), e.index, true);
      replayedConfChanges = true;
    }
    if (replayedConfChanges) membership.relearned();
    const entries = committed.filter((e) => e.index > applied);
    if (entries.length === 0) return;
    // Client writes are answered as soon as their outcomes are known (the state machine is still writing the
    // batch; a committed entry's outcome cannot change); membership changes once the batch has landed.
    const startedMs = performance.now();
    const outcomes = await sm.apply(entries, (early) => this.deps.proposals.settleWrites(entries, early));
    this.deps.observeApply?.(entries.length, entries[0]?.index ?? 0, performance.now() - startedMs);
    assert(outcomes.length === entries.length, `state machine answered ${outcomes.length} outcomes for ${entries.length} entries`);
    this.deps.stats.entriesApplied += entries.length;
    let membershipChanged = false;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      const outcome = outcomes[i];
      assert(e !== undefined && outcome !== undefined, 'entry/outcome index');
      if (e.type === 'conf-change') {
        membership.applyConfChange(decodeConfChange(e.data), e.index, false);
        membershipChanged = true;
      }
      this.deps.proposals.settle(e, outcome);
    }
    if (membershipChanged) membership.changed();
  }

  assertInvariants(): void {
    assert(this.queued >= 0, `${this.queued} apply batches queued`);
  }
}
