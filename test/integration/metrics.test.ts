// --listen-metrics on a real 3-member cluster of processes: /metrics parses as Prometheus text on every member
// and its counters move with the writes (applied grows by at least N after N puts, gRPC Put calls counted by
// code), /health and the probes answer, /cluster from a follower shows every member; with two of three members
// killed the survivor's /health turns 503 (no quorum) while /livez stays 200, and /cluster shows them down.
// Ports 26001-26003 (peers), 26101-26103 (clients), 26201-26203 (metrics).
import { afterEach, expect, it } from 'vitest';
import { KvClient } from '../../src/client/index.js';
import type { ClusterSnapshot } from '../../src/server/cluster-view.js';
import { parsePrometheusText, sampleSum, sampleValue } from '../server/prom-text.js';
import type { Exposition } from '../server/prom-text.js';
import { startTestCluster } from './helpers.js';
import type { TestCluster } from './helpers.js';

const BASE_PORT = 26000;
const BASE_METRICS_PORT = 26200;
const PUTS = 50;

let tc: TestCluster | undefined;
afterEach(async () => {
  await tc?.close();
  tc = undefined;
});

const metricsUrl = (id: number): string => `http://127.0.0.1:${BASE_METRICS_PORT + id}`;

async function scrape(id: number): Promise<Exposition> {
  const res = await fetch(`${metricsUrl(id)}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheusText(await res.text());
}

async function get(id: number, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`${metricsUrl(id)}${path}`, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, body: await res.text() };
}

/** Polls `check` every 100 ms until it returns true; fails after timeoutMs saying what it waited for. */
async function until(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

it('serves metrics that move with writes, health, probes and the cluster view; health fails without quorum', async () => {
  tc = await startTestCluster({ nodes: 3, basePort: BASE_PORT, baseMetricsPort: BASE_METRICS_PORT });
  const { cluster } = tc;
  const leader = await tc.leader();
  const ids = cluster.ids();
  await until('every member knows the leader', async () => (await Promise.all(ids.map(async (id) => sampleValue(await scrape(id), 'etcd_server_has_leader')))).every((v) => v === 1));

  const before = new Map<number, Exposition>();
  for (const id of ids) before.set(id, await scrape(id));
  const putsOk = (e: Exposition): number => sampleSum(e, 'grpc_server_handled_total', { grpc_service: 'raftkv.v1.KV', grpc_method: 'Put', grpc_code: 'OK' });
  const unary = new KvClient({ endpoints: cluster.endpoints(), timeoutMs: 10_000, transport: 'unary' });
  try {
    for (let i = 0; i < PUTS; i++) await unary.put(`m${i}`, `v${i}`);
  } finally {
    unary.close();
  }

  // Every member applies them (followers learn the commit with the next heartbeat: poll).
  for (const id of ids) {
    const applied0 = sampleValue(before.get(id) ?? (await scrape(id)), 'etcd_server_proposals_applied_total');
    await until(`member ${id} applied ${PUTS} more entries`, async () => sampleValue(await scrape(id), 'etcd_server_proposals_applied_total') >= applied0 + PUTS);
  }
  const afterLeader = await scrape(leader);
  const beforeLeader = before.get(leader);
  if (beforeLeader === undefined) throw new Error('no scrape of the leader');
  expect(sampleValue(afterLeader, 'etcd_server_proposals_committed_total')).toBeGreaterThanOrEqual(sampleValue(beforeLeader, 'etcd_server_proposals_committed_total') + PUTS);
  expect(sampleValue(afterLeader, 'etcd_server_is_leader')).toBe(1);
  expect(sampleValue(afterLeader, 'etcd_debugging_mvcc_current_revision')).toBeGreaterThanOrEqual(PUTS + 1);
  expect(sampleValue(afterLeader, 'etcd_disk_wal_fsync_duration_seconds_count')).toBeGreaterThan(sampleValue(beforeLeader, 'etcd_disk_wal_fsync_duration_seconds_count'));
  expect(sampleValue(afterLeader, 'etcd_server_proposals_pending')).toBe(0);
  expect(sampleValue(afterLeader, 'etcd_server_proposals_failed_total')).toBe(0);
  // The unary Puts were counted by the interceptor, code by code, on whichever members received them.
  const okBefore = ids.reduce((n, id) => n + putsOk(before.get(id) ?? { types: new Map(), samples: [] }), 0);
  let okAfter = 0;
  for (const id of ids) okAfter += putsOk(await scrape(id));
  expect(okAfter - okBefore).toBeGreaterThanOrEqual(PUTS);
  for (const f of ids.filter((id) => id !== leader)) {
    expect(sampleValue(afterLeader, 'raftkv_follower_match_index', { follower: String(f) })).toBeGreaterThan(PUTS);
    expect(afterLeader.samples.some((s) => s.name === 'etcd_network_peer_round_trip_time_seconds_count' && s.labels.To === String(f) && s.value > 0)).toBe(true);
  }

  for (const id of ids) {
    expect(await get(id, '/health')).toEqual({ status: 200, body: '{"health":"true","reason":""}' });
    expect(await get(id, '/livez')).toEqual({ status: 200, body: 'ok\n' });
    expect(await get(id, '/readyz')).toEqual({ status: 200, body: 'ok\n' });
  }

  const follower = ids.find((id) => id !== leader) ?? 0;
  const view = JSON.parse((await get(follower, '/cluster')).body) as ClusterSnapshot;
  expect(view.servedBy).toBe(follower);
  expect(view.leaderId).toBe(leader);
  expect(view.members.map((m) => [m.id, m.up, m.role === 'leader', m.metricsUrl])).toEqual(ids.map((id) => [id, true, id === leader, metricsUrl(id)]));

  // Two of three gone: the survivor has no quorum.
  const other = ids.find((id) => id !== leader && id !== follower) ?? 0;
  cluster.kill(leader);
  cluster.kill(other);
  await until(`member ${follower} reports unhealthy`, async () => (await get(follower, '/health')).status === 503);
  const sick = JSON.parse((await get(follower, '/health')).body) as { health: string; reason: string };
  expect(sick.health).toBe('false');
  expect(sick.reason).toMatch(/^(RAFT NO LEADER|QGET ERROR: .+)$/);
  expect(await get(follower, '/livez')).toEqual({ status: 200, body: 'ok\n' });
  await until(`member ${follower} is unready`, async () => (await get(follower, '/readyz')).status === 503);
  await until('the cluster view shows both killed members down', async () => {
    const v = JSON.parse((await get(follower, '/cluster')).body) as ClusterSnapshot;
    return v.members.filter((m) => !m.up).map((m) => m.id).sort().join(',') === [leader, other].sort().join(',');
  });
  const last = JSON.parse((await get(follower, '/cluster')).body) as ClusterSnapshot;
  expect(last.events.filter((e) => e.type === 'member-down').map((e) => (e.type === 'member-down' ? e.member : 0)).sort()).toEqual([leader, other].sort());
});
