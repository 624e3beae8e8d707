// Membership changes and leadership transfer on a live cluster of real processes.
import { afterEach, describe, expect, it } from 'vitest';
import { KvClient } from '../../src/client/index.js';
import { waitForApplied } from '../../cluster/wait.js';
import { eventually, startTestCluster, type TestCluster } from './helpers.js';

let tc: TestCluster | undefined;
afterEach(async () => {
  await tc?.close();
  tc = undefined;
});

describe('membership on a live cluster', () => {
  it('adds a learner, promotes it to voter, removes it, and removes the leader', async () => {
    tc = await startTestCluster({ nodes: 3, basePort: 22000 });
    for (let i = 0; i < 20; i++) await tc.client.put(`m/${i}`, `v${i}`);
    const c = tc.cluster;
    c.track(4);
    const added = await tc.client.memberAdd({ id: 4, peerAddress: c.peerAddress(4), clientAddress: c.clientAddress(4), learner: true });
    expect(added.members.find((m) => m.id === 4)?.learner).toBe(true);
    c.start(4, { state: 'existing', members: [1, 2, 3, 4] });
    const mark = await tc.client.put('m/mark', 'x');
    await waitForApplied(c.endpoints(), mark.header.index, 30_000, tc.tls);
    // The leader learns the learner's match from its next append response, which can trail the learner's apply
    // (more so under TLS): until then promote is refused as etcd refuses it ("not in sync"), and a client retries.
    const client = tc.client;
    const promoted = await eventually(() => client.memberPromote(4), 10_000);
    expect(promoted.members.find((m) => m.id === 4)?.learner).toBe(false);
    const four = new KvClient(tc.dial([c.clientAddress(4)]));
    const local = await four.range({ prefix: 'm/' }, { serializable: true, limit: 0 });
    four.close();
    expect(local.kvs.length).toBe(21);

    // A remove is refused while a voter the new configuration needs has not answered the leader since the last
    // configuration change ("not caught up ... retry once they are"), as etcd refuses it; only that is retried.
    const removeOnceCaughtUp = async (id: number): Promise<Awaited<ReturnType<KvClient['memberRemove']>>> => {
      const r = await eventually(async () => {
        try {
          return { done: await client.memberRemove(id) };
        } catch (err) {
          if (/is not caught up/.test(String(err))) throw err;
          return { failed: err as Error };
        }
      }, 10_000);
      if (r.failed !== undefined) throw r.failed;
      return r.done;
    };
    const removed = await removeOnceCaughtUp(4);
    expect(removed.members.map((m) => m.id).sort()).toEqual([1, 2, 3]);
    await c.stop(4);

    const leader = await tc.leader();
    const after = await removeOnceCaughtUp(leader);
    expect(after.members.map((m) => m.id)).not.toContain(leader);
    const rest = c.ids().filter((id) => id !== leader && id <= 3);
    const next = await tc.leader({ exclude: [leader, 4] });
    expect(rest).toContain(next);
    const rc = new KvClient(tc.dial(c.endpoints(rest)));
    await rc.put('m/after-leader-removed', 'ok');
    rc.close();
  });

  it('transfers leadership to a chosen member', async () => {
    tc = await startTestCluster({ nodes: 3, basePort: 22200 });
    const leader = await tc.leader();
    const target = tc.cluster.ids().find((id) => id !== leader) ?? 1;
    await tc.client.transferLeader(target);
    const now = await tc.leader();
    expect(now).toBe(target);
    const put = await tc.client.put('t', 'after-transfer');
    expect(put.header.memberId).toBe(target);
  });

  it('a graceful stop (SIGTERM) of the leader hands leadership over first', async () => {
    tc = await startTestCluster({ nodes: 3, basePort: 22400 });
    const leader = await tc.leader();
    await tc.cluster.stop(leader);
    const next = await tc.leader({ exclude: [leader] });
    expect(next).not.toBe(leader);
    await tc.client.put('g', 'still-writable');
  });
});
