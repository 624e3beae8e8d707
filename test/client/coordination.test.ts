// The coordination half of the client (src/client/watch.ts, lease.ts, concurrency.ts over etcd-channel.ts)
// against a real 3-member cluster per target (coord-targets.ts: etcd 3.4 today, raftkv once it serves Watch
// and Lease): a watch sees every event of a seeded workload in order, exactly once, across a kill and restart of
// its member; a resume at a compacted revision ends with COMPACTED; leases live while kept alive and go when
// not, with the lost signal on revoke and on an unreachable cluster; a raftkv lock and `etcdctl lock` exclude each
// other; campaign/observe/resign interoperate with `etcdctl elect`. Ports 29000-29299. SEED=... replays a run.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CoordClient, WatchCompactedError } from '../../src/client/index.js';
import type { ElectionLeader, EtcdChannel, WatchBatch } from '../../src/client/index.js';
import { Compare_CompareResult, Compare_CompareTarget } from '../../src/protocol/etcd-proto.js';
import type { MessageInit, RequestOp } from '../../src/protocol/etcd-proto.js';
import { seededRng } from '../../src/raft/rng.js';
import { LinkProxy, parseHostPort } from '../chaos/proxy.js';
import { describeWithSystem } from '../system-deps.js';
import { collectUntil, etcdctl, firstOverlap, waitFor } from './coord-helpers.js';
import { TARGETS } from './coord-targets.js';
import type { CoordTarget } from './coord-targets.js';

const BASE_PORT = 29000;
const SEED = Number(process.env.SEED ?? Date.now() % 1_000_000_000);
const WORKLOAD_OPS = 300;

function buf(s: string): Buffer {
  return Buffer.from(s, 'utf8');
}

async function currentRevision(ch: EtcdChannel): Promise<bigint> {
  const r = await ch.unary('KV', 'Range', { key: buf('any') }, 'read');
  return r.header?.revision ?? 0n;
}

async function put(ch: EtcdChannel, key: string, value: string, lease = 0n): Promise<bigint> {
  const r = await ch.unary('KV', 'Put', { key: buf(key), value: buf(value), lease }, 'write');
  return r.header?.revision ?? 0n;
}

/** A put retried while the cluster elects a leader (a repeated put is harmless where this is used). */
async function putRetrying(ch: EtcdChannel, key: string, value: string): Promise<bigint> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await put(ch, key, value);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (attempt >= 20 || (code !== 'UNAVAILABLE' && code !== 'DEADLINE_EXCEEDED')) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

async function exists(ch: EtcdChannel, key: string): Promise<boolean> {
  return (await ch.unary('KV', 'Range', { key: buf(key) }, 'read')).kvs.length > 0;
}

interface Expected {
  readonly revision: bigint;
  readonly type: 'put' | 'delete';
  readonly key: string;
  readonly value: string;
  readonly prev: string | undefined;
}

/**
 * One op of the workload as a Txn guarded by a sequence key outside the watched prefix, so a retry after an
 * ambiguous failure (the member died mid-call) is safe: it applies at most once, and the sequence key's mod
 * revision says the revision it applied at.
 */
async function applyOnce(ch: EtcdChannel, seqKey: string, n: number, op: MessageInit<RequestOp>): Promise<bigint> {
  const compare = n === 0 ? [{ key: buf(seqKey), target: Compare_CompareTarget.CREATE, result: Compare_CompareResult.EQUAL, createRevision: 0n }] : [{ key: buf(seqKey), target: Compare_CompareTarget.VALUE, result: Compare_CompareResult.EQUAL, value: buf(String(n - 1)) }];
  for (let attempt = 0; ; attempt++) {
    try {
      const r = await ch.unary('KV', 'Txn', { compare, success: [op, { requestPut: { key: buf(seqKey), value: buf(String(n)) } }] }, 'write', { timeoutMs: 20_000 });
      if (r.succeeded) return r.header?.revision ?? 0n;
      const seq = (await ch.unary('KV', 'Range', { key: buf(seqKey) }, 'read')).kvs[0];
      if (seq?.value.toString('utf8') === String(n)) return seq.modRevision; // an earlier attempt applied it
      throw new Error(`op ${n}: sequence key is ${seq?.value.toString('utf8') ?? 'missing'}`);
    } catch (err) {
      if (attempt >= 20 || !(err instanceof Error) || !/UNAVAILABLE|DEADLINE|timed out|no leader|Connection|connect/i.test(`${(err as { code?: string }).code ?? ''} ${err.message}`)) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

for (const kind of TARGETS) {
  describeWithSystem(kind.deps, `coordination client against ${kind.name} (seed ${SEED})`, () => {
    let target: CoordTarget;
    let c: CoordClient;

    beforeAll(async () => {
      target = await kind.start(BASE_PORT);
      c = new CoordClient({ endpoints: target.endpoints, backoffMaxMs: 500, timeoutMs: 15_000 });
    });

    afterAll(async () => {
      c?.close();
      await target?.close();
    });

    it('a watch delivers every event of a seeded workload once, in order, across a kill and restart of its member', async () => {
      const rng = seededRng(SEED);
      const pfx = `w${SEED}/`;
      const seqKey = `wseq${SEED}`;
      const startRev = (await currentRevision(c.channel)) + 1n;
      // Both watchers start on member 0: one may fail over, the other knows only member 0 and waits for it.
      const anywhere = c.watch(pfx, { prefix: true, fromRevision: startRev, prevKv: true });
      const single = new CoordClient({ endpoints: [target.endpoints[0] ?? ''], backoffMaxMs: 500 });
      const pinned = single.watch(pfx, { prefix: true, fromRevision: startRev });
      await Promise.all([anywhere.ready, pinned.ready]);
      const live = new Map<string, string>();
      const expected: Expected[] = [];
      try {
        for (let n = 0; n < WORKLOAD_OPS; n++) {
          if (n === 100) await target.kill(0);
          if (n === 200) await target.restart(0);
          const liveKeys = [...live.keys()];
          if (liveKeys.length > 0 && rng.float() < 0.3) {
            const key = liveKeys[Math.floor(rng.float() * liveKeys.length)] ?? '';
            const revision = await applyOnce(c.channel, seqKey, n, { requestDeleteRange: { key: buf(key) } });
            expected.push({ revision, type: 'delete', key, value: '', prev: live.get(key) });
            live.delete(key);
          } else {
            const key = `${pfx}k${Math.floor(rng.float() * 8)}`;
            const value = `v${n}`;
            const revision = await applyOnce(c.channel, seqKey, n, { requestPut: { key: buf(key), value: buf(value) } });
            expected.push({ revision, type: 'put', key, value, prev: live.get(key) });
            live.set(key, value);
          }
        }
        const last = expected[expected.length - 1]?.revision ?? 0n;
        const got: WatchBatch[] = [];
        const gotPinned: WatchBatch[] = [];
        await Promise.all([collectUntil(anywhere, last, got), collectUntil(pinned, last, gotPinned)]);
        for (const [name, batches] of [['anywhere', got], ['pinned', gotPinned]] as const) {
          const events = batches.flatMap((b) => b.events);
          const seen = events.map((e) => `${e.kv.modRevision} ${e.type} ${e.kv.key.toString('utf8')} ${e.type === 'put' ? e.kv.value.toString('utf8') : ''}`);
          const want = expected.map((e) => `${e.revision} ${e.type} ${e.key} ${e.value}`);
          expect(seen, `${name} watcher (seed ${SEED})`).toEqual(want);
          // A batch's revision is its last event's; a revision is never split across batches (atomic).
          for (const [i, b] of batches.entries()) {
            expect(b.events[b.events.length - 1]?.kv.modRevision, `${name}: batch ${i}'s revision`).toBe(b.revision);
            const next = batches[i + 1]?.events[0];
            if (next !== undefined) expect(next.kv.modRevision > b.revision, `${name}: batch ${i + 1} starts after batch ${i}`).toBe(true);
          }
        }
        // The workload's revisions are contiguous (each op is one txn, the sequence key's write in the same one), but
        // for the one write a restart's readiness check may make (EtcdCluster.restart puts a key): none was skipped.
        expect(expected[0]?.revision).toBe(startRev);
        for (let i = 1; i < expected.length; i++) {
          const step = (expected[i]?.revision ?? 0n) - (expected[i - 1]?.revision ?? 0n);
          expect(step === 1n || (i === 200 && step === 2n), `op ${i} is ${step} revisions after op ${i - 1} (seed ${SEED})`).toBe(true);
        }
        const prevs = got.flatMap((b) => b.events).map((e) => e.prevKv?.value.toString('utf8'));
        expect(prevs, `prev_kv (seed ${SEED})`).toEqual(expected.map((e) => e.prev));
        expect(anywhere.reconnects, 'the watcher that may fail over reconnected').toBeGreaterThan(0);
        expect(pinned.reconnects, 'the watcher pinned to the killed member reconnected').toBeGreaterThan(0);
      } finally {
        anywhere.cancel();
        pinned.cancel();
        single.close();
      }
    });

    it('a watch resumed at a revision compacted while its member was down ends with COMPACTED', async () => {
      const pfx = `c${SEED}/`;
      // The watch reaches member 1 through a proxy that refuses it until member 1 has applied the compaction: a
      // restarted member serves from its own state at once (etcd's too), so a resume that lands while it is still
      // catching up legitimately delivers the puts before the compaction (CI saw that race once).
      const gate = new LinkProxy('watch->1', parseHostPort(target.endpoints[1] ?? ''));
      await gate.start();
      const single = new CoordClient({ endpoints: [gate.address], backoffMaxMs: 300 });
      const w = single.watch(pfx, { prefix: true });
      try {
        await w.ready;
        const first = await put(c.channel, `${pfx}a`, '1');
        const b: IteratorResult<WatchBatch> = await w.next();
        if (b.done === true) throw new Error('the watch ended');
        expect(b.value.revision).toBe(first);
        gate.cut('drop', 'both');
        await target.kill(1);
        const others = new CoordClient({ endpoints: [target.endpoints[0] ?? '', target.endpoints[2] ?? ''], timeoutMs: 15_000 });
        let compactRev = 0n;
        try {
          for (let i = 0; i < 5; i++) compactRev = await putRetrying(others.channel, `${pfx}b`, String(i));
          await others.channel.unary('KV', 'Compact', { revision: compactRev, physical: true }, 'write');
        } finally {
          others.close();
        }
        await target.restart(1);
        const direct = new CoordClient({ endpoints: [target.endpoints[1] ?? ''] });
        try {
          await waitFor('member 1 to apply the compaction', () =>
            direct.channel.unary('KV', 'Range', { key: buf(`${pfx}a`), revision: first, serializable: true }, 'read').then(
              () => false,
              (e: unknown) => /compacted/.test(e instanceof Error ? e.message : String(e)),
            ),
          );
        } finally {
          direct.close();
        }
        gate.heal();
        const err = await w.next().then(
          (r: IteratorResult<WatchBatch>) => new Error(`expected COMPACTED, got ${r.done === true ? 'the end' : `a batch at ${r.value.revision}`}`),
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(WatchCompactedError);
        expect((err as WatchCompactedError).code).toBe('COMPACTED');
        expect((err as WatchCompactedError).compactRevision).toBe(compactRev);
        expect((err as WatchCompactedError).requestedRevision).toBe(first + 1n);
      } finally {
        w.cancel();
        single.close();
        await gate.stop();
      }
    });

    it('a lease kept alive keeps its key for several TTLs; without keep-alives the key goes', async () => {
      const lease = await c.lease(2);
      const key = `lease${SEED}/k`;
      await put(c.channel, key, 'v', lease.id);
      const presentAtAnswers: boolean[] = [];
      lease.onKeepAlive(() => {
        void exists(c.channel, key).then((e) => presentAtAnswers.push(e));
      });
      // 9 answers at TTL/3 apart: three TTLs of keep-alives.
      await waitFor('9 keep-alive answers', () => presentAtAnswers.length >= 9, 30_000);
      expect(presentAtAnswers.every((p) => p)).toBe(true);
      const ttl = await lease.timeToLive({ keys: true });
      expect(ttl.grantedTtlSeconds).toBe(lease.grantedTtlSeconds);
      expect(ttl.ttlSeconds).toBeGreaterThan(0);
      expect(ttl.keys.map((k) => k.toString('utf8'))).toEqual([key]);
      expect(await c.leases()).toContain(lease.id);
      lease.stopKeepAlive();
      await waitFor('the key of a lease no longer kept alive to go', async () => !(await exists(c.channel, key)), 20_000);
      expect((await c.leaseTimeToLive(lease.id)).ttlSeconds).toBe(-1);
      expect(lease.isLost).toBe(false); // stopped by us: no lost signal
    });

    it('the lost signal fires on a revoke by someone else, on our own revoke, and when the cluster is out of reach', async () => {
      const other = await c.lease(5);
      await c.revokeLease(other.id);
      expect((await other.lost).reason).toBe('expired');
      const own = await c.lease(5);
      await own.revoke();
      expect((await own.lost).reason).toBe('revoked');
      expect(await c.keepAliveOnce(own.id)).toBe(0);
      // A lease kept alive through member 2 only: with member 2 gone its TTL runs out unanswered.
      const single = new CoordClient({ endpoints: [target.endpoints[2] ?? ''], backoffMaxMs: 300 });
      try {
        const far = await single.lease(2);
        await waitFor('a keep-alive answer', () => far.answered > 0);
        await target.kill(2);
        expect((await far.lost).reason).toBe('unreachable');
      } finally {
        single.close();
        await target.restart(2);
      }
    });

    it('a raftkv lock and etcdctl lock on the same name exclude each other', async () => {
      const name = `lk${SEED}`;
      const mark = `mark${SEED}`;
      const startRev = (await currentRevision(c.channel)) + 1n;
      const rounds = 5;
      const script = `for i in $(seq 1 ${rounds}); do I=$i etcdctl lock ${name} -- sh -c "etcdctl put ${mark} enter:etcdctl:\\$I >/dev/null && etcdctl put ${mark} exit:etcdctl:\\$I >/dev/null" || exit 1; done`;
      const sh = spawn('sh', ['-c', script], { env: { ...process.env, ETCDCTL_API: '3', ETCDCTL_ENDPOINTS: target.endpoints.join(',') }, stdio: ['ignore', 'ignore', 'pipe'] });
      let shErr = '';
      sh.stderr.on('data', (b: Buffer) => (shErr += b.toString('utf8')));
      const shExit = new Promise<number | null>((resolve) => sh.on('close', (code) => resolve(code)));
      for (let i = 1; i <= rounds; i++) {
        const held = await c.lock(name, { ttlSeconds: 10 });
        expect(held.key).toBe(`${name}/${held.session.id.toString(16)}`);
        await put(c.channel, mark, `enter:raftkv:${i}`);
        await put(c.channel, mark, `exit:raftkv:${i}`);
        await held.unlock();
      }
      expect(await shExit, shErr).toBe(0);
      const end = await currentRevision(c.channel);
      const history: WatchBatch[] = [];
      const w = c.watch(mark, { fromRevision: startRev });
      try {
        await collectUntil(w, (await c.channel.unary('KV', 'Range', { key: buf(mark) }, 'read')).kvs[0]?.modRevision ?? end, history);
      } finally {
        w.cancel();
      }
      const marks = history.flatMap((b) => b.events).map((e) => e.kv.value.toString('utf8'));
      expect(marks).toHaveLength(4 * rounds);
      expect(firstOverlap(marks)).toBeUndefined();
      for (let i = 1; i <= rounds; i++) expect(marks).toEqual(expect.arrayContaining([`enter:etcdctl:${i}`, `exit:raftkv:${i}`]));
    });

    it('campaign, observe and resign interoperate with etcdctl elect', async () => {
      const name = `el${SEED}`;
      const stop = new AbortController();
      const observed: ElectionLeader[] = [];
      const observing = (async () => {
        for await (const l of c.observe(name, stop.signal)) observed.push(l);
      })();
      const ours = await c.campaign(name, 'raftkv-1');
      expect(ours.key).toBe(`${name}/${ours.session.id.toString(16)}`);
      const watcher = etcdctl(target.endpoints, ['elect', '-l', name]);
      const candidate = etcdctl(target.endpoints, ['elect', name, 'etcd-2']);
      try {
        await waitFor('etcdctl elect -l to print raftkv-1', () => watcher.stdout().includes('raftkv-1'));
        await waitFor('etcdctl elect to become a candidate', async () => (await c.channel.unary('KV', 'Range', { key: buf(`${name}/`), rangeEnd: buf(`${name}0`), countOnly: true }, 'read')).count === 2n);
        expect(candidate.stdout()).toBe(''); // not elected while raftkv leads
        expect((await c.leader(name)).value.toString('utf8')).toBe('raftkv-1');
        await ours.proclaim('raftkv-1b');
        await waitFor('etcdctl elect -l to print the proclaimed value', () => watcher.stdout().includes('raftkv-1b'));
        await ours.resign();
        await ours.session.close();
        await waitFor('etcdctl elect to be elected', () => candidate.stdout().includes('etcd-2'));
        expect(candidate.stdout()).toMatch(new RegExp(`^${name}/[0-9a-f]+\\netcd-2\\n$`));
        expect((await c.leader(name)).value.toString('utf8')).toBe('etcd-2');
        await waitFor('observe to see etcd-2', () => observed.some((l) => l.value.toString('utf8') === 'etcd-2'));
        expect(observed.map((l) => l.value.toString('utf8'))).toEqual(['raftkv-1', 'raftkv-1b', 'etcd-2']);
        candidate.child.kill('SIGINT'); // etcdctl resigns on SIGINT
        expect(await candidate.exited).toBe(0);
        await waitFor('no leader once etcdctl resigned', () => c.leader(name).then(() => false, (e: unknown) => (e as { code?: string }).code === 'NOT_FOUND'));
      } finally {
        candidate.child.kill('SIGINT');
        watcher.child.kill('SIGINT');
        stop.abort();
        await observing.catch(() => undefined);
        await Promise.all([candidate.exited, watcher.exited]);
      }
      expect(watcher.stdout()).toMatch(/raftkv-1\n[\s\S]*raftkv-1b\n[\s\S]*etcd-2\n/);
    });
  });
}
