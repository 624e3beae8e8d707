// The hooks watch and lease code reports through, so that etcd's watcher and lease metrics exist before those
// features do. Only the interfaces and their no-op defaults live here (every layer may import shared/); the
// prom-client implementation is src/server/prom-metrics.ts, which registers etcd's names:
//   etcd_debugging_mvcc_watcher_total (gauge), etcd_debugging_mvcc_watch_stream_total (gauge),
//   etcd_debugging_mvcc_slow_watcher_total (gauge), etcd_debugging_lease_granted_total,
//   etcd_debugging_lease_revoked_total, etcd_debugging_lease_renewed_total (counters),
//   etcd_debugging_server_lease_expired_total (counter).
// The etcd Watch and Lease services report through them (etcd-watch-service.ts, etcd-lease-service.ts); the leader's
// node counts the leases it revoked because they expired (NodeDeps.leaseMetrics, src/node/node.ts checkLeases).

export interface WatchMetrics {
  /** A watcher was created (delta +1) or cancelled/closed (-1). */
  watchersChanged(delta: number): void;
  /** A Watch stream was opened (+1) or closed (-1). */
  watchStreamsChanged(delta: number): void;
  /** Watchers that fell behind (etcd's unsynced/victim watchers): the current count. */
  slowWatchers(count: number): void;
}

export interface LeaseMetrics {
  leaseGranted(): void;
  leaseRevoked(): void;
  leaseRenewed(): void;
  /** The leader found a lease past its deadline and proposed its revoke. */
  leaseExpired(): void;
}

export const NO_WATCH_METRICS: WatchMetrics = {
  watchersChanged: () => undefined,
  watchStreamsChanged: () => undefined,
  slowWatchers: () => undefined,
};

export const NO_LEASE_METRICS: LeaseMetrics = {
  leaseGranted: () => undefined,
  leaseRevoked: () => undefined,
  leaseRenewed: () => undefined,
  leaseExpired: () => undefined,
};
