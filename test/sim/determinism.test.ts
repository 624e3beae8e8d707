// Same seed => the same run, event for event (a digest of every event and the same statistics); different
// seeds => different runs. This is what makes `SEED=<s> npm run sim` a replay.
import { describe, expect, it } from 'vitest';
import { runSimulation } from './simulator.js';

describe('simulation determinism', () => {
  for (const nodes of [3, 5] as const) {
    it(`${nodes} nodes: a seed replays to the identical trace`, () => {
      for (const seed of [7, 4242, 987654]) {
        const a = runSimulation({ seed, nodes, steps: 1500 });
        const b = runSimulation({ seed, nodes, steps: 1500 });
        expect(b.traceHash, `seed ${seed}`).toBe(a.traceHash);
        expect(b.stats, `seed ${seed}`).toEqual(a.stats);
        expect(a.stats.events).toBeGreaterThanOrEqual(1500);
      }
    });
  }

  it('different seeds give different traces', () => {
    const hashes = new Set<string>();
    for (let seed = 1; seed <= 20; seed++) hashes.add(runSimulation({ seed, nodes: 3, steps: 500 }).traceHash);
    expect(hashes.size).toBe(20);
  });

  it('a failing run replays to the same violation and the same last events', () => {
    // A deliberately broken core (see checkers-can-fail.test.ts) gives a failing seed to replay.
    let failing: ReturnType<typeof runSimulation> | undefined;
    for (let seed = 1; seed <= 200 && failing === undefined; seed++) {
      const r = runSimulation({ seed, nodes: 3, steps: 2000, testingFault: 'vote-without-up-to-date-check' });
      if (!r.ok) failing = r;
    }
    expect(failing, 'no failing seed in 1..200').toBeDefined();
    if (failing === undefined) return;
    const again = runSimulation({ seed: failing.seed, nodes: 3, steps: 2000, testingFault: 'vote-without-up-to-date-check' });
    expect(again.violation).toEqual(failing.violation);
    expect(again.trace).toEqual(failing.trace);
    expect(again.trace.length).toBe(40);
    expect(again.traceHash).toBe(failing.traceHash);
  });
});
