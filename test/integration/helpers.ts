// Shared pieces of the integration tests: a real cluster of `raftkv serve` processes in a temp folder,
// on ports that no other test file uses, torn down after the test.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KvClient } from '../../src/client/index.js';
import type { DialTlsConfig, KvClientOptions } from '../../src/client/index.js';
import { LocalCluster } from '../../cluster/local-cluster.js';
import { waitForLeader } from '../../cluster/wait.js';
import { makeClusterCertificates } from '../../cluster/tls-certs.js';

export interface TestCluster {
  readonly cluster: LocalCluster;
  readonly client: KvClient;
  /** How a client dials it (the client certificate when the cluster runs TLS), for waitForApplied and such. */
  readonly tls: DialTlsConfig | undefined;
  /** A KvClient's options for `endpoints` of this cluster, TLS included when it runs TLS. */
  dial(endpoints: readonly string[], extra?: Omit<KvClientOptions, 'endpoints' | 'tls'>): KvClientOptions;
  leader(opts?: { exclude?: readonly number[]; timeoutMs?: number }): Promise<number>;
  close(): Promise<void>;
}

/**
 * RAFTKV_TEST_TLS=1 (tls-suite.test.ts sets it) runs every cluster with TLS and client certificates on every port
 * unless a test says otherwise, on ports this far below the plaintext run's, so both runs can go at once.
 */
export const TLS_SUITE = process.env.RAFTKV_TEST_TLS === '1';
const TLS_SUITE_PORT_OFFSET = -10_000;
const SPARE_MEMBER_CERTIFICATES = 2; // for members a test adds (membership changes)

/**
 * Starts `nodes` members with fast ticks (50 ms, election 10 ticks = 500 ms) on ports basePort+1.. (peers)
 * and basePort+101.. (clients), and waits for a leader.
 */
export async function startTestCluster(opts: { nodes: number; basePort: number; snapshotCount?: number; electionTicks?: number; baseMetricsPort?: number; tls?: boolean }): Promise<TestCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'raftkv-it-'));
  // tls: a local CA (cluster/tls-certs.ts), TLS with client-certificate authentication on every port.
  const useTls = opts.tls ?? TLS_SUITE;
  const basePort = opts.basePort + (TLS_SUITE ? TLS_SUITE_PORT_OFFSET : 0);
  const tlsDir = useTls ? makeClusterCertificates(join(dir, 'tls'), Array.from({ length: opts.nodes + SPARE_MEMBER_CERTIFICATES }, (_, i) => i + 1)).dir : undefined;
  const cluster = new LocalCluster({
    nodes: opts.nodes,
    dir,
    basePeerPort: basePort,
    baseClientPort: basePort + 100,
    tickMs: 50,
    electionTicks: opts.electionTicks ?? 10,
    ...(opts.snapshotCount !== undefined ? { snapshotCount: opts.snapshotCount } : {}),
    ...(opts.baseMetricsPort !== undefined ? { baseMetricsPort: opts.baseMetricsPort } : {}),
    logLevel: 'info',
    ...(tlsDir !== undefined ? { tlsDir } : {}),
  });
  const tls = cluster.dialTls();
  if (useTls !== (tls !== undefined)) throw new Error(`startTestCluster: asked for tls=${String(useTls)}, the cluster has ${tls === undefined ? 'none' : 'TLS'}`);
  cluster.up();
  const client = new KvClient({ endpoints: cluster.endpoints(), timeoutMs: 10_000, ...(tls !== undefined ? { tls } : {}) });
  const leader = (o: { exclude?: readonly number[]; timeoutMs?: number } = {}): Promise<number> => {
    const live = cluster.ids().filter((id) => !(o.exclude ?? []).includes(id) && cluster.isRunning(id));
    return waitForLeader(cluster.endpoints(live), o.timeoutMs ?? 20_000, { tls });
  };
  await leader();
  return {
    cluster,
    client,
    tls,
    dial: (endpoints, extra = {}) => ({ ...extra, endpoints, ...(tls !== undefined ? { tls } : {}) }),
    leader,
    async close() {
      client.close();
      // RAFTKV_KEEP_TEST_DIRS=1 keeps the data and logs for a post-mortem (the folder is printed).
      const keep = process.env.RAFTKV_KEEP_TEST_DIRS === '1';
      if (keep) console.log(`kept ${dir}`);
      await cluster.down({ wipe: !keep });
    },
  };
}

/** Polls `f` until it returns without throwing, every `everyMs`, up to `timeoutMs`; then throws its last error. */
export async function eventually<T>(f: () => Promise<T>, timeoutMs = 20_000, everyMs = 100): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await f();
    } catch (err) {
      if (Date.now() > until) throw err;
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }
}

/** Polls `cond` every 50 ms until it holds or `timeoutMs` passes (then fails with `what`). */
export async function until(what: string, cond: () => Promise<boolean> | boolean, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
