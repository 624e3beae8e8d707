// The NOSPACE alarm's trigger (etcd's quotaAlarmer, api/v3rpc/quota.go, and its backend quota): this member raises
// NOSPACE for itself through the log when
// - a write that would grow the store arrives and its LevelDB store plus the write's cost reaches
//   --quota-backend-bytes (the write is refused at once with etcd's ErrNoSpace, RESOURCE_EXHAUSTED
//   `etcdserver: mvcc: database space exceeded`), or
// - a periodic check (every SPACE_CHECK_INTERVAL_MS on the injected clock) finds it over the quota, or its disk
//   truly full (the node parks on DISK_FULL: src/node/disk-full.ts).
// Once the alarm is applied, every member's state machine refuses what would grow the store (src/kv/alarms.ts),
// whoever raised it; reads, deletes, compaction and alarm requests go on. The alarm stays until an operator
// disarms it (etcdctl alarm disarm) after freeing space: compact, then defragment each member.
//
// Raising it: through the node's write path; a follower forwards it to the leader (WriteForwarder), and a member
// whose own disk is full (its writes refused with DISK_FULL) forwards it too, without waiting to apply it itself.
import type pino from 'pino';
import type { KvNode } from '../node/api.js';
import type { Clock, CancelTimer } from '../shared/clock.js';
import { NO_SPACE_MESSAGE, quotaCost } from '../kv/alarms.js';
import type { AlarmOp, Command } from '../kv/types.js';
import { RaftKvError, isRaftKvError } from '../shared/errors.js';

/** etcd's DefaultQuotaBytes (--quota-backend-bytes 0). */
export const DEFAULT_QUOTA_BACKEND_BYTES = 2 * 1024 * 1024 * 1024;

/** How often the member checks its size and its disk between writes (the node refreshes its size every 5 s). */
export const SPACE_CHECK_INTERVAL_MS = 1000;

/** etcd's --quota-backend-bytes: 0 is the default, a negative value no quota. */
export function effectiveQuotaBytes(flag: number | undefined): number {
  if (flag === undefined || flag === 0) return DEFAULT_QUOTA_BACKEND_BYTES;
  return flag < 0 ? Number.POSITIVE_INFINITY : flag;
}

export interface SpaceAlarmOptions {
  readonly node: Pick<KvNode, 'id' | 'status' | 'alarms'>;
  /** Proposes the alarm command: on a follower, through the leader; resolves once the leader applied it. */
  readonly raise: (op: AlarmOp, deadlineMs: number) => Promise<void>;
  readonly quotaBytes: number; // effectiveQuotaBytes()
  readonly clock: Clock;
  readonly logger: pino.Logger;
  readonly timeoutMs: number;
}

export class SpaceAlarm {
  private cancel: CancelTimer | undefined;
  private raising: Promise<void> | undefined; // one alarm proposal at a time

  constructor(private readonly opts: SpaceAlarmOptions) {}

  private raisedBySelf(): boolean {
    const self = this.opts.node.id;
    return this.opts.node.alarms().some((a) => a.memberId === self && a.alarm === 'NOSPACE');
  }

  private overQuota(extraBytes: number): boolean {
    const s = this.opts.node.status();
    return (s.backendSizeBytes ?? s.dataSizeBytes) + extraBytes >= this.opts.quotaBytes;
  }

  /**
   * Before a write is proposed (both protocols): refuses one that would grow the store past the quota, and raises
   * the alarm (etcd's quotaAlarmer.check). Writes that cost nothing (deletes, compaction, alarms) always pass.
   */
  check(cmd: Command): void {
    const cost = quotaCost(cmd);
    if (cost === 0 || !this.overQuota(cost)) return;
    this.raiseSoon('over --quota-backend-bytes');
    throw new RaftKvError('NO_SPACE', NO_SPACE_MESSAGE);
  }

  start(): void {
    const round = (): void => {
      const s = this.opts.node.status();
      if (s.diskFull === true) this.raiseSoon('the disk is full');
      else if (this.overQuota(0)) this.raiseSoon('over --quota-backend-bytes');
      this.cancel = this.opts.clock.setTimeout(round, SPACE_CHECK_INTERVAL_MS);
    };
    this.cancel = this.opts.clock.setTimeout(round, SPACE_CHECK_INTERVAL_MS);
  }

  stop(): void {
    this.cancel?.();
    this.cancel = undefined;
  }

  /** Proposes NOSPACE for this member unless it is raised already or being raised. Never rejects. */
  private raiseSoon(reason: string): void {
    if (this.raising !== undefined) return;
    let already: boolean;
    try {
      already = this.raisedBySelf();
    } catch {
      return; // not started yet: the next round tries again
    }
    if (already) return;
    const s = this.opts.node.status();
    const fields = { reason, backendSizeBytes: s.backendSizeBytes, quotaBytes: this.opts.quotaBytes };
    const op: AlarmOp = { type: 'alarm', action: 'activate', memberId: this.opts.node.id, alarm: 'NOSPACE' };
    this.raising = this.opts
      .raise(op, this.opts.clock.now() + this.opts.timeoutMs)
      .then(
        () => this.opts.logger.warn(fields, 'alarm raised: NOSPACE (writes that grow the store are refused until it is disarmed)'),
        (err: unknown) => {
          if (isRaftKvError(err)) this.opts.logger.warn({ ...fields, code: err.code, err: err.message }, 'could not raise the NOSPACE alarm yet; retrying');
          else this.opts.logger.error({ ...fields, err }, 'raising the NOSPACE alarm failed');
        },
      )
      .finally(() => {
        this.raising = undefined;
      });
  }
}
