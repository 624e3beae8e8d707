// etcd's automatic compaction (--auto-compaction-mode periodic|revision, --auto-compaction-retention): the leader
// proposes Compact commands through the log, like a client's; followers do nothing (a new leader takes over).
//
// - revision: every AUTO_COMPACTION_REVISION_CHECK_MS, compact to (current revision - retention) when that is
//   above what was compacted (etcd's revision compactor, which checks every 5 minutes).
// - periodic: retention is a duration. The revision is sampled every retention/10 (at most every hour, as
//   etcd's periodic compactor does for long retentions); the newest sample at least `retention` old is compacted
//   to. History younger than the retention is always kept.
//
// Every timer goes through the injected clock. A failed proposal (no leader, COMPACTED when another compaction
// got there first) is logged and the next round tries again.
import type pino from 'pino';
import type { KvNode } from '../node/api.js';
import type { CancelTimer, Clock } from '../shared/clock.js';
import { isRaftKvError } from '../shared/errors.js';

export type AutoCompactionMode = 'periodic' | 'revision';

export interface AutoCompactionConfig {
  readonly mode: AutoCompactionMode;
  /** periodic: milliseconds of history kept; revision: revisions kept. 0 turns automatic compaction off. */
  readonly retention: number;
}

/** etcd's revision compactor checks this often. */
export const AUTO_COMPACTION_REVISION_CHECK_MS = 5 * 60_000;
/** The periodic compactor samples the revision at retention/10, but at least this often (etcd: one hour). */
export const AUTO_COMPACTION_MAX_SAMPLE_MS = 60 * 60_000;
/** ... and at most this often (a retention of seconds would otherwise sample every few hundred ms). */
export const AUTO_COMPACTION_MIN_SAMPLE_MS = 1000;

/** The revision a revision-mode round compacts to, or undefined when there is nothing to compact. */
export function revisionTarget(current: number, compacted: number, retention: number): number | undefined {
  const target = current - retention;
  return target > 0 && target > compacted ? target : undefined;
}

/** Revision samples of the periodic mode, oldest first; `take` answers the compaction target for `nowMs`. */
export class RevisionSamples {
  private samples: { atMs: number; revision: number }[] = [];

  constructor(private readonly retentionMs: number) {}

  add(atMs: number, revision: number): void {
    this.samples.push({ atMs, revision });
  }

  /** The newest sample at least retentionMs old (dropping the older ones), or undefined. */
  take(nowMs: number): number | undefined {
    let chosen: number | undefined;
    while (this.samples.length > 0) {
      const s = this.samples[0];
      if (s === undefined || nowMs - s.atMs < this.retentionMs) break;
      chosen = s.revision;
      this.samples.shift();
    }
    return chosen;
  }
}

export class AutoCompactor {
  private cancel: CancelTimer | undefined;
  private readonly samples: RevisionSamples;
  private running = false; // a proposal is in flight: the next round waits for it

  constructor(
    private readonly opts: { readonly node: KvNode; readonly clock: Clock; readonly logger: pino.Logger; readonly config: AutoCompactionConfig; readonly timeoutMs: number },
  ) {
    this.samples = new RevisionSamples(opts.config.retention);
  }

  /** How often a round runs. */
  get intervalMs(): number {
    const { mode, retention } = this.opts.config;
    if (mode === 'revision') return AUTO_COMPACTION_REVISION_CHECK_MS;
    return Math.min(AUTO_COMPACTION_MAX_SAMPLE_MS, Math.max(AUTO_COMPACTION_MIN_SAMPLE_MS, Math.floor(retention / 10)));
  }

  start(): void {
    if (this.opts.config.retention === 0 || this.cancel !== undefined) return;
    this.cancel = this.opts.clock.setInterval(() => {
      void this.round();
    }, this.intervalMs);
  }

  stop(): void {
    this.cancel?.();
    this.cancel = undefined;
  }

  /** One round: sample (periodic), and on the leader propose the compaction due. Never rejects. */
  async round(): Promise<void> {
    const { node, clock, config } = this.opts;
    const s = node.status();
    const now = clock.now();
    let target: number | undefined;
    if (config.mode === 'periodic') {
      this.samples.add(now, s.revision);
      target = this.samples.take(now);
      if (target !== undefined && target <= s.compactedRevision) target = undefined;
    } else {
      target = revisionTarget(s.revision, s.compactedRevision, config.retention);
    }
    if (target === undefined || s.role !== 'leader' || this.running) return;
    this.running = true;
    try {
      await node.write({ type: 'compact', revision: target, physical: false }, { clientId: '', seq: 0, deadlineMs: now + this.opts.timeoutMs });
      this.opts.logger.info({ revision: target, mode: config.mode }, 'auto-compaction: compacted');
    } catch (err) {
      if (isRaftKvError(err)) this.opts.logger.warn({ revision: target, code: err.code, err: err.message }, 'auto-compaction: not compacted this round');
      else this.opts.logger.error({ err }, 'auto-compaction failed');
    } finally {
      this.running = false;
    }
  }
}
