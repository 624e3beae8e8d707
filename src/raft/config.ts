// The core's configuration. Time is counted in ticks; randomness is the injected Rng.
import type { Index, NodeId, Rng } from './types.js';
import { assert } from './util.js';

/** Deliberate protocol violations, for proving that the simulation's checkers can fail. Never set in production. */
export type TestingFault = 'commit-old-term' | 'vote-without-up-to-date-check';

export type CommitBroadcast = 'eager' | 'lazy';

export interface RaftConfig {
  id: NodeId;
  electionTimeoutTicks: number; // randomized election timeout drawn from [e, 2e)
  heartbeatIntervalTicks: number; // leader heartbeat period
  preVote: boolean; // thesis §9.6
  checkQuorum: boolean; // leader steps down without a quorum for an election timeout; enables the leader lease
  maxSizePerMsgBytes: number; // max bytes of entries in one 'app' message (at least one entry is always sent)
  maxInflightMsgs: number; // pipelined 'app' messages in flight per follower in replicate state
  maxUncommittedEntriesBytes: number; // proposals refused past this (UNCOMMITTED_LIMIT)
  applied: Index; // last applied index on restart (from the state machine)
  /** Bytes of committed entries handed out in one Ready (at least one entry); default 64 MiB. */
  maxCommittedSizePerReadyBytes?: number;
  /**
   * How followers learn that the commit index advanced. 'lazy' (default): with the next append or heartbeat
   * (at most heartbeatIntervalTicks later), as hashicorp/raft does; 'eager': a message to every follower at
   * once, as etcd's raft does. Lazy saves each follower a wake-up, an apply and an acknowledgement per commit.
   */
  commitBroadcast: CommitBroadcast;
  rng: Rng;
  /** TEST ONLY: break §5.4.2 or §5.4.1 on purpose so the simulation can show its checkers fail. */
  testingFault?: TestingFault;
}

export function defaultRaftConfig(id: NodeId, rng: Rng): RaftConfig {
  return {
    id,
    electionTimeoutTicks: 10,
    heartbeatIntervalTicks: 1,
    preVote: true,
    checkQuorum: true,
    maxSizePerMsgBytes: 1024 * 1024,
    maxInflightMsgs: 256,
    maxUncommittedEntriesBytes: 64 * 1024 * 1024,
    applied: 0,
    commitBroadcast: 'lazy',
    rng,
  };
}

export function validateRaftConfig(c: RaftConfig): void {
  assert(Number.isInteger(c.id) && c.id > 0, `config: id must be a positive integer, got ${c.id}`);
  assert(c.heartbeatIntervalTicks >= 1, 'config: heartbeatIntervalTicks must be >= 1');
  assert(c.electionTimeoutTicks > c.heartbeatIntervalTicks, 'config: electionTimeoutTicks must exceed heartbeatIntervalTicks');
  assert(c.maxInflightMsgs >= 1, 'config: maxInflightMsgs must be >= 1');
  assert(c.maxSizePerMsgBytes >= 0, 'config: maxSizePerMsgBytes must be >= 0');
  assert(c.maxUncommittedEntriesBytes > 0, 'config: maxUncommittedEntriesBytes must be > 0');
  assert(c.applied >= 0, 'config: applied must be >= 0');
}
