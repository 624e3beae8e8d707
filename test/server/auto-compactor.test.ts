// Automatic compaction (etcd's --auto-compaction-mode/--auto-compaction-retention) on a manual clock: what the
// leader proposes, when, and that followers propose nothing; the flag parsing.
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { AUTO_COMPACTION_REVISION_CHECK_MS, AutoCompactor, RevisionSamples, revisionTarget } from '../../src/server/auto-compactor.js';
import type { AutoCompactionConfig } from '../../src/server/auto-compactor.js';
import { parseRetention } from '../../src/cli/serve-config.js';
import { ManualClock } from '../../src/shared/clock.js';
import { RaftKvError } from '../../src/shared/errors.js';
import type { KvNode } from '../../src/node/api.js';
import type { Command } from '../../src/kv/types.js';

/** The node as the compactor sees it: a role, a revision that writes move, a compaction revision. */
class Store {
  role: 'leader' | 'follower' = 'leader';
  revision = 1;
  compacted = -1;
  readonly proposed: number[] = [];

  node(): KvNode {
    const status = () => ({ role: this.role, revision: this.revision, compactedRevision: this.compacted });
    const write = (c: Command) => {
      if (c.type !== 'compact') throw new Error('only compactions expected');
      if (this.role !== 'leader') return Promise.reject(new RaftKvError('NOT_LEADER', 'not the leader'));
      this.proposed.push(c.revision);
      this.compacted = c.revision;
      return Promise.resolve({ header: { memberId: 1, term: 1, index: 1, leaderId: 1 }, result: { type: 'compact' as const, revision: this.revision } });
    };
    return { status, write } as unknown as KvNode;
  }
}

async function rounds(c: AutoCompactor, clock: ManualClock, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    clock.advance(c.intervalMs);
    await c.round();
  }
}

const make = (store: Store, clock: ManualClock, config: AutoCompactionConfig): AutoCompactor =>
  new AutoCompactor({ node: store.node(), clock, logger: pino({ level: 'silent' }), config, timeoutMs: 1000 });

describe('auto-compaction', () => {
  it('revision mode keeps the last `retention` revisions, checking every 5 minutes, on the leader only', async () => {
    expect(revisionTarget(100, -1, 30)).toBe(70);
    expect(revisionTarget(100, 70, 30)).toBeUndefined();
    expect(revisionTarget(20, -1, 30)).toBeUndefined();
    const store = new Store();
    const clock = new ManualClock();
    const c = make(store, clock, { mode: 'revision', retention: 1000 });
    expect(c.intervalMs).toBe(AUTO_COMPACTION_REVISION_CHECK_MS);
    store.revision = 500;
    await rounds(c, clock, 1);
    expect(store.proposed).toEqual([]); // fewer than 1000 revisions yet
    store.revision = 2500;
    store.role = 'follower';
    await rounds(c, clock, 1);
    expect(store.proposed).toEqual([]);
    store.role = 'leader';
    await rounds(c, clock, 1);
    expect(store.proposed).toEqual([1500]);
    await rounds(c, clock, 1);
    expect(store.proposed).toEqual([1500]); // nothing new
  });

  it('periodic mode compacts to the revision of `retention` ago, sampling every retention/10', async () => {
    const samples = new RevisionSamples(1000);
    samples.add(0, 5);
    samples.add(500, 9);
    expect(samples.take(999)).toBeUndefined();
    expect(samples.take(1600)).toBe(9);
    const store = new Store();
    const clock = new ManualClock(0);
    const c = make(store, clock, { mode: 'periodic', retention: 60_000 });
    expect(c.intervalMs).toBe(6000);
    for (let i = 0; i < 25; i++) {
      store.revision += 10; // 10 revisions per 6 s
      await rounds(c, clock, 1);
    }
    // After 150 s: the newest sample at least 60 s old was taken at 90 s (revision 1 + 15 * 10 = 151).
    expect(store.proposed.at(-1)).toBe(151);
    expect(store.revision - (store.proposed.at(-1) ?? 0)).toBe(100); // 60 s of history kept
  });

  it('parses etcd\'s retention forms and refuses the rest', () => {
    expect(parseRetention('periodic', '1')).toBe(3600_000); // a bare number is hours, as in etcd
    expect(parseRetention('periodic', '30m')).toBe(1800_000);
    expect(parseRetention('periodic', '10s')).toBe(10_000);
    expect(parseRetention('periodic', '0')).toBe(0);
    expect(parseRetention('revision', '1000')).toBe(1000);
    expect(() => parseRetention('revision', '1h')).toThrow(/not a number of revisions/);
    expect(() => parseRetention('periodic', 'soon')).toThrow(/not a duration/);
  });
});
