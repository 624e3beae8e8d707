// Counters of the driver loop and its rooms (tests check group commit and snapshot traffic with them).

export interface DriverStats {
  turns: number; // loop iterations that drained the inbox
  readies: number; // Ready bundles handled
  syncs: number; // WAL fsyncs (mustSync Readies)
  entriesPersisted: number; // entries appended to the WAL
  entriesApplied: number; // committed entries applied to the state machine
  proposals: number; // client writes proposed to the core
  readBatches: number; // ReadIndex rounds started (one per loop turn with linearizable reads)
  snapshotsTaken: number; // state machine snapshots written by this node
  snapshotsSent: number; // snapshot files sent to followers
  snapshotsInstalled: number; // snapshots received from a leader and installed
  droppedPeerMessages: number; // peer message batches dropped because the inbox was full
}

export function newDriverStats(): DriverStats {
  return {
    turns: 0,
    readies: 0,
    syncs: 0,
    entriesPersisted: 0,
    entriesApplied: 0,
    proposals: 0,
    readBatches: 0,
    snapshotsTaken: 0,
    snapshotsSent: 0,
    snapshotsInstalled: 0,
    droppedPeerMessages: 0,
  };
}
