// --quota-backend-bytes and the NOSPACE alarm end to end, with real members and etcdctl: writes past the quota are
// refused with etcd's error while reads, deletes and compaction go on; `etcdctl alarm list` shows the alarm on every
// member; `raftkv defrag` says what each member freed; `etcdctl alarm disarm` then lets writes in again. Ports 28800-28999.
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { KvClient } from '../../src/client/index.js';
import { LocalCluster } from '../../cluster/local-cluster.js';
import { RAFTKV_BIN } from '../../cluster/serve-process.js';
import { waitForLeader } from '../../cluster/wait.js';
import { isRaftKvError } from '../../src/shared/errors.js';
import { describeWithSystem } from '../system-deps.js';
import { eventually } from './helpers.js';

const eventuallyWithin = <T>(f: () => Promise<T>): Promise<T> => eventually(f, 30_000, 200);

const run = promisify(execFile);
const QUOTA_BYTES = 3_000_000;
const VALUE_BYTES = 100 * 1024;


describeWithSystem(['etcdctl'], 'quota: the NOSPACE alarm', () => {
  const cluster = new LocalCluster({
    nodes: 3,
    dir: mkdtempSync(join(tmpdir(), 'raftkv-quota-')),
    clusterId: 'quota',
    basePeerPort: 28800,
    baseClientPort: 28900,
    tickMs: 50,
    electionTicks: 10,
    logLevel: 'info',
    extraArgs: () => ['--quota-backend-bytes', String(QUOTA_BYTES)],
  });
  const client = new KvClient({ endpoints: cluster.endpoints(), timeoutMs: 10_000 });
  afterAll(async () => {
    client.close();
    await cluster.down({ wipe: process.env.RAFTKV_KEEP_TEST_DIRS !== '1' });
  });
  const ctl = async (endpoint: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
    try {
      const r = await run('etcdctl', ['--endpoints', endpoint, ...args], { env: { ...process.env, ETCDCTL_API: '3' }, encoding: 'utf8' });
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    }
  };

  it('past the quota: NOSPACE on every member, writes refused, reads/deletes/compaction go on; compact + defrag + disarm lets writes in', async () => {
    cluster.up();
    await waitForLeader(cluster.endpoints(), 20_000);
    await client.put('small', 'kept');
    let refusedAt = -1;
    for (let i = 0; i < 400 && refusedAt < 0; i++) {
      try {
        await client.put(`big/${i}`, Buffer.alloc(VALUE_BYTES, i % 251));
      } catch (err) {
        if (!isRaftKvError(err, 'NO_SPACE')) throw err;
        expect(err.message).toContain('etcdserver: mvcc: database space exceeded');
        refusedAt = i;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(refusedAt).toBeGreaterThan(0);
    // Every member lists the alarms (they went through the log; each member over quota raised its own).
    for (const id of cluster.ids()) {
      await eventuallyWithin(async () => expect((await ctl(cluster.clientAddress(id), 'alarm', 'list')).stdout).toMatch(/^(memberID:\d+ alarm:NOSPACE \n)+$/));
    }
    const status = await ctl(cluster.clientAddress(2), 'endpoint', 'status', '-w', 'json');
    expect(status.stdout).toContain('alarm:NOSPACE');
    // etcd's error, on any member, for a put and for a txn with a put; reads, deletes, compaction go on.
    const refused = await ctl(cluster.clientAddress(3), 'put', 'x', 'y');
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('etcdserver: mvcc: database space exceeded');
    expect((await ctl(cluster.clientAddress(1), 'get', 'small', '--print-value-only')).stdout).toBe('kept\n');
    const deleted = await client.delete({ prefix: 'big/' });
    expect(deleted.deleted).toBe(refusedAt);
    await client.compact(deleted.header.revision, { physical: true });
    // Space back: defragment every member (it says what it freed), then disarm.
    const defrag = await run(process.execPath, [RAFTKV_BIN, 'defrag', '--endpoints', cluster.endpoints().join(',')], { encoding: 'utf8' });
    const lines = defrag.stdout.trim().split('\n');
    expect(lines).toHaveLength(3);
    for (const line of lines) expect(line).toMatch(/^member \d \(127\.0\.0\.1:\d+\): freed \d+\.\d MiB \(\d+ -> \d+ bytes\) in \d+ ms$/);
    const freed = lines.map((l) => {
      const m = /\((\d+) -> (\d+) bytes\)/.exec(l);
      return Number(m?.[1]) - Number(m?.[2]);
    });
    expect(Math.min(...freed)).toBeGreaterThan(0);
    const disarm = await ctl(cluster.clientAddress(1), 'alarm', 'disarm');
    expect(disarm.stdout).toMatch(/^(memberID:\d+ alarm:NOSPACE \n)+$/);
    expect((await ctl(cluster.clientAddress(2), 'alarm', 'list')).stdout).toBe('');
    await eventuallyWithin(async () => expect((await ctl(cluster.clientAddress(2), 'put', 'x', 'y')).stdout).toBe('OK\n'));
    expect((await client.get('small')).kv?.value).toEqual(Buffer.from('kept'));
  });
});
