// Strict reconfiguration check (etcd's --strict-reconfig-check): the leader refuses a membership change whose
// new configuration would need, for its quorum, voters that are not caught up. Without it, removing a member
// right after re-adding another that is still empty (waiting for a snapshot) can leave a configuration in
// which no candidate can ever win (found by the chaos `member` nemesis, seed 82).
import type { RaftStatus } from '../raft/raw-node.js';
import type { ConfChange, NodeId } from '../raft/types.js';
import { RaftKvError } from '../shared/errors.js';

const REFUSAL = 'refusing ';

/** True for checkReconfigSafe's refusal (etcd's ErrNotEnoughStartedMembers, which its adapter names so). */
export function isReconfigRefusal(err: unknown): boolean {
  return err instanceof RaftKvError && err.code === 'FAILED_PRECONDITION' && err.message.startsWith(REFUSAL);
}

/** A follower counts as healthy when the leader heard from it lately and replicates to it normally. */
function healthy(status: RaftStatus, id: NodeId): boolean {
  if (id === status.id) return true;
  const p = status.progress.get(id);
  return p !== undefined && p.recentActive && p.state === 'replicate';
}

/** Throws FAILED_PRECONDITION when `cc` would leave fewer healthy voters than the new quorum. Leader only. */
export function checkReconfigSafe(status: RaftStatus, cc: ConfChange): void {
  if (status.role !== 'leader') return; // the core refuses the proposal itself
  const before = new Set(status.confState.voters);
  const after = new Set(before);
  switch (cc.type) {
    case 'remove':
      after.delete(cc.nodeId);
      break;
    case 'add-voter':
      if (before.size === 1 && !status.confState.learners.includes(cc.nodeId)) return; // the only way to grow a single member
      after.add(cc.nodeId);
      break;
    case 'add-learner':
    case 'update':
      return; // learners never count toward a quorum; an update changes no quorum
    default: {
      const never: never = cc.type;
      throw new Error(`unknown conf change ${String(never)}`);
    }
  }
  if (after.size === 0) throw new RaftKvError('FAILED_PRECONDITION', `${REFUSAL}to remove member ${cc.nodeId}: it is the last voter`);
  const quorum = Math.floor(after.size / 2) + 1;
  const ok = [...after].filter((id) => healthy(status, id));
  if (ok.length < quorum) {
    const lagging = [...after].filter((id) => !healthy(status, id));
    throw new RaftKvError(
      'FAILED_PRECONDITION',
      `${REFUSAL}${cc.type} of member ${cc.nodeId}: the new configuration needs ${quorum} of voters [${[...after].join(',')}] ` +
        `but ${lagging.join(',')} ${lagging.length === 1 ? 'is' : 'are'} not caught up (unreachable, or still receiving a snapshot); retry once they are`,
    );
  }
}
