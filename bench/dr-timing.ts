// `npm run bench:dr -- [--keys 1000000]`: the disaster-recovery runbooks of README.md, timed end to end at a key
// count, with the data checked after each.
//  1. a 3-member cluster (raftkv's defaults: --snapshot-count 10000, the initial corrupt check on) is loaded with
//     --keys keys (values of --value-size bytes, 100 by default), 128 puts per transaction, 32 in flight; then a
//     marker key is written;
//  2. `raftkv snapshot save FILE` from it (the CLI, as an operator runs it), then every member is stopped;
//  3. `raftkv snapshot restore FILE --data-dir ... --id N ...` once per member (one after the other, as on one
//     machine; each is timed);
//  4. the restored members are started together: the time from their start to the first linearizable read of
//     the marker served (the cluster is back), then until every member has served it (serializable, from its own
//     state), and the key count checked;
//  5. --force-new-cluster at the same size: two members killed with SIGKILL, the survivor stopped and started
//     again with --force-new-cluster: the time from that start to its first linearizable read of the marker and
//     to its first acknowledged write, and the key count checked.
// Figures go to stdout (a table) and DIR/dr-timing.json. Ports: peers on --base-port + 1..3, clients on
// --base-port + 101..103 (the restored cluster on the same ports: the source is gone by then).
import { execFile } from 'node:child_process';
import { mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { promisify } from 'node:util';
import { KvClient } from '../src/client/index.js';
import { RAFTKV_BIN, REPO_ROOT, memberIds, planAddresses, serveArgs } from '../cluster/serve-process.js';
import type { PortPlan } from '../cluster/serve-process.js';
import { ManagedProcess } from './proc-group.js';
import { ProgressBar } from './progress.js';
import { rssMiB } from './proc-stats.js';
import { RaftKvCluster } from './raftkv-cluster.js';
import { fmt, formatTable } from './report.js';
import { BenchRng } from './rng.js';
import { errorCode } from './target.js';
import type { BenchTarget } from './target.js';
import { makeKey } from './workloads.js';

const run = promisify(execFile);
const MEMBERS = 3;
const KEY_SIZE = 8; // "k" and 7 digits: up to 10 million keys, all under the prefix "k"
const PUTS_PER_TXN = 128; // raftkv's (and etcd's) default limit of operations per transaction
const LOADERS = 32; // transactions in flight while loading
const MARKER = 'dr-marker';
const GIVE_UP_MS = 30 * 60_000; // a step that takes longer than this is a failure, not a figure

interface Figures {
  readonly keys: number;
  readonly valueBytes: number;
  readonly loadS: number;
  readonly snapshotBytes: number;
  readonly saveMs: number;
  readonly restoreMs: readonly number[]; // per member
  readonly restoredFirstReadMs: number; // start of the restored members -> first linearizable read of the marker
  readonly restoredAllServeMs: number; // -> every member served it (serializable)
  readonly forcedFirstReadMs: number; // start with --force-new-cluster -> first linearizable read of the marker
  readonly forcedFirstWriteMs: number; // -> first acknowledged write
  readonly loadedRssMiB: readonly number[]; // each source member after the load, its history compacted (physical)
  readonly restoredRssMiB: readonly number[]; // each restored member once all three serve
}

async function load(target: BenchTarget, keys: number, valueBytes: number, seed: number, progress: boolean): Promise<number> {
  const t0 = performance.now();
  const value = new BenchRng(seed).bytes(valueBytes);
  const bar = new ProgressBar(`load ${keys} keys`, progress);
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < keys) {
      const from = next;
      next = Math.min(keys, next + PUTS_PER_TXN);
      const kvs: { key: Uint8Array; value: Uint8Array }[] = [];
      for (let i = from; i < next; i++) kvs.push({ key: makeKey(i, KEY_SIZE), value });
      for (let attempt = 0; ; attempt++) {
        try {
          await target.putMany(kvs, 10_000);
          break;
        } catch (err) {
          const code = errorCode(err);
          if (attempt >= 20) throw new Error(`load: gave up after ${attempt + 1} failures, last ${code}`);
          await new Promise((r) => setTimeout(r, 100 * (attempt + 1)));
        }
      }
      done += kvs.length;
      bar.update(done / keys, `${done} keys`);
    }
  };
  await Promise.all(Array.from({ length: LOADERS }, () => worker()));
  const s = (performance.now() - t0) / 1000;
  bar.done(`${s.toFixed(1)} s`);
  return s;
}

/**
 * Polls until `endpoints` serve the marker with `value` (linearizable unless `serializable`); ms from `sinceMs`.
 * A fresh client per attempt: a channel that saw "connection refused" backs off its reconnects by up to seconds,
 * which would be measured instead of the member.
 */
async function untilServed(endpoints: readonly string[], value: string, serializable: boolean, sinceMs: number): Promise<number> {
  for (;;) {
    const client = new KvClient({ endpoints: [...endpoints], timeoutMs: 1000, backoffMinMs: 10, backoffMaxMs: 50 });
    try {
      const r = await client.get(MARKER, { serializable, timeoutMs: 1000 });
      if (r.kv !== undefined && Buffer.from(r.kv.value).toString() === value) return performance.now() - sinceMs;
    } catch (err) {
      errorCode(err); // not serving yet
    } finally {
      client.close();
    }
    if (performance.now() - sinceMs > GIVE_UP_MS) throw new Error(`${endpoints.join(',')} did not serve the marker within ${GIVE_UP_MS} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function untilWritten(endpoint: string, sinceMs: number): Promise<number> {
  for (;;) {
    const client = new KvClient({ endpoints: [endpoint], timeoutMs: 1000, backoffMinMs: 10, backoffMaxMs: 50 });
    try {
      await client.put('dr-after-force', 'yes', { timeoutMs: 1000 });
      return performance.now() - sinceMs;
    } catch (err) {
      errorCode(err);
    } finally {
      client.close();
    }
    if (performance.now() - sinceMs > GIVE_UP_MS) throw new Error(`${endpoint} took no write within ${GIVE_UP_MS} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The keys under the load's prefix, counted by `endpoint` from its own state; must be `keys`. */
async function checkCount(endpoint: string, keys: number, what: string): Promise<void> {
  const client = new KvClient({ endpoints: [endpoint], timeoutMs: 60_000, attemptTimeoutMs: 60_000 }); // counting 1M keys outlasts the default attempt
  try {
    const r = await client.range({ key: 'k', end: 'l' }, { countOnly: true, serializable: true });
    if (r.count !== keys) throw new Error(`${what}: ${endpoint} holds ${r.count} keys, not ${keys}`);
  } finally {
    client.close();
  }
}

async function cli(args: readonly string[]): Promise<{ out: string; ms: number }> {
  const t0 = performance.now();
  try {
    const { stdout } = await run(process.execPath, [RAFTKV_BIN, ...args], { maxBuffer: 16 * 1024 * 1024 });
    return { out: stdout.trim(), ms: performance.now() - t0 };
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new Error(`raftkv ${args.slice(0, 2).join(' ')} failed: ${stderr.trim() || (err instanceof Error ? err.message : String(err))}`);
  }
}

async function main(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      keys: { type: 'string', default: '1000000' },
      'value-size': { type: 'string', default: '100' },
      'base-port': { type: 'string', default: '25700' },
      'run-dir': { type: 'string' },
      seed: { type: 'string', default: '1' },
      'no-progress': { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false }, // keep the data directories and the backup
    },
    strict: true,
  });
  const keys = Number(values.keys);
  const valueBytes = Number(values['value-size']);
  const basePort = Number(values['base-port']);
  const seed = Number(values.seed);
  if (!Number.isInteger(keys) || keys < 1 || keys >= 10 ** (KEY_SIZE - 1)) throw new Error(`--keys: a whole number from 1 to ${10 ** (KEY_SIZE - 1) - 1}`);
  if (!Number.isInteger(valueBytes) || valueBytes < 1) throw new Error('--value-size: a positive whole number of bytes');
  if (!Number.isInteger(basePort) || basePort < 1024 || basePort + 100 + MEMBERS > 65535) throw new Error('--base-port: 1024..65431');
  if (!Number.isInteger(seed)) throw new Error('--seed: a whole number');
  const progress = !values['no-progress'];
  const runDir = values['run-dir'] ?? join(REPO_ROOT, 'runs', `dr-timing-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  mkdirSync(runDir, { recursive: true });
  const ports: PortPlan = { basePeerPort: basePort, baseClientPort: basePort + 100 };
  const say = (s: string): void => void process.stderr.write(`[dr] ${s}\n`);

  // 1. the source cluster, loaded
  const source = new RaftKvCluster({ runDir: join(runDir, 'source'), size: MEMBERS, clientBasePort: ports.baseClientPort, peerBasePort: ports.basePeerPort });
  const backup = join(runDir, 'backup.snap');
  const marker = `written-${seed}`;
  let loadS: number;
  let loadedRssMiB: number[] = [];
  let save: { out: string; ms: number };
  try {
    await source.start();
    const target = await source.makeTarget();
    try {
      loadS = await load(target, keys, valueBytes, seed, progress);
    } finally {
      target.close();
    }
    // One attempt as long as the step may take: a physical compaction of N keys outlasts the default attempt,
    // and a retry of an applied compaction answers COMPACTED (as etcd's would).
    const client = new KvClient({ endpoints: source.clientEndpoints, timeoutMs: GIVE_UP_MS, attemptTimeoutMs: GIVE_UP_MS });
    try {
      const revision = (await client.put(MARKER, marker)).header.revision;
      // Memory at N keys with their history compacted (issue 12 asks for it): compact everything, physically.
      await client.compact(revision, { physical: true });
    } finally {
      client.close();
    }
    loadedRssMiB = source.pids().map((p) => rssMiB(p.pid));
    say(`loaded and compacted: RSS per member ${loadedRssMiB.map((m) => m.toFixed(0)).join(' / ')} MiB`);
    // 2. the backup
    save = await cli(['snapshot', 'save', backup, '--endpoints', source.clientEndpoints.join(',')]);
    say(`${save.out} in ${save.ms.toFixed(0)} ms`);
  } finally {
    await source.stop();
  }
  const snapshotBytes = statSync(backup).size;

  // 3. restore, once per member
  const restored = new RaftKvCluster({ runDir: join(runDir, 'restored'), size: MEMBERS, clientBasePort: ports.baseClientPort, peerBasePort: ports.basePeerPort });
  const restoreMs: number[] = [];
  for (const id of memberIds(MEMBERS)) {
    const dataDir = restored.dataDirs[id - 1] ?? '';
    const r = await cli(['snapshot', 'restore', backup, '--data-dir', dataDir, '--id', String(id), '--cluster-id', 'bench', '--initial-cluster', planAddresses(ports, id, memberIds(MEMBERS)).initialCluster]);
    restoreMs.push(r.ms);
    say(`member ${id}: ${r.out} (${r.ms.toFixed(0)} ms)`);
  }

  // 4. start the restored members; the first read, then every member
  let restoredFirstReadMs: number;
  let restoredAllServeMs: number;
  let restoredRssMiB: number[] = [];
  let forcedFirstReadMs: number;
  let forcedFirstWriteMs: number;
  let forced: ManagedProcess | undefined;
  try {
    const t0 = performance.now();
    for (const m of restored.members) m.start();
    restoredFirstReadMs = await untilServed(restored.clientEndpoints, marker, false, t0);
    say(`restored cluster: first linearizable read ${restoredFirstReadMs.toFixed(0)} ms after the start`);
    const each = await Promise.all(restored.clientEndpoints.map((ep) => untilServed([ep], marker, true, t0)));
    restoredAllServeMs = Math.max(...each);
    restoredRssMiB = restored.pids().map((p) => rssMiB(p.pid));
    say(`restored cluster: every member served it by ${restoredAllServeMs.toFixed(0)} ms`);
    for (const ep of restored.clientEndpoints) await checkCount(ep, keys, 'after restore');

    // 5. two members lost: the survivor (member 1) started again with --force-new-cluster
    await restored.kill9(1);
    await restored.kill9(2);
    await restored.members[0]?.stop(30_000);
    const dataDir = restored.dataDirs[0] ?? '';
    const args = serveArgs({ id: 1, clusterId: 'bench', dataDir, ...planAddresses(ports, 1, memberIds(MEMBERS)), initialClusterState: 'new', tickMs: 100, electionTicks: 10, logLevel: 'warn', extraArgs: ['--force-new-cluster'] });
    forced = new ManagedProcess('raftkv 1 --force-new-cluster', process.execPath, [RAFTKV_BIN, ...args], join(runDir, 'restored', 'n1-forced.log'));
    const t1 = performance.now();
    forced.start();
    const endpoint = restored.clientEndpoints[0] ?? '';
    forcedFirstReadMs = await untilServed([endpoint], marker, false, t1);
    forcedFirstWriteMs = await untilWritten(endpoint, t1);
    say(`--force-new-cluster: first linearizable read ${forcedFirstReadMs.toFixed(0)} ms, first write ${forcedFirstWriteMs.toFixed(0)} ms after the start`);
    await checkCount(endpoint, keys, 'after --force-new-cluster');
  } finally {
    await forced?.stop(30_000);
    await restored.stop();
  }

  const figures: Figures = { keys, valueBytes, loadS, snapshotBytes, saveMs: save.ms, restoreMs, restoredFirstReadMs, restoredAllServeMs, forcedFirstReadMs, forcedFirstWriteMs, loadedRssMiB, restoredRssMiB };
  writeFileSync(join(runDir, 'dr-timing.json'), `${JSON.stringify({ runDir, ...figures }, null, 2)}\n`);
  process.stdout.write(
    `${formatTable(
      ['keys', 'value B', 'load s', 'backup MiB', 'save ms', 'restore ms per member', 'restored: start -> first read ms', '-> all 3 serve ms', 'force-new-cluster: start -> first read ms', '-> first write ms', 'RSS MiB loaded+compacted', 'RSS MiB restored'],
      [[String(keys), String(valueBytes), fmt(loadS, 1), fmt(snapshotBytes / 2 ** 20, 1), fmt(save.ms, 0), restoreMs.map((m) => fmt(m, 0)).join('/'), fmt(restoredFirstReadMs, 0), fmt(restoredAllServeMs, 0), fmt(forcedFirstReadMs, 0), fmt(forcedFirstWriteMs, 0), loadedRssMiB.map((m) => fmt(m, 0)).join('/'), restoredRssMiB.map((m) => fmt(m, 0)).join('/')]],
    )}\n(details in ${join(runDir, 'dr-timing.json')}; member logs under ${runDir})\n`,
  );
  if (!values.keep) {
    // the data directories and the backup go (gigabytes at 1M keys); the logs stay
    for (const d of [...source.dataDirs, ...restored.dataDirs]) rmSync(d, { recursive: true, force: true, maxRetries: 3 });
    rmSync(backup, { force: true });
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`dr-timing: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
