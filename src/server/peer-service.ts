// Registers the Peer service on a gRPC server: a GrpcTransport's Raft message streams and snapshot transfer, and
// the leader's half of write forwarding (write-forwarder.ts).
import type { Server, handleUnaryCall } from '@grpc/grpc-js';
import { PEER_SERVICE } from '../protocol/proto.js';
import type {
  WireForwardRequest,
  WireForwardResponse,
  WireLeaseForwardRequest,
  WireLeaseForwardResponse,
  WireMemberForwardRequest,
  WireMemberForwardResponse,
} from '../protocol/proto.js';
import type { GrpcTransport } from '../transport/grpc-transport.js';

export interface ForwardHandlers {
  readonly forward: handleUnaryCall<WireForwardRequest, WireForwardResponse>;
  readonly leaseForward: handleUnaryCall<WireLeaseForwardRequest, WireLeaseForwardResponse>;
  readonly memberForward: handleUnaryCall<WireMemberForwardRequest, WireMemberForwardResponse>;
}

/** Without `forward` (transport tests) Peer.Forward, Peer.LeaseForward and Peer.MemberForward answer UNIMPLEMENTED. */
export function addPeerService(server: Server, transport: GrpcTransport, forward?: ForwardHandlers): void {
  server.addService(PEER_SERVICE, {
    ...transport.peerServiceImplementation(),
    ...(forward === undefined ? {} : { Forward: forward.forward, LeaseForward: forward.leaseForward, MemberForward: forward.memberForward }),
  });
}
