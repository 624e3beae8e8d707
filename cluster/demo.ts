// `npm run demo`: a guided failover. Starts 3 members (ports 7201-7203/7301-7303, dashboards on 7501-7503, data in .cluster-demo/),
// writes, kills the leader with SIGKILL, shows the new leader and that every acknowledged write is there,
// restarts the old leader and shows it catch up. A watch on demo/ (etcd's Watch API, connected to the leader
// first) prints every event meanwhile: it resumes on another member after the kill, from the revision after
// the last one it saw, and the demo checks it saw every put once, in revision order. Stops everything at the end.
import { join } from 'node:path';
import { CoordClient, KvClient } from '../src/client/index.js';
import { LocalCluster } from './local-cluster.js';
import { REPO_ROOT } from './serve-process.js';
import { clusterStatus, waitForApplied, waitForLeader } from './wait.js';

const say = (s: string): void => console.log(`\n== ${s}`);

async function table(cluster: LocalCluster): Promise<void> {
  const rows = await clusterStatus(cluster.endpoints());
  for (const [i, r] of rows.entries()) {
    const id = i + 1;
    if (r instanceof Error) console.log(`   member ${id}  ${cluster.clientAddress(id)}  DOWN`);
    else console.log(`   member ${id}  ${r.endpoint}  ${r.role.padEnd(9)} term ${r.term}  leader ${r.leaderId}  commit ${r.commitIndex}  applied ${r.appliedIndex}`);
  }
}

async function main(): Promise<void> {
  const cluster = new LocalCluster({ nodes: 3, dir: join(REPO_ROOT, '.cluster-demo'), basePeerPort: 7200, baseClientPort: 7300, baseMetricsPort: 7500 });
  await cluster.down({ wipe: true }).catch(() => undefined);
  const client = new KvClient({ endpoints: cluster.endpoints(), timeoutMs: 10_000 });
  try {
    say('Starting 3 members: npm run cluster -- up does the same on ports 7101-7103');
    cluster.up();
    const leader = await waitForLeader(cluster.endpoints(), 30_000);
    await table(cluster);
    const dashboards = cluster.ids().map((id) => cluster.metricsUrl(id)).filter((u) => u !== undefined);
    console.log(`   watch it live: open ${dashboards[dashboards.length - 1]}/ in a browser (any member's works: ${dashboards.join(' ')})`);
    // The watch: from the revision after now, on the leader first (the member about to be killed).
    const from = (await client.put('demo-start', 'x')).header.revision + 1;
    const watchClient = new CoordClient({ endpoints: [cluster.clientAddress(leader), ...cluster.ids().filter((id) => id !== leader).map((id) => cluster.clientAddress(id))], timeoutMs: 10_000 });
    const stopWatch = new AbortController();
    const seen: { key: string; revision: bigint }[] = [];
    const watching = (async (): Promise<void> => {
      let lastEndpoint = '';
      for await (const batch of watchClient.watch('demo/', { prefix: true, fromRevision: from, signal: stopWatch.signal })) {
        if (batch.endpoint !== lastEndpoint) {
          console.log(`   [watch] streaming from member at ${batch.endpoint}${lastEndpoint === '' ? '' : ` (resumed at revision ${batch.events[0]?.kv.modRevision ?? batch.revision}, after ${lastEndpoint} went away)`}`);
          lastEndpoint = batch.endpoint;
        }
        for (const e of batch.events) {
          seen.push({ key: e.kv.key.toString(), revision: e.kv.modRevision });
          console.log(`   [watch] ${e.type.toUpperCase()} ${e.kv.key.toString()} = ${e.kv.value.toString()}  (revision ${e.kv.modRevision})`);
        }
      }
    })();
    say(`Member ${leader} is the leader. Writing 20 keys (demo/00 .. demo/19)`);
    for (let i = 0; i < 20; i++) {
      const r = await client.put(`demo/${String(i).padStart(2, '0')}`, `value-${i}`);
      if (i % 5 === 4) console.log(`   put demo/${String(i).padStart(2, '0')}  -> index ${r.header.index}, term ${r.header.term}, by member ${r.header.memberId}`);
    }
    say(`kill -9 member ${leader} (the leader)`);
    const killedAt = Date.now();
    cluster.kill(leader);
    let firstWriteMs = 0;
    for (let i = 20; i < 30; i++) {
      const r = await client.put(`demo/${i}`, `value-${i}`);
      if (i === 20) {
        firstWriteMs = Date.now() - killedAt;
        console.log(`   first write after the kill succeeded ${firstWriteMs} ms later, on member ${r.header.memberId}, term ${r.header.term}`);
      }
    }
    const newLeader = await waitForLeader(cluster.endpoints().filter((_, i) => i + 1 !== leader), 30_000);
    await table(cluster);
    say(`Member ${newLeader} leads now. Reading every key back (linearizable reads):`);
    const all = await client.range({ prefix: 'demo/' });
    console.log(`   ${all.kvs.length} of 30 keys present; served at index ${all.header.index} by member ${all.header.memberId}`);
    if (all.kvs.length !== 30) throw new Error('acknowledged writes are missing');
    // The watch has every put once, in revision order, across the kill (each put is one revision here).
    const until = Date.now() + 10_000;
    while (seen.length < 30 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    stopWatch.abort();
    await watching;
    watchClient.close();
    const inOrder = seen.every((s, i) => i === 0 || s.revision > (seen[i - 1]?.revision ?? 0n));
    const keys = new Set(seen.map((s) => s.key));
    console.log(`   [watch] saw ${seen.length} events for ${keys.size} of 30 keys, ${inOrder ? 'in revision order' : 'OUT OF ORDER'}, across the failover`);
    if (seen.length !== 30 || keys.size !== 30 || !inOrder) throw new Error('the watch lost, repeated or reordered events across the failover');
    say(`Restarting member ${leader}: it catches up from the new leader`);
    cluster.start(leader);
    await waitForApplied(cluster.endpoints(), all.header.index, 30_000);
    await table(cluster);
    const local = new KvClient({ endpoints: [cluster.clientAddress(leader)] });
    const again = await local.range({ prefix: 'demo/' }, { serializable: true });
    local.close();
    console.log(`   member ${leader} serves ${again.kvs.length} keys from its own state (serializable read)`);
    say('Done. Try it yourself: npm run cluster -- up (it prints the dashboard address, http://127.0.0.1:7401/), npx raftkv status --watch, npm run cluster -- kill <leader>');
  } finally {
    client.close();
    await cluster.down({ wipe: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
