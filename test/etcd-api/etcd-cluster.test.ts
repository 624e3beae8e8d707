// etcd's Cluster service, HashKV and read-only txns on a real 3-member raftkv, driven with etcdctl 3.4 and raw
// etcdserverpb calls: member add (learner) through a follower, the new member started from the
// ETCD_INITIAL_CLUSTER line etcdctl prints with --initial-cluster-state existing, joining and publishing its
// client address, then promote, update, remove, and etcd's error strings; HashKV equal on every member at one
// revision (and unchanged by later writes); a read-only txn answered without a log entry, equal to the same txn
// through the log, and a serializable one answered by a member without a leader.
import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdUnary } from '../../src/protocol/etcd-proto.js';
import { ADMIN_METHODS } from '../../src/protocol/proto.js';
import type { WireHashKvResponse, WireStatusResponse } from '../../src/protocol/proto.js';
import { startTestCluster, until } from '../integration/helpers.js';
import type { TestCluster } from '../integration/helpers.js';
import { describeWithSystem } from '../system-deps.js';
import { spawnServe } from '../../cluster/serve-process.js';
import type { LoggedChild } from '../../cluster/serve-process.js';
import { rawClients } from './raw-clients.js';

const untilLong = (what: string, cond: () => Promise<boolean> | boolean, timeoutMs = 20_000): Promise<void> => until(what, cond, timeoutMs);

const run = promisify(execFile);
const BASE_PORT = 26000;
const ETCDCTL_ENV = { ...process.env, ETCDCTL_API: '3' };

let tc: TestCluster;
let leaderId: number;
let leaderEndpoint: string;
let followerEndpoint: string;
let fourth: LoggedChild | undefined; // the member etcdctl adds, started by this test

const { raw, closeAll } = rawClients();


async function ctl(endpoint: string, ...args: string[]): Promise<string> {
  return (await run('etcdctl', ['--endpoints', endpoint, ...args], { env: ETCDCTL_ENV })).stdout;
}

/** etcdctl's failure text (it exits 1 and prints the server's message on stderr). */
async function ctlError(endpoint: string, ...args: string[]): Promise<string> {
  try {
    await ctl(endpoint, ...args);
  } catch (err) {
    return (err as { stderr?: string }).stderr ?? String(err);
  }
  throw new Error(`etcdctl ${args.join(' ')} succeeded`);
}

async function serializableRevision(endpoint: string): Promise<bigint> {
  return (await etcdUnary(raw(endpoint), 'KV', 'Range', { key: Buffer.from('-'), serializable: true })).header?.revision ?? 0n;
}

beforeAll(async () => {
  tc = await startTestCluster({ nodes: 3, basePort: BASE_PORT });
  leaderId = await tc.leader();
  leaderEndpoint = tc.cluster.endpoints([leaderId])[0] ?? '';
  followerEndpoint = tc.cluster.endpoints(tc.cluster.ids().filter((id) => id !== leaderId))[0] ?? '';
}, 60_000);

afterAll(async () => {
  fourth?.signal('SIGKILL');
  await fourth?.exited;
  closeAll();
  await tc.close();
});

describe('etcd HashKV', () => {
  it('every member answers the same hash at one revision, and the same again after later writes', async () => {
    for (let i = 0; i < 20; i++) await etcdUnary(raw(leaderEndpoint), 'KV', 'Put', { key: Buffer.from(`hk/${i % 7}`), value: Buffer.from(`v${i}`) });
    await etcdUnary(raw(leaderEndpoint), 'KV', 'DeleteRange', { key: Buffer.from('hk/3') });
    const rev = (await etcdUnary(raw(leaderEndpoint), 'KV', 'Range', { key: Buffer.from('hk/') })).header?.revision ?? 0n;
    for (const e of tc.cluster.endpoints()) await untilLong(`revision ${rev} at ${e}`, async () => (await serializableRevision(e)) >= rev);
    const at = async (e: string, revision: bigint) => etcdUnary(raw(e), 'Maintenance', 'HashKV', { revision });
    const first = await Promise.all(tc.cluster.endpoints().map((e) => at(e, rev)));
    expect(new Set(first.map((h) => h.hash)).size).toBe(1);
    expect(first.every((h) => h.hashRevision === rev)).toBe(true);
    // A different revision holds different data: a different hash.
    const before = await at(leaderEndpoint, rev - 1n);
    expect(before.hash).not.toBe(first[0]?.hash);
    await etcdUnary(raw(leaderEndpoint), 'KV', 'Put', { key: Buffer.from('hk/later'), value: Buffer.from('x') });
    const again = await Promise.all(tc.cluster.endpoints().map((e) => at(e, rev)));
    expect(again.map((h) => h.hash)).toEqual(first.map((h) => h.hash));
    // Above the current revision: etcd's ErrFutureRev.
    await expect(at(followerEndpoint, rev + 1000n)).rejects.toMatchObject({ details: 'etcdserver: mvcc: required revision is a future revision' });
  });

  it('at the current revision it is the running key-space digest the corrupt check compares', async () => {
    const c = raw(leaderEndpoint);
    const etcdHash = await etcdUnary(c, 'Maintenance', 'HashKV', { revision: 0n });
    const m = ADMIN_METHODS.hashKv;
    const own = await new Promise<WireHashKvResponse>((resolve, reject) =>
      c.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, { index: 0 }, (err, res) => (err !== null || res === undefined ? reject(err ?? new Error('no answer')) : resolve(res))),
    );
    // No write in between (the test writes nothing concurrently): the same state.
    expect(etcdHash.hash).toBe(own.hashLane1);
  });

  describeWithSystem(['etcdctl'], 'etcdctl endpoint hashkv', () => {
    it('endpoint hashkv --cluster -w json: one hash for every member', async () => {
      const rev = (await etcdUnary(raw(leaderEndpoint), 'KV', 'Range', { key: Buffer.from('-') })).header?.revision ?? 0n;
      for (const e of tc.cluster.endpoints()) await untilLong(`revision ${rev} at ${e}`, async () => (await serializableRevision(e)) >= rev);
      const out = JSON.parse(await ctl(followerEndpoint, 'endpoint', 'hashkv', '--cluster', `--rev=${rev}`, '-w', 'json')) as { Endpoint: string; HashKV: { hash: number } }[];
      expect(out.map((o) => o.Endpoint).sort()).toEqual([...tc.cluster.endpoints()].sort());
      expect(new Set(out.map((o) => o.HashKV.hash)).size).toBe(1);
      expect(await ctl(leaderEndpoint, 'endpoint', 'hashkv', '-w', 'table')).toMatch(/HASH/);
    });
  });
});

describe('etcd read-only Txn', () => {
  it('is answered without a log entry, as the same txn through the log answers it, on a follower too', async () => {
    await etcdUnary(raw(leaderEndpoint), 'KV', 'Put', { key: Buffer.from('ro/a'), value: Buffer.from('1') });
    await etcdUnary(raw(leaderEndpoint), 'KV', 'Put', { key: Buffer.from('ro/b'), value: Buffer.from('2') });
    const compare = [{ key: Buffer.from('ro/a'), target: 3, result: 0, value: Buffer.from('1') }]; // VALUE EQUAL
    const ranges = [{ requestRange: { key: Buffer.from('ro/'), rangeEnd: Buffer.from('ro0') } }, { requestRange: { key: Buffer.from('ro/b'), keysOnly: true } }];
    for (const endpoint of [leaderEndpoint, followerEndpoint]) {
      const c = raw(endpoint);
      const before = await etcdUnary(raw(leaderEndpoint), 'Maintenance', 'Status', {});
      const readOnly = await etcdUnary(c, 'KV', 'Txn', { compare, success: ranges, failure: [{ requestRange: { key: Buffer.from('ro/a') } }] });
      const after = await etcdUnary(raw(leaderEndpoint), 'Maintenance', 'Status', {});
      expect(after.raftIndex, 'no log entry for a read-only txn').toBe(before.raftIndex);
      // The same ranges, with a put on the branch not taken: a write txn, through the log, changing nothing.
      const logged = await etcdUnary(c, 'KV', 'Txn', { compare, success: ranges, failure: [{ requestPut: { key: Buffer.from('ro/never'), value: Buffer.from('x') } }] });
      expect(readOnly.succeeded).toBe(true);
      expect(readOnly.header?.revision).toBe(logged.header?.revision);
      expect(readOnly.responses).toEqual(logged.responses);
      const failed = await etcdUnary(c, 'KV', 'Txn', { compare: [{ ...compare[0], value: Buffer.from('other') }], success: ranges, failure: [{ requestRange: { key: Buffer.from('ro/a') } }] });
      expect(failed.succeeded).toBe(false);
      expect(failed.responses[0]?.responseRange?.kvs.map((kv) => kv.value.toString())).toEqual(['1']);
    }
  });

  describeWithSystem(['etcdctl'], 'etcdctl txn', () => {
    it('a txn of gets from stdin on a follower: answered, no log entry', async () => {
      const before = await etcdUnary(raw(leaderEndpoint), 'Maintenance', 'Status', {});
      const p = run('etcdctl', ['--endpoints', followerEndpoint, 'txn', '-w', 'json'], { env: ETCDCTL_ENV });
      p.child.stdin?.end('value("ro/a") = "1"\n\nget ro/a\nget ro/ --prefix\n\nget ro/b\n\n');
      const out = JSON.parse((await p).stdout) as { header: { revision: number }; succeeded: boolean; responses: { Response: { ResponseRange: { count: number } } }[] };
      const after = await etcdUnary(raw(leaderEndpoint), 'Maintenance', 'Status', {});
      expect(after.raftIndex).toBe(before.raftIndex);
      expect(out.succeeded).toBe(true);
      expect(out.responses.map((r) => r.Response.ResponseRange.count)).toEqual([1, 2]);
      expect(BigInt(out.header.revision)).toBe(before.header?.revision);
    });
  });

  it('a range at a future revision inside it fails as through the log', async () => {
    const c = raw(followerEndpoint);
    const txn = { success: [{ requestRange: { key: Buffer.from('ro/a'), revision: 1_000_000n } }] };
    await expect(etcdUnary(c, 'KV', 'Txn', txn)).rejects.toMatchObject({ details: 'etcdserver: mvcc: required revision is a future revision' });
  });
});

describeWithSystem(['etcdctl'], 'etcd Cluster: etcdctl 3.4 member add|promote|update|remove', () => {
  it('member list -w json has etcd\'s shape', async () => {
    const list = JSON.parse(await ctl(followerEndpoint, 'member', 'list', '-w', 'json')) as { header: { member_id: number }; members: { ID: number; name: string; peerURLs: string[]; clientURLs: string[] }[] };
    expect(list.members.map((m) => m.ID).sort()).toEqual([1, 2, 3]);
    for (const m of list.members) {
      expect(m.name).toBe(String(m.ID));
      expect(m.peerURLs).toEqual([`http://${tc.cluster.peerAddress(m.ID)}`]);
      expect(m.clientURLs).toEqual([tc.cluster.clientAddress(m.ID)]);
    }
  });

  it('a learner added through a follower joins with --initial-cluster-state existing, is promoted, updated and removed', async () => {
    const peer4 = `http://${tc.cluster.peerAddress(4)}`;
    const added = await ctl(followerEndpoint, 'member', 'add', 'four', `--peer-urls=${peer4}`, '--learner');
    expect(added).toMatch(/^Member\s+4 added to cluster\s+[0-9a-f]+/);
    expect(added).toContain(`ETCD_NAME="four"`);
    expect(added).toContain(`four=${peer4}`);
    expect(added).toContain('ETCD_INITIAL_CLUSTER_STATE="existing"');
    expect(await ctlError(leaderEndpoint, 'member', 'add', 'again', `--peer-urls=${peer4}`)).toContain('etcdserver: Peer URLs already exists');
    // etcd 3.4 takes one learner at a time.
    expect(await ctlError(leaderEndpoint, 'member', 'add', 'five', `--peer-urls=http://127.0.0.1:${BASE_PORT + 5}`, '--learner')).toContain('etcdserver: too many learner members in cluster');
    const unstarted = await ctl(leaderEndpoint, 'member', 'list');
    expect(unstarted).toMatch(/^4, unstarted, , http:\/\/127\.0\.0\.1:\d+, , true$/m);
    expect(await ctlError(leaderEndpoint, 'member', 'promote', '4')).toContain('etcdserver: can only promote a learner member which is in sync with leader');
    expect(await ctlError(leaderEndpoint, 'member', 'promote', '1')).toContain('etcdserver: can only promote a learner member');

    // Started with the ETCD_INITIAL_CLUSTER line etcdctl printed, as an operator would.
    const printed = /^ETCD_INITIAL_CLUSTER="([^"]+)"$/m.exec(added)?.[1] ?? '';
    expect(printed.split(',')).toHaveLength(4);
    const args = tc.cluster.serveArgs(4, 'existing', [1, 2, 3, 4]);
    const at = args.indexOf('--initial-cluster');
    expect(at).toBeGreaterThan(-1);
    args[at + 1] = printed;
    mkdirSync(tc.cluster.dataDir(4), { recursive: true });
    fourth = spawnServe(args, { logFile: tc.cluster.logFile(4), killOnExit: true });
    // It gets the log, then publishes its client address (etcd's members publish their attributes).
    await untilLong('member 4 started', async () => (await ctl(leaderEndpoint, 'member', 'list')).includes(`4, started, 4, ${peer4}, ${tc.cluster.clientAddress(4)}, true`));
    await untilLong('member 4 promoted', async () => {
      try {
        await ctl(followerEndpoint, 'member', 'promote', '4');
        return true;
      } catch {
        return false; // not in sync yet
      }
    });
    expect(await ctl(leaderEndpoint, 'member', 'list')).toContain(`4, started, 4, ${peer4}, ${tc.cluster.clientAddress(4)}, false`);
    await ctl(tc.cluster.clientAddress(4), 'put', 'from/four', 'x');
    expect(await ctl(tc.cluster.clientAddress(4), 'get', 'from/four', '--print-value-only')).toBe('x\n');

    // Update: the others dial the new peer URL (nothing listens there: member 4 then stops getting the log).
    const moved = `http://127.0.0.1:${BASE_PORT + 44}`;
    expect(await ctlError(leaderEndpoint, 'member', 'update', '4', `--peer-urls=http://${tc.cluster.peerAddress(1)}`)).toContain('etcdserver: Peer URLs already exists');
    expect(await ctlError(leaderEndpoint, 'member', 'update', '99', `--peer-urls=${moved}`)).toContain('etcdserver: member not found');
    expect(await ctl(followerEndpoint, 'member', 'update', '4', `--peer-urls=${moved}`)).toMatch(/Member\s+4 updated in cluster/);
    expect(await ctl(leaderEndpoint, 'member', 'list')).toContain(`4, started, 4, ${moved}, `);

    // Removed through itself (it no longer gets the log at its old address: it answers once the leader applied it).
    expect(await ctl(tc.cluster.clientAddress(4), 'member', 'remove', '4')).toMatch(/Member\s+4 removed from cluster/);
    fourth.signal('SIGTERM');
    await fourth.exited;
    expect(await ctlError(leaderEndpoint, 'member', 'remove', '4')).toContain('etcdserver: member not found');
    expect((await ctl(leaderEndpoint, 'member', 'list')).trim().split('\n')).toHaveLength(3);
  }, 90_000);

  it('adding a voter with one of three down is refused with etcd\'s string; a serializable read-only txn is answered without a leader', async () => {
    const leader = await tc.leader({ exclude: [4] });
    const [survivor, follower] = [1, 2, 3].filter((id) => id !== leader);
    if (survivor === undefined || follower === undefined) throw new Error('three members expected');
    // With one of three down, adding a voter would need 3 of 4 started: etcd's ErrNotEnoughStartedMembers. (The
    // leader stays up, so the refusal is the reconfiguration check's, not a missing leader.)
    tc.cluster.kill(follower);
    await tc.cluster.waitExit(follower);
    const live = [tc.cluster.clientAddress(survivor)];
    // The leader no longer replicates to it (its stream broke: probe state), so it counts as not started.
    const admin = raw(tc.cluster.clientAddress(leader));
    await untilLong('the leader sees the follower gone', async () => {
      const m = ADMIN_METHODS.status;
      const s = await new Promise<WireStatusResponse>((resolve, reject) =>
        admin.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, {}, (err, res) => (err !== null || res === undefined ? reject(err ?? new Error('no answer')) : resolve(res))),
      );
      return s.progress.some((p) => p.id === follower && p.state !== 'replicate');
    });
    const refused = await ctlError(live[0] ?? '', 'member', 'add', 'five', `--peer-urls=http://127.0.0.1:${BASE_PORT + 55}`);
    expect(refused).toContain('etcdserver: re-configuration failed due to not enough started members');
    tc.cluster.kill(leader);
    await tc.cluster.waitExit(leader);
    const c = raw(tc.cluster.clientAddress(survivor));
    const txn = { success: [{ requestRange: { key: Buffer.from('ro/a'), serializable: true } }] };
    const local = await etcdUnary(c, 'KV', 'Txn', txn);
    expect(local.responses[0]?.responseRange?.kvs.map((kv) => kv.value.toString())).toEqual(['1']);
    // Not serializable: it needs ReadIndex, which needs a leader.
    await expect(etcdUnary(c, 'KV', 'Txn', { success: [{ requestRange: { key: Buffer.from('ro/a') } }] }, { timeoutMs: 1500 })).rejects.toBeDefined();
  }, 60_000);
});
