// The benchmark's seeded randomness (src/raft/rng.ts underneath), so a key sequence can be replayed from its seed.
import { seededRng } from '../src/raft/rng.js';
import type { SeededRng } from '../src/raft/rng.js';

export class BenchRng {
  private readonly rng: SeededRng; // the project's one seeded PRNG

  constructor(readonly seed: number) {
    this.rng = seededRng(seed);
  }

  /** A float in [0, 1). */
  next(): number {
    return this.rng.float();
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return this.rng.int(n);
  }

  bytes(length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) out[i] = this.int(256);
    return out;
  }
}

export function randomSeed(): number {
  return Math.floor(Math.random() * 0x7fffffff);
}
