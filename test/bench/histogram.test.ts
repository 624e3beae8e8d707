import { describe, expect, it } from 'vitest';
import { exactPercentile, LatencyHistogram } from '../../bench/histogram.js';
import { BenchRng, randomSeed } from '../../bench/rng.js';

const SEED = Number(process.env.SEED ?? randomSeed());

describe('LatencyHistogram', () => {
  it(`matches exact percentiles within 0.1% on skewed random latencies (seed ${SEED})`, () => {
    const rng = new BenchRng(SEED);
    const h = new LatencyHistogram();
    const values: number[] = [];
    for (let i = 0; i < 50_000; i++) {
      // log-uniform from 1 us to ~10 s: exercises exact and log buckets
      const v = Math.floor(Math.exp(rng.next() * Math.log(10_000_000)));
      values.push(v);
      h.recordUs(v);
    }
    values.sort((a, b) => a - b);
    for (const p of [1, 10, 50, 90, 99, 99.9, 99.99, 100]) {
      const exact = exactPercentile(values, p);
      const got = h.percentileUs(p);
      expect(got, `p${p} seed ${SEED}`).toBeGreaterThanOrEqual(exact);
      expect(got, `p${p} seed ${SEED}`).toBeLessThanOrEqual(exact + Math.max(1, exact / 1024));
    }
    const s = h.summaryMs();
    expect(s.count).toBe(50_000);
    expect(s.maxMs).toBe((values[values.length - 1] ?? 0) / 1000);
    expect(s.minMs).toBe((values[0] ?? 0) / 1000);
    expect(s.meanMs).toBeCloseTo(values.reduce((a, b) => a + b, 0) / values.length / 1000, 6);
  });

  it('is exact below 1024 us and handles powers of two at bucket edges', () => {
    const h = new LatencyHistogram();
    for (const v of [0, 1, 1023, 1024, 2047, 2048, 4096, 2 ** 30]) h.recordUs(v);
    expect(h.percentileUs(100 / 8)).toBe(0);
    expect(h.percentileUs(200 / 8)).toBe(1);
    expect(h.percentileUs(300 / 8)).toBe(1023);
    expect(h.percentileUs(400 / 8)).toBe(1024);
    expect(h.percentileUs(500 / 8)).toBe(2047);
    expect(h.percentileUs(600 / 8)).toBe(2049); // bucket [2048, 2050) at 2 us resolution
    expect(h.percentileUs(700 / 8)).toBe(4099);
    expect(h.percentileUs(100)).toBe(2 ** 30);
  });

  it('merges: the merged histogram answers like one that saw every value', () => {
    const a = new LatencyHistogram();
    const b = new LatencyHistogram();
    const all = new LatencyHistogram();
    for (let i = 0; i < 1000; i++) {
      const v = (i * 7919) % 100_000;
      (i % 2 === 0 ? a : b).recordUs(v);
      all.recordUs(v);
    }
    a.merge(b);
    for (const p of [50, 90, 99, 100]) expect(a.percentileUs(p)).toBe(all.percentileUs(p));
    expect(a.count).toBe(1000);
  });

  it('is empty-safe and rejects bad input', () => {
    const h = new LatencyHistogram();
    expect(h.percentileUs(99)).toBe(0);
    expect(h.summaryMs().count).toBe(0);
    expect(() => h.recordUs(-1)).toThrow();
    expect(() => h.recordUs(Number.NaN)).toThrow();
    expect(() => h.percentileUs(0)).toThrow();
    expect(() => new LatencyHistogram(0)).toThrow();
  });
});
