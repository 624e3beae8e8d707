// The Raft state machine: roles, elections (§5.2, pre-vote §9.6), log replication (§5.3), commitment
// (§5.4.2), check-quorum and the leader lease (§6.2 / §4.2.3), ReadIndex (§6.4), leadership transfer (§3.10),
// snapshots (§7) and single-server membership changes (§4.1). Pure and synchronous: see raw-node.ts.
// Why one file of ~950 lines: these are the transitions of one state (term, vote, role, log, progress), as in
// etcd-io/raft's raft.go; the log, progress, quorum, read-only and conf-change rules are their own files.
import type {
  AppendMessage,
  ConfChange,
  ConfState,
  Entry,
  HardState,
  HeartbeatMessage,
  Index,
  LogStorage,
  Message,
  NodeId,
  ReadState,
  Role,
  Snapshot,
  SnapshotMessage,
  SoftState,
  Term,
  VoteMessage,
} from './types.js';
import { NONE, entrySizeBytes } from './types.js';
import type { RaftConfig } from './config.js';
import { validateRaftConfig } from './config.js';
import { RaftError, isRaftError } from './errors.js';
import { RaftLog } from './raft-log.js';
import { Progress } from './progress.js';
import { committedIndex, hasQuorum, voteResult } from './quorum.js';
import { ReadOnly } from './read-only.js';
import type { ReadIndexStatus } from './read-only.js';
import { applyConfChangeTo, confChangeProblem, encodeConfChange, decodeConfChange } from './conf-change.js';
import { AssertionError, assert, assertNever } from './util.js';

const EMPTY = new Uint8Array(0);

/** A message queued for the next Ready, with whether it must wait until the Ready is persisted. */
export interface OutgoingMessage {
  readonly message: Message;
  readonly afterPersist: boolean;
}

function sendsAfterPersist(m: Message): boolean {
  switch (m.type) {
    case 'app-resp': // acknowledges durable entries
    case 'vote': // carries our durable term and self-vote
    case 'vote-resp': // promises a durable vote
    case 'pre-vote-resp':
      return true;
    case 'app':
    case 'heartbeat':
    case 'heartbeat-resp':
    case 'pre-vote':
    case 'snap':
    case 'timeout-now':
    case 'read-index':
    case 'read-index-resp':
      return false;
    default:
      return assertNever(m);
  }
}

export class Raft {
  readonly id: NodeId;
  readonly cfg: RaftConfig;
  readonly log: RaftLog;

  /** Current term (§5.1). Never decreases. */
  term: Term = 0;
  /** Candidate voted for in `term`; NONE if none. At most one vote per term (§5.2). */
  vote: NodeId = NONE;
  /** Leader of `term` as far as we know; NONE if unknown. */
  lead: NodeId = NONE;
  role: Role = 'follower';

  /** Applied membership (changes take effect when applied). */
  confState: ConfState = { voters: [], learners: [] };
  voters = new Set<NodeId>();
  learners = new Set<NodeId>();

  /** Leader only: one entry per member (self included). */
  readonly progress = new Map<NodeId, Progress>();
  /** Candidate / pre-candidate: votes received in this campaign. */
  readonly votes = new Map<NodeId, boolean>();

  msgs: OutgoingMessage[] = [];
  readStates: ReadState[] = [];

  /** Ticks since the last election timeout reset (follower: since we heard from the leader). */
  electionElapsed = 0;
  heartbeatElapsed = 0;
  /** Drawn from [electionTimeoutTicks, 2 * electionTimeoutTicks) at every reset (§5.2). */
  randomizedElectionTimeout = 0;

  /** Leader: the target of a leadership transfer in progress, NONE if none. */
  leadTransferee: NodeId = NONE;
  /** Leader: index of the latest conf-change entry that may be unapplied; a new one waits until applied >= it. */
  pendingConfIndex: Index = 0;
  /** Leader: bytes of proposed entries not yet applied. */
  uncommittedSizeBytes = 0;

  readonly readOnly = new ReadOnly();
  /** Leader: read requests waiting until an entry of the current term is committed. */
  private pendingReadIndex: { from: NodeId; context: Uint8Array }[] = [];

  constructor(cfg: RaftConfig, storage: LogStorage) {
    validateRaftConfig(cfg);
    this.id = cfg.id;
    this.cfg = cfg;
    this.log = new RaftLog(storage);
    const { hardState, confState } = storage.initialState();
    this.setConfState(confState);
    // Commit durability is optional (a commit-only change is written without an fsync): the durable commit may
    // lag behind the snapshot (log.committed starts at firstIndex-1) or the state machine's applied index.
    // Both were committed, so the commit index is the largest of the three.
    assert(hardState.commit <= this.log.lastIndex(), () => `hard state commit ${hardState.commit} beyond last index ${this.log.lastIndex()}`);
    this.log.committed = Math.max(this.log.committed, hardState.commit);
    this.term = hardState.term;
    this.vote = hardState.vote;
    // A crash may keep entries whose hard state (term) record was not yet durable: entries of term T imply we
    // had seen term T. Raising the term is safe (the lost vote was never sent: votes wait for persistence).
    const lastTerm = this.log.lastTerm();
    if (lastTerm > this.term) {
      this.term = lastTerm;
      this.vote = NONE;
    }
    if (cfg.applied > this.log.committed) this.log.commitTo(cfg.applied);
    if (cfg.applied > 0) this.log.appliedTo(cfg.applied);
    this.becomeFollower(this.term, NONE);
  }

  // ---- state snapshots -------------------------------------------------------------------------------

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  softState(): SoftState {
    return { leader: this.lead, role: this.role };
  }

  promotable(): boolean {
    return this.voters.has(this.id);
  }

  private setConfState(cs: ConfState): void {
    this.confState = { voters: [...cs.voters], learners: [...cs.learners] };
    this.voters = new Set(cs.voters);
    this.learners = new Set(cs.learners);
    assert(![...this.voters].some((v) => this.learners.has(v)), 'a member is both voter and learner');
  }

  private isUnconfigured(): boolean {
    return this.voters.size === 0 && this.learners.size === 0;
  }

  // ---- sending ---------------------------------------------------------------------------------------

  private send(m: Message): void {
    assert(m.from === this.id, 'message from another node');
    this.msgs.push({ message: m, afterPersist: sendsAfterPersist(m) });
  }

  takeMessages(): OutgoingMessage[] {
    const out = this.msgs;
    this.msgs = [];
    return out;
  }

  // ---- role transitions ------------------------------------------------------------------------------

  private resetRandomizedElectionTimeout(): void {
    const e = this.cfg.electionTimeoutTicks;
    this.randomizedElectionTimeout = e + this.cfg.rng.int(e);
  }

  private reset(term: Term): void {
    if (this.term !== term) {
      assert(term > this.term, () => `term regression ${this.term} -> ${term}`);
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.leadTransferee = NONE;
    this.votes.clear();
    this.progress.clear();
    this.readOnly.reset();
    this.pendingReadIndex = [];
    this.pendingConfIndex = 0;
    this.uncommittedSizeBytes = 0;
  }

  becomeFollower(term: Term, lead: NodeId): void {
    this.reset(term);
    this.lead = lead;
    this.role = 'follower';
  }

  private becomePreCandidate(): void {
    assert(this.role !== 'leader', 'leader cannot become pre-candidate');
    // Pre-vote does not touch term or vote (thesis §9.6).
    this.votes.clear();
    this.lead = NONE;
    this.role = 'pre-candidate';
  }

  private becomeCandidate(): void {
    assert(this.role !== 'leader', 'leader cannot become candidate');
    this.reset(this.term + 1); // §5.2: increment term, vote for self
    this.vote = this.id;
    this.role = 'candidate';
  }

  private becomeLeader(): void {
    assert(this.role === 'candidate', () => `only a candidate becomes leader (was ${this.role})`);
    this.reset(this.term);
    this.lead = this.id;
    this.role = 'leader';
    const next = this.log.lastIndex() + 1;
    for (const id of [...this.voters, ...this.learners]) {
      this.progress.set(id, new Progress(next, this.cfg.maxInflightMsgs, this.learners.has(id), false));
    }
    const self = this.progress.get(this.id);
    assert(self !== undefined, 'leader is not a voter');
    // Our own log counts only as far as it is durable (see advance()).
    self.match = this.log.stableLastIndex();
    self.becomeReplicate();
    self.next = Math.max(self.next, next);
    self.recentActive = true;
    // §5.4.2 / §8: a no-op entry of the new term lets the leader commit everything before it.
    this.appendEntries([{ type: 'normal', data: EMPTY }]);
    // No conf change until everything up to the no-op is applied (the single-server change fix, §4.1).
    this.pendingConfIndex = this.log.lastIndex();
    this.uncommittedSizeBytes = 0;
  }

  // ---- ticks -----------------------------------------------------------------------------------------

  tick(): void {
    switch (this.role) {
      case 'leader':
        this.tickHeartbeat();
        return;
      case 'follower':
      case 'pre-candidate':
      case 'candidate':
        this.tickElection();
        return;
      default:
        assertNever(this.role);
    }
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(false);
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.cfg.electionTimeoutTicks) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum) {
        // §6.2: a leader that heard from no quorum within an election timeout steps down.
        const active = hasQuorum(this.voters, (id) => id === this.id || (this.progress.get(id)?.recentActive ?? false));
        for (const [id, pr] of this.progress) if (id !== this.id) pr.recentActive = false;
        if (!active) {
          this.becomeFollower(this.term, NONE);
          return;
        }
      }
      if (this.leadTransferee !== NONE) this.leadTransferee = NONE; // §3.10: abort after an election timeout
    }
    if (this.heartbeatElapsed >= this.cfg.heartbeatIntervalTicks) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat(this.readOnly.lastPendingContext() ?? EMPTY);
    }
  }

  // ---- elections -------------------------------------------------------------------------------------

  /** Starts a campaign if allowed: pre-vote first unless `transfer` (a leadership transfer's timeout-now). */
  hup(transfer: boolean): void {
    if (this.role === 'leader' || !this.promotable()) return;
    if (this.hasUnappliedConfChanges()) return; // its membership may be about to change: wait until applied
    if (this.cfg.preVote && !transfer) this.campaign('pre-vote', false);
    else this.campaign('vote', transfer);
  }

  private hasUnappliedConfChanges(): boolean {
    if (this.log.committed <= this.log.applied) return false;
    const lo = Math.max(this.log.applied + 1, this.log.firstIndex());
    if (lo > this.log.committed) return false;
    try {
      return this.log.slice(lo, this.log.committed + 1, Number.POSITIVE_INFINITY).some((e) => e.type === 'conf-change');
    } catch (err) {
      if (isRaftError(err, 'COMPACTED')) return false;
      throw err;
    }
  }

  private campaign(kind: 'pre-vote' | 'vote', transfer: boolean): void {
    let voteTerm: Term;
    if (kind === 'pre-vote') {
      this.becomePreCandidate();
      voteTerm = this.term + 1; // the term we would campaign in; our own term is unchanged
    } else {
      this.becomeCandidate();
      voteTerm = this.term;
    }
    if (this.poll(this.id, true) === 'won') {
      // A single-voter cluster wins at once.
      if (kind === 'pre-vote') this.campaign('vote', transfer);
      else this.becomeLeader();
      return;
    }
    const index = this.log.lastIndex();
    const logTerm = this.log.lastTerm();
    for (const to of this.voters) {
      if (to === this.id) continue;
      const m: VoteMessage = { type: kind, from: this.id, to, term: voteTerm, index, logTerm, transfer };
      this.send(m);
    }
  }

  private poll(id: NodeId, granted: boolean): 'won' | 'lost' | 'pending' {
    if (!this.votes.has(id)) this.votes.set(id, granted);
    return voteResult(this.voters, this.votes);
  }

  // ---- step ------------------------------------------------------------------------------------------

  step(m: Message): void {
    if (m.to !== this.id || m.from === this.id || m.from === NONE) return;
    if (m.term > this.term) {
      if (m.type === 'vote' || m.type === 'pre-vote') {
        // Leader lease (§4.2.3): a node that heard from a live leader within the election timeout ignores
        // (pre-)votes, unless the campaign comes from a leadership transfer.
        const inLease = this.cfg.checkQuorum && this.lead !== NONE && this.electionElapsed < this.cfg.electionTimeoutTicks;
        if (inLease && !m.transfer) return;
      }
      if (m.type === 'pre-vote') {
        // A pre-vote never changes our term.
      } else if (m.type === 'pre-vote-resp' && !m.reject) {
        // A granted pre-vote carries the term we would campaign in: not a newer term.
      } else if (m.type === 'app' || m.type === 'heartbeat' || m.type === 'snap') {
        this.becomeFollower(m.term, m.from); // §5.1: a newer term's leader
      } else {
        this.becomeFollower(m.term, NONE); // §5.1: a newer term, leader unknown
      }
    } else if (m.term < this.term) {
      if ((this.cfg.checkQuorum || this.cfg.preVote) && (m.type === 'app' || m.type === 'heartbeat')) {
        // A stale leader (e.g. after a partition) would never learn our term otherwise: pre-vote keeps us
        // from bumping its term, so tell it.
        this.send({ type: 'app-resp', from: this.id, to: m.from, term: this.term, index: 0, reject: false, rejectHint: 0, logTerm: 0 });
      } else if (m.type === 'pre-vote') {
        this.send({ type: 'pre-vote-resp', from: this.id, to: m.from, term: this.term, reject: true });
      }
      return; // §5.1: stale messages are ignored
    }

    if (m.type === 'vote' || m.type === 'pre-vote') {
      this.handleVote(m);
      return;
    }
    switch (this.role) {
      case 'leader':
        this.stepLeader(m);
        return;
      case 'candidate':
      case 'pre-candidate':
        this.stepCandidate(m);
        return;
      case 'follower':
        this.stepFollower(m);
        return;
      default:
        assertNever(this.role);
    }
  }

  private handleVote(m: VoteMessage): void {
    // §5.2: one vote per term, first come first served; a pre-vote for a future term is always possible.
    const canVote =
      this.vote === m.from || (this.vote === NONE && this.lead === NONE) || (m.type === 'pre-vote' && m.term > this.term);
    // §5.4.1: only for a candidate whose log is at least as up-to-date as ours.
    const upToDate = this.cfg.testingFault === 'vote-without-up-to-date-check' || this.log.isUpToDate(m.index, m.logTerm);
    const respType = m.type === 'vote' ? 'vote-resp' : 'pre-vote-resp';
    if (canVote && upToDate) {
      this.send({ type: respType, from: this.id, to: m.from, term: m.term, reject: false });
      if (m.type === 'vote') {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send({ type: respType, from: this.id, to: m.from, term: this.term, reject: true });
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case 'app':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppend(m);
        return;
      case 'heartbeat':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case 'snap':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case 'timeout-now':
        // §3.10: the leader hands over: campaign at once, skipping pre-vote and the lease.
        this.hup(true);
        return;
      case 'read-index-resp':
        if (!m.reject) this.readStates.push({ index: m.index, context: m.context });
        return;
      case 'read-index': // we are not the leader: the requester times out and retries
      case 'app-resp':
      case 'heartbeat-resp':
      case 'vote':
      case 'pre-vote':
      case 'vote-resp':
      case 'pre-vote-resp':
        return;
      default:
        assertNever(m);
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case 'app':
        this.becomeFollower(m.term, m.from); // §5.2: a leader of our term exists
        this.handleAppend(m);
        return;
      case 'heartbeat':
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case 'snap':
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case 'vote-resp':
      case 'pre-vote-resp': {
        const expected = this.role === 'candidate' ? 'vote-resp' : 'pre-vote-resp';
        if (m.type !== expected) return;
        const result = this.poll(m.from, !m.reject);
        if (result === 'won') {
          if (this.role === 'pre-candidate') {
            this.campaign('vote', false);
          } else {
            this.becomeLeader();
            this.bcastAppend();
          }
        } else if (result === 'lost') {
          this.becomeFollower(this.term, NONE);
        }
        return;
      }
      case 'timeout-now':
      case 'read-index':
      case 'read-index-resp':
      case 'app-resp':
      case 'heartbeat-resp':
      case 'vote':
      case 'pre-vote':
        return;
      default:
        assertNever(m);
    }
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case 'app-resp':
        this.handleAppendResponse(m);
        return;
      case 'heartbeat-resp': {
        const pr = this.progress.get(m.from);
        if (pr === undefined) return;
        pr.recentActive = true;
        pr.probeSent = false;
        // A full window whose acks were lost would never drain: let one more append out (it gets rejected
        // if there is a gap, which puts the follower back into probe).
        if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirst();
        if (pr.match < this.log.lastIndex()) this.sendAppend(m.from);
        if (m.context.byteLength > 0) {
          const acks = this.readOnly.recvAck(m.from, m.context);
          if (acks !== undefined && hasQuorum(this.voters, (id) => acks.has(id))) {
            for (const rs of this.readOnly.advance(m.context)) this.respondReadIndex(rs);
          }
        }
        return;
      }
      case 'read-index':
        this.handleReadIndex(m.from, m.context);
        return;
      case 'app':
      case 'heartbeat':
      case 'snap':
        throw new AssertionError(`election safety: leader ${this.id} got ${m.type} from ${m.from} in its own term ${this.term}`);
      case 'timeout-now':
      case 'read-index-resp':
      case 'vote':
      case 'pre-vote':
      case 'vote-resp':
      case 'pre-vote-resp':
        return;
      default:
        assertNever(m);
    }
  }

  // ---- follower handlers -----------------------------------------------------------------------------

  private appResp(to: NodeId, index: Index, reject: boolean, rejectHint: Index, logTerm: Term): void {
    this.send({ type: 'app-resp', from: this.id, to, term: this.term, index, reject, rejectHint, logTerm });
  }

  private handleAppend(m: AppendMessage): void {
    if (this.isUnconfigured()) {
      // A joining node without any membership needs a snapshot (it carries the ConfState): ask for it by
      // rejecting down to index 0, which the leader answers with a snapshot.
      this.appResp(m.from, m.index, true, 0, 0);
      return;
    }
    if (m.index < this.log.committed) {
      this.appResp(m.from, this.log.committed, false, 0, 0);
      return;
    }
    const lastNew = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== undefined) {
      this.appResp(m.from, lastNew, false, 0, 0);
      return;
    }
    // §5.3 with the fast back-off: point the leader at the last index whose term is <= its prevLogTerm.
    const hint = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    this.appResp(m.from, m.index, true, hint.index, hint.term);
  }

  private handleHeartbeat(m: HeartbeatMessage): void {
    this.log.commitTo(m.commit);
    this.send({ type: 'heartbeat-resp', from: this.id, to: m.from, term: this.term, context: m.context });
  }

  private handleSnapshot(m: SnapshotMessage): void {
    if (this.restore(m.snapshot)) {
      this.appResp(m.from, this.log.lastIndex(), false, 0, 0);
    } else {
      this.appResp(m.from, this.log.committed, false, 0, 0);
    }
  }

  /** §7: installs a leader's snapshot if it is news to us; returns whether it will be installed. */
  private restore(s: Snapshot): boolean {
    const meta = s.metadata;
    const joining = this.isUnconfigured() && (meta.confState.voters.length > 0 || meta.confState.learners.length > 0);
    if (meta.index <= this.log.committed && !joining) return false;
    assert(this.role === 'follower', 'only a follower restores a snapshot');
    if (!joining && this.log.matchTerm(meta.index, meta.term)) {
      // We already hold the snapshot's last entry: just fast-forward the commit index.
      this.log.commitTo(meta.index);
      return false;
    }
    this.log.restore(s);
    this.setConfState(meta.confState);
    return true;
  }

  // ---- leader handlers -------------------------------------------------------------------------------

  private handleAppendResponse(m: Extract<Message, { type: 'app-resp' }>): void {
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    if (m.reject) {
      let hint = m.rejectHint;
      if (m.logTerm > 0) hint = this.log.findConflictByTerm(m.rejectHint, m.logTerm).index;
      if (pr.maybeDecrTo(m.index, hint)) {
        if (pr.state === 'replicate') pr.becomeProbe();
        if (m.index === 0) this.sendSnapshot(m.from, pr); // a joining node asking for the membership
        else this.sendAppend(m.from);
      }
      return;
    }
    const wasPaused = pr.isPaused();
    // A probe answered at the match we already knew (e.g. after reportUnreachable) also ends probing.
    if (!pr.maybeUpdate(m.index) && !(pr.state === 'probe' && pr.match === m.index)) return; // stale
    switch (pr.state) {
      case 'probe':
        pr.becomeReplicate();
        break;
      case 'snapshot':
        if (pr.match + 1 >= this.log.firstIndex() || pr.match >= pr.pendingSnapshot) {
          pr.becomeProbe();
          pr.becomeReplicate();
        }
        break;
      case 'replicate':
        pr.inflights.freeLE(m.index);
        break;
      default:
        assertNever(pr.state);
    }
    const prevCommitted = this.log.committed;
    let sent = false; // an append went to every follower, m.from included
    if (this.maybeCommit()) {
      this.onCommitAdvanced();
      sent = this.sendCommit(prevCommitted);
    }
    if (wasPaused && !sent) this.sendAppend(m.from);
    // Pipelining: fill the window.
    while (this.maybeSendAppend(m.from, false)) {
      // keep sending
    }
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) {
      // §3.10: the target caught up: tell it to campaign now.
      this.send({ type: 'timeout-now', from: this.id, to: m.from, term: this.term });
    }
  }

  /** The leader's own durable log grew to (index, term): counts toward commitment from now on. */
  onEntriesPersisted(index: Index, term: Term): void {
    if (this.role !== 'leader' || !this.log.matchTerm(index, term)) return;
    const self = this.progress.get(this.id);
    if (self === undefined) return;
    self.maybeUpdate(index);
    const prevCommitted = this.log.committed;
    if (this.maybeCommit()) {
      this.onCommitAdvanced();
      this.sendCommit(prevCommitted);
    }
  }

  /**
   * The commit index advanced from prevCommitted: send what is new to each follower, and an empty append too
   * when eager. Returns whether every follower got an append.
   */
  private sendCommit(prevCommitted: Index): boolean {
    switch (this.cfg.commitBroadcast) {
      case 'eager':
        this.bcastAppend();
        return true;
      case 'lazy':
        // A membership change (or this term's first commit) is told at once: a removed follower must learn of
        // its removal before the leader forgets it, and a new term's followers should learn their leader's commit.
        if (this.pendingConfIndex > prevCommitted && this.pendingConfIndex <= this.log.committed) {
          this.bcastAppend();
          return true;
        }
        // Otherwise followers learn the commit with the next append or heartbeat (both carry it).
        for (const id of this.progress.keys()) if (id !== this.id) this.maybeSendAppend(id, false);
        return false;
      default:
        return assertNever(this.cfg.commitBroadcast);
    }
  }

  private maybeCommit(): boolean {
    const ci = committedIndex(this.voters, (id) => this.progress.get(id)?.match ?? 0);
    // §5.4.2: only an entry of the current term is committed by counting replicas.
    return this.log.maybeCommit(ci, this.term, this.cfg.testingFault === 'commit-old-term');
  }

  private committedEntryInCurrentTerm(): boolean {
    return this.log.maybeTerm(this.log.committed) === this.term;
  }

  private onCommitAdvanced(): void {
    if (!this.committedEntryInCurrentTerm() || this.pendingReadIndex.length === 0) return;
    const pending = this.pendingReadIndex;
    this.pendingReadIndex = [];
    for (const r of pending) this.handleReadIndex(r.from, r.context);
  }

  private handleReadIndex(from: NodeId, context: Uint8Array): void {
    // §6.4: the leader must have committed an entry of its term to know the latest commit index.
    if (!this.committedEntryInCurrentTerm()) {
      this.pendingReadIndex.push({ from, context });
      return;
    }
    if (this.voters.size === 1 && this.voters.has(this.id)) {
      this.respondReadIndex({ index: this.log.committed, from, context, acks: new Set([this.id]) });
      return;
    }
    if (this.readOnly.addRequest(this.log.committed, from, context, this.id)) this.bcastHeartbeat(context);
  }

  private respondReadIndex(rs: ReadIndexStatus): void {
    if (rs.from === this.id) {
      this.readStates.push({ index: rs.index, context: rs.context });
    } else {
      this.send({ type: 'read-index-resp', from: this.id, to: rs.from, term: this.term, index: rs.index, reject: false, context: rs.context });
    }
  }

  private appendEntries(ents: readonly { type: Entry['type']; data: Uint8Array }[]): Index {
    let index = this.log.lastIndex();
    const full: Entry[] = ents.map((e) => ({ term: this.term, index: ++index, type: e.type, data: e.data }));
    return this.log.append(full);
  }

  bcastAppend(): void {
    for (const id of this.progress.keys()) if (id !== this.id) this.sendAppend(id);
  }

  private bcastHeartbeat(context: Uint8Array): void {
    for (const [id, pr] of this.progress) {
      if (id === this.id) continue;
      const hb: HeartbeatMessage = {
        type: 'heartbeat',
        from: this.id,
        to: id,
        term: this.term,
        commit: Math.min(pr.match, this.log.committed),
        context,
      };
      this.send(hb);
    }
  }

  sendAppend(to: NodeId): void {
    this.maybeSendAppend(to, true);
  }

  /** Sends entries from pr.next (or a snapshot); returns whether a message went out. */
  private maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.progress.get(to);
    if (pr === undefined || to === this.id || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.maybeTerm(prevIndex);
    let ents: Entry[] | undefined;
    if (prevTerm !== undefined) {
      try {
        ents = this.log.entriesFrom(pr.next, this.cfg.maxSizePerMsgBytes);
      } catch (err) {
        if (!isRaftError(err, 'COMPACTED')) throw err;
        ents = undefined;
      }
    }
    if (prevTerm === undefined || ents === undefined) return this.sendSnapshot(to, pr);
    if (ents.length === 0 && !sendIfEmpty) return false;
    this.send({ type: 'app', from: this.id, to, term: this.term, index: prevIndex, logTerm: prevTerm, entries: ents, commit: this.log.committed });
    const last = ents[ents.length - 1];
    if (last !== undefined) {
      switch (pr.state) {
        case 'replicate':
          pr.optimisticUpdate(last.index);
          pr.inflights.add(last.index, ents.reduce((s, e) => s + entrySizeBytes(e), 0));
          break;
        case 'probe':
          pr.probeSent = true;
          break;
        case 'snapshot':
          throw new AssertionError('sent entries in snapshot state');
        default:
          assertNever(pr.state);
      }
    }
    return true;
  }

  private sendSnapshot(to: NodeId, pr: Progress): boolean {
    if (!pr.recentActive) return false; // not worth a snapshot until it shows signs of life
    const snap = this.log.storage.snapshot();
    pr.becomeSnapshot(snap.metadata.index);
    this.send({ type: 'snap', from: this.id, to, term: this.term, snapshot: snap });
    return true;
  }

  // ---- the driver's requests -------------------------------------------------------------------------

  propose(data: Uint8Array): { index: Index; term: Term } {
    return this.proposeEntry('normal', data);
  }

  proposeConfChange(cc: ConfChange): { index: Index; term: Term } {
    if (this.role !== 'leader') throw new RaftError('NOT_LEADER', `not the leader (leader is ${this.lead})`);
    if (this.pendingConfIndex > this.log.applied) {
      throw new RaftError('CONF_CHANGE_PENDING', `conf change at ${this.pendingConfIndex} not yet applied (applied ${this.log.applied})`);
    }
    const problem = confChangeProblem(this.confState, cc);
    if (problem !== undefined) throw new RaftError('INVALID_CONF_CHANGE', problem);
    const r = this.proposeEntry('conf-change', encodeConfChange(cc));
    this.pendingConfIndex = r.index;
    return r;
  }

  private proposeEntry(type: Entry['type'], data: Uint8Array): { index: Index; term: Term } {
    const refusal = this.proposalRefusal(data);
    if (refusal !== undefined) throw refusal;
    const index = this.appendEntries([{ type, data }]);
    this.uncommittedSizeBytes += data.byteLength + 24;
    this.bcastAppend();
    return { index, term: this.term };
  }

  /**
   * Proposes several normal entries at once, each checked as by propose(): the accepted ones are appended in
   * order and go out together (one append per follower, up to maxSizePerMsgBytes each, instead of one per
   * entry). outcomes[i] is datas[i]'s index and term, or the RaftError that refused it.
   */
  proposeBatch(datas: readonly Uint8Array[]): ({ index: Index; term: Term } | RaftError)[] {
    const outcomes: ({ index: Index; term: Term } | RaftError)[] = [];
    let accepted = 0;
    for (const data of datas) {
      const refusal = this.proposalRefusal(data);
      if (refusal !== undefined) {
        outcomes.push(refusal);
        continue;
      }
      const index = this.appendEntries([{ type: 'normal', data }]);
      this.uncommittedSizeBytes += data.byteLength + 24;
      outcomes.push({ index, term: this.term });
      accepted++;
    }
    if (accepted > 0) {
      for (const id of this.progress.keys()) {
        if (id === this.id) continue;
        this.sendAppend(id);
        // As many appends as the window allows (what one broadcast per entry would have sent).
        while (this.maybeSendAppend(id, false)) {
          // keep sending
        }
      }
    }
    return outcomes;
  }

  /** Why a proposal of `data` is refused now (undefined: it is accepted). */
  private proposalRefusal(data: Uint8Array): RaftError | undefined {
    if (this.role !== 'leader') return new RaftError('NOT_LEADER', `not the leader (leader is ${this.lead})`);
    if (this.leadTransferee !== NONE) return new RaftError('TRANSFER_IN_PROGRESS', `leadership moving to ${this.leadTransferee}`);
    const size = data.byteLength + 24;
    if (size > this.cfg.maxUncommittedEntriesBytes) {
      return new RaftError('PROPOSAL_TOO_LARGE', `entry of ${size} bytes exceeds ${this.cfg.maxUncommittedEntriesBytes}`);
    }
    if (this.uncommittedSizeBytes + size > this.cfg.maxUncommittedEntriesBytes) {
      return new RaftError('UNCOMMITTED_LIMIT', `${this.uncommittedSizeBytes} bytes uncommitted`);
    }
    return undefined;
  }

  reduceUncommittedSize(applied: readonly Entry[]): void {
    if (this.role !== 'leader') return;
    let s = 0;
    for (const e of applied) s += entrySizeBytes(e);
    this.uncommittedSizeBytes = Math.max(0, this.uncommittedSizeBytes - s);
  }

  applyConfChange(cc: ConfChange): ConfState {
    const before = this.confState;
    this.setConfState(applyConfChangeTo(before, cc));
    if (this.role === 'leader') {
      const next = this.log.lastIndex() + 1;
      for (const id of [...this.voters, ...this.learners]) {
        const pr = this.progress.get(id);
        const isLearner = this.learners.has(id);
        if (pr === undefined) {
          this.progress.set(id, new Progress(next, this.cfg.maxInflightMsgs, isLearner, true));
        } else {
          pr.isLearner = isLearner;
        }
      }
      for (const id of [...this.progress.keys()]) {
        if (!this.voters.has(id) && !this.learners.has(id)) this.progress.delete(id);
      }
      if (this.leadTransferee !== NONE && !this.voters.has(this.leadTransferee)) this.leadTransferee = NONE;
      if (!this.voters.has(this.id)) {
        // Removing the leader (§4.2.2): tell everyone what is committed, then step down.
        this.bcastAppend();
        this.bcastHeartbeat(EMPTY);
        this.becomeFollower(this.term, NONE);
      } else {
        if (this.maybeCommit()) this.onCommitAdvanced();
        this.bcastAppend();
      }
    }
    return this.confState;
  }

  readIndex(context: Uint8Array): void {
    if (this.role === 'leader') {
      this.handleReadIndex(this.id, context);
      return;
    }
    if (this.lead === NONE) throw new RaftError('UNAVAILABLE', 'no leader known');
    this.send({ type: 'read-index', from: this.id, to: this.lead, term: this.term, context });
  }

  transferLeader(to: NodeId): void {
    if (this.role !== 'leader') throw new RaftError('NOT_LEADER', `not the leader (leader is ${this.lead})`);
    if (to === this.id) return;
    if (!this.voters.has(to)) throw new RaftError('UNAVAILABLE', `transfer target ${to} is not a voter`);
    if (this.leadTransferee === to) return;
    this.leadTransferee = to;
    this.electionElapsed = 0; // the transfer must finish within an election timeout
    const pr = this.progress.get(to);
    assert(pr !== undefined, `no progress for voter ${to}`);
    if (pr.match === this.log.lastIndex()) {
      this.send({ type: 'timeout-now', from: this.id, to, term: this.term });
    } else {
      this.sendAppend(to);
    }
  }

  reportUnreachable(id: NodeId): void {
    if (this.role !== 'leader') return;
    const pr = this.progress.get(id);
    if (pr !== undefined && pr.state === 'replicate') pr.becomeProbe();
  }

  reportSnapshot(id: NodeId, ok: boolean): void {
    if (this.role !== 'leader') return;
    const pr = this.progress.get(id);
    if (pr === undefined || pr.state !== 'snapshot') return;
    if (!ok) pr.pendingSnapshot = 0;
    pr.becomeProbe();
    // Wait for the follower's answer (ok) or the next heartbeat (failure) before probing.
    pr.probeSent = true;
  }

  leaderUnreachable(): void {
    if (this.role !== 'follower' || !this.cfg.preVote || !this.promotable()) return;
    // Give up the lease on the lost leader (so this node grants the other followers' pre-votes) and campaign
    // after a random 1..ceil(e/2) ticks rather than at once: every follower sees the leader's stream break at
    // the same moment, and campaigning together split the vote (two terms per failover in the benchmark).
    // The pre-vote stays harmless: it succeeds only if a quorum lost the leader too. A heartbeat from a live
    // leader meanwhile resets the timer and restores the lease.
    this.lead = NONE;
    const delayTicks = 1 + this.cfg.rng.int(Math.max(1, Math.ceil(this.cfg.electionTimeoutTicks / 2)));
    this.electionElapsed = Math.max(this.electionElapsed, this.randomizedElectionTimeout - delayTicks);
  }

  /** Decodes a committed conf-change entry (helper for drivers). */
  static decodeConfChangeEntry(e: Entry): ConfChange {
    assert(e.type === 'conf-change', 'not a conf-change entry');
    return decodeConfChange(e.data);
  }
}
