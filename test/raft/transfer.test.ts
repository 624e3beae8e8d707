import { describe, expect, it } from 'vitest';
import { Network, enc } from './network.js';
import { isRaftError } from '../../src/raft/errors.js';

function errorOf(f: () => void): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  return undefined;
}

describe('leadership transfer (thesis §3.10)', () => {
  it('§3.10 transfer to an up-to-date follower: timeout-now, it wins the next term at once', () => {
    const net = new Network([1, 2, 3]);
    net.elect(1);
    net.propose(1, 'a');
    net.raw(1).transferLeader(2);
    net.stabilize();
    expect(net.leader()).toBe(2);
    expect(net.raw(2).status().term).toBe(2);
    expect(net.raw(1).status().role).toBe('follower');
    const tn = net.delivered.filter((m) => m.type === 'timeout-now');
    expect(tn).toHaveLength(1);
    const votes = net.delivered.filter((m) => m.type === 'vote' && m.from === 2);
    expect(votes.every((m) => m.type === 'vote' && m.transfer)).toBe(true); // skips pre-vote and the lease
  });

  it('§3.10 a lagging target is caught up first, then told to campaign', () => {
    const net = new Network([1, 2, 3]);
    net.elect(1);
    net.isolate(3);
    for (let i = 0; i < 5; i++) net.propose(1, `e${i}`);
    net.heal();
    net.clearQueue();
    expect(net.raw(3).status().lastIndex).toBeLessThan(net.raw(1).status().lastIndex);
    net.raw(1).transferLeader(3);
    net.stabilize();
    expect(net.leader()).toBe(3);
    expect(net.node(3).applied).toEqual(['e0', 'e1', 'e2', 'e3', 'e4']);
  });

  it('§3.10 proposals are refused with TRANSFER_IN_PROGRESS while the transfer runs', () => {
    const net = new Network([1, 2, 3]);
    net.elect(1);
    net.isolate(2);
    net.raw(1).transferLeader(2);
    expect(isRaftError(errorOf(() => net.raw(1).propose(enc('x'))), 'TRANSFER_IN_PROGRESS')).toBe(true);
    expect(net.raw(1).status().leadTransferee).toBe(2);
  });

  it('§3.10 a transfer that does not finish within an election timeout is aborted', () => {
    const net = new Network([1, 2, 3]);
    net.elect(1);
    net.isolate(2);
    net.raw(1).transferLeader(2);
    net.tick([1, 3], 10);
    expect(net.raw(1).status()).toMatchObject({ role: 'leader', leadTransferee: 0 });
    expect(() => net.raw(1).propose(enc('x'))).not.toThrow();
  });

  it('§3.10 only the leader transfers, and only to a voter', () => {
    const net = new Network([1, 2, 3], { learners: [4] });
    net.elect(1);
    expect(isRaftError(errorOf(() => net.raw(2).transferLeader(3)), 'NOT_LEADER')).toBe(true);
    expect(isRaftError(errorOf(() => net.raw(1).transferLeader(4)), 'UNAVAILABLE')).toBe(true);
    expect(isRaftError(errorOf(() => net.raw(1).transferLeader(9)), 'UNAVAILABLE')).toBe(true);
    net.raw(1).transferLeader(1); // to itself: nothing to do
    expect(net.raw(1).status().leadTransferee).toBe(0);
  });
});
