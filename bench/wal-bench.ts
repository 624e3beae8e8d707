// WAL benchmark: appends/second with group commit (64 concurrent appenders of 256-byte entries, each awaiting
// sync()) against the raw write+fdatasync rate of the same disk in the same run; recovery time of a
// 100,000-entry log.
// Run: npm run build; node dist/bench/wal-bench.js [--dir <dir on the disk to measure>] [--seconds 2] [--rounds 3]
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { Entry } from '../src/raft/types.js';
import { nodeFs } from '../src/storage/fs-like.js';
import type { FsLike } from '../src/storage/fs-like.js';
import { WalStorage } from '../src/storage/wal-storage.js';

const ENTRY_BYTES = 256;

/** The real file system, counting fdatasyncs. */
function countingFs(): { fs: FsLike; datasyncs: () => number } {
  let n = 0;
  const fs: FsLike = {
    ...nodeFs,
    async open(p, flags) {
      const h = await nodeFs.open(p, flags);
      return {
        ...h,
        datasync: async () => {
          await h.datasync();
          n++;
        },
      };
    },
  };
  return { fs, datasyncs: () => n };
}

function payload(i: number): Uint8Array {
  const d = new Uint8Array(ENTRY_BYTES);
  d.fill(i & 0xff);
  return d;
}

/** Raw disk: 256-byte appends, each followed by fdatasync, for `seconds`. */
async function rawFdatasync(dir: string, seconds: number): Promise<{ opsPerSec: number; avgMs: number }> {
  const file = path.join(dir, 'raw.bin');
  const h = await fs.promises.open(file, 'w');
  const buf = Buffer.alloc(ENTRY_BYTES, 7);
  let ops = 0;
  let pos = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  try {
    while (performance.now() < end) {
      await h.write(buf, 0, buf.length, pos);
      pos += buf.length;
      await h.datasync();
      ops++;
    }
  } finally {
    await h.close();
    fs.rmSync(file);
  }
  const elapsedMs = performance.now() - start;
  return { opsPerSec: (ops / elapsedMs) * 1000, avgMs: elapsedMs / ops };
}

/** `appenders` concurrent loops, each: append one entry, await sync(); for `seconds`. */
async function walGroupCommit(
  dir: string,
  appenders: number,
  seconds: number,
): Promise<{ appendsPerSec: number; datasyncsPerSec: number; entriesPerDatasync: number; p50Ms: number; p99Ms: number }> {
  const counting = countingFs();
  const w = await WalStorage.bootstrap(dir, { voters: [1], learners: [] }, { fs: counting.fs });
  const latenciesMs: number[] = [];
  let appended = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  const loop = async (): Promise<void> => {
    while (performance.now() < end) {
      const index = w.lastIndex() + 1;
      const e: Entry = { index, term: 1, type: 'normal', data: payload(index) };
      const t0 = performance.now();
      w.append([e]);
      await w.sync();
      latenciesMs.push(performance.now() - t0);
      appended++;
    }
  };
  const syncsBefore = counting.datasyncs();
  await Promise.all(Array.from({ length: appenders }, loop));
  const elapsedMs = performance.now() - start;
  const datasyncs = counting.datasyncs() - syncsBefore;
  await w.close();
  latenciesMs.sort((a, b) => a - b);
  const pct = (p: number): number => latenciesMs[Math.min(latenciesMs.length - 1, Math.floor(p * latenciesMs.length))] ?? 0;
  return {
    appendsPerSec: (appended / elapsedMs) * 1000,
    datasyncsPerSec: (datasyncs / elapsedMs) * 1000,
    entriesPerDatasync: appended / Math.max(1, datasyncs),
    p50Ms: pct(0.5),
    p99Ms: pct(0.99),
  };
}

/** Writes a log of `n` entries (synced every 1000), then times open() (recovery) `runs` times. */
async function recovery(
  dir: string,
  n: number,
  runs: number,
): Promise<{ bytes: number; segments: number; ms: number[]; cpuMs: number[] }> {
  const w = await WalStorage.bootstrap(dir, { voters: [1], learners: [] }, { segmentSizeBytes: 8 * 1024 * 1024 });
  for (let i = 1; i <= n; i++) {
    w.append([{ index: i, term: 1, type: 'normal', data: payload(i) }]);
    if (i % 1000 === 0) {
      w.setHardState({ term: 1, vote: 1, commit: i });
      await w.sync();
    }
  }
  const { bytes, segments } = w.stats();
  await w.close();
  const ms: number[] = [];
  const cpuMs: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    const again = await WalStorage.open(dir);
    ms.push(performance.now() - t0);
    const cpu = process.cpuUsage(cpu0);
    cpuMs.push((cpu.user + cpu.system) / 1000);
    if (again.lastIndex() !== n) throw new Error(`recovered ${again.lastIndex()} entries, wrote ${n}`);
    await again.close();
  }
  return { bytes, segments, ms, cpuMs };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      dir: { type: 'string' },
      seconds: { type: 'string', default: '2' },
      rounds: { type: 'string', default: '3' },
      entries: { type: 'string', default: '100000' },
    },
  });
  const base = fs.mkdtempSync(path.join(values.dir ?? os.tmpdir(), 'raftkv-wal-bench-'));
  const seconds = Number(values.seconds);
  const n = Number(values.entries);
  const rounds = Number(values.rounds);
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
  try {
    // Rounds interleave the raw and WAL measurements: the disk is shared and its speed drifts.
    const raw: number[] = [];
    const wal = new Map<number, Awaited<ReturnType<typeof walGroupCommit>>[]>([[1, []], [64, []]]);
    for (let round = 0; round < rounds; round++) {
      const r = await rawFdatasync(base, seconds);
      raw.push(r.opsPerSec);
      console.log(`round ${round + 1}: raw write+fdatasync (${ENTRY_BYTES} B): ${r.opsPerSec.toFixed(0)} ops/s (${r.avgMs.toFixed(3)} ms each)`);
      for (const [appenders, results] of wal) {
        const dir = path.join(base, `wal-${appenders}`);
        const w = await walGroupCommit(dir, appenders, seconds);
        results.push(w);
        console.log(
          `round ${round + 1}: wal, ${appenders} concurrent appenders: ${w.appendsPerSec.toFixed(0)} appends/s durable, ` +
            `${w.datasyncsPerSec.toFixed(0)} fdatasync/s, ${w.entriesPerDatasync.toFixed(1)} entries per fdatasync, ` +
            `latency p50 ${w.p50Ms.toFixed(2)} ms p99 ${w.p99Ms.toFixed(2)} ms`,
        );
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
    const rawMedian = median(raw);
    console.log(`median raw write+fdatasync: ${rawMedian.toFixed(0)} ops/s`);
    for (const [appenders, results] of wal) {
      const appends = median(results.map((r) => r.appendsPerSec));
      console.log(
        `median wal, ${appenders} concurrent appenders: ${appends.toFixed(0)} appends/s durable ` +
          `(${(appends / rawMedian).toFixed(1)}x raw fdatasync), ${median(results.map((r) => r.entriesPerDatasync)).toFixed(1)} ` +
          `entries per fdatasync, p50 ${median(results.map((r) => r.p50Ms)).toFixed(2)} ms, p99 ${median(results.map((r) => r.p99Ms)).toFixed(2)} ms`,
      );
    }
    const rec = await recovery(path.join(base, 'recovery'), n, 3);
    console.log(
      `recovery of ${n} entries (${(rec.bytes / 1024 / 1024).toFixed(1)} MiB, ${rec.segments} segments): ` +
        `median ${median(rec.ms).toFixed(0)} ms wall, ${median(rec.cpuMs).toFixed(0)} ms CPU ` +
        `(runs: ${rec.ms.map((m) => m.toFixed(0)).join(', ')} ms)`,
    );
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
