// Leases over etcd's Lease service: grant one and keep it alive, with a signal when it is lost.
//
// Ids are bigints: etcd's lease ids are random positive int64 values (above 2^53, where a JS number rounds), and
// the etcd codecs (src/protocol/etcd-proto.ts) carry every int64 as a bigint, so an id goes from Grant to Put,
// KeepAlive, TimeToLive and Revoke without a conversion that could lose it. leaseIdHex/parseLeaseId give the
// lowercase hex etcdctl prints (and the concurrency package puts in its keys).
//
// Keep-alive (as etcd's clientv3): one LeaseKeepAlive stream per lease; a keep-alive is sent when TTL/3 has passed
// since the last answer, and again every KEEPALIVE_RETRY_MS while none comes; a failed stream is opened again on
// the next endpoint with backoff. The lease is lost when an answer says TTL 0 (it expired or was revoked
// elsewhere), when revoke() revokes it, or when no answer came before the lease's TTL, counted from the sending
// of the last keep-alive that was answered (no later than the member's own deadline: the member may expire it
// then). `lost` resolves once, with the reason; keep-alives stop then.
import type { ClientDuplexStream } from '@grpc/grpc-js';
import type { CancelTimer } from '../shared/clock.js';
import { RaftKvError } from '../shared/errors.js';
import { fromEtcdError } from '../protocol/etcd-errors.js';
import type { LeaseKeepAliveRequest, LeaseKeepAliveResponse, MessageInit } from '../protocol/etcd-proto.js';
import type { EtcdChannel } from './etcd-channel.js';

/** A keep-alive with no answer is sent again after this long (clientv3's send loop ticks every 500 ms). */
const KEEPALIVE_RETRY_MS = 500;
const INT64_MAX = (1n << 63n) - 1n;

export type LeaseLostReason =
  | 'expired' // a keep-alive answered TTL 0: the lease expired or was revoked by someone else
  | 'revoked' // revoke() revoked it
  | 'unreachable'; // no keep-alive was answered before the TTL ran out

export interface LeaseLost {
  readonly reason: LeaseLostReason;
  readonly message: string;
}

export interface LeaseTimeToLive {
  readonly id: bigint;
  readonly ttlSeconds: number; // remaining; -1 when the lease does not exist (expired or revoked)
  readonly grantedTtlSeconds: number;
  readonly keys: readonly Buffer[]; // with { keys: true }
}

/** A lease id as etcdctl prints it: lowercase hex, no leading zeros (Go's %x). */
export function leaseIdHex(id: bigint): string {
  return id.toString(16);
}

/** A lease id as etcdctl takes it (hex, as it prints them), refused unless a positive int64. */
export function parseLeaseId(text: string): bigint {
  if (!/^(0x)?[0-9a-fA-F]{1,16}$/.test(text)) throw new RaftKvError('INVALID_ARGUMENT', `lease id ${JSON.stringify(text)} is not a hexadecimal lease id (as lease grant prints it)`);
  const id = BigInt(text.startsWith('0x') ? text : `0x${text}`);
  if (id <= 0n || id > INT64_MAX) throw new RaftKvError('INVALID_ARGUMENT', `lease id ${JSON.stringify(text)} is out of range (1..7fffffffffffffff)`);
  return id;
}

function checkTtl(ttlSeconds: number): number {
  if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds < 1) throw new RaftKvError('INVALID_ARGUMENT', `lease: TTL must be a whole number of seconds >= 1, got ${ttlSeconds}`);
  return ttlSeconds;
}

/** Grants a lease (etcd may raise the TTL to its minimum) and, unless keepAlive is false, keeps it alive. */
export async function grantLease(channel: EtcdChannel, ttlSeconds: number, opts: { readonly keepAlive?: boolean; readonly id?: bigint } = {}): Promise<Lease> {
  const r = await channel.unary('Lease', 'LeaseGrant', { TTL: BigInt(checkTtl(ttlSeconds)), ID: opts.id ?? 0n }, 'write');
  if (r.error !== '') throw new RaftKvError('FAILED_PRECONDITION', `lease grant: ${r.error}`);
  const lease = new Lease(channel, r.ID, Number(r.TTL));
  if (opts.keepAlive ?? true) lease.startKeepAlive();
  return lease;
}

export async function revokeLease(channel: EtcdChannel, id: bigint): Promise<void> {
  await channel.unary('Lease', 'LeaseRevoke', { ID: id }, 'write');
}

export async function leaseTimeToLive(channel: EtcdChannel, id: bigint, opts: { readonly keys?: boolean } = {}): Promise<LeaseTimeToLive> {
  const r = await channel.unary('Lease', 'LeaseTimeToLive', { ID: id, keys: opts.keys ?? false }, 'read');
  return { id: r.ID, ttlSeconds: Number(r.TTL), grantedTtlSeconds: Number(r.grantedTTL), keys: r.keys };
}

/** Every lease the cluster holds. */
export async function listLeases(channel: EtcdChannel): Promise<bigint[]> {
  const r = await channel.unary('Lease', 'LeaseLeases', {}, 'read');
  return r.leases.map((l) => l.ID);
}

/** One keep-alive on a stream of its own: the TTL the member answered (0: the lease is gone). */
export async function keepAliveOnce(channel: EtcdChannel, id: bigint): Promise<number> {
  const deadline = channel.clock.now() + channel.timeoutMs;
  for (let failures = 0; ; ) {
    const { endpoint, call } = channel.stream('Lease', 'LeaseKeepAlive');
    try {
      return await new Promise<number>((resolve, reject) => {
        const cancel = channel.clock.setTimeout(() => reject(new RaftKvError('DEADLINE_EXCEEDED', `lease keep-alive: ${endpoint} did not answer in ${channel.attemptTimeoutMs} ms`)), channel.attemptTimeoutMs);
        call.on('data', (r: LeaseKeepAliveResponse) => {
          cancel();
          resolve(Number(r.TTL));
        });
        call.on('error', (err: unknown) => {
          cancel();
          reject(fromEtcdError(err));
        });
        call.on('end', () => {
          cancel();
          reject(new RaftKvError('UNAVAILABLE', `lease keep-alive: ${endpoint} ended the stream`));
        });
        call.write({ ID: id });
      });
    } catch (err) {
      const e = fromEtcdError(err);
      failures++;
      if (!(e.code === 'UNAVAILABLE' || e.code === 'DEADLINE_EXCEEDED') || channel.clock.now() + channel.backoffMs(failures) >= deadline) throw e;
      channel.failover(endpoint);
      await channel.sleep(channel.backoffMs(failures));
    } finally {
      call.end();
      call.cancel();
    }
  }
}

type KeepAliveCall = ClientDuplexStream<MessageInit<LeaseKeepAliveRequest>, LeaseKeepAliveResponse>;

export class Lease {
  /** Resolves once, when the lease is lost (see the top of this file); never rejects. */
  readonly lost: Promise<LeaseLost>;
  private resolveLost!: (l: LeaseLost) => void;
  private lostWith: LeaseLost | undefined;
  private ttlSeconds: number; // the TTL the member last answered
  private deadlineMs: number; // the lease is lost (for us) at this time without another answer
  private nextSendMs = 0; // when the next keep-alive is due
  private readonly sentAt: number[] = []; // send times of unanswered keep-alives on the current stream, oldest first
  private call: KeepAliveCall | undefined;
  private callEndpoint = '';
  private failures = 0; // stream failures in a row (the backoff)
  private reconnectAtMs = 0; // no stream before this time (backoff)
  private cancelTick: CancelTimer | undefined;
  private keepingAlive = false;
  /** Keep-alives answered (for tests and the CLI's keep-alive output). */
  answered = 0;
  private readonly answerListeners: ((ttlSeconds: number) => void)[] = [];

  constructor(
    private readonly channel: EtcdChannel,
    readonly id: bigint,
    readonly grantedTtlSeconds: number,
  ) {
    this.ttlSeconds = grantedTtlSeconds;
    this.deadlineMs = channel.clock.now() + grantedTtlSeconds * 1000;
    this.lost = new Promise((resolve) => {
      this.resolveLost = resolve;
    });
  }

  /** The id as etcdctl prints it. */
  get hex(): string {
    return leaseIdHex(this.id);
  }

  get isLost(): boolean {
    return this.lostWith !== undefined;
  }

  /** Calls `fn` when the lease is lost (at once if it already is). */
  onLost(fn: (l: LeaseLost) => void): void {
    void this.lost.then(fn);
  }

  /** Calls `fn` with the TTL of every keep-alive answer. */
  onKeepAlive(fn: (ttlSeconds: number) => void): void {
    this.answerListeners.push(fn);
  }

  /** Starts the automatic keep-alives (grantLease does, unless told not to). */
  startKeepAlive(): void {
    if (this.keepingAlive || this.lostWith !== undefined) return;
    this.keepingAlive = true;
    this.nextSendMs = this.channel.clock.now();
    const tickMs = Math.max(50, Math.min(KEEPALIVE_RETRY_MS, (this.ttlSeconds * 1000) / 3));
    this.cancelTick = this.channel.clock.setInterval(() => this.tick(), tickMs);
    this.tick();
  }

  /** Stops the keep-alives without revoking: the lease expires after its TTL (its keys are deleted then). */
  stopKeepAlive(): void {
    this.keepingAlive = false;
    this.cancelTick?.();
    this.cancelTick = undefined;
    this.closeStream();
  }

  /** Revokes the lease (its keys are deleted at once) and signals `lost` with 'revoked'. */
  async revoke(opts: { readonly timeoutMs?: number } = {}): Promise<void> {
    this.stopKeepAlive();
    try {
      await this.channel.unary('Lease', 'LeaseRevoke', { ID: this.id }, 'write', opts);
    } catch (err) {
      // A lease already gone (expired, or a retried revoke that was applied) is what revoke wants.
      if (!(err instanceof RaftKvError && err.code === 'LEASE_NOT_FOUND')) throw err;
    }
    this.markLost({ reason: 'revoked', message: `lease ${this.hex} revoked` });
  }

  timeToLive(opts: { readonly keys?: boolean } = {}): Promise<LeaseTimeToLive> {
    return leaseTimeToLive(this.channel, this.id, opts);
  }

  private markLost(l: LeaseLost): void {
    if (this.lostWith !== undefined) return;
    this.lostWith = l;
    this.stopKeepAlive();
    this.resolveLost(l);
  }

  private closeStream(): void {
    const call = this.call;
    this.call = undefined;
    this.sentAt.length = 0;
    if (call !== undefined) {
      call.end();
      call.cancel();
    }
  }

  private tick(): void {
    if (!this.keepingAlive) return;
    const now = this.channel.clock.now();
    if (now >= this.deadlineMs) {
      this.markLost({ reason: 'unreachable', message: `lease ${this.hex}: no keep-alive answered within its TTL of ${this.ttlSeconds} s` });
      return;
    }
    const oldest = this.sentAt[0];
    if (this.call !== undefined && oldest !== undefined && now - oldest > this.channel.attemptTimeoutMs) this.failStream(this.call); // a member that stopped answering
    if (now < this.nextSendMs) return;
    if (this.call === undefined) {
      if (now < this.reconnectAtMs) return;
      this.openStream();
    }
    this.call?.write({ ID: this.id });
    this.sentAt.push(now);
    this.nextSendMs = now + KEEPALIVE_RETRY_MS;
  }

  private openStream(): void {
    let opened;
    try {
      opened = this.channel.stream('Lease', 'LeaseKeepAlive');
    } catch (err) {
      this.markLost({ reason: 'unreachable', message: `lease ${this.hex}: ${fromEtcdError(err).message}` });
      return;
    }
    const { endpoint, call } = opened;
    this.call = call;
    this.callEndpoint = endpoint;
    call.on('data', (r: LeaseKeepAliveResponse) => {
      if (this.call !== call) return;
      const sent = this.sentAt.shift() ?? this.channel.clock.now();
      const ttl = Number(r.TTL);
      if (ttl <= 0) {
        this.markLost({ reason: 'expired', message: `lease ${this.hex} expired or was revoked (a keep-alive answered TTL ${ttl})` });
        return;
      }
      this.failures = 0;
      this.answered++;
      this.ttlSeconds = ttl;
      this.deadlineMs = sent + ttl * 1000;
      this.nextSendMs = this.channel.clock.now() + (ttl * 1000) / 3;
      for (const fn of this.answerListeners) fn(ttl);
    });
    call.on('error', () => this.failStream(call));
    call.on('end', () => this.failStream(call));
  }

  /** The keep-alive stream failed (or its member stopped answering): the next one goes to the next endpoint after a backoff. */
  private failStream(call: KeepAliveCall): void {
    if (this.call !== call) return;
    this.closeStream();
    this.failures++;
    this.channel.failover(this.callEndpoint);
    this.reconnectAtMs = this.channel.clock.now() + this.channel.backoffMs(this.failures);
    this.nextSendMs = 0;
  }
}
