// A node's configuration: what `raftkv serve` flags and config files turn into (parsed in src/cli).
import type { CommitBroadcast } from '../raft/config.js';
import type { NodeId } from '../raft/types.js';
import type { KvLimits } from '../kv/types.js';
import { DEFAULT_KV_LIMITS } from '../kv/types.js';
import { RaftKvError } from '../shared/errors.js';

// How often a member rescans its state machine against the digest apply keeps (0: never). A scan reads every
// key once (about a second per million keys here), so hourly costs well under 0.1% of one core.
export const DEFAULT_CORRUPT_CHECK_INTERVAL_MS = 60 * 60_000;

export interface PeerConfig {
  readonly id: NodeId;
  readonly peerAddress: string; // host:port of its peer service
  readonly clientAddress: string; // host:port of its client/admin service
}

export interface NodeConfig {
  readonly id: NodeId;
  readonly clusterId: string; // every member and data directory carries it; mismatches are refused
  readonly dataDir: string; // holds node.json (identity), wal/, snap/, kv/
  readonly peerListen: string; // host:port the peer service binds
  readonly clientListen: string; // host:port the client/admin service binds (may equal peerListen)
  readonly advertisePeer: string; // host:port other members dial for the peer service
  readonly advertiseClient: string; // host:port clients are redirected to
  /**
   * 'new': bootstrap a new cluster with `initialMembers` as its voters (only on an empty data directory).
   * 'existing': join a running cluster (after `member add`); the log and membership come from the leader.
   */
  readonly initialClusterState: 'new' | 'existing';
  readonly initialMembers: readonly PeerConfig[];
  readonly tickIntervalMs: number; // default 100 (etcd's --heartbeat-interval)
  readonly electionTimeoutTicks: number; // default 10 (1000 ms, etcd's default --election-timeout)
  readonly heartbeatIntervalTicks: number; // default 1
  readonly snapshotEveryEntries: number; // default 10_000 (etcd's --snapshot-count flag; etcd 3.4 defaults to 100_000)
  readonly snapshotsKept: number; // default 3
  readonly walSegmentSizeBytes: number; // default 64 MiB
  readonly maxInboxItems: number; // bounded driver inbox; past it: RESOURCE_EXHAUSTED. default 10_000
  readonly maxPendingProposals: number; // proposals awaiting apply; default 10_000
  readonly maxPendingReads: number; // linearizable reads awaiting their read index; default 10_000
  readonly maxRequestBytes: number; // gRPC max receive message size; default 2 MiB
  readonly kvLimits: KvLimits;
  readonly logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  readonly logPretty: boolean; // human-readable logs instead of JSON lines
  /** Periodic rescan of the state machine against its digest, ms (0: off). Default DEFAULT_CORRUPT_CHECK_INTERVAL_MS. */
  readonly corruptCheckIntervalMs?: number;
  /** Scan the whole state machine against its digest before serving (default true; ~5 s per million keys here). */
  readonly initialCorruptCheck?: boolean;
  /** etcd's --auto-compaction-mode: what --auto-compaction-retention counts (src/server/auto-compactor.ts). */
  readonly autoCompactionMode?: 'periodic' | 'revision';
  /** periodic: ms of history kept; revision: revisions kept; 0 (the default): no automatic compaction. */
  readonly autoCompactionRetention?: number;
  /** etcd's --experimental-watch-progress-notify-interval, ms (default 10 minutes). */
  readonly watchProgressNotifyIntervalMs?: number;
  /**
   * --listen-metrics: the http:// URL (host and port, no path) the metrics, health and dashboard server binds
   * (src/server/metrics-server.ts). Absent: none is started. Not the node's: only `raftkv serve` reads it.
   */
  readonly listenMetrics?: string;
  /** etcd's --force-new-cluster: start as the only member of the cluster, from this member's data (force-new-cluster.ts). */
  readonly forceNewCluster?: boolean;
  /** etcd's --experimental-warning-apply-duration, ms: an apply batch or a read slower than this is warned about (default 100). */
  readonly warningApplyDurationMs?: number;
  /**
   * How followers learn that the commit index advanced (RaftConfig.commitBroadcast): 'eager' (the default, etcd's
   * raft) tells them at once, so a write or watch served by a follower waits for no heartbeat; 'lazy' waits for the
   * next append or heartbeat and saves each follower a message per commit. --commit-broadcast.
   */
  readonly commitBroadcast?: CommitBroadcast;
  /** etcd's --quota-backend-bytes: past it the NOSPACE alarm is raised (src/server/space-alarm.ts); 0 = etcd's 2 GiB, < 0 = none. */
  readonly quotaBackendBytes?: number;
}

/** etcd's raft tells followers of a commit at once: a follower-served write or watch then waits for no heartbeat. */
export const DEFAULT_COMMIT_BROADCAST: CommitBroadcast = 'eager';

/** Every setting that has a default, with it: `raftkv serve`, the tests and the benchmarks start from these. */
export const NODE_CONFIG_DEFAULTS = {
  tickIntervalMs: 100, // etcd's --heartbeat-interval
  electionTimeoutTicks: 10, // 1 s: etcd's default --election-timeout
  heartbeatIntervalTicks: 1,
  snapshotEveryEntries: 10_000, // a tenth of etcd 3.4's 100_000: the log since the last snapshot is held decoded in memory (wal-storage.ts)
  snapshotsKept: 3,
  walSegmentSizeBytes: 64 * 1024 * 1024,
  maxInboxItems: 10_000,
  maxPendingProposals: 10_000,
  maxPendingReads: 10_000,
  maxRequestBytes: 2 * 1024 * 1024, // etcd's --max-request-bytes is 1.5 MiB; a value up to 1 MiB plus its key fits
  kvLimits: DEFAULT_KV_LIMITS,
  logLevel: 'info',
  logPretty: false,
  corruptCheckIntervalMs: DEFAULT_CORRUPT_CHECK_INTERVAL_MS,
  initialCorruptCheck: true,
} as const satisfies Partial<NodeConfig>;

/** Refuses a config the node cannot run (INVALID_ARGUMENT naming the field). */
export function validateNodeConfig(c: NodeConfig): void {
  const bad = (msg: string): never => {
    throw new RaftKvError('INVALID_ARGUMENT', `node config: ${msg}`);
  };
  if (!Number.isInteger(c.id) || c.id <= 0 || c.id >= 2 ** 31) bad(`id must be a positive integer below 2^31, got ${c.id}`);
  if (c.clusterId === '') bad('clusterId must not be empty');
  if (c.dataDir === '') bad('dataDir must not be empty');
  if (!(c.tickIntervalMs > 0)) bad(`tickIntervalMs must be positive, got ${c.tickIntervalMs}`);
  if (!(c.heartbeatIntervalTicks >= 1)) bad('heartbeatIntervalTicks must be >= 1');
  if (!(c.electionTimeoutTicks > c.heartbeatIntervalTicks)) bad('electionTimeoutTicks must exceed heartbeatIntervalTicks');
  if (!(c.snapshotEveryEntries >= 1)) bad('snapshotEveryEntries must be >= 1');
  if (!(c.snapshotsKept >= 1)) bad('snapshotsKept must be >= 1');
  if (!(c.maxInboxItems >= 1)) bad('maxInboxItems must be >= 1');
  if (!(c.maxPendingProposals >= 1)) bad('maxPendingProposals must be >= 1');
  if (!(c.maxPendingReads >= 1)) bad('maxPendingReads must be >= 1');
  if (c.initialClusterState === 'new' && !c.initialMembers.some((m) => m.id === c.id)) {
    bad(`initialMembers must include this node (${c.id}) when initialClusterState is 'new'`);
  }
  const ids = new Set<NodeId>();
  for (const m of c.initialMembers) {
    if (!Number.isInteger(m.id) || m.id <= 0) bad(`initial member id ${m.id} is not a positive integer`);
    if (ids.has(m.id)) bad(`initial member ${m.id} listed twice`);
    ids.add(m.id);
  }
}
