// A cluster member as the state machine's member table records it, and as clients see it.
import type { NodeId } from '../raft/types.js';

export interface Member {
  readonly id: NodeId;
  readonly peerAddress: string; // host:port of the peer service
  readonly clientAddress: string; // host:port of the client and admin services
  readonly learner: boolean;
}
