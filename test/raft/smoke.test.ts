import { describe, expect, it } from 'vitest';
import { Network } from './network.js';

describe('smoke', () => {
  it('elects a leader and replicates', () => {
    const net = new Network([1, 2, 3]);
    const l = net.tickUntilLeader();
    net.propose(l, 'a');
    net.propose(l, 'b');
    net.heartbeat(l); // followers learn the commit of 'b' with the next heartbeat (lazy commit broadcast)
    for (const n of net.nodes.values()) expect(n.applied).toEqual(['a', 'b']);
  });
});
