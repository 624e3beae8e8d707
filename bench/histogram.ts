// A latency histogram with HdrHistogram-style log-linear buckets: exact below 2^subBucketBits microseconds,
// then 2^subBucketBits sub-buckets per power of two, so every reported value is within 1/2^subBucketBits
// (0.1% at the default 10 bits) of the true one. Fixed memory, O(1) record, no dependency.

const MAX_EXPONENT = 40; // values up to 2^(40+10) us: far beyond any latency we will see

export interface LatencySummaryMs {
  readonly count: number;
  readonly meanMs: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly maxMs: number;
  readonly minMs: number;
}

export class LatencyHistogram {
  private readonly subBucketBits: number; // precision: 2^bits buckets per power of two
  private readonly subBucketCount: number; // 2^subBucketBits
  private readonly counts: Float64Array; // counts[bucketIndex(v)] = values recorded in that bucket
  private total = 0; // number of recorded values, = sum(counts)
  private sumUs = 0; // exact sum of recorded values (for the mean)
  private minUs = Number.POSITIVE_INFINITY; // exact smallest value recorded
  private maxUs = 0; // exact largest value recorded

  constructor(subBucketBits = 10) {
    if (!Number.isInteger(subBucketBits) || subBucketBits < 1 || subBucketBits > 16) {
      throw new Error(`subBucketBits must be an integer in [1, 16], got ${subBucketBits}`);
    }
    this.subBucketBits = subBucketBits;
    this.subBucketCount = 2 ** subBucketBits;
    this.counts = new Float64Array(this.subBucketCount * (MAX_EXPONENT + 2));
  }

  get count(): number {
    return this.total;
  }

  /** Records one value in microseconds (rounded down to an integer; negative values are a bug). */
  recordUs(valueUs: number): void {
    if (!(valueUs >= 0) || !Number.isFinite(valueUs)) throw new Error(`bad latency value ${valueUs}`);
    const v = Math.floor(valueUs);
    const index = this.bucketIndex(v);
    if (index >= this.counts.length) throw new Error(`latency ${v} us is out of the histogram's range`);
    this.counts[index] = (this.counts[index] ?? 0) + 1;
    this.total++;
    this.sumUs += v;
    if (v < this.minUs) this.minUs = v;
    if (v > this.maxUs) this.maxUs = v;
  }

  merge(other: LatencyHistogram): void {
    if (other.subBucketBits !== this.subBucketBits) throw new Error('cannot merge histograms of different precision');
    for (let i = 0; i < other.counts.length; i++) {
      const c = other.counts[i] ?? 0;
      if (c > 0) this.counts[i] = (this.counts[i] ?? 0) + c;
    }
    this.total += other.total;
    this.sumUs += other.sumUs;
    this.minUs = Math.min(this.minUs, other.minUs);
    this.maxUs = Math.max(this.maxUs, other.maxUs);
  }

  /**
   * The value at percentile `p` (0 < p <= 100) in microseconds: the highest value equivalent to the bucket
   * holding the ceil(p% * count)-th smallest value, capped by the exact maximum. 0 when empty.
   */
  percentileUs(p: number): number {
    if (!(p > 0 && p <= 100)) throw new Error(`percentile must be in (0, 100], got ${p}`);
    if (this.total === 0) return 0;
    const rank = Math.max(1, Math.ceil((p / 100) * this.total));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i] ?? 0;
      if (seen >= rank) return Math.min(this.highestEquivalentUs(i), this.maxUs);
    }
    return this.maxUs;
  }

  summaryMs(): LatencySummaryMs {
    const ms = (us: number): number => us / 1000;
    return {
      count: this.total,
      meanMs: this.total === 0 ? 0 : ms(this.sumUs / this.total),
      p50Ms: ms(this.percentileUs(50)),
      p90Ms: ms(this.percentileUs(90)),
      p99Ms: ms(this.percentileUs(99)),
      p999Ms: ms(this.percentileUs(99.9)),
      maxMs: ms(this.maxUs),
      minMs: this.total === 0 ? 0 : ms(this.minUs),
    };
  }

  private bucketIndex(v: number): number {
    if (v < this.subBucketCount) return v;
    // v in [2^(b+e), 2^(b+e+1)): keep its top b+1 bits.
    const e = Math.floor(Math.log2(v)) - this.subBucketBits; // >= 0
    let exponent = e;
    // Math.log2 may be off by one near powers of two for large v: correct it.
    while (exponent > 0 && v < this.subBucketCount * 2 ** exponent) exponent--;
    while (v >= this.subBucketCount * 2 ** (exponent + 1)) exponent++;
    const sub = Math.floor(v / 2 ** exponent); // in [subBucketCount, 2 * subBucketCount)
    return this.subBucketCount + exponent * this.subBucketCount + (sub - this.subBucketCount);
  }

  private highestEquivalentUs(index: number): number {
    if (index < this.subBucketCount) return index;
    const exponent = Math.floor((index - this.subBucketCount) / this.subBucketCount);
    const sub = ((index - this.subBucketCount) % this.subBucketCount) + this.subBucketCount;
    return (sub + 1) * 2 ** exponent - 1;
  }
}

/** Exact percentile of a sorted array (nearest-rank), for tests and small samples. */
export function exactPercentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  const v = sorted[rank - 1];
  if (v === undefined) throw new Error('rank out of range');
  return v;
}
