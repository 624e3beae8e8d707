// The node's view of peer messaging. Implementations: gRPC streams (grpc-transport.ts) and an in-memory
// network for in-process tests. Sends never block the driver loop: they queue, batch and drop when full.
import type { IncarnationGuard } from '../node/incarnations.js';
import type { Message, NodeId, SnapshotMessage } from '../raft/types.js';

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
