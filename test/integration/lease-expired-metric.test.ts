// etcd_debugging_server_lease_expired_total on a real 3-member cluster: it counts the leases the leader revoked
// because they expired (once each, however many members there are), not the ones a client revoked, and starts at 0.
// Ports 29101-29103 (peers), 29201-29203 (clients), 29301-29303 (metrics).
import { afterEach, expect, it } from 'vitest';
import { CoordClient } from '../../src/client/index.js';
import { parsePrometheusText, sampleValue } from '../server/prom-text.js';
import { startTestCluster } from './helpers.js';
import type { TestCluster } from './helpers.js';

const BASE_PORT = 29100;
const BASE_METRICS_PORT = 29300;
const EXPIRING = 3;
const METRIC = 'etcd_debugging_server_lease_expired_total';

let tc: TestCluster | undefined;
let coord: CoordClient | undefined;
afterEach(async () => {
  coord?.channel.close();
  coord = undefined;
  await tc?.close();
  tc = undefined;
});

async function expiredOn(id: number): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${BASE_METRICS_PORT + id}/metrics`, { signal: AbortSignal.timeout(5000) });
  return sampleValue(parsePrometheusText(await res.text()), METRIC) ?? Number.NaN;
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

it('counts leases revoked because they expired, once each, and not leases a client revoked', async () => {
  tc = await startTestCluster({ nodes: 3, basePort: BASE_PORT, baseMetricsPort: BASE_METRICS_PORT });
  const ids = tc.cluster.ids();
  coord = new CoordClient({ endpoints: tc.cluster.endpoints() });
  for (const id of ids) expect(await expiredOn(id)).toBe(0);
  const leaderAtStart = await tc.leader();

  const revoked = await coord.lease(30, { keepAlive: false });
  await tc.client.put('m/revoked', 'x', { lease: revoked.id });
  await revoked.revoke();
  const expiring = [];
  for (let i = 0; i < EXPIRING; i++) {
    const l = await coord.lease(1, { keepAlive: false });
    await tc.client.put(`m/expiring${i}`, 'x', { lease: l.id });
    expiring.push(l);
  }
  const kept = await coord.lease(30); // kept alive: never expires
  await tc.client.put('m/kept', 'x', { lease: kept.id });

  await until('the expiring leases are gone', async () => (await coord?.leases())?.length === 1);
  const total = async (): Promise<number> => (await Promise.all(ids.map(expiredOn))).reduce((a, b) => a + b, 0);
  // The counter moves after the revoke is applied on the leader, a moment after the lease is gone from the list.
  await until(`${METRIC} summed over the members to reach ${EXPIRING}`, async () => (await total()) >= EXPIRING);
  expect(await total()).toBe(EXPIRING);
  // Without a leader change the leader counted them all (after one, the sum above is what holds).
  if ((await tc.leader()) === leaderAtStart) for (const id of ids) if (id !== leaderAtStart) expect(await expiredOn(id), `follower ${id}`).toBe(0);
  expect((await tc.client.get('m/kept')).kv).toBeDefined();
  for (let i = 0; i < EXPIRING; i++) expect((await tc.client.get(`m/expiring${i}`)).kv).toBeUndefined();
  kept.stopKeepAlive();
}, 60_000);
