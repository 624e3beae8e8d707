// The CI seed sweep shared by the 3-node and 5-node test files: chunks of seeds, each chunk one test, so a
// failure names its seeds and no single test runs long. Replay a failure with the printed command.
import { expect, it } from 'vitest';
import { expectNoFailures } from './expect-no-failures.js';
import { DEFAULT_STEPS } from './sim-defaults.js';
import { formatFailure, runSimulation, type SimResult } from './simulator.js';

export const SEEDS_PER_NODE_COUNT = 600; // x2 (3 and 5 nodes) = 1,200 seeds per CI run
const CHUNK = 100;

export function sweep(nodes: 3 | 5, firstSeed = 1, seeds = SEEDS_PER_NODE_COUNT): void {
  for (let lo = firstSeed; lo < firstSeed + seeds; lo += CHUNK) {
    const hi = Math.min(lo + CHUNK, firstSeed + seeds) - 1;
    it(`${nodes} nodes, seeds ${lo}..${hi}: every safety checker holds, then liveness after healing`, () => {
      const failures: SimResult[] = [];
      let events = 0;
      for (let seed = lo; seed <= hi; seed++) {
        const r = runSimulation({ seed, nodes, steps: DEFAULT_STEPS });
        events += r.stats.events;
        if (!r.ok) failures.push(r);
      }
      expectNoFailures(failures, formatFailure);
      // The sweep really ran: every seed processed at least its fault-phase events.
      expect(events).toBeGreaterThanOrEqual((hi - lo + 1) * DEFAULT_STEPS);
    });
  }
}
