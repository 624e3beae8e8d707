// 400 seeds of a 5-member cluster running the production driver under every fault of the driver simulation.
import { describe } from 'vitest';
import { driverSweep } from './driver-sweep.js';

describe('driver simulation, 5 members', () => {
  driverSweep(5);
});
