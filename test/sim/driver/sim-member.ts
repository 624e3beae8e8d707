// A member id in the driver simulation: its disks (WAL, state machine store, snapshot files), which survive
// crashes, and its current process incarnation (the ports it runs on and, once start() resolved, its driver).
import type { PeerConfig } from '../../../src/node/config.js';
import type { RaftKvNode } from '../../../src/node/node.js';
import type { Index, NodeId } from '../../../src/raft/types.js';
import type { WriteRecord } from './client-history.js';
import type { SimClock } from './sim-clock.js';
import { SimFileStore } from './sim-files.js';
import type { SimNodeFiles } from './sim-files.js';
import { KvDisk } from './sim-kv.js';
import type { SimKv } from './sim-kv.js';
import type { SimTransport } from './sim-transport.js';
import { WalDisk } from './sim-wal.js';
import type { SimWal, ViolationSink } from './sim-wal.js';

/** One running process of a member: its ports and (once start() resolved) its driver. */
export class Incarnation {
  node: RaftKvNode | undefined;
  stopping = false; // stop() called
  recordedCommit: Index = 0; // commit mark already fed to the checker
  readonly writes = new Set<WriteRecord>(); // client writes in flight on this process

  constructor(
    readonly epoch: number,
    readonly clock: SimClock,
    readonly wal: SimWal,
    readonly kv: SimKv,
    readonly transport: SimTransport,
    readonly files: SimNodeFiles,
  ) {}

  get alive(): boolean {
    return this.clock.isAlive;
  }
}

/** A member id's disk (survives crashes) and its current process, if any. */
export class Member {
  readonly wal: WalDisk;
  readonly kv = new KvDisk();
  readonly files = new SimFileStore();
  inc: Incarnation | undefined;
  epoch = 0; // incarnations started
  retired = false; // removed from the cluster and shut down for good
  walFullUntilMs = 0; // its WAL disk has no space until then (simulated ms)
  kvFullUntilMs = 0; // its state machine disk has no space until then

  constructor(
    readonly id: NodeId,
    readonly joined: 'new' | 'existing',
    readonly initialMembers: readonly PeerConfig[],
    sink: ViolationSink,
  ) {
    this.wal = new WalDisk(id, sink);
  }

  get dataDir(): string {
    return `/sim/n${this.id}`;
  }
}
