// The strict reconfiguration check: a change is refused when the new quorum would need lagging voters.
import { describe, expect, it } from 'vitest';
import { checkReconfigSafe } from '../../src/node/reconfig-check.js';
import type { RaftStatus } from '../../src/raft/raw-node.js';
import type { ConfChange } from '../../src/raft/types.js';

type P = { match: number; next: number; state: 'probe' | 'replicate' | 'snapshot'; recentActive: boolean };
const up: P = { match: 100, next: 101, state: 'replicate', recentActive: true };
const catchingUp: P = { match: 0, next: 1, state: 'snapshot', recentActive: true };
const down: P = { match: 90, next: 91, state: 'probe', recentActive: false };

function status(voters: number[], learners: number[], progress: Record<number, P>): RaftStatus {
  return {
    id: 1, term: 3, vote: 1, commit: 100, applied: 100, lastIndex: 100, firstIndex: 1, leader: 1, role: 'leader',
    leadTransferee: 0, confState: { voters, learners },
    progress: new Map(Object.entries(progress).map(([k, v]) => [Number(k), v])),
  };
}
const cc = (type: ConfChange['type'], nodeId: number): ConfChange => ({ type, nodeId, context: new Uint8Array(0) });
const code = (f: () => void): string | undefined => {
  try {
    f();
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  }
};

describe('strict reconfiguration check', () => {
  it('allows changes that keep a healthy quorum', () => {
    const s = status([1, 2, 3], [4], { 1: up, 2: up, 3: up, 4: up });
    expect(code(() => checkReconfigSafe(s, cc('remove', 3)))).toBeUndefined();
    expect(code(() => checkReconfigSafe(s, cc('remove', 1)))).toBeUndefined(); // removing the leader itself
    expect(code(() => checkReconfigSafe(s, cc('add-voter', 4)))).toBeUndefined(); // promoting a caught-up learner
    expect(code(() => checkReconfigSafe(s, cc('add-voter', 5)))).toBeUndefined(); // 3 healthy of 4 voters
  });

  it('refuses a removal whose quorum would need a member still receiving a snapshot (chaos seed 82)', () => {
    const s = status([1, 2, 3], [], { 1: up, 2: catchingUp, 3: up });
    expect(code(() => checkReconfigSafe(s, cc('remove', 3)))).toBe('FAILED_PRECONDITION'); // [1,2] needs 2
    expect(code(() => checkReconfigSafe(s, cc('remove', 1)))).toBe('FAILED_PRECONDITION');
    expect(code(() => checkReconfigSafe(s, cc('remove', 2)))).toBeUndefined();
  });

  it('refuses adding a voter when the grown quorum would need an unreachable member', () => {
    const s = status([1, 2, 3], [4], { 1: up, 2: up, 3: down, 4: catchingUp });
    expect(code(() => checkReconfigSafe(s, cc('add-voter', 5)))).toBe('FAILED_PRECONDITION'); // 2 healthy of 4
    expect(code(() => checkReconfigSafe(s, cc('add-voter', 4)))).toBe('FAILED_PRECONDITION'); // learner not caught up
    expect(code(() => checkReconfigSafe(s, cc('add-learner', 6)))).toBeUndefined();
  });

  it('lets a single member grow and never removes the last voter', () => {
    const s = status([1], [], {});
    expect(code(() => checkReconfigSafe(s, cc('add-voter', 2)))).toBeUndefined();
    expect(code(() => checkReconfigSafe(s, cc('remove', 1)))).toBe('FAILED_PRECONDITION');
  });
});
