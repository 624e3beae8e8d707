// What a running node offers to the gRPC services (src/server) and to in-process tests.
import type { Index, NodeId } from '../raft/types.js';
import type { AlarmMember, Command, CommandResult, Lease, RangeRequest, RangeResult, TxnOp, TxnResult } from '../kv/types.js';
import type { AuthView } from '../kv/auth-store.js';
import type { WatchHub } from '../watch/watch-hub.js';
import type { Member } from '../shared/member.js';
import type { NodeStatus, ResponseHeader } from '../shared/responses.js';

export type { Member } from '../shared/member.js';
export type { NodeStatus, ResponseHeader } from '../shared/responses.js';

export interface WriteOptions {
  readonly clientId: string; // "" = no session (no deduplication of retries)
  readonly seq: number; // per-client sequence number; a retry reuses it
  readonly deadlineMs: number; // absolute deadline (Date.now() clock)
}

export interface ReadOptions {
  readonly serializable: boolean; // true: serve from local state, possibly stale, on any member
  readonly deadlineMs: number;
}

/**
 * The key-space digest of the state machine at an applied index (src/kv/key-space-digest.ts): a function of the
 * log prefix, so every healthy member has the same one at the same index (etcd's HashKV at a revision).
 */
export interface KeySpaceDigestAt {
  readonly memberId: NodeId;
  readonly index: Index; // the applied index it describes
  readonly lane1: number; // uint32
  readonly lane2: number; // uint32
  readonly count: number; // live keys
}

export type WriteReply = { header: ResponseHeader; result: CommandResult };
export type ReadReply = { header: ResponseHeader; result: RangeResult };
export type ReadTxnReply = { header: ResponseHeader; result: TxnResult };
/** A membership change's answer: the member table once the change is applied. */
export type AdminReply = readonly Member[];

/** What a defragmentation gave back: the state machine's bytes on disk before and after it. */
export interface DefragmentResult {
  readonly beforeBytes: number;
  readonly afterBytes: number;
  readonly tookMs: number;
}

/** Every method rejects with RaftKvError (src/shared/errors.ts) for expected failures. */
export interface KvNode {
  readonly id: NodeId;
  write(command: Command, opts: WriteOptions): Promise<WriteReply>;
  read(request: RangeRequest, opts: ReadOptions): Promise<ReadReply>;
  /**
   * A read-only txn (etcd's isTxnReadonly; INVALID_ARGUMENT for one that writes) served as a Range is: after
   * ReadIndex, or locally when serializable; the same answer the log would give at that revision.
   */
  readTxn(txn: TxnOp, opts: ReadOptions): Promise<ReadTxnReply>;
  status(): NodeStatus;
  members(): readonly Member[];
  addMember(member: Member, deadlineMs: number): Promise<readonly Member[]>;
  removeMember(id: NodeId, deadlineMs: number): Promise<readonly Member[]>;
  promoteLearner(id: NodeId, deadlineMs: number): Promise<readonly Member[]>;
  /** New addresses for a member (etcd's MemberUpdate; a member publishing its client address); its role stays. */
  updateMember(member: Member, deadlineMs: number): Promise<readonly Member[]>;
  transferLeadership(to: NodeId, deadlineMs: number): Promise<void>;
  /** Writes a fresh snapshot of the state machine and returns its file path (streamed by the admin service). */
  saveSnapshot(): Promise<string>;
  /**
   * The digest at applied index `index` (0: the current applied index). Waits until `index` is applied, up to
   * deadlineMs (then DEADLINE_EXCEEDED); NOT_FOUND when this member no longer remembers that index.
   */
  keySpaceDigest(index: Index, deadlineMs: number): Promise<KeySpaceDigestAt>;
  /**
   * The CORRUPT alarm: this member's state machine disagrees with the cluster (or with its own digest). It stops
   * serving: the loop dies with DATA_CORRUPTION (`raftkv serve` then exits), naming `reason` and the remedy.
   */
  raiseCorrupt(reason: string): void;
  /**
   * Resolves once this member's compaction at `revision` (applied through the log) has removed the history it
   * compacts from disk (etcd's `physical`); DEADLINE_EXCEEDED past deadlineMs.
   */
  whenCompacted(revision: number, deadlineMs: number): Promise<void>;
  /** Resolves once this member has applied `index` (a write forwarded to the leader is then readable here). */
  waitApplied(index: Index, deadlineMs: number): Promise<void>;
  /** This member's state machine gives the space of deleted records back to the file system (etcd's Defragment). */
  /** This member's watchers, fed by its applied state (any member serves watches). */
  watchHub(): WatchHub;
  /**
   * A keep-alive (etcd's LeaseRenew), on the leader only (NOT_LEADER elsewhere: the caller forwards it): the
   * lease's TTL in seconds, or undefined when it does not exist or has expired (etcd answers TTL 0).
   */
  leaseKeepAlive(id: number, deadlineMs: number): Promise<number | undefined>;
  /** etcd's LeaseTimeToLive, on the leader only (NOT_LEADER elsewhere); undefined when the lease does not exist. */
  leaseTimeToLive(id: number, withKeys: boolean, deadlineMs: number): Promise<LeaseTimeToLive | undefined>;
  /** The leases as of this member's applied index (etcd's LeaseLeases). */
  leases(): readonly Lease[];
  /** The keys attached to lease `id` as of this member's applied index (none for a lease it does not hold). */
  leaseKeys(id: number): Promise<readonly Uint8Array[]>;
  /** etcd's minimum TTL: a grant asking for less gets this (1.5 election timeouts in whole seconds). */
  readonly minLeaseTtlSeconds: number;
  defragment(): Promise<DefragmentResult>;
  /** The cluster's raised alarms as of this member's applied index (etcd's alarm list; raised through the log). */
  alarms(): readonly AlarmMember[];
  /** The auth store as of this member's applied index (users, roles, on/off; changed through the log). */
  auth(): AuthView;
  /** Graceful stop: a leader first hands leadership to an up-to-date follower. */
  stop(): Promise<void>;
}

export interface LeaseTimeToLive {
  readonly id: number;
  readonly ttlSeconds: number; // remaining, rounded up
  readonly grantedTtlSeconds: number;
  readonly keys: readonly Uint8Array[]; // empty unless asked for
}
