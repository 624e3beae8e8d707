// The CI seed sweep of the driver simulation, shared by the 3-member and 5-member test files (vitest runs the two
// files in parallel): chunks of seeds, each chunk one test, so a failure names its seeds and no test runs long.
// A failure prints its report (seed, property, last events) and the replay command.
import { expect, it } from 'vitest';
import { expectNoFailures } from '../expect-no-failures.js';
import { DRIVER_DEFAULT_TICKS, formatDriverFailure, runDriverSimulation } from './driver-simulation.js';
import type { DriverSimResult } from './driver-simulation.js';

/** x2 (3 and 5 members) = 800 seeds per CI run: about 15 s + 27 s here (vitest ran the two files one after the other on 2 cores). */
export const DRIVER_SEEDS_PER_SIZE = 400;
const CHUNK = 50;

export function driverSweep(nodes: 3 | 5, firstSeed = 1, seeds = DRIVER_SEEDS_PER_SIZE): void {
  for (let lo = firstSeed; lo < firstSeed + seeds; lo += CHUNK) {
    const hi = Math.min(lo + CHUNK, firstSeed + seeds) - 1;
    it(`${nodes} members, seeds ${lo}..${hi}: the production driver keeps every checker, then heals`, async () => {
      const failures: DriverSimResult[] = [];
      let ticks = 0;
      for (let seed = lo; seed <= hi; seed++) {
        const r = await runDriverSimulation({ seed, nodes });
        ticks += r.stats.ticks;
        if (!r.ok) failures.push(r);
      }
      expectNoFailures(failures, formatDriverFailure);
      // The sweep really ran: every seed went through its fault phase and healed.
      expect(ticks).toBeGreaterThan((hi - lo + 1) * DRIVER_DEFAULT_TICKS);
    });
  }
}
