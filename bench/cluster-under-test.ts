// A cluster the comparison starts, loads, breaks and stops: etcd (etcd-cluster.ts) or raftkv (raftkv-cluster.ts).
import type { FailoverCluster } from './failover.js';
import type { BenchTarget, TargetName } from './target.js';

export interface ClusterUnderTest extends FailoverCluster {
  readonly name: TargetName;
  readonly version: string;
  readonly clientEndpoints: readonly string[];
  start(timeoutMs?: number): Promise<void>;
  /** Each member's pid (for CPU and RSS), labelled by its client endpoint. */
  pids(): { label: string; pid: number }[];
  makeTarget(): Promise<BenchTarget>;
  stop(): Promise<void>;
}
