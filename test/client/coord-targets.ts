// The clusters the coordination tests (watch, lease, lock, election, their CLI) run against: each a 3-member
// cluster on loopback whose members can be killed and restarted. The suites run once per entry of TARGETS, so
// switching raftkv on is adding RAFTKV_TARGET there (once its server serves etcd's Watch and Lease services).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdCluster } from '../../bench/etcd-cluster.js';
import { clusterStatus } from '../../cluster/wait.js';
import { startTestCluster } from '../integration/helpers.js';
import type { SystemDep } from '../system-deps.js';

export interface CoordTarget {
  readonly name: string;
  readonly endpoints: readonly string[]; // host:port of each member's client port, member i at index i
  /** kill -9 member i. */
  kill(i: number): Promise<void>;
  /** Starts member i again on its data and waits until the cluster serves writes. */
  restart(i: number): Promise<void>;
  close(): Promise<void>;
}

export interface CoordTargetKind {
  readonly name: string;
  readonly deps: readonly SystemDep[]; // what the suite needs installed (etcdctl for the interop tests)
  /** Starts a 3-member cluster using ports basePort..basePort+299 only. */
  start(basePort: number): Promise<CoordTarget>;
}

export const ETCD_TARGET: CoordTargetKind = {
  name: 'etcd',
  deps: ['etcd', 'etcdctl'],
  async start(basePort) {
    const runDir = mkdtempSync(join(tmpdir(), 'raftkv-coord-etcd-'));
    const cluster = new EtcdCluster({ runDir, size: 3, clientBasePort: basePort, peerBasePort: basePort + 10 });
    await cluster.start();
    return {
      name: 'etcd',
      endpoints: cluster.clientEndpoints,
      kill: (i) => cluster.kill9(i),
      restart: (i) => cluster.restart(i),
      async close() {
        await cluster.stop();
        rmSync(runDir, { recursive: true, force: true });
      },
    };
  },
};

export const RAFTKV_TARGET: CoordTargetKind = {
  name: 'raftkv',
  deps: ['etcdctl'],
  async start(basePort) {
    const tc = await startTestCluster({ nodes: 3, basePort: basePort + 100 }); // peers +101.., clients +201..
    const ids = tc.cluster.ids();
    const idOf = (i: number): number => {
      const id = ids[i];
      if (id === undefined) throw new Error(`no raftkv member ${i}`);
      return id;
    };
    return {
      name: 'raftkv',
      endpoints: tc.cluster.endpoints(),
      async kill(i) {
        tc.cluster.kill(idOf(i));
        await tc.cluster.waitExit(idOf(i));
      },
      async restart(i) {
        tc.cluster.start(idOf(i));
        await tc.leader();
        // Serving again: the restarted member itself knows the leader (etcdctl may be pointed at it next).
        const own = tc.cluster.endpoints([idOf(i)]);
        const deadline = Date.now() + 20_000;
        for (;;) {
          const [row] = await clusterStatus(own, 500);
          if (row !== undefined && !(row instanceof Error) && row.leaderId !== 0) break;
          if (Date.now() > deadline) throw new Error(`raftkv member ${idOf(i)} knows no leader 20 s after its restart`);
          await new Promise((r) => setTimeout(r, 50));
        }
      },
      close: () => tc.close(),
    };
  },
};

/** What the coordination suites run against: a real etcd and raftkv, the same tests. */
export const TARGETS: readonly CoordTargetKind[] = [ETCD_TARGET, RAFTKV_TARGET];
