// The leader's lease deadlines (node/lessor.ts), stepped by hand: a new leader extends every lease, a
// checkpointed remaining TTL survives a failover, keep-alives move deadlines, a deposed leader decides nothing,
// revokes are proposed once and again after a while, checkpoints are due only for long leases.
import { describe, expect, it } from 'vitest';
import { Lessor } from '../../src/node/lessor.js';
import type { Lease } from '../../src/kv/types.js';

function setup(leases: Lease[], opts: Partial<ConstructorParameters<typeof Lessor>[1]> = {}): { lessor: Lessor; table: Map<number, Lease> } {
  const table = new Map(leases.map((l) => [l.id, l]));
  const lessor = new Lessor(
    { lease: (id) => table.get(id), leaseList: () => [...table.values()] },
    { extendMs: 1000, checkpointIntervalMs: 60_000, revokeRetryMs: 3000, maxRevokesPerCheck: 2, maxCheckpointsPerCheck: 10, ...opts },
  );
  return { lessor, table };
}

describe('lessor', () => {
  it('a new leader gives every lease its TTL plus an election timeout, or its checkpointed remaining TTL plus one', () => {
    const { lessor } = setup([
      { id: 1, ttlSeconds: 10, remainingSeconds: 0 },
      { id: 2, ttlSeconds: 600, remainingSeconds: 5 },
    ]);
    expect(lessor.takeExpired(0)).toEqual([]); // not the leader: nothing expires
    lessor.promote(0);
    expect(lessor.takeExpired(5_999)).toEqual([]);
    expect(lessor.takeExpired(6_000)).toEqual([2]); // 5 s remaining + 1 s
    expect(lessor.takeExpired(8_999)).toEqual([]); // 2's revoke is in flight
    expect(lessor.takeExpired(9_000)).toEqual([2]); // still there after revokeRetryMs: proposed again
    expect(lessor.takeExpired(10_999)).toEqual([]);
    expect(lessor.takeExpired(11_000)).toEqual([1]);
  });

  it('keep-alives move the deadline; an expired or unknown lease answers undefined; remaining TTL rounds up', () => {
    const { lessor, table } = setup([{ id: 7, ttlSeconds: 4, remainingSeconds: 0 }], { extendMs: 0 });
    lessor.promote(0);
    expect(lessor.remainingSeconds(7, 1_500)).toBe(3);
    expect(lessor.renew(7, 3_000)).toBe(4);
    expect(lessor.takeExpired(6_999)).toEqual([]);
    expect(lessor.remainingSeconds(7, 6_999)).toBe(1);
    expect(lessor.renew(7, 7_000)).toBeUndefined(); // expired: the revoke is coming, the client must not think it alive
    expect(lessor.renew(99, 7_000)).toBeUndefined();
    // A grant applied while leading starts at its TTL; a revoke applied ends the deadline.
    table.set(8, { id: 8, ttlSeconds: 2, remainingSeconds: 0 });
    lessor.onApplied(new Map([[8, table.get(8)]]), 10_000);
    expect(lessor.remainingSeconds(8, 10_000)).toBe(2);
    table.delete(8);
    lessor.onApplied(new Map([[8, undefined]]), 10_500);
    expect(lessor.remainingSeconds(8, 10_500)).toBeUndefined();
  });

  it('a deposed leader keeps no deadlines and proposes nothing; at most maxRevokesPerCheck per check', () => {
    const { lessor } = setup([1, 2, 3].map((id) => ({ id, ttlSeconds: 1, remainingSeconds: 0 })), { extendMs: 0 });
    lessor.promote(0);
    lessor.demote();
    expect(lessor.takeExpired(100_000)).toEqual([]);
    expect(lessor.takeCheckpoints(100_000)).toEqual([]);
    expect(() => lessor.renew(1, 100_000)).toThrow(/does not lead/);
    lessor.promote(100_000);
    expect(lessor.takeExpired(101_000)).toHaveLength(2);
    expect(lessor.takeExpired(101_000)).toHaveLength(1);
  });

  it('checkpoints long leases every interval, and again after a keep-alive made the stored one stale', () => {
    const { lessor, table } = setup([
      { id: 1, ttlSeconds: 3600, remainingSeconds: 0 },
      { id: 2, ttlSeconds: 30, remainingSeconds: 0 },
    ]);
    lessor.promote(0);
    expect(lessor.takeCheckpoints(59_999)).toEqual([]);
    expect(lessor.takeCheckpoints(60_000)).toEqual([{ id: 1, remainingSeconds: 3601 - 60 }]);
    table.set(1, { id: 1, ttlSeconds: 3600, remainingSeconds: 3541 }); // the checkpoint applied
    expect(lessor.renew(1, 61_000)).toBe(3600);
    expect(lessor.takeCheckpoints(61_000)).toEqual([{ id: 1, remainingSeconds: 3600 }]);
    expect(lessor.takeCheckpoints(61_001)).toEqual([]);
  });
});
