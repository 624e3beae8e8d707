// Measures the driver's write path in-process (3 members, real WAL fsyncs + LevelDB, memory transport) and
// checks that every acknowledged write is there afterwards. Prints writes/s and fsyncs per write.
import { afterEach, expect, it, onTestFailed } from 'vitest';
import { TestCluster, dec, get, put } from './harness.js';

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.destroy();
  cluster = undefined;
});

it('sustains pipelined writes with group commit; every acknowledged write is readable', async () => {
  cluster = await TestCluster.start(3);
  const c = cluster;
  onTestFailed(() => console.error(`seed: SEED=${c.seed}`));
  const leader = await c.waitForLeader();
  const total = Number(process.env['WRITES'] ?? 3000);
  const window = 256;
  const syncs0 = leader.stats.syncs;
  const readies0 = leader.stats.readies;
  const acked: number[] = [];
  let next = 0;
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (next < total) {
      const i = next++;
      const r = await leader.write(put(`t${i}`, `v${i}`), { clientId: '', seq: 0, deadlineMs: c.deadline(600_000) });
      expect(r.result.type).toBe('put');
      acked.push(i);
    }
  };
  await Promise.all(Array.from({ length: window }, () => worker()));
  const ms = performance.now() - t0;
  const syncs = leader.stats.syncs - syncs0;
  console.log(
    `throughput: ${total} writes, window ${window}: ${Math.round((total / ms) * 1000)} writes/s, ` +
      `${syncs} leader fsyncs (${(total / syncs).toFixed(1)} writes per fsync), ${leader.stats.readies - readies0} Readies`,
  );
  expect(acked).toHaveLength(total);
  expect(syncs).toBeLessThan(total / 4);
  for (const i of [0, Math.floor(total / 2), total - 1]) {
    const r = await c.run(leader.read(get(`t${i}`), { serializable: false, deadlineMs: c.deadline() }));
    expect(r.result.kvs.map((kv) => dec(kv.value))).toEqual([`v${i}`]);
  }
});
