// Helpers over the core's injected Rng: every random choice of the simulation goes through one seeded Rng.
import type { Rng } from '../../src/raft/types.js';

const MILLION = 1_000_000;

/** True with probability p (0..1), drawn from rng. */
export function chance(rng: Rng, p: number): boolean {
  if (p <= 0) return false;
  if (p >= 1) return true;
  return rng.int(MILLION) < Math.floor(p * MILLION);
}

/** A uniform integer in [lo, hi] (both inclusive). */
export function between(rng: Rng, lo: number, hi: number): number {
  if (hi < lo) throw new Error(`between: empty range [${lo}, ${hi}]`);
  return lo + rng.int(hi - lo + 1);
}

/** One element of a non-empty array. */
export function pick<T>(rng: Rng, items: readonly T[]): T {
  if (items.length === 0) throw new Error('pick: empty array');
  const item = items[rng.int(items.length)];
  if (item === undefined) throw new Error('pick: hole in array');
  return item;
}

/** A new seed for a child Rng (one per node), drawn from the parent so the whole run stays one seed. */
export function childSeed(rng: Rng): number {
  return rng.int(0x7fffffff);
}

/** Fisher-Yates shuffle in place; returns the array. */
export function shuffle<T>(rng: Rng, items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const a = items[i] as T;
    items[i] = items[j] as T;
    items[j] = a;
  }
  return items;
}
