// Defaults shared by the CLI and the tests, so that a seed printed by one replays in the other.

/** Fault-phase events per seed (tuned so that 1,000+ seeds fit in ~2 minutes of CI on 2 cores). */
export const DEFAULT_STEPS = 2000;

/** Without an explicit --nodes, even seeds run 3 nodes and odd seeds 5. */
export function nodesForSeed(seed: number): 3 | 5 {
  return seed % 2 === 0 ? 3 : 5;
}
