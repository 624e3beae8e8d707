// The comparison's etcd side on real processes: a 3-member etcd starts, a leader is found, a kill -9 of it under
// load is timed by measureFailover, the member restarts, and everything stops. Skipped where etcd is absent
// (failing instead under CI: ../system-deps.ts).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { EtcdCluster } from '../../bench/etcd-cluster.js';
import { measureFailover } from '../../bench/failover.js';
import { describeWithSystem } from '../system-deps.js';

describeWithSystem(['etcd', 'etcdctl'], 'EtcdCluster', () => {
  it('starts 3 members, survives kill -9 of the leader (failover timed), restarts it, stops all', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'raftkv-etcd-cluster-'));
    // Ports away from vs-etcd's (2379x/2380x) so a comparison running meanwhile does not collide.
    const base = 25000 + (process.pid % 500) * 10;
    const cluster = new EtcdCluster({ runDir: dir, size: 3, clientBasePort: base, peerBasePort: base + 5 });
    try {
      await cluster.start();
      expect(cluster.pids()).toHaveLength(3);
      const leader = await cluster.leaderIndex();
      expect(leader).toBeDefined();
      const r = await measureFailover(cluster, { repetitions: 1, concurrency: 4, requestTimeoutMs: 1000, giveUpMs: 20_000, seed: 1, log: () => undefined });
      const sample = r.samples[0];
      expect(sample?.killedIndex).toBe(leader);
      // An election cannot finish before one election timeout (1000 ms) has passed without a heartbeat.
      expect(sample?.failoverMs).toBeGreaterThan(500);
      expect(sample?.failoverMs).toBeLessThan(20_000);
      expect(sample?.newTerm).toBeGreaterThan(sample?.oldTerm ?? Number.POSITIVE_INFINITY);
      expect(cluster.members.every((m) => m.running)).toBe(true); // the killed member was restarted
    } finally {
      await cluster.stop();
      rmSync(dir, { recursive: true, force: true });
    }
    expect(cluster.members.every((m) => !m.running)).toBe(true);
  }, 60_000);
});
