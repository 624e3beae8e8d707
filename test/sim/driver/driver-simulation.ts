// The driver simulation: N (3 or 5) members running the REAL production driver loop (RaftKvNode from
// src/node/node.ts) in one process, over in-memory ports (SimWal, SimKv, SimTransport, SimNodeFiles, SimClock),
// all on one seeded timeline (SimScheduler). One seed draws every fault and replays the run event for event.
//
// Faults (driver-profile.ts): message loss, duplication, long delays (reordering), partitions incl. one-way cuts;
// crashes that lose unsynced WAL writes (torn batches on some seeds) and unflushed state machine batches (a
// power loss also the flushes since the last synced write), restarts, graceful stops (a leader hands over),
// crashes of new leaders; slow fsync, a full WAL disk (fsync fails with DISK_FULL: the driver parks and
// retries) and a full state machine disk (flushes stall); crash points: between the core accepting a snapshot
// and the restore landing, between the restore and the WAL recording it, between the state machine's flush for a
// snapshot and the WAL compaction; snapshots (small snapshotEveryEntries, saveSnapshot()), membership changes
// through the driver's addMember / removeMember / promoteLearner, leadership transfers; client writes and
// linearizable and serializable reads through RaftKvNode.write / read.
//
// Checkers, as things happen: election safety and leader completeness (a node seen leading in a term: it
// sends appends or heartbeats, or its status says so), log matching (at every WAL append; pairwise over the
// durable logs every 10 ticks and after crashes), a leader's new commit index durable on a quorum of voters,
// persist-before-send (an append acknowledgement or a granted vote leaves only once durable, or once the sender is
// durably in a later term), durable term and vote never regress, state machine safety (the same entry and hash
// chain at every index on every member, restores included, no gaps), the client-visible checks of
// client-history.ts (acknowledged writes, applied twice, reads against the applied log, linearizable reads per
// key), and the driver loop never dies. After the
// fault phase everything heals: a leader within a bound, new writes acknowledged, every member converges to
// the same state, and a linearizable read of every key through the leader sees every acknowledged write.
import { pino } from 'pino';
import { RaftKvNode } from '../../../src/node/node.js';
import type { DriverTestingFaults, NodeDeps } from '../../../src/node/node.js';
import type { NodeConfig, PeerConfig } from '../../../src/node/config.js';
import type { CommitBroadcast } from '../../../src/raft/config.js';
import { isRaftKvError } from '../../../src/shared/errors.js';
import { decodeConfChange } from '../../../src/raft/conf-change.js';
import { describeMessage } from '../../../src/raft/describe.js';
import { seededRng } from '../../../src/raft/rng.js';
import type { ConfState, Entry, Index, Message, NodeId, Rng, Term } from '../../../src/raft/types.js';
import { DEFAULT_KV_LIMITS } from '../../../src/kv/types.js';
import type { RangeRequest } from '../../../src/kv/types.js';
import { SafetyChecker, checkDurableLogMatching } from '../checkers.js';
import { between, chance, childSeed, pick, shuffle } from '../sim-rng.js';
import { Trace, code, messageWords } from '../trace.js';
import { SimViolation } from '../violation.js';
import type { SimProperty } from '../violation.js';
import { ClientHistory } from './client-history.js';
import type { ReadRecord, WriteRecord } from './client-history.js';
import { drawDriverProfile } from './driver-profile.js';
import type { DriverProfile } from './driver-profile.js';
import type { KvImage } from './kv-image.js';
import { SimClock } from './sim-clock.js';
import { SimNodeFiles } from './sim-files.js';
import { SimKv } from './sim-kv.js';
import type { KvFaults, KvObserver } from './sim-kv.js';
import { SimNetwork, link } from './sim-network.js';
import type { NetworkHooks } from './sim-network.js';
import { SimScheduler } from './sim-scheduler.js';
import { Incarnation, Member } from './sim-member.js';
import { SimTransport } from './sim-transport.js';
import { SimWal } from './sim-wal.js';
import type { WalDisk } from './sim-wal.js';
import type { ViolationSink, WalFaults, WalObserver } from './sim-wal.js';

/** TEST ONLY breakages, to show the checkers fail (see driver-checkers-can-fail.test.ts). */
export type DriverFault = 'ack-before-fsync' | 'apply-out-of-order' | 'snapshot-without-flush';
export const DRIVER_FAULTS: readonly DriverFault[] = ['ack-before-fsync', 'apply-out-of-order', 'snapshot-without-flush'];

/** Fault-phase length in nemesis ticks (TICK_MS each), tuned for 500+ CI seeds in ~90 s on 2 cores. */
export const DRIVER_DEFAULT_TICKS = 150;

export interface DriverSimOptions {
  readonly seed: number;
  readonly nodes: 3 | 5;
  /** Fault-phase length in ticks of TICK_MS. Default DRIVER_DEFAULT_TICKS. */
  readonly ticks?: number;
  /** Events kept for the failure report. Default 40. */
  readonly traceSize?: number;
  /** Run the heal + liveness phase. Default true. */
  readonly liveness?: boolean;
  /** TEST ONLY: break the driver (or the state machine's snapshot) on purpose. */
  readonly driverFault?: DriverFault;
  /** Keep the driver's own log lines (info and up) for the failure report (no effect on the run). */
  readonly driverLogs?: boolean;
  /**
   * Report the known driver issues of FOUND-BUGS.md as violations (default false: tolerated, counted in
   * stats.k2RemoteReplies). (K1 is fixed.) K2: a member cannot answer a
   * member added after its progress (the transport drops messages to peers the member table lacks); tolerated,
   * the simulated transport replies to such senders, as etcd's does.
   */
  readonly strict?: boolean;
  /** How followers learn of commits (NodeConfig.commitBroadcast); default the production default (eager). */
  readonly commitBroadcast?: CommitBroadcast;
  /**
   * Check persist-before-send and commit-durable-on-a-quorum directly (default true). Off, only the end-to-end
   * checkers remain (log matching, leader completeness, state machine safety, the client-visible checks).
   */
  readonly durabilityChecks?: boolean;
}

export interface DriverSimStats {
  events: number;
  ticks: number;
  delivered: number;
  dropped: number;
  crashes: number;
  crashPoints: number; // crashes at a snapshot / restore / compaction crash point
  restarts: number;
  gracefulStops: number;
  partitions: number;
  walFullEpisodes: number;
  kvFullEpisodes: number;
  writes: number;
  writesAcked: number;
  reads: number;
  readsChecked: number;
  confChanges: number; // membership changes applied (first application)
  membersAdded: number;
  membersRemoved: number;
  transfers: number;
  snapshotsTaken: number;
  snapshotsSent: number;
  snapshotsInstalled: number;
  leaderTerms: number;
  maxTerm: number;
  maxCommitted: number;
  livenessTicks: number;
  k2RemoteReplies: number; // known issue K2 tolerance used: a member answered a sender its table lacks (per pair)
}

export interface DriverSimResult {
  readonly options: DriverSimOptions;
  readonly seed: number;
  readonly nodes: 3 | 5;
  readonly ok: boolean;
  readonly violation: { property: SimProperty; detail: string; event: number; timeMs: number } | undefined;
  readonly trace: string[]; // last events, formatted
  readonly logs: string[]; // the driver's last log lines (driverLogs only)
  readonly traceHash: string;
  readonly stats: DriverSimStats;
  readonly faults: string; // the seed's fault mix (JSON)
}

export const TICK_MS = 100; // the members' tickIntervalMs, and the nemesis period
const ELECTION_TIMEOUT_TICKS = 10; // the production default (1 s at TICK_MS)
const SPARE_IDS = 3; // ids beyond the initial voters that membership changes may add
const REQUEST_DEADLINE_MS = 3000; // client writes and reads
const ADMIN_DEADLINE_MS = 5000; // membership changes and transfers
const CORRUPT_CHECK_INTERVAL_MS = 3000; // the driver's periodic check (its timer runs on the SimClock too)
const ELECTION_BOUND_TICKS = 150; // liveness: a leader within this after healing
const LIVENESS_CAP_TICKS = 1500; // liveness: writes, convergence and the final reads within this
const LIVENESS_WRITES = 5; // liveness: new writes acknowledged after healing (as the core level)
const DURABLE_LOG_CHECK_TICKS = 10; // pairwise durable log matching: O(members^2 x log), so not every event
const GRACEFUL_STOP_BOUND_TICKS = 100; // a stop() still running then is a crash
const MAX_EVENTS = 4_000_000; // a run that never quiesces is reported, not waited for
const LOG_LINES = 200; // driver log lines kept for a failure report (about the last second of a busy cluster)
const WAL_FSYNC_MS = { min: 2, max: 6 }; // >= 2: a crash point scheduled 1 ms ahead lands before the fsync
const SLOW_FSYNC_MS = { min: 20, max: 150 }; // a loaded disk: long enough for inputs to queue behind one Ready
const RESTORE_MS = { min: 2, max: 10 }; // >= 2, as above
const DISK_FULL_TICKS = { min: 5, max: 30 }; // around DISK_FULL_RETRY_MS (10 ticks): one retry or several

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

function getRequest(key: string): RangeRequest {
  return { key: enc(key), end: new Uint8Array(0), limit: 0, keysOnly: false, countOnly: false };
}

function peerOf(id: NodeId): PeerConfig {
  return { id, peerAddress: `sim-${id}:1`, clientAddress: `sim-${id}:2` };
}

function errText(err: unknown): string {
  if (isRaftKvError(err)) return err.code;
  return err instanceof Error ? err.message : String(err);
}

export function emptyDriverStats(): DriverSimStats {
  return {
    events: 0,
    ticks: 0,
    delivered: 0,
    dropped: 0,
    crashes: 0,
    crashPoints: 0,
    restarts: 0,
    gracefulStops: 0,
    partitions: 0,
    walFullEpisodes: 0,
    kvFullEpisodes: 0,
    writes: 0,
    writesAcked: 0,
    reads: 0,
    readsChecked: 0,
    confChanges: 0,
    membersAdded: 0,
    membersRemoved: 0,
    transfers: 0,
    snapshotsTaken: 0,
    snapshotsSent: 0,
    snapshotsInstalled: 0,
    leaderTerms: 0,
    maxTerm: 0,
    maxCommitted: 0,
    livenessTicks: 0,
    k2RemoteReplies: 0,
  };
}

type LivenessState =
  | { readonly phase: 'faults' }
  | { readonly phase: 'elect'; readonly since: number }
  | { readonly phase: 'write'; readonly pending: Set<WriteRecord>; readonly acked: Index[] }
  | { readonly phase: 'converge'; readonly target: Index }
  | { readonly phase: 'read'; readonly reads: Map<string, 'pending' | 'ok' | 'retry'> }
  | { readonly phase: 'done' };

class DriverSimulation implements ViolationSink {
  private readonly rng: Rng;
  readonly profile: DriverProfile;
  private readonly scheduler = new SimScheduler();
  private readonly network: SimNetwork;
  private readonly members = new Map<NodeId, Member>();
  private readonly checker = new SafetyChecker();
  private readonly history = new ClientHistory();
  private readonly seenLeaders = new Set<number>(); // term * 1024 + id, once reported to the checker
  private readonly remoteReplies = new Set<number>(); // from * 1024 + to: K2 counted once per pair
  private readonly spare: NodeId[] = []; // ids never used yet
  private readonly everRemoved = new Set<NodeId>(); // ids a removal was asked for: never added back
  private readonly retiring = new Set<NodeId>();
  private readonly logger: pino.Logger;
  private readonly logRing: string[] = [];
  readonly trace: Trace;
  readonly stats = emptyDriverStats();
  violation: SimViolation | undefined;
  private tick = 0;
  private healedAtTick = 0;
  private healed = false;
  private live: LivenessState = { phase: 'faults' };
  private readonly initialIds: NodeId[] = [];

  constructor(private readonly opts: DriverSimOptions) {
    this.rng = seededRng(opts.seed);
    this.profile = drawDriverProfile(this.rng);
    this.trace = new Trace(opts.traceSize ?? 40);
    this.network = new SimNetwork(this.scheduler, this.rng, this.profile, this.networkHooks());
    this.logger = pino(
      { level: opts.driverLogs === true ? 'info' : 'silent', base: null, timestamp: false },
      { write: (line: string) => this.onLogLine(line) },
    );
    for (let i = 1; i <= opts.nodes; i++) this.initialIds.push(i);
    for (let i = 1; i <= SPARE_IDS; i++) this.spare.push(opts.nodes + i);
    const p = this.profile;
    this.record([code('profile'), p.dropRate * 1000, p.crashRate * 1000, p.snapshotEveryEntries], () => `profile ${JSON.stringify(p)}`);
  }

  fail(property: SimProperty, detail: string): void {
    this.violation ??= new SimViolation(property, detail);
  }

  async run(): Promise<void> {
    const initial = this.initialIds.map(peerOf);
    for (const id of this.initialIds) {
      const m = new Member(id, 'new', initial, this);
      this.members.set(id, m);
      this.boot(m);
    }
    this.scheduler.after(TICK_MS / 2, () => this.nemesisTick());
    while (this.violation === undefined && this.live.phase !== 'done') {
      if (this.scheduler.events > MAX_EVENTS) {
        this.fail('liveness', `no end after ${MAX_EVENTS} events (${this.describeMembers()})`);
        break;
      }
      if (!(await this.scheduler.step())) throw new Error('event queue ran dry (the nemesis tick is always scheduled)');
    }
  }

  finish(): void {
    for (const m of this.members.values()) if (m.inc !== undefined) this.collectStats(m.inc);
    const s = this.stats;
    s.events = this.scheduler.events;
    s.ticks = this.tick;
    s.writes = this.history.writesInvoked;
    s.writesAcked = this.history.writesAcked;
    s.reads = this.history.readsInvoked;
    s.readsChecked = this.history.readsChecked;
    s.leaderTerms = this.checker.leaderTerms;
    s.maxTerm = this.checker.maxTerm;
    s.maxCommitted = this.checker.maxCommitted;
  }

  logLines(): string[] {
    return [...this.logRing];
  }

  // ------------------------------------------------------------------ members

  private boot(m: Member): void {
    const epoch = ++m.epoch;
    const created = !m.wal.exists;
    if (created) m.wal.create(m.joined === 'new' ? { voters: this.initialIds, learners: [] } : { voters: [], learners: [] });
    const id = m.id;
    const clock = new SimClock(this.scheduler, () => this.record([code('timer'), id], () => `n${id} timer`));
    const alive = (): boolean => clock.isAlive;
    const holder: { inc: Incarnation | undefined } = { inc: undefined };
    const wal = new SimWal(m.wal, created, clock, this.walFaults(m), this.walObserver(m, () => holder.inc));
    const kv = new SimKv(id, m.kv, m.files, clock, this.kvFaults(m), this.kvObserver(m, () => holder.inc), this);
    const transport = new SimTransport(this.network, id, alive, this.opts.strict !== true);
    const files = new SimNodeFiles(m.files, alive);
    const inc = new Incarnation(epoch, clock, wal, kv, transport, files);
    holder.inc = inc;
    m.inc = inc;
    const testingFaults: DriverTestingFaults = {
      ackBeforeFsync: this.opts.driverFault === 'ack-before-fsync',
      applyOutOfOrder: this.opts.driverFault === 'apply-out-of-order',
    };
    const deps: NodeDeps = {
      transport,
      logger: this.logger.child({ n: id }),
      rng: seededRng(childSeed(this.rng)),
      clock,
      files,
      testingFaults,
      onFatal: (err: Error) => {
        if (!inc.alive) return;
        // (K1 of FOUND-BUGS.md, a loop that died on DISK_FULL during WAL compaction, is fixed: no tolerance.)
        this.fail('driver-failure', `n${id}: the driver loop died: ${err.message}`);
      },
    };
    this.record([code('boot'), id, epoch], () => `n${id} starts (incarnation ${epoch}, ${m.joined}${created ? ', empty disk' : ''})`);
    void RaftKvNode.start(this.nodeConfig(m), deps, { wal, stateMachine: kv }).then(
      (node) => {
        if (!inc.alive) return;
        inc.node = node;
        this.record([code('started'), id, kv.appliedIndex], () => `n${id} started: applied ${kv.appliedIndex}, log ${wal.writtenFirstIndex()}..${wal.writtenLastIndex()}`);
      },
      (err: unknown) => {
        if (!inc.alive) return;
        if (isRaftKvError(err, 'DISK_FULL')) {
          // startNode fails; a supervisor restarts the process later.
          this.record([code('start-disk-full'), id], () => `n${id} failed to start: disk full`);
          this.crash(m, 'exited', true);
          this.scheduleRestart(m, 5, 20);
          return;
        }
        this.fail('driver-failure', `n${id} failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      },
    );
  }

  private nodeConfig(m: Member): NodeConfig {
    const self = peerOf(m.id);
    return {
      id: m.id,
      clusterId: 'sim',
      dataDir: m.dataDir,
      peerListen: self.peerAddress,
      clientListen: self.clientAddress,
      advertisePeer: self.peerAddress,
      advertiseClient: self.clientAddress,
      initialClusterState: m.joined,
      initialMembers: m.initialMembers,
      tickIntervalMs: TICK_MS,
      electionTimeoutTicks: ELECTION_TIMEOUT_TICKS,
      heartbeatIntervalTicks: 1,
      snapshotEveryEntries: this.profile.snapshotEveryEntries,
      snapshotsKept: 2,
      walSegmentSizeBytes: 1024 * 1024,
      maxInboxItems: this.profile.maxInboxItems,
      maxPendingProposals: 1000,
      maxPendingReads: 1000,
      maxRequestBytes: 2 * 1024 * 1024,
      kvLimits: DEFAULT_KV_LIMITS,
      logLevel: 'info',
      logPretty: false,
      corruptCheckIntervalMs: CORRUPT_CHECK_INTERVAL_MS,
      ...(this.opts.commitBroadcast !== undefined ? { commitBroadcast: this.opts.commitBroadcast } : {}),
    };
  }

  /**
   * The process dies (or has exited: `keepAll`, after stop() or a failed start, the OS has every write). The
   * disks keep what was durable plus what the crash model keeps of the rest; a dead process runs nothing more.
   */
  private crash(m: Member, why: string, keepAll = false): void {
    const inc = m.inc;
    if (inc === undefined) return;
    this.collectStats(inc);
    inc.clock.kill();
    inc.transport.kill();
    const powerLoss = !keepAll && this.rng.int(2) === 0;
    const wal = inc.wal.crash(this.rng, this.profile.tornWrites, keepAll);
    const kv = m.kv.crash(this.rng, powerLoss);
    for (const w of inc.writes) this.history.onWriteLost(w);
    m.inc = undefined;
    if (!keepAll) this.stats.crashes++;
    this.checkDurableLogs();
    this.record([code('crash'), m.id, wal.kept, wal.lost, kv.kept, kv.lost], () =>
      `n${m.id} ${why}${powerLoss ? ' (power loss)' : ''}: WAL kept ${wal.kept} unsynced records, lost ${wal.lost}; state machine kept ${kv.kept} unsynced flushes, lost ${kv.lost} (and every unflushed batch)`,
    );
  }

  private collectStats(inc: Incarnation): void {
    const s = inc.node?.stats;
    if (s === undefined) return;
    this.stats.snapshotsTaken += s.snapshotsTaken;
    this.stats.snapshotsSent += s.snapshotsSent;
    this.stats.snapshotsInstalled += s.snapshotsInstalled;
    inc.node = undefined; // counted once
  }

  private scheduleRestart(m: Member, minTicks: number, maxTicks: number): void {
    const delay = this.healed ? 1 : between(this.rng, minTicks, maxTicks) * TICK_MS + between(this.rng, 0, TICK_MS - 1);
    this.scheduler.after(delay, () => {
      if (m.inc !== undefined || m.retired) return;
      this.stats.restarts++;
      this.boot(m);
    });
  }

  /** stop(): a leader first hands over; then the process exits and is restarted a while later. */
  private gracefulRestart(m: Member): void {
    const inc = m.inc;
    const node = inc?.node;
    if (inc === undefined || node === undefined || inc.stopping) return;
    inc.stopping = true;
    this.stats.gracefulStops++;
    this.record([code('stop'), m.id], () => `n${m.id} stop() (graceful)`);
    const exited = (how: string): void => {
      if (m.inc !== inc) return;
      this.record([code('stopped'), m.id], () => `n${m.id} ${how}`);
      this.crash(m, how, how === 'stopped');
      if (!m.retired) this.scheduleRestart(m, 1, 20);
    };
    void node.stop().then(
      () => exited('stopped'),
      (err: unknown) => exited(`stop failed (${errText(err)}), killed`),
    );
    this.scheduler.after(GRACEFUL_STOP_BOUND_TICKS * TICK_MS, () => exited('still stopping, killed'));
  }

  /** Removed from the membership: the operator shuts the member down for good. */
  private retire(m: Member): void {
    this.retiring.delete(m.id);
    if (m.retired) return;
    this.crash(m, 'shut down (removed from the cluster)', true);
    m.retired = true;
    this.stats.membersRemoved++;
  }

  // ------------------------------------------------------------------ ports' faults and observers

  private walFaults(m: Member): WalFaults {
    return {
      fsyncLatencyMs: () =>
        !this.healed && chance(this.rng, this.profile.slowFsyncRate)
          ? between(this.rng, SLOW_FSYNC_MS.min, SLOW_FSYNC_MS.max)
          : between(this.rng, WAL_FSYNC_MS.min, WAL_FSYNC_MS.max),
      isFull: () => this.scheduler.nowMs < m.walFullUntilMs,
    };
  }

  private kvFaults(m: Member): KvFaults {
    return {
      applyLatencyMs: () => (!this.healed && chance(this.rng, this.profile.slowApplyRate) ? between(this.rng, 1, 15) : 0),
      flushLatencyMs: () => between(this.rng, 1, 5),
      snapshotWriteLatencyMs: () => between(this.rng, 2, 20),
      restoreLatencyMs: () => between(this.rng, RESTORE_MS.min, RESTORE_MS.max),
      isFull: () => this.scheduler.nowMs < m.kvFullUntilMs,
      snapshotWithoutFlush: this.opts.driverFault === 'snapshot-without-flush',
    };
  }

  private walObserver(m: Member, incOf: () => Incarnation | undefined): WalObserver {
    return {
      onAppend: (entries) =>
        this.guard(() => {
          const inc = incOf();
          if (inc === undefined) return;
          const first = entries[0];
          const last = entries[entries.length - 1];
          if (first !== undefined && last !== undefined) {
            this.record([code('append'), m.id, first.index, last.index, last.term], () => `n${m.id} WAL append ${first.index}..${last.index} (t${last.term})`);
          }
          this.checker.onEntriesWritten(m.id, entries, inc.wal);
        }),
      onHardState: (hs) =>
        this.guard(() => {
          const inc = incOf();
          if (inc === undefined) return;
          this.record([code('hard-state'), m.id, hs.term, hs.vote, hs.commit], () => `n${m.id} WAL hard state t${hs.term} v${hs.vote} c${hs.commit}`);
          if (hs.commit > inc.recordedCommit) {
            const before = inc.recordedCommit;
            inc.recordedCommit = this.checker.onCommit(m.id, inc.recordedCommit, hs.commit, inc.wal);
            const leads = inc.node !== undefined && inc.node.knownLeader === m.id;
            if (leads && hs.commit > before && this.opts.durabilityChecks !== false) this.checkCommitDurable(m, inc, hs.commit);
          }
        }),
      onSnapshotRecord: (meta, install) =>
        this.guard(() => {
          const inc = incOf();
          if (inc === undefined) return;
          this.record([code(install ? 'wal-install' : 'wal-compact'), m.id, meta.index, meta.term], () => `n${m.id} WAL ${install ? 'install' : 'compact'} snapshot ${meta.index}/t${meta.term}`);
          if (install) {
            this.checker.onSnapshot(m.id, meta.index, meta.term);
            inc.recordedCommit = Math.max(inc.recordedCommit, meta.index);
          } else {
            this.crashPoint(m, inc, 'after the state machine flushed for a snapshot, before the WAL compaction is durable');
          }
        }),
    };
  }

  private kvObserver(m: Member, incOf: () => Incarnation | undefined): KvObserver {
    return {
      onApply: (e, chain, image) =>
        this.guard(() => {
          this.record([code('apply'), m.id, e.index, chain], () => `n${m.id} applies ${e.index}/t${e.term} (${e.type}${e.data.byteLength === 0 ? ', empty' : ''})`);
          const first = this.checker.appliedKey(e.index) === undefined;
          if (first) this.history.onFirstApply(e);
          this.checker.onApply(m.id, e, chain);
          if (e.type === 'conf-change') this.membershipEffects(e, image, first);
        }),
      onRestore: (meta, chain) =>
        this.guard(() => {
          this.record([code('restore'), m.id, meta.index, chain], () => `n${m.id} state machine restored snapshot ${meta.index}/t${meta.term}`);
          this.checker.onRestore(m.id, meta.index, meta.term, chain);
        }),
      onRestoreStart: () => this.guard(() => this.crashPointOf(m, incOf(), 'after the core accepted a snapshot, before the restore landed')),
      onRestoreDone: () => this.guard(() => this.crashPointOf(m, incOf(), 'after the restore, before the WAL records the snapshot')),
      onSnapshotFlushed: () => this.guard(() => this.crashPointOf(m, incOf(), 'after the state machine flushed for a snapshot, before the file and the compaction')),
    };
  }

  private crashPointOf(m: Member, inc: Incarnation | undefined, where: string): void {
    if (inc !== undefined) this.crashPoint(m, inc, where);
  }

  /** With the seed's crashPointRate, the member crashes 1 ms from now (before the next fsync or restore lands). */
  private crashPoint(m: Member, inc: Incarnation, where: string): void {
    if (this.healed || !chance(this.rng, this.profile.crashPointRate)) return;
    this.scheduler.after(1, () => {
      if (m.inc !== inc || this.healed) return;
      this.stats.crashPoints++;
      this.crash(m, `crashes ${where}`);
      this.scheduleRestart(m, 1, 20);
    });
  }

  private networkHooks(): NetworkHooks {
    return {
      onSend: (from, messages) => this.guard(() => this.checkSend(from, messages, this.opts.durabilityChecks !== false)),
      onDeliver: (from, to, messages) => {
        this.stats.delivered += messages.length;
        for (const msg of messages) this.record(messageWords(msg), () => `deliver ${describeMessage(msg)}`);
      },
      onDrop: (from, to, messages, why) => {
        this.stats.dropped += messages.length;
        for (const msg of messages) this.record([code('drop'), ...messageWords(msg)], () => `drop (${why}) ${describeMessage(msg)}`);
      },
      onRemote: (from, to) => {
        const key = from * 1024 + to;
        if (this.remoteReplies.has(key)) return;
        this.remoteReplies.add(key);
        this.stats.k2RemoteReplies++;
        this.record([code('known-issue'), from, to], () => `n${from} KNOWN ISSUE K2: answers n${to}, a member its table does not know yet (a remote)`);
      },
      files: (id) => {
        const m = this.members.get(id);
        return m === undefined ? undefined : { store: m.files, inboxDir: `${m.dataDir}/snap-inbox` };
      },
    };
  }

  /** Runs checker code where the driver called us: a violation is recorded, never thrown into the driver. */
  private guard(f: () => void): void {
    try {
      f();
    } catch (err) {
      if (err instanceof SimViolation) this.fail(err.property, err.detail);
      else this.fail('core-exception', `simulation error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
  }

  // ------------------------------------------------------------------ checks

  /** Persist before send: an append acknowledgement or a granted vote promises durable state. */
  private checkSend(from: NodeId, messages: readonly Message[], durability: boolean): void {
    const m = this.members.get(from);
    const inc = m?.inc;
    if (m === undefined || inc === undefined) return;
    for (const msg of messages) {
      if (!durability && msg.type !== 'app' && msg.type !== 'heartbeat' && msg.type !== 'snap') continue;
      switch (msg.type) {
        case 'app':
        case 'heartbeat':
        case 'snap':
          this.observeLeader(from, msg.term);
          break;
        case 'app-resp': {
          // An acknowledgement of an older term than the durable one may have been true when the core produced it
          // and the log truncated since by a later term's leader (one loop turn stepped both; the term change sent
          // every message of the Ready after the persist). To its receiver that is a delayed message: safe.
          if (msg.reject || m.wal.durableHardState().term > msg.term) break;
          const disk = m.wal;
          if (msg.index > disk.durableLastIndex()) {
            this.fail('durability', `n${from} acknowledges index ${msg.index} to n${msg.to} (term ${msg.term}) but its durable log ends at ${disk.durableLastIndex()}`);
          } else if (msg.index >= disk.durableFirstIndex() && inc.wal.writtenTerm(msg.index) !== undefined && disk.durableTerm(msg.index) !== inc.wal.writtenTerm(msg.index)) {
            this.fail('durability', `n${from} acknowledges index ${msg.index} (term ${String(inc.wal.writtenTerm(msg.index))}) but its durable log has term ${String(disk.durableTerm(msg.index))} there`);
          }
          break;
        }
        case 'vote-resp': {
          if (msg.reject) break;
          // Safe once durable: the vote itself, or a later term (the node never votes in msg.term again).
          const hs = m.wal.durableHardState();
          if (hs.term < msg.term || (hs.term === msg.term && hs.vote !== msg.to)) {
            this.fail('durability', `n${from} grants its vote to n${msg.to} in term ${msg.term} but its durable hard state is t${hs.term} v${hs.vote}`);
          }
          break;
        }
        case 'heartbeat-resp':
        case 'pre-vote':
        case 'pre-vote-resp':
        case 'vote':
        case 'timeout-now':
        case 'read-index':
        case 'read-index-resp':
          break; // promise nothing durable
        default: {
          const never: never = msg;
          throw new Error(`unknown message ${JSON.stringify(never)}`);
        }
      }
    }
  }

  private observeLeader(id: NodeId, term: Term): void {
    const key = term * 1024 + id;
    if (this.seenLeaders.has(key)) return;
    this.seenLeaders.add(key);
    const m = this.members.get(id);
    const inc = m?.inc;
    if (m === undefined || inc === undefined) return;
    this.record([code('leader'), id, term], () => `n${id} leads in term ${term}`);
    this.checker.onLeader(id, term, inc.wal);
    if (!this.healed && chance(this.rng, this.profile.leaderCrashRate)) {
      const isolate = this.rng.int(2) === 0;
      this.scheduler.after(between(this.rng, 0, 3 * TICK_MS), () => {
        if (m.inc !== inc || this.healed) return;
        if (isolate) this.isolate(id, between(this.rng, 3, 40));
        else {
          this.crash(m, 'crashes (a new leader killed)');
          this.scheduleRestart(m, 1, 40);
        }
      });
    }
  }

  /** A leader's new commit index is durable on a quorum of its voters (an ack before the fsync breaks this). */
  private checkCommitDurable(m: Member, inc: Incarnation, commit: Index): void {
    const node = inc.node;
    if (node === undefined) return;
    const st = node.raftStatus();
    if (st.role !== 'leader') return;
    const term = inc.wal.writtenTerm(commit);
    if (term === undefined) return; // compacted here: covered by its snapshot
    const holders: NodeId[] = [];
    for (const v of st.confState.voters) {
      const disk = this.members.get(v)?.wal;
      if (disk === undefined || !disk.exists) continue;
      if (disk.durableTerm(commit) === term || disk.durableFirstIndex() - 1 > commit) holders.push(v);
    }
    if (holders.length * 2 <= st.confState.voters.length) {
      this.fail('durability', `leader n${m.id} commits ${commit}/t${term} but only [${holders.join(',')}] of voters [${st.confState.voters.join(',')}] hold it durably`);
    }
  }

  private checkDurableLogs(): void {
    const logs: { id: NodeId; storage: WalDisk }[] = [];
    for (const m of this.members.values()) if (m.wal.exists) logs.push({ id: m.id, storage: m.wal });
    this.guard(() => checkDurableLogMatching(logs));
  }

  /** The operator's side of a membership change (once, at its first application): start or retire a member. */
  private membershipEffects(e: Entry, image: KvImage, first: boolean): void {
    const cc = decodeConfChange(e.data);
    const cs = image.confState();
    const isMember = cs.voters.includes(cc.nodeId) || cs.learners.includes(cc.nodeId);
    if (first) this.stats.confChanges++;
    if (cc.type !== 'remove' && isMember && !this.members.has(cc.nodeId)) {
      const peers = image.memberList().map((x) => ({ id: x.id, peerAddress: x.peerAddress, clientAddress: x.clientAddress }));
      const m = new Member(cc.nodeId, 'existing', peers, this);
      this.members.set(m.id, m);
      this.stats.membersAdded++;
      this.record([code('member-added'), m.id, e.index], () => `n${m.id} added at ${e.index}: the operator starts it (empty disk, existing)`);
      this.scheduler.after(this.healed ? 1 : between(this.rng, 0, 10) * TICK_MS + 1, () => {
        if (m.inc === undefined && !m.retired) this.boot(m);
      });
    } else if (cc.type === 'remove' && !isMember) {
      const gone = this.members.get(cc.nodeId);
      if (gone !== undefined && !gone.retired && !this.retiring.has(gone.id)) {
        this.retiring.add(gone.id);
        this.scheduler.after(this.healed ? 1 : between(this.rng, 0, 30) * TICK_MS + 1, () => this.retire(gone));
      }
    }
  }

  // ------------------------------------------------------------------ the nemesis (one event every TICK_MS)

  private nemesisTick(): void {
    this.tick++;
    this.scheduler.after(TICK_MS, () => this.nemesisTick());
    const tick = this.tick;
    this.record([code('tick'), tick], () => `tick ${tick}`);
    for (const m of this.members.values()) {
      const st = m.inc?.node?.raftStatus();
      if (st !== undefined && st.role === 'leader') this.guard(() => this.observeLeader(m.id, st.term));
    }
    if (tick % DURABLE_LOG_CHECK_TICKS === 0) this.checkDurableLogs();
    if (!this.healed) {
      if (tick <= (this.opts.ticks ?? DRIVER_DEFAULT_TICKS)) this.faults();
      else if (this.opts.liveness === false) this.live = { phase: 'done' };
      else this.heal();
    } else this.livenessTick();
  }

  /** Members whose driver runs and is not stopping. */
  private running(): Member[] {
    const out: Member[] = [];
    for (const m of this.members.values()) if (m.inc?.node !== undefined && !m.inc.stopping) out.push(m);
    return out;
  }

  private leaders(ms: readonly Member[]): Member[] {
    return ms.filter((m) => m.inc?.node?.knownLeader === m.id);
  }

  private count(mean: number): number {
    return Math.floor(mean) + (chance(this.rng, mean % 1) ? 1 : 0);
  }

  private faults(): void {
    const p = this.profile;
    const rng = this.rng;
    const up = this.running();
    const leaders = this.leaders(up);
    for (let n = this.count(p.writesPerTick); n > 0 && up.length > 0; n--) {
      this.clientWrite(leaders.length > 0 && !chance(rng, 0.1) ? pick(rng, leaders) : pick(rng, up));
    }
    for (let n = this.count(p.readsPerTick); n > 0 && up.length > 0; n--) {
      this.clientRead(pick(rng, up), !chance(rng, p.serializableReadShare));
    }
    if (chance(rng, p.crashRate)) {
      const victims = [...this.members.values()].filter((m) => m.inc !== undefined);
      if (victims.length > 0) {
        const v = pick(rng, victims);
        this.crash(v, 'crashes');
        if (chance(rng, 0.8)) this.scheduleRestart(v, 1, 40);
      }
    }
    if (up.length > 0 && chance(rng, p.gracefulRestartRate)) this.gracefulRestart(pick(rng, up));
    if (chance(rng, p.partitionRate)) this.partition();
    if (chance(rng, p.confChangeRate)) this.confChange(leaders);
    if (chance(rng, p.transferRate)) this.transfer(leaders);
    if (up.length > 0 && chance(rng, p.saveSnapshotRate)) {
      const m = pick(rng, up);
      this.record([code('save-snapshot'), m.id], () => `n${m.id} saveSnapshot()`);
      void m.inc?.node?.saveSnapshot().catch(() => undefined);
    }
    if (chance(rng, p.walFullRate)) this.fillDisk('wal');
    if (chance(rng, p.kvFullRate)) this.fillDisk('kv');
  }

  private fillDisk(which: 'wal' | 'kv'): void {
    const candidates = [...this.members.values()].filter((m) => !m.retired);
    if (candidates.length === 0) return;
    const m = pick(this.rng, candidates);
    const ticks = between(this.rng, DISK_FULL_TICKS.min, DISK_FULL_TICKS.max);
    const until = this.scheduler.nowMs + ticks * TICK_MS;
    if (which === 'wal') {
      m.walFullUntilMs = until;
      this.stats.walFullEpisodes++;
    } else {
      m.kvFullUntilMs = until;
      this.stats.kvFullEpisodes++;
    }
    this.record([code(`${which}-full`), m.id, ticks], () => `n${m.id} ${which === 'wal' ? 'WAL' : 'state machine'} disk full for ${ticks} ticks`);
  }

  private clientWrite(m: Member): WriteRecord | undefined {
    const inc = m.inc;
    const node = inc?.node;
    if (inc === undefined || node === undefined) return undefined;
    const key = `k${this.rng.int(this.profile.keys)}`;
    const w = this.history.invokeWrite(key, m.id, this.scheduler.nowMs);
    inc.writes.add(w);
    this.record([code('write'), m.id, w.id], () => `client write ${w.value} to ${key} on n${m.id}`);
    void node.write({ type: 'put', key: enc(key), value: enc(w.value), prevKv: false }, { clientId: '', seq: 0, deadlineMs: this.scheduler.nowMs + REQUEST_DEADLINE_MS }).then(
      (reply) =>
        this.guard(() => {
          inc.writes.delete(w);
          const index = reply.header.index;
          this.record([code('write-ok'), w.id, index], () => `client write ${w.value} acknowledged at ${index} by n${m.id}`);
          this.history.onAck(w, index);
        }),
      (err: unknown) =>
        this.guard(() => {
          inc.writes.delete(w);
          const why = errText(err);
          this.record([code('write-err'), w.id, code(why)], () => `client write ${w.value} on n${m.id} failed: ${why}`);
          this.history.onWriteFailed(w, why);
        }),
    );
    return w;
  }

  private clientRead(m: Member, linearizable: boolean, onDone?: (ok: boolean) => void, key?: string): void {
    const node = m.inc?.node;
    if (node === undefined) {
      onDone?.(false);
      return;
    }
    const k = key ?? `k${this.rng.int(this.profile.keys)}`;
    const r: ReadRecord = this.history.invokeRead(k, m.id, linearizable, this.scheduler.nowMs);
    this.record([code('read'), m.id, r.id, linearizable ? 1 : 0], () => `client ${linearizable ? 'linearizable' : 'serializable'} read r${r.id} of ${k} on n${m.id}`);
    void node.read(getRequest(k), { serializable: !linearizable, deadlineMs: this.scheduler.nowMs + REQUEST_DEADLINE_MS }).then(
      (reply) =>
        this.guard(() => {
          const kv = reply.result.kvs[0];
          const value = kv === undefined ? undefined : dec(kv.value);
          const at = reply.header.index;
          this.record([code('read-ok'), r.id, at], () => `read r${r.id} of ${k} on n${m.id}: ${String(value)} at index ${at}`);
          this.history.onReadResult(r, at, value);
          onDone?.(true);
        }),
      (err: unknown) =>
        this.guard(() => {
          const why = errText(err);
          this.record([code('read-err'), r.id, code(why)], () => `read r${r.id} on n${m.id} failed: ${why}`);
          onDone?.(false);
        }),
    );
  }

  private confChange(leaders: readonly Member[]): void {
    if (leaders.length === 0) return;
    const leader = pick(this.rng, leaders);
    const node = leader.inc?.node;
    if (node === undefined) return;
    const members = node.members();
    const voters = members.filter((x) => !x.learner).map((x) => x.id);
    const learners = members.filter((x) => x.learner).map((x) => x.id);
    type Change = { kind: 'add-learner' | 'add-voter' | 'promote' | 'remove'; id: NodeId };
    const options: Change[] = [];
    const fresh = this.spare[0];
    if (fresh !== undefined) options.push({ kind: 'add-learner', id: fresh }, { kind: 'add-voter', id: fresh });
    for (const l of learners) {
      if (!this.everRemoved.has(l)) options.push({ kind: 'promote', id: l });
      options.push({ kind: 'remove', id: l });
    }
    if (voters.length >= 3) for (const v of voters) options.push({ kind: 'remove', id: v });
    if (options.length === 0) return;
    const c = pick(this.rng, options);
    if (c.id === fresh && c.kind !== 'remove') this.spare.shift();
    if (c.kind === 'remove') this.everRemoved.add(c.id);
    const deadline = this.scheduler.nowMs + ADMIN_DEADLINE_MS;
    const request =
      c.kind === 'remove'
        ? node.removeMember(c.id, deadline)
        : c.kind === 'promote'
          ? node.promoteLearner(c.id, deadline)
          : node.addMember({ ...peerOf(c.id), learner: c.kind === 'add-learner' }, deadline);
    this.record([code('conf-change'), leader.id, code(c.kind), c.id], () => `n${leader.id} ${c.kind} ${c.id} (admin API)`);
    void request.then(
      () => this.record([code('conf-change-ok'), c.id], () => `${c.kind} ${c.id} done`),
      (err: unknown) => this.record([code('conf-change-err'), c.id], () => `${c.kind} ${c.id} failed: ${errText(err)}`),
    );
  }

  private transfer(leaders: readonly Member[]): void {
    if (leaders.length === 0) return;
    const leader = pick(this.rng, leaders);
    const node = leader.inc?.node;
    if (node === undefined) return;
    const others = node
      .members()
      .filter((x) => !x.learner && x.id !== leader.id)
      .map((x) => x.id);
    if (others.length === 0) return;
    const to = pick(this.rng, others);
    this.stats.transfers++;
    this.record([code('transfer'), leader.id, to], () => `n${leader.id} transferLeadership to n${to}`);
    void node.transferLeadership(to, this.scheduler.nowMs + ADMIN_DEADLINE_MS).then(
      () => this.record([code('transfer-ok'), to], () => `transfer to n${to} done`),
      (err: unknown) => this.record([code('transfer-err'), to], () => `transfer to n${to} failed: ${errText(err)}`),
    );
  }

  private isolate(x: NodeId, ticks: number): void {
    const links = new Set<number>();
    for (const y of this.members.keys()) {
      if (y === x) continue;
      links.add(link(x, y));
      links.add(link(y, x));
    }
    const id = this.network.partition(links);
    this.stats.partitions++;
    this.scheduler.after(ticks * TICK_MS, () => {
      if (this.network.heal(id)) this.record([code('heal'), id], () => `heal partition #${id}`);
    });
    this.record([code('isolate'), id, x], () => `partition #${id}: isolate n${x} for ${ticks} ticks`);
  }

  private partition(): void {
    const ids = [...this.members.keys()];
    if (ids.length < 2) return;
    const links = new Set<number>();
    const kind = this.rng.int(3);
    let desc: string;
    if (kind === 0) {
      const x = pick(this.rng, ids);
      for (const y of ids) {
        if (y === x) continue;
        links.add(link(x, y));
        links.add(link(y, x));
      }
      desc = `isolate n${x}`;
    } else if (kind === 1) {
      const shuffled = shuffle(this.rng, [...ids]);
      const cut = between(this.rng, 1, shuffled.length - 1);
      const a = shuffled.slice(0, cut);
      const b = shuffled.slice(cut);
      for (const x of a) {
        for (const y of b) {
          links.add(link(x, y));
          links.add(link(y, x));
        }
      }
      desc = `split [${a.join(',')}] | [${b.join(',')}]`;
    } else {
      const pairs: string[] = [];
      for (let k = between(this.rng, 1, 3); k > 0; k--) {
        const x = pick(this.rng, ids);
        const y = pick(this.rng, ids);
        if (x === y) continue;
        links.add(link(x, y));
        pairs.push(`n${x}->n${y}`);
      }
      desc = `one-way cut ${pairs.join(' ')}`;
    }
    const id = this.network.partition(links);
    this.stats.partitions++;
    const ticks = between(this.rng, 2, 60);
    this.scheduler.after(ticks * TICK_MS, () => {
      if (this.network.heal(id)) this.record([code('heal'), id], () => `heal partition #${id}`);
    });
    this.record([code('partition'), id, links.size], () => `partition #${id}: ${desc} for ${ticks} ticks`);
  }

  // ------------------------------------------------------------------ heal + liveness

  private heal(): void {
    this.healed = true;
    this.healedAtTick = this.tick;
    this.network.calm = true;
    this.network.healAll();
    for (const m of this.members.values()) {
      m.walFullUntilMs = 0;
      m.kvFullUntilMs = 0;
      if (m.inc === undefined && !m.retired) {
        this.stats.restarts++;
        this.boot(m);
      }
    }
    this.live = { phase: 'elect', since: this.tick };
    this.record([code('heal-all')], () => 'heal everything: liveness phase');
  }

  /** The running leader of the highest term among running members, if any. */
  private stableLeader(): Member | undefined {
    let best: { m: Member; term: Term } | undefined;
    let maxTerm = 0;
    for (const m of this.running()) {
      const st = m.inc?.node?.raftStatus();
      if (st === undefined) continue;
      maxTerm = Math.max(maxTerm, st.term);
      if (st.role === 'leader' && (best === undefined || st.term > best.term)) best = { m, term: st.term };
    }
    return best !== undefined && best.term === maxTerm ? best.m : undefined;
  }

  private livenessTick(): void {
    const s = this.live;
    const since = this.tick - this.healedAtTick;
    if (s.phase !== 'done' && since > LIVENESS_CAP_TICKS) {
      this.fail('liveness', `${s.phase} not done ${LIVENESS_CAP_TICKS} ticks after healing (${this.describeMembers()})`);
      return;
    }
    switch (s.phase) {
      case 'faults':
      case 'done':
        return;
      case 'elect':
        if (this.stableLeader() !== undefined) this.live = { phase: 'write', pending: new Set(), acked: [] };
        else if (this.tick - s.since > ELECTION_BOUND_TICKS) this.fail('liveness', `no leader ${ELECTION_BOUND_TICKS} ticks after healing (${this.describeMembers()})`);
        return;
      case 'write': {
        for (const w of [...s.pending]) {
          if (w.status === 'pending') continue;
          s.pending.delete(w);
          if (w.status === 'acked') s.acked.push(w.index);
        }
        if (s.acked.length >= LIVENESS_WRITES) {
          this.live = { phase: 'converge', target: Math.max(this.history.highestAcked, ...s.acked) };
          return;
        }
        const leader = this.stableLeader();
        if (leader !== undefined && s.pending.size < LIVENESS_WRITES - s.acked.length) {
          const w = this.clientWrite(leader);
          if (w !== undefined) s.pending.add(w);
        }
        return;
      }
      case 'converge': {
        const leader = this.stableLeader();
        const node = leader?.inc?.node;
        if (leader === undefined || node === undefined) return;
        const ids = node.members().map((x) => x.id);
        const applied = ids.map((id) => this.members.get(id)?.inc?.kv.appliedIndex ?? -1);
        const leaderApplied = leader.inc?.kv.appliedIndex ?? -1;
        if (applied.some((a) => a < s.target || a !== leaderApplied)) return;
        this.finalChecks(leader, ids);
        this.live = { phase: 'read', reads: new Map() };
        return;
      }
      case 'read': {
        const leader = this.stableLeader();
        if (leader === undefined) return;
        for (let k = 0; k < this.profile.keys; k++) {
          const key = `k${k}`;
          const st = s.reads.get(key);
          if (st === 'pending' || st === 'ok') continue;
          s.reads.set(key, 'pending');
          this.clientRead(leader, true, (ok) => s.reads.set(key, ok ? 'ok' : 'retry'), key);
        }
        if ([...s.reads.values()].every((v) => v === 'ok') && s.reads.size === this.profile.keys) {
          this.stats.livenessTicks = since;
          this.live = { phase: 'done' };
        }
        return;
      }
      default: {
        const never: never = s;
        throw new Error(`unknown liveness state ${JSON.stringify(never)}`);
      }
    }
  }

  /** After healing, with every member at the leader's applied index: one state everywhere, nothing acknowledged lost. */
  private finalChecks(leader: Member, ids: readonly NodeId[]): void {
    this.checkDurableLogs();
    const ref = leader.inc?.kv.image;
    if (ref === undefined) return;
    for (const id of ids) {
      const img = this.members.get(id)?.inc?.kv.image;
      if (img === undefined) continue;
      const diff = img.differenceFrom(ref);
      if (diff !== undefined) this.fail('convergence', `n${id} and leader n${leader.id} both at applied ${ref.applied} differ: ${diff}`);
    }
    for (const w of this.history.ackedWrites()) {
      if (w.index > ref.applied) this.fail('acknowledged-write-lost', `write ${w.value} acknowledged at ${w.index} but the leader applied only ${ref.applied}`);
    }
  }

  describeMembers(): string {
    const parts: string[] = [];
    for (const m of this.members.values()) {
      const inc = m.inc;
      const st = inc?.node?.raftStatus();
      const state = m.retired ? 'retired' : inc === undefined ? 'down' : st === undefined ? 'starting' : inc.stopping ? `${st.role}(stopping)` : st.role;
      const hs = inc?.wal.writtenHardState();
      parts.push(
        `n${m.id}:${state}${hs === undefined ? '' : ` t${hs.term} v${hs.vote} c${hs.commit}`} applied ${inc?.kv.appliedIndex ?? '-'} log ${inc === undefined ? '-' : `${inc.wal.writtenFirstIndex()}..${inc.wal.writtenLastIndex()}`}` +
          ` conf ${describeConf(st?.confState)}${inc?.node?.isDiskFull === true ? ' DISK-FULL' : ''}`,
      );
    }
    return parts.join('; ');
  }

  private record(words: readonly number[], describe: () => string): void {
    const t = this.scheduler.nowMs;
    this.trace.record(words, () => `[${t}ms] ${describe()}`);
  }

  private onLogLine(line: string): void {
    this.logRing.push(`[${this.scheduler.nowMs}ms] ${line.trimEnd()}`);
    if (this.logRing.length > LOG_LINES) this.logRing.shift();
  }
}

function describeConf(cs: ConfState | undefined): string {
  return cs === undefined ? '-' : `[${cs.voters.join(',')}|${cs.learners.join(',')}]`;
}

/** Runs one seeded simulation of the production driver; never throws for a property violation. */
export async function runDriverSimulation(opts: DriverSimOptions): Promise<DriverSimResult> {
  const sim = new DriverSimulation(opts);
  try {
    await sim.run();
  } catch (err) {
    if (err instanceof SimViolation) sim.fail(err.property, err.detail);
    else sim.fail('core-exception', `simulation error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  }
  sim.finish();
  const v = sim.violation;
  return {
    options: opts,
    seed: opts.seed,
    nodes: opts.nodes,
    ok: v === undefined,
    violation: v === undefined ? undefined : { property: v.property, detail: v.detail, event: sim.stats.events, timeMs: sim.stats.ticks * TICK_MS },
    trace: v === undefined ? [] : sim.trace.lines(),
    logs: v === undefined ? [] : sim.logLines(),
    traceHash: sim.trace.digest(),
    stats: sim.stats,
    faults: JSON.stringify(sim.profile),
  };
}

/** The CLI command that replays a driver run exactly. */
export function driverReplayCommand(o: DriverSimOptions): string {
  const flags = ['--driver', `--nodes ${o.nodes}`, `--ticks ${o.ticks ?? DRIVER_DEFAULT_TICKS}`];
  if (o.driverFault !== undefined) flags.push(`--driver-fault ${o.driverFault}`);
  if (o.liveness === false) flags.push('--no-liveness');
  if (o.strict === true) flags.push('--strict');
  if (o.durabilityChecks === false) flags.push('--no-durability-checks');
  return `SEED=${o.seed} npm run sim -- ${flags.join(' ')}`;
}

/** A failure report: seed, property, detail, the fault mix, the last events (and driver logs), how to replay. */
export function formatDriverFailure(r: DriverSimResult): string {
  if (r.violation === undefined) return `seed ${r.seed}: ok`;
  const v = r.violation;
  const lines = [
    `DRIVER SIMULATION FAILURE seed=${r.seed} nodes=${r.nodes} property=${v.property} at event ${v.event} (${v.timeMs} ms)`,
    `  ${v.detail}`,
    `  faults: ${r.faults}`,
    `  last ${r.trace.length} events:`,
    ...r.trace.map((l) => `    ${l}`),
  ];
  if (r.logs.length > 0) lines.push(`  last ${r.logs.length} driver log lines:`, ...r.logs.map((l) => `    ${l}`));
  lines.push(`  replay: npm run build && ${driverReplayCommand(r.options)}${r.logs.length === 0 ? ' [--driver-logs]' : ' --driver-logs'}`);
  return lines.join('\n');
}
