// The Raft core's vocabulary: entries, hard state, snapshots, messages, Ready.
// Everything here is plain data; the core imports nothing outside src/raft.

/** A member id. 0 means "none" (no vote, no leader). Ids are positive integers below 2^31. */
export type NodeId = number;
export const NONE: NodeId = 0;

/** A log position (1-based; 0 is the empty log's sentinel). */
export type Index = number;
/** A Raft term (monotonic, starts at 0). */
export type Term = number;

export type EntryType = 'normal' | 'conf-change';

export interface Entry {
  readonly term: Term;
  readonly index: Index;
  readonly type: EntryType;
  /** Normal: the state machine's command bytes (empty = the leader's no-op). Conf-change: encodeConfChange(). */
  readonly data: Uint8Array;
}

/** The state that must be durable before any message that depends on it is sent (§5.1, Figure 2). */
export interface HardState {
  readonly term: Term;
  readonly vote: NodeId; // candidate voted for in `term`, NONE if none
  readonly commit: Index; // highest index known committed (durability optional, but never regresses)
}

export const EMPTY_HARD_STATE: HardState = { term: 0, vote: NONE, commit: 0 };

/** The membership: voters count toward quorums, learners only receive the log. */
export interface ConfState {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
}

/** 'update': the member's addresses change (its context), not the configuration (etcd's ConfChangeUpdateNode). */
export type ConfChangeType = 'add-voter' | 'add-learner' | 'remove' | 'update';

/** One membership change. Promoting a learner is 'add-voter' of an existing learner. */
export interface ConfChange {
  readonly type: ConfChangeType;
  readonly nodeId: NodeId;
  /** Opaque to the core: the node's client/peer addresses, encoded by the application. */
  readonly context: Uint8Array;
}

export interface SnapshotMetadata {
  readonly index: Index; // last entry the snapshot covers
  readonly term: Term; // term of that entry
  readonly confState: ConfState; // membership as of `index`
}

/**
 * A snapshot as the core sees it: metadata only. The payload (the state machine's data) is held and
 * moved by the application (a file on disk, streamed in chunks by the transport) and never enters the core.
 */
export interface Snapshot {
  readonly metadata: SnapshotMetadata;
}

export const EMPTY_SNAPSHOT: Snapshot = { metadata: { index: 0, term: 0, confState: { voters: [], learners: [] } } };

export type Role = 'follower' | 'pre-candidate' | 'candidate' | 'leader';

/** State that need not be persisted, reported in Ready when it changes. */
export interface SoftState {
  readonly leader: NodeId;
  readonly role: Role;
}

/** A linearizable read request that became ready: serve it once applied >= index (ReadIndex, §6.4). */
export interface ReadState {
  readonly index: Index;
  readonly context: Uint8Array; // the caller's request id, opaque to the core
}

interface MessageBase {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: Term;
}

/** AppendEntries (§5.3). */
export interface AppendMessage extends MessageBase {
  readonly type: 'app';
  readonly index: Index; // prevLogIndex
  readonly logTerm: Term; // prevLogTerm
  readonly entries: readonly Entry[];
  readonly commit: Index; // leaderCommit
}

export interface AppendResponse extends MessageBase {
  readonly type: 'app-resp';
  /** On success: the last index now matching the leader. On reject: the rejected prevLogIndex. */
  readonly index: Index;
  readonly reject: boolean;
  /** On reject: the follower's hint for fast back-off (its last index, or the first index of the conflicting term). */
  readonly rejectHint: Index;
  /** On reject: the follower's term at rejectHint (lets the leader skip a whole term). */
  readonly logTerm: Term;
}

/** RequestVote (§5.2) and its pre-vote twin (thesis §9.6). */
export interface VoteMessage extends MessageBase {
  readonly type: 'vote' | 'pre-vote';
  readonly index: Index; // candidate's last log index
  readonly logTerm: Term; // candidate's last log term
  /** True when the campaign follows a leadership transfer: voters skip the check-quorum lease. */
  readonly transfer: boolean;
}

export interface VoteResponse extends MessageBase {
  readonly type: 'vote-resp' | 'pre-vote-resp';
  readonly reject: boolean;
}

export interface HeartbeatMessage extends MessageBase {
  readonly type: 'heartbeat';
  readonly commit: Index; // min(leader commit, follower match): never claims commit beyond what the follower has
  readonly context: Uint8Array; // ReadIndex round id, empty if none
}

export interface HeartbeatResponse extends MessageBase {
  readonly type: 'heartbeat-resp';
  readonly context: Uint8Array;
}

/** InstallSnapshot (§7): the payload travels beside this message, out of band. */
export interface SnapshotMessage extends MessageBase {
  readonly type: 'snap';
  readonly snapshot: Snapshot;
}

/** Leadership transfer: tells an up-to-date follower to campaign at once (thesis §3.10). */
export interface TimeoutNowMessage extends MessageBase {
  readonly type: 'timeout-now';
}

/** A follower asking the leader for a read index on behalf of its client. */
export interface ReadIndexMessage extends MessageBase {
  readonly type: 'read-index';
  readonly context: Uint8Array;
}

export interface ReadIndexResponse extends MessageBase {
  readonly type: 'read-index-resp';
  readonly index: Index; // 0 with reject
  readonly reject: boolean;
  readonly context: Uint8Array;
}

/** Every message that crosses the network between members. */
export type Message =
  | AppendMessage
  | AppendResponse
  | VoteMessage
  | VoteResponse
  | HeartbeatMessage
  | HeartbeatResponse
  | SnapshotMessage
  | TimeoutNowMessage
  | ReadIndexMessage
  | ReadIndexResponse;

export type MessageType = Message['type'];

/**
 * What the core asks of its driver after some steps. The driver must, in order:
 * 1. send `messages` (they do not depend on this Ready's persistence; a leader's appends go out in parallel
 *    with its own disk write);
 * 2. install `snapshot` if any, append `entries` (truncating any conflicting suffix) and write `hardState`,
 *    syncing to disk when `mustSync`;
 * 3. only then send `messagesAfterPersist` (votes, append acknowledgements: they promise durable state);
 * 4. apply `committedEntries` in order and serve `readStates` whose index has been applied;
 * 5. call `advance(ready)`.
 */
export interface Ready {
  readonly softState: SoftState | undefined; // set when leader or role changed
  readonly hardState: HardState | undefined; // set when it changed
  readonly snapshot: Snapshot | undefined; // to install before `entries`
  readonly entries: readonly Entry[]; // to append to stable storage
  readonly committedEntries: readonly Entry[]; // to apply, all <= a durable commit on a quorum
  readonly messages: readonly Message[];
  readonly messagesAfterPersist: readonly Message[];
  readonly readStates: readonly ReadState[];
  readonly mustSync: boolean; // true when term, vote or entries changed
}

/**
 * The stable part of the log as the core reads it (synchronously). Implemented by MemoryStorage and by the
 * WAL-backed storage. Entries below firstIndex() are compacted into snapshot().
 */
export interface LogStorage {
  initialState(): { hardState: HardState; confState: ConfState };
  /** Entries [lo, hi), at most maxBytes (always at least one if any). Throws CompactedError below firstIndex. */
  entries(lo: Index, hi: Index, maxBytes: number): Entry[];
  /** Term of entry i, for firstIndex()-1 <= i <= lastIndex(). Throws CompactedError / UnavailableError outside. */
  term(i: Index): Term;
  /** Index of the first entry available (snapshot index + 1). */
  firstIndex(): Index;
  lastIndex(): Index;
  snapshot(): Snapshot;
}

/** Deterministic randomness, injected: the core never touches Math.random. */
export interface Rng {
  /** A uniform integer in [0, maxExclusive). */
  int(maxExclusive: number): number;
}

/** The size in bytes an entry counts for in limits (payload plus a fixed overhead). */
export function entrySizeBytes(e: Entry): number {
  return e.data.byteLength + 24;
}
