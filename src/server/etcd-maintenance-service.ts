// etcd's Cluster and Maintenance services, the parts raftkv serves so far: MemberList, MemberRemove and
// MemberPromote; Status. A thin adapter over the node's admin operations (as raftkv's Admin service is); the
// methods not listed answer UNIMPLEMENTED (grpc-js does that for a method without a handler).
//
// Member ids: raftkv's (1 .. 2^31-1) as etcd's uint64. Names: the id in decimal (raftkv members have no name).
// URLs: http://<peer address>, and the client address as host:port (see memberToEtcd).
import type { ServerUnaryCall, sendUnaryData } from '@grpc/grpc-js';
import type pino from 'pino';
import type { KvNode, Member } from '../node/api.js';
import { RaftKvError } from '../shared/errors.js';
import type { EtcdServiceHandlers, MessageInit } from '../protocol/etcd-proto.js';
import type * as etcd from '../protocol/etcd-proto.js';
import { toEtcdStatus } from '../protocol/etcd-errors.js';
import { deadlineOf } from './kv-service.js';
import { etcdClusterId } from './etcd-kv-service.js';

/** The etcd version whose API and behaviour raftkv matches (what etcdctl shows as VERSION). */
export const ETCD_API_VERSION = '3.4.23';

const MAX_MEMBER_ID = 2n ** 31n - 1n;

export interface EtcdMaintenanceOptions {
  readonly node: KvNode;
  readonly defaultTimeoutMs: number;
  readonly logger: pino.Logger;
}

function memberToEtcd(m: Member): MessageInit<etcd.Member> {
  return {
    ID: BigInt(m.id),
    name: String(m.id),
    peerURLs: [`http://${m.peerAddress}`],
    // host:port without the scheme: etcdctl --cluster dials these as given, and grpc-go then sends them as the
    // HTTP/2 :authority, which Node's HTTP/2 (nghttp2) refuses with a scheme in it (RST_STREAM PROTOCOL_ERROR).
    clientURLs: m.clientAddress === '' ? [] : [m.clientAddress],
    isLearner: m.learner,
  };
}

function memberIdOf(id: bigint): number {
  if (id < 1n || id > MAX_MEMBER_ID) throw new RaftKvError('NOT_FOUND', 'etcdserver: member not found');
  return Number(id);
}

export function createEtcdMaintenanceServices(opts: EtcdMaintenanceOptions): {
  cluster: Partial<EtcdServiceHandlers<'Cluster'>>;
  maintenance: Partial<EtcdServiceHandlers<'Maintenance'>>;
} {
  const { node } = opts;
  let clusterId: bigint | undefined;
  const header = (): MessageInit<etcd.ResponseHeader> => {
    const s = node.status();
    clusterId ??= etcdClusterId(s.clusterId);
    return { clusterId, memberId: BigInt(s.id), revision: BigInt(s.revision), raftTerm: BigInt(s.term) };
  };
  function unary<Req, Res>(name: string, fn: (req: Req, deadlineMs: number) => Promise<MessageInit<Res>>) {
    return (call: ServerUnaryCall<Req, MessageInit<Res>>, callback: sendUnaryData<MessageInit<Res>>): void => {
      fn(call.request, deadlineOf(call, opts.defaultTimeoutMs)).then(
        (res) => callback(null, res),
        (err: unknown) => {
          if (!(err instanceof RaftKvError)) opts.logger.error({ err, method: name }, 'internal error in handler');
          callback(toEtcdStatus(err));
        },
      );
    };
  }
  const members = (list: readonly Member[]): MessageInit<etcd.Member>[] => list.map(memberToEtcd);

  return {
    cluster: {
      MemberList: unary<etcd.MemberListRequest, etcd.MemberListResponse>('MemberList', () =>
        Promise.resolve({ header: header(), members: members(node.members()) }),
      ),
      MemberRemove: unary<etcd.MemberRemoveRequest, etcd.MemberRemoveResponse>('MemberRemove', async (req, deadlineMs) => {
        const list = await node.removeMember(memberIdOf(req.ID), deadlineMs);
        return { header: header(), members: members(list) };
      }),
      MemberPromote: unary<etcd.MemberPromoteRequest, etcd.MemberPromoteResponse>('MemberPromote', async (req, deadlineMs) => {
        const list = await node.promoteLearner(memberIdOf(req.ID), deadlineMs);
        return { header: header(), members: members(list) };
      }),
    },
    maintenance: {
      Status: unary<etcd.StatusRequest, etcd.StatusResponse>('Status', () => {
        const s = node.status();
        const self = s.members.find((m) => m.id === s.id);
        return Promise.resolve({
          header: header(),
          version: ETCD_API_VERSION,
          dbSize: BigInt(s.dataSizeBytes),
          dbSizeInUse: BigInt(s.dataSizeBytes),
          leader: BigInt(s.leaderId),
          raftIndex: BigInt(s.commitIndex),
          raftTerm: BigInt(s.term),
          raftAppliedIndex: BigInt(s.appliedIndex),
          isLearner: self?.learner ?? false,
          errors: [],
        });
      }),
    },
  };
}
