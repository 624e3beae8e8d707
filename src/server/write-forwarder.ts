// Any member serves a write, as etcd's members do: a follower forwards it to the leader over the peer port
// (Peer.Forward), the leader proposes it as its own and answers once it is applied, and the follower answers
// once it has applied that entry too (so a read on the follower sees it). etcd's services take a node whose writes
// go through WriteForwarder.write (serve.ts);
// raftkv's own protocol answers NOT_LEADER with the leader's address instead, which its client follows (one hop
// fewer, the same command applied by the same leader: the same result).
//
// Only a NOT_LEADER refusal is forwarded (nothing was proposed); the leader's node.write is called directly,
// never forwarded again, so a write travels one hop at most. A failure on the way comes back with its own code:
// NOT_LEADER (leadership moved; the client retries), UNAVAILABLE or DEADLINE_EXCEEDED (outcome unknown).
import { Client, credentials, Metadata } from '@grpc/grpc-js';
import type { ChannelCredentials, sendUnaryData, ServerUnaryCall } from '@grpc/grpc-js';
import type pino from 'pino';
import type { KvNode, WriteOptions, WriteReply } from '../node/api.js';
import type { NodeId } from '../raft/types.js';
import { RaftKvError, isRaftKvError } from '../shared/errors.js';
import type { Command } from '../kv/types.js';
import { decodeCommandResult, decodeEnvelope, encodeCommandResult, encodeEnvelope } from '../kv/codec.js';
import { PEER_METHODS } from '../protocol/proto.js';
import type { WireForwardRequest, WireForwardResponse } from '../protocol/proto.js';
import { fromGrpcError, toGrpcStatus } from '../protocol/wire-errors.js';

// A forwarded write may wait at most this long on the leader, whatever deadline it carries: the client's own
// deadline bounds it first (the default 10 s); this only caps a crafted or absurd one.
export const FORWARD_MAX_TIMEOUT_MS = 60_000;

export interface WriteForwarderOptions {
  readonly node: KvNode;
  readonly clusterId: string;
  readonly logger: pino.Logger;
  /** Test hook (`--dial-override`): dial this address instead of a member's advertised peer address. */
  readonly dialOverrides?: ReadonlyMap<NodeId, string>;
  /** How the leader's peer port is dialled (peer TLS); default plaintext. */
  readonly credentials?: ChannelCredentials;
}

export class WriteForwarder {
  private readonly clients = new Map<string, Client>(); // by peer address dialled

  constructor(private readonly opts: WriteForwarderOptions) {}

  /** node.write; on a follower that knows the leader, the leader's, answered once applied here. */
  async write(command: Command, wo: WriteOptions): Promise<WriteReply> {
    const { node } = this.opts;
    try {
      return await node.write(command, wo);
    } catch (err) {
      if (!isRaftKvError(err, 'NOT_LEADER') || err.leader === undefined || err.leader.leaderId === 0) throw err;
      const leader = node.members().find((m) => m.id === err.leader?.leaderId);
      if (leader === undefined || leader.id === node.id) throw err;
      const answer = await this.forward(leader.id, leader.peerAddress, command, wo);
      await node.waitApplied(answer.index, wo.deadlineMs);
      const s = node.status();
      return { header: { memberId: node.id, term: s.term, index: answer.index, leaderId: answer.leaderId }, result: decodeCommandResult(answer.result) };
    }
  }

  private forward(id: NodeId, peerAddress: string, command: Command, wo: WriteOptions): Promise<WireForwardResponse> {
    const address = this.opts.dialOverrides?.get(id) ?? peerAddress;
    let client = this.clients.get(address);
    if (client === undefined) {
      client = new Client(address, this.opts.credentials ?? credentials.createInsecure());
      this.clients.set(address, client);
    }
    const timeoutMs = Math.max(1, Math.min(FORWARD_MAX_TIMEOUT_MS, wo.deadlineMs - Date.now()));
    const request: WireForwardRequest = {
      clusterId: this.opts.clusterId,
      envelope: encodeEnvelope({ clientId: wo.clientId, seq: wo.seq, command }),
      timeoutMs,
    };
    const m = PEER_METHODS.forward;
    const c = client;
    return new Promise((resolve, reject) => {
      c.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, request, new Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => {
        if (err !== null) reject(fromGrpcError(err));
        else if (res === undefined) reject(new RaftKvError('UNAVAILABLE', 'forward: the leader sent no answer'));
        else resolve(res);
      });
    });
  }

  /** The leader's half: Peer.Forward. */
  handler(): (call: ServerUnaryCall<WireForwardRequest, WireForwardResponse>, callback: sendUnaryData<WireForwardResponse>) => void {
    return (call, callback) => {
      const run = async (): Promise<WireForwardResponse> => {
        const req = call.request;
        if (req.clusterId !== this.opts.clusterId) {
          throw new RaftKvError('CLUSTER_MISMATCH', `forward: from cluster ${JSON.stringify(req.clusterId)}, this is ${JSON.stringify(this.opts.clusterId)}`);
        }
        const env = decodeEnvelope(req.envelope); // DATA_CORRUPTION for garbage
        const timeoutMs = Math.min(FORWARD_MAX_TIMEOUT_MS, Math.max(1, req.timeoutMs));
        const reply = await this.opts.node.write(env.command, { clientId: env.clientId, seq: env.seq, deadlineMs: Date.now() + timeoutMs });
        return { result: Buffer.from(encodeCommandResult(reply.result)), index: reply.header.index, term: reply.header.term, leaderId: reply.header.leaderId };
      };
      run().then(
        (res) => callback(null, res),
        (err: unknown) => {
          if (!(err instanceof RaftKvError)) this.opts.logger.error({ err }, 'internal error forwarding a write');
          callback(toGrpcStatus(err));
        },
      );
    };
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
