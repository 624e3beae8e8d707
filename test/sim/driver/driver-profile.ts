// The fault mix of one driver-simulation seed, drawn from it (rates per nemesis tick of TICK_MS unless said).
import type { Rng } from '../../../src/raft/types.js';
import { pick } from '../sim-rng.js';
import type { NetworkFaults } from './sim-network.js';

export interface DriverProfile extends NetworkFaults {
  readonly writesPerTick: number; // mean client writes
  readonly readsPerTick: number; // mean client reads
  readonly serializableReadShare: number; // of the reads
  readonly keys: number; // distinct keys written and read
  readonly crashRate: number; // a random member crashes (kill -9 or power loss)
  readonly leaderCrashRate: number; // per new leader: crashed or cut off within 3 ticks ("kill the leader")
  readonly gracefulRestartRate: number; // a member is stopped with stop() (a leader hands over) and restarted
  readonly partitionRate: number; // isolate one member, split in two, or cut links one way
  readonly confChangeRate: number; // add a learner or voter, promote, remove (through the leader's API)
  readonly transferRate: number; // transferLeadership to a random voter
  readonly saveSnapshotRate: number; // saveSnapshot() on a random member
  readonly snapshotEveryEntries: number; // NodeConfig: small, so snapshots, compaction and snapshot sends happen
  readonly maxInboxItems: number; // NodeConfig: sometimes small, so inputs are dropped or refused
  readonly slowFsyncRate: number; // per WAL fsync: 20..150 ms instead of 2..6
  readonly walFullRate: number; // a member's WAL disk fills up for 5..30 ticks (fsyncs fail with DISK_FULL)
  readonly kvFullRate: number; // a member's state machine disk fills up for 5..30 ticks (flushes stall)
  readonly slowApplyRate: number; // per apply batch: 1..15 ms instead of at once (advance() runs ahead of it)
  readonly crashPointRate: number; // at a crash point (snapshot restore, flush before compaction): crash there
  readonly tornWrites: boolean; // a crash may keep part of a WAL write batch
}

export function drawDriverProfile(rng: Rng): DriverProfile {
  return {
    dropRate: pick(rng, [0, 0.01, 0.05, 0.15]),
    dupRate: pick(rng, [0, 0.01, 0.05]),
    longDelayRate: pick(rng, [0, 0.02, 0.1]),
    snapshotFailRate: pick(rng, [0, 0.1, 0.3]),
    writesPerTick: pick(rng, [0.5, 1, 3]),
    readsPerTick: pick(rng, [0.2, 0.5, 1.5]),
    serializableReadShare: pick(rng, [0, 0.3]),
    keys: pick(rng, [2, 4, 8]),
    crashRate: pick(rng, [0, 0.005, 0.02]),
    leaderCrashRate: pick(rng, [0, 0, 0.1, 0.3]),
    gracefulRestartRate: pick(rng, [0, 0.005, 0.01]),
    partitionRate: pick(rng, [0, 0.01, 0.03]),
    confChangeRate: pick(rng, [0, 0.01, 0.04]),
    transferRate: pick(rng, [0, 0.005, 0.02]),
    saveSnapshotRate: pick(rng, [0, 0.01]),
    snapshotEveryEntries: pick(rng, [5, 20, 100]),
    maxInboxItems: pick(rng, [10_000, 10_000, 16]),
    slowFsyncRate: pick(rng, [0, 0.05, 0.2]),
    walFullRate: pick(rng, [0, 0, 0.005, 0.02]),
    kvFullRate: pick(rng, [0, 0, 0.005, 0.02]),
    slowApplyRate: pick(rng, [0, 0.1, 0.5]),
    crashPointRate: pick(rng, [0, 0.05, 0.3]),
    tornWrites: rng.int(2) === 0,
  };
}
