// The README's disaster runbooks, step by step with real `raftkv serve` processes and the `raftkv` CLI, the data
// checked after each: every member lost but a backup (snapshot save -> status -> restore per member -> serve; a
// member added later gets the data), two of three members lost (serve --force-new-cluster on the survivor, the
// others re-added on empty directories; one coming back on its old directory is refused), one member's disk lost
// (member remove / add / existing), and a rolling restart one member at a time (the upgrade runbook's step).
// Ports 28000-28999.
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, expect, it } from 'vitest';
import { KvClient } from '../../src/client/index.js';
import { LocalCluster } from '../../cluster/local-cluster.js';
import { RAFTKV_BIN, initialClusterFlag, spawnServe } from '../../cluster/serve-process.js';
import { waitForLeader } from '../../cluster/wait.js';
import { missingPackages, underCi } from '../system-deps.js';
import { eventually, startTestCluster } from './helpers.js';
import type { TestCluster } from './helpers.js';

const run = promisify(execFile);

interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

async function cli(args: readonly string[]): Promise<CliResult> {
  try {
    const r = await run(process.execPath, [RAFTKV_BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

async function ok(args: readonly string[]): Promise<string> {
  const r = await cli(args);
  if (r.code !== 0) throw new Error(`raftkv ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}


const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function newCluster(basePort: number, clusterId: string, extraArgs?: (id: number) => readonly string[]): LocalCluster {
  const dir = mkdtempSync(join(tmpdir(), 'raftkv-dr-'));
  const cluster = new LocalCluster({
    nodes: 3,
    dir,
    clusterId,
    basePeerPort: basePort,
    baseClientPort: basePort + 100,
    tickMs: 50,
    electionTicks: 10,
    logLevel: 'info',
    ...(extraArgs !== undefined ? { extraArgs } : {}),
  });
  cleanups.push(() => cluster.down({ wipe: process.env.RAFTKV_KEEP_TEST_DIRS !== '1' }));
  return cluster;
}

function tracked(tc: TestCluster): TestCluster {
  cleanups.push(() => tc.close());
  return tc;
}

/** The data every test writes: 120 keys, one with history, one deleted. Returns the revision after it. */
async function writeData(client: KvClient): Promise<number> {
  for (let i = 0; i < 120; i++) await client.put(`t/k/${String(i).padStart(3, '0')}`, `v${i}`);
  await client.put('t/k/000', 'second');
  await client.put('t/gone', 'x');
  const r = await client.delete('t/gone');
  return r.header.revision;
}

/** Every key the tests wrote (under t/; linearizable unless serializable), as key=value lines. */
async function contents(client: KvClient, opts: { serializable?: boolean } = {}): Promise<string[]> {
  const r = await client.range({ prefix: 't/' }, { serializable: opts.serializable ?? false });
  return r.kvs.map((kv) => `${Buffer.from(kv.key).toString()}=${Buffer.from(kv.value).toString()}`);
}

const expected = [...Array.from({ length: 120 }, (_, i) => `t/k/${String(i).padStart(3, '0')}=${i === 0 ? 'second' : `v${i}`}`)];

it('every member lost but a backup: snapshot save, status, restore on each member, serve; history and revision kept; a later member gets the data', async () => {
  const haveEtcdctl = missingPackages(['etcdctl']).length === 0;
  if (!haveEtcdctl && underCi()) throw new Error('etcdctl is missing under CI');
  const source = tracked(await startTestCluster({ nodes: 3, basePort: 28000 }));
  const revision = await writeData(source.client);
  const dir = mkdtempSync(join(tmpdir(), 'raftkv-dr-backup-'));
  cleanups.push(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));
  const backup = join(dir, 'backup.snap');
  const endpoints = source.cluster.endpoints().join(',');
  expect(await ok(['snapshot', 'save', backup, '--endpoints', endpoints])).toMatch(/^saved \d+ bytes to /);
  const files = [backup];
  if (haveEtcdctl) {
    const copy = join(dir, 'etcdctl.db');
    await run('etcdctl', ['--endpoints', source.cluster.clientAddress(1), 'snapshot', 'save', copy], { env: { ...process.env, ETCDCTL_API: '3' } });
    files.push(copy);
  }
  for (const f of files) {
    const s = JSON.parse(await ok(['snapshot', 'status', f, '-w', 'json'])) as { revision: number; keys: number; format: string; sha256: string };
    expect(s).toMatchObject({ revision, keys: 120, format: f === backup ? 'raftkv' : 'etcdctl' });
    expect(s.sha256).toMatch(/^[0-9a-f]{64}$/);
  }
  expect(await ok(['snapshot', 'status', backup])).toMatch(new RegExp(`revision +${revision}\\n[^]*keys +120\\n[^]*checksums +OK`));
  await source.close();
  cleanups.pop();

  const restored = newCluster(28200, 'restored');
  const initialCluster = initialClusterFlag({ basePeerPort: 28200, baseClientPort: 28300 }, [1, 2, 3]);
  const flags = (id: number): string[] => ['--data-dir', restored.dataDir(id), '--id', String(id), '--cluster-id', 'restored', '--initial-cluster', initialCluster];

  // A damaged file is refused by name and nothing is written.
  const damaged = join(dir, 'damaged.snap');
  const bytes = readFileSync(files[files.length - 1] ?? backup);
  const at = Math.floor(bytes.length / 2);
  bytes[at] = (bytes[at] ?? 0) ^ 0x40;
  writeFileSync(damaged, bytes);
  const refused = await cli(['snapshot', 'restore', damaged, ...flags(1)]);
  expect(refused.code).toBe(1);
  expect(refused.stderr).toContain(`backup ${damaged} is damaged`);
  expect(existsSync(restored.dataDir(1)) ? readdirSync(restored.dataDir(1)) : []).toEqual([]);
  // A directory that is not empty is refused.
  mkdirSync(restored.dataDir(1), { recursive: true });
  writeFileSync(join(restored.dataDir(1), 'something'), 'x');
  const busy = await cli(['snapshot', 'restore', backup, ...flags(1)]);
  expect(busy.code).toBe(1);
  expect(busy.stderr).toContain('is not empty (something)');
  rmSync(join(restored.dataDir(1), 'something'));

  const from = files[files.length - 1] ?? backup; // etcdctl's copy where there is one
  for (const id of [1, 2, 3]) expect(await ok(['snapshot', 'restore', from, ...flags(id)])).toMatch(new RegExp(`^restored 120 keys at revision ${revision} into `));
  restored.up();
  await waitForLeader(restored.endpoints(), 20_000);
  const client = new KvClient({ endpoints: restored.endpoints(), timeoutMs: 10_000 });
  cleanups.push(() => Promise.resolve(client.close()));
  expect(await contents(client)).toEqual(expected);
  const past = await client.range({ prefix: 't/k/000' }, { revision: 2 });
  expect(past.kvs.map((kv) => Buffer.from(kv.value).toString())).toEqual(['v0']); // the history came along
  const next = await client.put('t/after', 'restore');
  expect(next.header.revision).toBe(revision + 1); // the revision goes on from the backup's

  // A member added later is sent a snapshot (the restored log holds nothing before it).
  await ok(['member', 'add', '4', `127.0.0.1:${28204}`, `127.0.0.1:${28304}`, '--endpoints', restored.endpoints().join(',')]);
  restored.track(4);
  restored.start(4, { state: 'existing', members: [1, 2, 3, 4] });
  const fourth = new KvClient({ endpoints: [restored.clientAddress(4)], timeoutMs: 5000 });
  cleanups.push(() => Promise.resolve(fourth.close()));
  await eventually(async () => expect(await contents(fourth, { serializable: true })).toEqual(['t/after=restore', ...expected]));
  expect((await ok(['check', '--endpoints', restored.endpoints().join(',')])).trim().split('\n').pop()).toMatch(/^OK: all 4 members agree/);
});

it('two of three members lost: --force-new-cluster on the survivor keeps its data; the others come back empty; an old directory is refused', async () => {
  const forced = new Set<number>();
  const cluster = newCluster(28400, 'forced', (id) => (forced.has(id) ? ['--force-new-cluster'] : []));
  cluster.up();
  await waitForLeader(cluster.endpoints(), 20_000);
  const client = new KvClient({ endpoints: cluster.endpoints(), timeoutMs: 10_000 });
  cleanups.push(() => Promise.resolve(client.close()));
  const revision = await writeData(client);
  // Every member has applied everything (so the survivor's committed state holds it all).
  const first = new KvClient({ endpoints: [cluster.clientAddress(1)], timeoutMs: 5000 });
  await eventually(async () => expect(await contents(first, { serializable: true })).toEqual(expected));
  first.close();
  const old3 = mkdtempSync(join(tmpdir(), 'raftkv-dr-old3-'));
  cleanups.push(() => Promise.resolve(rmSync(old3, { recursive: true, force: true })));
  cluster.kill(2);
  cluster.kill(3);
  await cluster.waitExit(2);
  await cluster.waitExit(3);
  cpSync(cluster.dataDir(3), old3, { recursive: true }); // member 3's disk, to bring back later
  cluster.wipe(2);
  cluster.wipe(3);

  // Runbook: stop the survivor, start it once with --force-new-cluster.
  await cluster.stop(1);
  forced.add(1);
  cluster.start(1);
  await waitForLeader([cluster.clientAddress(1)], 20_000);
  forced.delete(1);
  const one = new KvClient({ endpoints: [cluster.clientAddress(1)], timeoutMs: 10_000 });
  cleanups.push(() => Promise.resolve(one.close()));
  expect(await contents(one)).toEqual(expected);
  expect((await one.members()).members.map((m) => m.id)).toEqual([1]);
  expect((await one.put('t/after', 'forced')).header.revision).toBe(revision + 1);

  // Member 2 comes back on an empty directory.
  await ok(['member', 'add', '2', cluster.peerAddress(2), cluster.clientAddress(2), '--endpoints', cluster.clientAddress(1)]);
  cluster.start(2, { state: 'existing' });
  const two = new KvClient({ endpoints: [cluster.clientAddress(2)], timeoutMs: 5000 });
  cleanups.push(() => Promise.resolve(two.close()));
  await eventually(async () => expect(await contents(two, { serializable: true })).toEqual(['t/after=forced', ...expected]));

  // Member 3 added, but started on the directory it had before: refused as stale (exit 78), nothing of it taken.
  await ok(['member', 'add', '3', cluster.peerAddress(3), cluster.clientAddress(3), '--endpoints', cluster.clientAddress(1)]);
  cpSync(old3, cluster.dataDir(3), { recursive: true });
  const stale = spawnServe(cluster.serveArgs(3, 'existing'), { logFile: join(old3, 'stale.log'), killOnExit: true });
  const exit = await Promise.race([stale.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 30_000))]);
  if (exit === 'timeout') stale.signal('SIGKILL');
  expect(exit === 'timeout' ? 'timeout' : exit.code).toBe(78);
  expect(readFileSync(join(old3, 'stale.log'), 'utf8')).toContain('--force-new-cluster removed it');
  // Then on an empty directory: it joins.
  cluster.wipe(3);
  cluster.start(3, { state: 'existing' });
  const three = new KvClient({ endpoints: [cluster.clientAddress(3)], timeoutMs: 5000 });
  cleanups.push(() => Promise.resolve(three.close()));
  await eventually(async () => expect(await contents(three, { serializable: true })).toEqual(['t/after=forced', ...expected]));
  expect((await ok(['check', '--endpoints', cluster.endpoints().join(',')])).trim().split('\n').pop()).toMatch(/^OK: all 3 members agree/);
});

it("one member's disk lost, then a rolling restart one member at a time (the upgrade runbook): the data stays and the members agree", async () => {
  const tc = tracked(await startTestCluster({ nodes: 3, basePort: 28600 }));
  const { cluster, client } = tc;
  await writeData(client);
  const endpoints = cluster.endpoints().join(',');
  // One disk lost: member 2's directory is gone.
  cluster.kill(2);
  await cluster.waitExit(2);
  cluster.wipe(2);
  await ok(['member', 'remove', '2', '--endpoints', endpoints]);
  await ok(['member', 'add', '2', cluster.peerAddress(2), cluster.clientAddress(2), '--endpoints', endpoints]);
  cluster.start(2, { state: 'existing' });
  const two = new KvClient({ endpoints: [cluster.clientAddress(2)], timeoutMs: 5000 });
  cleanups.push(() => Promise.resolve(two.close()));
  await eventually(async () => expect(await contents(two, { serializable: true })).toEqual(expected));
  // Rolling restart: each member stopped (SIGTERM: a leader hands over), started again, caught up, checked.
  for (const id of [1, 2, 3]) {
    await cluster.stop(id);
    await client.put(`t/during-${id}`, 'x'); // the other two keep serving writes
    cluster.start(id);
    await waitForLeader(cluster.endpoints(), 20_000);
    await eventually(async () => expect((await ok(['check', '--endpoints', endpoints])).trim().split('\n').pop()).toMatch(/^OK: all 3 members agree/));
  }
  expect(await contents(client)).toEqual(['t/during-1=x', 't/during-2=x', 't/during-3=x', ...expected]);
});
