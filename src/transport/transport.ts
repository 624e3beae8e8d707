// The node's view of peer messaging. Implementations: gRPC streams (grpc-transport.ts) and an in-memory
// network for in-process tests. Sends never block the driver loop: they queue, batch and drop when full.
import type { Index, Message, NodeId, SnapshotMessage } from '../raft/types.js';

// The transport's port for the incarnation check (node/incarnations.ts implements it): the consumer owns it.
/** Starts the message of a refusal for a stale incarnation: the refused member recognizes itself by it. */
export const STALE_MARKER = 'stale incarnation:';

export interface KnownIncarnation {
  readonly id: NodeId;
  readonly incarnation: string;
  readonly recordedAt: Index;
}

/** What the transport asks before it delivers anything from a peer, and what it gossips. */
export interface IncarnationGuard {
  /** This member's incarnation, sent with every stream. */
  readonly self: string;
  /** Changes whenever the known records change (the transport gossips again to each peer then). */
  readonly version: number;
  /**
   * Accepts `incarnation` for peer `from` (a first contact is recorded durably first: the returned promise),
   * or throws CLUSTER_MISMATCH when another incarnation of `from` is known.
   */
  admit(from: NodeId, incarnation: string): void | Promise<void>;
  /** What this member knows, to gossip. */
  gossip(): KnownIncarnation[];
  /** Takes in a peer's gossip: unknown members are recorded (unless from before their last removal). */
  merge(known: readonly KnownIncarnation[]): void;
}

export interface TransportHandlers {
  /** Raft messages from a peer, in arrival order. */
  onMessages(messages: readonly Message[]): void;
  /**
   * A snapshot arrived whole and verified (checksum) into `filePath` (a file the receiver now owns).
   * The node steps `message` once it has taken the file.
   */
  onSnapshot(message: SnapshotMessage, filePath: string): void;
  /** The stream to `peer` broke (connection reset / refused). A follower may pre-vote early if it was the leader. */
  onPeerUnreachable(peer: NodeId): void;
  /**
   * This member's incarnation (sent with every batch) and the check of each sender's, before anything of a
   * stream is delivered. Absent: incarnations are neither sent nor checked (in-process tests).
   */
  readonly incarnations?: IncarnationGuard;
  /** `peer` refused this member as a stale incarnation of itself (its data directory was replaced): stop. */
  onRefusedAsStale?(peer: NodeId, reason: string): void;
}

export interface Transport {
  start(handlers: TransportHandlers): Promise<void>;
  /** Queue messages for their `to` peers; never throws for an unknown or dead peer (Raft retries). */
  send(messages: readonly Message[]): void;
  /** Stream the snapshot file at `filePath` in chunks; resolves when the peer has it verified, rejects on failure. */
  sendSnapshot(message: SnapshotMessage, filePath: string): Promise<void>;
  setPeer(id: NodeId, peerAddress: string): void;
  removePeer(id: NodeId): void;
  stop(): Promise<void>;
}
