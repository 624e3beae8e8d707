// The seeded simulation: N RawNodes over an in-memory network and disk with a fake clock. One seed draws every
// fault (loss, delay, reordering, duplication, partitions incl. one-way, crashes losing unsynced writes,
// restarts, snapshots + compaction, membership changes, leadership transfers, proposals, reads) and replays
// the run exactly. Checkers run on every event; after the fault phase the network heals and a liveness phase
// requires a leader and every new proposal applied on every live member within bounds.
import { RawNode } from '../../src/raft/raw-node.js';
import { defaultRaftConfig, type RaftConfig, type TestingFault } from '../../src/raft/config.js';
import { seededRng } from '../../src/raft/rng.js';
import { RaftError } from '../../src/raft/errors.js';
import { decodeConfChange } from '../../src/raft/conf-change.js';
import type { ConfChange, ConfState, Entry, Index, Message, NodeId, Ready, Rng, Role, Snapshot, Term } from '../../src/raft/types.js';
import { NONE } from '../../src/raft/types.js';
import { SafetyChecker, checkDurableLogMatching, type ProposalRecord } from './checkers.js';
import { EventQueue } from './event-queue.js';
import { SimStorage } from './sim-storage.js';
import { between, chance, childSeed, pick, shuffle } from './sim-rng.js';
import { HashChainStateMachine, encodeProposal, entryKey, type SmSnapshot } from './state-machine.js';
import { Trace, code, messageWords } from './trace.js';
import { describeMessage, describeReady } from '../../src/raft/describe.js';
import { checkNodeInvariants, NodeInvariantChecker } from '../../src/raft/invariants.js';
import { SimViolation, type SimProperty } from './violation.js';
import { DEFAULT_STEPS } from './sim-defaults.js';

export interface SimOptions {
  readonly seed: number;
  readonly nodes: 3 | 5;
  /** Events (deliveries, ticks, syncs, faults) in the fault phase. Default DEFAULT_STEPS (2000). */
  readonly steps?: number;
  /** The fault mix: 'mixed' (default) draws everything from the seed, 'figure-8' only the Figure 8 nemesis. */
  readonly profile?: ProfileKind;
  /** Break the core on purpose (src/raft/config.ts) to show that the checkers fail. */
  readonly testingFault?: TestingFault;
  /** Events kept for the failure report. Default 40. */
  readonly traceSize?: number;
  /** Run the heal + liveness phase. Default true. */
  readonly liveness?: boolean;
  /**
   * Driver policy: fsync every pending write before applying committed entries, so the durable commit index is
   * never below the applied index. Default false: a commit-only hard state (mustSync false) stays unsynced and a
   * crash may lose it, which types.ts allows ("durability optional").
   */
  readonly syncBeforeApply?: boolean;
  /**
   * Crash model: false, a crash keeps whole write batches (each Ready's writes are one WAL batch); true, a
   * crash may keep part of a batch, e.g. entries without the hard state written after them. Default: drawn
   * from the seed.
   */
  readonly tornWrites?: boolean;
  /** TEST ONLY: break the driver on purpose: send messagesAfterPersist before the fsync (acks of unsynced writes). */
  readonly driverFault?: 'ack-before-fsync';
  /** Check §5.4.2 directly on every leader commit (default true); off, only the end-to-end checkers remain. */
  readonly commitRuleCheck?: boolean;
}

export interface SimStats {
  events: number;
  ticks: number;
  messagesDelivered: number;
  messagesDropped: number;
  messagesDuplicated: number;
  proposals: number; // accepted by a core
  proposalsRejected: number; // RaftError from propose (NOT_LEADER, ...)
  proposalsOverLimit: number; // of which UNCOMMITTED_LIMIT
  proposalBatches: number; // proposeBatch calls (2+ proposals drained in one loop turn)
  acked: number;
  crashes: number;
  restarts: number;
  partitions: number;
  snapshotsCreated: number;
  snapshotsInstalled: number;
  confChangesApplied: number; // applyConfChange calls (all nodes)
  membersAdded: number;
  membersRemoved: number;
  transfers: number;
  campaigns: number; // campaign() calls
  reads: number;
  readsAnswered: number;
  leaderTerms: number;
  maxTerm: number;
  maxCommitted: number;
  livenessTicks: number; // ticks from heal to the end of the liveness phase
}

export interface SimResult {
  readonly options: SimOptions; // what ran (for the replay command)
  readonly seed: number;
  readonly nodes: 3 | 5;
  readonly ok: boolean;
  readonly violation: { property: SimProperty; detail: string; event: number; time: number } | undefined;
  readonly trace: string[]; // last events, formatted
  readonly traceHash: string; // digest of every event of the run
  readonly stats: SimStats;
  readonly faults: string; // the fault mix this seed drew (JSON)
}

const TICK = 10; // time units per tick
const ELECTION_TIMEOUT_TICKS = 10;
const SPARE_IDS = 3; // ids beyond the initial voters that membership changes may add
const ELECTION_BOUND_TICKS = 12 * ELECTION_TIMEOUT_TICKS; // liveness: a leader within this after healing
const STALL_BOUND_TICKS = 10 * ELECTION_TIMEOUT_TICKS; // liveness: some member applies something within this
const LIVENESS_CAP_TICKS = 5000; // liveness: everything done within this (a throttled backlog drains slowly)
const LIVENESS_PROPOSALS = 5;

/** The fault mix of one seed, drawn from it. */
interface Profile {
  dropRate: number; // per message
  dupRate: number; // per message
  longDelayRate: number; // per message: a delay of several ticks (reordering)
  crashRate: number; // per tick
  leaderCrashRate: number; // per election won: crash the new leader within a few ticks (the "kill the leader" nemesis)
  partitionRate: number; // per tick
  proposalsPerTick: number; // mean
  confChangeRate: number; // per tick
  transferRate: number; // per tick
  campaignRate: number; // per tick: a random node is told to campaign() now (an operator forcing an election)
  snapshotRate: number; // per node per tick
  readRate: number; // per tick
  slowSyncRate: number; // per sync
  maxSizePerMsgBytes: number;
  maxInflightMsgs: number;
  maxUncommittedEntriesBytes: number; // small: proposals refused with UNCOMMITTED_LIMIT during outages
  tornWrites: boolean; // crash model (SimOptions.tornWrites overrides)
  batchProposals: boolean; // proposals drained in one loop turn go to RawNode.proposeBatch, as the node driver does
}

export type ProfileKind = 'mixed' | 'figure-8';

/**
 * 'figure-8': the Figure 8 nemesis of the Raft paper. New leaders are often cut off or killed before their
 * first appends land, one entry per message, no membership or snapshot noise: uncommitted tails of different
 * terms pile up on different nodes, which is where a broken commit rule shows (seed 879, 3 nodes, 4000 steps).
 */
function drawFigure8Profile(rng: Rng): Profile {
  return {
    dropRate: pick(rng, [0, 0.05]),
    dupRate: 0,
    longDelayRate: pick(rng, [0, 0.05]),
    crashRate: 0.01,
    leaderCrashRate: pick(rng, [0.3, 0.6]),
    partitionRate: pick(rng, [0.01, 0.03]),
    proposalsPerTick: pick(rng, [1, 2, 3]),
    confChangeRate: 0,
    transferRate: 0,
    campaignRate: 0,
    snapshotRate: 0,
    readRate: 0,
    slowSyncRate: 0,
    maxSizePerMsgBytes: 1,
    maxInflightMsgs: pick(rng, [1, 2, 256]),
    maxUncommittedEntriesBytes: 64 * 1024 * 1024,
    tornWrites: false,
    batchProposals: false,
  };
}

function drawProfile(rng: Rng, kind: ProfileKind): Profile {
  if (kind === 'figure-8') return drawFigure8Profile(rng);
  if (rng.int(10) === 0) return drawFigure8Profile(rng); // one mixed seed in ten
  return {
    dropRate: pick(rng, [0, 0.01, 0.05, 0.15]),
    dupRate: pick(rng, [0, 0.01, 0.05]),
    longDelayRate: pick(rng, [0, 0.02, 0.1]),
    crashRate: pick(rng, [0, 0.005, 0.02]),
    leaderCrashRate: pick(rng, [0, 0, 0.1, 0.3]),
    partitionRate: pick(rng, [0, 0.01, 0.03]),
    proposalsPerTick: pick(rng, [0.3, 1, 2]),
    confChangeRate: pick(rng, [0, 0.01, 0.04]),
    transferRate: pick(rng, [0, 0.005, 0.02]),
    campaignRate: pick(rng, [0, 0.005]),
    snapshotRate: pick(rng, [0, 0.02, 0.1]),
    readRate: pick(rng, [0, 0.1, 0.3]),
    slowSyncRate: pick(rng, [0, 0.05]),
    maxSizePerMsgBytes: pick(rng, [1024 * 1024, 300, 1]),
    maxInflightMsgs: pick(rng, [256, 2, 1]),
    maxUncommittedEntriesBytes: pick(rng, [64 * 1024 * 1024, 64 * 1024 * 1024, 1024]),
    tornWrites: rng.int(2) === 0,
    batchProposals: rng.int(2) === 0,
  };
}

interface Envelope {
  readonly msg: Message;
  readonly payload: SmSnapshot | undefined; // the state machine data streamed beside a 'snap'
  readonly senderEpoch: number; // the sender's incarnation when sent: a power loss may lose what is still queued
}

type InboxItem =
  | { readonly kind: 'msg'; readonly env: Envelope }
  | { readonly kind: 'tick' }
  | { readonly kind: 'propose'; readonly proposalId: number; readonly data: Uint8Array }
  | { readonly kind: 'conf-change'; readonly cc: ConfChange }
  | { readonly kind: 'transfer'; readonly to: NodeId }
  | { readonly kind: 'read'; readonly readId: number }
  | { readonly kind: 'report-unreachable'; readonly id: NodeId }
  | { readonly kind: 'report-snapshot'; readonly id: NodeId; readonly ok: boolean }
  | { readonly kind: 'leader-unreachable' }
  | { readonly kind: 'campaign' };

type SimEvent =
  | { readonly kind: 'deliver'; readonly env: Envelope }
  | { readonly kind: 'tick' }
  | { readonly kind: 'sync'; readonly node: NodeId; readonly epoch: number }
  | { readonly kind: 'report-snapshot'; readonly node: NodeId; readonly to: NodeId; readonly ok: boolean; readonly epoch: number }
  | { readonly kind: 'restart'; readonly node: NodeId; readonly epoch: number }
  | { readonly kind: 'crash'; readonly node: NodeId; readonly epoch: number }
  | { readonly kind: 'isolate'; readonly node: NodeId; readonly epoch: number }
  | { readonly kind: 'retire'; readonly node: NodeId }
  | { readonly kind: 'heal'; readonly partition: number };

class SimNode {
  up = false; // process running
  retired = false; // removed from the cluster and shut down for good
  raw: RawNode | undefined; // the core of the current incarnation
  invariants: NodeInvariantChecker | undefined; // stateful invariants of the current incarnation
  epoch = 0; // incarnation number: events of an earlier incarnation are ignored
  inbox: InboxItem[] = []; // inputs that arrived while a Ready was being persisted
  inflight: Ready | undefined; // a Ready waiting for its fsync
  role: Role = 'follower'; // from softState (volatile)
  leader: NodeId = NONE; // from softState (volatile)
  recordedCommit: Index = 0; // commit mark already fed to the checker (volatile)
  snapPayloads = new Map<Index, SmSnapshot>(); // received beside 'snap' messages (volatile)
  readonly storage: SimStorage;
  readonly sm: HashChainStateMachine; // durable

  constructor(
    readonly id: NodeId,
    initial: ConfState,
  ) {
    this.sm = new HashChainStateMachine(initial);
    this.storage = new SimStorage(initial, this.sm.snapshot(), () => this.sm.confState);
  }

  term(): Term {
    return this.storage.writtenHardState().term;
  }
}

interface ReadRecord {
  readonly id: number;
  readonly node: NodeId;
  readonly minIndex: Index; // highest index applied anywhere when the read started
}

type LivenessState =
  | { readonly phase: 'off' }
  | { readonly phase: 'elect'; readonly since: number }
  | { readonly phase: 'propose'; pending: number[]; acked: Index[] }
  | { readonly phase: 'converge'; readonly target: Index }
  | { readonly phase: 'done' };

export function emptyStats(): SimStats {
  return {
    events: 0,
    ticks: 0,
    messagesDelivered: 0,
    messagesDropped: 0,
    messagesDuplicated: 0,
    proposals: 0,
    proposalsRejected: 0,
    proposalsOverLimit: 0,
    proposalBatches: 0,
    acked: 0,
    crashes: 0,
    restarts: 0,
    partitions: 0,
    snapshotsCreated: 0,
    snapshotsInstalled: 0,
    confChangesApplied: 0,
    membersAdded: 0,
    membersRemoved: 0,
    transfers: 0,
    campaigns: 0,
    reads: 0,
    readsAnswered: 0,
    leaderTerms: 0,
    maxTerm: 0,
    maxCommitted: 0,
    livenessTicks: 0,
  };
}

class Simulation {
  private readonly rng: Rng;
  private readonly profile: Profile;
  private readonly queue = new EventQueue<SimEvent>();
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly initial: ConfState;
  private readonly spare: NodeId[]; // ids never used yet
  private readonly retiring = new Set<NodeId>(); // removed from the membership, shut down soon
  private readonly everRemoved = new Set<NodeId>(); // ids a removal was requested for: never added back
  private readonly removedAt = new Map<NodeId, Index>(); // log index of the applied removal of an id
  private readonly partitions = new Map<number, Set<number>>(); // id -> blocked links (from * 1024 + to)
  private nextPartition = 1;
  private nextProposal = 1;
  private nextRead = 1;
  private readonly reads = new Map<number, ReadRecord>();
  private readonly checker = new SafetyChecker();
  readonly trace: Trace;
  readonly stats = emptyStats();
  private now = 0;
  private healed = false; // the fault phase is over
  private healedAtTick = 0;
  private progressMark = -1; // sum of applied indexes over live nodes at the last progress
  private progressTick = 0; // tick of the last progress
  private live: LivenessState = { phase: 'off' };

  constructor(private readonly opts: SimOptions) {
    this.rng = seededRng(opts.seed);
    this.profile = drawProfile(this.rng, opts.profile ?? 'mixed');
    this.trace = new Trace(opts.traceSize ?? 40);
    const voters: NodeId[] = [];
    for (let i = 1; i <= opts.nodes; i++) voters.push(i);
    this.initial = { voters, learners: [] };
    this.spare = [];
    for (let i = 1; i <= SPARE_IDS; i++) this.spare.push(opts.nodes + i);
    for (const id of voters) this.startNode(id);
    const p = this.profile;
    this.record([code('profile'), p.dropRate * 1000, p.dupRate * 1000, p.crashRate * 1000, p.partitionRate * 1000], () =>
      `profile ${JSON.stringify(p)}`,
    );
  }

  run(): void {
    const steps = this.opts.steps ?? DEFAULT_STEPS;
    this.queue.push(TICK, { kind: 'tick' });
    for (;;) {
      if (!this.healed && this.stats.events >= steps) {
        if (this.opts.liveness === false) return;
        this.heal();
      }
      if (this.live.phase === 'done') return;
      const next = this.queue.pop();
      if (next === undefined) throw new Error('event queue ran dry (the tick event is always scheduled)');
      this.now = next.time;
      this.stats.events++;
      this.handle(next.event);
    }
  }

  finish(): void {
    const c = this.checker;
    this.stats.leaderTerms = c.leaderTerms;
    this.stats.maxTerm = c.maxTerm;
    this.stats.maxCommitted = c.maxCommitted;
    let acked = 0;
    for (const p of c.proposals.values()) if (p.status === 'acked') acked++;
    this.stats.acked = acked;
  }

  // ---------------------------------------------------------------- events

  private handle(ev: SimEvent): void {
    switch (ev.kind) {
      case 'tick':
        this.onTick();
        return;
      case 'deliver':
        this.deliver(ev.env);
        return;
      case 'sync': {
        const n = this.node(ev.node);
        if (!n.up || n.epoch !== ev.epoch) return;
        const rd = n.inflight;
        if (rd === undefined) throw new Error(`sync event for node ${n.id} without a Ready in flight`);
        this.record([code('sync'), n.id], () => `n${n.id} fsync done`);
        this.finishReady(n, rd);
        this.process(n);
        return;
      }
      case 'report-snapshot': {
        const n = this.node(ev.node);
        if (!n.up || n.epoch !== ev.epoch) return;
        this.input(n, { kind: 'report-snapshot', id: ev.to, ok: ev.ok });
        return;
      }
      case 'restart': {
        const n = this.node(ev.node);
        if (n.up || n.retired || n.epoch !== ev.epoch) return;
        this.restart(n);
        return;
      }
      case 'crash': {
        const n = this.node(ev.node);
        if (!n.up || n.epoch !== ev.epoch || this.healed) return;
        this.crash(n, 'crash');
        this.scheduleRestart(n);
        return;
      }
      case 'retire':
        this.retire(this.node(ev.node));
        return;
      case 'isolate': {
        const n = this.node(ev.node);
        if (!n.up || n.epoch !== ev.epoch || this.healed) return;
        this.isolate(n.id, between(this.rng, 3, 40));
        return;
      }
      case 'heal': {
        if (this.partitions.delete(ev.partition)) {
          this.record([code('heal'), ev.partition], () => `heal partition #${ev.partition}`);
        }
        return;
      }
      default: {
        const never: never = ev;
        throw new Error(`unknown event ${JSON.stringify(never)}`);
      }
    }
  }

  /** Full pairwise log matching over every node's durable log (also after every crash and every 100 ticks). */
  private checkDurableLogs(): void {
    checkDurableLogMatching([...this.nodes.values()].map((n) => ({ id: n.id, storage: n.storage })));
  }

  private onTick(): void {
    this.stats.ticks++;
    if (this.stats.ticks % 100 === 0) this.checkDurableLogs();
    this.queue.push(this.now + TICK, { kind: 'tick' });
    const tick = this.stats.ticks;
    this.record([code('tick'), tick], () => `tick ${tick}`);
    const ups = shuffle(this.rng, this.upNodes());
    for (const n of ups) this.input(n, { kind: 'tick' });
    if (this.healed) this.livenessTick();
    else this.faults();
  }

  // ---------------------------------------------------------------- the driver (one per node)

  /** Hands one input to a node: queued while a Ready is in flight, else stepped at once. */
  private input(n: SimNode, item: InboxItem): void {
    if (!n.up) return;
    n.inbox.push(item);
    this.process(n);
  }

  /** The driver loop: drain the inbox into the core, then handle Readys, until waiting on a sync or idle. */
  private process(n: SimNode): void {
    while (n.up && n.inflight === undefined) {
      if (n.inbox.length > 0) {
        const items = n.inbox;
        n.inbox = [];
        for (let k = 0; k < items.length; ) {
          const item = items[k] as InboxItem;
          let j = k;
          while (this.profile.batchProposals && items[j]?.kind === 'propose') j++;
          if (j - k >= 2) {
            this.proposeBatch(n, items.slice(k, j) as Extract<InboxItem, { kind: 'propose' }>[]);
            k = j;
          } else {
            this.step(n, item);
            k++;
          }
        }
        continue;
      }
      const raw = this.rawOf(n);
      if (!this.core(n, 'hasReady', () => raw.hasReady())) break;
      this.handleReady(n);
    }
    this.checkInvariants(n);
  }

  /** The core's own per-node invariants (src/raft/invariants.ts), after every step that touched the node. */
  private checkInvariants(n: SimNode): void {
    const raw = n.raw;
    if (!n.up || raw === undefined || n.invariants === undefined) return;
    try {
      checkNodeInvariants(raw);
      n.invariants.check(raw);
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      throw new SimViolation('node-invariant', msg);
    }
  }

  private step(n: SimNode, item: InboxItem): void {
    const raw = this.rawOf(n);
    switch (item.kind) {
      case 'msg':
        if (item.env.msg.type === 'snap' && item.env.payload !== undefined) {
          n.snapPayloads.set(item.env.msg.snapshot.metadata.index, item.env.payload);
        }
        this.core(n, 'step', () => raw.step(item.env.msg));
        return;
      case 'tick':
        this.core(n, 'tick', () => raw.tick());
        return;
      case 'propose': {
        const r = this.expected(n, 'propose', () => raw.propose(item.data));
        if (r !== undefined) this.onProposed(n, item.proposalId, item.data, r.index, r.term);
        return;
      }
      case 'conf-change': {
        // The operator's tooling never adds back an id whose removal it requested (it may have been decided on
        // a stale view while this request waited in the inbox).
        if (item.cc.type !== 'remove' && this.everRemoved.has(item.cc.nodeId)) return;
        const r = this.expected(n, 'proposeConfChange', () => raw.proposeConfChange(item.cc));
        if (r === undefined) return;
        this.record([code('cc-proposed'), n.id, r.index, item.cc.nodeId], () =>
          `n${n.id} conf change ${item.cc.type} ${item.cc.nodeId} -> ${r.index}/t${r.term}`,
        );
        return;
      }
      case 'transfer': {
        const ok = this.expected(n, 'transferLeader', () => {
          raw.transferLeader(item.to);
          return true;
        });
        if (ok === true) {
          this.stats.transfers++;
          this.record([code('transfer'), n.id, item.to], () => `n${n.id} transfer leadership to n${item.to}`);
        }
        return;
      }
      case 'read': {
        const ctx = new Uint8Array(4);
        new DataView(ctx.buffer).setUint32(0, item.readId);
        const ok = this.expected(n, 'readIndex', () => {
          raw.readIndex(ctx);
          return true;
        });
        if (ok === true) {
          this.stats.reads++;
          this.reads.set(item.readId, { id: item.readId, node: n.id, minIndex: this.checker.maxApplied });
        }
        return;
      }
      case 'report-unreachable':
        this.core(n, 'reportUnreachable', () => raw.reportUnreachable(item.id));
        return;
      case 'report-snapshot':
        this.core(n, 'reportSnapshot', () => raw.reportSnapshot(item.id, item.ok));
        return;
      case 'leader-unreachable':
        this.core(n, 'leaderUnreachable', () => raw.leaderUnreachable());
        return;
      case 'campaign':
        this.stats.campaigns++;
        this.record([code('campaign'), n.id], () => `n${n.id} told to campaign`);
        this.core(n, 'campaign', () => raw.campaign());
        return;
      default: {
        const never: never = item;
        throw new Error(`unknown inbox item ${JSON.stringify(never)}`);
      }
    }
  }

  private proposeBatch(n: SimNode, items: readonly Extract<InboxItem, { kind: 'propose' }>[]): void {
    const raw = this.rawOf(n);
    this.stats.proposalBatches++;
    const outcomes = this.core(n, 'proposeBatch', () => raw.proposeBatch(items.map((i) => i.data)));
    if (outcomes.length !== items.length) {
      throw new SimViolation('core-exception', `node ${n.id} proposeBatch: ${outcomes.length} outcomes for ${items.length} proposals`);
    }
    items.forEach((item, k) => {
      const r = outcomes[k];
      if (r === undefined) return;
      if (r instanceof RaftError) {
        this.stats.proposalsRejected++;
        if (r.code === 'UNCOMMITTED_LIMIT') this.stats.proposalsOverLimit++;
        this.record([code('refused'), n.id, code(r.code)], () => `n${n.id} proposeBatch item refused: ${r.code}`);
      } else {
        this.onProposed(n, item.proposalId, item.data, r.index, r.term);
      }
    });
  }

  private onProposed(n: SimNode, proposalId: number, data: Uint8Array, index: Index, term: Term): void {
    this.stats.proposals++;
    const e: Entry = { index, term, type: 'normal', data };
    const p: ProposalRecord = { id: proposalId, node: n.id, index, term, key: entryKey(e), status: 'pending' };
    this.checker.addProposal(p);
    this.record([code('proposed'), n.id, proposalId, index, term], () => `n${n.id} proposal p${proposalId} -> ${index}/t${term}`);
    if (this.live.phase === 'propose') this.live.pending.push(proposalId);
  }

  private handleReady(n: SimNode): void {
    const raw = this.rawOf(n);
    const rd = this.core(n, 'ready', () => raw.ready());
    n.inflight = rd; // from here until finishReady, inputs (even our own transport's reports) only queue
    this.checkReadyContract(n, rd);
    this.record(
      [code('ready'), n.id, rd.hardState?.term ?? -1, rd.hardState?.commit ?? -1, rd.entries.length, rd.committedEntries.length],
      () => `n${n.id} ${describeReady(rd)}`,
    );
    const prevCommit = n.storage.writtenHardState().commit;
    // 1. messages that do not depend on this Ready's persistence
    for (const m of rd.messages) this.send(n, m);
    // 2. write: snapshot, entries, hard state
    const st = n.storage;
    if (rd.snapshot !== undefined) {
      const idx = rd.snapshot.metadata.index;
      const payload = n.snapPayloads.get(idx);
      if (payload === undefined) {
        throw new SimViolation('ready-contract', `node ${n.id}: Ready.snapshot at ${idx} was never received`);
      }
      this.storageWrite(n, () => st.applySnapshot(rd.snapshot as Snapshot, payload));
      this.checker.onSnapshot(n.id, idx, rd.snapshot.metadata.term);
      n.recordedCommit = Math.max(n.recordedCommit, idx);
    }
    this.storageWrite(n, () => st.append(rd.entries));
    if (rd.hardState !== undefined) {
      const hs = rd.hardState;
      this.storageWrite(n, () => st.setHardState(hs));
    }
    st.endBatch();
    this.checker.onEntriesWritten(n.id, rd.entries, st);
    if (rd.softState !== undefined) {
      const wasLeader = n.role === 'leader';
      n.role = rd.softState.role;
      n.leader = rd.softState.leader;
      if (n.role === 'leader' && !wasLeader) {
        this.checker.onLeader(n.id, n.term(), st);
        if (!this.healed && chance(this.rng, this.profile.leaderCrashRate)) {
          // The new leader dies or is cut off before (most of) its first appends arrive.
          const kind = this.rng.int(2) === 0 ? 'crash' : 'isolate';
          this.queue.push(this.now + between(this.rng, 0, 3 * TICK), { kind, node: n.id, epoch: n.epoch });
        }
      }
      const role = n.role;
      const leader = n.leader;
      const term = n.term();
      this.record([code('soft'), n.id, code(role), leader, term], () => `n${n.id} is ${role} in term ${term} (leader n${leader})`);
    }
    const commit = st.writtenHardState().commit;
    if (this.opts.commitRuleCheck !== false && n.role === 'leader' && rd.hardState !== undefined && commit > prevCommit) {
      // §5.4.2: a leader counts replicas only for entries of its current term (older ones commit indirectly).
      const t = st.writtenTerm(commit);
      if (t !== rd.hardState.term) {
        throw new SimViolation('commit-rule', `leader ${n.id} of term ${rd.hardState.term} advanced commit ${prevCommit} -> ${commit}, an entry of term ${String(t)}`);
      }
    }
    if (n.role === 'leader' && commit > prevCommit) this.checkCommitDurable(n, commit);
    if (commit > n.recordedCommit) n.recordedCommit = this.checker.onCommit(n.id, n.recordedCommit, commit, st);
    if (this.opts.driverFault === 'ack-before-fsync') for (const m of rd.messagesAfterPersist) this.send(n, m);
    // 3. wait for the fsync, then the rest
    if (rd.mustSync) {
      const latency = chance(this.rng, this.healed ? 0 : this.profile.slowSyncRate) ? between(this.rng, 10, 40) : between(this.rng, 1, 5);
      this.queue.push(this.now + latency, { kind: 'sync', node: n.id, epoch: n.epoch });
    } else {
      this.finishReady(n, rd);
    }
  }

  /**
   * A leader's new commit index is durable on a quorum of its (applied) voters right now: the entry, or a
   * snapshot covering it, survives any crash on a majority. Catches acks before fsync and a leader counting its
   * own unpersisted log.
   */
  private checkCommitDurable(leader: SimNode, commit: Index): void {
    const term = leader.storage.writtenTerm(commit);
    if (term === undefined) return; // compacted on the leader: covered by its snapshot
    const voters = leader.sm.confState.voters;
    const holders: NodeId[] = [];
    for (const v of voters) {
      const st = this.nodes.get(v)?.storage;
      if (st === undefined) continue;
      if (st.durableTerm(commit) === term || st.durableFirstIndex() - 1 > commit) holders.push(v);
    }
    if (holders.length * 2 <= voters.length) {
      throw new SimViolation(
        'durability',
        `leader ${leader.id} commits ${commit}/t${term} but only [${holders.join(',')}] of voters [${voters.join(',')}] hold it durably`,
      );
    }
  }

  private finishReady(n: SimNode, rd: Ready): void {
    const raw = this.rawOf(n);
    if (rd.mustSync) n.storage.sync();
    if (rd.snapshot !== undefined) {
      const meta = rd.snapshot.metadata;
      const payload = n.snapPayloads.get(meta.index);
      if (payload === undefined) throw new Error(`node ${n.id}: payload of snapshot ${meta.index} vanished`);
      if (payload.applied !== meta.index || payload.appliedTerm !== meta.term) {
        throw new SimViolation('ready-contract', `node ${n.id}: snapshot ${meta.index}/t${meta.term} with payload ${payload.applied}/t${payload.appliedTerm}`);
      }
      if (meta.index < n.sm.applied) {
        throw new SimViolation('state-machine-safety', `node ${n.id}: snapshot ${meta.index} would move applied back from ${n.sm.applied}`);
      }
      this.checker.onRestore(n.id, meta.index, meta.term, payload.chain);
      n.sm.restore(payload);
      n.snapPayloads.clear();
      this.stats.snapshotsInstalled++;
      this.record([code('install'), n.id, meta.index], () => `n${n.id} installs snapshot ${meta.index}/t${meta.term}`);
    }
    if (this.opts.driverFault !== 'ack-before-fsync') for (const m of rd.messagesAfterPersist) this.send(n, m);
    if (this.opts.syncBeforeApply === true && rd.committedEntries.length > 0) n.storage.sync();
    for (const e of rd.committedEntries) this.apply(n, raw, e);
    for (const rs of rd.readStates) this.onReadState(n, rs.index, rs.context);
    this.core(n, 'advance', () => raw.advance(rd));
    n.inflight = undefined;
  }

  private apply(n: SimNode, raw: RawNode, e: Entry): void {
    if (e.index <= n.sm.applied) {
      throw new SimViolation('state-machine-safety', `node ${n.id} applies ${e.index} again (applied ${n.sm.applied})`);
    }
    if (e.index !== n.sm.applied + 1) {
      throw new SimViolation('state-machine-safety', `node ${n.id} applies ${e.index} after ${n.sm.applied}: a gap`);
    }
    if (n.storage.durableTerm(e.index) !== e.term) {
      throw new SimViolation(
        'ready-contract',
        `node ${n.id} applies ${e.index}/t${e.term}, its durable log has term ${String(n.storage.durableTerm(e.index))} there`,
      );
    }
    n.sm.apply(e);
    this.checker.onApply(n.id, e, n.sm.chain);
    if (e.type === 'conf-change') {
      const cc = decodeConfChange(e.data);
      const cs = this.core(n, 'applyConfChange', () => raw.applyConfChange(cc));
      n.sm.confState = cs;
      this.stats.confChangesApplied++;
      this.record([code('cc-applied'), n.id, e.index, cc.nodeId], () =>
        `n${n.id} applied conf change ${cc.type} ${cc.nodeId} at ${e.index}: voters [${cs.voters.join(',')}] learners [${cs.learners.join(',')}]`,
      );
      this.membershipEffects(cc, cs, e.index);
    }
  }

  /** The operator's side of a membership change: start an added node, shut a removed one down for good. */
  private membershipEffects(cc: ConfChange, cs: ConfState, index: Index): void {
    const member = cs.voters.includes(cc.nodeId) || cs.learners.includes(cc.nodeId);
    const removedAt = this.removedAt.get(cc.nodeId);
    if (cc.type !== 'remove' && removedAt !== undefined && index > removedAt) {
      throw new Error(`simulation bug: node ${cc.nodeId} removed at ${removedAt} was added back at ${index}`);
    }
    if (cc.type === 'remove' && !member && (removedAt === undefined || index < removedAt)) this.removedAt.set(cc.nodeId, index);
    if (cc.type !== 'remove' && member && !this.nodes.has(cc.nodeId)) {
      this.stats.membersAdded++;
      this.startNode(cc.nodeId);
    } else if (cc.type === 'remove' && !member) {
      const gone = this.nodes.get(cc.nodeId);
      if (gone !== undefined && !gone.retired && !this.retiring.has(gone.id)) {
        // The operator shuts the removed node down a while later: until then it may still campaign.
        this.retiring.add(gone.id);
        const delay = this.healed ? 1 : between(this.rng, 0, 30) * TICK + 1;
        this.queue.push(this.now + delay, { kind: 'retire', node: gone.id });
      }
    }
  }

  private retire(gone: SimNode): void {
    this.retiring.delete(gone.id);
    if (gone.retired) return;
    this.stats.membersRemoved++;
    if (gone.up) this.crash(gone, 'removed');
    gone.retired = true;
    this.record([code('retire'), gone.id], () => `n${gone.id} retired (removed from the cluster)`);
  }

  private onReadState(n: SimNode, index: Index, context: Uint8Array): void {
    if (context.byteLength !== 4) throw new SimViolation('read-index', `node ${n.id}: unknown read context of ${context.byteLength} bytes`);
    const id = new DataView(context.buffer, context.byteOffset, 4).getUint32(0);
    const r = this.reads.get(id);
    if (r === undefined) return; // a duplicate answer
    this.reads.delete(id);
    if (r.node !== n.id) throw new SimViolation('read-index', `read ${id} of node ${r.node} answered on node ${n.id}`);
    if (index < r.minIndex) {
      throw new SimViolation('read-index', `read ${id} on node ${n.id} got index ${index} < ${r.minIndex} applied before it started`);
    }
    this.stats.readsAnswered++;
    this.record([code('read'), n.id, id, index], () => `n${n.id} read r${id} at index ${index}`);
  }

  private checkReadyContract(n: SimNode, rd: Ready): void {
    const hs = rd.hardState;
    const prev = n.storage.writtenHardState();
    if (!rd.mustSync) {
      if (rd.entries.length > 0 || rd.snapshot !== undefined) {
        throw new SimViolation('ready-contract', `node ${n.id}: entries or snapshot with mustSync false`);
      }
      if (hs !== undefined && (hs.term !== prev.term || hs.vote !== prev.vote)) {
        throw new SimViolation('ready-contract', `node ${n.id}: term/vote change with mustSync false`);
      }
    }
    if (hs !== undefined) {
      if (hs.term < prev.term) throw new SimViolation('ready-contract', `node ${n.id}: term ${prev.term} -> ${hs.term}`);
      if (hs.commit < prev.commit) throw new SimViolation('ready-contract', `node ${n.id}: commit ${prev.commit} -> ${hs.commit}`);
      if (hs.term === prev.term && prev.vote !== NONE && hs.vote !== prev.vote) {
        throw new SimViolation('ready-contract', `node ${n.id}: vote changed from ${prev.vote} to ${hs.vote} in term ${hs.term}`);
      }
    }
    if (rd.mustSync) {
      for (const m of rd.messages) {
        if ((m.type === 'vote-resp' || m.type === 'app-resp') && !m.reject) {
          throw new SimViolation('ready-contract', `node ${n.id}: ${describeMessage(m)} sent before persisting`);
        }
      }
    }
  }

  /** Runs a storage write; a storage refusal is the core's fault (it asked for an impossible write). */
  private storageWrite(n: SimNode, f: () => void): void {
    try {
      f();
    } catch (err) {
      if (err instanceof SimViolation) throw err;
      throw new SimViolation('ready-contract', `node ${n.id}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /** Calls into the core where it must not throw. */
  private core<T>(n: SimNode, what: string, f: () => T): T {
    try {
      return f();
    } catch (err) {
      if (err instanceof SimViolation) throw err;
      const msg = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      throw new SimViolation('core-exception', `node ${n.id} ${what}: ${msg}`);
    }
  }

  /** Calls into the core where a RaftError is an expected refusal (returns undefined). */
  private expected<T>(n: SimNode, what: string, f: () => T): T | undefined {
    try {
      return f();
    } catch (err) {
      if (err instanceof RaftError) {
        if (what === 'propose') this.stats.proposalsRejected++;
        if (err.code === 'UNCOMMITTED_LIMIT') this.stats.proposalsOverLimit++;
        this.record([code('refused'), n.id, code(err.code)], () => `n${n.id} ${what} refused: ${err.code}`);
        return undefined;
      }
      if (err instanceof SimViolation) throw err;
      const msg = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      throw new SimViolation('core-exception', `node ${n.id} ${what}: ${msg}`);
    }
  }

  // ---------------------------------------------------------------- network

  private send(from: SimNode, m: Message): void {
    if (m.from !== from.id) throw new SimViolation('ready-contract', `node ${from.id} sends a message from ${m.from}`);
    let payload: SmSnapshot | undefined;
    if (m.type === 'snap') {
      const p = from.storage.snapshotPayload();
      if (p.applied !== m.snapshot.metadata.index) {
        // The application cannot stream this snapshot any more: report the failure.
        this.queue.push(this.now + 1, { kind: 'report-snapshot', node: from.id, to: m.to, ok: false, epoch: from.epoch });
        return;
      }
      payload = p;
    }
    const to = this.nodes.get(m.to);
    const env: Envelope = { msg: m, payload, senderEpoch: from.epoch };
    if (to === undefined || this.blocked(m.from, m.to) || chance(this.rng, this.healed ? 0 : this.profile.dropRate)) {
      this.drop(env, to === undefined ? 'no such node' : 'lost');
      if (to !== undefined && this.blocked(m.from, m.to) && chance(this.rng, 0.3)) {
        // The transport notices the broken stream.
        this.input(from, { kind: 'report-unreachable', id: m.to });
        if (from.leader === m.to && from.role === 'follower') this.input(from, { kind: 'leader-unreachable' });
      }
      return;
    }
    this.queue.push(this.now + this.latency(), { kind: 'deliver', env });
    if (chance(this.rng, this.healed ? 0 : this.profile.dupRate)) {
      this.stats.messagesDuplicated++;
      this.queue.push(this.now + this.latency(), { kind: 'deliver', env });
    }
  }

  private latency(): number {
    if (!this.healed && chance(this.rng, this.profile.longDelayRate)) return between(this.rng, TICK, 8 * TICK);
    return between(this.rng, 1, TICK - 2);
  }

  private deliver(env: Envelope): void {
    const m = env.msg;
    const to = this.nodes.get(m.to);
    if (to === undefined || !to.up || this.blocked(m.from, m.to)) {
      this.drop(env, to?.up === true ? 'partitioned' : 'node down');
      return;
    }
    const sender = this.nodes.get(m.from);
    if (sender !== undefined && sender.epoch !== env.senderEpoch && !this.healed && chance(this.rng, 0.7)) {
      this.drop(env, 'sender lost power before it left');
      return;
    }
    this.stats.messagesDelivered++;
    this.record(messageWords(m), () => `deliver ${describeMessage(m)}`);
    if (m.type === 'snap') {
      const from = this.nodes.get(m.from);
      if (from !== undefined) {
        this.queue.push(this.now + between(this.rng, 1, TICK), { kind: 'report-snapshot', node: from.id, to: m.to, ok: true, epoch: from.epoch });
      }
    }
    this.input(to, { kind: 'msg', env });
  }

  private drop(env: Envelope, why: string): void {
    const m = env.msg;
    this.stats.messagesDropped++;
    this.record([code('drop'), ...messageWords(m)], () => `drop (${why}) ${describeMessage(m)}`);
    if (m.type === 'snap') {
      const from = this.nodes.get(m.from);
      if (from !== undefined && from.up) {
        this.queue.push(this.now + between(this.rng, 1, TICK), { kind: 'report-snapshot', node: from.id, to: m.to, ok: false, epoch: from.epoch });
      }
    }
  }

  private blocked(from: NodeId, to: NodeId): boolean {
    if (this.partitions.size === 0) return false;
    const link = from * 1024 + to;
    for (const p of this.partitions.values()) if (p.has(link)) return true;
    return false;
  }

  // ---------------------------------------------------------------- faults and client actions (fault phase)

  private faults(): void {
    const p = this.profile;
    const rng = this.rng;
    const ups = this.upNodes();
    // Client proposals, mostly to a node that believes it leads.
    let proposals = Math.floor(p.proposalsPerTick) + (chance(rng, p.proposalsPerTick % 1) ? 1 : 0);
    while (proposals-- > 0 && ups.length > 0) {
      const leaders = ups.filter((n) => n.role === 'leader');
      const target = leaders.length > 0 && !chance(rng, 0.1) ? pick(rng, leaders) : pick(rng, ups);
      this.propose(target);
    }
    if (ups.length > 0 && chance(rng, p.readRate)) {
      const target = pick(rng, ups);
      this.input(target, { kind: 'read', readId: this.nextRead++ });
    }
    if (chance(rng, p.confChangeRate)) this.confChange();
    if (chance(rng, p.transferRate)) this.transfer();
    if (ups.length > 0 && chance(rng, p.campaignRate)) this.input(pick(rng, ups), { kind: 'campaign' });
    for (const n of ups) {
      if (n.up && chance(rng, p.snapshotRate)) this.takeSnapshot(n);
    }
    if (chance(rng, p.crashRate)) {
      const live = this.upNodes();
      if (live.length > 0) {
        const victim = pick(rng, live);
        this.crash(victim, 'crash');
        this.scheduleRestart(victim);
      }
    }
    if (chance(rng, p.partitionRate) && this.partitions.size < 2) this.partition();
  }

  private propose(target: SimNode): void {
    const id = this.nextProposal++;
    const data = encodeProposal(id, this.rng.int(16));
    this.input(target, { kind: 'propose', proposalId: id, data });
  }

  private confChange(): void {
    const leaders = this.upNodes().filter((n) => n.role === 'leader');
    if (leaders.length === 0) return;
    const leader = pick(this.rng, leaders);
    const cs = leader.sm.confState;
    const options: ConfChange[] = [];
    const empty = new Uint8Array(0);
    const fresh = this.spare[0];
    if (fresh !== undefined) {
      options.push({ type: 'add-learner', nodeId: fresh, context: empty });
      options.push({ type: 'add-voter', nodeId: fresh, context: empty });
    }
    for (const l of cs.learners) {
      if (!this.everRemoved.has(l)) options.push({ type: 'add-voter', nodeId: l, context: empty });
      options.push({ type: 'remove', nodeId: l, context: empty });
    }
    if (cs.voters.length >= 3) for (const v of cs.voters) options.push({ type: 'remove', nodeId: v, context: empty });
    if (options.length === 0) return;
    const cc = pick(this.rng, options);
    if (cc.nodeId === fresh && cc.type !== 'remove') this.spare.shift(); // an id is used at most once
    if (cc.type === 'remove') this.everRemoved.add(cc.nodeId);
    this.input(leader, { kind: 'conf-change', cc });
  }

  private transfer(): void {
    const leaders = this.upNodes().filter((n) => n.role === 'leader');
    if (leaders.length === 0) return;
    const leader = pick(this.rng, leaders);
    const others = leader.sm.confState.voters.filter((v) => v !== leader.id);
    if (others.length === 0) return;
    this.input(leader, { kind: 'transfer', to: pick(this.rng, others) });
  }

  /** The application snapshots its state machine at the applied index and compacts the log behind it. */
  private takeSnapshot(n: SimNode): void {
    if (n.inflight !== undefined) return;
    const applied = n.sm.applied;
    const st = n.storage;
    if (applied <= st.snapshot().metadata.index || applied - st.snapshot().metadata.index < 3) return;
    const snap = st.createSnapshot(applied, n.sm.confState, n.sm.snapshot());
    const keep = pick(this.rng, [0, 2, 10]);
    const compactTo = Math.max(0, applied - keep);
    if (compactTo >= st.writtenFirstIndex()) st.compact(compactTo);
    this.stats.snapshotsCreated++;
    this.record([code('snapshot'), n.id, applied, compactTo], () =>
      `n${n.id} snapshot at ${applied}/t${snap.metadata.term}, compacted to ${compactTo}`,
    );
  }

  /** Cuts node x off from everyone, both ways, for `ticks`. */
  private isolate(x: NodeId, ticks: number): void {
    const links = new Set<number>();
    for (const y of this.allIds()) {
      if (y === x) continue;
      links.add(x * 1024 + y);
      links.add(y * 1024 + x);
    }
    const id = this.nextPartition++;
    this.partitions.set(id, links);
    this.stats.partitions++;
    this.queue.push(this.now + ticks * TICK, { kind: 'heal', partition: id });
    this.record([code('isolate'), id, x], () => `partition #${id}: isolate n${x} for ${ticks} ticks`);
  }

  private partition(): void {
    const ids = this.upNodes().map((n) => n.id);
    if (ids.length < 2) return;
    const links = new Set<number>();
    const kind = this.rng.int(3);
    let desc: string;
    if (kind === 0) {
      const x = pick(this.rng, ids);
      for (const y of this.allIds()) {
        if (y === x) continue;
        links.add(x * 1024 + y);
        links.add(y * 1024 + x);
      }
      desc = `isolate n${x}`;
    } else if (kind === 1) {
      const shuffled = shuffle(this.rng, this.allIds());
      const cut = between(this.rng, 1, shuffled.length - 1);
      const a = shuffled.slice(0, cut);
      const b = shuffled.slice(cut);
      for (const x of a) for (const y of b) {
        links.add(x * 1024 + y);
        links.add(y * 1024 + x);
      }
      desc = `split [${a.join(',')}] | [${b.join(',')}]`;
    } else {
      const pairs: string[] = [];
      const count = between(this.rng, 1, 3);
      for (let k = 0; k < count; k++) {
        const x = pick(this.rng, ids);
        const y = pick(this.rng, ids);
        if (x === y) continue;
        links.add(x * 1024 + y);
        pairs.push(`n${x}->n${y}`);
      }
      desc = `one-way cut ${pairs.join(' ')}`;
    }
    const id = this.nextPartition++;
    this.partitions.set(id, links);
    this.stats.partitions++;
    this.queue.push(this.now + between(this.rng, 2, 60) * TICK, { kind: 'heal', partition: id });
    this.record([code('partition'), id, links.size], () => `partition #${id}: ${desc}`);
  }

  // ---------------------------------------------------------------- crashes and restarts

  private crash(n: SimNode, why: 'crash' | 'removed'): void {
    const lost = n.storage.crash(this.rng, this.opts.tornWrites ?? this.profile.tornWrites);
    n.up = false;
    n.raw = undefined;
    n.invariants = undefined;
    n.inbox = [];
    n.inflight = undefined;
    n.snapPayloads.clear();
    n.role = 'follower';
    n.leader = NONE;
    n.recordedCommit = 0;
    n.epoch++;
    if (why === 'crash') this.stats.crashes++;
    this.checkDurableLogs();
    this.record([code('crash'), n.id, lost.keptOps, lost.lostOps], () =>
      `n${n.id} ${why === 'crash' ? 'crashes' : 'shuts down'}: ${lost.lostOps} unsynced writes lost, ${lost.keptOps} kept`,
    );
  }

  /** Most crashed nodes come back after a while; the rest wait for the liveness phase. */
  private scheduleRestart(n: SimNode): void {
    if (!chance(this.rng, 0.8)) return;
    this.queue.push(this.now + between(this.rng, 1, 40) * TICK + between(this.rng, 0, TICK - 1), {
      kind: 'restart',
      node: n.id,
      epoch: n.epoch,
    });
  }

  private restart(n: SimNode): void {
    this.stats.restarts++;
    this.boot(n);
    const applied = n.sm.applied;
    const hs = n.storage.durableHardState();
    const last = n.storage.writtenLastIndex();
    this.record([code('restart'), n.id, applied], () =>
      `n${n.id} restarts: applied ${applied}, durable t${hs.term} v${hs.vote} c${hs.commit} lastIndex ${last}`,
    );
    this.process(n);
  }

  private startNode(id: NodeId): void {
    const n = new SimNode(id, this.initial);
    this.nodes.set(id, n);
    this.boot(n);
    this.record([code('start'), id], () => `n${id} starts`);
    this.process(n);
  }

  private boot(n: SimNode): void {
    // Recovery: a snapshot installed in the log storage but not yet in the state machine (crash between the
    // two) is restored from its durable payload first, as the application does on startup.
    const snap = n.storage.snapshot().metadata;
    if (snap.index > n.sm.applied) {
      const payload = n.storage.snapshotPayload();
      this.checker.onRestore(n.id, snap.index, snap.term, payload.chain);
      n.sm.restore(payload);
      const idx = snap.index;
      this.record([code('recover'), n.id, idx], () => `n${n.id} recovers its state machine from snapshot ${idx}`);
    }
    const base = defaultRaftConfig(n.id, seededRng(childSeed(this.rng)));
    const config: RaftConfig = {
      ...base,
      electionTimeoutTicks: ELECTION_TIMEOUT_TICKS,
      heartbeatIntervalTicks: 1,
      maxSizePerMsgBytes: this.profile.maxSizePerMsgBytes,
      maxInflightMsgs: this.profile.maxInflightMsgs,
      maxUncommittedEntriesBytes: this.profile.maxUncommittedEntriesBytes,
      applied: n.sm.applied,
    };
    if (this.opts.testingFault !== undefined) config.testingFault = this.opts.testingFault;
    n.raw = this.core(n, 'new RawNode', () => new RawNode(config, n.storage));
    // A fresh checker per incarnation: a crash may legitimately lose an unsynced term or vote.
    n.invariants = new NodeInvariantChecker();
    n.up = true;
    n.role = 'follower';
    n.leader = NONE;
    n.recordedCommit = 0;
  }

  // ---------------------------------------------------------------- heal + liveness

  private heal(): void {
    this.healed = true;
    this.healedAtTick = this.stats.ticks;
    this.partitions.clear();
    for (const n of this.nodes.values()) {
      if (!n.up && !n.retired) this.restart(n);
    }
    this.live = { phase: 'elect', since: this.stats.ticks };
    this.record([code('heal-all')], () => 'heal everything: liveness phase');
  }

  private livenessTick(): void {
    const s = this.live;
    const ticks = this.stats.ticks;
    switch (s.phase) {
      case 'off':
      case 'done':
        return;
      case 'elect': {
        if (this.stableLeader() !== undefined) {
          this.live = { phase: 'propose', pending: [], acked: [] };
        } else if (ticks - s.since > ELECTION_BOUND_TICKS) {
          throw new SimViolation('liveness', `no leader ${ELECTION_BOUND_TICKS} ticks after healing (${this.describeNodes()})`);
        }
        return;
      }
      case 'propose': {
        // Settle proposals: acked ones count, dropped/refused ones are retried.
        const still: number[] = [];
        for (const id of s.pending) {
          const p = this.checker.proposals.get(id);
          if (p === undefined) continue;
          if (p.status === 'acked') s.acked.push(p.index);
          else if (p.status === 'pending') still.push(id);
        }
        s.pending = still;
        if (s.acked.length >= LIVENESS_PROPOSALS) {
          this.live = { phase: 'converge', target: Math.max(...s.acked) };
          return;
        }
        this.checkProgress(`only ${s.acked.length}/${LIVENESS_PROPOSALS} proposals committed`);
        const leader = this.stableLeader();
        if (leader === undefined) return;
        // A proposal made to an earlier leader may never resolve: stop waiting for it (it may still commit).
        s.pending = s.pending.filter((id) => {
          const p = this.checker.proposals.get(id);
          return p !== undefined && p.node === leader.id && p.term === leader.term();
        });
        if (s.pending.length < LIVENESS_PROPOSALS - s.acked.length) this.propose(leader);
        return;
      }
      case 'converge': {
        const members = this.members();
        const behind = members.filter((n) => !n.up || n.sm.applied < s.target);
        if (behind.length === 0) {
          this.finalChecks(members, s.target);
          this.stats.livenessTicks = ticks - this.healedAtTick;
          this.live = { phase: 'done' };
        } else {
          this.checkProgress(`members ${behind.map((n) => `n${n.id}(applied ${n.sm.applied})`).join(' ')} did not apply ${s.target}`);
        }
        return;
      }
      default: {
        const never: never = s;
        throw new Error(`unknown liveness state ${JSON.stringify(never)}`);
      }
    }
  }

  /**
   * Liveness after healing: every STALL_BOUND_TICKS some live node applies or appends something (a throttled
   * profile may replicate an old-term backlog for a long while before it can commit), all done by the cap.
   */
  private checkProgress(what: string): void {
    const ticks = this.stats.ticks;
    let sum = 0;
    for (const n of this.nodes.values()) if (n.up) sum += n.sm.applied + n.storage.writtenLastIndex();
    if (sum !== this.progressMark) {
      this.progressMark = sum;
      this.progressTick = ticks;
    }
    if (ticks - this.progressTick > STALL_BOUND_TICKS) {
      throw new SimViolation('liveness', `${what}: nothing appended or applied for ${STALL_BOUND_TICKS} ticks (${this.describeNodes()})`);
    }
    if (ticks - this.healedAtTick > LIVENESS_CAP_TICKS) {
      throw new SimViolation('liveness', `${what}: ${LIVENESS_CAP_TICKS} ticks after healing (${this.describeNodes()})`);
    }
  }

  /** A leader whose term is the highest among live nodes. */
  private stableLeader(): SimNode | undefined {
    const ups = this.upNodes();
    let maxTerm = 0;
    for (const n of ups) maxTerm = Math.max(maxTerm, n.term());
    return ups.find((n) => n.role === 'leader' && n.term() === maxTerm);
  }

  /** The members per the most advanced state machine's membership. */
  private members(): SimNode[] {
    let best: SimNode | undefined;
    for (const n of this.nodes.values()) if (!n.retired && (best === undefined || n.sm.applied > best.sm.applied)) best = n;
    if (best === undefined) return [];
    const cs = best.sm.confState;
    const out: SimNode[] = [];
    for (const id of [...cs.voters, ...cs.learners]) {
      const n = this.nodes.get(id);
      if (n === undefined) throw new SimViolation('liveness', `member ${id} was never started`);
      out.push(n);
    }
    return out;
  }

  private finalChecks(members: SimNode[], target: Index): void {
    const c = this.checker;
    this.checkDurableLogs();
    for (const p of c.proposals.values()) {
      if (p.status !== 'acked') continue;
      if (c.appliedKey(p.index) !== p.key) {
        throw new SimViolation('acknowledged-write-lost', `proposal p${p.id} acknowledged at ${p.index} but ${String(c.appliedKey(p.index))} is there`);
      }
      for (const n of members) {
        if (n.sm.applied < p.index) {
          throw new SimViolation('acknowledged-write-lost', `proposal p${p.id} at ${p.index} not applied on member n${n.id} (applied ${n.sm.applied})`);
        }
      }
    }
    for (const n of members) {
      if (c.appliedChain(n.sm.applied) !== n.sm.chain) {
        throw new SimViolation('state-machine-safety', `member n${n.id} at ${n.sm.applied} has a chain different from the first to apply it`);
      }
    }
    const want = c.appliedChain(target);
    if (want === undefined) throw new SimViolation('liveness', `target ${target} never applied`);
  }

  // ---------------------------------------------------------------- helpers

  private node(id: NodeId): SimNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`unknown node ${id}`);
    return n;
  }

  private rawOf(n: SimNode): RawNode {
    if (n.raw === undefined) throw new Error(`node ${n.id} has no core (down)`);
    return n.raw;
  }

  private upNodes(): SimNode[] {
    const out: SimNode[] = [];
    for (const n of this.nodes.values()) if (n.up) out.push(n);
    return out;
  }

  private allIds(): NodeId[] {
    return [...this.nodes.keys()];
  }

  describeNodes(): string {
    const parts: string[] = [];
    for (const n of this.nodes.values()) {
      const hs = n.storage.writtenHardState();
      parts.push(
        `n${n.id}:${n.retired ? 'retired' : n.up ? n.role : 'down'} t${hs.term} v${hs.vote} c${hs.commit} applied ${n.sm.applied} last ${n.storage.writtenLastIndex()} conf [${n.sm.confState.voters.join(',')}|${n.sm.confState.learners.join(',')}]`,
      );
    }
    return parts.join('; ');
  }

  profileOf(): Profile {
    return this.profile;
  }

  private record(words: number[], describe: () => string): void {
    const t = this.now;
    this.trace.record(words, () => `[t${t}] ${describe()}`);
  }
}

/** Runs one seeded simulation; never throws for a property violation (it is in the result). */
export function runSimulation(opts: SimOptions): SimResult {
  const sim = new Simulation(opts);
  let violation: SimResult['violation'];
  try {
    sim.run();
  } catch (err) {
    if (err instanceof SimViolation) {
      violation = { property: err.property, detail: err.detail, event: sim.stats.events, time: sim.stats.ticks };
    } else {
      const msg = err instanceof Error ? `${err.name}: ${err.message}\n${err.stack ?? ''}` : String(err);
      violation = { property: 'core-exception', detail: `simulation error: ${msg}`, event: sim.stats.events, time: sim.stats.ticks };
    }
  }
  sim.finish();
  return {
    options: opts,
    seed: opts.seed,
    nodes: opts.nodes,
    ok: violation === undefined,
    violation,
    trace: violation === undefined ? [] : sim.trace.lines(),
    traceHash: sim.trace.digest(),
    stats: sim.stats,
    faults: JSON.stringify(sim.profileOf()),
  };
}

/** The CLI command that replays a run exactly. */
export function replayCommand(o: SimOptions): string {
  const flags = [`--nodes ${o.nodes}`, `--steps ${o.steps ?? DEFAULT_STEPS}`];
  if (o.profile !== undefined && o.profile !== 'mixed') flags.push(`--profile ${o.profile}`);
  if (o.testingFault !== undefined) flags.push(`--fault ${o.testingFault}`);
  if (o.commitRuleCheck === false) flags.push('--no-commit-rule');
  if (o.tornWrites !== undefined) flags.push(o.tornWrites ? '--torn-writes' : '--whole-batches');
  if (o.syncBeforeApply === true) flags.push('--sync-before-apply');
  if (o.driverFault !== undefined) flags.push(`--driver-fault ${o.driverFault}`);
  if (o.liveness === false) flags.push('--no-liveness');
  return `SEED=${o.seed} npm run sim -- ${flags.join(' ')}`;
}

/** A failure report: seed, property, detail, the last events, and how to replay. */
export function formatFailure(r: SimResult): string {
  if (r.violation === undefined) return `seed ${r.seed}: ok`;
  const v = r.violation;
  return [
    `SIMULATION FAILURE seed=${r.seed} nodes=${r.nodes} property=${v.property} at event ${v.event} (tick ${v.time})`,
    `  ${v.detail}`,
    `  faults: ${r.faults}`,
    `  last ${r.trace.length} events:`,
    ...r.trace.map((l) => `    ${l}`),
    `  replay: npm run build && ${replayCommand(r.options)}`,
  ].join('\n');
}
