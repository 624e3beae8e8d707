// What the node tells an observer about itself: leader changes, proposals, fsyncs, backend commits, applies,
// late heartbeats and peer round trips. The node core knows no metrics library: `raftkv serve` passes an
// implementation on prom-client (src/server/prom-metrics.ts); everything else gets NO_NODE_METRICS. The figures a
// scrape can read from status() (term, commit and applied index, role, followers' match) are not sent here.
// Every method is called on the loop or the apply chain and must return at once (no I/O, never throws).
import type { NodeId, Term } from '../raft/types.js';

export interface NodeMetrics {
  /** The leader this member knows changed (NONE = 0: it knows none). */
  onLeaderChange(leader: NodeId, term: Term): void;
  /** A write or membership change took a slot (etcd's proposals_pending goes up). */
  onProposalStarted(): void;
  /**
   * That proposal settled. `failed`: it got no outcome from the log (deadline, dropped by a new leader, the
   * member stopped or lost leadership): etcd's proposals_failed_total. An error the state machine decided on
   * apply (compacted, duplicate key, ...) is an outcome, not a failure.
   */
  onProposalSettled(failed: boolean): void;
  /** One WAL fdatasync took durationMs (etcd_disk_wal_fsync_duration_seconds). */
  onWalFsync(durationMs: number): void;
  /** One LevelDB batch of applied writes took durationMs (etcd_disk_backend_commit_duration_seconds). */
  onBackendCommit(durationMs: number): void;
  /** One batch of `entries` committed entries was applied in durationMs; `slow`: over SLOW_APPLY_MS. */
  onApply(entries: number, durationMs: number, slow: boolean): void;
  /** A leader sent `to` a heartbeat later than twice the heartbeat interval (etcd's heartbeat_send_failures_total). */
  onHeartbeatLate(to: NodeId): void;
  /** A heartbeat to `peer` was answered after durationMs (etcd_network_peer_round_trip_time_seconds; see heartbeat-monitor.ts). */
  onPeerRoundTrip(peer: NodeId, durationMs: number): void;
}

/** Discards everything: the default for in-process nodes and tests. */
export const NO_NODE_METRICS: NodeMetrics = {
  onLeaderChange: () => undefined,
  onProposalStarted: () => undefined,
  onProposalSettled: () => undefined,
  onWalFsync: () => undefined,
  onBackendCommit: () => undefined,
  onApply: () => undefined,
  onHeartbeatLate: () => undefined,
  onPeerRoundTrip: () => undefined,
};
