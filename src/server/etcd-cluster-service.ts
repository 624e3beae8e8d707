// etcd's Cluster service: MemberAdd (learners too), MemberRemove, MemberUpdate, MemberPromote and MemberList, a thin
// adapter over member-changes.ts (etcd's checks and strings; a follower forwards the change to the leader).
//
// Member ids: raftkv's (1 .. 2^31-1) as etcd's uint64. Names: the id in decimal once the member has started
// (published its client address, as etcd's members publish their name), "" before (etcdctl shows "unstarted").
// URLs: http://<peer address>, and the client address as host:port (see memberToEtcd).
//
// After `etcdctl member add NAME --peer-urls=http://HOST:PORT` the new member starts with
// `raftkv serve --id ID --initial-cluster-state existing --initial-cluster ID=HOST:PORT/CLIENT_HOST:PORT ...`, ID
// being the id etcdctl printed (in hex, as etcd's ids are printed; a small number). It publishes its client
// address once it has the log (member-publish.ts). `--initial-cluster` also takes the ETCD_INITIAL_CLUSTER line
// etcdctl prints (numeric names are member ids): see the README's "Adding a member with etcdctl".
//
// Authentication (auth-gate.ts), as etcd 3.4: MemberAdd, MemberRemove, MemberUpdate and MemberPromote need the
// root role; MemberList needs none.
import type { KvNode, Member } from '../node/api.js';
import type { EtcdServiceHandlers, MessageInit } from '../protocol/etcd-proto.js';
import type * as etcd from '../protocol/etcd-proto.js';
import type pino from 'pino';
import { etcdHandlerKit } from './etcd-kv-service.js';
import type { AuthGate } from './auth-gate.js';
import { applyMemberChange, memberIdFromEtcd, peerAddressOf } from './member-changes.js';
import type { MemberChange, MemberChangeAnswer } from './member-changes.js';

export interface EtcdClusterOptions {
  readonly node: KvNode;
  readonly maxRequestBytes: number;
  readonly defaultTimeoutMs: number;
  readonly logger: pino.Logger;
  /** How a change reaches the leader (WriteForwarder.memberChange); default: this member must lead. */
  readonly memberChange?: (change: MemberChange, deadlineMs: number) => Promise<MemberChangeAnswer>;
  readonly auth?: AuthGate; // with authentication on: every change needs root
}

export function memberToEtcd(m: Member): MessageInit<etcd.Member> {
  return {
    ID: BigInt(m.id),
    name: m.clientAddress === '' ? '' : String(m.id),
    peerURLs: [`http://${m.peerAddress}`],
    // host:port without the scheme: etcdctl --cluster dials these as given, and grpc-go then sends them as the
    // HTTP/2 :authority, which Node's HTTP/2 (nghttp2) refuses with a scheme in it (RST_STREAM PROTOCOL_ERROR).
    clientURLs: m.clientAddress === '' ? [] : [m.clientAddress],
    isLearner: m.learner,
  };
}

export function createEtcdClusterService(opts: EtcdClusterOptions): EtcdServiceHandlers<'Cluster'> {
  const { node } = opts;
  const kit = etcdHandlerKit(opts);
  const change = opts.memberChange ?? ((c: MemberChange, deadlineMs: number) => applyMemberChange(node, c, deadlineMs));
  const header = (): MessageInit<etcd.ResponseHeader> => {
    const s = node.status();
    return kit.header({ memberId: s.id, term: s.term, index: s.appliedIndex, leaderId: s.leaderId }, s.revision);
  };
  const unary = kit.unary;
  const members = (list: readonly Member[]): MessageInit<etcd.Member>[] => list.map(memberToEtcd);

  return {
    MemberAdd: unary<etcd.MemberAddRequest, etcd.MemberAddResponse>('Cluster/MemberAdd', async (req, deadlineMs, call) => {
      await opts.auth?.checkAdminNow(call, deadlineMs);
      const a = await change({ type: 'add', peerAddress: peerAddressOf(req.peerURLs), learner: req.isLearner }, deadlineMs);
      return { header: header(), member: memberToEtcd(a.member), members: members(a.members) };
    }),
    MemberRemove: unary<etcd.MemberRemoveRequest, etcd.MemberRemoveResponse>('Cluster/MemberRemove', async (req, deadlineMs, call) => {
      await opts.auth?.checkAdminNow(call, deadlineMs);
      const a = await change({ type: 'remove', id: memberIdFromEtcd(req.ID) }, deadlineMs);
      return { header: header(), members: members(a.members) };
    }),
    MemberUpdate: unary<etcd.MemberUpdateRequest, etcd.MemberUpdateResponse>('Cluster/MemberUpdate', async (req, deadlineMs, call) => {
      await opts.auth?.checkAdminNow(call, deadlineMs);
      const id = memberIdFromEtcd(req.ID);
      const a = await change({ type: 'update', id, peerAddress: peerAddressOf(req.peerURLs) }, deadlineMs);
      return { header: header(), members: members(a.members) };
    }),
    MemberPromote: unary<etcd.MemberPromoteRequest, etcd.MemberPromoteResponse>('Cluster/MemberPromote', async (req, deadlineMs, call) => {
      await opts.auth?.checkAdminNow(call, deadlineMs);
      const a = await change({ type: 'promote', id: memberIdFromEtcd(req.ID) }, deadlineMs);
      return { header: header(), members: members(a.members) };
    }),
    MemberList: unary<etcd.MemberListRequest, etcd.MemberListResponse>('Cluster/MemberList', async (req, deadlineMs) => {
      // etcd 3.5's linearizable list: after a read barrier (ReadIndex), as a linearizable Range.
      if (req.linearizable) await node.read({ key: Uint8Array.of(0), end: new Uint8Array(0), limit: 1, keysOnly: true, countOnly: true }, { serializable: false, deadlineMs });
      return { header: header(), members: members(node.members()) };
    }),
  };
}
