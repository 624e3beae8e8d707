// The driver's handle on the core: feed ticks, messages and requests in; take a Ready out; advance().
//
// Contract with the driver (see Ready in types.ts for the order of work inside one Ready):
// - ready() and advance(rd) alternate: a second ready() before advance() is a bug (asserted). Between them the
//   driver may call applyConfChange() (when applying a committed conf-change entry) and nothing else.
// - The leader counts its own log toward commitment only once persisted: advance(rd) moves its own match to the
//   last of rd.entries. Commit-only hard state changes have mustSync false (their durability is optional: on
//   restart commit = max(durable commit, snapshot index, config.applied)).
// - A node with no membership at all (an empty data directory joining a cluster) rejects appends until it has
//   a snapshot: the leader answers with a 'snap' (possibly of index 0 carrying the bootstrap membership).
// - Snapshots: the leader emits 'snap' (metadata only) and waits in 'snapshot' state until reportSnapshot();
//   the driver must report every stream's outcome, failures included, or that follower is never retried.
import type { ConfChange, ConfState, HardState, Index, LogStorage, Message, NodeId, Ready, Role, SoftState, Term } from './types.js';
import type { RaftConfig } from './config.js';
import type { ProgressState } from './progress.js';
import { Raft } from './raft.js';
import { assert } from './util.js';
import type { RaftError } from './errors.js';

export interface RaftStatus {
  id: NodeId;
  term: Term;
  vote: NodeId;
  commit: Index;
  applied: Index;
  lastIndex: Index;
  firstIndex: Index;
  leader: NodeId;
  role: Role;
  leadTransferee: NodeId;
  confState: ConfState;
  /** Leader only, else empty. */
  progress: Map<NodeId, { match: Index; next: Index; state: ProgressState; recentActive: boolean }>;
}

const DEFAULT_MAX_COMMITTED_SIZE_PER_READY_BYTES = 64 * 1024 * 1024;

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

export class RawNode {
  /** The state machine itself. Internal: for invariants, describe and tests; drivers use the methods below. */
  readonly raft: Raft;
  private prevSoftState: SoftState;
  /** The hard state the driver last persisted (as of the last advance()). */
  private prevHardState: HardState;
  /** A Ready was handed out and not yet advanced. */
  private readyOutstanding = false;

  constructor(config: RaftConfig, storage: LogStorage) {
    this.raft = new Raft(config, storage);
    this.prevSoftState = this.raft.softState();
    this.prevHardState = storage.initialState().hardState;
  }

  tick(): void {
    this.raft.tick();
  }

  /** Messages from peers; stale or unknown messages are ignored. */
  step(m: Message): void {
    this.raft.step(m);
  }

  /**
   * Starts an election now (pre-vote first if enabled). Ignored on a leader, a learner or removed node, and
   * while committed conf-change entries are not yet applied (the membership may be about to change).
   */
  campaign(): void {
    this.raft.hup(false);
  }

  propose(data: Uint8Array): { index: Index; term: Term } {
    return this.raft.propose(data);
  }

  /** Several normal entries at once, sent together; outcomes[i]: datas[i]'s index and term, or why it was refused. */
  proposeBatch(datas: readonly Uint8Array[]): ({ index: Index; term: Term } | RaftError)[] {
    return this.raft.proposeBatch(datas);
  }

  proposeConfChange(cc: ConfChange): { index: Index; term: Term } {
    return this.raft.proposeConfChange(cc);
  }

  /** Call when applying a committed conf-change entry; returns the new membership. */
  applyConfChange(cc: ConfChange): ConfState {
    return this.raft.applyConfChange(cc);
  }

  readIndex(context: Uint8Array): void {
    this.raft.readIndex(context);
  }

  transferLeader(to: NodeId): void {
    this.raft.transferLeader(to);
  }

  reportUnreachable(id: NodeId): void {
    this.raft.reportUnreachable(id);
  }

  reportSnapshot(id: NodeId, ok: boolean): void {
    this.raft.reportSnapshot(id, ok);
  }

  leaderUnreachable(): void {
    this.raft.leaderUnreachable();
  }

  hasReady(): boolean {
    const r = this.raft;
    const ss = r.softState();
    if (ss.leader !== this.prevSoftState.leader || ss.role !== this.prevSoftState.role) return true;
    if (!sameHardState(r.hardState(), this.prevHardState)) return true;
    if (r.log.unstable.snapshot !== undefined || r.log.unstable.entries.length > 0) return true;
    if (r.msgs.length > 0 || r.readStates.length > 0) return true;
    return r.log.hasNextCommittedEntries();
  }

  ready(): Ready {
    assert(!this.readyOutstanding, 'ready() called again before advance()');
    const r = this.raft;
    const hs = r.hardState();
    const termOrVoteChanged = hs.term !== this.prevHardState.term || hs.vote !== this.prevHardState.vote;
    const ss = r.softState();
    const softChanged = ss.leader !== this.prevSoftState.leader || ss.role !== this.prevSoftState.role;
    this.prevSoftState = ss;
    const messages: Message[] = [];
    const messagesAfterPersist: Message[] = [];
    for (const o of r.takeMessages()) {
      // Anything sent after a term or vote change waits until that change is durable.
      if (o.afterPersist || termOrVoteChanged) messagesAfterPersist.push(o.message);
      else messages.push(o.message);
    }
    const entries = [...r.log.unstable.entries];
    const snapshot = r.log.unstable.snapshot;
    const readStates = r.readStates;
    r.readStates = [];
    this.readyOutstanding = true;
    return {
      softState: softChanged ? ss : undefined,
      hardState: sameHardState(hs, this.prevHardState) ? undefined : hs,
      snapshot,
      entries,
      committedEntries: r.log.nextCommittedEntries(r.cfg.maxCommittedSizePerReadyBytes ?? DEFAULT_MAX_COMMITTED_SIZE_PER_READY_BYTES),
      messages,
      messagesAfterPersist,
      readStates,
      mustSync: entries.length > 0 || termOrVoteChanged || snapshot !== undefined,
    };
  }

  /** The driver has done everything `rd` asked: persisted, sent, applied. */
  advance(rd: Ready): void {
    assert(this.readyOutstanding, 'advance() without a ready()');
    this.readyOutstanding = false;
    const r = this.raft;
    if (rd.hardState !== undefined) this.prevHardState = rd.hardState;
    if (rd.snapshot !== undefined) {
      r.log.unstable.stableSnapTo(rd.snapshot.metadata.index);
      if (rd.snapshot.metadata.index > r.log.applied) r.log.appliedTo(rd.snapshot.metadata.index);
    }
    const lastEntry = rd.entries[rd.entries.length - 1];
    if (lastEntry !== undefined) {
      r.log.unstable.stableTo(lastEntry.index, lastEntry.term);
      r.onEntriesPersisted(lastEntry.index, lastEntry.term);
    }
    const lastApplied = rd.committedEntries[rd.committedEntries.length - 1];
    if (lastApplied !== undefined) {
      r.log.appliedTo(lastApplied.index);
      r.reduceUncommittedSize(rd.committedEntries);
    }
  }

  status(): RaftStatus {
    const r = this.raft;
    const progress: RaftStatus['progress'] = new Map();
    if (r.role === 'leader') {
      for (const [id, pr] of r.progress) {
        progress.set(id, { match: pr.match, next: pr.next, state: pr.state, recentActive: pr.recentActive });
      }
    }
    return {
      id: r.id,
      term: r.term,
      vote: r.vote,
      commit: r.log.committed,
      applied: r.log.applied,
      lastIndex: r.log.lastIndex(),
      firstIndex: r.log.firstIndex(),
      leader: r.lead,
      role: r.role,
      leadTransferee: r.leadTransferee,
      confState: { voters: [...r.confState.voters], learners: [...r.confState.learners] },
      progress,
    };
  }
}
