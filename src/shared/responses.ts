// What every response carries, and what a member reports of itself: the same for the node, its services and
// its clients.
import type { Index, NodeId, Role, Term } from '../raft/types.js';
import type { Member } from './member.js';

/** Carried by every response, so a user can see a failover happen. */
export interface ResponseHeader {
  readonly memberId: NodeId; // the member that served the request
  readonly term: Term; // its term when it answered
  readonly index: Index; // write: the entry's log index; read: the applied index it was served at
  readonly leaderId: NodeId; // the leader it knows of (0 = none)
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
  readonly revision: number; // the store revision as of appliedIndex (etcd's header revision)
  readonly compactedRevision: number; // reads below it fail with COMPACTED (-1: never compacted)
  readonly lastLogIndex: Index;
  readonly snapshotIndex: Index;
  readonly dataSizeBytes: number; // WAL + snapshots + LevelDB on disk
  readonly backendSizeBytes?: number; // the state machine's LevelDB store alone (what --quota-backend-bytes limits)
  readonly diskFull?: boolean; // writes are refused because the WAL or LevelDB found the disk full
  readonly members: readonly Member[];
  /** Leader only: each follower's match index (lag = lastLogIndex - match). */
  readonly progress: readonly { readonly id: NodeId; readonly match: Index; readonly state: string }[];
}
