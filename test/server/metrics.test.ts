// The metrics pieces one at a time, without ports: the registry's text parses and holds etcd's names and types,
// its counters follow the observer calls; gRPC code names; the request recorder's rates and quantiles on a
// hand-moved clock; /health, /livez and /readyz on a fake node; the late-heartbeat detector on a manual clock.
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { PromMetrics } from '../../src/server/prom-metrics.js';
import { GrpcMetrics, grpcCodeName, splitMethodPath } from '../../src/server/grpc-metrics.js';
import { RequestRecorder, RATE_SECONDS } from '../../src/server/request-recorder.js';
import { Readiness, health, livez } from '../../src/server/health.js';
import { ClusterView } from '../../src/server/cluster-view.js';
import { HeartbeatMonitor } from '../../src/node/heartbeat-monitor.js';
import { NO_NODE_METRICS } from '../../src/node/node-metrics.js';
import type { NodeMetrics } from '../../src/node/node-metrics.js';
import { NodeContext } from '../../src/node/node-context.js';
import { ManualClock } from '../../src/shared/clock.js';
import type { NodeStatus } from '../../src/node/api.js';
import type { Message } from '../../src/raft/types.js';
import { FakeCluster, FakeNode } from './fake-node.js';
import { parsePrometheusText, sampleValue } from './prom-text.js';


function fakeStatus(over: Partial<NodeStatus> = {}): NodeStatus {
  return {
    id: 1,
    clusterId: 'c',
    clientAddress: '127.0.0.1:1',
    role: 'leader',
    term: 7,
    leaderId: 1,
    commitIndex: 42,
    appliedIndex: 40,
    revision: 12,
    compactedRevision: -1,
    lastLogIndex: 45,
    snapshotIndex: 0,
    dataSizeBytes: 5000,
    backendSizeBytes: 3000,
    members: [],
    progress: [
      { id: 2, match: 45, state: 'replicate' },
      { id: 3, match: 30, state: 'probe' },
    ],
    ...over,
  };
}

describe('PromMetrics', () => {
  it("exposes etcd's names with etcd's types, read from status() at each scrape", async () => {
    let status: NodeStatus | undefined = fakeStatus();
    const m = new PromMetrics({ status: () => status, defaultMetrics: false });
    const e = parsePrometheusText(await m.registry.metrics());
    const expected: Record<string, string> = {
      etcd_server_has_leader: 'gauge',
      etcd_server_is_leader: 'gauge',
      etcd_server_leader_changes_seen_total: 'counter',
      etcd_server_proposals_committed_total: 'gauge',
      etcd_server_proposals_applied_total: 'gauge',
      etcd_server_proposals_pending: 'gauge',
      etcd_server_proposals_failed_total: 'counter',
      etcd_server_heartbeat_send_failures_total: 'counter',
      etcd_server_slow_apply_total: 'counter',
      etcd_disk_wal_fsync_duration_seconds: 'histogram',
      etcd_disk_backend_commit_duration_seconds: 'histogram',
      etcd_network_peer_round_trip_time_seconds: 'histogram',
      etcd_mvcc_db_total_size_in_bytes: 'gauge',
      etcd_debugging_mvcc_current_revision: 'gauge',
      etcd_debugging_mvcc_compact_revision: 'gauge',
      etcd_debugging_mvcc_watcher_total: 'gauge',
      etcd_debugging_lease_granted_total: 'counter',
      raftkv_term: 'gauge',
      raftkv_follower_match_index: 'gauge',
      raftkv_follower_lag_entries: 'gauge',
    };
    for (const [name, type] of Object.entries(expected)) expect([name, e.types.get(name)]).toEqual([name, type]);
    expect(sampleValue(e, 'etcd_server_has_leader')).toBe(1);
    expect(sampleValue(e, 'etcd_server_is_leader')).toBe(1);
    expect(sampleValue(e, 'etcd_server_proposals_committed_total')).toBe(42);
    expect(sampleValue(e, 'etcd_server_proposals_applied_total')).toBe(40);
    expect(sampleValue(e, 'etcd_mvcc_db_total_size_in_bytes')).toBe(3000);
    expect(sampleValue(e, 'etcd_debugging_mvcc_current_revision')).toBe(12);
    expect(sampleValue(e, 'raftkv_follower_lag_entries', { follower: '3' })).toBe(15);
    expect(sampleValue(e, 'raftkv_follower_match_index', { follower: '2' })).toBe(45);
    expect(sampleValue(e, 'raftkv_role', { role: 'leader' })).toBe(1);
    // A follower reports no followers; a starting member no leader.
    status = fakeStatus({ role: 'follower', leaderId: 2 });
    const f = parsePrometheusText(await m.registry.metrics());
    expect(f.samples.filter((s) => s.name === 'raftkv_follower_lag_entries')).toEqual([]);
    expect(sampleValue(f, 'etcd_server_is_leader')).toBe(0);
    status = undefined;
    expect(sampleValue(parsePrometheusText(await m.registry.metrics()), 'etcd_server_has_leader')).toBe(0);
  });

  it('counts what the node reports', async () => {
    const m = new PromMetrics({ status: () => fakeStatus(), defaultMetrics: false });
    m.onLeaderChange(1, 2);
    m.onLeaderChange(0, 3); // lost: not a change to a leader
    m.onLeaderChange(2, 3);
    m.onProposalStarted();
    m.onProposalStarted();
    m.onProposalStarted();
    m.onProposalSettled(false);
    m.onProposalSettled(true);
    m.onWalFsync(3);
    m.onWalFsync(1500);
    m.onApply(10, 150, true);
    m.onHeartbeatLate(2);
    m.onPeerRoundTrip(2, 0.5);
    m.watchersChanged(2);
    m.leaseGranted();
    const e = parsePrometheusText(await m.registry.metrics());
    expect(sampleValue(e, 'etcd_server_leader_changes_seen_total')).toBe(2);
    expect(sampleValue(e, 'etcd_server_proposals_pending')).toBe(1);
    expect(sampleValue(e, 'etcd_server_proposals_failed_total')).toBe(1);
    expect(sampleValue(e, 'etcd_disk_wal_fsync_duration_seconds_count')).toBe(2);
    expect(sampleValue(e, 'etcd_disk_wal_fsync_duration_seconds_bucket', { le: '0.004' })).toBe(1); // etcd's buckets: 1 ms, 2, 4, ...
    expect(sampleValue(e, 'etcd_disk_wal_fsync_duration_seconds_bucket', { le: '2.048' })).toBe(2);
    expect(sampleValue(e, 'etcd_server_slow_apply_total')).toBe(1);
    expect(sampleValue(e, 'etcd_server_heartbeat_send_failures_total')).toBe(1);
    expect(sampleValue(e, 'etcd_network_peer_round_trip_time_seconds_count', { To: '2' })).toBe(1);
    expect(sampleValue(e, 'etcd_network_peer_round_trip_time_seconds_bucket', { To: '2', le: '0.0004' })).toBe(0);
    expect(sampleValue(e, 'etcd_network_peer_round_trip_time_seconds_bucket', { To: '2', le: '0.0008' })).toBe(1);
    expect(sampleValue(e, 'etcd_debugging_mvcc_watcher_total')).toBe(2);
    expect(sampleValue(e, 'etcd_debugging_lease_granted_total')).toBe(1);
  });

  it('with the default metrics, the process ones are there too and it still parses', async () => {
    const m = new PromMetrics({ status: () => fakeStatus() });
    new GrpcMetrics(m.registry);
    const e = parsePrometheusText(await m.registry.metrics());
    expect(e.types.get('process_cpu_user_seconds_total')).toBe('counter');
    expect(e.types.get('grpc_server_handled_total')).toBe('counter');
  });
});

describe('gRPC labels', () => {
  it("names codes as grpc-go does and splits method paths", () => {
    expect(grpcCodeName(GrpcStatus.OK)).toBe('OK');
    expect(grpcCodeName(GrpcStatus.CANCELLED)).toBe('Canceled');
    expect(grpcCodeName(GrpcStatus.DEADLINE_EXCEEDED)).toBe('DeadlineExceeded');
    expect(grpcCodeName(GrpcStatus.UNAVAILABLE)).toBe('Unavailable');
    expect(grpcCodeName(GrpcStatus.RESOURCE_EXHAUSTED)).toBe('ResourceExhausted');
    expect(grpcCodeName(GrpcStatus.INVALID_ARGUMENT)).toBe('InvalidArgument');
    expect(grpcCodeName(99)).toBe('Code(99)');
    expect(splitMethodPath('/etcdserverpb.KV/Range')).toEqual({ service: 'etcdserverpb.KV', method: 'Range' });
  });
});

describe('RequestRecorder', () => {
  it('rates and quantiles over the last complete seconds only', () => {
    let now = 100_000;
    const r = new RequestRecorder(() => now);
    for (let i = 0; i < 100; i++) r.record('write', 1, false); // second 100
    for (let i = 0; i < 97; i++) r.record('read', 0.2, false);
    for (let i = 0; i < 3; i++) r.record('read', 50, true);
    expect(r.stats().writesPerSecond).toBe(0); // second 100 is not complete yet
    now += 1000;
    const s = r.stats();
    expect(s.writesPerSecond).toBe(100 / RATE_SECONDS);
    expect(s.readsPerSecond).toBe(100 / RATE_SECONDS);
    expect(s.errorsPerSecond).toBe(3 / RATE_SECONDS);
    expect(s.p50Ms).toBeGreaterThanOrEqual(0.2); // half the requests are 0.2 ms, the median bucket covers it
    expect(s.p50Ms).toBeLessThan(1.25);
    expect(s.p99Ms).toBeGreaterThanOrEqual(50); // 3 of 200 took 50 ms: more than the slowest 1%
    expect(s.p99Ms).toBeLessThan(61);
    now += 3000; // out of the window
    expect(r.stats()).toEqual({ readsPerSecond: 0, writesPerSecond: 0, errorsPerSecond: 0, p50Ms: 0, p99Ms: 0 });
  });
});

class LaggingNode extends FakeNode {
  applied = 0;
  commit = 0;
  override status(): NodeStatus {
    return { ...super.status(), commitIndex: this.commit, appliedIndex: this.applied };
  }
}

describe('probes', () => {
  it("/health: etcd's body; 503 with RAFT NO LEADER or QGET ERROR", async () => {
    const cluster = new FakeCluster();
    const node = new FakeNode(1, cluster);
    expect(await health(node)).toEqual({ status: 200, body: '{"health":"true","reason":""}', contentType: 'application/json' });
    expect(node.calls.at(-1)?.opts).toMatchObject({ serializable: false });
    node.failures.push('UNAVAILABLE');
    const failed = await health(node);
    expect(failed.status).toBe(503);
    expect(JSON.parse(failed.body)).toEqual({ health: 'false', reason: 'QGET ERROR: fake: scripted UNAVAILABLE' });
    cluster.leaderId = 0;
    expect(await health(node)).toMatchObject({ status: 503, body: '{"health":"false","reason":"RAFT NO LEADER"}' });
  });

  it('/livez: a serializable read; fine without a leader, failing when the node fails', async () => {
    const cluster = new FakeCluster();
    cluster.leaderId = 0;
    const node = new FakeNode(1, cluster);
    expect(await livez(node, false)).toMatchObject({ status: 200, body: 'ok\n' });
    expect(node.calls.at(-1)?.opts).toMatchObject({ serializable: true });
    node.failures.push('UNAVAILABLE');
    expect(await livez(node, false)).toMatchObject({ status: 503, body: '[-]serializable_read failed: fake: scripted UNAVAILABLE\nlivez check failed\n' });
  });

  it('/readyz: a leader, and caught up to the commit index known when the leader was first seen (latched)', () => {
    const cluster = new FakeCluster();
    cluster.leaderId = 0;
    const node = new LaggingNode(2, cluster);
    const r = new Readiness();
    expect(r.check(node, false)).toMatchObject({ status: 503, body: '[-]leader failed: no leader known\n[-]caught_up failed: waiting for a leader\nreadyz check failed\n' });
    cluster.leaderId = 1;
    node.commit = 50;
    node.applied = 10;
    expect(r.check(node, false)).toMatchObject({ status: 503, body: '[-]caught_up failed: applied 10 of 50\nreadyz check failed\n' });
    node.commit = 80; // the target stays 50
    node.applied = 50;
    expect(r.check(node, true)).toMatchObject({ status: 200, body: '[+]leader ok\n[+]caught_up ok\nreadyz check passed\n' });
    node.applied = 49; // never unready again for lag alone
    expect(r.check(node, false)).toMatchObject({ status: 200, body: 'ok\n' });
    cluster.leaderId = 0;
    expect(r.check(node, false).status).toBe(503);
  });
});

describe('ClusterView timeline', () => {
  it('records leader changes with the time spent without a leader', () => {
    let now = 1000;
    const view = new ClusterView({ node: new FakeNode(1, new FakeCluster()), requests: new RequestRecorder(), metricsUrl: () => '', now: () => now });
    view.onLeaderChange(1, 2);
    now = 5000;
    view.onLeaderChange(0, 2);
    now = 5230;
    view.onLeaderChange(3, 3);
    now = 9000;
    view.onLeaderChange(2, 4); // a transfer: straight from one leader to the next
    return view.snapshot().then((snap) => {
      expect(snap.events).toEqual([
        { atMs: 1000, type: 'leader', leader: 1, previousLeader: 0, term: 2, withoutLeaderMs: 0 },
        { atMs: 5000, type: 'leader-lost', previousLeader: 1, term: 2 },
        { atMs: 5230, type: 'leader', leader: 3, previousLeader: 0, term: 3, withoutLeaderMs: 230 },
        { atMs: 9000, type: 'leader', leader: 2, previousLeader: 3, term: 4, withoutLeaderMs: 0 },
      ]);
      view.close();
    });
  });
});

describe('HeartbeatMonitor', () => {
  const hb = (to: number): Message => ({ type: 'heartbeat', from: 1, to, term: 2, commit: 0, context: new Uint8Array(0) });
  const resp = (from: number): Message => ({ type: 'heartbeat-resp', from, to: 1, term: 2, context: new Uint8Array(0) });

  it("warns and counts a heartbeat sent later than twice the interval (etcd's detector), and times answers", () => {
    const clock = new ManualClock();
    const lines: { obj: object; msg: string }[] = [];
    const log = pino({ level: 'warn' }, { write: (s: string) => { const o = JSON.parse(s) as { msg: string }; lines.push({ obj: o, msg: o.msg }); } });
    const ctx = new NodeContext(1, clock, log, () => []);
    const late: number[] = [];
    const rtts: [number, number][] = [];
    const metrics: NodeMetrics = { ...NO_NODE_METRICS, onHeartbeatLate: (to) => late.push(to), onPeerRoundTrip: (p, ms) => rtts.push([p, ms]) };
    let mono = 0;
    const mon = new HeartbeatMonitor(ctx, metrics, 100, () => mono);
    mon.onSend([hb(2), hb(3)]);
    clock.advance(200); // exactly 2 intervals: on time
    mon.onSend([hb(2)]);
    clock.advance(350);
    mon.onSend([hb(2)]);
    expect(late).toEqual([2]);
    expect(lines).toHaveLength(1);
    expect(lines[0]?.msg).toBe('leader failed to send out heartbeat on time; took too long, leader is overloaded likely from slow disk');
    expect(lines[0]?.obj).toMatchObject({ to: 2, heartbeatIntervalMs: 100, expectedDurationMs: 200, exceededDurationMs: 150 });
    mono = 1.5;
    mon.onReceive([resp(2), resp(2)]); // the second answers nothing sent
    expect(rtts).toEqual([[2, 1.5]]);
    mon.onLeaderChange();
    clock.advance(10_000);
    mon.onSend([hb(2)]); // a new term's first heartbeat is not late
    expect(late).toEqual([2]);
  });
});
