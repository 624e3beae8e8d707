// Which Raft messages a peer may send over which Peer RPC, checked on every message before anything is stepped
// (with the sender's membership and incarnation, which grpc-transport.ts checks per stream).
//   Peer.Stream:       every message type except `snap`, each from the stream's sender to this member;
//   Peer.SendSnapshot: exactly one `snap`, from the sender to this member, in the first chunk.
// A message that breaks these is not a Raft retry or a race: the sender is broken or hostile, and its whole
// stream is refused (INVALID_ARGUMENT).
import type { Message, MessageType, NodeId } from '../raft/types.js';

export type PeerRpc = 'stream' | 'snapshot';

const ALLOWED: Readonly<Record<PeerRpc, ReadonlySet<MessageType>>> = {
  stream: new Set<MessageType>([
    'app',
    'app-resp',
    'vote',
    'vote-resp',
    'pre-vote',
    'pre-vote-resp',
    'heartbeat',
    'heartbeat-resp',
    'timeout-now',
    'read-index',
    'read-index-resp',
  ]),
  snapshot: new Set<MessageType>(['snap']),
};

/** Why `m`, received over `rpc` on a stream from `sender` by member `self`, is refused; undefined if it may pass. */
export function messageProblem(rpc: PeerRpc, sender: NodeId, self: NodeId, m: Message): string | undefined {
  if (!ALLOWED[rpc].has(m.type)) return `a ${m.type} message may not arrive over Peer.${rpc === 'stream' ? 'Stream' : 'SendSnapshot'}`;
  if (m.from !== sender) return `a ${m.type} message claims to be from ${m.from} on a stream from ${sender}`;
  if (m.to !== self) return `a ${m.type} message for ${m.to} reached member ${self}`;
  return undefined;
}
