// Membership changes as etcd's Cluster service makes them (MemberAdd, MemberRemove, MemberUpdate, MemberPromote)
// plus a started member publishing its client address (etcd's publish of a member's attributes): etcd's checks
// and etcd's error strings, decided on the leader, then the conf change. A follower forwards the change to the
// leader (write-forwarder.ts, Peer.MemberForward) and answers once it has applied it too.
//
// Ids: etcd picks a random 64-bit id; raftkv's are 1..2^31-1 (the Raft core's), and a new member gets the next
// id above every current member's, so `etcdctl member add` prints a small id the operator passes to
// `raftkv serve --id`. (etcd never reuses a removed id; raftkv reuses one only when the removed member had the
// highest id.)
import type { KvNode, Member } from '../node/api.js';
import { isReconfigRefusal } from '../node/reconfig-check.js';
import type { Index, NodeId } from '../raft/types.js';
import { RaftKvError, isRaftKvError } from '../shared/errors.js';

/** etcd's rpctypes strings for the Cluster service (clients match them). */
export const ETCD_MEMBER_NOT_FOUND = 'etcdserver: member not found';
export const ETCD_PEER_URL_EXISTS = 'etcdserver: Peer URLs already exists';
export const ETCD_MEMBER_BAD_URLS = 'etcdserver: given member URLs are invalid';
export const ETCD_NOT_ENOUGH_STARTED = 'etcdserver: re-configuration failed due to not enough started members';
export const ETCD_MEMBER_NOT_LEARNER = 'etcdserver: can only promote a learner member';
export const ETCD_LEARNER_NOT_READY = 'etcdserver: can only promote a learner member which is in sync with leader';
export const ETCD_TOO_MANY_LEARNERS = 'etcdserver: too many learner members in cluster';

/** etcd 3.4's maxLearners: MemberAdd refuses a learner beyond it (raftkv's own Admin API does not limit them). */
export const MAX_LEARNERS = 1;

/** etcd's readyPercent: a learner is promoted only once its log reaches this share of the leader's. */
export const LEARNER_READY_FRACTION = 0.9;

/** The largest member id the Raft core takes. */
export const MAX_MEMBER_ID = 2 ** 31 - 1;

export type MemberChange =
  | { readonly type: 'add'; readonly peerAddress: string; readonly learner: boolean }
  | { readonly type: 'remove'; readonly id: NodeId }
  | { readonly type: 'update'; readonly id: NodeId; readonly peerAddress: string }
  | { readonly type: 'promote'; readonly id: NodeId }
  | { readonly type: 'publish'; readonly id: NodeId; readonly clientAddress: string };

export type MemberChangeType = MemberChange['type'];
export const MEMBER_CHANGE_TYPES: readonly MemberChangeType[] = ['add', 'remove', 'update', 'promote', 'publish'];

export interface MemberChangeAnswer {
  readonly member: Member; // the member changed, as it was last known (remove: before it left)
  readonly members: readonly Member[];
  readonly index: Index; // the leader's applied index once the change applied: a follower waits for it
}

const PEER_URL = /^(?:https?:\/\/)?([A-Za-z0-9.\-[\]:]+:\d{1,5})\/?$/;

/** host:port from one of etcd's peer URLs (http://host:port); INVALID_ARGUMENT as etcd's for anything else. */
export function peerAddressOf(urls: readonly string[]): string {
  if (urls.length !== 1) {
    throw new RaftKvError('INVALID_ARGUMENT', urls.length === 0 ? ETCD_MEMBER_BAD_URLS : `raftkv members have one peer URL, got ${urls.length}`);
  }
  const m = PEER_URL.exec(urls[0] ?? '');
  if (m?.[1] === undefined) throw new RaftKvError('INVALID_ARGUMENT', ETCD_MEMBER_BAD_URLS);
  return m[1];
}

/** Member ids on etcd's wire are uint64: outside raftkv's range no member has them. */
export function memberIdFromEtcd(id: bigint): NodeId {
  if (id < 1n || id > BigInt(MAX_MEMBER_ID)) throw new RaftKvError('NOT_FOUND', ETCD_MEMBER_NOT_FOUND);
  return Number(id);
}

function find(members: readonly Member[], id: NodeId): Member {
  const m = members.find((x) => x.id === id);
  if (m === undefined) throw new RaftKvError('NOT_FOUND', ETCD_MEMBER_NOT_FOUND);
  return m;
}

function checkPeerAddressFree(members: readonly Member[], peerAddress: string, self: NodeId | undefined): void {
  if (members.some((m) => m.id !== self && m.peerAddress === peerAddress)) throw new RaftKvError('FAILED_PRECONDITION', ETCD_PEER_URL_EXISTS);
}

/** etcd's isLearnerReady, from the leader's progress. */
function checkLearnerReady(node: KvNode, id: NodeId): void {
  const s = node.status();
  const p = s.progress.find((x) => x.id === id);
  if (p === undefined || p.match < s.lastLogIndex * LEARNER_READY_FRACTION) throw new RaftKvError('FAILED_PRECONDITION', ETCD_LEARNER_NOT_READY);
}

/** The reconfiguration check's refusal as etcd's string; other errors as they are. */
function asEtcd(err: unknown): unknown {
  if (isReconfigRefusal(err)) return new RaftKvError('FAILED_PRECONDITION', ETCD_NOT_ENOUGH_STARTED);
  if (isRaftKvError(err, 'NOT_FOUND')) return new RaftKvError('NOT_FOUND', ETCD_MEMBER_NOT_FOUND);
  return err;
}

/**
 * `change` on this member, which must lead (NOT_LEADER with the leader's hint otherwise, before any check: the
 * leader's member table decides). Resolves once the conf change is applied here.
 */
export async function applyMemberChange(node: KvNode, change: MemberChange, deadlineMs: number): Promise<MemberChangeAnswer> {
  const s = node.status();
  if (s.role !== 'leader') {
    const leader = s.members.find((m) => m.id === s.leaderId);
    throw new RaftKvError(s.leaderId === 0 ? 'UNAVAILABLE' : 'NOT_LEADER', s.leaderId === 0 ? 'no leader' : 'etcdserver: not leader', {
      leaderId: s.leaderId,
      leaderAddress: leader?.clientAddress ?? '',
    });
  }
  const members = node.members();
  const answer = (member: Member, list: readonly Member[]): MemberChangeAnswer => ({ member, members: list, index: node.status().appliedIndex });
  try {
    switch (change.type) {
      case 'add': {
        checkPeerAddressFree(members, change.peerAddress, undefined);
        if (change.learner && members.filter((m) => m.learner).length >= MAX_LEARNERS) throw new RaftKvError('FAILED_PRECONDITION', ETCD_TOO_MANY_LEARNERS);
        const id = members.reduce((max, m) => Math.max(max, m.id), 0) + 1;
        if (id > MAX_MEMBER_ID) throw new RaftKvError('FAILED_PRECONDITION', `no member id left above ${MAX_MEMBER_ID - 1}`);
        const member: Member = { id, peerAddress: change.peerAddress, clientAddress: '', learner: change.learner };
        return answer(member, await node.addMember(member, deadlineMs));
      }
      case 'remove': {
        const member = find(members, change.id);
        return answer(member, await node.removeMember(change.id, deadlineMs));
      }
      case 'update': {
        const member = find(members, change.id);
        checkPeerAddressFree(members, change.peerAddress, change.id);
        const list = await node.updateMember({ ...member, peerAddress: change.peerAddress }, deadlineMs);
        return answer(find(list, change.id), list);
      }
      case 'publish': {
        const member = find(members, change.id);
        if (member.clientAddress === change.clientAddress) return answer(member, members);
        const list = await node.updateMember({ ...member, clientAddress: change.clientAddress }, deadlineMs);
        return answer(find(list, change.id), list);
      }
      case 'promote': {
        const member = find(members, change.id);
        if (!member.learner) throw new RaftKvError('FAILED_PRECONDITION', ETCD_MEMBER_NOT_LEARNER);
        checkLearnerReady(node, change.id);
        const list = await node.promoteLearner(change.id, deadlineMs);
        return answer(find(list, change.id), list);
      }
      default: {
        const never: never = change;
        throw new Error(`unknown member change ${JSON.stringify(never)}`);
      }
    }
  } catch (err) {
    throw asEtcd(err);
  }
}
