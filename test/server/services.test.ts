// KV and Admin services over real loopback gRPC (runServer with a fake KvNode), driven by KvClient:
// round trips with headers, NOT_LEADER redirects, UNAVAILABLE backoff, deadlines, at-most-once retries,
// oversized and invalid requests, admin calls, snapshot download.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KvClient, text } from '../../src/client/index.js';
import { RaftKvError } from '../../src/shared/errors.js';
import type { NodeConfig } from '../../src/node/config.js';
import type { RunningServer } from '../../src/server/serve.js';
import { runServer } from '../../src/server/serve.js';
import { FakeCluster, FakeNode, testConfig } from './fake-node.js';
import { silentLogger } from './helpers.js';

let dir = '';
const running: RunningServer[] = [];
const clients: KvClient[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'raftkv-services-'));
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const s of running.splice(0)) await s.stop();
  await rm(dir, { recursive: true, force: true });
});

async function cluster(n: number, overrides: Partial<NodeConfig> = {}): Promise<{ c: FakeCluster; nodes: FakeNode[]; addrs: string[] }> {
  const c = new FakeCluster();
  const nodes: FakeNode[] = [];
  const addrs: string[] = [];
  for (let id = 1; id <= n; id++) {
    const node = new FakeNode(id, c);
    const s = await runServer(testConfig(id, join(dir, `n${id}`), overrides), { logger: silentLogger, startNode: () => Promise.resolve(node) });
    running.push(s);
    nodes.push(node);
    addrs.push(s.clientAddress);
    c.addresses.set(id, s.clientAddress);
    c.members.push({ id, peerAddress: s.peerAddress, clientAddress: s.clientAddress, learner: false });
  }
  return { c, nodes, addrs };
}

function client(endpoints: string[], opts: Partial<ConstructorParameters<typeof KvClient>[0]> = {}): KvClient {
  const k = new KvClient({ endpoints, timeoutMs: 3000, ...opts });
  clients.push(k);
  return k;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (err) {
    if (err instanceof RaftKvError) return err.code;
    throw err;
  }
}

describe.each(['stream', 'unary'] as const)('KV service + KvClient (%s)', (transport) => {
  const kvClient = (endpoints: string[], opts: Partial<ConstructorParameters<typeof KvClient>[0]> = {}): KvClient => client(endpoints, { transport, ...opts });

  it('put, get, range, delete, cas, txn round-trip with headers', async () => {
    const { c, addrs } = await cluster(1);
    const k = kvClient(addrs);
    const put = await k.put('a/1', 'one');
    expect(put.header).toEqual({ memberId: 1, term: 2, index: 11, leaderId: 1, revision: 2 });
    await k.put('a/2', Uint8Array.of(0, 255));
    await k.put('b', 'bee');
    const got = await k.get('a/1');
    expect(text(got.kv?.value ?? new Uint8Array())).toBe('one');
    expect(got.kv).toMatchObject({ version: 1, createRevision: 2, modRevision: 2, lease: 0 });
    expect((await k.get('nope')).kv).toBeUndefined();
    const r = await k.range('a/');
    expect(r.kvs.map((kv) => text(kv.key))).toEqual(['a/1', 'a/2']);
    expect(Array.from(r.kvs[1]?.value ?? [])).toEqual([0, 255]);
    expect((await k.range('a/', { limit: 1 })).more).toBe(true);
    expect((await k.range({ key: 'a', end: 'c' }, { countOnly: true })).count).toBe(3);
    const prev = await k.put('a/1', 'uno', { prevKv: true });
    expect(text(prev.prevKv?.value ?? new Uint8Array())).toBe('one');
    expect((await k.cas('a/1', 'wrong', 'x')).succeeded).toBe(false);
    expect((await k.cas('a/1', 'uno', 'x')).succeeded).toBe(true);
    expect((await k.cas('new', null, 'created')).succeeded).toBe(true);
    expect((await k.cas('new', null, 'again')).succeeded).toBe(false);
    const t = await k.txn({
      compares: [{ key: 'b', target: 'version', op: '>', number: 0 }],
      success: [{ type: 'range', range: { prefix: 'a/' } }, { type: 'delete', range: 'b', prevKv: true }],
      failure: [],
    });
    expect(t.succeeded).toBe(true);
    expect(t.results[0]?.type === 'range' && t.results[0].result.count).toBe(2);
    expect(t.results[1]).toMatchObject({ type: 'delete', deleted: 1 });
    const del = await k.delete({ prefix: 'a/' }, { prevKv: true });
    expect(del.deleted).toBe(2);
    expect(c.store.size).toBe(1); // 'new'
    expect((await k.get('a/1', { serializable: true })).kv).toBeUndefined();
  });

  it('follows NOT_LEADER to the leader and remembers it', async () => {
    const { c, nodes, addrs } = await cluster(3);
    c.leaderId = 3;
    const k = kvClient([addrs[0] ?? '']);
    const put = await k.put('k', 'v');
    expect(put.header.memberId).toBe(3);
    expect(k.knownLeader).toBe(addrs[2]);
    await k.get('k');
    expect(nodes[0]?.calls.length).toBe(1); // asked once, then went straight to the leader
    expect(nodes[2]?.calls.length).toBe(2);
    // Leadership moves: the remembered leader redirects, the client follows.
    c.leaderId = 2;
    expect((await k.get('k')).header.memberId).toBe(2);
    expect(k.knownLeader).toBe(addrs[1]);
    // A serializable read is served by whichever member is asked.
    expect((await kvClient([addrs[0] ?? '']).get('k', { serializable: true })).header.memberId).toBe(1);
  });

  it('follows at most maxRedirects hops per round (a redirect loop ends at the deadline)', async () => {
    const { nodes, addrs } = await cluster(2);
    const [n1, n2] = nodes;
    if (!n1 || !n2) throw new Error('no nodes');
    n1.claimedLeader = { leaderId: 2, leaderAddress: addrs[1] ?? '' };
    n2.claimedLeader = { leaderId: 1, leaderAddress: addrs[0] ?? '' };
    const k = kvClient([addrs[0] ?? ''], { maxRedirects: 3, backoffMinMs: 50, backoffMaxMs: 50 });
    const err = (await k.put('k', 'v', { timeoutMs: 400 }).catch((e: unknown) => e)) as RaftKvError;
    expect(err.code).toBe('UNAVAILABLE');
    const calls = n1.calls.length + n2.calls.length;
    // Each round: 1 attempt + 3 hops, then a backoff of 25..50 ms: at most 400 / 25 + 1 rounds (unbounded hops
    // over loopback would make hundreds of calls in 400 ms).
    expect(calls).toBeGreaterThanOrEqual(4);
    expect(calls).toBeLessThanOrEqual(4 * 17);
    // The loop resolves once one of them really leads.
    n2.claimedLeader = undefined;
    n1.claimedLeader = undefined;
    expect((await k.put('k', 'v')).header.memberId).toBe(1);
  });

  it('backs off and retries while no leader is known, and gives up at its deadline', async () => {
    const { nodes, addrs } = await cluster(1);
    const node = nodes[0];
    if (!node) throw new Error('no node');
    node.failures.push('UNAVAILABLE', 'UNAVAILABLE', 'PROPOSAL_DROPPED', 'UNAVAILABLE');
    const k = kvClient(addrs, { backoffMinMs: 5, backoffMaxMs: 20 });
    await k.put('k', 'v');
    expect(node.calls.length).toBe(5);
    // The same write (same session and seq) every attempt.
    const ids = new Set(node.calls.map((c) => ('clientId' in c.opts ? `${c.opts.clientId}#${c.opts.seq}` : '')));
    expect(ids.size).toBe(1);

    node.failures.push(...Array<'UNAVAILABLE'>(1000).fill('UNAVAILABLE'));
    const t0 = Date.now();
    const err = await k.put('k', 'v', { timeoutMs: 300 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RaftKvError);
    // UNAVAILABLE; or, if the last attempt itself ran out of time (a slow machine), DEADLINE_EXCEEDED naming it.
    const e = err as RaftKvError;
    if (e.code === 'DEADLINE_EXCEEDED') expect(e.message).toMatch(/before that: UNAVAILABLE/);
    else expect(e.code).toBe('UNAVAILABLE');
    expect(e.message).toMatch(/gave up after \d+ attempts/);
    // It stops once the next backoff (<= 20 ms) plus a minimal attempt (20 ms) would pass the deadline.
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300 - 20 - 20 - 5);
  });

  it('does not retry errors that retrying cannot fix', async () => {
    const { nodes, addrs } = await cluster(1);
    const node = nodes[0];
    if (!node) throw new Error('no node');
    node.failures.push('FAILED_PRECONDITION');
    const k = kvClient(addrs);
    expect(await codeOf(k.put('k', 'v'))).toBe('FAILED_PRECONDITION');
    expect(node.calls.length).toBe(1);
  });

  it('passes the deadline to the node; a held request ends DEADLINE_EXCEEDED', async () => {
    const { nodes, addrs } = await cluster(1);
    const node = nodes[0];
    if (!node) throw new Error('no node');
    node.hang = true;
    const k = kvClient(addrs, { attemptTimeoutMs: 200 });
    const t0 = Date.now();
    expect(await codeOf(k.get('k', { timeoutMs: 450 }))).toBe('DEADLINE_EXCEEDED');
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(400); // two attempts of 200 ms, then the backoff would pass the deadline
    expect(elapsed).toBeLessThan(2000);
    const first = node.calls[0];
    expect(first?.opts.deadlineMs).toBeGreaterThanOrEqual(t0 + 150);
    expect(first?.opts.deadlineMs).toBeLessThanOrEqual(t0 + 300);
    expect(node.calls.length).toBeGreaterThanOrEqual(2); // one attempt per attemptTimeoutMs
  });

  it('a write whose answer is lost is retried with the same session and seq and applied once', async () => {
    const { c, nodes, addrs } = await cluster(1);
    const node = nodes[0];
    if (!node) throw new Error('no node');
    node.loseNextAnswer = 'UNAVAILABLE';
    const k = kvClient(addrs, { clientId: 'me', backoffMinMs: 1 });
    const put = await k.put('k', 'v');
    expect(node.calls.length).toBe(2);
    expect(c.applied).toHaveLength(1);
    expect(c.applied[0]).toMatchObject({ clientId: 'me.1', seq: 1 });
    expect(put.header.index).toBe(11);
    // Concurrent writes take different sessions, so none is refused as stale.
    await Promise.all([k.put('a', '1'), k.put('b', '2'), k.put('c', '3')]);
    expect(new Set(c.applied.map((a) => `${a.clientId}#${a.seq}`)).size).toBe(4);
  });

  it('answers INVALID_ARGUMENT for oversized and invalid requests, and keeps serving', async () => {
    const { addrs } = await cluster(1, { maxRequestBytes: 64 * 1024 });
    const k = kvClient(addrs);
    const over = await k.put('k', new Uint8Array(100 * 1024)).catch((e: unknown) => e);
    expect((over as RaftKvError).code).toBe('INVALID_ARGUMENT');
    expect((over as RaftKvError).message).toMatch(/larger than the limit of 65536/);
    // Far over: refused by gRPC itself (RESOURCE_EXHAUSTED), still INVALID_ARGUMENT to the client.
    expect(await codeOf(k.put('k', new Uint8Array(2 * 1024 * 1024)))).toBe('INVALID_ARGUMENT');
    const empty = await k.put('', 'v').catch((e: unknown) => e);
    expect((empty as RaftKvError).code).toBe('INVALID_ARGUMENT');
    expect((empty as RaftKvError).message).toBe('etcdserver: key is not provided');
    expect(await codeOf(k.range({ key: 'b', end: 'a' }))).toBe('OK'); // an empty range, as etcd answers it
    expect(await codeOf(k.range({ key: '', end: 'a' }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(k.put('x'.repeat(2000), 'v'))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(k.put('k', 'ok'))).toBe('OK');
  });
});

describe('Admin service + KvClient', () => {
  it('status, members, membership changes, transfer', async () => {
    const { c, addrs } = await cluster(2);
    const k = client(addrs);
    const s = await k.status(addrs[1]);
    expect(s).toMatchObject({ id: 2, role: 'follower', leaderId: 1, clusterId: 'test', endpoint: addrs[1] });
    expect(s.members).toHaveLength(2);
    expect((await k.status()).id).toBeGreaterThan(0);
    expect((await k.members()).members.map((m) => m.id)).toEqual([1, 2]);
    const added = await k.memberAdd({ id: 4, peerAddress: '127.0.0.1:7004', clientAddress: '127.0.0.1:7104', learner: true });
    expect(added.members.find((m) => m.id === 4)?.learner).toBe(true);
    expect((await k.memberPromote(4)).members.find((m) => m.id === 4)?.learner).toBe(false);
    expect(await codeOf(k.memberAdd({ id: 5, peerAddress: 'nonsense', clientAddress: '127.0.0.1:1' }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(k.memberAdd({ id: 0, peerAddress: '127.0.0.1:1', clientAddress: '127.0.0.1:2' }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(k.memberRemove(9))).toBe('NOT_FOUND');
    expect((await k.memberRemove(4)).members.map((m) => m.id)).toEqual([1, 2]);
    await k.transferLeader(2);
    expect(c.leaderId).toBe(2);
    expect((await k.put('k', 'v')).header.memberId).toBe(2);
  });

  it('HashKV: the digest of the member asked, at an index; NOT_FOUND and bad indices as errors', async () => {
    const { nodes, addrs } = await cluster(2, { corruptCheckIntervalMs: 0 }); // no peer corrupt check asking as well
    const [n1, n2] = nodes;
    if (n1 === undefined || n2 === undefined) throw new Error('no nodes');
    n1.digests.set(7, { lane1: 0xdeadbeef, lane2: 0x00000001, count: 3 });
    n1.digests.set(9, { lane1: 0xffffffff, lane2: 0x0badf00d, count: 4 });
    n2.digests.set(7, { lane1: 5, lane2: 6, count: 1 });
    const k = client(addrs);
    const current = await k.hashKv(addrs[0] ?? '', 0);
    expect(current).toMatchObject({ endpoint: addrs[0], memberId: 1, index: 9, lane1: 0xffffffff, lane2: 0x0badf00d, hash: 'ffffffff0badf00d', keyCount: 4 });
    expect(current.header.memberId).toBe(1);
    expect(await k.hashKv(addrs[0] ?? '', 7)).toMatchObject({ memberId: 1, index: 7, hash: 'deadbeef00000001', keyCount: 3 });
    expect(await k.hashKv(addrs[1] ?? '', 7)).toMatchObject({ memberId: 2, index: 7, hash: '0000000500000006', keyCount: 1 });
    expect(n2.digestCalls).toEqual([7]); // asked at the member named, not routed to another
    expect(await codeOf(k.hashKv(addrs[1] ?? '', 8))).toBe('NOT_FOUND');
    n2.digestFailures.push('DEADLINE_EXCEEDED');
    expect(await codeOf(k.hashKv(addrs[1] ?? '', 7))).toBe('DEADLINE_EXCEEDED');
    expect(await codeOf(k.hashKv(addrs[1] ?? '', -1))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(k.hashKv(addrs[1] ?? '', 1.5))).toBe('INVALID_ARGUMENT');
    expect(n2.digestCalls).toEqual([7, 8, 7]); // refused before anything was sent
  });

  it('downloads a verified snapshot into a file', async () => {
    const { nodes, addrs } = await cluster(1);
    const k = client(addrs);
    const file = join(dir, 'out.snap');
    const r = await k.snapshotSave(file);
    const expected = nodes[0]?.snapshotBytes ?? Buffer.alloc(0);
    expect(r.sizeBytes).toBe(expected.length);
    expect((await readFile(file)).equals(expected)).toBe(true);
    expect(r.header.memberId).toBe(1);
  });
});
