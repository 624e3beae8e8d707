// The member table the state machine keeps (replicated through conf-change entries): what a conf change's
// context carries, how a change applies to the table, and the ConfState the table implies.
import type { Member } from '../shared/member.js';
import { confChangeProblem } from '../raft/conf-change.js';
import type { ConfChange, ConfState } from '../raft/types.js';
import { assertNever } from './codec.js';
import type { KvLogger } from './types.js';

/** The ConfChange context of an add: where the new member listens. */
export interface MemberContext {
  readonly peerAddress: string;
  readonly clientAddress: string;
}

export function encodeMemberContext(ctx: MemberContext): Uint8Array {
  return Buffer.from(JSON.stringify({ peerAddress: ctx.peerAddress, clientAddress: ctx.clientAddress }), 'utf8');
}

/** undefined for an empty or malformed context (the change still applies; addresses stay as they were or ""). */
export function decodeMemberContext(b: Uint8Array): MemberContext | undefined {
  if (b.length === 0) return undefined;
  try {
    const o = JSON.parse(Buffer.from(b).toString('utf8')) as Record<string, unknown> | null;
    if (o !== null && typeof o['peerAddress'] === 'string' && typeof o['clientAddress'] === 'string') {
      return { peerAddress: o['peerAddress'], clientAddress: o['clientAddress'] };
    }
    return undefined;
  } catch {
    return undefined;
  }
}

/** The ConfState implied by a member table: voters and learners, sorted by id. */
export function confStateOf(members: Iterable<Member>): ConfState {
  const voters: number[] = [];
  const learners: number[] = [];
  for (const m of members) (m.learner ? learners : voters).push(m.id);
  return { voters: voters.sort((a, b) => a - b), learners: learners.sort((a, b) => a - b) };
}

/** Applies `cc` to `table` by the core's rule (confChangeProblem): an inapplicable change leaves it unchanged. */
export function applyConfChangeToTable(table: Map<number, Member>, cc: ConfChange, logger: KvLogger | undefined): void {
  const problem = confChangeProblem(confStateOf(table.values()), cc);
  if (problem !== undefined) {
    logger?.warn({ nodeId: cc.nodeId, problem }, 'kv: conf change ignored');
    return;
  }
  const ctx = decodeMemberContext(cc.context);
  const prev = table.get(cc.nodeId);
  switch (cc.type) {
    case 'add-voter':
    case 'add-learner':
      if (prev === undefined && ctx === undefined) logger?.warn({ nodeId: cc.nodeId }, 'kv: conf change adds a member without addresses');
      table.set(cc.nodeId, {
        id: cc.nodeId,
        peerAddress: ctx?.peerAddress ?? prev?.peerAddress ?? '',
        clientAddress: ctx?.clientAddress ?? prev?.clientAddress ?? '',
        learner: cc.type === 'add-learner',
      });
      return;
    case 'remove':
      table.delete(cc.nodeId);
      return;
    case 'update':
      // etcd's MemberUpdate (new peer URLs) and a joined member publishing its client address: the role stays.
      if (prev !== undefined && ctx !== undefined) table.set(cc.nodeId, { ...prev, peerAddress: ctx.peerAddress, clientAddress: ctx.clientAddress });
      return;
    default:
      assertNever(cc.type);
  }
}
