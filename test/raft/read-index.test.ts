import { describe, expect, it } from 'vitest';
import { Network, enc } from './network.js';
import { drainMessages, ofType, solo, step } from './helpers.js';
import { isRaftError } from '../../src/raft/errors.js';

describe('ReadIndex (thesis §6.4)', () => {
  it('§6.4 the leader answers a read after a quorum acknowledges a heartbeat round, at its commit index', () => {
    const net = new Network([1, 2, 3]);
    net.elect(1);
    net.propose(1, 'a');
    const commit = net.raw(1).status().commit;
    net.raw(1).readIndex(enc('r1'));
    net.stabilize();
    expect(net.node(1).readStates).toEqual([{ index: commit, context: enc('r1') }]);
    const hbs = net.delivered.filter((m) => m.type === 'heartbeat' && m.context.byteLength > 0);
    expect(hbs.length).toBe(2); // the confirmation round carried the request's context
  });

  it('§6.4 a leader cut off from its quorum does not answer reads (it may be deposed)', () => {
    const net = new Network([1, 2, 3]);
    net.elect(1);
    net.isolate(1);
    net.raw(1).readIndex(enc('r1'));
    net.tick([1], 3);
    expect(net.node(1).readStates).toEqual([]);
  });

  it('§6.4 one acknowledgement plus the leader is a quorum of three: the read does not wait for the third', () => {
    const net = new Network([1, 2, 3]);
    net.elect(1);
    net.isolate(3);
    net.raw(1).readIndex(enc('r'));
    net.stabilize();
    expect(net.node(1).readStates).toHaveLength(1);
  });

  it('§6.4 a follower forwards the read to the leader and gets the read index back', () => {
    const net = new Network([1, 2, 3]);
    net.elect(1);
    net.propose(1, 'a');
    net.raw(2).readIndex(enc('f1'));
    net.stabilize();
    expect(net.node(2).readStates).toEqual([{ index: net.raw(1).status().commit, context: enc('f1') }]);
    expect(net.delivered.some((m) => m.type === 'read-index' && m.from === 2 && m.to === 1)).toBe(true);
  });

  it('§6.4 a new leader answers reads only once it has committed an entry of its term', () => {
    const s = solo(1, [1, 2, 3], { config: { preVote: false } });
    s.raw.campaign();
    drainMessages(s);
    step(s, { type: 'vote-resp', from: 2, to: 1, term: 1, reject: false });
    s.raw.readIndex(enc('early'));
    const out = drainMessages(s);
    expect(ofType(out, 'heartbeat')).toHaveLength(0); // deferred: the no-op is not committed yet
    const after = step(s, { type: 'app-resp', from: 2, to: 1, term: 1, index: 1, reject: false, rejectHint: 0, logTerm: 0 });
    const hbs = ofType(after, 'heartbeat');
    expect(hbs.length).toBe(2);
    s.raw.step({ type: 'heartbeat-resp', from: 2, to: 1, term: 1, context: hbs[0]?.context ?? new Uint8Array() });
    const ready = s.raw.ready();
    expect(ready.readStates).toEqual([{ index: 1, context: enc('early') }]); // the commit index of its own term
    s.raw.advance(ready);
  });

  it('§6.4 a single-voter cluster answers at once', () => {
    const net = new Network([1]);
    net.elect(1);
    net.raw(1).readIndex(enc('x'));
    net.stabilize();
    expect(net.node(1).readStates).toEqual([{ index: net.raw(1).status().commit, context: enc('x') }]);
  });

  it('§6.4 a read with no known leader fails fast with UNAVAILABLE', () => {
    const net = new Network([1, 2, 3]);
    let err: unknown;
    try {
      net.raw(2).readIndex(enc('x'));
    } catch (e) {
      err = e;
    }
    expect(isRaftError(err, 'UNAVAILABLE')).toBe(true);
  });

  it('§6.4 a later confirmation releases earlier pending reads too', () => {
    const net = new Network([1, 2, 3]);
    net.elect(1);
    net.dropType('heartbeat-resp');
    net.raw(1).readIndex(enc('a'));
    net.stabilize();
    expect(net.node(1).readStates).toHaveLength(0);
    net.heal();
    net.raw(1).readIndex(enc('b'));
    net.stabilize();
    expect(net.node(1).readStates.map((r) => new TextDecoder().decode(r.context))).toEqual(['a', 'b']);
  });
});
