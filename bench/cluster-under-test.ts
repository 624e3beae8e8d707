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
  /** A client that talks to member `index` only (serializable reads show that member's own state). */
  targetFor(index: number): Promise<BenchTarget>;
  /** Adds a new member as a learner (member add), starts it on an empty data dir, returns its index. */
  addLearner(): Promise<number>;
  /** Member `index`'s latest snapshot index, where the system reports it (raftkv status), for evidence of a snapshot install. */
  snapshotIndexOf?(index: number): Promise<number>;
  stop(): Promise<void>;
}
