// Real processes over real gRPC on loopback: 3 and 5 members, kill -9 the leader under load, kill a
// minority repeatedly, lose quorum and get it back, catch up by snapshot.
import { afterEach, describe, expect, it } from 'vitest';
import { KvClient, isRaftKvError } from '../../src/client/index.js';
import { waitForApplied } from '../../cluster/wait.js';
import { eventually, startTestCluster, type TestCluster } from './helpers.js';

let tc: TestCluster | undefined;
afterEach(async () => {
  await tc?.close();
  tc = undefined;
});

/** Writes unique keys one after another until stopped; records every acknowledged one. */
function writer(client: KvClient, prefix: string): { acked: Map<string, string>; failures: number; stop(): Promise<void> } {
  const acked = new Map<string, string>();
  let running = true;
  const state = { acked, failures: 0, stop: async () => {
    running = false;
    await loop;
  } };
  const loop = (async () => {
    for (let i = 0; running; i++) {
      const key = `${prefix}/${String(i).padStart(6, '0')}`;
      try {
        await client.put(key, `v${i}`, { timeoutMs: 5000 });
        acked.set(key, `v${i}`);
      } catch {
        state.failures++; // indeterminate or refused: not counted as acknowledged
      }
    }
  })();
  return state;
}

async function expectAllPresent(client: KvClient, acked: ReadonlyMap<string, string>, prefix: string): Promise<void> {
  const all = await client.range({ prefix: `${prefix}/` }, { limit: 0 });
  const seen = new Map(all.kvs.map((kv) => [Buffer.from(kv.key).toString(), Buffer.from(kv.value).toString()]));
  const missing = [...acked].filter(([k, v]) => seen.get(k) !== v);
  expect(missing, `acknowledged writes missing after failover`).toEqual([]);
}

describe('3-member cluster', () => {
  it('serves put/get through any member (followers redirect to the leader)', async () => {
    tc = await startTestCluster({ nodes: 3, basePort: 21000 });
    for (const id of tc.cluster.ids()) {
      const one = new KvClient(tc.dial([tc.cluster.clientAddress(id)]));
      try {
        const put = await one.put(`k${id}`, `from-${id}`);
        expect(put.header.index).toBeGreaterThan(0);
        const got = await one.get(`k${id}`);
        expect(got.kv && Buffer.from(got.kv.value).toString()).toBe(`from-${id}`);
        const local = await one.get(`k${id}`, { serializable: true });
        expect(local.header.memberId).toBe(id);
      } finally {
        one.close();
      }
    }
  });

  it('kill -9 of the leader under continuous writes: a new leader, writes resume, nothing acknowledged lost', async () => {
    tc = await startTestCluster({ nodes: 3, basePort: 21200 });
    const w = writer(tc.client, 'load');
    while (w.acked.size < 50) await new Promise((r) => setTimeout(r, 20));
    const old = await tc.leader();
    tc.cluster.kill(old);
    const killedAt = Date.now();
    const before = w.acked.size;
    while (w.acked.size < before + 50) await new Promise((r) => setTimeout(r, 20));
    const resumedMs = Date.now() - killedAt;
    await w.stop();
    const next = await tc.leader({ exclude: [old] });
    expect(next).not.toBe(old);
    await expectAllPresent(tc.client, w.acked, 'load');
    console.log(`failover: ${resumedMs} ms from kill to 50 more acknowledged writes (election timeout 500 ms)`);
    // the old leader comes back and catches up
    tc.cluster.start(old);
    const last = await tc.client.put('after', 'restart');
    await waitForApplied(tc.cluster.endpoints(), last.header.index, 20_000, tc.tls);
  });

  it('survives a minority killed again and again', async () => {
    tc = await startTestCluster({ nodes: 3, basePort: 21400 });
    const w = writer(tc.client, 'minority');
    for (let round = 0; round < 3; round++) {
      const leader = await tc.leader();
      const victim = tc.cluster.ids().find((id) => id !== leader) ?? 1;
      tc.cluster.kill(victim);
      const n = w.acked.size;
      while (w.acked.size < n + 20) await new Promise((r) => setTimeout(r, 20));
      tc.cluster.start(victim);
      await tc.leader();
    }
    await w.stop();
    await expectAllPresent(tc.client, w.acked, 'minority');
  });

  it('a member that fell far behind catches up by snapshot', async () => {
    tc = await startTestCluster({ nodes: 3, basePort: 21600, snapshotCount: 100 });
    const leader = await tc.leader();
    const lagger = tc.cluster.ids().find((id) => id !== leader) ?? 1;
    await tc.cluster.stop(lagger);
    let last = 0;
    for (let i = 0; i < 400; i++) last = (await tc.client.put(`far/${i}`, `v${i}`)).header.index;
    tc.cluster.start(lagger);
    await waitForApplied(tc.cluster.endpoints(), last, 30_000, tc.tls);
    // The shared client's channel to the restarted member may still be backing off from its refused connects.
    const t = tc;
    const st = await eventually(() => t.client.status(t.cluster.clientAddress(lagger)));
    expect(st.snapshotIndex).toBeGreaterThan(0);
    const one = new KvClient(tc.dial([tc.cluster.clientAddress(lagger)]));
    const local = await one.range({ prefix: 'far/' }, { serializable: true, limit: 0 });
    one.close();
    expect(local.kvs.length).toBe(400);
  });
});

describe('5-member cluster', () => {
  it('survives two dead members, refuses writes clearly with three dead, recovers when they return', async () => {
    tc = await startTestCluster({ nodes: 5, basePort: 21800 });
    const leader = await tc.leader();
    const others = tc.cluster.ids().filter((id) => id !== leader);
    const [a, b, c] = others as [number, number, number];
    tc.cluster.kill(a);
    tc.cluster.kill(b);
    await tc.client.put('five', 'two-dead');
    tc.cluster.kill(c);
    const started = Date.now();
    const quick = new KvClient(tc.dial(tc.cluster.endpoints(), { timeoutMs: 3000 }));
    let failure: unknown;
    try {
      await quick.put('five', 'three-dead');
    } catch (err) {
      failure = err;
    }
    expect(isRaftKvError(failure), `expected a typed error, got ${String(failure)}`).toBe(true);
    expect(['UNAVAILABLE', 'DEADLINE_EXCEEDED', 'NOT_LEADER']).toContain((failure as { code: string }).code);
    expect(Date.now() - started).toBeLessThan(10_000); // fails, does not hang
    // a serializable read still answers from local state
    const local = await quick.get('five', { serializable: true });
    expect(local.kv && Buffer.from(local.kv.value).toString()).toBe('two-dead');
    quick.close();
    tc.cluster.start(a);
    tc.cluster.start(b);
    await tc.leader({ exclude: [c] });
    await tc.client.put('five', 'back');
    expect(Buffer.from((await tc.client.get('five')).kv?.value ?? []).toString()).toBe('back');
  });
});
