// The chaos harness's view of the cluster: a small leader-following KV client and an admin client, both over
// the real gRPC protocol (src/protocol/proto.ts), that classify every outcome for the history:
//   ok             the cluster acknowledged the op
//   failed         a definite error: the op did not happen (NOT_LEADER, INVALID_ARGUMENT, RESOURCE_EXHAUSTED,
//                  FAILED_PRECONDITION, NOT_FOUND, CLUSTER_MISMATCH, DISK_FULL, DATA_CORRUPTION, and
//                  PROPOSAL_DROPPED, whose contract is "overwritten after a leader change": never applied)
//   indeterminate  UNAVAILABLE or DEADLINE_EXCEEDED after the request may have reached a leader (the op may
//                  still be applied later)
// A write that got an ambiguous answer is retried with the same client id and sequence number (the state
// machine applies it at most once), so a later success makes the op 'ok'; if none comes, it is indeterminate.
// KvClientAdapter runs the workers over the project's own client library instead (the default).
import { Client, Metadata, type ChannelCredentials, type MethodDefinition, type ServiceError } from '@grpc/grpc-js';
import { clientCredentials, type DialTlsConfig } from '../../src/client/index.js';
import { fromGrpcError } from '../../src/protocol/wire-errors.js';
import { RaftKvError, type ErrorCode } from '../../src/shared/errors.js';
import {
  ADMIN_METHODS,
  KV_METHODS,
  type WireMember,
  type WireStatusResponse,
} from '../../src/protocol/proto.js';
import type { KvClient } from '../../src/client/kv-client.js';
import { assertNever, type Outcome } from './history.js';

const CHANNEL_OPTIONS = {
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1000,
  'grpc.min_reconnect_backoff_ms': 100,
  'grpc.enable_retries': 0,
};

/** Codes that prove the op was not applied. */
export function isDefiniteFailure(code: ErrorCode): boolean {
  switch (code) {
    case 'NOT_LEADER':
    case 'INVALID_ARGUMENT':
    case 'RESOURCE_EXHAUSTED':
    case 'FAILED_PRECONDITION':
    case 'NOT_FOUND':
    case 'CLUSTER_MISMATCH':
    case 'DISK_FULL':
    case 'NO_SPACE':
    case 'DATA_CORRUPTION':
    case 'PROPOSAL_DROPPED':
    case 'COMPACTED':
    case 'FUTURE_REV':
    case 'KEY_NOT_FOUND':
    case 'LEASE_NOT_FOUND':
    case 'DUPLICATE_KEY':
    case 'LEASE_EXISTS':
    case 'LEASE_TTL_TOO_LARGE':
    case 'TOO_MANY_LEASES':
    case 'WATCH_CANCELED':
    case 'AUTH_REFUSED':
    case 'PERMISSION_DENIED':
    case 'UNAUTHENTICATED':
      return true;
    case 'UNAVAILABLE':
    case 'DEADLINE_EXCEEDED':
      return false;
    default:
      return assertNever(code);
  }
}

/** One gRPC channel per address, closed together; `tls`: etcd's client flags (src/client/dial-options.ts). */
export class Channels {
  private readonly clients = new Map<string, Client>();
  private readonly credentials: ChannelCredentials;

  constructor(tls?: DialTlsConfig) {
    this.credentials = clientCredentials(tls);
  }

  get(address: string): Client {
    let c = this.clients.get(address);
    if (c === undefined) {
      c = new Client(address, this.credentials, CHANNEL_OPTIONS);
      this.clients.set(address, c);
    }
    return c;
  }

  /** Drops a channel (e.g. after its server restarted) so the next call dials afresh. */
  drop(address: string): void {
    this.clients.get(address)?.close();
    this.clients.delete(address);
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}

export function unary<Req, Res>(client: Client, method: MethodDefinition<Req, Res>, req: Req, timeoutMs: number): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    client.makeUnaryRequest(
      method.path,
      method.requestSerialize,
      method.responseDeserialize,
      req,
      new Metadata(),
      { deadline: Date.now() + Math.max(1, timeoutMs) },
      (err: ServiceError | null, res?: Res) => {
        if (err !== null) reject(fromGrpcError(err));
        else if (res === undefined) reject(new RaftKvError('UNAVAILABLE', 'empty response'));
        else resolve(res);
      },
    );
  });
}

function utf8(s: string): Buffer {
  return Buffer.from(s, 'utf8');
}

export interface KvClientOptions {
  readonly endpoints: readonly string[]; // client addresses of the members
  readonly clientId: string; // session id for at-most-once retries
  readonly opTimeoutMs: number; // total time for one op, retries included
  readonly attemptTimeoutMs: number; // gRPC deadline of one attempt
  readonly retryBackoffMs: number; // pause before retrying after UNAVAILABLE
  readonly tls?: DialTlsConfig; // members with TLS on their client ports
}

export interface OpReport {
  readonly outcome: Outcome;
  readonly attempts: number;
  readonly lastError: string | undefined;
  readonly servedBy: number; // member id that answered (0 if none)
  readonly term: number; // term in the answer's header (0 if none)
  /** The store revision an acknowledged write created (undefined: none, or the client does not say). */
  readonly revision?: number;
}

type Attempt<T> = (client: Client, timeoutMs: number) => Promise<{ value: T; memberId: number; term: number }>;

/** A leader-following client for one chaos worker. Ops are sequential per instance. */
export class ChaosKvClient implements ChaosKv {
  private readonly channels: Channels;
  private leader: string; // the address we think leads
  private seq = 0; // last sequence number used
  private rotation = 0;

  constructor(private readonly opts: KvClientOptions) {
    this.channels = new Channels(opts.tls);
    const first = opts.endpoints[0];
    if (first === undefined) throw new Error('no endpoints');
    this.leader = first;
  }

  close(): void {
    this.channels.close();
  }

  async put(key: string, value: string): Promise<OpReport> {
    const seq = ++this.seq;
    return this.run(true, async (c, timeoutMs) => {
      const r = await unary(c, KV_METHODS.put, { key: utf8(key), value: utf8(value), clientId: this.opts.clientId, seq }, timeoutMs);
      return { value: null, memberId: r.header?.memberId ?? 0, term: r.header?.term ?? 0 };
    });
  }

  async delete(key: string): Promise<OpReport> {
    const seq = ++this.seq;
    return this.run(true, async (c, timeoutMs) => {
      const r = await unary(c, KV_METHODS.delete, { key: utf8(key), clientId: this.opts.clientId, seq }, timeoutMs);
      return { value: null, memberId: r.header?.memberId ?? 0, term: r.header?.term ?? 0 };
    });
  }

  /** Linearizable get: the value, or null if absent. */
  async get(key: string): Promise<OpReport> {
    return this.run(false, async (c, timeoutMs) => {
      const r = await unary(c, KV_METHODS.get, { key: utf8(key), serializable: false }, timeoutMs);
      const v = r.kv === null ? null : r.kv.value.toString('utf8');
      return { value: v, memberId: r.header?.memberId ?? 0, term: r.header?.term ?? 0 };
    });
  }

  /** Compare-and-swap: set `value` iff the key holds `expected` (null: iff absent). Result "true"/"false". */
  async cas(key: string, expected: string | null, value: string): Promise<OpReport> {
    const seq = ++this.seq;
    const k = utf8(key);
    const compare =
      expected === null
        ? { key: k, target: 'VERSION' as const, op: 'EQUAL' as const, number: 0 }
        : { key: k, target: 'VALUE' as const, op: 'EQUAL' as const, value: utf8(expected) };
    return this.run(true, async (c, timeoutMs) => {
      const r = await unary(
        c,
        KV_METHODS.txn,
        { compares: [compare], success: [{ op: 'put', put: { key: k, value: utf8(value) } }], failure: [], clientId: this.opts.clientId, seq },
        timeoutMs,
      );
      return { value: r.succeeded ? 'true' : 'false', memberId: r.header?.memberId ?? 0, term: r.header?.term ?? 0 };
    });
  }

  private nextEndpoint(): string {
    const eps = this.opts.endpoints;
    this.rotation = (this.rotation + 1) % eps.length;
    return eps[this.rotation] ?? this.leader;
  }

  private async run(isWrite: boolean, attempt: Attempt<string | null>): Promise<OpReport> {
    const deadline = Date.now() + this.opts.opTimeoutMs;
    let ambiguous = false; // some attempt may have reached a leader and been applied
    let attempts = 0;
    let lastError: string | undefined;
    for (;;) {
      attempts++;
      const target = this.leader;
      try {
        const r = await attempt(this.channels.get(target), Math.min(this.opts.attemptTimeoutMs, Math.max(50, deadline - Date.now())));
        return { outcome: { kind: 'ok', result: r.value }, attempts, lastError, servedBy: r.memberId, term: r.term };
      } catch (err) {
        const e = err instanceof RaftKvError ? err : new RaftKvError('UNAVAILABLE', String(err));
        lastError = `${e.code}: ${e.message}`;
        if (!isDefiniteFailure(e.code)) ambiguous = true;
        switch (e.code) {
          case 'NOT_LEADER':
            this.leader = e.leader !== undefined && e.leader.leaderAddress !== '' && e.leader.leaderAddress !== target ? e.leader.leaderAddress : this.nextEndpoint();
            break;
          case 'UNAVAILABLE':
          case 'DEADLINE_EXCEEDED':
          case 'PROPOSAL_DROPPED':
          case 'RESOURCE_EXHAUSTED':
            this.leader = this.nextEndpoint();
            break;
          case 'INVALID_ARGUMENT':
          case 'FAILED_PRECONDITION':
          case 'NOT_FOUND':
          case 'CLUSTER_MISMATCH':
          case 'DISK_FULL':
          case 'NO_SPACE':
          case 'DATA_CORRUPTION':
          case 'COMPACTED':
          case 'FUTURE_REV':
          case 'KEY_NOT_FOUND':
          case 'LEASE_NOT_FOUND':
          case 'DUPLICATE_KEY':
          case 'LEASE_EXISTS':
          case 'LEASE_TTL_TOO_LARGE':
          case 'TOO_MANY_LEASES':
          case 'WATCH_CANCELED':
          case 'AUTH_REFUSED':
          case 'PERMISSION_DENIED':
          case 'UNAUTHENTICATED':
            // Not retryable: the op failed.
            return { outcome: ambiguous ? { kind: 'indeterminate' } : { kind: 'failed' }, attempts, lastError, servedBy: 0, term: 0 };
          default:
            assertNever(e.code);
        }
        const remaining = deadline - Date.now();
        if (remaining <= this.opts.retryBackoffMs) {
          const outcome: Outcome = isWrite && ambiguous ? { kind: 'indeterminate' } : { kind: 'failed' };
          return { outcome, attempts, lastError, servedBy: 0, term: 0 };
        }
        if (e.code !== 'NOT_LEADER') await sleep(this.opts.retryBackoffMs);
      }
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** One key as one member holds it (AdminClient.localGet). */
export interface LocalValue {
  readonly index: number; // the member's applied index when it answered
  readonly kv: { readonly value: string; readonly createRevision: number; readonly modRevision: number; readonly version: number } | null;
}

/** Admin calls against one member (no redirects: the caller picks the member). */
export class AdminClient {
  private readonly channels: Channels;

  constructor(tls?: DialTlsConfig) {
    this.channels = new Channels(tls);
  }

  async status(address: string, timeoutMs: number): Promise<WireStatusResponse> {
    return unary(this.channels.get(address), ADMIN_METHODS.status, {}, timeoutMs);
  }

  async memberRemove(address: string, id: number, timeoutMs: number): Promise<WireMember[]> {
    return (await unary(this.channels.get(address), ADMIN_METHODS.memberRemove, { id }, timeoutMs)).members;
  }

  async memberAdd(address: string, member: WireMember, timeoutMs: number): Promise<WireMember[]> {
    return (await unary(this.channels.get(address), ADMIN_METHODS.memberAdd, { member }, timeoutMs)).members;
  }

  async memberPromote(address: string, id: number, timeoutMs: number): Promise<WireMember[]> {
    return (await unary(this.channels.get(address), ADMIN_METHODS.memberPromote, { id }, timeoutMs)).members;
  }

  /**
   * A serializable get answered by this member from its own state machine (no leader involved), with the
   * applied index it answered at: what the member itself holds.
   */
  async localGet(address: string, key: string, timeoutMs: number): Promise<LocalValue> {
    const r = await unary(this.channels.get(address), KV_METHODS.get, { key: utf8(key), serializable: true }, timeoutMs);
    return {
      index: r.header?.index ?? 0,
      kv: r.kv === null ? null : { value: r.kv.value.toString('utf8'), createRevision: r.kv.createRevision, modRevision: r.kv.modRevision, version: r.kv.version },
    };
  }

  async transferLeader(address: string, to: number, timeoutMs: number): Promise<void> {
    await unary(this.channels.get(address), ADMIN_METHODS.transferLeader, { to }, timeoutMs);
  }

  drop(address: string): void {
    this.channels.drop(address);
  }

  close(): void {
    this.channels.close();
  }
}

/** What a chaos worker needs from a client: one call per op, each classified for the history. */
export interface ChaosKv {
  put(key: string, value: string): Promise<OpReport>;
  get(key: string): Promise<OpReport>;
  delete(key: string): Promise<OpReport>;
  cas(key: string, expected: string | null, value: string): Promise<OpReport>;
  close(): void;
}

/**
 * The project's client library (src/client KvClient) as a chaos worker's client. KvClient retries inside one
 * call and reports only the last attempt's error, so an error cannot prove that no earlier attempt reached a
 * leader: every failed write is recorded as indeterminate (sound, if less sharp than ChaosKvClient's
 * attempt-by-attempt classification). Failed reads constrain nothing either way.
 */
export class KvClientAdapter implements ChaosKv {
  constructor(private readonly client: KvClient) {}

  private async run(isWrite: boolean, fn: () => Promise<{ result: string | null; memberId: number; term: number; revision?: number }>): Promise<OpReport> {
    try {
      const r = await fn();
      return { outcome: { kind: 'ok', result: r.result }, attempts: 1, lastError: undefined, servedBy: r.memberId, term: r.term, ...(r.revision !== undefined ? { revision: r.revision } : {}) };
    } catch (err) {
      if (!(err instanceof RaftKvError)) throw err; // a bug in the client, not an outcome
      const outcome: Outcome = isWrite ? { kind: 'indeterminate' } : { kind: 'failed' };
      return { outcome, attempts: 1, lastError: `${err.code}: ${err.message}`, servedBy: 0, term: 0 };
    }
  }

  put(key: string, value: string): Promise<OpReport> {
    return this.run(true, async () => {
      const r = await this.client.put(key, value);
      return { result: null, memberId: r.header.memberId, term: r.header.term, revision: r.header.revision };
    });
  }

  get(key: string): Promise<OpReport> {
    return this.run(false, async () => {
      const r = await this.client.get(key);
      return { result: r.kv === undefined ? null : Buffer.from(r.kv.value).toString('utf8'), memberId: r.header.memberId, term: r.header.term };
    });
  }

  delete(key: string): Promise<OpReport> {
    return this.run(true, async () => {
      const r = await this.client.delete(key);
      return { result: null, memberId: r.header.memberId, term: r.header.term, ...(r.deleted > 0 ? { revision: r.header.revision } : {}) };
    });
  }

  cas(key: string, expected: string | null, value: string): Promise<OpReport> {
    return this.run(true, async () => {
      const r = await this.client.cas(key, expected, value);
      return { result: r.succeeded ? 'true' : 'false', memberId: r.header.memberId, term: r.header.term, ...(r.succeeded ? { revision: r.header.revision } : {}) };
    });
  }

  close(): void {
    this.client.close();
  }
}
