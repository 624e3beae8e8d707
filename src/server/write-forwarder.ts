// Any member serves a write, as etcd's members do: a follower forwards it to the leader over the peer port
// (Peer.Forward), the leader proposes it as its own and answers once it is applied, and the follower answers
// once it has applied that entry too (so a read on the follower sees it). etcd's services take a node whose writes
// go through WriteForwarder.write (serve.ts);
// raftkv's own protocol answers NOT_LEADER with the leader's address instead, which its client follows (one hop
// fewer, the same command applied by the same leader: the same result).
//
// Lease keep-alives and TimeToLive go the same way (Peer.LeaseForward): only the leader keeps lease deadlines.
// Membership changes too (Peer.MemberForward): the leader checks them against its member table (member-changes.ts).
//
// Only a NOT_LEADER refusal is forwarded (nothing was proposed); the leader's node.write is called directly,
// never forwarded again, so a write travels one hop at most. A failure on the way comes back with its own code:
// NOT_LEADER (leadership moved; the client retries), UNAVAILABLE or DEADLINE_EXCEEDED (outcome unknown).
import { Client, credentials, Metadata } from '@grpc/grpc-js';
import type { ChannelCredentials, sendUnaryData, ServerUnaryCall } from '@grpc/grpc-js';
import type pino from 'pino';
import type { KvNode, LeaseTimeToLive, WriteOptions, WriteReply } from '../node/api.js';
import type { NodeId } from '../raft/types.js';
import { RaftKvError, isRaftKvError } from '../shared/errors.js';
import type { Command } from '../kv/types.js';
import { decodeCommandResult, decodeEnvelope, encodeCommandResult, encodeEnvelope } from '../kv/codec.js';
import { PEER_METHODS } from '../protocol/proto.js';
import type {
  WireForwardRequest,
  WireForwardResponse,
  WireLeaseForwardRequest,
  WireLeaseForwardResponse,
  WireMember,
  WireMemberForwardRequest,
  WireMemberForwardResponse,
} from '../protocol/proto.js';
import type { Member } from '../shared/member.js';
import { applyMemberChange, MEMBER_CHANGE_TYPES } from './member-changes.js';
import type { MemberChange, MemberChangeAnswer } from './member-changes.js';
import type { ForwardHandlers } from './peer-service.js';
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
      const leader = this.leaderOf(err);
      if (leader === undefined) throw err;
      const answer = await this.forward(leader.id, leader.peerAddress, command, wo);
      await node.waitApplied(answer.index, wo.deadlineMs);
      const s = node.status();
      return { header: { memberId: node.id, term: s.term, index: answer.index, leaderId: answer.leaderId }, result: decodeCommandResult(answer.result) };
    }
  }

  /** node.leaseKeepAlive, on a follower the leader's. */
  async leaseKeepAlive(id: number, deadlineMs: number): Promise<number | undefined> {
    const res = await this.leaseCall(id, false, false, deadlineMs);
    return res.type === 'local' ? res.value : res.answer.found ? res.answer.ttl : undefined;
  }

  /** node.leaseTimeToLive, on a follower the leader's. */
  async leaseTimeToLive(id: number, withKeys: boolean, deadlineMs: number): Promise<LeaseTimeToLive | undefined> {
    const res = await this.leaseCall(id, true, withKeys, deadlineMs);
    if (res.type === 'local') return res.value;
    const a = res.answer;
    return a.found ? { id, ttlSeconds: a.ttl, grantedTtlSeconds: a.grantedTtl, keys: a.keys.map((k) => new Uint8Array(k)) } : undefined;
  }

  private async leaseCall<T extends boolean>(
    id: number,
    timeToLive: T,
    withKeys: boolean,
    deadlineMs: number,
  ): Promise<{ type: 'local'; value: T extends true ? LeaseTimeToLive | undefined : number | undefined } | { type: 'forwarded'; answer: WireLeaseForwardResponse }> {
    const { node } = this.opts;
    type Local = T extends true ? LeaseTimeToLive | undefined : number | undefined;
    try {
      const value = (timeToLive ? await node.leaseTimeToLive(id, withKeys, deadlineMs) : await node.leaseKeepAlive(id, deadlineMs)) as Local;
      return { type: 'local', value };
    } catch (err) {
      const leader = this.leaderOf(err);
      if (leader === undefined) throw err;
      const timeoutMs = Math.max(1, Math.min(FORWARD_MAX_TIMEOUT_MS, deadlineMs - Date.now()));
      const request: WireLeaseForwardRequest = { clusterId: this.opts.clusterId, leaseId: id, timeToLive, keys: withKeys, timeoutMs };
      const answer = await this.call(leader.id, leader.peerAddress, PEER_METHODS.leaseForward, request, timeoutMs);
      return { type: 'forwarded', answer };
    }
  }

  /** applyMemberChange here, or on the leader when this member does not lead; answered once applied here. */
  async memberChange(change: MemberChange, deadlineMs: number): Promise<MemberChangeAnswer> {
    const { node } = this.opts;
    try {
      return await applyMemberChange(node, change, deadlineMs);
    } catch (err) {
      const leader = this.leaderOf(err);
      if (leader === undefined) throw err;
      const timeoutMs = Math.max(1, Math.min(FORWARD_MAX_TIMEOUT_MS, deadlineMs - Date.now()));
      const request: WireMemberForwardRequest = { clusterId: this.opts.clusterId, ...memberChangeToWire(change), timeoutMs };
      const res = await this.call(leader.id, leader.peerAddress, PEER_METHODS.memberForward, request, timeoutMs);
      if (res.member === null) throw new RaftKvError('UNAVAILABLE', 'member forward: the leader named no member');
      // A member that removed itself gets no more of the log: it cannot wait to apply its own removal.
      if (!(change.type === 'remove' && change.id === node.id)) await node.waitApplied(res.index, deadlineMs);
      return { member: memberFromWire(res.member), members: res.members.map(memberFromWire), index: res.index };
    }
  }

  /** The leader to forward to after `err`, or undefined when `err` is not a NOT_LEADER naming another member. */
  private leaderOf(err: unknown): { id: NodeId; peerAddress: string } | undefined {
    if (!isRaftKvError(err, 'NOT_LEADER') || err.leader === undefined || err.leader.leaderId === 0) return undefined;
    const leader = this.opts.node.members().find((m) => m.id === err.leader?.leaderId);
    if (leader === undefined || leader.id === this.opts.node.id) return undefined;
    return leader;
  }

  /**
   * For a member's own housekeeping proposals (the NOSPACE alarm): node.write, or the leader's when this member
   * does not lead or its own disk refuses writes (DISK_FULL). Resolves once the leader applied it (not waiting
   * for this member, whose disk may be full).
   */
  async propose(command: Command, wo: WriteOptions): Promise<void> {
    const { node } = this.opts;
    try {
      await node.write(command, wo);
    } catch (err) {
      if (!isRaftKvError(err, 'NOT_LEADER') && !isRaftKvError(err, 'DISK_FULL')) throw err;
      const leaderId = err.leader?.leaderId ?? node.status().leaderId;
      const leader = node.members().find((m) => m.id === leaderId);
      if (leader === undefined || leader.id === node.id) throw err;
      await this.forward(leader.id, leader.peerAddress, command, wo);
    }
  }

  private client(id: NodeId, peerAddress: string): Client {
    const address = this.opts.dialOverrides?.get(id) ?? peerAddress;
    let client = this.clients.get(address);
    if (client === undefined) {
      client = new Client(address, this.opts.credentials ?? credentials.createInsecure());
      this.clients.set(address, client);
    }
    return client;
  }

  private call<Req, Res>(id: NodeId, peerAddress: string, m: { path: string; requestSerialize: (r: Req) => Buffer; responseDeserialize: (b: Buffer) => Res }, request: Req, timeoutMs: number): Promise<Res> {
    const c = this.client(id, peerAddress);
    return new Promise((resolve, reject) => {
      c.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, request, new Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => {
        if (err !== null) reject(fromGrpcError(err));
        else if (res === undefined) reject(new RaftKvError('UNAVAILABLE', 'forward: the leader sent no answer'));
        else resolve(res);
      });
    });
  }

  private forward(id: NodeId, peerAddress: string, command: Command, wo: WriteOptions): Promise<WireForwardResponse> {
    const timeoutMs = Math.max(1, Math.min(FORWARD_MAX_TIMEOUT_MS, wo.deadlineMs - Date.now()));
    const request: WireForwardRequest = {
      clusterId: this.opts.clusterId,
      envelope: encodeEnvelope({ clientId: wo.clientId, seq: wo.seq, command }),
      timeoutMs,
    };
    return this.call(id, peerAddress, PEER_METHODS.forward, request, timeoutMs);
  }

  /** The leader's halves: Peer.Forward, Peer.LeaseForward and Peer.MemberForward. */
  handlers(): ForwardHandlers {
    return { forward: this.handler(), leaseForward: this.leaseHandler(), memberForward: this.memberHandler() };
  }

  private memberHandler(): (call: ServerUnaryCall<WireMemberForwardRequest, WireMemberForwardResponse>, callback: sendUnaryData<WireMemberForwardResponse>) => void {
    return (call, callback) => {
      const run = async (): Promise<WireMemberForwardResponse> => {
        const req = call.request;
        if (req.clusterId !== this.opts.clusterId) {
          throw new RaftKvError('CLUSTER_MISMATCH', `member forward: from cluster ${JSON.stringify(req.clusterId)}, this is ${JSON.stringify(this.opts.clusterId)}`);
        }
        const deadlineMs = Date.now() + Math.min(FORWARD_MAX_TIMEOUT_MS, Math.max(1, req.timeoutMs));
        // Called on this member directly: a change travels one hop at most (NOT_LEADER goes back to the sender).
        const a = await applyMemberChange(this.opts.node, memberChangeFromWire(req), deadlineMs);
        return { member: memberToWire(a.member), members: a.members.map(memberToWire), index: a.index };
      };
      run().then(
        (res) => callback(null, res),
        (err: unknown) => {
          if (!(err instanceof RaftKvError)) this.opts.logger.error({ err }, 'internal error forwarding a membership change');
          callback(toGrpcStatus(err));
        },
      );
    };
  }

  private leaseHandler(): (call: ServerUnaryCall<WireLeaseForwardRequest, WireLeaseForwardResponse>, callback: sendUnaryData<WireLeaseForwardResponse>) => void {
    return (call, callback) => {
      const run = async (): Promise<WireLeaseForwardResponse> => {
        const req = call.request;
        if (req.clusterId !== this.opts.clusterId) {
          throw new RaftKvError('CLUSTER_MISMATCH', `lease forward: from cluster ${JSON.stringify(req.clusterId)}, this is ${JSON.stringify(this.opts.clusterId)}`);
        }
        const deadlineMs = Date.now() + Math.min(FORWARD_MAX_TIMEOUT_MS, Math.max(1, req.timeoutMs));
        const { node } = this.opts;
        const s = node.status();
        const base = { term: s.term, leaderId: s.leaderId, keys: [] as Uint8Array[], grantedTtl: 0 };
        if (req.timeToLive) {
          const t = await node.leaseTimeToLive(req.leaseId, req.keys, deadlineMs);
          return t === undefined ? { ...base, found: false, ttl: 0 } : { ...base, found: true, ttl: t.ttlSeconds, grantedTtl: t.grantedTtlSeconds, keys: [...t.keys] };
        }
        const ttl = await node.leaseKeepAlive(req.leaseId, deadlineMs);
        return ttl === undefined ? { ...base, found: false, ttl: 0 } : { ...base, found: true, ttl };
      };
      run().then(
        (res) => callback(null, res),
        (err: unknown) => {
          if (!(err instanceof RaftKvError)) this.opts.logger.error({ err }, 'internal error forwarding a lease call');
          callback(toGrpcStatus(err));
        },
      );
    };
  }

  private handler(): (call: ServerUnaryCall<WireForwardRequest, WireForwardResponse>, callback: sendUnaryData<WireForwardResponse>) => void {
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

function memberToWire(m: Member): WireMember {
  return { id: m.id, peerAddress: m.peerAddress, clientAddress: m.clientAddress, learner: m.learner };
}

function memberFromWire(m: WireMember): Member {
  return { id: m.id, peerAddress: m.peerAddress, clientAddress: m.clientAddress, learner: m.learner };
}

function memberChangeToWire(c: MemberChange): Omit<WireMemberForwardRequest, 'clusterId' | 'timeoutMs'> {
  const none = { memberId: 0, peerAddress: '', clientAddress: '', learner: false };
  switch (c.type) {
    case 'add':
      return { ...none, change: c.type, peerAddress: c.peerAddress, learner: c.learner };
    case 'remove':
    case 'promote':
      return { ...none, change: c.type, memberId: c.id };
    case 'update':
      return { ...none, change: c.type, memberId: c.id, peerAddress: c.peerAddress };
    case 'publish':
      return { ...none, change: c.type, memberId: c.id, clientAddress: c.clientAddress };
    default: {
      const never: never = c;
      throw new Error(`unknown member change ${JSON.stringify(never)}`);
    }
  }
}

function memberChangeFromWire(r: WireMemberForwardRequest): MemberChange {
  const type = MEMBER_CHANGE_TYPES.find((t) => t === r.change);
  switch (type) {
    case 'add':
      return { type, peerAddress: r.peerAddress, learner: r.learner };
    case 'remove':
    case 'promote':
      return { type, id: r.memberId };
    case 'update':
      return { type, id: r.memberId, peerAddress: r.peerAddress };
    case 'publish':
      return { type, id: r.memberId, clientAddress: r.clientAddress };
    case undefined:
      throw new RaftKvError('INVALID_ARGUMENT', `member forward: unknown change ${JSON.stringify(r.change)}`);
    default: {
      const never: never = type;
      throw new Error(`unknown member change ${String(never)}`);
    }
  }
}
