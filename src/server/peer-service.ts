// Registers the Peer service (Raft message streams and snapshot transfer) of a GrpcTransport on a gRPC server.
import type { Server } from '@grpc/grpc-js';
import { PEER_SERVICE } from '../protocol/proto.js';
import type { GrpcTransport } from '../transport/grpc-transport.js';

export function addPeerService(server: Server, transport: GrpcTransport): void {
  server.addService(PEER_SERVICE, transport.peerServiceImplementation());
}
