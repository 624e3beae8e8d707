// The workloads, modelled on etcd's benchmark tool (tools/benchmark: put, range, txn-put) and the numbers its
// performance doc reports: sequential puts from one client, concurrent puts, linearizable and serializable
// gets, a 90/10 read/write mix and compare-and-swap. A closed loop: `concurrency` workers each keep one
// request in flight; the first `warmupS` seconds are not measured.
import { LatencyHistogram, type LatencySummaryMs } from './histogram.js';
import { BenchRng } from './rng.js';
import { errorCode, type BenchTarget } from './target.js';

export type WorkloadKind = 'put' | 'get-linearizable' | 'get-serializable' | 'mix-90-10' | 'cas';

export interface WorkloadSpec {
  readonly name: string;
  readonly kind: WorkloadKind;
  readonly concurrency: number; // requests in flight (one per worker)
  readonly description: string;
}

export const WORKLOADS: readonly WorkloadSpec[] = [
  { name: 'put-seq', kind: 'put', concurrency: 1, description: 'sequential puts, 1 client' },
  { name: 'put-16', kind: 'put', concurrency: 16, description: 'puts, 16 in flight' },
  { name: 'put-64', kind: 'put', concurrency: 64, description: 'puts, 64 in flight' },
  { name: 'put-256', kind: 'put', concurrency: 256, description: 'puts, 256 in flight' },
  { name: 'get-linear', kind: 'get-linearizable', concurrency: 64, description: 'linearizable gets, 64 in flight' },
  { name: 'get-serial', kind: 'get-serializable', concurrency: 64, description: 'serializable gets, 64 in flight' },
  { name: 'mix-90-10', kind: 'mix-90-10', concurrency: 64, description: '90% linearizable gets, 10% puts, 64 in flight' },
  { name: 'cas', kind: 'cas', concurrency: 16, description: 'compare-and-swap on version (fresh keys, shared version cache), 16 in flight' },
];

export function findWorkload(name: string): WorkloadSpec {
  const w = WORKLOADS.find((x) => x.name === name);
  if (w === undefined) throw new Error(`unknown workload "${name}"; known: ${WORKLOADS.map((x) => x.name).join(', ')}`);
  return w;
}

export function needsPreload(kind: WorkloadKind): boolean {
  return kind === 'get-linearizable' || kind === 'get-serializable' || kind === 'mix-90-10';
}

/** Key i as `keySize` bytes: "k" then i in decimal, zero-padded (so every key has the same size). */
export function makeKey(i: number, keySize: number): Uint8Array {
  const digits = keySize - 1;
  const s = String(i);
  if (digits < s.length) throw new Error(`--key-size ${keySize} is too small for key number ${i}`);
  return Buffer.from(`k${s.padStart(digits, '0')}`);
}

/** A compare-and-swap key: "c", a 4-hex-digit run nonce, then the key number as in makeKey (keySize + 4 bytes). */
export function makeCasKey(i: number, keySize: number, nonce: string): Uint8Array {
  return Buffer.concat([Buffer.from(`c${nonce}`), makeKey(i, keySize).subarray(1)]);
}

export interface RunOptions {
  readonly keys: number; // key space: keys k0..k(N-1), picked uniformly
  readonly keySize: number;
  readonly valueSize: number;
  readonly durationS: number | undefined; // measured time (after warm-up); exclusive with `ops`
  readonly ops: number | undefined; // measured operations; exclusive with `durationS`
  readonly warmupS: number; // duration mode only
  readonly concurrency: number;
  readonly seed: number;
  readonly timeoutMs: number; // per request
  readonly onProgress?: (p: Progress) => void; // called about 5 times a second
}

export interface Progress {
  readonly fraction: number; // 0..1 of the run (warm-up included)
  readonly measuredOps: number;
  readonly errors: number;
  readonly elapsedS: number;
}

export interface RunResult {
  readonly ops: number; // successful measured operations
  readonly errors: Readonly<Record<string, number>>; // failed measured operations by code
  readonly casConflicts: number; // cas: compares that failed (not errors: the protocol working)
  readonly elapsedS: number; // measured window
  readonly throughputOpsPerS: number;
  readonly latency: LatencySummaryMs; // successful operations only
}

/** Runs one workload against a target (keys preloaded already if it reads). */
export async function runWorkload(target: BenchTarget, kind: WorkloadKind, opts: RunOptions): Promise<RunResult> {
  if ((opts.durationS === undefined) === (opts.ops === undefined)) throw new Error('give exactly one of durationS, ops');
  if (opts.concurrency < 1) throw new Error('concurrency must be >= 1');
  const histogram = new LatencyHistogram();
  const errors: Record<string, number> = {};
  let errorCount = 0;
  let casConflicts = 0;
  let started = 0; // operations started (ops mode: stop at opts.ops)
  const t0 = performance.now();
  const warmupMs = opts.durationS === undefined ? 0 : opts.warmupS * 1000;
  const windowStart = t0 + warmupMs; // ops completing before this are not measured
  const endAt = opts.durationS === undefined ? Number.POSITIVE_INFINITY : windowStart + opts.durationS * 1000;
  let lastCompletion = windowStart;

  const report = (): void => {
    const now = performance.now();
    const fraction =
      opts.ops !== undefined
        ? (histogram.count + errorCount) / opts.ops
        : Math.min(1, (now - t0) / (endAt - t0));
    opts.onProgress?.({ fraction, measuredOps: histogram.count, errors: errorCount, elapsedS: (now - t0) / 1000 });
  };
  const progressTimer = opts.onProgress === undefined ? undefined : setInterval(report, 200);

  // cas: keys of their own, absent when the run starts (a fresh run nonce in the name), and one version cache
  // shared by the workers, so a failed compare means a real race between two workers on one key.
  const casNonce = ((opts.seed ^ Date.now()) & 0xffff).toString(16).padStart(4, '0');
  const casVersion = new Map<number, number>(); // cas: the last version seen of key k (absent = 0)

  const worker = async (w: number): Promise<void> => {
    const rng = new BenchRng((opts.seed + Math.imul(w + 1, 0x9e3779b1)) >>> 0);
    const value = rng.bytes(opts.valueSize);
    for (;;) {
      const now = performance.now();
      if (now >= endAt) return;
      if (opts.ops !== undefined && started >= opts.ops) return;
      started++;
      const k = rng.int(opts.keys);
      const key = makeKey(k, opts.keySize);
      const begin = performance.now();
      try {
        switch (kind) {
          case 'put':
            await target.put(key, value, opts.timeoutMs);
            break;
          case 'get-linearizable':
            await target.get(key, false, opts.timeoutMs);
            break;
          case 'get-serializable':
            await target.get(key, true, opts.timeoutMs);
            break;
          case 'mix-90-10':
            if (rng.next() < 0.9) await target.get(key, false, opts.timeoutMs);
            else await target.put(key, value, opts.timeoutMs);
            break;
          case 'cas': {
            const r = await target.compareAndSwap(makeCasKey(k, opts.keySize, casNonce), casVersion.get(k) ?? 0, value, opts.timeoutMs);
            if (r.version > (casVersion.get(k) ?? 0)) casVersion.set(k, r.version);
            if (!r.succeeded && performance.now() >= windowStart) casConflicts++;
            break;
          }
          default:
            assertNever(kind);
        }
        const end = performance.now();
        if (end >= windowStart && end <= endAt) {
          histogram.recordUs((end - begin) * 1000);
          lastCompletion = end;
        }
      } catch (err) {
        const code = errorCode(err);
        const end = performance.now();
        if (end >= windowStart && end <= endAt) {
          errors[code] = (errors[code] ?? 0) + 1;
          errorCount++;
          lastCompletion = end;
        }
        // Do not spin on a dead cluster: a failed request waits a little before the next.
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  };

  try {
    await Promise.all(Array.from({ length: opts.concurrency }, (_, w) => worker(w)));
  } finally {
    if (progressTimer !== undefined) clearInterval(progressTimer);
  }
  report();
  const windowEnd = opts.durationS === undefined ? lastCompletion : Math.min(endAt, performance.now());
  const elapsedS = Math.max(1e-9, (windowEnd - windowStart) / 1000);
  return {
    ops: histogram.count,
    errors,
    casConflicts,
    elapsedS,
    throughputOpsPerS: histogram.count / elapsedS,
    latency: histogram.summaryMs(),
  };
}

/** Puts every key of the key space once (so gets find them), `concurrency` in flight. */
export async function preloadKeys(
  target: BenchTarget,
  opts: { keys: number; keySize: number; valueSize: number; concurrency: number; timeoutMs: number; seed: number },
  onProgress?: (done: number) => void,
): Promise<void> {
  let next = 0;
  let done = 0;
  const value = new BenchRng(opts.seed).bytes(opts.valueSize);
  const worker = async (): Promise<void> => {
    while (next < opts.keys) {
      const i = next++;
      for (let attempt = 0; ; attempt++) {
        try {
          await target.put(makeKey(i, opts.keySize), value, opts.timeoutMs);
          break;
        } catch (err) {
          const code = errorCode(err);
          if (attempt >= 20) throw new Error(`preload: put of key ${i} failed ${attempt + 1} times, last ${code}`);
          await new Promise((r) => setTimeout(r, 50 * (attempt + 1)));
        }
      }
      done++;
      if (done % 1000 === 0) onProgress?.(done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.concurrency, opts.keys) }, () => worker()));
}

export function assertNever(x: never): never {
  throw new Error(`unexpected value ${String(x)}`);
}
