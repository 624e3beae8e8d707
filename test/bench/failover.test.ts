import { describe, expect, it } from 'vitest';
import { measureFailover, median, type FailoverCluster } from '../../bench/failover.js';
import { TargetError, type BenchTarget, type CasResult, type GetResult, type WriteAck } from '../../bench/target.js';

/** Three fake members: killing the leader makes writes fail for `electionMs`, then a new leader (next term) serves. */
class FakeCluster implements FailoverCluster {
  leader = 0;
  term = 1;
  downUntilMs = 0; // performance.now() before which no leader exists
  readonly alive = [true, true, true];
  restarts = 0;

  constructor(private readonly electionMs: number) {}

  leaderIndex(): Promise<number | undefined> {
    return Promise.resolve(performance.now() < this.downUntilMs ? undefined : this.leader);
  }

  kill9(index: number): Promise<void> {
    this.alive[index] = false;
    if (index === this.leader) {
      this.downUntilMs = performance.now() + this.electionMs;
      this.leader = this.alive.findIndex((a, i) => a && i !== index);
      this.term++;
    }
    return Promise.resolve();
  }

  restart(index: number): Promise<void> {
    this.alive[index] = true;
    this.restarts++;
    return Promise.resolve();
  }

  makeTarget(): Promise<BenchTarget> {
    const target: BenchTarget = {
      name: 'raftkv',
      endpoints: ['a', 'b', 'c'],
      put: async (): Promise<WriteAck> => {
        await new Promise((r) => setTimeout(r, 1));
        if (performance.now() < this.downUntilMs) throw new TargetError('UNAVAILABLE', 'no leader');
        return { term: this.term, memberId: String(this.leader + 1) };
      },
      putMany(): Promise<WriteAck> {
        return Promise.reject(new Error('unused'));
      },
      get(): Promise<GetResult> {
        return Promise.reject(new Error('unused'));
      },
      compareAndSwap(): Promise<CasResult> {
        return Promise.reject(new Error('unused'));
      },
      close(): void {},
    };
    return Promise.resolve(target);
  }
}

describe('failover measurement', () => {
  it('times kill -> first write sent after the kill, sees the new term, restarts the killed member', async () => {
    const cluster = new FakeCluster(300);
    const lines: string[] = [];
    const r = await measureFailover(cluster, { repetitions: 2, concurrency: 4, requestTimeoutMs: 100, giveUpMs: 5000, seed: 1, log: (l) => lines.push(l) });
    expect(r.samples).toHaveLength(2);
    for (const s of r.samples) {
      expect(s.failoverMs).toBeGreaterThanOrEqual(300);
      expect(s.failoverMs).toBeLessThan(3000);
      expect(s.newTerm).toBe(s.oldTerm + 1);
      expect(s.failedWrites).toBeGreaterThan(0);
    }
    expect(r.samples[0]?.killedIndex).toBe(0);
    expect(cluster.restarts).toBe(2);
    expect(r.medianMs).toBe(median(r.samples.map((s) => s.failoverMs)));
    expect(lines).toHaveLength(2);
  }, 30_000);

  it('median of odd and even samples', () => {
    expect(median([5, 1, 3])).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNaN();
  });
});
