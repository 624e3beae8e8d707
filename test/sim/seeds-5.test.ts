// 600 seeds of a 5-node cluster under every fault the simulation knows (see simulator.ts).
import { describe } from 'vitest';
import { sweep } from './seed-sweep.js';

describe('simulation, 5 nodes', () => {
  sweep(5);
});
