import { describe, expect, it } from 'vitest';
import { Network, enc } from './network.js';
import { drain, drainMessages, entry, ofType, solo, step } from './helpers.js';
import type { Solo } from './helpers.js';
import type { Message } from '../../src/raft/types.js';
import { NONE } from '../../src/raft/types.js';
import { isRaftError } from '../../src/raft/errors.js';
import { logTermsAt } from '../../src/raft/invariants.js';
import { RawNode } from '../../src/raft/raw-node.js';

/** Makes `s` leader of its next term with fabricated votes from `voters`, and returns its messages. */
function makeLeader(s: Solo, voters: number[]): Message[] {
  s.raw.campaign();
  drainMessages(s);
  const term = s.raw.status().term;
  let out: Message[] = [];
  for (const v of voters) out = out.concat(step(s, { type: 'vote-resp', from: v, to: s.raw.status().id, term, reject: false }));
  expect(s.raw.status().role).toBe('leader');
  return out;
}

function appResp(from: number, to: number, term: number, index: number): Message {
  return { type: 'app-resp', from, to, term, index, reject: false, rejectHint: 0, logTerm: 0 };
}

const noPreVote = { preVote: false };

describe('log replication (§5.3)', () => {
  it('§5.3 the leader replicates a proposal; it commits once a majority stores it; every node applies it', () => {
    const net = new Network([1, 2, 3, 4, 5]);
    net.elect(1);
    net.isolate(4);
    net.isolate(5);
    const { index } = net.propose(1, 'x');
    net.heartbeat(1); // followers learn the commit with the next heartbeat (lazy commit broadcast)
    for (const id of [1, 2, 3]) {
      expect(net.raw(id).status().commit).toBe(index);
      expect(net.node(id).applied).toEqual(['x']);
    }
    expect(net.raw(4).status().lastIndex).toBeLessThan(index);
    net.heal();
    net.tick(undefined, 2);
    for (const id of [4, 5]) expect(net.node(id).applied).toEqual(['x']);
  });

  it('§5.3 the leader needs a majority: with two of five reachable nothing commits', () => {
    const net = new Network([1, 2, 3, 4, 5]);
    net.elect(1);
    const before = net.raw(1).status().commit;
    net.isolate(3);
    net.isolate(4);
    net.isolate(5);
    net.propose(1, 'x');
    expect(net.raw(1).status().commit).toBe(before);
    expect(net.node(1).applied).toEqual([]);
  });

  it('§5.3 a follower rejects an append whose previous entry does not match, with a back-off hint', () => {
    const s = solo(2, [1, 2, 3], { terms: [1, 1, 2], hardState: { term: 2, vote: NONE, commit: 1 } });
    const out = step(s, { type: 'app', from: 1, to: 2, term: 3, index: 3, logTerm: 3, entries: [entry(3, 4)], commit: 3 });
    const r = ofType(out, 'app-resp')[0];
    expect(r).toMatchObject({ reject: true, index: 3, rejectHint: 3, logTerm: 2 });
    expect(s.raw.status().lastIndex).toBe(3);
    const gap = step(s, { type: 'app', from: 1, to: 2, term: 3, index: 7, logTerm: 3, entries: [], commit: 3 });
    expect(ofType(gap, 'app-resp')[0]).toMatchObject({ reject: true, index: 7, rejectHint: 3 }); // our last index
  });

  it('§5.3 a follower deletes a conflicting suffix and appends the leader entries', () => {
    const s = solo(2, [1, 2, 3], { terms: [1, 1, 2, 2], hardState: { term: 2, vote: NONE, commit: 1 } });
    const out = step(s, { type: 'app', from: 1, to: 2, term: 3, index: 2, logTerm: 1, entries: [entry(3, 3, 'a')], commit: 1 });
    expect(ofType(out, 'app-resp')[0]).toMatchObject({ reject: false, index: 3 });
    expect(s.raw.status().lastIndex).toBe(3);
    expect(s.storage.term(3)).toBe(3);
  });

  it('§5.3 an append of entries the follower already has truncates nothing (stale or duplicate messages)', () => {
    const s = solo(2, [1, 2, 3], { terms: [1, 1, 1, 1], hardState: { term: 1, vote: NONE, commit: 0 } });
    const out = step(s, { type: 'app', from: 1, to: 2, term: 1, index: 1, logTerm: 1, entries: [entry(1, 2)], commit: 0 });
    expect(ofType(out, 'app-resp')[0]).toMatchObject({ reject: false, index: 2 });
    expect(s.raw.status().lastIndex).toBe(4);
  });

  it('§5.3 the follower commit is min(leaderCommit, index of last new entry)', () => {
    const s = solo(2, [1, 2, 3], { terms: [1, 1, 1, 1, 1], hardState: { term: 1, vote: NONE, commit: 0 } });
    step(s, { type: 'app', from: 1, to: 2, term: 1, index: 1, logTerm: 1, entries: [entry(1, 2)], commit: 5 });
    expect(s.raw.status().commit).toBe(2); // entries 3..5 were not verified by this message
  });

  it('§5.3 fast back-off: a long divergent suffix is repaired in a few round trips, not one per entry', () => {
    const net = new Network([1, 2, 3], { config: noPreVote });
    // Node 2 holds 20 entries of an old term that node 1 never saw.
    net.elect(1);
    net.isolate(1);
    net.raw(2).campaign();
    net.stabilize(); // 2 cannot win alone; make it leader by hand: it gets 3's vote
    net.heal();
    net.isolate(1);
    net.tick([2, 3], 30);
    const l2 = net.leader();
    expect(l2 === 2 || l2 === 3).toBe(true);
    const other = l2 === 2 ? 3 : 2;
    net.isolate(other);
    for (let i = 0; i < 20; i++) net.raw(l2 ?? 0).propose(enc(`old${i}`));
    net.stabilize();
    net.heal();
    // Now the node that missed them (1) and the other follower must converge on the new leader's log.
    net.isolate(l2 ?? 0);
    net.tick([1, other], 40);
    const l3 = net.leader();
    expect(l3 === 1 || l3 === other).toBe(true);
    net.heal();
    const before = net.delivered.length;
    net.tick(undefined, 3);
    const rejects = net.delivered.slice(before).filter((m) => m.type === 'app-resp' && m.reject && m.from === l2);
    expect(rejects.length).toBeLessThanOrEqual(3);
    const t = logTermsAt(net.raw(l3 ?? 0));
    expect(logTermsAt(net.raw(l2 ?? 0))).toEqual(t);
  });

  it('§5.3 log matching: after competing leaders and partitions every log agrees up to a common entry', () => {
    for (let seed = 1; seed <= 10; seed++) {
      const net = new Network([1, 2, 3], { seed });
      for (let round = 0; round < 6; round++) {
        const l = net.tickUntilLeader();
        net.isolate(l);
        for (let i = 0; i < 3; i++) net.raw(l).propose(enc(`s${seed}r${round}i${i}`)); // never commits
        net.stabilize();
        net.heal();
        net.isolate(((l + round) % 3) + 1 === l ? (l % 3) + 1 : ((l + round) % 3) + 1);
        net.tick(undefined, 25);
        net.heal();
        const l2 = net.tickUntilLeader();
        net.propose(l2, `s${seed}r${round}`);
      }
      net.tick(undefined, 5);
      net.checkCrossNode();
      const terms = logTermsAt(net.raw(1));
      for (const id of [2, 3]) expect(logTermsAt(net.raw(id)), `seed ${seed}`).toEqual(terms);
    }
  });
});

describe('commit broadcast', () => {
  it('lazy (default): followers learn a commit with the next append or heartbeat, not with an empty append', () => {
    const net = new Network([1, 2, 3]);
    net.elect(1);
    net.heartbeat(1);
    const mark = net.delivered.length;
    const { index } = net.propose(1, 'x');
    expect(net.raw(1).status().commit).toBe(index);
    for (const id of [2, 3]) expect(net.raw(id).status().commit).toBe(index - 1);
    const sent = net.delivered.slice(mark).filter((m) => m.type === 'app');
    expect(sent.map((m) => (m.type === 'app' ? m.entries.length : -1))).toEqual([1, 1]); // the entry, nothing more
    net.propose(1, 'y'); // the next append carries the commit of 'x'
    for (const id of [2, 3]) expect(net.node(id).applied).toEqual(['x']);
    net.heartbeat(1);
    for (const id of [2, 3]) expect(net.node(id).applied).toEqual(['x', 'y']);
  });

  it('eager: followers learn a commit at once', () => {
    const net = new Network([1, 2, 3], { config: { commitBroadcast: 'eager' } });
    net.elect(1);
    const { index } = net.propose(1, 'x');
    for (const id of [1, 2, 3]) expect(net.raw(id).status().commit).toBe(index);
    for (const id of [2, 3]) expect(net.node(id).applied).toEqual(['x']);
  });
});

describe('commitment (§5.4.2)', () => {
  it('§5.4.2 Figure 8: a leader never commits an entry of a previous term by counting replicas', () => {
    // S1 holds (2/2) from its earlier leadership; as leader of term 4 it sees (2/2) on a majority.
    const s = solo(1, [1, 2, 3, 4, 5], { terms: [1, 2], hardState: { term: 3, vote: NONE, commit: 1 }, config: noPreVote });
    makeLeader(s, [2, 3]);
    drainMessages(s); // persists the no-op 3/4 (S1's own match becomes 3)
    step(s, appResp(2, 1, 4, 2));
    step(s, appResp(3, 1, 4, 2));
    expect(s.raw.status().commit).toBe(1); // a majority stores 2/2, but it is not of term 4
    step(s, appResp(2, 1, 4, 3));
    expect(s.raw.status().commit).toBe(1); // 3/4 is on S1 and S2 only
    step(s, appResp(3, 1, 4, 3));
    expect(s.raw.status().commit).toBe(3); // 3/4 on a majority commits it, and 2/2 with it (Log Matching)
  });

  it('§5.4.2 the testing fault commit-old-term really breaks the rule (so the checkers can be tested)', () => {
    const s = solo(1, [1, 2, 3, 4, 5], { terms: [1, 2], hardState: { term: 3, vote: NONE, commit: 1 }, config: { ...noPreVote, testingFault: 'commit-old-term' } });
    makeLeader(s, [2, 3]);
    drainMessages(s);
    step(s, appResp(2, 1, 4, 2));
    step(s, appResp(3, 1, 4, 2));
    expect(s.raw.status().commit).toBe(2);
  });

  it('§5.4.2 Figure 8 end to end: with the fault an old-term entry is "committed" then overwritten; the checker throws', () => {
    // S1 leader term 2 wrote 2/2 on S1,S2 only; S5 became leader in term 3 with 2/3 on itself only.
    const mk = (fault: boolean): Network => {
      const net = new Network([1, 2, 3, 4, 5], { config: { preVote: false, checkQuorum: false, ...(fault ? { testingFault: 'commit-old-term' as const } : {}) } });
      const logs: Record<number, number[]> = { 1: [1, 2], 2: [1, 2], 3: [1], 4: [1], 5: [1, 3] };
      for (const [id, terms] of Object.entries(logs)) {
        const n = net.node(Number(id));
        n.storage.append(terms.map((t, i) => entry(t, i + 1, `t${t}i${i + 1}`)));
        n.storage.setHardState({ term: 3, vote: NONE, commit: 1 });
        net.restart(Number(id));
      }
      return net;
    };
    for (const fault of [false, true]) {
      const net = mk(fault);
      // (c) S1 leads term 4 and replicates 2/2 to S3 only; its no-op 3/4 reaches nobody.
      net.cut(1, 4);
      net.cut(1, 5);
      net.transform = (m) => (m.type === 'app' ? { ...m, entries: m.entries.filter((e) => e.term !== 4) } : m);
      net.elect(1);
      expect(net.raw(1).status().role).toBe('leader');
      expect(net.raw(3).status().lastIndex).toBe(2);
      expect(net.raw(1).status().commit).toBe(fault ? 2 : 1);
      // (d) S1 crashes; S5 (last term 3) is elected by S2, S3, S4 and overwrites index 2.
      net.heal();
      net.isolate(1);
      net.raw(5).campaign(); // term 4: S2 and S3 already voted for S1 in term 4
      net.stabilize();
      net.raw(5).campaign(); // term 5
      if (!fault) {
        net.stabilize();
        expect(net.leader()).toBe(5);
        expect(net.raw(3).status().lastIndex).toBeGreaterThanOrEqual(2);
        continue;
      }
      // S1's commit of 2/2 would be lost: the cross-node checks (log matching of committed prefixes,
      // same state machine) or the per-node "committed entries never change" check must notice.
      let caught: unknown;
      try {
        net.stabilize();
        net.heal();
        net.tick(undefined, 30);
      } catch (err) {
        caught = err;
      }
      expect(String(caught)).toMatch(/committed entry|differ|log matching|conflicts with committed/);
    }
  });

  it('§5.4 leader completeness: a node missing committed entries cannot be elected', () => {
    const net = new Network([1, 2, 3], { config: noPreVote });
    net.elect(1);
    net.isolate(3);
    const { index } = net.propose(1, 'committed');
    net.heartbeat(1);
    expect(net.raw(2).status().commit).toBe(index);
    net.heal();
    net.isolate(1);
    net.cut(3, 1);
    net.raw(3).campaign(); // 3 lacks the committed entry: 2 must refuse its vote (§5.4.1)
    net.stabilize();
    expect(net.raw(3).status().role).not.toBe('leader');
    const l = net.tickUntilLeader(200, [2, 3]);
    expect(l).toBe(2);
    net.tick(undefined, 2);
    expect(net.node(3).applied).toEqual(['committed']);
  });

  it('§5.4.1 the testing fault vote-without-up-to-date-check grants votes to stale logs', () => {
    const s = solo(1, [1, 2, 3], { terms: [1, 2, 2], hardState: { term: 2, vote: NONE, commit: 0 }, config: { testingFault: 'vote-without-up-to-date-check' } });
    const out = step(s, { type: 'vote', from: 2, to: 1, term: 3, index: 1, logTerm: 1, transfer: false });
    expect(ofType(out, 'vote-resp')[0]?.reject).toBe(false);
  });
});

describe('Ready and durability', () => {
  it('the leader sends appends before its own write, but counts its own log only once persisted', () => {
    const s = solo(1, [1], { config: noPreVote });
    s.raw.campaign();
    drain(s);
    drainMessages(s);
    s.raw.propose(enc('x'));
    const rd = s.raw.ready();
    expect(rd.entries).toHaveLength(1);
    expect(rd.committedEntries).toHaveLength(0); // a single voter: committed only after its own fsync
    s.storage.append(rd.entries);
    s.raw.advance(rd);
    const rd2 = s.raw.ready();
    expect(rd2.committedEntries.map((e) => new TextDecoder().decode(e.data))).toEqual(['x']);
    expect(rd2.hardState?.commit).toBe(2);
  });

  it('§5.4.2 + durability: a leader whose own write is pending counts only durable replicas toward commitment', () => {
    const net = new Network([1, 2, 3]);
    net.elect(1);
    net.isolate(3);
    net.raw(1).propose(enc('z'));
    const rd = net.raw(1).ready(); // the leader has not written 'z' yet
    const app = rd.messages.find((m) => m.type === 'app' && m.to === 2);
    if (app === undefined) throw new Error('no append to 2');
    net.raw(2).step(app);
    const rd2 = net.raw(2).ready(); // 2 persists and acknowledges
    net.node(2).storage.append(rd2.entries);
    if (rd2.hardState !== undefined) net.node(2).storage.setHardState(rd2.hardState);
    net.raw(2).advance(rd2);
    const ack = rd2.messagesAfterPersist.find((m) => m.type === 'app-resp' && m.to === 1);
    if (ack === undefined) throw new Error('no ack from 2');
    net.raw(1).step(ack);
    const last = rd.entries[rd.entries.length - 1]?.index ?? 0;
    expect(net.raw(1).status().commit).toBeLessThan(last); // 1 durable copy of 3: not committed
    net.node(1).storage.append(rd.entries);
    net.raw(1).advance(rd); // now the leader's own copy is durable: 2 of 3
    expect(net.raw(1).status().commit).toBe(last);
  });

  it('appends go out in messages (before persist); acknowledgements in messagesAfterPersist', () => {
    const net = new Network([1, 2, 3]);
    net.elect(1);
    net.raw(1).propose(enc('y'));
    const rd = net.raw(1).ready();
    expect(rd.messages.filter((m) => m.type === 'app')).toHaveLength(2);
    net.raw(1).advance(rd); // (test shortcut: pretend persisted)
    net.node(1).storage.append(rd.entries);
    const app = rd.messages.find((m) => m.type === 'app' && m.to === 2);
    if (app === undefined) throw new Error('no app');
    net.raw(2).step(app);
    const frd = net.raw(2).ready();
    expect(frd.messages.filter((m) => m.type === 'app-resp')).toHaveLength(0);
    expect(frd.messagesAfterPersist.filter((m) => m.type === 'app-resp')).toHaveLength(1);
    expect(frd.mustSync).toBe(true);
    net.node(2).storage.append(frd.entries);
    net.raw(2).advance(frd);
  });

  it('§5.3 heartbeats carry min(commit, follower match) so a follower never commits what it lacks', () => {
    const net = new Network([1, 2, 3]);
    net.elect(1);
    net.dropType('app', 1, 3);
    net.propose(1, 'a');
    net.propose(1, 'b');
    const hb = (): Message[] => net.delivered.filter((m) => m.type === 'heartbeat' && m.to === 3);
    net.tick([1]);
    const last = hb()[hb().length - 1];
    expect(last?.type === 'heartbeat' ? last.commit : -1).toBe(net.raw(3).status().lastIndex);
    expect(net.raw(1).status().commit).toBeGreaterThan(net.raw(3).status().lastIndex);
  });

  it('a restarted node recovers its term, vote and log from storage and catches up', () => {
    const net = new Network([1, 2, 3]);
    net.elect(1);
    net.propose(1, 'a');
    const before = net.raw(2).status();
    net.restart(2);
    const after = net.raw(2).status();
    expect(after).toMatchObject({ term: before.term, vote: before.vote, lastIndex: before.lastIndex });
    net.propose(1, 'b');
    net.tick(undefined, 2);
    expect(net.node(2).applied).toEqual(['a', 'b']); // re-applied from the start (no snapshot yet)
  });
});

describe('flow control', () => {
  it('pipelined appends per follower are bounded by maxInflightMsgs', () => {
    const s = solo(1, [1, 2], { config: { ...noPreVote, maxInflightMsgs: 2 } });
    makeLeader(s, [2]);
    drainMessages(s);
    step(s, appResp(2, 1, 1, 1)); // 2 matches the no-op: replicate state
    const sent: Message[] = [];
    for (let i = 0; i < 5; i++) {
      s.raw.propose(enc(`p${i}`));
      sent.push(...drainMessages(s));
    }
    const apps = ofType(sent, 'app').filter((m) => m.entries.length > 0);
    expect(apps).toHaveLength(2);
    const more = step(s, appResp(2, 1, 1, apps[0]?.entries[0]?.index ?? 0));
    const next = ofType(more, 'app');
    expect(next).toHaveLength(1); // one slot freed, one more message carrying everything pending
    expect(next[0]?.entries.length).toBe(3);
  });

  it('one append carries at most maxSizePerMsgBytes of entries (but always at least one)', () => {
    const s = solo(1, [1, 2], { config: { ...noPreVote, maxSizePerMsgBytes: 2 * (100 + 24) } });
    makeLeader(s, [2]);
    drainMessages(s);
    for (let i = 0; i < 5; i++) s.raw.propose(new Uint8Array(100));
    drainMessages(s);
    // 2 acks the no-op; the leader now sends the 5 proposals in messages of 2 entries.
    const out = step(s, appResp(2, 1, 1, 1));
    const apps = ofType(out, 'app');
    expect(apps.map((m) => m.entries.length)).toEqual([2, 2, 1]);
    const big = solo(1, [1, 2], { config: { ...noPreVote, maxSizePerMsgBytes: 10 } });
    makeLeader(big, [2]);
    drainMessages(big);
    big.raw.propose(new Uint8Array(100));
    drainMessages(big);
    expect(ofType(step(big, appResp(2, 1, 1, 1)), 'app')[0]?.entries).toHaveLength(1);
  });

  it('proposals are refused past maxUncommittedEntriesBytes with UNCOMMITTED_LIMIT, accepted again after commit', () => {
    const net = new Network([1, 2, 3], { config: { maxUncommittedEntriesBytes: 3 * (10 + 24) } });
    net.elect(1);
    net.isolate(2);
    net.isolate(3);
    for (let i = 0; i < 3; i++) net.raw(1).propose(new Uint8Array(10));
    let err: unknown;
    try {
      net.raw(1).propose(new Uint8Array(10));
    } catch (e) {
      err = e;
    }
    expect(isRaftError(err, 'UNCOMMITTED_LIMIT')).toBe(true);
    net.heal();
    net.tick(undefined, 2);
    expect(() => net.raw(1).propose(new Uint8Array(10))).not.toThrow();
  });

  it('proposals: NOT_LEADER on a follower, PROPOSAL_TOO_LARGE past the uncommitted limit', () => {
    const net = new Network([1, 2, 3], { config: { maxUncommittedEntriesBytes: 1000 } });
    net.elect(1);
    expect(() => net.raw(2).propose(enc('x'))).toThrow(expect.objectContaining({ code: 'NOT_LEADER' }) as Error);
    expect(() => net.raw(1).propose(new Uint8Array(2000))).toThrow(expect.objectContaining({ code: 'PROPOSAL_TOO_LARGE' }) as Error);
  });
});

describe('restart from durable state', () => {
  it('a durable commit below the snapshot index or the applied index is raised on restart', () => {
    const s = solo(1, [1, 2, 3], { terms: [1, 1, 1, 1, 1, 1], hardState: { term: 1, vote: 0, commit: 2 } });
    s.storage.createSnapshot(4, { voters: [1, 2, 3], learners: [] });
    s.storage.compact(4);
    const cfg = { ...s.raw.raft.cfg, applied: 4 };
    const restarted = new RawNode(cfg, s.storage);
    expect(restarted.status()).toMatchObject({ commit: 4, applied: 4 });
    const ahead = new RawNode({ ...s.raw.raft.cfg, applied: 5 }, s.storage);
    expect(ahead.status()).toMatchObject({ commit: 5, applied: 5 });
  });

  it('entries whose term record was lost in a crash raise the term on restart (and it is persisted)', () => {
    const s = solo(1, [1, 2, 3], { terms: [1, 3], hardState: { term: 2, vote: 2, commit: 0 } });
    expect(s.raw.status()).toMatchObject({ term: 3, vote: 0 });
    const rd = s.raw.ready();
    expect(rd.hardState).toMatchObject({ term: 3, vote: 0 });
    expect(rd.mustSync).toBe(true);
    s.raw.advance(rd);
  });
});

describe('Ready size', () => {
  it('committed entries are handed out in Readies of at most maxCommittedSizePerReadyBytes (at least one entry)', () => {
    const s = solo(2, [1, 2, 3], { terms: [1, 1, 1, 1, 1], hardState: { term: 1, vote: 0, commit: 5 }, config: { maxCommittedSizePerReadyBytes: 2 * 25 } });
    const sizes: number[] = [];
    while (s.raw.hasReady()) sizes.push(drain(s).committedEntries.length);
    expect(sizes).toEqual([2, 2, 1]);
    expect(s.raw.status().applied).toBe(5);
  });
});
