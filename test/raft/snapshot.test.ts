import { describe, expect, it } from 'vitest';
import { Network } from './network.js';
import { drain, ofType, solo, step } from './helpers.js';

function lagBehindCompaction(net: Network, leader: number, lagging: number, n: number): void {
  net.isolate(lagging);
  for (let i = 0; i < n; i++) net.propose(leader, `v${i}`);
  net.compact(leader);
  expect(net.raw(leader).status().firstIndex).toBeGreaterThan(net.raw(lagging).status().lastIndex + 1);
}

describe('snapshots (§7)', () => {
  it('§7 a follower behind the leader first index gets a snapshot, installs it, then follows the log', () => {
    const net = new Network([1, 2, 3]);
    net.elect(1);
    lagBehindCompaction(net, 1, 3, 10);
    net.heal();
    net.tick(undefined, 2);
    const snaps = net.delivered.filter((m) => m.type === 'snap' && m.to === 3);
    expect(snaps).toHaveLength(1);
    const snapIndex = snaps[0]?.type === 'snap' ? snaps[0].snapshot.metadata.index : -1;
    expect(net.node(3).storage.snapshot().metadata.index).toBe(snapIndex);
    expect(net.node(3).applied).toEqual(net.node(1).applied);
    net.propose(1, 'after');
    net.heartbeat(1);
    expect(net.node(3).applied[net.node(3).applied.length - 1]).toBe('after');
    expect(net.raw(1).status().progress.get(3)?.state).toBe('replicate');
  });

  it('§7 a failed snapshot transfer (reportSnapshot false) is retried after the next heartbeat', () => {
    const net = new Network([1, 2, 3]);
    net.elect(1);
    lagBehindCompaction(net, 1, 3, 5);
    net.heal();
    net.dropType('snap'); // the network reports lost snapshot streams with reportSnapshot(false)
    net.tick(undefined, 3);
    expect(net.raw(1).status().progress.get(3)?.state).toBe('probe');
    expect(net.node(3).applied).not.toEqual(net.node(1).applied);
    net.heal();
    net.tick(undefined, 3);
    expect(net.node(3).applied).toEqual(net.node(1).applied);
  });

  it('§7 a follower ignores a snapshot that is not newer than its commit index', () => {
    const s = solo(2, [1, 2, 3], { terms: [1, 1, 1], hardState: { term: 1, vote: 0, commit: 3 } });
    const out = step(s, { type: 'snap', from: 1, to: 2, term: 1, snapshot: { metadata: { index: 2, term: 1, confState: { voters: [1, 2, 3], learners: [] } } } });
    expect(ofType(out, 'app-resp')[0]).toMatchObject({ reject: false, index: 3 });
    expect(s.storage.snapshot().metadata.index).toBe(0);
  });

  it('§7 a follower that already holds the snapshot last entry only advances its commit', () => {
    const s = solo(2, [1, 2, 3], { terms: [1, 1, 1, 1], hardState: { term: 1, vote: 0, commit: 1 } });
    s.raw.step({ type: 'snap', from: 1, to: 2, term: 1, snapshot: { metadata: { index: 3, term: 1, confState: { voters: [1, 2, 3], learners: [] } } } });
    const rd = drain(s);
    expect(rd.snapshot).toBeUndefined();
    expect(s.raw.status()).toMatchObject({ commit: 3, lastIndex: 4 });
  });

  it('§7 installing a snapshot replaces a conflicting log and adopts the snapshot membership', () => {
    const s = solo(2, [1, 2, 3], { terms: [1, 1, 2, 2], hardState: { term: 2, vote: 0, commit: 2 } });
    s.raw.step({ type: 'snap', from: 1, to: 2, term: 3, snapshot: { metadata: { index: 5, term: 3, confState: { voters: [1, 2, 3, 4], learners: [] } } } });
    const rd = s.raw.ready();
    expect(rd.snapshot?.metadata.index).toBe(5);
    expect(rd.mustSync).toBe(true);
    expect(ofType(rd.messagesAfterPersist, 'app-resp')[0]).toMatchObject({ index: 5, reject: false });
    s.storage.applySnapshot(rd.snapshot ?? { metadata: { index: 0, term: 0, confState: { voters: [], learners: [] } } });
    if (rd.hardState !== undefined) s.storage.setHardState(rd.hardState);
    s.raw.advance(rd);
    expect(s.raw.status()).toMatchObject({ commit: 5, applied: 5, lastIndex: 5, firstIndex: 6 });
    expect(s.raw.status().confState.voters).toEqual([1, 2, 3, 4]);
  });

  it('§7 a node restarted after compaction rebuilds from its snapshot and re-applies only later entries', () => {
    const net = new Network([1, 2, 3]);
    net.elect(1);
    for (let i = 0; i < 4; i++) net.propose(1, `a${i}`);
    net.compact(2);
    net.propose(1, 'b');
    net.heartbeat(1);
    const before = [...net.node(2).applied];
    net.restart(2);
    net.tick(undefined, 2);
    expect(net.node(2).applied).toEqual(before);
    expect(net.node(2).appliedIndexes.length).toBeLessThan(3); // only what followed the snapshot
  });
});
