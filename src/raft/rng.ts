// A small, fast, seeded PRNG (mulberry32). The core only ever draws randomness from an injected Rng.
import type { Rng } from './types.js';
import { assert } from './util.js';

/** The Rng plus what tests and benchmarks draw: floats in [0, 1). The one seeded PRNG of the project. */
export interface SeededRng extends Rng {
  float(): number; // uniform in [0, 1)
}

export function seededRng(seed: number): SeededRng {
  let state = seed >>> 0; // 32-bit state, advanced by a Weyl sequence
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    float: next,
    int(maxExclusive: number): number {
      assert(Number.isInteger(maxExclusive) && maxExclusive > 0, `rng.int(${maxExclusive}): bound must be a positive integer`);
      return Math.floor(next() * maxExclusive);
    },
  };
}
