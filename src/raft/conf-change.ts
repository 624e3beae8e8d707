// Membership changes: their wire encoding in conf-change entries, and the pure rules applying them.
// Format (version 1): [u8 version=1][u8 type: 0 add-voter, 1 add-learner, 2 remove, 3 update][u32 BE nodeId]
// [u32 BE context length][context bytes].
import type { ConfChange, ConfChangeType, ConfState, NodeId } from './types.js';
import { RaftError } from './errors.js';
import { assertNever } from './util.js';

const VERSION = 1;

function typeCode(t: ConfChangeType): number {
  switch (t) {
    case 'add-voter':
      return 0;
    case 'add-learner':
      return 1;
    case 'remove':
      return 2;
    case 'update':
      return 3;
    default:
      return assertNever(t);
  }
}

export function encodeConfChange(cc: ConfChange): Uint8Array {
  const out = new Uint8Array(10 + cc.context.byteLength);
  const view = new DataView(out.buffer);
  out[0] = VERSION;
  out[1] = typeCode(cc.type);
  view.setUint32(2, cc.nodeId >>> 0);
  view.setUint32(6, cc.context.byteLength);
  out.set(cc.context, 10);
  return out;
}

/** Throws RaftError('INVALID_CONF_CHANGE') on malformed bytes. */
export function decodeConfChange(b: Uint8Array): ConfChange {
  if (b.byteLength < 10 || b[0] !== VERSION) throw new RaftError('INVALID_CONF_CHANGE', 'malformed conf change');
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const code = b[1];
  const types: readonly ConfChangeType[] = ['add-voter', 'add-learner', 'remove', 'update'];
  const type = code === undefined ? undefined : types[code];
  if (type === undefined) throw new RaftError('INVALID_CONF_CHANGE', `unknown conf change type ${code}`);
  const nodeId = view.getUint32(2);
  const len = view.getUint32(6);
  if (b.byteLength !== 10 + len) throw new RaftError('INVALID_CONF_CHANGE', 'conf change length mismatch');
  return { type, nodeId, context: b.slice(10) };
}

/** Why `cc` cannot be applied to `cs`, or undefined if it can. */
export function confChangeProblem(cs: ConfState, cc: ConfChange): string | undefined {
  if (!Number.isInteger(cc.nodeId) || cc.nodeId <= 0) return `invalid node id ${cc.nodeId}`;
  const isVoter = cs.voters.includes(cc.nodeId);
  const isLearner = cs.learners.includes(cc.nodeId);
  switch (cc.type) {
    case 'add-voter':
      return isVoter ? `${cc.nodeId} is already a voter` : undefined;
    case 'add-learner':
      if (isVoter) return `${cc.nodeId} is a voter (demotion is not supported)`;
      return isLearner ? `${cc.nodeId} is already a learner` : undefined;
    case 'remove':
      if (!isVoter && !isLearner) return `${cc.nodeId} is not a member`;
      if (isVoter && cs.voters.length === 1) return `cannot remove the last voter ${cc.nodeId}`;
      return undefined;
    case 'update':
      return !isVoter && !isLearner ? `${cc.nodeId} is not a member` : undefined;
    default:
      return assertNever(cc.type);
  }
}

/** The membership after `cc`; an inapplicable change leaves it unchanged (every member decides the same). */
export function applyConfChangeTo(cs: ConfState, cc: ConfChange): ConfState {
  if (confChangeProblem(cs, cc) !== undefined) return cs;
  const without = (ids: readonly NodeId[]): NodeId[] => ids.filter((id) => id !== cc.nodeId);
  switch (cc.type) {
    case 'add-voter':
      return { voters: [...cs.voters, cc.nodeId].sort((a, b) => a - b), learners: without(cs.learners) };
    case 'add-learner':
      return { voters: [...cs.voters], learners: [...cs.learners, cc.nodeId].sort((a, b) => a - b) };
    case 'remove':
      return { voters: without(cs.voters), learners: without(cs.learners) };
    case 'update':
      return cs; // etcd's ConfChangeUpdateNode: only the member's addresses (the context) change
    default:
      return assertNever(cc.type);
  }
}
