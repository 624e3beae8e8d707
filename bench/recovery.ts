// `node dist/bench/recovery.js [flags]` (built by `npm run bench`'s tsc step): recovery costs, for raftkv and
// for etcd on the same footing.
//  restart:  a 3-member cluster holding N keys (default 1,000,000) and E more log entries (default 100,000),
//            taking no snapshot meanwhile (--snapshot-count above the entry count), so a restarted member has
//            its whole WAL to read. kill -9 a follower, start it again, and time until it serves (a
//            serializable read on it returns the last write acknowledged before the kill). Also each member's
//            RSS at N keys, and the restarted member's RSS.
//  catchup:  a fresh 3-member cluster with --snapshot-count 10000 (raftkv's default; etcd's is set to match)
//            holding N keys and 20,000 more entries (so the log was compacted behind a snapshot); add a learner
//            and time from its start until it serves the last write (it must receive the snapshot).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { ClusterUnderTest } from './cluster-under-test.js';
import { EtcdCluster } from './etcd-cluster.js';
import { REPO_ROOT } from '../cluster/serve-process.js';
import { rssMiB } from './proc-stats.js';
import { ProgressBar } from './progress.js';
import { RaftKvCluster } from './raftkv-cluster.js';
import { fmt, formatTable } from './report.js';
import { BenchRng } from './rng.js';
import { errorCode, type BenchTarget, type TargetName } from './target.js';
import { makeKey } from './workloads.js';

const MARKER = Buffer.from('recovery-marker');

interface RestartResult {
  readonly keys: number;
  readonly extraEntries: number;
  readonly loadS: number; // time to load keys + entries
  readonly rssAtKeysMiB: readonly number[]; // each member after the load
  readonly restartedIndex: number;
  readonly restartToServeMs: number; // spawn -> serializable read of the marker answered by it
  readonly restartedRssMiB: number; // right after it serves again
}

interface CatchupResult {
  readonly keys: number;
  readonly extraEntries: number;
  readonly loadS: number;
  readonly learnerIndex: number;
  readonly startToServeMs: number; // learner spawn -> serializable read of the marker answered by it
  readonly learnerRssMiB: number;
  readonly learnerSnapshotIndex: number | undefined; // raftkv: > 0 shows the learner holds a snapshot (installed from the leader)
}

async function load(target: BenchTarget, name: string, keys: number, extraEntries: number, valueSize: number, seed: number, progress: boolean): Promise<number> {
  const t0 = performance.now();
  const value = new BenchRng(seed).bytes(valueSize);
  const bar = new ProgressBar(`${name} load ${keys} keys + ${extraEntries} entries`, progress);
  const batch = 128; // both systems' default limit of operations per transaction
  let nextKey = 0;
  let nextEntry = 0;
  let done = 0;
  const total = Math.ceil(keys / batch) + extraEntries;
  const retrying = async <T>(op: () => Promise<T>): Promise<T> => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await op();
      } catch (err) {
        const code = errorCode(err);
        if (attempt >= 20) throw new Error(`${name} load: gave up after ${attempt + 1} failures, last ${code}`);
        await new Promise((r) => setTimeout(r, 100 * (attempt + 1)));
      }
    }
  };
  const worker = async (): Promise<void> => {
    while (nextKey < keys) {
      const from = nextKey;
      nextKey = Math.min(keys, nextKey + batch);
      const kvs: { key: Uint8Array; value: Uint8Array }[] = [];
      for (let i = from; i < nextKey; i++) kvs.push({ key: makeKey(i, 8), value });
      await retrying(() => target.putMany(kvs, 10_000));
      bar.update(++done / total, `${nextKey} keys`);
    }
    while (nextEntry < extraEntries) {
      const i = nextEntry++;
      await retrying(() => target.put(makeKey(i % keys, 8), value, 10_000));
      if (++done % 500 === 0) bar.update(done / total, `${i} entries`);
    }
  };
  await Promise.all(Array.from({ length: 32 }, () => worker()));
  const s = (performance.now() - t0) / 1000;
  bar.done(`${s.toFixed(1)} s`);
  return s;
}

/** Puts the marker through the leader and returns its version (what a recovered member must show). */
async function writeMarker(target: BenchTarget): Promise<number> {
  await target.put(MARKER, Buffer.from(String(Date.now())), 10_000);
  const r = await target.get(MARKER, false, 10_000);
  return r.version;
}

/**
 * Polls member `index` with serializable reads until it shows the marker at `version`; returns ms from `sinceMs`.
 * A fresh client per attempt: a gRPC channel that saw "connection refused" backs off its reconnects by up to
 * seconds, which would be measured instead of the member.
 */
async function timeUntilServes(cluster: ClusterUnderTest, index: number, version: number, sinceMs: number, giveUpMs: number): Promise<number> {
  for (;;) {
    const target = await cluster.targetFor(index);
    try {
      const r = await target.get(MARKER, true, 1000);
      if (r.version >= version) return performance.now() - sinceMs;
    } catch (err) {
      errorCode(err); // not serving yet
    } finally {
      target.close();
    }
    if (performance.now() - sinceMs > giveUpMs) throw new Error(`member ${index + 1} did not serve within ${giveUpMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function makeCluster(name: TargetName, runDir: string, snapshotCount: number): ClusterUnderTest {
  const extraFlags = ['--snapshot-count', String(snapshotCount)];
  return name === 'etcd'
    ? new EtcdCluster({ runDir, size: 3, clientBasePort: 23790, peerBasePort: 23800, extraFlags })
    : new RaftKvCluster({ runDir, size: 3, clientBasePort: 24790, peerBasePort: 24800, extraFlags });
}

async function restartPhase(name: TargetName, runDir: string, keys: number, entries: number, valueSize: number, seed: number, progress: boolean): Promise<RestartResult> {
  const cluster = makeCluster(name, join(runDir, 'restart'), Math.max(1_000_000, 2 * (entries + Math.ceil(keys / 128))));
  await cluster.start();
  try {
    const target = await cluster.makeTarget();
    let loadS: number;
    let version: number;
    try {
      loadS = await load(target, name, keys, entries, valueSize, seed, progress);
      version = await writeMarker(target);
    } finally {
      target.close();
    }
    const rssAtKeysMiB = cluster.pids().map((p) => rssMiB(p.pid));
    const leader = await cluster.leaderIndex();
    const victim = leader === 0 ? 1 : 0;
    await cluster.kill9(victim);
    const t0 = performance.now();
    await cluster.restart(victim);
    const restartToServeMs = await timeUntilServes(cluster, victim, version, t0, 600_000);
    const pid = cluster.pids()[victim]?.pid;
    const result = { keys, extraEntries: entries, loadS, rssAtKeysMiB, restartedIndex: victim, restartToServeMs, restartedRssMiB: pid === undefined ? Number.NaN : rssMiB(pid) };
    process.stderr.write(`[${name}] restart: member ${victim + 1} serves again ${restartToServeMs.toFixed(0)} ms after its start\n`);
    return result;
  } finally {
    await cluster.stop();
  }
}

async function catchupPhase(name: TargetName, runDir: string, keys: number, valueSize: number, seed: number, progress: boolean): Promise<CatchupResult> {
  const cluster = makeCluster(name, join(runDir, 'catchup'), 10_000);
  await cluster.start();
  try {
    const target = await cluster.makeTarget();
    let loadS: number;
    let version: number;
    const entries = 20_000;
    try {
      loadS = await load(target, name, keys, entries, valueSize, seed, progress);
      version = await writeMarker(target);
    } finally {
      target.close();
    }
    const t0 = performance.now();
    const learner = await cluster.addLearner();
    const startToServeMs = await timeUntilServes(cluster, learner, version, t0, 600_000);
    const pid = cluster.pids()[learner]?.pid;
    const learnerSnapshotIndex = cluster.snapshotIndexOf === undefined ? undefined : await cluster.snapshotIndexOf(learner);
    process.stderr.write(
      `[${name}] catch-up: new member ${learner + 1} serves ${startToServeMs.toFixed(0)} ms after member add + start` +
        `${learnerSnapshotIndex === undefined ? '' : ` (its snapshot index: ${learnerSnapshotIndex})`}\n`,
    );
    return { keys, extraEntries: entries, loadS, learnerIndex: learner, startToServeMs, learnerRssMiB: pid === undefined ? Number.NaN : rssMiB(pid), learnerSnapshotIndex };
  } finally {
    await cluster.stop();
  }
}

async function main(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      target: { type: 'string', default: 'raftkv,etcd' },
      keys: { type: 'string', default: '1000000' },
      entries: { type: 'string', default: '100000' },
      'value-size': { type: 'string', default: '256' },
      phases: { type: 'string', default: 'restart,catchup' },
      'run-dir': { type: 'string' },
      seed: { type: 'string', default: '1' },
      'no-progress': { type: 'boolean', default: false },
    },
    strict: true,
  });
  const targets = values.target.split(',').map((s) => s.trim());
  for (const t of targets) if (t !== 'raftkv' && t !== 'etcd') throw new Error(`--target: raftkv, etcd or both comma-separated, got ${t}`);
  const phases = new Set(values.phases.split(',').map((s) => s.trim()));
  const keys = Number(values.keys);
  const entries = Number(values.entries);
  const valueSize = Number(values['value-size']);
  const seed = Number(values.seed);
  if (![keys, entries, valueSize, seed].every((n) => Number.isInteger(n) && n >= 0) || keys < 1) throw new Error('--keys, --entries, --value-size, --seed: non-negative integers (keys >= 1)');
  const runDir = values['run-dir'] ?? join(REPO_ROOT, 'runs', `recovery-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  mkdirSync(runDir, { recursive: true });
  const progress = !values['no-progress'];
  const results: { target: string; restart?: RestartResult; catchup?: CatchupResult }[] = [];
  for (const t of targets as TargetName[]) {
    const r: { target: string; restart?: RestartResult; catchup?: CatchupResult } = { target: t };
    if (phases.has('restart')) r.restart = await restartPhase(t, join(runDir, t), keys, entries, valueSize, seed, progress);
    if (phases.has('catchup')) r.catchup = await catchupPhase(t, join(runDir, t), keys, valueSize, seed, progress);
    results.push(r);
  }
  writeFileSync(join(runDir, 'recovery.json'), `${JSON.stringify({ runDir, keys, entries, valueSize, results }, null, 2)}\n`);
  const rows = results.map((r) => [
    r.target,
    String(keys),
    fmt(r.restart?.loadS ?? r.catchup?.loadS ?? Number.NaN, 1),
    r.restart === undefined ? '-' : r.restart.rssAtKeysMiB.map((x) => fmt(x, 0)).join('/'),
    r.restart === undefined ? '-' : fmt(r.restart.restartToServeMs, 0),
    r.restart === undefined ? '-' : fmt(r.restart.restartedRssMiB, 0),
    r.catchup === undefined ? '-' : fmt(r.catchup.startToServeMs, 0),
    r.catchup === undefined ? '-' : fmt(r.catchup.learnerRssMiB, 0),
  ]);
  process.stdout.write(
    `${formatTable(['target', 'keys', 'load s', 'RSS MiB at N keys', `restart->serve ms (${entries} entries)`, 'restarted RSS', 'new member catch-up ms', 'new member RSS'], rows)}\n(details in ${join(runDir, 'recovery.json')})\n`,
  );
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`recovery: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
