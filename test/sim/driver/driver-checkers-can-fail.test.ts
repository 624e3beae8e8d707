// The driver simulation's checkers can fail: with the production driver broken on purpose (NodeDeps.testingFaults)
// or the simulated state machine's snapshot broken (SimKv), a seed fails within a bounded number of seeds, and
// the same seed passes unbroken. The seeds are pinned: if the simulation's random draws change, re-pin them with
//   npm run build && npm run sim -- --driver --nodes N --seeds 30 --driver-fault F [--no-durability-checks]
// (the first FAIL line names the seed).
import { describe, expect, it } from 'vitest';
import type { SimProperty } from '../violation.js';
import { formatDriverFailure, runDriverSimulation } from './driver-simulation.js';
import type { DriverFault, DriverSimResult } from './driver-simulation.js';

async function firstFailure(fault: DriverFault, nodes: 3 | 5, maxSeeds: number, durabilityChecks = true): Promise<DriverSimResult | undefined> {
  for (let seed = 1; seed <= maxSeeds; seed++) {
    const r = await runDriverSimulation({ seed, nodes, driverFault: fault, durabilityChecks });
    if (!r.ok) return r;
  }
  return undefined;
}

interface Case {
  readonly fault: DriverFault;
  readonly nodes: 3 | 5;
  readonly seed: number; // the first failing seed (pinned)
  readonly maxSeeds: number; // the bound within which it must fail
  readonly expected: SimProperty;
  readonly durabilityChecks?: boolean;
  readonly why: string;
}

const CASES: readonly Case[] = [
  // (a) messagesAfterPersist (append acks, votes) sent before the WAL fsync: caught at the send.
  { fault: 'ack-before-fsync', nodes: 3, seed: 1, maxSeeds: 5, expected: 'durability', why: 'a vote granted before it is durable' },
  { fault: 'ack-before-fsync', nodes: 5, seed: 1, maxSeeds: 5, expected: 'durability', why: 'a vote granted before it is durable' },
  // (a) again with the direct persist-before-send checks off: the run still fails end to end (the core's own
  // assertion kills a leader's loop: a follower acknowledged entries that its crash then lost).
  { fault: 'ack-before-fsync', nodes: 3, seed: 18, maxSeeds: 40, expected: 'driver-failure', durabilityChecks: false, why: 'a leader believes in entries a crash lost' },
  { fault: 'ack-before-fsync', nodes: 5, seed: 7, maxSeeds: 40, expected: 'driver-failure', durabilityChecks: false, why: 'a leader believes in entries a crash lost' },
  // (b) the newly durable half of a Ready's committed entries handed to the apply chain before the older half.
  { fault: 'apply-out-of-order', nodes: 3, seed: 1, maxSeeds: 10, expected: 'state-machine-safety', why: 'an apply gap' },
  { fault: 'apply-out-of-order', nodes: 5, seed: 1, maxSeeds: 10, expected: 'state-machine-safety', why: 'an apply gap' },
  // (c) the state machine snapshots (and syncs its applied index) without flushing its write buffer first,
  // so the file (and the WAL compacted to it) claims entries the store does not hold.
  { fault: 'snapshot-without-flush', nodes: 3, seed: 1, maxSeeds: 10, expected: 'state-machine-safety', why: 'a restored snapshot differs from what was applied' },
  { fault: 'snapshot-without-flush', nodes: 5, seed: 1, maxSeeds: 10, expected: 'state-machine-safety', why: 'a restored snapshot differs from what was applied' },
];

describe('the driver simulation catches a broken driver', () => {
  for (const c of CASES) {
    const mode = c.durabilityChecks === false ? ', end-to-end checkers only' : '';
    it(`${c.fault}${mode}, ${c.nodes} members: ${c.expected} (${c.why}) at seed ${c.seed}, within ${c.maxSeeds} seeds`, async () => {
      const r = await firstFailure(c.fault, c.nodes, c.maxSeeds, c.durabilityChecks);
      expect(r, `no violation in seeds 1..${c.maxSeeds}`).toBeDefined();
      if (r === undefined) return;
      expect(r.violation?.property, formatDriverFailure(r)).toBe(c.expected);
      expect(r.seed, formatDriverFailure(r)).toBe(c.seed);
      expect(r.trace.length).toBeGreaterThan(0);
      // The same seed with the production driver as it is passes: the violation is the fault's doing.
      const clean = await runDriverSimulation({ seed: r.seed, nodes: c.nodes, ...(c.durabilityChecks === false ? { durabilityChecks: false } : {}) });
      expect(clean.ok, formatDriverFailure(clean)).toBe(true);
    });
  }
});
