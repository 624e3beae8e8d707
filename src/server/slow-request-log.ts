// etcd's warning for a slow read: a Range that took longer than --experimental-warning-apply-duration (etcd's
// warnApplyDuration, 100 ms by default) from the moment the member received it to its answer, the ReadIndex wait
// of a linearizable read included (as etcd's EtcdServer.Range times it). One structured warn line, in etcd's
// structured (zap) form: message "apply request took too long", prefix "read-only range ", the request and the
// response summarized as etcd prints them. (etcd's older capnslog form of the same line reads
// `read-only range request "..." with result "..." took too long (...) to execute`.)
// The slow applies of writes are warned about where they are applied (src/node/slow-ops.ts), with the same
// threshold. Time comes from the injected clock, so tests move it by hand.
import type { pino } from 'pino';
import type { ReadOptions, ReadReply } from '../node/api.js';
import type { RangeRequest } from '../kv/types.js';
import type { Clock } from '../shared/clock.js';

/** Longest key text quoted in a warning: a warning must stay one readable line whatever the key. */
const MAX_QUOTED_BYTES = 256;

function quote(bytes: Uint8Array): string {
  const shown = Buffer.from(bytes.subarray(0, MAX_QUOTED_BYTES)).toString('utf8');
  return JSON.stringify(bytes.length > MAX_QUOTED_BYTES ? `${shown}...` : shown);
}

/** A Range as etcd's RangeRequest.String() prints it (the fields that are set). */
export function describeRange(request: RangeRequest, opts: Pick<ReadOptions, 'serializable'>): string {
  const parts = [`key:${quote(request.key)}`];
  if (request.end.length > 0) parts.push(`range_end:${quote(request.end)}`);
  if (request.limit > 0) parts.push(`limit:${request.limit}`);
  if (request.revision !== undefined && request.revision > 0) parts.push(`revision:${request.revision}`);
  if (opts.serializable) parts.push('serializable:true');
  if (request.keysOnly) parts.push('keys_only:true');
  if (request.countOnly) parts.push('count_only:true');
  return parts.join(' ');
}

/** etcd's summary of a range response; size is the bytes of the keys and values returned. */
function describeResponse(reply: ReadReply): string {
  const size = reply.result.kvs.reduce((n, kv) => n + kv.key.length + kv.value.length, 0);
  return `range_response_count:${reply.result.kvs.length} size:${size}`;
}

export interface SlowRequestLogOptions {
  readonly logger: pino.Logger;
  readonly clock: Pick<Clock, 'now'>;
  /** Reads slower than this are warned about (etcd's --experimental-warning-apply-duration; SLOW_APPLY_MS by default). */
  readonly warningApplyDurationMs: number;
  /** Each warning: etcd counts slow reads in etcd_server_slow_apply_total too. */
  readonly onSlowRead?: () => void;
}

export class SlowRequestLog {
  constructor(private readonly opts: SlowRequestLogOptions) {}

  /** Times read `p` (made just now from `request`) and warns once it settles if it took too long. */
  read(request: RangeRequest, readOpts: Pick<ReadOptions, 'serializable'>, p: Promise<ReadReply>): void {
    const startedMs = this.opts.clock.now();
    void p.then(
      (reply) => this.settled(startedMs, request, readOpts, describeResponse(reply), undefined),
      (err: unknown) => this.settled(startedMs, request, readOpts, '', err instanceof Error ? err.message : String(err)),
    );
  }

  private settled(startedMs: number, request: RangeRequest, readOpts: Pick<ReadOptions, 'serializable'>, response: string, error: string | undefined): void {
    const tookMs = this.opts.clock.now() - startedMs;
    if (!(tookMs > this.opts.warningApplyDurationMs)) return;
    this.opts.onSlowRead?.();
    this.opts.logger.warn(
      {
        tookMs: Math.round(tookMs),
        expectedDurationMs: this.opts.warningApplyDurationMs,
        prefix: 'read-only range ',
        request: describeRange(request, readOpts),
        response,
        ...(error !== undefined ? { error } : {}),
      },
      'apply request took too long',
    );
  }
}
