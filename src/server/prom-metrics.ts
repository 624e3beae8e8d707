// The member's Prometheus registry (prom-client): etcd's metric names and types where the meaning is the same,
// raftkv's own under raftkv_. It implements the node's observer (NodeMetrics) and the watch and lease hooks
// (shared/watch-lease-metrics.ts); what status() already knows (leader, role, term, indexes, revision, sizes,
// followers' match) is read at each scrape instead of being pushed.
//
// etcd types kept as etcd has them, even where the name says otherwise: etcd_server_proposals_committed_total
// and _applied_total are gauges holding the commit and applied index (so they never go down on a restart that
// replays the log), proposals_pending a gauge, proposals_failed_total a counter. The duration histograms use
// etcd's buckets.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, exponentialBuckets } from 'prom-client';
import type { NodeStatus } from '../node/api.js';
import type { NodeMetrics } from '../node/node-metrics.js';
import type { NodeId, Term } from '../raft/types.js';
import { NONE } from '../raft/types.js';
import type { LeaseMetrics, WatchMetrics } from '../shared/watch-lease-metrics.js';

/** Roles as raftkv_role's `role` label takes them (one is 1, the others 0). */
const ROLES = ['follower', 'pre-candidate', 'candidate', 'leader'] as const;

export interface PromMetricsOptions {
  /** The member's status for a scrape; undefined while the node is starting. */
  readonly status: () => NodeStatus | undefined;
  /** Process and Node.js runtime metrics (process_*, nodejs_*), as etcd exposes process_* and go_*. Default true. */
  readonly defaultMetrics?: boolean;
}

export class PromMetrics implements NodeMetrics, WatchMetrics, LeaseMetrics {
  readonly registry = new Registry();
  private readonly leaderChanges: Counter;
  private readonly proposalsPending: Gauge;
  private readonly proposalsFailed: Counter;
  private readonly walFsync: Histogram;
  private readonly backendCommit: Histogram;
  private readonly peerRtt: Histogram<'To'>;
  private readonly heartbeatFailures: Counter;
  private readonly slowApplies: Counter;
  private readonly applyDuration: Histogram;
  private readonly watchers: Gauge;
  private readonly watchStreams: Gauge;
  private readonly slowWatcherGauge: Gauge;
  private readonly leasesGranted: Counter;
  private readonly leasesRevoked: Counter;
  private readonly leasesRenewed: Counter;
  private readonly leasesExpired: Counter;
  private readonly leaderListeners: ((leader: NodeId, term: Term) => void)[] = [];

  constructor(opts: PromMetricsOptions) {
    const registers = [this.registry];
    const status = opts.status;
    // Reads status() once per scrape for every gauge below (a scrape calls each collect in turn).
    const fromStatus = (name: string, help: string, value: (s: NodeStatus) => number, whenStarting = 0): void => {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          const s = status();
          this.set(s === undefined ? whenStarting : value(s));
        },
      });
    };
    fromStatus('etcd_server_has_leader', 'Whether or not a leader exists. 1 is existence, 0 is not.', (s) => (s.leaderId !== NONE ? 1 : 0));
    fromStatus('etcd_server_is_leader', 'Whether or not this member is a leader. 1 if is, 0 otherwise.', (s) => (s.role === 'leader' ? 1 : 0));
    fromStatus('etcd_server_proposals_committed_total', 'The total number of consensus proposals committed.', (s) => s.commitIndex);
    fromStatus('etcd_server_proposals_applied_total', 'The total number of consensus proposals applied.', (s) => s.appliedIndex);
    fromStatus('etcd_mvcc_db_total_size_in_bytes', 'Total size of the underlying database physically allocated in bytes (raftkv: the LevelDB store).', (s) => s.backendSizeBytes ?? s.dataSizeBytes);
    fromStatus('etcd_debugging_mvcc_current_revision', 'The current revision of store.', (s) => s.revision);
    fromStatus('etcd_debugging_mvcc_compact_revision', 'The revision of the last compaction in store.', (s) => s.compactedRevision);
    fromStatus('raftkv_term', 'The Raft term this member is in.', (s) => s.term);
    fromStatus('raftkv_leader_id', 'The member id of the leader this member knows (0: none).', (s) => s.leaderId);
    fromStatus('raftkv_commit_index', 'The highest log index this member knows to be committed.', (s) => s.commitIndex);
    fromStatus('raftkv_applied_index', 'The highest log index applied to the state machine here.', (s) => s.appliedIndex);
    fromStatus('raftkv_last_log_index', 'The index of the last entry in this member log.', (s) => s.lastLogIndex);
    fromStatus('raftkv_snapshot_index', 'The index of the snapshot the log starts after.', (s) => s.snapshotIndex);
    fromStatus('raftkv_data_dir_size_bytes', 'Bytes on disk: WAL, snapshots and LevelDB.', (s) => s.dataSizeBytes);
    fromStatus('raftkv_members', 'Members in the member table (voters and learners).', (s) => s.members.length);
    new Gauge({
      name: 'raftkv_role',
      help: 'This member Raft role: 1 for the role it has, 0 for the others.',
      labelNames: ['role'],
      registers,
      collect() {
        const s = status();
        for (const r of ROLES) this.set({ role: r }, s?.role === r ? 1 : 0);
      },
    });
    const follower = (name: string, help: string, value: (s: NodeStatus, match: number) => number): void => {
      new Gauge({
        name,
        help,
        labelNames: ['follower'],
        registers,
        collect() {
          this.reset(); // a member that stops leading reports no followers
          const s = status();
          if (s === undefined || s.role !== 'leader') return;
          for (const p of s.progress) this.set({ follower: String(p.id) }, value(s, p.match));
        },
      });
    };
    follower('raftkv_follower_match_index', 'Leader only: the highest log index known to be replicated on each follower.', (_s, match) => match);
    follower('raftkv_follower_lag_entries', 'Leader only: entries each follower is behind the leader last log index.', (s, match) => Math.max(0, s.lastLogIndex - match));

    this.leaderChanges = new Counter({ name: 'etcd_server_leader_changes_seen_total', help: 'The number of leader changes seen.', registers });
    this.proposalsPending = new Gauge({ name: 'etcd_server_proposals_pending', help: 'The current number of pending proposals to commit.', registers });
    this.proposalsFailed = new Counter({ name: 'etcd_server_proposals_failed_total', help: 'The total number of failed proposals seen.', registers });
    this.heartbeatFailures = new Counter({ name: 'etcd_server_heartbeat_send_failures_total', help: 'The total number of leader heartbeat send failures (likely overloaded from slow disk).', registers });
    this.slowApplies = new Counter({ name: 'etcd_server_slow_apply_total', help: 'The total number of slow apply requests (likely overloaded from slow disk).', registers });
    // etcd: prometheus.ExponentialBuckets(0.001, 2, 14): 1 ms .. 8 s.
    this.walFsync = new Histogram({ name: 'etcd_disk_wal_fsync_duration_seconds', help: 'The latency distributions of fsync called by WAL.', buckets: exponentialBuckets(0.001, 2, 14), registers });
    this.backendCommit = new Histogram({ name: 'etcd_disk_backend_commit_duration_seconds', help: 'The latency distributions of commit called by backend.', buckets: exponentialBuckets(0.001, 2, 14), registers });
    // etcd: prometheus.ExponentialBuckets(0.0001, 2, 16): 0.1 ms .. 3.3 s.
    this.peerRtt = new Histogram({
      name: 'etcd_network_peer_round_trip_time_seconds',
      help: 'Round-Trip-Time histogram between peers (raftkv: a heartbeat to its answer, including the follower loop turn).',
      labelNames: ['To'],
      buckets: exponentialBuckets(0.0001, 2, 16),
      registers,
    });
    this.applyDuration = new Histogram({ name: 'raftkv_apply_batch_duration_seconds', help: 'The time one batch of committed entries took to apply.', buckets: exponentialBuckets(0.0001, 2, 18), registers });
    this.watchers = new Gauge({ name: 'etcd_debugging_mvcc_watcher_total', help: 'Total number of watchers.', registers });
    this.watchStreams = new Gauge({ name: 'etcd_debugging_mvcc_watch_stream_total', help: 'Total number of watch streams.', registers });
    this.slowWatcherGauge = new Gauge({ name: 'etcd_debugging_mvcc_slow_watcher_total', help: 'Total number of unsynced slow watchers.', registers });
    this.leasesGranted = new Counter({ name: 'etcd_debugging_lease_granted_total', help: 'The total number of granted leases.', registers });
    this.leasesRevoked = new Counter({ name: 'etcd_debugging_lease_revoked_total', help: 'The total number of revoked leases.', registers });
    this.leasesRenewed = new Counter({ name: 'etcd_debugging_lease_renewed_total', help: 'The number of renewed leases seen by the leader.', registers });
    this.leasesExpired = new Counter({ name: 'etcd_debugging_server_lease_expired_total', help: 'The total number of expired leases.', registers });
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  /** Calls `fn` on every leader change this member sees (the dashboard's timeline). */
  onLeaderChangeListener(fn: (leader: NodeId, term: Term) => void): void {
    this.leaderListeners.push(fn);
  }

  // NodeMetrics
  onLeaderChange(leader: NodeId, term: Term): void {
    if (leader !== NONE) this.leaderChanges.inc(); // etcd counts a change to a known leader
    for (const fn of this.leaderListeners) fn(leader, term);
  }
  onProposalStarted(): void {
    this.proposalsPending.inc();
  }
  onProposalSettled(failed: boolean): void {
    this.proposalsPending.dec();
    if (failed) this.proposalsFailed.inc();
  }
  onWalFsync(durationMs: number): void {
    this.walFsync.observe(durationMs / 1000);
  }
  onBackendCommit(durationMs: number): void {
    this.backendCommit.observe(durationMs / 1000);
  }
  /** A read over the slow-request threshold (slow-request-log.ts): etcd counts it as a slow apply. */
  onSlowRead(): void {
    this.slowApplies.inc();
  }

  onApply(_entries: number, durationMs: number, slow: boolean): void {
    this.applyDuration.observe(durationMs / 1000);
    if (slow) this.slowApplies.inc();
  }
  onHeartbeatLate(_to: NodeId): void {
    this.heartbeatFailures.inc();
  }
  onPeerRoundTrip(peer: NodeId, durationMs: number): void {
    this.peerRtt.observe({ To: String(peer) }, durationMs / 1000);
  }

  // WatchMetrics
  watchersChanged(delta: number): void {
    this.watchers.inc(delta);
  }
  watchStreamsChanged(delta: number): void {
    this.watchStreams.inc(delta);
  }
  slowWatchers(count: number): void {
    this.slowWatcherGauge.set(count);
  }

  // LeaseMetrics
  leaseGranted(): void {
    this.leasesGranted.inc();
  }
  leaseRevoked(): void {
    this.leasesRevoked.inc();
  }
  leaseRenewed(): void {
    this.leasesRenewed.inc();
  }
  leaseExpired(): void {
    this.leasesExpired.inc();
  }
}
