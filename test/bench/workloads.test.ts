import { describe, expect, it } from 'vitest';
import { randomSeed } from '../../bench/rng.js';
import { TargetError, type BenchTarget, type CasResult, type GetResult, type WriteAck } from '../../bench/target.js';
import { makeKey, preloadKeys, runWorkload, type RunOptions } from '../../bench/workloads.js';

const SEED = Number(process.env.SEED ?? randomSeed());

/** An in-memory target: versions per key, an UNAVAILABLE every `failEvery`-th call, one macrotask per call. */
class FakeTarget implements BenchTarget {
  readonly name = 'etcd';
  readonly endpoints = ['fake:1'];
  readonly versions = new Map<string, number>();
  calls = 0;
  failures = 0;
  puts = 0;
  gets = 0;
  casSucceeded = 0;

  constructor(private readonly failEvery = 0) {}

  private async step(): Promise<void> {
    await new Promise((r) => setImmediate(r));
    this.calls++;
    if (this.failEvery > 0 && this.calls % this.failEvery === 0) {
      this.failures++;
      throw new TargetError('UNAVAILABLE', 'injected');
    }
  }

  async put(key: Uint8Array): Promise<WriteAck> {
    await this.step();
    const k = Buffer.from(key).toString();
    this.versions.set(k, (this.versions.get(k) ?? 0) + 1);
    this.puts++;
    return { term: 1, memberId: '1' };
  }

  async putMany(kvs: readonly { readonly key: Uint8Array }[]): Promise<WriteAck> {
    for (const kv of kvs) await this.put(kv.key);
    return { term: 1, memberId: '1' };
  }

  async get(key: Uint8Array): Promise<GetResult> {
    await this.step();
    this.gets++;
    const v = this.versions.get(Buffer.from(key).toString()) ?? 0;
    return { found: v > 0, version: v };
  }

  async compareAndSwap(key: Uint8Array, expectedVersion: number): Promise<CasResult> {
    await this.step();
    const k = Buffer.from(key).toString();
    const v = this.versions.get(k) ?? 0;
    if (v !== expectedVersion) return { succeeded: false, version: v, term: 1 };
    this.versions.set(k, v + 1);
    this.casSucceeded++;
    return { succeeded: true, version: v + 1, term: 1 };
  }

  close(): void {}
}

const base: RunOptions = {
  keys: 50,
  keySize: 8,
  valueSize: 16,
  durationS: undefined,
  ops: 1000,
  warmupS: 0,
  concurrency: 8,
  seed: SEED,
  timeoutMs: 1000,
};

describe(`workload runner (seed ${SEED})`, () => {
  it('counts every operation once: successes in the histogram, failures by code', async () => {
    const t = new FakeTarget(7);
    const r = await runWorkload(t, 'put', base);
    expect(r.ops + (r.errors.UNAVAILABLE ?? 0)).toBe(1000);
    expect(r.errors.UNAVAILABLE).toBe(t.failures);
    expect(r.ops).toBe(t.puts);
    expect(r.latency.count).toBe(r.ops);
    expect(r.throughputOpsPerS).toBeGreaterThan(0);
    expect([...t.versions.keys()].every((k) => /^k\d{7}$/.test(k))).toBe(true);
  });

  it('compare-and-swap: each worker learns the current version from a failed compare', async () => {
    const t = new FakeTarget();
    const r = await runWorkload(t, 'cas', { ...base, keys: 3, ops: 600, concurrency: 4 });
    expect(r.ops).toBe(600);
    expect(r.ops - r.casConflicts).toBe(t.casSucceeded);
    const total = [...t.versions.values()].reduce((a, b) => a + b, 0);
    expect(total).toBe(t.casSucceeded);
    // With 3 keys and 4 workers, conflicts happen, but a worker never fails twice in a row on an untouched key:
    // a success rate well above zero shows the version learned from the failure branch is used.
    expect(t.casSucceeded).toBeGreaterThan(600 / 4);
  });

  it('compare-and-swap: fresh keys and a shared version cache, so conflicts come only from races', async () => {
    const t = new FakeTarget();
    t.versions.set('k0000001', 5); // a preloaded key of the same number must not matter: cas keys are distinct
    const r = await runWorkload(t, 'cas', { ...base, keys: 1000, ops: 800, concurrency: 4 });
    expect(r.ops).toBe(800);
    expect(r.casConflicts, `seed ${SEED}`).toBeLessThan(800 * 0.05);
    const casKeys = [...t.versions.keys()].filter((k) => k.startsWith('c'));
    expect(casKeys.every((k) => /^c[0-9a-f]{4}\d{7}$/.test(k))).toBe(true);
    expect(t.versions.get('k0000001')).toBe(5);
  });

  it('mix-90-10 issues about 10% writes', async () => {
    const t = new FakeTarget();
    await runWorkload(t, 'mix-90-10', { ...base, ops: 4000 });
    expect(t.puts + t.gets).toBe(4000);
    expect(t.puts / 4000, `seed ${SEED}`).toBeGreaterThan(0.07);
    expect(t.puts / 4000, `seed ${SEED}`).toBeLessThan(0.13);
  });

  it('duration mode stops on time and measures only after the warm-up', async () => {
    const t = new FakeTarget();
    const t0 = performance.now();
    const r = await runWorkload(t, 'get-serializable', { ...base, ops: undefined, durationS: 0.3, warmupS: 0.2 });
    const wallS = (performance.now() - t0) / 1000;
    expect(wallS).toBeGreaterThanOrEqual(0.5);
    expect(r.elapsedS).toBeLessThanOrEqual(0.31);
    expect(r.ops).toBeGreaterThan(0);
    expect(r.ops).toBeLessThan(t.gets); // warm-up gets were not counted
  });

  it('a bug (an error without a code) aborts the run instead of being counted', async () => {
    const t = new FakeTarget();
    t.put = () => Promise.reject(new Error('boom'));
    await expect(runWorkload(t, 'put', base)).rejects.toThrow('boom');
  });

  it('preload puts every key once, retrying failures', async () => {
    const t = new FakeTarget(5);
    await preloadKeys(t, { keys: 300, keySize: 8, valueSize: 8, concurrency: 16, timeoutMs: 100, seed: SEED });
    expect(t.versions.size).toBe(300);
    expect(t.failures).toBeGreaterThan(0);
  });

  it('makeKey pads to the key size and refuses keys that do not fit', () => {
    expect(Buffer.from(makeKey(42, 8)).toString()).toBe('k0000042');
    expect(makeKey(0, 16).length).toBe(16);
    expect(() => makeKey(100, 3)).toThrow();
  });
});
