// What a running node offers to the gRPC services (src/server) and to in-process tests.
import type { Index, NodeId, Role, Term } from '../raft/types.js';
import type { Command, CommandResult, RangeRequest, RangeResult } from '../kv/types.js';

/** Carried by every response, so a user can see a failover happen. */
export interface ResponseHeader {
  readonly memberId: NodeId; // the member that served the request
  readonly term: Term; // its term when it answered
  readonly index: Index; // write: the entry's log index; read: the applied index it was served at
  readonly leaderId: NodeId; // the leader it knows of (0 = none)
}

export interface Member {
  readonly id: NodeId;
  readonly peerAddress: string; // host:port of the peer service
  readonly clientAddress: string; // host:port of the client and admin services
  readonly learner: boolean;
}

export interface NodeStatus {
  readonly id: NodeId;
  readonly clusterId: string;
  readonly clientAddress: string;
  readonly role: Role;
  readonly term: Term;
  readonly leaderId: NodeId;
  readonly commitIndex: Index;
  readonly appliedIndex: Index;
  readonly lastLogIndex: Index;
  readonly snapshotIndex: Index;
  readonly dataSizeBytes: number; // WAL + snapshots + LevelDB on disk
  readonly members: readonly Member[];
  /** Leader only: each follower's match index (lag = lastLogIndex - match). */
  readonly progress: readonly { readonly id: NodeId; readonly match: Index; readonly state: string }[];
}

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

/** Every method rejects with RaftKvError (src/node/errors.ts) for expected failures. */
export interface KvNode {
  readonly id: NodeId;
  write(command: Command, opts: WriteOptions): Promise<{ header: ResponseHeader; result: CommandResult }>;
  read(request: RangeRequest, opts: ReadOptions): Promise<{ header: ResponseHeader; result: RangeResult }>;
  status(): NodeStatus;
  members(): readonly Member[];
  addMember(member: Member, deadlineMs: number): Promise<readonly Member[]>;
  removeMember(id: NodeId, deadlineMs: number): Promise<readonly Member[]>;
  promoteLearner(id: NodeId, deadlineMs: number): Promise<readonly Member[]>;
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
  /** Graceful stop: a leader first hands leadership to an up-to-date follower. */
  stop(): Promise<void>;
}
