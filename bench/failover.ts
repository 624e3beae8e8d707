// Failover time: under a steady write load, kill -9 the leader and time until the first write that was sent
// after the kill succeeds (a write sent later cannot commit without a new leader). A few repetitions; the
// killed member is restarted and the cluster allowed to settle between them.
import type { BenchTarget } from './target.js';
import { errorCode } from './target.js';
import { BenchRng } from './rng.js';
import { makeKey } from './workloads.js';

export interface FailoverCluster {
  /** 0-based index of the current leader, if one is known. */
  leaderIndex(): Promise<number | undefined>;
  kill9(index: number): Promise<void>;
  /** Restarts member `index` and waits until the whole cluster answers again. */
  restart(index: number): Promise<void>;
  /** A fresh client for all members (closed by the caller). */
  makeTarget(): Promise<BenchTarget>;
}

export interface FailoverSample {
  readonly killedIndex: number;
  readonly failoverMs: number; // kill -> first successful write sent after it
  readonly oldTerm: number; // term of the last write acknowledged before the kill
  readonly newTerm: number; // term of that first write
  readonly failedWrites: number; // writes that failed between the kill and recovery
}

export interface FailoverResult {
  readonly samples: readonly FailoverSample[];
  readonly medianMs: number;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? Number.NaN) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

export async function measureFailover(
  cluster: FailoverCluster,
  opts: { repetitions: number; concurrency: number; requestTimeoutMs: number; giveUpMs: number; seed: number; log: (line: string) => void },
): Promise<FailoverResult> {
  const samples: FailoverSample[] = [];
  for (let rep = 0; rep < opts.repetitions; rep++) {
    const target = await cluster.makeTarget();
    let stop = false;
    let killAt = Number.POSITIVE_INFINITY; // performance.now() of the kill
    let lastTermBeforeKill = 0;
    let failedWrites = 0;
    let first: { atMs: number; term: number } | undefined; // first success of a write sent after the kill
    const rng = new BenchRng(opts.seed + rep);
    const value = rng.bytes(256);
    const worker = async (w: number): Promise<void> => {
      let i = 0;
      while (!stop) {
        const sentAt = performance.now();
        try {
          const ack = await target.put(makeKey((w * 1_000_003 + i++) % 10_000, 8), value, opts.requestTimeoutMs);
          const doneAt = performance.now();
          if (sentAt > killAt) {
            if (first === undefined || doneAt < first.atMs) first = { atMs: doneAt, term: ack.term };
          } else if (doneAt < killAt) {
            lastTermBeforeKill = Math.max(lastTermBeforeKill, ack.term);
          }
        } catch (err) {
          errorCode(err); // expected failures only; a bug rethrows
          if (sentAt > killAt) failedWrites++;
          await new Promise((r) => setTimeout(r, 5));
        }
      }
    };
    const workers = Array.from({ length: opts.concurrency }, (_, w) => worker(w));
    try {
      await new Promise((r) => setTimeout(r, 1000)); // steady load first
      const leader = await cluster.leaderIndex();
      if (leader === undefined) throw new Error('failover: no leader before the kill');
      killAt = performance.now();
      await cluster.kill9(leader);
      while (first === undefined && performance.now() - killAt < opts.giveUpMs) {
        await new Promise((r) => setTimeout(r, 5));
      }
      stop = true;
      await Promise.all(workers);
      const found = first;
      if (found === undefined) throw new Error(`failover: no successful write within ${opts.giveUpMs} ms of killing member ${leader + 1}`);
      const sample = {
        killedIndex: leader,
        failoverMs: found.atMs - killAt,
        oldTerm: lastTermBeforeKill,
        newTerm: found.term,
        failedWrites,
      };
      samples.push(sample);
      opts.log(`failover ${rep + 1}/${opts.repetitions}: killed member ${leader + 1} (term ${sample.oldTerm}), first write after ${sample.failoverMs.toFixed(0)} ms (term ${sample.newTerm}, ${failedWrites} failed writes)`);
      await cluster.restart(leader);
    } finally {
      stop = true;
      await Promise.all(workers);
      target.close();
    }
    await new Promise((r) => setTimeout(r, 2000)); // let the restarted member catch up before the next kill
  }
  return { samples, medianMs: median(samples.map((s) => s.failoverMs)) };
}
