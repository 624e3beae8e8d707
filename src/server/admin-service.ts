// The admin service: status, membership, leadership transfer, snapshot download (server-streamed chunks), and
// HashKV (this member's key-space digest at an applied index, for `raftkv check` and the peer corrupt check).
// With authentication on (auth-gate.ts) membership changes, leadership transfer, defragmentation and snapshots
// need the root role, as etcd's; Status, MemberList and HashKV (the peer corrupt check's) need none.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { ServerWritableStream, UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Member, NodeStatus } from '../node/api.js';
import type { CallerContext } from './auth-gate.js';
import { RaftKvError } from '../shared/errors.js';
import type {
  WireEmpty,
  WireDefragmentResponse,
  WireHashKvRequest,
  WireHashKvResponse,
  WireHeader,
  WireIdRequest,
  WireMember,
  WireMemberAddRequest,
  WireMemberListResponse,
  WireSnapshotSaveChunk,
  WireStatusResponse,
  WireTransferLeaderRequest,
  WireTransferLeaderResponse,
} from '../protocol/proto.js';
import { toGrpcStatus } from '../protocol/wire-errors.js';
import { deadlineOf, unary } from './kv-service.js';
import type { ServiceOptions } from './kv-service.js';

export const SNAPSHOT_CHUNK_BYTES = 256 * 1024;

const ADDRESS = /^[A-Za-z0-9.\-[\]:]+:\d{1,5}$/;

function invalid(message: string): RaftKvError {
  return new RaftKvError('INVALID_ARGUMENT', message);
}

export function statusHeader(s: NodeStatus): WireHeader {
  return { memberId: s.id, term: s.term, index: s.appliedIndex, leaderId: s.leaderId, revision: s.revision };
}

export function memberToWire(m: Member): WireMember {
  return { id: m.id, peerAddress: m.peerAddress, clientAddress: m.clientAddress, learner: m.learner };
}

function memberId(id: number | undefined, what: string): number {
  const v = id ?? 0;
  if (!Number.isSafeInteger(v) || v <= 0 || v >= 2 ** 31) throw invalid(`${what}: member id must be in 1..2^31-1, got ${v}`);
  return v;
}

function checkAddress(a: string | undefined, what: string): string {
  if (a === undefined || !ADDRESS.test(a)) throw invalid(`${what} must be host:port, got ${JSON.stringify(a ?? '')}`);
  return a;
}

export function createAdminService(opts: ServiceOptions): UntypedServiceImplementation {
  const { node } = opts;
  /** Refuses a caller without the root role once auth is on (auth-gate.ts). */
  const admin = async (call: CallerContext & { getDeadline(): Date | number }): Promise<void> => {
    const deadlineMs = deadlineOf(call, opts.defaultTimeoutMs);
    await opts.auth?.ready(call, deadlineMs);
    await opts.auth?.checkAdminNow(call, deadlineMs);
  };
  const membersResponse = (members: readonly Member[]): WireMemberListResponse => ({
    header: statusHeader(node.status()),
    members: members.map(memberToWire),
  });

  return {
    Status: unary<WireEmpty, WireStatusResponse>(opts, 'Status', () => {
      const s = node.status();
      return Promise.resolve({
        header: statusHeader(s),
        id: s.id,
        clusterId: s.clusterId,
        clientAddress: s.clientAddress,
        role: s.role,
        term: s.term,
        leaderId: s.leaderId,
        commitIndex: s.commitIndex,
        appliedIndex: s.appliedIndex,
        lastLogIndex: s.lastLogIndex,
        snapshotIndex: s.snapshotIndex,
        dataSizeBytes: s.dataSizeBytes,
        members: s.members.map(memberToWire),
        progress: s.progress.map((p) => ({ id: p.id, match: p.match, state: p.state })),
        revision: s.revision,
        compactedRevision: s.compactedRevision,
        metricsUrl: opts.metricsUrl?.() ?? '',
      });
    }),
    MemberList: unary<WireEmpty, WireMemberListResponse>(opts, 'MemberList', () => Promise.resolve(membersResponse(node.members()))),
    MemberAdd: unary<WireMemberAddRequest, WireMemberListResponse>(opts, 'MemberAdd', async (req, call) => {
      await admin(call);
      const m = req.member;
      if (!m) throw invalid('member add: no member given');
      const member: Member = {
        id: memberId(m.id, 'member add'),
        peerAddress: checkAddress(m.peerAddress, 'member add: peer address'),
        clientAddress: checkAddress(m.clientAddress, 'member add: client address'),
        learner: m.learner ?? false,
      };
      return membersResponse(await node.addMember(member, deadlineOf(call, opts.defaultTimeoutMs)));
    }),
    MemberRemove: unary<WireIdRequest, WireMemberListResponse>(opts, 'MemberRemove', async (req, call) => {
      await admin(call);
      return membersResponse(await node.removeMember(memberId(req.id, 'member remove'), deadlineOf(call, opts.defaultTimeoutMs)));
    }),
    MemberPromote: unary<WireIdRequest, WireMemberListResponse>(opts, 'MemberPromote', async (req, call) => {
      await admin(call);
      return membersResponse(await node.promoteLearner(memberId(req.id, 'member promote'), deadlineOf(call, opts.defaultTimeoutMs)));
    }),
    TransferLeader: unary<WireTransferLeaderRequest, WireTransferLeaderResponse>(opts, 'TransferLeader', async (req, call) => {
      await admin(call);
      await node.transferLeadership(memberId(req.to, 'transfer leader'), deadlineOf(call, opts.defaultTimeoutMs));
      return { header: statusHeader(node.status()) };
    }),
    HashKV: unary<WireHashKvRequest, WireHashKvResponse>(opts, 'HashKV', async (req, call) => {
      const index = req.index ?? 0;
      if (!Number.isSafeInteger(index) || index < 0) throw invalid(`hash kv: index must be a whole number below 2^53, got ${index}`);
      const d = await node.keySpaceDigest(index, deadlineOf(call, opts.defaultTimeoutMs));
      return { header: statusHeader(node.status()), memberId: d.memberId, index: d.index, hashLane1: d.lane1, hashLane2: d.lane2, keyCount: d.count };
    }),
    Defragment: unary<WireEmpty, WireDefragmentResponse>(opts, 'Defragment', async (_req, call) => {
      await admin(call);
      const r = await node.defragment();
      return { header: statusHeader(node.status()), memberId: node.id, beforeBytes: r.beforeBytes, afterBytes: r.afterBytes, tookMs: r.tookMs };
    }),
    SnapshotSave: (call: ServerWritableStream<WireEmpty, WireSnapshotSaveChunk>) => {
      void streamSnapshot(opts, call);
    },
  };
}

async function streamSnapshot(opts: ServiceOptions, call: ServerWritableStream<WireEmpty, WireSnapshotSaveChunk>): Promise<void> {
  try {
    const deadlineMs = deadlineOf(call, opts.defaultTimeoutMs);
    await opts.auth?.ready(call, deadlineMs);
    await opts.auth?.checkAdminNow(call, deadlineMs);
    const path = await opts.node.saveSnapshot();
    const hash = createHash('sha256');
    let total = 0;
    let first = true;
    for await (const chunk of createReadStream(path, { highWaterMark: SNAPSHOT_CHUNK_BYTES })) {
      if (call.cancelled) return;
      const data = chunk as Buffer;
      hash.update(data);
      total += data.byteLength;
      const msg: WireSnapshotSaveChunk = { data, sha256: '', totalBytes: 0, header: first ? statusHeader(opts.node.status()) : null };
      first = false;
      if (!call.write(msg)) await new Promise<void>((resolve) => call.once('drain', resolve));
    }
    call.write({ data: Buffer.alloc(0), sha256: hash.digest('hex'), totalBytes: total, header: first ? statusHeader(opts.node.status()) : null });
    call.end();
  } catch (err) {
    if (!(err instanceof RaftKvError)) opts.logger.error({ err, method: 'SnapshotSave' }, 'snapshot save failed');
    call.emit('error', toGrpcStatus(err));
  }
}
