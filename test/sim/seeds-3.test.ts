// 600 seeds of a 3-node cluster under every fault the simulation knows (see simulator.ts).
import { describe } from 'vitest';
import { sweep } from './seed-sweep.js';

describe('simulation, 3 nodes', () => {
  sweep(3);
});
