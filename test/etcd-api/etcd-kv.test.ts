// etcd's KV service on a real 3-member raftkv: the etcd3 npm client (CRUD, ranges, transactions, its software
// transactional memory), raw etcdserverpb calls for the exact fields (headers, counts, errors with etcd's codes
// and strings), and etcdctl 3.4 where it is installed (system-deps.ts).
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import { Compare_CompareResult, Compare_CompareTarget, etcdUnary } from '../../src/protocol/etcd-proto.js';
import { startTestCluster } from '../integration/helpers.js';
import type { TestCluster } from '../integration/helpers.js';
import { describeWithSystem } from '../system-deps.js';

const run = promisify(execFile);
const BASE_PORT = 23000;

let tc: TestCluster;
let leaderEndpoint: string;
let etcd: Etcd3;
let raw: grpc.Client;

beforeAll(async () => {
  tc = await startTestCluster({ nodes: 3, basePort: BASE_PORT });
  const leader = await tc.leader();
  leaderEndpoint = tc.cluster.endpoints([leader])[0] ?? '';
  etcd = new Etcd3({ hosts: `http://${leaderEndpoint}` });
  raw = new grpc.Client(leaderEndpoint, grpc.credentials.createInsecure());
}, 60_000);

afterAll(async () => {
  etcd.close();
  raw.close();
  await tc.close();
});

const status = (err: unknown): { code: number; details: string } => {
  const e = err as grpc.ServiceError;
  return { code: e.code, details: e.details };
};

describe('etcd KV API: the etcd3 npm client', () => {
  it('puts, gets, ranges by prefix, deletes', async () => {
    await etcd.put('e3/a').value('1');
    await etcd.put('e3/b').value('2');
    await etcd.put('e3/c').value('3');
    expect(await etcd.get('e3/a').string()).toBe('1');
    expect(await etcd.getAll().prefix('e3/').strings()).toEqual({ 'e3/a': '1', 'e3/b': '2', 'e3/c': '3' });
    expect(await etcd.getAll().prefix('e3/').count()).toBe(3);
    expect(await etcd.getAll().prefix('e3/').sort('Key', 'Descend').limit(2).keys()).toEqual(['e3/c', 'e3/b']);
    expect(await etcd.delete().key('e3/b').exec()).toMatchObject({ deleted: '1' });
    expect(await etcd.get('e3/b').string()).toBeNull();
  });

  it('transactions: compare on value and version, then/else branches', async () => {
    await etcd.put('e3/lock').value('free');
    const won = await etcd.if('e3/lock', 'Value', '==', 'free').then(etcd.put('e3/lock').value('mine')).else(etcd.get('e3/lock')).commit();
    expect(won.succeeded).toBe(true);
    const lost = await etcd.if('e3/lock', 'Value', '==', 'free').then(etcd.put('e3/lock').value('theirs')).else(etcd.get('e3/lock')).commit();
    expect(lost.succeeded).toBe(false);
    expect(lost.responses[0]?.response_range?.kvs[0]?.value.toString()).toBe('mine');
    const byVersion = await etcd.if('e3/lock', 'Version', '==', 2).then(etcd.put('e3/lock').value('v3')).commit();
    expect(byVersion.succeeded).toBe(true);
  });

  it('software transactional memory: concurrent increments never lose one', async () => {
    await etcd.put('e3/counter').value('0');
    const increment = (): Promise<void> =>
      etcd.stm({ retries: 50 }).transact(async (tx) => {
        const n = Number(await tx.get('e3/counter').string());
        await tx.put('e3/counter').value(String(n + 1));
      });
    await Promise.all(Array.from({ length: 8 }, increment));
    expect(await etcd.get('e3/counter').string()).toBe('8');
  });
});

describe('etcd KV API: the wire, field by field', () => {
  it('headers carry the cluster id, member id, revision and term; revisions move by one per changing write', async () => {
    const a = await etcdUnary(raw, 'KV', 'Put', { key: Buffer.from('w/a'), value: Buffer.from('1') });
    const b = await etcdUnary(raw, 'KV', 'Put', { key: Buffer.from('w/a'), value: Buffer.from('2'), prevKv: true });
    const rev = a.header?.revision ?? 0n;
    expect(b.header?.revision).toBe(rev + 1n);
    expect(b.prevKv).toMatchObject({ value: Buffer.from('1'), createRevision: rev, modRevision: rev, version: 1n });
    expect(a.header?.clusterId).not.toBe(0n);
    expect(a.header?.memberId).toBeGreaterThan(0n);
    expect(a.header?.raftTerm).toBeGreaterThan(0n);
    const none = await etcdUnary(raw, 'KV', 'DeleteRange', { key: Buffer.from('w/none') });
    expect([none.deleted, none.header?.revision]).toEqual([0n, rev + 1n]); // deleted nothing: no revision
    const past = await etcdUnary(raw, 'KV', 'Range', { key: Buffer.from('w/a'), revision: rev });
    expect(past.kvs.map((kv) => kv.value.toString())).toEqual(['1']);
    expect(past.header?.revision).toBe(rev + 1n); // the header reports the current revision
  });

  it('errors carry etcd\'s codes and strings: compacted, future revision, duplicate key, key not found', async () => {
    const p = await etcdUnary(raw, 'KV', 'Put', { key: Buffer.from('w/c'), value: Buffer.from('x') });
    const rev = p.header?.revision ?? 0n;
    await etcdUnary(raw, 'KV', 'Compact', { revision: rev, physical: true });
    const compacted = await etcdUnary(raw, 'KV', 'Range', { key: Buffer.from('w/c'), revision: rev - 1n }).catch(status);
    expect(compacted).toEqual({ code: grpc.status.OUT_OF_RANGE, details: 'etcdserver: mvcc: required revision has been compacted' });
    const future = await etcdUnary(raw, 'KV', 'Range', { key: Buffer.from('w/c'), revision: rev + 1000n }).catch(status);
    expect(future).toEqual({ code: grpc.status.OUT_OF_RANGE, details: 'etcdserver: mvcc: required revision is a future revision' });
    const put = { requestPut: { key: Buffer.from('w/d'), value: Buffer.from('1') } };
    const dup = await etcdUnary(raw, 'KV', 'Txn', { success: [put, put] }).catch(status);
    expect(dup).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: 'etcdserver: duplicate key given in txn request' });
    const ignore = await etcdUnary(raw, 'KV', 'Put', { key: Buffer.from('w/missing'), ignoreValue: true }).catch(status);
    expect(ignore).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: 'etcdserver: key not found' });
    const lease = await etcdUnary(raw, 'KV', 'Put', { key: Buffer.from('w/l'), value: Buffer.from('1'), lease: 12345n }).catch(status);
    expect(lease).toEqual({ code: grpc.status.NOT_FOUND, details: 'etcdserver: requested lease not found' });
    const empty = await etcdUnary(raw, 'KV', 'Put', { key: Buffer.alloc(0), value: Buffer.from('1') }).catch(status);
    expect(empty).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: 'etcdserver: key is not provided' });
  });
});

describe('one store behind both protocols', () => {
  it('raftkv\'s own client compacts the history etcd\'s API reads, and reads past revisions as it does', async () => {
    const first = await tc.client.put('both/k', 'v1');
    await tc.client.put('both/k', 'v2');
    const old = await tc.client.range({ key: 'both/k', end: '' }, { revision: first.header.revision });
    expect(old.kvs.map((kv) => Buffer.from(kv.value).toString())).toEqual(['v1']);
    const viaEtcd = await etcdUnary(raw, 'KV', 'Range', { key: Buffer.from('both/k'), revision: BigInt(first.header.revision) });
    expect(viaEtcd.kvs.map((kv) => kv.value.toString())).toEqual(['v1']);
    await tc.client.compact(first.header.revision + 1, { physical: true });
    const gone = await etcdUnary(raw, 'KV', 'Range', { key: Buffer.from('both/k'), revision: BigInt(first.header.revision) }).catch(status);
    expect(gone).toEqual({ code: grpc.status.OUT_OF_RANGE, details: 'etcdserver: mvcc: required revision has been compacted' });
    await expect(tc.client.range({ key: 'both/k', end: '' }, { revision: first.header.revision })).rejects.toMatchObject({ code: 'COMPACTED' });
    await expect(tc.client.compact(first.header.revision)).rejects.toMatchObject({ code: 'COMPACTED' });
  });
});

describe('etcd KV API: any member serves any request', () => {
  it('a follower forwards a write to the leader and answers once it applied it: a serializable read there sees it', async () => {
    const leader = await tc.leader();
    for (const id of tc.cluster.ids()) {
      const client = new grpc.Client(tc.cluster.endpoints([id])[0] ?? '', grpc.credentials.createInsecure());
      try {
        const key = Buffer.from(`any/${id}`);
        const put = await etcdUnary(client, 'KV', 'Put', { key, value: Buffer.from(`via ${id}`) });
        expect(put.header?.memberId, `member ${id} answers itself`).toBe(BigInt(id));
        const got = await etcdUnary(client, 'KV', 'Range', { key, serializable: true });
        expect(got.kvs.map((kv) => kv.value.toString()), `member ${id} (leader ${leader})`).toEqual([`via ${id}`]);
        expect(got.header?.revision).toBeGreaterThanOrEqual(put.header?.revision ?? 0n);
        const txn = await etcdUnary(client, 'KV', 'Txn', {
          compare: [{ key, target: Compare_CompareTarget.VALUE, result: Compare_CompareResult.EQUAL, value: Buffer.from(`via ${id}`) }],
          success: [{ requestDeleteRange: { key } }],
        });
        expect(txn.succeeded).toBe(true);
      } finally {
        client.close();
      }
    }
  });
});

describeWithSystem(['etcdctl'], 'etcd API: etcdctl 3.4', () => {
  const ctl = async (...args: string[]): Promise<string> => (await run('etcdctl', ['--endpoints', leaderEndpoint, ...args], { env: { ...process.env, ETCDCTL_API: '3' } })).stdout;

  it('put, get with --prefix, --rev, --sort-by, --limit, --keys-only, --consistency=s, del --prev-kv', async () => {
    expect(await ctl('put', 'ctl/a', '1')).toBe('OK\n');
    const rev = (JSON.parse(await ctl('put', 'ctl/a', '2', '-w', 'json')) as { header: { revision: number } }).header.revision;
    await ctl('put', 'ctl/b', '3');
    expect(await ctl('get', 'ctl/a')).toBe('ctl/a\n2\n');
    expect(await ctl('get', 'ctl/a', '--rev', String(rev - 1))).toBe('ctl/a\n1\n');
    expect(await ctl('get', 'ctl/', '--prefix', '--keys-only')).toBe('ctl/a\n\nctl/b\n\n');
    expect(await ctl('get', 'ctl/', '--prefix', '--sort-by', 'VALUE', '--order', 'DESCEND', '--limit', '1')).toBe('ctl/b\n3\n');
    expect(await ctl('get', 'ctl/', '--prefix', '-w', 'json')).toMatch(/"count":2/);
    expect(await ctl('get', 'ctl/b', '--consistency=s')).toBe('ctl/b\n3\n');
    expect(await ctl('del', 'ctl/a', '--prev-kv')).toBe('1\nctl/a\n2\n');
    expect(await ctl('get', 'ctl/b', '--from-key', '--keys-only')).toMatch(/^ctl\/b\n\n/); // every key >= ctl/b
    expect(await ctl('put', 'ctl/b', '--ignore-value', '--prev-kv')).toBe('OK\nctl/b\n3\n'); // keeps the value
    expect(await ctl('get', 'ctl/b', '-w', 'json')).toMatch(/"version":2/);
  });

  it('every member in turn as the only endpoint: put and get', async () => {
    for (const endpoint of tc.cluster.endpoints()) {
      const one = async (...args: string[]): Promise<string> =>
        (await run('etcdctl', ['--endpoints', endpoint, ...args], { env: { ...process.env, ETCDCTL_API: '3' } })).stdout;
      expect(await one('put', 'ctl/each', endpoint)).toBe('OK\n');
      expect(await one('get', 'ctl/each')).toBe(`ctl/each\n${endpoint}\n`);
    }
  });

  it('member list, endpoint status --cluster and endpoint health --cluster (-w json)', async () => {
    const st = await etcdUnary(raw, 'Maintenance', 'Status', {});
    expect(st.version).toBe('3.4.23');
    const list = JSON.parse(await ctl('member', 'list', '-w', 'json')) as { members: { ID: number; name: string; peerURLs: string[]; clientURLs: string[] }[] };
    expect(list.members.map((m) => m.clientURLs[0]).sort()).toEqual([...tc.cluster.endpoints()].sort());
    const status = JSON.parse(await ctl('endpoint', 'status', '--cluster', '-w', 'json')) as { Endpoint: string; Status: { version: string; leader: number; raftIndex: number } }[];
    expect(status).toHaveLength(3);
    const leaders = new Set(status.map((s) => s.Status.leader));
    expect(leaders.size).toBe(1); // every member names the same leader
    expect(status.every((s) => s.Status.version === '3.4.23')).toBe(true);
    const health = await run('etcdctl', ['--endpoints', leaderEndpoint, 'endpoint', 'health', '--cluster'], { env: { ...process.env, ETCDCTL_API: '3' } });
    expect((health.stdout + health.stderr).match(/is healthy/g)).toHaveLength(3);
    expect(await ctl('endpoint', 'status', '-w', 'table')).toMatch(/3\.4\.23/);
  });

  it('endpoint hashkv --cluster agrees on every member; alarm list; snapshot save writes the file and its SHA-256', async () => {
    await ctl('put', 'ctl/hash', 'x');
    const hashes = async (): Promise<Set<number>> => {
      const out = JSON.parse(await ctl('endpoint', 'hashkv', '--cluster', '-w', 'json')) as { HashKV: { hash: number } }[];
      return new Set(out.map((h) => h.HashKV.hash));
    };
    let agreed = await hashes();
    for (let i = 0; i < 20 && agreed.size !== 1; i++) agreed = await hashes(); // members apply the last put in turn
    expect(agreed.size).toBe(1);
    expect(await ctl('alarm', 'list')).toBe('');
    expect(await ctl('defrag', '--cluster')).toMatch(/^(Finished defragmenting etcd member\[[^\]]+\]\n){3}$/);
    const file = join(mkdtempSync(join(tmpdir(), 'raftkv-etcdctl-')), 'snap.db');
    expect(await ctl('snapshot', 'save', file)).toMatch(/Snapshot saved at/);
    const bytes = readFileSync(file);
    const body = bytes.subarray(0, bytes.length - 32);
    expect(bytes.length % 512).toBe(32); // what etcdctl checks
    expect(createHash('sha256').update(body).digest().equals(bytes.subarray(bytes.length - 32))).toBe(true);
  });

  it('move-leader hands leadership to the member named', async () => {
    const leader = await tc.leader();
    const target = tc.cluster.ids().find((id) => id !== leader) ?? 0;
    const endpoint = tc.cluster.endpoints([leader])[0] ?? '';
    const out = await run('etcdctl', ['--endpoints', endpoint, 'move-leader', target.toString(16)], { env: { ...process.env, ETCDCTL_API: '3' } });
    expect(out.stdout).toMatch(/Leadership transferred/);
    expect(await tc.leader()).toBe(target);
    leaderEndpoint = tc.cluster.endpoints([target])[0] ?? '';
  });

  it('check perf --load=s passes (150 puts/s of 1 KiB for 60 s, then a prefix delete)', async () => {
    const out = await run('etcdctl', ['--endpoints', tc.cluster.endpoints().join(','), 'check', 'perf', '--load=s'], {
      env: { ...process.env, ETCDCTL_API: '3' },
      maxBuffer: 16 * 1024 * 1024,
    });
    const verdict = out.stdout.slice(out.stdout.indexOf('PASS') === -1 ? 0 : out.stdout.indexOf('PASS: Throughput'));
    expect(verdict, verdict).toMatch(/PASS: Throughput is \d+ writes\/s\nPASS: Slowest request took [\d.]+s\nPASS: Stddev is [\d.]+s\nPASS/);
  }, 120_000);

  it('txn from stdin and compaction --physical', async () => {
    await ctl('put', 'ctl/t', 'old');
    const child = execFile('etcdctl', ['--endpoints', leaderEndpoint, 'txn'], { env: { ...process.env, ETCDCTL_API: '3' } });
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.stdin?.end('value("ctl/t") = "old"\n\nput ctl/t new\nget ctl/t\n\n\n'); // compares, success ops, failure ops
    await new Promise<void>((resolve, reject) => child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`etcdctl txn exited ${code}: ${err}`)))));
    expect(out).toBe('SUCCESS\n\nOK\n\nctl/t\nnew\n'); // the get sees the txn's own put
    const rev = (JSON.parse(await ctl('get', 'ctl/t', '-w', 'json')) as { header: { revision: number } }).header.revision;
    expect(await ctl('compaction', '--physical', String(rev))).toBe(`compacted revision ${rev}\n`);
  });
});
