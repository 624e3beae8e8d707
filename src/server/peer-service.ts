// Registers the Peer service on a gRPC server: a GrpcTransport's Raft message streams and snapshot transfer, and
// the leader's half of write forwarding (write-forwarder.ts).
import type { Server, handleUnaryCall } from '@grpc/grpc-js';
import { PEER_SERVICE } from '../protocol/proto.js';
import type { WireForwardRequest, WireForwardResponse } from '../protocol/proto.js';
import type { GrpcTransport } from '../transport/grpc-transport.js';

/** Without `forward` (transport tests) Peer.Forward answers UNIMPLEMENTED. */
export function addPeerService(server: Server, transport: GrpcTransport, forward?: handleUnaryCall<WireForwardRequest, WireForwardResponse>): void {
  server.addService(PEER_SERVICE, { ...transport.peerServiceImplementation(), ...(forward === undefined ? {} : { Forward: forward }) });
}
