import { describe, expect, it } from 'vitest';
import { Network, enc } from './network.js';
import { drainMessages, solo, step } from './helpers.js';
import { decodeConfChange, encodeConfChange } from '../../src/raft/conf-change.js';
import { isRaftError } from '../../src/raft/errors.js';
import type { ConfChange } from '../../src/raft/types.js';

const cc = (type: ConfChange['type'], nodeId: number): ConfChange => ({ type, nodeId, context: enc(`node${nodeId}`) });

function errorOf(f: () => void): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  return undefined;
}

/** Proposes a conf change on the leader and runs the network until it is applied everywhere reachable. */
function change(net: Network, leader: number, c: ConfChange): void {
  net.raw(leader).proposeConfChange(c);
  net.stabilize();
  net.tick(undefined, 2);
}

describe('membership changes (§4.1 single-server changes, learners)', () => {
  it('§4.1 a new node joins as a learner: it receives the membership and the whole log, and never votes', () => {
    const net = new Network([1, 2, 3]);
    net.elect(1);
    net.propose(1, 'before');
    net.addNode(4); // empty storage, no membership yet
    change(net, 1, cc('add-learner', 4));
    expect(net.raw(1).status().confState).toEqual({ voters: [1, 2, 3], learners: [4] });
    expect(net.node(4).applied).toEqual(['before']);
    expect(net.raw(4).status().confState).toEqual({ voters: [1, 2, 3], learners: [4] });
    net.propose(1, 'after');
    net.heartbeat(1);
    expect(net.node(4).applied).toEqual(['before', 'after']);
    net.isolate(1);
    net.tick([2, 3, 4], 60); // 4 never campaigns; 2 or 3 takes over
    expect(net.raw(4).status().role).toBe('follower');
    expect(net.delivered.some((m) => (m.type === 'vote' || m.type === 'pre-vote') && m.from === 4)).toBe(false);
    expect(net.delivered.some((m) => (m.type === 'vote' || m.type === 'pre-vote') && m.to === 4)).toBe(false);
  });

  it('§4.1 a joiner also learns the membership when the log itself starts with it (the driver bootstrap)', () => {
    const net = new Network([1, 2, 3]);
    for (const id of [1, 2, 3]) {
      const n = net.node(id);
      n.storage.append([1, 2, 3].map((v, i) => ({ term: 1, index: i + 1, type: 'conf-change' as const, data: encodeConfChange(cc('add-voter', v)) })));
      n.storage.setHardState({ term: 1, vote: 0, commit: 3 });
      net.restart(id);
    }
    net.stabilize(); // apply the bootstrap entries first: nobody campaigns with unapplied conf changes
    net.elect(1);
    net.propose(1, 'x');
    net.addNode(4);
    change(net, 1, cc('add-learner', 4));
    expect(net.raw(4).status().confState).toEqual({ voters: [1, 2, 3], learners: [4] });
    expect(net.node(4).applied).toEqual(['x']);
    change(net, 1, cc('add-voter', 4));
    expect(net.raw(4).status().confState).toEqual({ voters: [1, 2, 3, 4], learners: [] });
  });

  it('§4.1 learners are not counted in quorums', () => {
    const net = new Network([1, 2, 3], { learners: [4, 5] });
    net.elect(1);
    net.isolate(3);
    net.isolate(2);
    const { index } = net.propose(1, 'x'); // leader + two learners: still no quorum of voters
    expect(net.raw(1).status().commit).toBeLessThan(index);
    expect(net.raw(4).status().lastIndex).toBe(index);
  });

  it('§4.1 promoting a learner makes it a voter that counts toward the quorum', () => {
    const net = new Network([1, 2, 3], { learners: [4] });
    net.elect(1);
    change(net, 1, cc('add-voter', 4));
    expect(net.raw(2).status().confState).toEqual({ voters: [1, 2, 3, 4], learners: [] });
    net.isolate(3);
    net.isolate(4);
    const { index } = net.propose(1, 'x'); // 2 of 4 is not a majority any more
    expect(net.raw(1).status().commit).toBeLessThan(index);
    net.heal();
    net.tick(undefined, 2);
    expect(net.node(4).applied).toEqual(['x']);
  });

  it('§4.1 one membership change at a time: a second is refused until the first is applied', () => {
    const net = new Network([1, 2, 3]);
    net.elect(1);
    net.raw(1).proposeConfChange(cc('add-learner', 4));
    expect(isRaftError(errorOf(() => net.raw(1).proposeConfChange(cc('add-learner', 5))), 'CONF_CHANGE_PENDING')).toBe(true);
    net.stabilize();
    expect(() => net.raw(1).proposeConfChange(cc('add-learner', 5))).not.toThrow();
  });

  it('§4.1 a new leader proposes no membership change before its no-op (and the previous term) is applied', () => {
    const s = solo(1, [1, 2, 3], { config: { preVote: false } });
    s.raw.campaign();
    drainMessages(s);
    step(s, { type: 'vote-resp', from: 2, to: 1, term: 1, reject: false });
    expect(isRaftError(errorOf(() => s.raw.proposeConfChange(cc('add-learner', 4))), 'CONF_CHANGE_PENDING')).toBe(true);
    step(s, { type: 'app-resp', from: 2, to: 1, term: 1, index: 1, reject: false, rejectHint: 0, logTerm: 0 });
    expect(s.raw.status().applied).toBe(1);
    expect(() => s.raw.proposeConfChange(cc('add-learner', 4))).not.toThrow();
  });

  it('§4.1 invalid changes are refused with INVALID_CONF_CHANGE; followers refuse with NOT_LEADER', () => {
    const net = new Network([1, 2, 3], { learners: [4] });
    net.elect(1);
    const code = (c: ConfChange): string | undefined => {
      const e = errorOf(() => net.raw(1).proposeConfChange(c));
      return isRaftError(e) ? e.code : undefined;
    };
    expect(code(cc('add-voter', 2))).toBe('INVALID_CONF_CHANGE');
    expect(code(cc('add-learner', 4))).toBe('INVALID_CONF_CHANGE');
    expect(code(cc('add-learner', 3))).toBe('INVALID_CONF_CHANGE'); // demotion unsupported
    expect(code(cc('remove', 9))).toBe('INVALID_CONF_CHANGE');
    expect(isRaftError(errorOf(() => net.raw(2).proposeConfChange(cc('add-learner', 5))), 'NOT_LEADER')).toBe(true);
    const single = new Network([1]);
    single.elect(1);
    expect(isRaftError(errorOf(() => single.raw(1).proposeConfChange(cc('remove', 1))), 'INVALID_CONF_CHANGE')).toBe(true);
  });

  it('§4.1 removing a follower shrinks the quorum', () => {
    const net = new Network([1, 2, 3]);
    net.elect(1);
    change(net, 1, cc('remove', 3));
    expect(net.raw(1).status().confState.voters).toEqual([1, 2]);
    expect(net.raw(1).status().progress.has(3)).toBe(false);
    net.isolate(3);
    const { index } = net.propose(1, 'x');
    expect(net.raw(1).status().commit).toBe(index);
    net.tick([3], 100); // the removed node knows it was removed: it never campaigns
    expect(net.raw(3).status().role).toBe('follower');
  });

  it('§4.2.2 removing the leader: it steps down once the change is applied; the rest elect a new leader', () => {
    const net = new Network([1, 2, 3]);
    net.elect(1);
    net.propose(1, 'a');
    net.raw(1).proposeConfChange(cc('remove', 1));
    const mark = net.delivered.length;
    net.stabilize();
    expect(net.raw(1).status().role).toBe('follower');
    for (const id of [2, 3]) expect(net.raw(id).status().confState.voters).toEqual([2, 3]);
    const l = net.tickUntilLeader(200, [2, 3]);
    expect([2, 3]).toContain(l);
    net.propose(l, 'b');
    net.heartbeat(l);
    for (const id of [2, 3]) expect(net.node(id).applied).toEqual(['a', 'b']);
    expect(net.delivered.slice(mark).some((m) => (m.type === 'vote' || m.type === 'pre-vote') && m.from === 1)).toBe(false);
  });

  it('conf changes round-trip through their encoding; malformed bytes are refused', () => {
    for (const c of [cc('add-voter', 7), cc('add-learner', 2 ** 31 - 1), { type: 'remove' as const, nodeId: 3, context: new Uint8Array() }]) {
      expect(decodeConfChange(encodeConfChange(c))).toEqual(c);
    }
    expect(isRaftError(errorOf(() => decodeConfChange(new Uint8Array([1, 9, 0, 0, 0, 1, 0, 0, 0, 0]))), 'INVALID_CONF_CHANGE')).toBe(true);
    expect(isRaftError(errorOf(() => decodeConfChange(new Uint8Array([2]))), 'INVALID_CONF_CHANGE')).toBe(true);
    const truncated = encodeConfChange(cc('add-voter', 7)).slice(0, 12);
    expect(isRaftError(errorOf(() => decodeConfChange(truncated)), 'INVALID_CONF_CHANGE')).toBe(true);
  });
});
