// The connection the coordination half of the client (watch, lease, lock, election) speaks etcd's v3 API over:
// an endpoint list, one gRPC channel per endpoint (a KvClient's own when one is given, so raftkv's KV and etcd's
// Watch/Lease/KV services share one connection per member), etcd's `hasleader: true` metadata on every call (as
// etcdctl sends it: a member without a leader refuses at once instead of serving stale watches), retries with
// backoff and jitter across endpoints, and etcd's errors as RaftKvErrors (src/protocol/etcd-errors.ts).
import { Client, Metadata } from '@grpc/grpc-js';
import type { ChannelCredentials, ClientDuplexStream } from '@grpc/grpc-js';
import type { Clock } from '../shared/clock.js';
import { MAX_TIMER_DELAY_MS, systemClock } from '../shared/clock.js';
import { RaftKvError } from '../shared/errors.js';
import { ETCD_NO_LEADER, ETCD_NOT_LEADER, fromEtcdError } from '../protocol/etcd-errors.js';
import { etcdBidiStream, etcdUnary } from '../protocol/etcd-proto.js';
import type { EtcdMethodName, EtcdRequest, EtcdResponse, EtcdServiceName, EtcdUnaryMethod, MessageInit } from '../protocol/etcd-proto.js';
import type { KvClient } from './kv-client.js';
import { resolveDial } from './dial-options.js';
import type { DialTlsConfig, DialUser, ResolvedDial } from './dial-options.js';
import { MAX_REAUTHENTICATIONS, reauthenticationPauseMs, refusedForToken } from './auth-token.js';

export interface EtcdChannelOptions {
  /** host:port of members' client ports; with `kv`, its endpoints (and channels) are used instead. */
  readonly endpoints?: readonly string[];
  /** Share this KvClient's endpoints and gRPC channels (closing the EtcdChannel then leaves them open). */
  readonly kv?: KvClient;
  /** TLS for the channels it makes itself (etcdctl's --cacert, --cert, --key); a shared KvClient brings its own. */
  readonly tls?: DialTlsConfig;
  /** etcd's --user: every call carries the user's token (auth-token.ts). Ignored with `kv` (the KvClient's own applies). */
  readonly user?: DialUser;
  readonly timeoutMs?: number; // a unary call across retries; default 5000
  readonly attemptTimeoutMs?: number; // one attempt (a stopped member must not eat the whole call); default 2000
  readonly backoffMinMs?: number; // first backoff after a failure; default 50
  readonly backoffMaxMs?: number; // backoff cap; default 2000
  readonly clock?: Clock; // every timer of watch, lease and the retries; default the system clock
}

/**
 * A unary call's kind: 'read' (Range, TimeToLive, Leases: any failure may be retried elsewhere) or 'write' (Txn,
 * Put, DeleteRange, Grant, Revoke: retried only where etcd's clientv3 retries a mutation, when the member said it
 * has no leader or the connection was never made, so the write cannot have been applied).
 */
export type CallKind = 'read' | 'write';

/** Keepalive pings on channels the EtcdChannel makes itself, so a stopped (SIGSTOP) member's stream fails. etcd
 * accepts pings every 5 s or slower (--grpc-keepalive-min-time); faster ones get the connection closed. */
const KEEPALIVE_TIME_MS = 10_000;
const KEEPALIVE_TIMEOUT_MS = 5_000;

/** Connection-level failures: nothing reached the member (a write may be retried after them). */
const NOT_CONNECTED = /ECONNREFUSED|No connection established|connect failed|Failed to connect/i;

function checkMs(what: string, ms: number, min: number): number {
  if (!(ms >= min) || !(ms <= MAX_TIMER_DELAY_MS)) throw new RaftKvError('INVALID_ARGUMENT', `${what} must be in ${min}..${MAX_TIMER_DELAY_MS} ms, got ${ms}`);
  return ms;
}

/** True when a failed call may be tried again on another member. */
export function retryable(err: RaftKvError, kind: CallKind): boolean {
  if (kind === 'read') return err.code === 'UNAVAILABLE' || err.code === 'DEADLINE_EXCEEDED';
  return err.code === 'UNAVAILABLE' && (err.message === ETCD_NO_LEADER || err.message === ETCD_NOT_LEADER || NOT_CONNECTED.test(err.message));
}

export class EtcdChannel {
  readonly clock: Clock;
  readonly timeoutMs: number;
  readonly attemptTimeoutMs: number;
  private readonly backoffMinMs: number;
  private readonly backoffMaxMs: number;
  private readonly kv: KvClient | undefined;
  private readonly ownEndpoints: readonly string[];
  private readonly credentials: ChannelCredentials | undefined; // how own channels dial (resolveDial); unused with kv
  private readonly dial: ResolvedDial | undefined; // and what they carry (a user's token); unused with kv
  private readonly clients = new Map<string, Client>(); // own channels, by endpoint (none when sharing a KvClient's)
  private position = 0; // the endpoint calls and streams go to first
  private closed = false;

  constructor(opts: EtcdChannelOptions) {
    this.kv = opts.kv;
    if (this.kv === undefined) {
      const dial = resolveDial({ endpoints: opts.endpoints ?? [], ...(opts.tls !== undefined ? { tls: opts.tls } : {}), ...(opts.user !== undefined ? { user: opts.user } : {}) }, 'EtcdChannel');
      this.ownEndpoints = dial.endpoints;
      this.credentials = dial.credentials;
      this.dial = dial;
    } else {
      this.ownEndpoints = [];
      this.credentials = undefined;
      this.dial = undefined;
    }
    this.clock = opts.clock ?? systemClock;
    this.timeoutMs = checkMs('EtcdChannel: timeoutMs', opts.timeoutMs ?? 5000, 1);
    this.attemptTimeoutMs = checkMs('EtcdChannel: attemptTimeoutMs', opts.attemptTimeoutMs ?? Math.min(this.timeoutMs, 2000), 1);
    this.backoffMinMs = checkMs('EtcdChannel: backoffMinMs', opts.backoffMinMs ?? 50, 0);
    this.backoffMaxMs = checkMs('EtcdChannel: backoffMaxMs', opts.backoffMaxMs ?? 2000, 0);
  }

  get endpoints(): readonly string[] {
    return this.kv !== undefined ? this.kv.knownEndpoints : this.ownEndpoints;
  }

  /** The endpoint the next call or stream goes to. */
  get current(): string {
    const eps = this.endpoints;
    const e = eps[this.position % eps.length];
    if (e === undefined) throw new RaftKvError('INVALID_ARGUMENT', 'EtcdChannel: no endpoints');
    return e;
  }

  /** `failed` could not serve: move on to the next endpoint (unless another caller moved on already). */
  failover(failed: string): void {
    if (this.current === failed) this.position = (this.position + 1) % Math.max(1, this.endpoints.length);
  }

  /** The backoff before attempt `failures + 1`: exponential from backoffMinMs to backoffMaxMs, half of it jitter. */
  backoffMs(failures: number): number {
    const base = Math.min(this.backoffMaxMs, this.backoffMinMs * 2 ** Math.min(Math.max(failures - 1, 0), 16));
    return base / 2 + Math.random() * (base / 2);
  }

  /** Resolves after `ms` on the channel's clock, or at once when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted === true) return resolve();
      const onAbort = (): void => {
        cancel();
        resolve();
      };
      const cancel = this.clock.setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** etcd's `hasleader: true` (clientv3.WithRequireLeader, which etcdctl uses). */
  metadata(): Metadata {
    const md = new Metadata();
    md.set('hasleader', 'true');
    return md;
  }

  /** The gRPC channel to `endpoint`. */
  client(endpoint: string): Client {
    if (this.closed) throw new RaftKvError('FAILED_PRECONDITION', 'EtcdChannel is closed');
    if (this.kv !== undefined) return this.kv.channelTo(endpoint);
    let c = this.clients.get(endpoint);
    if (c === undefined) {
      if (this.credentials === undefined) throw new Error('assertion: an EtcdChannel without a KvClient has credentials');
      c = new Client(endpoint, this.credentials, {
        'grpc.max_receive_message_length': -1,
        'grpc.max_send_message_length': -1,
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 1000,
        'grpc.enable_retries': 0,
        'grpc.keepalive_time_ms': KEEPALIVE_TIME_MS,
        'grpc.keepalive_timeout_ms': KEEPALIVE_TIMEOUT_MS,
        ...this.dial?.channelOptions,
      });
      this.clients.set(endpoint, c);
    }
    return c;
  }

  /** One unary call of etcdserverpb.S/M, retried on the next endpoints with backoff (see CallKind) until the deadline. */
  async unary<S extends EtcdServiceName, M extends EtcdUnaryMethod<S>>(
    service: S,
    method: M,
    request: MessageInit<EtcdRequest<S, M>>,
    kind: CallKind,
    opts: { readonly timeoutMs?: number } = {},
  ): Promise<EtcdResponse<S, M>> {
    const started = this.clock.now();
    const deadline = started + checkMs(`${service}.${method}: timeoutMs`, opts.timeoutMs ?? this.timeoutMs, 1);
    const auth = this.kv !== undefined ? this.kv.authToken : this.dial?.auth;
    for (let failures = 0, reauthentications = 0; ; ) {
      const endpoint = this.current;
      const attemptMs = Math.max(1, Math.min(this.attemptTimeoutMs, deadline - this.clock.now()));
      let err: RaftKvError;
      try {
        return await etcdUnary(this.client(endpoint), service, method, request, { timeoutMs: attemptMs, metadata: this.metadata() });
      } catch (e) {
        err = fromEtcdError(e);
      }
      if (refusedForToken(err) && auth !== undefined && reauthentications < MAX_REAUTHENTICATIONS && this.clock.now() < deadline && !this.closed) {
        // As etcd's clientv3 on "invalid auth token": a new token, and the same call again (the member refused
        // it before doing anything, so a write cannot have been applied).
        reauthentications++;
        auth.reset();
        await this.sleep(reauthenticationPauseMs(reauthentications));
        continue;
      }
      if (!retryable(err, kind) || this.closed) throw err;
      failures++;
      this.failover(endpoint);
      const wait = this.backoffMs(failures);
      if (this.clock.now() + wait >= deadline) {
        throw new RaftKvError(err.code, `${service}.${method}: ${err.message} (gave up after ${failures} attempts in ${this.clock.now() - started} ms)`);
      }
      await this.sleep(wait);
    }
  }

  /** A bidirectional stream (Watch.Watch, Lease.LeaseKeepAlive) to the current endpoint, with `hasleader`. */
  stream<S extends EtcdServiceName, M extends EtcdMethodName<S>>(
    service: S,
    method: M,
  ): { readonly endpoint: string; readonly call: ClientDuplexStream<MessageInit<EtcdRequest<S, M>>, EtcdResponse<S, M>> } {
    const endpoint = this.current;
    return { endpoint, call: etcdBidiStream(this.client(endpoint), service, method, { metadata: this.metadata() }) };
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Closes the channels it made (a shared KvClient's stay open: its owner closes them). */
  close(): void {
    this.closed = true;
    for (const c of this.clients.values()) c.close();
    this.dial?.auth?.close();
    this.clients.clear();
  }
}
