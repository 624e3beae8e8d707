// Why one file of ~1,150 lines: the loop's state (inbox, pending requests by index, the Ready in flight,
// snapshot, transfer and join progress) has one owner and its steps interleave on it; what stands alone is
// out of it already (apply-pipeline, recovery, lessor, read-index-queue, snapshot-*, disk-full, slow-ops ...).
//
// The driver loop: one per node. It owns the Raft core (RawNode), the WAL, the state machine and the
// transport, and is the only code that awaits. Every input goes through a bounded inbox; the loop drains it
// into the core synchronously, then handles the core's Ready: send `messages`, persist (snapshot install,
// WAL append + hard state, one fsync for everything queued meanwhile: group commit), send
// `messagesAfterPersist`, apply committed entries in one batch, answer writes and reads, advance.
// Performance (issue 6; differs from DESIGN.md step 4, which is read-only to us): committed entries already
// durable here are applied while the Ready persists, and batches with no snapshot or conf change go onto an
// ordered apply chain off the loop (answering their writes and reads as they land), so the loop keeps
// proposing and persisting. The writes of one loop turn are proposed together (one append per follower).
//
// Data directory layout: node.json (identity, see identity.ts), wal/ (WalStorage), kv/ (LevelDB state
// machine), snap/ (state machine snapshot files), snap-inbox/ (snapshots received from a leader).
//
// Bootstrap and restarts (what this driver does, and what it leaves to the operator):
// - 'new' on an empty directory: a WAL whose index-0 snapshot carries initialMembers as voters (what the
//   core reads), plus committed conf-change entries 1..n of term 1 adding them with their addresses (what the
//   state machine's member table and any later joiner replaying the log learn them from). Every initial
//   member writes the identical log.
// - 'new' on a directory with a log: an ordinary restart; initialMembers are ignored.
// - 'existing' on an empty directory: starts with no membership, never campaigns, and waits for the leader
//   to send the log or a snapshot. The peers it can answer are initialMembers until it learns the table.
//   It answers (pre-)votes meanwhile (a quorum may need it: test/chaos/FOUND-BUGS.md 1); a wiped voter that
//   was not removed and re-added cannot vote twice in a term, as its peers refuse its new incarnation.
// - A member that lost its directory must be removed and re-added (member remove / member add) before it
//   restarts with 'existing'; starting it with 'new' on an empty directory makes it a second, diverging
//   cluster history: that is the operator's error and is documented, not detected.
// - Restart: the core starts at the log's snapshot (RaftConfig.applied = snapshot index) and replays the
//   committed entries after it; the state machine skips those it already applied, but their membership
//   changes are applied to the core again (its ConfState = the snapshot's + the changes after it).
//   recover() first reconciles a crash's leftovers: a state machine behind the log's snapshot restores the
//   newest snapshot file; one ahead of the durable commit index raises it (or records its snapshot in the log).
//
// Snapshots: taken off the loop every snapshotEveryEntries applied entries (then the loop compacts the WAL
// to them). A leader streams the newest file with transport.sendSnapshot when the core emits 'snap' (and
// takes a fresh one if the core asks for a snapshot no file matches). A received, verified file is kept
// aside and the 'snap' message stepped; only if the core accepts it (Ready.snapshot) does the loop restore
// the state machine from it, then record it in the WAL (a crash between the two is repaired by recover()).
import { randomInt } from 'node:crypto';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { NO_AUTH } from '../kv/auth-store.js';
import type { AuthView } from '../kv/auth-store.js';
import type { pino } from 'pino';
import { defaultRaftConfig } from '../raft/config.js';
import { DEFAULT_COMMIT_BROADCAST } from './config.js';
import { RaftError, isRaftError } from '../raft/errors.js';
import { RawNode } from '../raft/raw-node.js';
import type { RaftStatus } from '../raft/raw-node.js';
import { seededRng } from '../raft/rng.js';
import { assertNever } from '../raft/util.js';
import type {
  ConfChange,
  Index,
  Message,
  NodeId,
  Ready,
  Rng,
  Snapshot,
  SnapshotMessage,
  SoftState,
} from '../raft/types.js';
import { NONE } from '../raft/types.js';
import type { AlarmMember, Command, Lease, RangeRequest, TxnOp } from '../kv/types.js';
import type { AppliedChange } from '../kv/state-machine.js';
import { minLeaseTtlSeconds } from '../kv/leases.js';
import { MAX_LEASE_CHECKPOINTS } from '../kv/validate.js';
import { WatchHub } from '../watch/watch-hub.js';
import { encodeEnvelope } from '../kv/codec.js';
import { encodeMemberContext } from '../kv/state-machine.js';
import { validateCommand, validateRange } from '../kv/validate.js';
import { isTxnReadonly } from '../kv/commands.js';
import { KvStateMachine } from '../kv/state-machine.js';
import { WalStorage } from '../storage/wal-storage.js';
import type { Transport } from '../transport/transport.js';
import type { AdminReply, DefragmentResult, KeySpaceDigestAt, KvNode, LeaseTimeToLive, ReadReply, ReadTxnReply, WriteReply, Member, NodeStatus, ReadOptions, WriteOptions } from './api.js';
import { LEASE_CHECK_INTERVAL_MS, LEASE_CHECKPOINT_INTERVAL_MS, LEASE_MAX_REVOKES_PER_CHECK, LEASE_REVOKE_RETRY_MS, Lessor } from './lessor.js';
import type { Clock } from '../shared/clock.js';
import { systemClock } from '../shared/clock.js';
import { NO_LEASE_METRICS, type LeaseMetrics } from '../shared/watch-lease-metrics.js';
import { DEFAULT_CORRUPT_CHECK_INTERVAL_MS, validateNodeConfig } from './config.js';
import { fromRaftError } from './core-errors.js';
import { recover } from './recovery.js';
import { forceNewCluster } from './force-new-cluster.js';
import type { NodeConfig } from './config.js';
import { RaftKvError, isRaftKvError } from '../shared/errors.js';
import { DataDirLock } from './data-dir-lock.js';
import { checkDataDirIdentity } from './identity.js';
import { IncarnationRegistry } from './incarnations.js';
import { Inbox } from './inbox.js';
import type { DurableLog, NodeFiles, StateMachine } from './ports.js';
import { checkReconfigSafe } from './reconfig-check.js';
import { ProposalTracker } from './proposal-tracker.js';
import { ReadIndexQueue } from './read-index-queue.js';
import type { PendingRead } from './read-index-queue.js';
import { PendingRequest } from './request.js';
import { ApplyPipeline } from './apply-pipeline.js';
import { CorruptionCheck } from './corruption-check.js';
import { DataSize } from './data-size.js';
import { DiskFull } from './disk-full.js';
import { PeerSet } from './peer-set.js';
import { LeadershipTransfer } from './leadership-transfer.js';
import { SnapshotInstaller } from './snapshot-installer.js';
import { SnapshotSender } from './snapshot-sender.js';
import { SnapshotTaker } from './snapshot-taker.js';
import { Admission } from './admission.js';
import { assert } from './assert.js';
import { NodeContext } from './node-context.js';
import { newDriverStats } from './stats.js';
import { HeartbeatMonitor } from './heartbeat-monitor.js';
import { NO_NODE_METRICS } from './node-metrics.js';
import type { NodeMetrics } from './node-metrics.js';
import { observeApply, walSyncObserver } from './slow-ops.js';
import type { DriverStats } from './stats.js';

export type { DriverStats } from './stats.js';

export interface NodeDeps {
  transport: Transport;
  logger: pino.Logger;
  /** The core's randomness (election timeouts). Default: seeded from crypto, the seed logged. */
  rng?: Rng;
  /** Ticks, deadlines and retries. Default: the system clock (setInterval / setTimeout / Date.now). */
  clock?: Clock;
  /**
   * Called once if the driver loop dies (a bug assertion, DATA_CORRUPTION found while running, an I/O error
   * other than ENOSPC). The node then answers every request UNAVAILABLE; a server should exit so that a
   * supervisor restarts it (recovery runs on start).
   */
  onFatal?: (err: Error) => void;
  /** The driver's file operations (snapshot directories and received files). Default: the real disk (node:fs). */
  files?: NodeFiles;
  /** Leader changes, proposals, fsyncs, applies, heartbeats for an observer (`raftkv serve`: prom-client). Default: none. */
  metrics?: NodeMetrics;
  /** Lease expiries this member revoked as leader (etcd_debugging_server_lease_expired_total). Default: none. */
  leaseMetrics?: LeaseMetrics;
  /** TEST ONLY: break the driver on purpose so the driver simulation can show its checkers fail. Never set in production. */
  testingFaults?: DriverTestingFaults;
}

/** Deliberate driver bugs for test/sim/driver (checkers-can-fail). Every switch is off unless set to true. */
export interface DriverTestingFaults {
  /** Send a Ready's messagesAfterPersist (acks, votes) before its entries and hard state are fsynced. */
  readonly ackBeforeFsync?: boolean;
  /** Hand the newly durable half of a Ready's committed entries to the apply chain before the already durable half. */
  readonly applyOutOfOrder?: boolean;
}

/** NodeFiles on the real disk. */
const diskFiles: NodeFiles = {
  async mkdir(dir) {
    await mkdir(dir, { recursive: true });
  },
  list: (dir) => readdir(dir),
  remove: (path) => rm(path, { force: true }),
};

/** The durable pieces a node runs on; startNode opens the real ones, tests may open them themselves. */
export interface NodeStores {
  wal: DurableLog;
  stateMachine: StateMachine;
  /** Peers' incarnations (peers.json); absent: not checked (in-process tests). */
  incarnations?: IncarnationRegistry;
  /** The data directory's lock, released when the node has closed everything else; absent in some tests. */
  lock?: DataDirLock;
}

export type { ReadReply, WriteReply } from './api.js';

type InboxItem =
  | { readonly type: 'messages'; readonly messages: readonly Message[] }
  | { readonly type: 'snapshot'; readonly message: SnapshotMessage; readonly filePath: string }
  | { readonly type: 'peer-unreachable'; readonly peer: NodeId }
  | { readonly type: 'snapshot-status'; readonly peer: NodeId; readonly ok: boolean }
  | { readonly type: 'propose'; readonly data: Uint8Array; readonly request: PendingRequest<WriteReply> }
  | { readonly type: 'read'; readonly range: RangeRequest; readonly request: PendingRequest<ReadReply> }
  | { readonly type: 'conf-change'; readonly cc: ConfChange; readonly request: PendingRequest<AdminReply> }
  | { readonly type: 'transfer'; readonly to: NodeId; readonly request: PendingRequest<void> }
  | { readonly type: 'save-snapshot'; readonly request: PendingRequest<string> };

/** The smallest linearizable read: one key, counted only (what a read-only txn waits for before it runs). */
const READ_BARRIER: RangeRequest = { key: Uint8Array.of(0), end: new Uint8Array(0), limit: 1, keysOnly: true, countOnly: true };

const MAX_TICKS_PER_TURN_FACTOR = 2; // a stalled loop catches up at most 2 election timeouts of ticks at once

/**
 * Starts a node: checks (or records) the data directory's identity, opens the WAL (bootstrapping the voters
 * of a 'new' cluster in an empty directory) and the state machine, recovers, then runs the loop.
 * Rejects with RaftKvError: INVALID_ARGUMENT (config), CLUSTER_MISMATCH (directory of another node or
 * cluster), DATA_CORRUPTION (unreadable WAL, state machine or identity).
 */
export async function startNode(config: NodeConfig, deps: NodeDeps): Promise<RaftKvNode> {
  validateNodeConfig(config);
  // Before anything in the directory is read or written: a second process must not touch a live member's files.
  const lock = await DataDirLock.acquire(config.dataDir);
  let wal: WalStorage | undefined;
  let sm: KvStateMachine | undefined;
  try {
    const { incarnation } = await checkDataDirIdentity(config.dataDir, { nodeId: config.id, clusterId: config.clusterId });
    const incarnations = await IncarnationRegistry.load(config.dataDir, config.id, incarnation);
    const logger = deps.logger.child({ nodeId: config.id });
    const voters = config.initialMembers.map((m) => m.id).sort((a, b) => a - b);
    wal = await WalStorage.open(join(config.dataDir, 'wal'), {
      segmentSizeBytes: config.walSegmentSizeBytes,
      logger: (level, msg, fields) => logger[level]({ ...fields }, msg),
      onSync: walSyncObserver(logger, deps.metrics ?? NO_NODE_METRICS),
      ...(config.initialClusterState === 'new' ? { initialConfState: { voters, learners: [] } } : {}),
    });
    sm = await KvStateMachine.open(join(config.dataDir, 'kv'), { limits: config.kvLimits, logger, timers: deps.clock ?? systemClock, verifyOnOpen: config.initialCorruptCheck ?? true });
    return await RaftKvNode.start(config, { ...deps, logger }, { wal, stateMachine: sm, incarnations, lock });
  } catch (err) {
    await sm?.close();
    await wal?.close();
    await lock.release();
    throw err;
  }
}

export class RaftKvNode implements KvNode {
  readonly id: NodeId;
  readonly stats: DriverStats = newDriverStats();

  private readonly log: pino.Logger;
  private readonly clock: Clock;
  private readonly files: NodeFiles;
  private readonly inbox: Inbox<InboxItem>;
  private pendingTicks = 0; // ticks fired since the loop last drained (coalesced, not inbox items)
  private cancelTick: (() => void) | undefined; // stops the tick timer
  private readonly known: NodeContext; // term, commit, role and leader as of the last Ready; the rooms' context
  private readonly admission: Admission; // the gates and pending limits of client requests
  private readonly proposals: ProposalTracker; // writes and membership changes in the core, by log index
  private readonly reads: ReadIndexQueue; // linearizable reads awaiting their read index or its apply
  private readonly transfers: LeadershipTransfer; // transfers awaiting the new leader; stop()'s handover
  private readonly snapshots: SnapshotTaker; // this member's own snapshots: when due, in flight, the newest file
  private readonly sender: SnapshotSender; // snapshot files streaming to followers
  private readonly installer: SnapshotInstaller; // snapshot files received from a leader
  private readonly pipeline: ApplyPipeline; // committed entries into the state machine, in order; off-loop failures
  private readonly disk: DiskFull; // a full WAL or state machine disk: writes refused, retries
  private readonly corruption: CorruptionCheck; // the periodic key-space scan and the CORRUPT alarm
  private readonly peers: PeerSet; // the transport's peers, peers.json, a refusal as a stale incarnation
  private readonly dataSize: DataSize; // the cached bytes on disk status() reports
  private readonly metrics: NodeMetrics; // the observer of leader changes, proposals, fsyncs, applies (NodeDeps.metrics)
  private readonly heartbeats: HeartbeatMonitor; // late heartbeats and heartbeat round trips (a leader's)
  private readonly lock: DataDirLock | undefined; // the data directory's lock, released last in stop()
  private readonly lessor: Lessor; // lease deadlines, while this member leads
  private readonly hub: WatchHub; // this member's watchers
  private cancelLeaseCheck: (() => void) | undefined; // stops the lease expiry and checkpoint timer
  readonly minLeaseTtlSeconds: number;
  private stopping = false; // stop() called: new requests are refused
  private loopStopped = false; // the loop has exited
  private failure: Error | undefined; // a fatal error ended the loop
  private loopDone: Promise<void> = Promise.resolve(); // resolves when the loop exits
  private loopParked = false; // the loop waits for input (not for time: see disk.loopSleeping)
  private idleWaiters: (() => void)[] = []; // whenIdle() callers
  private stopPromise: Promise<void> | undefined; // set by the first stop() call
  /**
   * An empty directory started with 'existing': until the leader's log or snapshot arrives, this member may
   * have lost a vote it cast before its directory was wiped, so it grants no (pre-)votes (availability only).
   */
  private joining = false;

  private readonly wal: DurableLog;
  private readonly sm: StateMachine;

  private constructor(
    private readonly config: NodeConfig,
    private readonly deps: NodeDeps,
    stores: NodeStores,
    private readonly rawNode: RawNode,
    logger: pino.Logger,
  ) {
    const { wal, stateMachine: sm } = stores;
    this.wal = wal;
    this.sm = sm;
    this.lock = stores.lock;
    this.id = config.id;
    this.log = logger;
    this.clock = deps.clock ?? systemClock;
    this.known = new NodeContext(config.id, this.clock, logger, () => sm.members());
    this.metrics = deps.metrics ?? NO_NODE_METRICS;
    this.heartbeats = new HeartbeatMonitor(this.known, this.metrics, config.heartbeatIntervalTicks * config.tickIntervalMs);
    this.reads = new ReadIndexQueue(this.known, sm, () => this.notifyIdle());
    this.proposals = new ProposalTracker(this.known, () => sm.members());
    this.pipeline = new ApplyPipeline({
      sm,
      proposals: this.proposals,
      membership: {
        applyConfChange: (cc, index, replayed) => this.applyConfChange(cc, index, replayed),
        relearned: () => {
          const cs = this.rawNode.status().confState;
          this.log.info({ ...this.known.logFields(), voters: cs.voters, learners: cs.learners }, 'membership relearned from the log');
        },
        changed: () => this.peers.update(),
      },
      stats: this.stats,
      afterOffLoopBatch: () => this.reads.serveReady(),
      observeApply: (entries, firstIndex, durationMs) => observeApply(logger, this.metrics, entries, firstIndex, durationMs, config.warningApplyDurationMs),
      wakeLoop: () => this.inbox.notify(),
      onIdle: () => this.notifyIdle(),
    });
    this.disk = new DiskFull(this.known, {
      sm,
      stopping: () => this.stopping,
      fail: (err) => this.pipeline.fail(err),
      onIdle: () => this.notifyIdle(),
    });
    this.admission = new Admission(config, this.clock, {
      id: config.id,
      failure: () => this.failure,
      stopping: () => this.stopping,
      diskFull: () => this.disk.writesRefused,
      leads: () => this.known.leads(),
      leaderKnown: () => this.known.leaderId !== NONE,
      notLeaderError: () => this.known.notLeaderError(),
    }, this.metrics);
    this.files = deps.files ?? diskFiles;
    this.inbox = new Inbox<InboxItem>(config.maxInboxItems);
    this.transfers = new LeadershipTransfer(this.known, config.electionTimeoutTicks * config.tickIntervalMs);
    this.snapshots = new SnapshotTaker(this.known, {
      sm,
      snapDir: join(config.dataDir, 'snap'),
      snapshotEveryEntries: config.snapshotEveryEntries,
      snapshotsKept: config.snapshotsKept,
      stats: this.stats,
      wakeLoop: () => this.inbox.notify(),
    });
    this.sender = new SnapshotSender(this.known, {
      transport: deps.transport,
      stats: this.stats,
      latest: () => this.snapshots.latest,
      askSnapshot: (why) => this.snapshots.askInternal(why),
      report: (peer, ok) => this.enqueueInternal({ type: 'snapshot-status', peer, ok }),
      onIdle: () => this.notifyIdle(),
    });
    this.installer = new SnapshotInstaller(this.known, sm, this.files, join(config.dataDir, 'snap-inbox'));
    this.corruption = new CorruptionCheck(this.known, {
      sm,
      stopping: () => this.stopping,
      fail: (err) => this.pipeline.fail(err),
      onIdle: () => this.notifyIdle(),
    });
    this.peers = new PeerSet(this.known, {
      transport: deps.transport,
      initialMembers: config.initialMembers,
      incarnations: stores.incarnations,
      members: () => sm.members(),
      wakeLoop: () => this.inbox.notify(),
    });
    this.dataSize = new DataSize(logger, wal, sm, () => this.loopStopped || this.stopping);
    const electionTimeoutMs = config.electionTimeoutTicks * config.tickIntervalMs;
    this.minLeaseTtlSeconds = minLeaseTtlSeconds(electionTimeoutMs);
    this.lessor = new Lessor(
      { lease: (id) => sm.lease?.(id), leaseList: () => sm.leaseList?.() ?? [] },
      {
        extendMs: electionTimeoutMs,
        checkpointIntervalMs: LEASE_CHECKPOINT_INTERVAL_MS,
        revokeRetryMs: LEASE_REVOKE_RETRY_MS,
        maxRevokesPerCheck: LEASE_MAX_REVOKES_PER_CHECK,
        maxCheckpointsPerCheck: MAX_LEASE_CHECKPOINTS,
      },
    );
    this.hub = new WatchHub(
      {
        get revision() {
          return sm.revision;
        },
        get compactedRevision() {
          return sm.compactedRevision;
        },
        historyEvents: (range, from, to, max) =>
          sm.historyEvents?.(range, from, to, max) ?? Promise.reject(new RaftKvError('UNAVAILABLE', 'watch: this state machine keeps no history')),
      },
      (err) => this.log.error({ err }, 'watch: a catch-up read failed'),
    );
    const st = rawNode.status();
    this.known.term = st.term;
    this.known.commitIndex = st.commit;
    this.known.role = st.role;
    this.known.leaderId = st.leader;
  }

  /** Opens (or bootstraps) a node on `stores` and starts its loop, timer and transport. */
  static async start(config: NodeConfig, deps: NodeDeps, stores: NodeStores): Promise<RaftKvNode> {
    const { wal, stateMachine: sm } = stores;
    const logger = deps.logger;
    const snapDir = join(config.dataDir, 'snap');
    const files = deps.files ?? diskFiles;
    await files.mkdir(snapDir);
    await files.mkdir(join(config.dataDir, 'snap-inbox'));
    await recover(config, wal, sm, snapDir, logger);
    if (config.forceNewCluster === true) await forceNewCluster(config.id, wal, logger, (ids) => stores.incarnations?.retire(ids) ?? Promise.resolve());

    let rng = deps.rng;
    if (rng === undefined) {
      const seed = randomInt(2 ** 31);
      logger.info({ seed }, 'election timeout rng seeded');
      rng = seededRng(seed);
    }
    const raftConfig = {
      ...defaultRaftConfig(config.id, rng),
      electionTimeoutTicks: config.electionTimeoutTicks,
      heartbeatIntervalTicks: config.heartbeatIntervalTicks,
      commitBroadcast: config.commitBroadcast ?? DEFAULT_COMMIT_BROADCAST,
      // Not the state machine's applied index: the core replays the committed entries after the log's snapshot,
      // so that it relearns the membership changes among them (the state machine skips what it has applied).
      applied: wal.snapshot().metadata.index,
    };
    const rawNode = new RawNode(raftConfig, wal);
    const node = new RaftKvNode(config, deps, stores, rawNode, logger);
    sm.onFlushFailure = (err) => node.pipeline.fail(err); // the loop rethrows it
    sm.onFlushStalled = (err) => node.disk.onKvFull(err);
    sm.onApplied = (change) => node.onApplied(change);
    sm.onBackendCommit = (durationMs) => node.metrics.onBackendCommit(durationMs);
    node.joining = config.initialClusterState === 'existing' && wal.lastIndex() === 0 && wal.snapshot().metadata.index === 0;
    await node.dataSize.refresh();
    node.snapshots.adopt(await sm.latestSnapshot(snapDir));
    await node.installer.cleanInbox();
    node.peers.update();
    if (stores.incarnations !== undefined) {
      stores.incarnations.appliedIndex = () => sm.appliedIndex;
      stores.incarnations.onWriteError = (err: unknown) => logger.error({ err }, 'could not write peers.json');
    }
    await deps.transport.start({
      onMessages: (messages) => node.onPeerMessages(messages),
      onSnapshot: (message, filePath) => node.onPeerSnapshot(message, filePath),
      onPeerUnreachable: (peer) => node.enqueueInternal({ type: 'peer-unreachable', peer }),
      ...(stores.incarnations !== undefined ? { incarnations: stores.incarnations } : {}),
      onRefusedAsStale: (peer, reason) => node.peers.onRefusedAsStale(peer, reason),
    });
    node.corruption.start(config.corruptCheckIntervalMs ?? DEFAULT_CORRUPT_CHECK_INTERVAL_MS);
    node.cancelTick = node.clock.setInterval(() => {
      node.pendingTicks++;
      node.inbox.notify();
    }, config.tickIntervalMs);
    node.loopDone = node.run();
    node.cancelLeaseCheck = node.clock.setInterval(() => node.checkLeases(), LEASE_CHECK_INTERVAL_MS);
    const st = rawNode.status();
    logger.info(
      { term: st.term, role: st.role, commit: st.commit, applied: sm.appliedIndex, lastIndex: st.lastIndex, voters: st.confState.voters, learners: st.confState.learners },
      'node started',
    );
    return node;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Client API (KvNode). Nothing here touches the core: requests are checked against the last known soft
  // state (fail fast), then queued for the loop.

  async write(command: Command, opts: WriteOptions): Promise<WriteReply> {
    this.admission.checkAcceptingWrites();
    validateCommand(command, this.config.kvLimits);
    const data = encodeEnvelope({ clientId: opts.clientId, seq: opts.seq, command });
    const request = this.admission.writeSlot<WriteReply>(opts.deadlineMs, 'write');
    this.enqueueRequest({ type: 'propose', data, request }, request);
    return request.promise;
  }

  async read(range: RangeRequest, opts: ReadOptions): Promise<ReadReply> {
    this.admission.checkRunning();
    validateRange(range, this.config.kvLimits);
    if (opts.serializable) {
      // Not while the state machine swaps in a snapshot from the leader.
      const restoring = this.installer.restoring;
      if (restoring !== undefined) await restoring;
      const index = this.sm.appliedIndex;
      const result = await this.sm.range(range);
      return { result, header: this.known.header(index) };
    }
    const request = this.admission.readSlot<ReadReply>(opts.deadlineMs);
    this.enqueueRequest({ type: 'read', range, request }, request);
    return request.promise;
  }

  async readTxn(txn: TxnOp, opts: ReadOptions): Promise<ReadTxnReply> {
    this.admission.checkRunning();
    validateCommand(txn, this.config.kvLimits);
    if (!isTxnReadonly(txn)) throw new RaftKvError('INVALID_ARGUMENT', 'readTxn: the txn writes: it goes through the log (write)');
    const readTxn = this.sm.readTxn?.bind(this.sm);
    if (readTxn === undefined) {
      const { header, result } = await this.write(txn, { clientId: '', seq: 0, deadlineMs: opts.deadlineMs });
      if (result.type !== 'txn') throw new Error(`node answered a txn with a ${result.type} result`);
      return { header, result };
    }
    // Linearizable: once this member has applied the read index (a barrier read), as a linearizable Range.
    if (!opts.serializable) await this.read(READ_BARRIER, opts);
    const restoring = this.installer.restoring;
    if (restoring !== undefined) await restoring;
    const { result, index } = await readTxn(txn);
    return { result, header: this.known.header(index) };
  }

  status(): NodeStatus {
    const st = this.rawNode.status();
    // A leader whose WAL has refused writes for an election timeout cannot know whether it still leads (its loop
    // waits for the disk, stepping nothing); the others have likely elected a leader. It says so instead of
    // reporting its old term's leadership beside the real leader. The core is unchanged: with space back it
    // steps the messages that waited and learns the newer term.
    const parkedMs = this.disk.walFullForMs();
    const deposed = st.role === 'leader' && parkedMs >= this.config.electionTimeoutTicks * this.config.tickIntervalMs;
    return {
      id: this.id,
      clusterId: this.config.clusterId,
      clientAddress: this.config.advertiseClient,
      role: deposed ? 'follower' : st.role,
      term: st.term,
      leaderId: deposed ? NONE : st.leader,
      commitIndex: st.commit,
      appliedIndex: this.sm.appliedIndex,
      revision: this.sm.revision,
      compactedRevision: this.sm.compactedRevision,
      lastLogIndex: st.lastIndex,
      snapshotIndex: this.wal.snapshot().metadata.index,
      dataSizeBytes: this.dataSize.bytes,
      backendSizeBytes: this.dataSize.kvBytes,
      diskFull: this.disk.writesRefused,
      members: this.members(),
      progress: [...st.progress.entries()]
        .filter(([id]) => id !== this.id)
        .map(([id, p]) => ({ id, match: p.match, state: p.state }))
        .sort((a, b) => a.id - b.id),
    };
  }

  members(): readonly Member[] {
    return this.sm.members();
  }

  async addMember(member: Member, deadlineMs: number): Promise<readonly Member[]> {
    if (!Number.isInteger(member.id) || member.id <= 0 || member.id >= 2 ** 31) {
      throw new RaftKvError('INVALID_ARGUMENT', `member id must be a positive integer below 2^31, got ${member.id}`);
    }
    if (this.members().some((m) => m.id === member.id)) {
      throw new RaftKvError('FAILED_PRECONDITION', `member ${member.id} already exists`);
    }
    return this.proposeConfChange(
      { type: member.learner ? 'add-learner' : 'add-voter', nodeId: member.id, context: encodeMemberContext(member) },
      deadlineMs,
    );
  }

  async removeMember(id: NodeId, deadlineMs: number): Promise<readonly Member[]> {
    if (!this.members().some((m) => m.id === id)) throw new RaftKvError('NOT_FOUND', `no member ${id}`);
    return this.proposeConfChange({ type: 'remove', nodeId: id, context: new Uint8Array(0) }, deadlineMs);
  }

  async promoteLearner(id: NodeId, deadlineMs: number): Promise<readonly Member[]> {
    const m = this.members().find((x) => x.id === id);
    if (m === undefined) throw new RaftKvError('NOT_FOUND', `no member ${id}`);
    if (!m.learner) throw new RaftKvError('FAILED_PRECONDITION', `member ${id} is already a voter`);
    return this.proposeConfChange({ type: 'add-voter', nodeId: id, context: encodeMemberContext(m) }, deadlineMs);
  }

  async updateMember(member: Member, deadlineMs: number): Promise<readonly Member[]> {
    if (!this.members().some((x) => x.id === member.id)) throw new RaftKvError('NOT_FOUND', `no member ${member.id}`);
    return this.proposeConfChange({ type: 'update', nodeId: member.id, context: encodeMemberContext(member) }, deadlineMs);
  }

  async transferLeadership(to: NodeId, deadlineMs: number): Promise<void> {
    this.admission.checkRunning();
    const m = this.members().find((x) => x.id === to);
    if (m === undefined) throw new RaftKvError('NOT_FOUND', `no member ${to}`);
    if (m.learner) throw new RaftKvError('FAILED_PRECONDITION', `member ${to} is a learner and cannot lead`);
    this.admission.checkLeader();
    if (to === this.id) return;
    const request = new PendingRequest<void>(this.clock, deadlineMs, `transfer leadership to ${to}`, () => undefined);
    this.enqueueRequest({ type: 'transfer', to, request }, request);
    return request.promise;
  }

  async saveSnapshot(): Promise<string> {
    this.admission.checkRunning();
    const request = this.snapshots.request('snapshot');
    this.enqueueRequest({ type: 'save-snapshot', request }, request);
    return request.promise;
  }

  stop(): Promise<void> {
    this.stopPromise ??= this.doStop();
    return this.stopPromise;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Test and operator helpers.

  /** Resolves when the loop is parked with nothing to do (no input, no Ready, nothing in flight). */
  whenIdle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  isIdle(): boolean {
    if (this.loopStopped) return true;
    if (this.sender.busy || this.reads.busy || this.snapshots.busy || this.pipeline.busy || this.disk.busy || this.corruption.busy) return false;
    // Waiting out a disk-full retry: only time moves it on.
    if (this.disk.loopSleeping) return true;
    return this.loopParked && this.inbox.size === 0 && this.pendingTicks === 0;
  }

  /** Where stop() is: a leader first hands over (time must pass for its bounded wait), then closes. */
  get stopPhase(): 'running' | 'handing-over' | 'closing' {
    if (this.stopPromise === undefined) return 'running';
    return this.transfers.handingOver ? 'handing-over' : 'closing';
  }

  /** The core's own status (its membership, progress): for tests and diagnostics. */
  raftStatus(): RaftStatus {
    return this.rawNode.status();
  }

  /** The last known leader (NONE if unknown) and this node's role, as of the last Ready. */
  get knownLeader(): NodeId {
    return this.known.leaderId;
  }

  get isDiskFull(): boolean {
    return this.disk.writesRefused;
  }

  /** How long the WAL has refused the write the loop retries (0: it has not; a full LevelDB alone is not counted). */
  walFullForMs(): number {
    return this.disk.walFullForMs();
  }

  /** One scan of the periodic corruption check (see corruption-check.ts). Never rejects. */
  corruptCheck(): Promise<void> {
    return this.corruption.run();
  }

  /** The fatal error that stopped the loop, if any. */
  get fatalError(): Error | undefined {
    return this.failure;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Queueing for the loop.

  private enqueueRequest<T>(item: InboxItem, request: PendingRequest<T>): void {
    if (!this.inbox.push(item)) {
      request.reject(new RaftKvError('RESOURCE_EXHAUSTED', `node ${this.id}: inbox full (maxInboxItems ${this.config.maxInboxItems})`));
    }
  }

  private async proposeConfChange(cc: ConfChange, deadlineMs: number): Promise<readonly Member[]> {
    this.admission.checkAcceptingWrites();
    const request = this.admission.writeSlot<AdminReply>(deadlineMs, `membership change (${cc.type} ${cc.nodeId})`);
    this.enqueueRequest({ type: 'conf-change', cc, request }, request);
    return request.promise;
  }

  /** Peer traffic and transport events: dropped (Raft retries) when the inbox is full. */
  private enqueueInternal(item: InboxItem): void {
    if (this.loopStopped || this.stopping) return;
    if (!this.inbox.push(item)) {
      this.stats.droppedPeerMessages++;
      this.log.debug({ type: item.type }, 'inbox full: dropped peer input');
    }
  }

  private onPeerMessages(messages: readonly Message[]): void {
    this.heartbeats.onReceive(messages);
    this.enqueueInternal({ type: 'messages', messages });
  }

  private onPeerSnapshot(message: SnapshotMessage, filePath: string): void {
    if (this.loopStopped || this.stopping || !this.inbox.push({ type: 'snapshot', message, filePath })) {
      this.stats.droppedPeerMessages++;
      void this.files.remove(filePath).catch((err: unknown) => this.log.warn({ err, filePath }, 'could not remove a dropped snapshot file'));
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // The loop.

  private async run(): Promise<void> {
    try {
      while (!this.stopping) {
        if (!this.rawNode.hasReady() && this.inbox.size === 0 && this.pendingTicks === 0 && !this.snapshots.hasFinished) {
          this.loopParked = true;
          this.notifyIdle();
          await this.inbox.wait();
          this.loopParked = false;
          if (this.stopping) break;
        }
        if (this.pipeline.failure !== undefined) throw this.pipeline.failure;
        if (this.peers.refusal !== undefined) throw this.peers.refusal;
        this.drainInbox();
        while (this.rawNode.hasReady() && !this.stopping) {
          await this.handleReady();
        }
        if (this.stopping) break;
        await this.completeSnapshot();
        this.snapshots.startIfDue();
      }
    } catch (err) {
      if (this.stopping && isRaftKvError(err, 'DISK_FULL')) {
        this.log.warn({ term: this.known.term, role: this.known.role }, 'stopped while the disk was full: the last Ready was not persisted');
        return;
      }
      this.failure = err instanceof Error ? err : new Error(String(err));
      this.log.fatal({ err: this.failure, term: this.known.term, role: this.known.role }, 'driver loop failed: the node stops');
      this.failEverything(new RaftKvError('UNAVAILABLE', `node ${this.id} failed: ${this.failure.message}`));
      const onFatal = this.deps.onFatal;
      if (onFatal !== undefined) {
        const failure = this.failure;
        queueMicrotask(() => onFatal(failure));
      }
    } finally {
      this.loopStopped = true;
      this.loopParked = false;
      this.notifyIdle();
    }
  }

  private notifyIdle(): void {
    if (!this.isIdle()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Feeds every queued input to the core, synchronously. */
  private drainInbox(): void {
    this.stats.turns++;
    const maxTicks = MAX_TICKS_PER_TURN_FACTOR * this.config.electionTimeoutTicks;
    const ticks = Math.min(this.pendingTicks, maxTicks);
    this.pendingTicks = 0;
    for (let i = 0; i < ticks; i++) this.rawNode.tick();
    if (ticks > 0 && this.known.role !== 'leader' && this.known.leaderId !== NONE) {
      // A follower's unanswered ReadIndex requests go to the leader again (READ_INDEX_RETRY_TICKS).
      for (const ctx of this.reads.dueForRetry(ticks)) {
        try {
          this.rawNode.readIndex(ctx);
        } catch (err) {
          this.log.debug({ err }, 'read index retry failed');
        }
      }
    }
    this.dataSize.onTicks(ticks);
    const reads: PendingRead[] = [];
    // Consecutive writes are proposed together (one append per follower for the lot), before the next other item.
    let writes: { data: Uint8Array; request: PendingRequest<WriteReply> }[] = [];
    for (const item of this.inbox.drain()) {
      if (item.type === 'propose') {
        writes.push(item);
        continue;
      }
      if (writes.length > 0) {
        this.proposeWrites(writes);
        writes = [];
      }
      switch (item.type) {
        case 'messages':
          // A member joining on an empty directory answers (pre-)votes like any other (dissertation §4.1: a
          // server answers RequestVote without consulting its configuration; an empty log grants only to a
          // candidate at least as up to date). Ignoring them deadlocked a quorum that needs it: 1 -> 2 voters,
          // the leader steps down (check-quorum) before the newcomer answers, and the newcomer waited for a
          // leader (test/chaos/FOUND-BUGS.md 1). It never campaigns: it is in no configuration it knows.
          for (const m of item.messages) this.rawNode.step(m);
          break;
        case 'snapshot': {
          this.installer.receive(item.message.snapshot.metadata.index, item.filePath);
          this.rawNode.step(item.message);
          break;
        }
        case 'peer-unreachable':
          if (item.peer === this.known.leaderId && this.known.role !== 'leader') this.rawNode.leaderUnreachable();
          else this.rawNode.reportUnreachable(item.peer);
          break;
        case 'snapshot-status':
          this.rawNode.reportSnapshot(item.peer, item.ok);
          break;
        case 'read':
          if (!item.request.settled) reads.push({ range: item.range, request: item.request });
          break;
        case 'conf-change':
          this.proposeConfChangeNow(item.cc, item.request);
          break;
        case 'transfer':
          this.startTransfer(item.to, item.request);
          break;
        case 'save-snapshot':
          this.snapshots.ask(item.request);
          break;
        default:
          assertNever(item);
      }
    }
    if (writes.length > 0) this.proposeWrites(writes);
    if (reads.length > 0) this.startReadBatch(reads);
    if (this.transfers.waiting) {
      const st = this.rawNode.status();
      this.transfers.settleAbandoned(st.role, st.leadTransferee);
    }
  }

  private proposeWrites(writes: readonly { data: Uint8Array; request: PendingRequest<WriteReply> }[]): void {
    const live = writes.filter((w) => !w.request.settled);
    if (live.length === 0) return;
    if (this.disk.writesRefused) {
      for (const w of live) w.request.reject(new RaftKvError('DISK_FULL', `node ${this.id}: the disk is full`));
      return;
    }
    const outcomes = this.rawNode.proposeBatch(live.map((w) => w.data));
    assert(outcomes.length === live.length, `core answered ${outcomes.length} outcomes for ${live.length} proposals`);
    for (let i = 0; i < live.length; i++) {
      const w = live[i];
      const o = outcomes[i];
      assert(w !== undefined && o !== undefined, 'proposal/outcome index');
      if (o instanceof RaftError) {
        w.request.reject(this.mapCoreError(o));
        continue;
      }
      this.stats.proposals++;
      this.proposals.track(o.index, { kind: 'write', term: o.term, request: w.request });
    }
  }

  private proposeConfChangeNow(cc: ConfChange, request: PendingRequest<AdminReply>): void {
    if (request.settled) return;
    try {
      checkReconfigSafe(this.rawNode.status(), cc);
      const { index, term } = this.rawNode.proposeConfChange(cc);
      this.log.info({ term, role: this.known.role, change: cc.type, member: cc.nodeId, index }, 'membership change proposed');
      this.proposals.track(index, { kind: 'conf-change', term, request });
    } catch (err) {
      request.reject(this.mapCoreError(err));
    }
  }

  private mapCoreError(err: unknown): Error {
    if (isRaftError(err)) return fromRaftError(err, this.known.leaderHint());
    if (isRaftKvError(err)) return err;
    throw err; // a bug: crash the loop
  }

  private startTransfer(to: NodeId, request: PendingRequest<void>): void {
    if (request.settled) return;
    try {
      this.rawNode.transferLeader(to);
      this.log.info({ term: this.known.term, role: this.known.role, to }, 'leadership transfer started');
      this.transfers.started(to, request);
    } catch (err) {
      request.reject(this.mapCoreError(err));
    }
  }

  /** One ReadIndex round for the linearizable reads of a loop turn (the ReadIndex queue serves them). */
  private startReadBatch(reads: PendingRead[]): void {
    if (this.known.leaderId === NONE) {
      const err = this.known.notLeaderError();
      for (const r of reads) r.request.reject(err);
      return;
    }
    const ctx = this.reads.nextContext();
    try {
      this.rawNode.readIndex(ctx);
    } catch (err) {
      const mapped = this.mapCoreError(err);
      for (const r of reads) r.request.reject(mapped);
      return;
    }
    this.stats.readBatches++;
    this.reads.add(ctx, reads);
  }

  private async handleReady(): Promise<void> {
    const rd = this.rawNode.ready();
    this.stats.readies++;
    if (rd.hardState !== undefined) {
      this.known.term = rd.hardState.term;
      this.known.commitIndex = rd.hardState.commit;
    }
    if (rd.softState !== undefined) this.onSoftState(rd.softState);
    this.sendMessages(rd.messages);
    const faults = this.deps.testingFaults;
    if (faults?.ackBeforeFsync === true) this.sendMessages(rd.messagesAfterPersist); // TEST ONLY: a broken driver
    // Without a snapshot or a membership change among them, committed entries are applied off the loop, in
    // order (applyChain): the loop goes on proposing and persisting meanwhile. Writes are answered and reads
    // served as their batch lands. A snapshot or a conf change first waits for every queued batch, and is
    // applied on the loop between ready() and advance(), as the core requires.
    const offLoop = rd.snapshot === undefined && !rd.committedEntries.some((e) => e.type === 'conf-change');
    if (!offLoop) await this.pipeline.drain();
    // Committed entries already durable here (below this Ready's first new entry, and no snapshot to install)
    // are applied while this Ready persists: the apply batch and the WAL fsync overlap instead of queueing.
    // The rest (entries this Ready makes durable) wait for the persist, as before.
    let early = 0;
    if (rd.snapshot === undefined) {
      const firstNew = rd.entries[0]?.index ?? Infinity;
      while (early < rd.committedEntries.length && (rd.committedEntries[early]?.index ?? Infinity) < firstNew) early++;
    }
    const earlyEntries = early === rd.committedEntries.length ? rd.committedEntries : rd.committedEntries.slice(0, early);
    const reorder = faults?.applyOutOfOrder === true && early > 0 && early < rd.committedEntries.length; // TEST ONLY
    if (offLoop && early > 0 && !reorder) this.pipeline.queue(earlyEntries);
    const applying = !offLoop && early > 0 ? this.pipeline.apply(earlyEntries) : undefined;
    applying?.catch(() => undefined); // awaited below; this keeps a failure during the persist from being unhandled
    try {
      await this.persist(rd);
    } catch (err) {
      if (applying !== undefined) await applying.catch(() => undefined); // settle it before the loop fails
      throw err;
    }
    if (faults?.ackBeforeFsync !== true) this.sendMessages(rd.messagesAfterPersist);
    if (applying !== undefined) await applying;
    if (early < rd.committedEntries.length) {
      const lateEntries = early === 0 ? rd.committedEntries : rd.committedEntries.slice(early);
      if (offLoop) {
        this.pipeline.queue(lateEntries);
        if (reorder) this.pipeline.queue(earlyEntries); // TEST ONLY: the later entries went first
      } else await this.pipeline.apply(lateEntries);
    }
    this.reads.onReadStates(rd.readStates);
    this.reads.serveReady();
    this.rawNode.advance(rd);
  }

  private onSoftState(ss: SoftState): void {
    const wasLeader = this.known.role === 'leader';
    const prevRole = this.known.role;
    const prevLeader = this.known.leaderId;
    this.known.role = ss.role;
    this.known.leaderId = ss.leader;
    if (ss.role !== prevRole) {
      const fields = { term: this.known.term, role: ss.role, previousRole: prevRole, leader: ss.leader };
      if (ss.role === 'candidate' || ss.role === 'pre-candidate') this.log.info(fields, `election: became ${ss.role}`);
      else if (ss.role === 'leader') this.log.info(fields, 'election won: became leader');
      else this.log.info(fields, `became ${ss.role}`);
    }
    if (ss.leader !== prevLeader) {
      this.log.info({ term: this.known.term, role: ss.role, leader: ss.leader, previousLeader: prevLeader }, 'leader changed');
      this.transfers.onLeaderChange(ss.leader);
      this.metrics.onLeaderChange(ss.leader, this.known.term);
      this.heartbeats.onLeaderChange();
    }
    this.reads.onLeaderChange(wasLeader && ss.role !== 'leader', ss.leader !== prevLeader, ss.leader);
    if (!wasLeader && ss.role === 'leader') this.lessor.promote(this.clock.now());
    else if (wasLeader && ss.role !== 'leader') this.lessor.demote();
  }

  // ---------------------------------------------------------------------------------------------------------
  // Watches and leases: the hub is fed by every applied batch; the lessor keeps deadlines while this member
  // leads and its expiries and checkpoints are proposed like any write.

  private onApplied(change: AppliedChange): void {
    this.hub.onApplied(change.revision, change.events, change.restored);
    if (change.restored) {
      if (this.lessor.isPrimary) this.lessor.promote(this.clock.now());
    } else if (change.leases.size > 0) {
      this.lessor.onApplied(change.leases, this.clock.now());
    }
  }

  watchHub(): WatchHub {
    return this.hub;
  }

  leases(): readonly Lease[] {
    return this.sm.leaseList?.() ?? [];
  }

  async leaseKeys(id: number): Promise<readonly Uint8Array[]> {
    return (await this.sm.attachedKeys?.(id)) ?? [];
  }

  /** NOT_LEADER unless this member leads and has applied what it had committed when asked (etcd's waitAppliedIndex). */
  private async asLeaseLeader(deadlineMs: number): Promise<void> {
    if (this.stopping) throw new RaftKvError('UNAVAILABLE', `node ${this.id} is stopping`);
    if (!this.known.leads()) throw this.known.notLeaderError();
    await this.waitApplied(this.known.commitIndex, deadlineMs);
    if (!this.lessor.isPrimary) throw this.known.notLeaderError();
  }

  async leaseKeepAlive(id: number, deadlineMs: number): Promise<number | undefined> {
    await this.asLeaseLeader(deadlineMs);
    return this.lessor.renew(id, this.clock.now());
  }

  async leaseTimeToLive(id: number, withKeys: boolean, deadlineMs: number): Promise<LeaseTimeToLive | undefined> {
    await this.asLeaseLeader(deadlineMs);
    const l = this.sm.lease?.(id);
    const ttl = this.lessor.remainingSeconds(id, this.clock.now());
    if (l === undefined || ttl === undefined) return undefined;
    const keys = withKeys ? ((await this.sm.attachedKeys?.(id)) ?? []) : [];
    return { id, ttlSeconds: ttl, grantedTtlSeconds: l.ttlSeconds, keys };
  }

  /** The lease timer: proposes revokes of expired leases and checkpoints of long ones (leader only). */
  private checkLeases(): void {
    if (this.stopping || !this.lessor.isPrimary) return;
    const now = this.clock.now();
    for (const id of this.lessor.takeExpired(now)) {
      this.log.info({ lease: id }, 'lease expired: revoking');
      // Counted once the revoke is applied, as etcd counts a revoke of an expired lease that returned no error.
      this.proposeLeaseCommand({ type: 'lease-revoke', id }, now, () => (this.deps.leaseMetrics ?? NO_LEASE_METRICS).leaseExpired());
    }
    const checkpoints = this.lessor.takeCheckpoints(now);
    if (checkpoints.length > 0) this.proposeLeaseCommand({ type: 'lease-checkpoint', checkpoints }, now);
  }

  private proposeLeaseCommand(command: Command, nowMs: number, onApplied?: () => void): void {
    this.write(command, { clientId: '', seq: 0, deadlineMs: nowMs + LEASE_REVOKE_RETRY_MS }).then(onApplied, (err: unknown) => {
      // Gone already, or leadership moved (the next leader decides): nothing to do. Anything else is retried at
      // the next check (a revoke after LEASE_REVOKE_RETRY_MS).
      if (isRaftKvError(err, 'LEASE_NOT_FOUND') || isRaftKvError(err, 'NOT_LEADER')) return;
      this.log.warn({ err, command: command.type }, 'lease: a proposal failed');
    });
  }

  private sendMessages(messages: readonly Message[]): void {
    if (messages.length === 0) return;
    let plain: Message[] | undefined;
    for (const m of messages) {
      if (m.type === 'snap') {
        this.sender.send(m);
        continue;
      }
      (plain ??= []).push(m);
    }
    if (plain === undefined) return;
    this.heartbeats.onSend(plain);
    this.deps.transport.send(plain);
  }

  /**
   * Installs the snapshot, buffers entries and hard state, fsyncs when asked. While the disk is full the
   * failed step is retried (the WAL keeps unsynced records buffered and writes them again on the next sync).
   */
  private async persist(rd: Ready): Promise<void> {
    let installed = rd.snapshot === undefined; // the snapshot (if any) is in the state machine and the WAL
    let buffered = false; // entries and hard state handed to the WAL
    for (;;) {
      try {
        if (!installed && rd.snapshot !== undefined) {
          await this.installSnapshot(rd.snapshot);
          installed = true;
        }
        if (!buffered) {
          if (rd.entries.length > 0) await this.wal.append(rd.entries);
          if (rd.hardState !== undefined) await this.wal.setHardState(rd.hardState);
          buffered = true;
          this.stats.entriesPersisted += rd.entries.length;
        }
        if (rd.mustSync) {
          // Nothing waits to be sent meanwhile (a follower acknowledges after this): fdatasync on the loop.
          await this.wal.sync({ blocking: rd.messages.length === 0 });
          this.stats.syncs++;
        }
        if (this.joining && (this.wal.lastIndex() > 0 || this.wal.snapshot().metadata.index > 0)) {
          this.joining = false;
          this.log.info({ term: this.known.term, role: this.known.role }, 'joined: received the log from the leader');
        }
        this.disk.leaveWal();
        return;
      } catch (err) {
        await this.disk.parkOnWal(err);
      }
    }
  }

  /** A snapshot from the leader, accepted by the core: restore the state machine, then record it in the log. */
  private async installSnapshot(snap: Snapshot): Promise<void> {
    const index = snap.metadata.index;
    await this.installer.restore(snap);
    if (this.wal.snapshot().metadata.index !== index) await this.wal.applySnapshot(snap);
    else await this.wal.sync(); // a retry after DISK_FULL: the install record is buffered, make it durable
    this.installer.installed(index);
    this.snapshots.installed(index);
    this.stats.snapshotsInstalled++;
    this.proposals.supersede(index); // their fate is unknown here
    this.peers.update();
    this.peers.forgetAbsent(this.rawNode.status().confState, index);
    // Our own snapshot file, to send on if we lead later (written off the loop, like any snapshot).
    this.snapshots.askInternal('after installing a snapshot');
    this.log.info({ ...this.known.logFields(), index, applied: this.sm.appliedIndex }, 'snapshot installed');
  }

  /** A committed membership change reaches the core (on the loop: a batch with a conf change never goes off it). */
  private applyConfChange(cc: ConfChange, index: Index, replayed: boolean): void {
    const cs = this.rawNode.applyConfChange(cc);
    if (cc.type === 'remove') this.peers.forget(cc.nodeId, index);
    if (replayed) return;
    this.log.info({ ...this.known.logFields(), index, change: cc.type, member: cc.nodeId, voters: cs.voters, learners: cs.learners }, 'membership changed');
    if (cc.type === 'remove' && cc.nodeId === this.id) {
      this.log.warn({ ...this.known.logFields(), index }, 'this member was removed from the cluster: it no longer votes or receives the log; stop it');
    }
  }


  keySpaceDigest(index: Index, deadlineMs: number): Promise<KeySpaceDigestAt> {
    this.admission.checkRunning();
    if (!Number.isSafeInteger(index) || index < 0) return Promise.reject(new RaftKvError('INVALID_ARGUMENT', `digest index must be a non-negative integer, got ${index}`));
    const request = new PendingRequest<KeySpaceDigestAt>(this.clock, deadlineMs, 'key-space digest', () => undefined);
    this.reads.digest(index === 0 ? this.sm.appliedIndex : index, request);
    return request.promise;
  }

  raiseCorrupt(reason: string): void {
    this.corruption.raise(reason);
  }

  waitApplied(index: Index, deadlineMs: number): Promise<void> {
    this.admission.checkRunning();
    const request = new PendingRequest<void>(this.clock, deadlineMs, `apply of index ${index}`, () => undefined);
    this.reads.applied(index, request);
    return request.promise;
  }

  async defragment(): Promise<DefragmentResult> {
    this.admission.checkRunning();
    const startedMs = this.clock.now();
    const beforeBytes = await this.sm.dataSizeBytes();
    await this.sm.defragment();
    const afterBytes = await this.sm.dataSizeBytes();
    const tookMs = this.clock.now() - startedMs;
    void this.dataSize.refresh();
    // etcd's "finished defragmenting directory" line, with its figures.
    this.log.info({ ...this.known.logFields(), beforeBytes, afterBytes, freedBytes: beforeBytes - afterBytes, tookMs }, 'defragmented the state machine');
    return { beforeBytes, afterBytes, tookMs };
  }

  alarms(): readonly AlarmMember[] {
    return this.sm.alarmList?.() ?? [];
  }

  auth(): AuthView {
    return this.sm.authView?.() ?? NO_AUTH;
  }

  whenCompacted(revision: number, deadlineMs: number): Promise<void> {
    this.admission.checkRunning();
    const request = new PendingRequest<void>(this.clock, deadlineMs, `compaction at revision ${revision}`, () => undefined);
    this.sm.whenCompacted(revision).then(
      () => request.resolve(),
      (err: unknown) => request.reject(err instanceof Error ? err : new Error(String(err))),
    );
    return request.promise;
  }

  /** The loop's half of a snapshot taken here: compact the WAL up to it, then answer saveSnapshot() callers. */
  private async completeSnapshot(): Promise<void> {
    const taken = this.snapshots.takeFinished(); // a failed one is answered there
    if (taken === undefined) return;
    const file = taken.file;
    // A snapshot installed from the leader meanwhile may already cover it.
    if (file.metadata.index > this.wal.snapshot().metadata.index) {
      // A full disk here parks the loop like persist() does (driver sim K1: it used to kill the member). The WAL
      // has taken the marker into its view before its sync failed: a retry only has to sync.
      for (let first = true; ; first = false) {
        try {
          if (first) await this.wal.compact({ metadata: file.metadata });
          else await this.wal.sync();
          break;
        } catch (err) {
          await this.disk.parkOnWal(err);
        }
      }
      this.disk.leaveWal();
    }
    this.log.info({ ...this.known.logFields(), index: file.metadata.index, path: file.path, firstIndex: this.wal.firstIndex() }, 'snapshot taken, log compacted');
    this.snapshots.compacted(taken);
    void this.dataSize.refresh();
  }

  // ---------------------------------------------------------------------------------------------------------
  // Stopping.

  private async doStop(): Promise<void> {
    this.log.info({ term: this.known.term, role: this.known.role }, 'stopping');
    if (this.known.role === 'leader' && this.failure === undefined && !this.loopStopped) {
      await this.transfers.handOver(this.rawNode.status(), (to, request) => this.enqueueRequest({ type: 'transfer', to, request }, request));
    }
    this.stopping = true;
    this.cancelTick?.();
    this.cancelLeaseCheck?.();
    this.hub.close();
    this.disk.cancelKvRetries();
    this.corruption.stop();
    this.inbox.notify();
    this.disk.wake();
    await this.loopDone;
    await this.pipeline.settled(); // batches still landing answer their writes before the rest is failed
    this.failEverything(new RaftKvError('UNAVAILABLE', `node ${this.id} stopped (a pending write's outcome is unknown)`, this.known.leaderHint()));
    let firstErr: Error | undefined;
    const closes = [() => this.deps.transport.stop(), () => this.wal.close(), () => this.sm.close(), async () => this.lock?.release()];
    for (const close of closes) {
      try {
        await close();
      } catch (err) {
        this.log.error({ err }, 'error while closing');
        firstErr ??= err instanceof Error ? err : new Error(String(err));
      }
    }
    this.log.info({ term: this.known.term }, 'stopped');
    if (firstErr !== undefined) throw firstErr;
  }

  /** Rejects every request still waiting: queued, proposed, reading, transferring, snapshotting. */
  private failEverything(err: RaftKvError): void {
    for (const item of this.inbox.drain()) {
      switch (item.type) {
        case 'propose':
        case 'read':
        case 'conf-change':
        case 'transfer':
        case 'save-snapshot':
          item.request.reject(err);
          break;
        case 'snapshot':
          this.installer.discard(item.filePath);
          break;
        case 'messages':
        case 'peer-unreachable':
        case 'snapshot-status':
          break;
        default:
          assertNever(item);
      }
    }
    this.proposals.failAll(err);
    this.reads.failAll(err);
    this.transfers.failAll(err);
    this.snapshots.failAll(err);
  }
}
