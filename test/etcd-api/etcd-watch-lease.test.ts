// etcd's Watch and Lease services on a real 3-member raftkv: the etcd3 npm client (watch, lease, lock,
// election), raw etcdserverpb calls for the exact answers (created/canceled/compact_revision, progress, ids,
// TTL 0 and -1), any member serving watches and forwarding keep-alives, leases that expire when nobody keeps
// them alive and survive a leader failover when someone does, a watch that goes on across a failover without a
// gap or a repeat, and etcdctl 3.4's watch, lease, lock and elect.
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import { Event_EventType, etcdBidiStream, etcdUnary } from '../../src/protocol/etcd-proto.js';
import type { WatchResponse } from '../../src/protocol/etcd-proto.js';
import { startTestCluster, until } from '../integration/helpers.js';
import type { TestCluster } from '../integration/helpers.js';
import { describeWithSystem } from '../system-deps.js';
import { rawClients } from './raw-clients.js';

const run = promisify(execFile);
const BASE_PORT = 25000;
const ETCDCTL_ENV = { ...process.env, ETCDCTL_API: '3' };

let tc: TestCluster;
let leaderId: number;
let leaderEndpoint: string;
let followerEndpoint: string;

const { raw, closeAll } = rawClients();


/** Waits until the member at `endpoint` has applied up to `revision` (a serializable read there shows it). */
async function applied(endpoint: string, revision: bigint): Promise<void> {
  const c = raw(endpoint);
  await until(`revision ${revision} at ${endpoint}`, async () => ((await etcdUnary(c, 'KV', 'Range', { key: Buffer.from('-'), serializable: true })).header?.revision ?? 0n) >= revision);
}

/** A raw Watch stream that records every response. */
function openWatch(endpoint: string): { responses: WatchResponse[]; stream: ReturnType<typeof etcdBidiStream<'Watch', 'Watch'>>; readonly error: Error | undefined; close(): void } {
  const stream = etcdBidiStream(raw(endpoint), 'Watch', 'Watch');
  const responses: WatchResponse[] = [];
  let error: Error | undefined;
  stream.on('data', (r: WatchResponse) => responses.push(r));
  let closing = false;
  stream.on('error', (err: Error) => {
    if (!closing) error = err; // a cancelled stream ends with CANCELLED
  });
  return {
    responses,
    stream,
    get error() {
      return error;
    },
    close: () => {
      closing = true;
      stream.cancel();
    },
  };
}

beforeAll(async () => {
  tc = await startTestCluster({ nodes: 3, basePort: BASE_PORT });
  leaderId = await tc.leader();
  leaderEndpoint = tc.cluster.endpoints([leaderId])[0] ?? '';
  followerEndpoint = tc.cluster.endpoints(tc.cluster.ids().filter((id) => id !== leaderId))[0] ?? '';
}, 60_000);

afterAll(async () => {
  closeAll();
  await tc.close();
});

describe('etcd Watch: raw etcdserverpb', () => {
  it('create answers created at the current revision, then events; a follower serves the watch', async () => {
    const put = await etcdUnary(raw(leaderEndpoint), 'KV', 'Put', { key: Buffer.from('rw/a'), value: Buffer.from('1') });
    await applied(followerEndpoint, put.header?.revision ?? 0n);
    const w = openWatch(followerEndpoint);
    w.stream.write({ createRequest: { key: Buffer.from('rw/'), rangeEnd: Buffer.from('rw0'), prevKv: true } });
    await until('created', () => w.responses.length >= 1);
    const created = w.responses[0];
    expect(created).toMatchObject({ created: true, canceled: false, watchId: 0n });
    expect(created?.header?.revision).toBeGreaterThanOrEqual(put.header?.revision ?? 0n);
    const p2 = await etcdUnary(raw(leaderEndpoint), 'KV', 'Put', { key: Buffer.from('rw/a'), value: Buffer.from('2') });
    await until('event', () => w.responses.length >= 2);
    const ev = w.responses[1];
    expect(ev?.header?.revision).toBe(p2.header?.revision);
    expect(ev?.events.map((e) => [e.type, e.kv?.key.toString(), e.kv?.value.toString(), e.prevKv?.value.toString()])).toEqual([[0, 'rw/a', '2', '1']]);
    // A second watch on the stream: the next id; a taken id: created and canceled with etcd's reason.
    w.stream.write({ createRequest: { key: Buffer.from('rw/x') } });
    w.stream.write({ createRequest: { key: Buffer.from('rw/y'), watchId: 1n } });
    await until('two more answers', () => w.responses.length >= 4);
    expect(w.responses[2]).toMatchObject({ created: true, watchId: 1n, canceled: false });
    expect(w.responses[3]).toMatchObject({ created: true, canceled: true, watchId: -1n, cancelReason: 'mvcc: duplicate watch ID provided on the WatchStream' });
    // Cancel: answered for a live id, nothing for an unknown one.
    w.stream.write({ cancelRequest: { watchId: 77n } });
    w.stream.write({ cancelRequest: { watchId: 1n } });
    await until('cancel', () => w.responses.length >= 5);
    expect(w.responses[4]).toMatchObject({ canceled: true, watchId: 1n });
    // A progress request: one answer with watch id -1 at the current revision.
    w.stream.write({ progressRequest: {} });
    await until('progress', () => w.responses.length >= 6);
    expect(w.responses[5]).toMatchObject({ watchId: -1n, events: [] });
    w.close();
  });

  it('a start revision in the past replays the history; below the compaction it is answered with compact_revision', async () => {
    const c = raw(leaderEndpoint);
    const revs: bigint[] = [];
    for (let i = 0; i < 5; i++) revs.push((await etcdUnary(c, 'KV', 'Put', { key: Buffer.from('hist/k'), value: Buffer.from(`v${i}`) })).header?.revision ?? 0n);
    await etcdUnary(c, 'KV', 'DeleteRange', { key: Buffer.from('hist/k') });
    const w = openWatch(followerEndpoint);
    w.stream.write({ createRequest: { key: Buffer.from('hist/k'), startRevision: revs[1] ?? 0n } });
    await until('replay', () => w.responses.reduce((n, r) => n + r.events.length, 0) >= 4);
    const events = w.responses.flatMap((r) => r.events);
    expect(events.map((e) => [e.type, e.kv?.modRevision])).toEqual([...revs.slice(1).map((r) => [0, r]), [1, (revs[4] ?? 0n) + 1n]]);
    w.close();
    const compacted = await etcdUnary(c, 'KV', 'Compact', { revision: revs[3] ?? 0n, physical: true });
    await etcdUnary(c, 'KV', 'Put', { key: Buffer.from('hist/after'), value: Buffer.from('x') }); // the follower applies past the compaction
    await applied(followerEndpoint, (compacted.header?.revision ?? 0n) + 1n);
    const late = openWatch(followerEndpoint);
    late.stream.write({ createRequest: { key: Buffer.from('hist/k'), startRevision: revs[1] ?? 0n } });
    await until('compacted answer', () => late.responses.length >= 2);
    expect(late.responses[0]).toMatchObject({ created: true });
    expect(late.responses[1]).toMatchObject({ canceled: true, compactRevision: revs[3] });
    late.close();
  });

  it('a client that stops reading falls behind and then gets every event once, in order, when it reads again', async () => {
    const c = raw(leaderEndpoint);
    const w = openWatch(followerEndpoint);
    w.stream.write({ createRequest: { key: Buffer.from('slow/'), rangeEnd: Buffer.from('slow0') } });
    await until('created', () => w.responses.length >= 1);
    w.stream.pause(); // HTTP/2 flow control stops the member's writes: its responses queue past the stream's bound
    // 8 KiB values: ~200 puts fill the flow-control windows and WATCH_STREAM_BUFFER_RESPONSES, and what is left
    // comes as catch-up responses under grpc-js's default 4 MiB receive limit (our client and clientv3 have none).
    const value = Buffer.alloc(8 * 1024, 7);
    const revs: bigint[] = [];
    const PUTS = 500;
    for (let i = 0; i < PUTS; i++) revs.push((await etcdUnary(c, 'KV', 'Put', { key: Buffer.from(`slow/${i % 10}`), value })).header?.revision ?? 0n);
    await applied(followerEndpoint, revs[PUTS - 1] ?? 0n);
    w.stream.resume();
    await until('every event', () => w.responses.reduce((n, r) => n + r.events.length, 0) >= PUTS || w.error !== undefined, 30_000);
    expect(w.error).toBeUndefined();
    const got = w.responses.flatMap((r) => r.events.map((e) => e.kv?.modRevision ?? 0n));
    expect(got).toEqual(revs);
    w.close();
  }, 60_000);

  it('filters and an empty range are as etcd has them', async () => {
    const w = openWatch(leaderEndpoint);
    w.stream.write({ createRequest: { key: Buffer.from('flt/b'), rangeEnd: Buffer.from('flt/a') } });
    w.stream.write({ createRequest: { key: Buffer.from('flt/'), rangeEnd: Buffer.from('flt0'), filters: [0] } }); // NOPUT
    await until('answers', () => w.responses.length >= 2);
    expect(w.responses[0]).toMatchObject({ created: true, canceled: true, cancelReason: 'mvcc: watcher range is empty' });
    const c = raw(leaderEndpoint);
    await etcdUnary(c, 'KV', 'Put', { key: Buffer.from('flt/x'), value: Buffer.from('1') });
    await etcdUnary(c, 'KV', 'DeleteRange', { key: Buffer.from('flt/x') });
    await until('delete event', () => w.responses.length >= 3);
    expect(w.responses[2]?.events.map((e) => e.type)).toEqual([1]);
    w.close();
  });
});

describe('etcd Lease: raw etcdserverpb', () => {
  it('grant on a follower, keep-alive and TimeToLive forwarded to the leader, unknown leases answered TTL 0 and -1', async () => {
    const f = raw(followerEndpoint);
    const g = await etcdUnary(f, 'Lease', 'LeaseGrant', { TTL: 30n });
    expect(g.ID).toBeGreaterThan(0n);
    expect(g.ID).toBeLessThan(2n ** 53n);
    expect(g.TTL).toBe(30n);
    await etcdUnary(f, 'KV', 'Put', { key: Buffer.from('ls/a'), value: Buffer.from('1'), lease: g.ID });
    const ttl = await etcdUnary(f, 'Lease', 'LeaseTimeToLive', { ID: g.ID, keys: true });
    expect(ttl).toMatchObject({ ID: g.ID, grantedTTL: 30n });
    expect(ttl.TTL).toBeGreaterThan(25n);
    expect(ttl.keys.map((k) => k.toString())).toEqual(['ls/a']);
    expect(await etcdUnary(f, 'Lease', 'LeaseTimeToLive', { ID: 12345n })).toMatchObject({ ID: 12345n, TTL: -1n });
    const ka = etcdBidiStream(f, 'Lease', 'LeaseKeepAlive');
    const answers: { ID: bigint; TTL: bigint }[] = [];
    ka.on('data', (r: { ID: bigint; TTL: bigint }) => answers.push(r));
    ka.write({ ID: g.ID });
    ka.write({ ID: 999n });
    await until('keep-alive answers', () => answers.length >= 2);
    expect(answers.map((a) => [a.ID, a.TTL])).toEqual([
      [g.ID, 30n],
      [999n, 0n],
    ]);
    ka.end();
    const leases = await etcdUnary(f, 'Lease', 'LeaseLeases', {});
    expect(leases.leases.map((l) => l.ID)).toContain(g.ID);
    // A TTL below the minimum is raised to it; a lease that exists cannot be granted again.
    const small = await etcdUnary(f, 'Lease', 'LeaseGrant', { TTL: 0n });
    expect(small.TTL).toBeGreaterThanOrEqual(1n);
    await expect(etcdUnary(f, 'Lease', 'LeaseGrant', { TTL: 5n, ID: g.ID })).rejects.toMatchObject({ code: grpc.status.FAILED_PRECONDITION, details: 'etcdserver: lease already exists' });
    await etcdUnary(f, 'Lease', 'LeaseRevoke', { ID: g.ID });
    expect((await etcdUnary(f, 'KV', 'Range', { key: Buffer.from('ls/a') })).count).toBe(0n);
    await expect(etcdUnary(f, 'Lease', 'LeaseRevoke', { ID: g.ID })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND, details: 'etcdserver: requested lease not found' });
  });

  it('a lease nobody keeps alive expires (its keys go in one revision, seen by a watch); one kept alive does not', async () => {
    const c = raw(leaderEndpoint);
    const dying = await etcdUnary(c, 'Lease', 'LeaseGrant', { TTL: 2n });
    const kept = await etcdUnary(c, 'Lease', 'LeaseGrant', { TTL: 2n });
    for (const k of ['exp/a', 'exp/b']) await etcdUnary(c, 'KV', 'Put', { key: Buffer.from(k), value: Buffer.from('x'), lease: dying.ID });
    await etcdUnary(c, 'KV', 'Put', { key: Buffer.from('exp/kept'), value: Buffer.from('x'), lease: kept.ID });
    const w = openWatch(followerEndpoint);
    w.stream.write({ createRequest: { key: Buffer.from('exp/'), rangeEnd: Buffer.from('exp0') } });
    const ka = etcdBidiStream(raw(followerEndpoint), 'Lease', 'LeaseKeepAlive');
    ka.on('data', () => undefined);
    const timer = setInterval(() => ka.write({ ID: kept.ID }), 300);
    try {
      await until('the lease to expire', async () => (await etcdUnary(c, 'KV', 'Range', { key: Buffer.from('exp/a') })).count === 0n, 10_000);
      // The watch is on a follower: it has the deletes once it has applied the revoke (maybe after the leader).
      const deletesSeen = (): typeof w.responses => w.responses.filter((r) => r.events.some((e) => e.type === Event_EventType.DELETE));
      await until('the follower watch to see the deletes', () => deletesSeen().length > 0, 10_000);
      const deletes = deletesSeen();
      expect(deletes).toHaveLength(1); // both keys in one response: one revision
      expect(deletes[0]?.events.map((e) => [e.type, e.kv?.key.toString()])).toEqual([
        [1, 'exp/a'],
        [1, 'exp/b'],
      ]);
      // Kept alive through a follower for longer than its TTL: still there.
      await new Promise((r) => setTimeout(r, 2500));
      expect((await etcdUnary(c, 'KV', 'Range', { key: Buffer.from('exp/kept') })).count).toBe(1n);
    } finally {
      clearInterval(timer);
      ka.end();
      w.close();
    }
  });
});

describe('etcd API: the etcd3 npm client', () => {
  it('watch, lease, lock and election', async () => {
    const etcd = new Etcd3({ hosts: `http://${followerEndpoint}` });
    try {
      const watcher = await etcd.watch().prefix('e3w/').withPreviousKV().create();
      const seen: string[] = [];
      watcher.on('put', (kv, prev) => seen.push(`put ${kv.key.toString()}=${kv.value.toString()} prev=${prev?.value.toString() ?? '-'}`));
      watcher.on('delete', (kv) => seen.push(`del ${kv.key.toString()}`));
      await etcd.put('e3w/a').value('1');
      await etcd.put('e3w/a').value('2');
      await etcd.delete().key('e3w/a');
      await until('three events', () => seen.length >= 3);
      expect(seen).toEqual(['put e3w/a=1 prev=-', 'put e3w/a=2 prev=1', 'del e3w/a']);
      await watcher.cancel();

      const lease = etcd.lease(2);
      await lease.put('e3l/k').value('v');
      await new Promise((r) => setTimeout(r, 3000)); // longer than the TTL: the client's keep-alives hold it
      expect(await etcd.get('e3l/k').string()).toBe('v');
      await lease.revoke();
      expect(await etcd.get('e3l/k').string()).toBeNull();

      const lock = etcd.lock('e3lock');
      await lock.acquire();
      await expect(etcd.lock('e3lock').acquire()).rejects.toThrow(/Failed to acquire a lock/);
      await lock.release();
      const again = etcd.lock('e3lock');
      await again.acquire();
      await again.release();

      const election = etcd.election('e3elect');
      const campaign = election.campaign('node-a');
      await new Promise<void>((resolve, reject) => {
        campaign.on('elected', () => resolve());
        campaign.on('error', reject);
      });
      expect(await election.leader()).toBe('node-a');
      await campaign.resign();
    } finally {
      etcd.close();
    }
  });

  it('a watch on a follower and a kept-alive lease go on across the leader being killed', async () => {
    const survivor = tc.cluster.ids().find((id) => id !== leaderId) ?? 0;
    const etcd = new Etcd3({ hosts: tc.cluster.endpoints([survivor]).map((e) => `http://${e}`) });
    const writer = new Etcd3({ hosts: tc.cluster.endpoints().map((e) => `http://${e}`) });
    try {
      const revisions: number[] = [];
      const watcher = await etcd.watch().prefix('fo/').create();
      watcher.on('put', (kv) => revisions.push(Number(kv.mod_revision)));
      const lease = etcd.lease(3);
      await lease.put('fo-lease').value('held');
      let writes = 0;
      const write = async (): Promise<void> => {
        for (;;) {
          try {
            await writer.put(`fo/${writes}`).value('x');
            writes++;
            return;
          } catch {
            await new Promise((r) => setTimeout(r, 100)); // no leader yet: try again
          }
        }
      };
      for (let i = 0; i < 5; i++) await write();
      tc.cluster.kill(leaderId);
      for (let i = 0; i < 10; i++) await write();
      await until('every event', () => revisions.length >= writes);
      expect(revisions.length).toBe(writes); // no repeat
      expect([...revisions].sort((a, b) => a - b)).toEqual(revisions); // in order
      await new Promise((r) => setTimeout(r, 3500)); // past the lease TTL, after the failover
      expect(await writer.get('fo-lease').string()).toBe('held');
      await lease.revoke();
      await watcher.cancel();
    } finally {
      etcd.close();
      writer.close();
      tc.cluster.start(leaderId);
      leaderId = await tc.leader();
      leaderEndpoint = tc.cluster.endpoints([leaderId])[0] ?? '';
    }
  });
});

describeWithSystem(['etcdctl'], 'etcd Watch and Lease: etcdctl 3.4', () => {
  const ctl = async (...args: string[]): Promise<string> => (await run('etcdctl', ['--endpoints', followerEndpoint, ...args], { env: ETCDCTL_ENV })).stdout;

  /** etcdctl watch ARGS for as long as `during` runs, then its output. */
  async function watchWhile(args: string[], during: () => Promise<void>, input?: string): Promise<string> {
    const p = spawn('etcdctl', ['--endpoints', followerEndpoint, 'watch', ...args], { env: ETCDCTL_ENV });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    if (input !== undefined) p.stdin.write(input);
    await new Promise((r) => setTimeout(r, 500)); // etcdctl connects and creates its watch
    await during();
    await until('etcdctl to print', () => out.length > 0, 5000);
    await new Promise((r) => setTimeout(r, 300));
    p.kill();
    return out;
  }

  it('watch --prefix --prev-kv, --rev, and -i with progress', async () => {
    const first = await ctl('put', 'ctlw/a', '1');
    expect(first).toContain('OK');
    const live = await watchWhile(['--prefix', 'ctlw/', '--prev-kv'], async () => {
      await ctl('put', 'ctlw/a', '2');
      await ctl('del', 'ctlw/a');
    });
    // etcdctl prints the previous key and value before the event's own.
    expect(live).toBe('PUT\nctlw/a\n1\nctlw/a\n2\nDELETE\nctlw/a\n2\nctlw/a\n\n');
    const rev = JSON.parse(await ctl('get', 'ctlw/none', '-w', 'json')) as { header: { revision: number } };
    const replay = await watchWhile(['--rev', String(rev.header.revision), 'ctlw/a'], () => Promise.resolve());
    expect(replay).toBe('DELETE\nctlw/a\n\n');
    const interactive = await watchWhile(['-i'], () => Promise.resolve(), 'watch ctlw/q\nprogress\n');
    expect(interactive).toMatch(/^progress notify: \d+$/m);
  });

  it('lease grant, put --lease, timetolive --keys, keep-alive --once, list, revoke', async () => {
    const granted = await ctl('lease', 'grant', '60');
    const id = /lease ([0-9a-f]+) granted with TTL\(60s\)/.exec(granted)?.[1] ?? '';
    expect(id).not.toBe('');
    await ctl('put', '--lease', id, 'ctll/k', 'v');
    expect(await ctl('lease', 'timetolive', '--keys', id)).toMatch(new RegExp(`lease ${id} granted with TTL\\(60s\\), remaining\\(\\d+s\\), attached keys\\(\\[ctll/k\\]\\)`));
    expect(await ctl('lease', 'keep-alive', '--once', id)).toContain(`lease ${id} keepalived with TTL(60)`);
    expect(await ctl('lease', 'list')).toContain(id);
    expect(await ctl('lease', 'revoke', id)).toContain(`lease ${id} revoked`);
    expect(await ctl('get', 'ctll/k')).toBe('');
    expect(await ctl('lease', 'timetolive', id)).toContain('already expired');
  });

  it('two etcdctl locks on one name exclude each other; elect campaigns and observes', async () => {
    // Each holder writes its name, waits, and reads it back: if the other got in, it would read the other's.
    const holder = (name: string): Promise<{ stdout: string }> =>
      run('etcdctl', ['--endpoints', followerEndpoint, 'lock', 'ctl-mutex', '--', 'sh', '-c', `etcdctl --endpoints ${followerEndpoint} put ctl-owner ${name} >/dev/null; sleep 1; etcdctl --endpoints ${followerEndpoint} get ctl-owner --print-value-only`], { env: ETCDCTL_ENV });
    const [a, b] = await Promise.all([holder('A'), holder('B')]);
    expect(a.stdout).toContain('A');
    expect(b.stdout).toContain('B');
    const campaign = spawn('etcdctl', ['--endpoints', followerEndpoint, 'elect', 'ctl-elect', 'proposal-1'], { env: ETCDCTL_ENV });
    let out = '';
    campaign.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await until('elected', () => out.includes('proposal-1'), 10_000);
    const observed = await watchLeader();
    expect(observed).toContain('proposal-1');
    campaign.kill('SIGINT');
    async function watchLeader(): Promise<string> {
      const p = spawn('etcdctl', ['--endpoints', followerEndpoint, 'elect', '-l', 'ctl-elect'], { env: ETCDCTL_ENV });
      let o = '';
      p.stdout.on('data', (d: Buffer) => (o += d.toString()));
      await until('observed leader', () => o.includes('proposal-1'), 10_000);
      p.kill();
      return o;
    }
  });
});
