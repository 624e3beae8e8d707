// Locks and leader election with the keys and protocol of etcd's Go `concurrency` package (v3.4), so a raftkv
// lock and an `etcdctl lock` on the same name exclude each other, and `etcdctl elect` sees raftkv's candidates.
//
// - A Session is a lease (default TTL 60 s) kept alive; its keys go when it is lost.
// - Mutex NAME: the session's key is `NAME/` + the lease id in lowercase hex. Acquire is one Txn: if the key's
//   create_revision is 0, put it (empty value, with the lease), else get it; both branches also Range the prefix
//   `NAME/` sorted by create revision ascending, limit 1: the owner. My revision is the txn's header revision (or
//   the existing key's create revision). If the owner is me, the lock is mine; else wait until every key under the
//   prefix created before mine is gone: Range with max_create_revision = myRev - 1, sorted by create revision
//   descending, limit 1; Watch that key from the Range's header revision until a DELETE; repeat until none is
//   left. Then check my key still exists (the session may have expired meanwhile).
// - Election NAME: the same keys; campaign puts the proposal (a Txn like the lock's, without the owner Range; a
//   key already there with another value is proclaimed), then waits like the lock; proclaim and resign are Txns
//   guarded by create_revision == my revision; the leader is the key with the smallest create revision.
import { RaftKvError } from '../shared/errors.js';
import { prefixEnd } from '../kv/types.js';
import { Compare_CompareResult, Compare_CompareTarget, RangeRequest_SortOrder, RangeRequest_SortTarget } from '../protocol/etcd-proto.js';
import type { KeyValue as EtcdKeyValue, MessageInit, RangeRequest, RangeResponse, ResponseHeader, TxnRequest, TxnResponse } from '../protocol/etcd-proto.js';
import type { EtcdChannel } from './etcd-channel.js';
import { grantLease, leaseIdHex } from './lease.js';
import type { Lease, LeaseLost } from './lease.js';
import { Watcher } from './watch.js';

/** etcd's concurrency.NewSession default TTL. */
export const DEFAULT_SESSION_TTL_SECONDS = 60;

export class Session {
  private constructor(
    readonly channel: EtcdChannel,
    readonly lease: Lease,
    private readonly ownsLease: boolean,
  ) {}

  /** A session on a new lease of `ttlSeconds` (kept alive), or on `lease` (kept as it is, not revoked on close). */
  static async create(channel: EtcdChannel, opts: { readonly ttlSeconds?: number; readonly lease?: Lease } = {}): Promise<Session> {
    if (opts.lease !== undefined) return new Session(channel, opts.lease, false);
    return new Session(channel, await grantLease(channel, opts.ttlSeconds ?? DEFAULT_SESSION_TTL_SECONDS), true);
  }

  get id(): bigint {
    return this.lease.id;
  }

  /** Resolves when the session's lease is lost (etcd's Session.Done()). */
  get done(): Promise<LeaseLost> {
    return this.lease.lost;
  }

  /** Ends the session: revokes its lease (deleting its lock and election keys) if the session granted it. */
  async close(): Promise<void> {
    if (this.ownsLease && !this.lease.isLost) await this.lease.revoke({ timeoutMs: Math.max(1000, this.lease.grantedTtlSeconds * 1000) });
  }
}

function buf(s: string | Uint8Array): Buffer {
  return typeof s === 'string' ? Buffer.from(s, 'utf8') : Buffer.from(s.buffer, s.byteOffset, s.byteLength);
}

/** clientv3.WithFirstCreate: the prefix's key with the smallest create revision. */
function firstCreate(pfx: Buffer): MessageInit<RangeRequest> {
  return { key: pfx, rangeEnd: Buffer.from(prefixEnd(pfx)), sortOrder: RangeRequest_SortOrder.ASCEND, sortTarget: RangeRequest_SortTarget.CREATE, limit: 1n };
}

function createRevIs(key: Buffer, rev: bigint): MessageInit<TxnRequest>['compare'] {
  return [{ key, target: Compare_CompareTarget.CREATE, result: Compare_CompareResult.EQUAL, createRevision: rev }];
}

function txn(channel: EtcdChannel, req: MessageInit<TxnRequest>): Promise<TxnResponse> {
  return channel.unary('KV', 'Txn', req, 'write');
}

function rangeKvs(r: TxnResponse, i: number): EtcdKeyValue[] {
  return r.responses[i]?.responseRange?.kvs ?? [];
}

function headerRev(h: ResponseHeader | null): bigint {
  return h?.revision ?? 0n;
}

function aborted(signal: AbortSignal | undefined, what: string): RaftKvError {
  const reason: unknown = signal?.reason;
  return new RaftKvError('DEADLINE_EXCEEDED', `${what}: ${reason instanceof Error ? reason.message : 'cancelled'}`);
}

/** Waits until `key` is deleted, watching from `fromRevision` (etcd's waitDelete). */
async function waitDelete(channel: EtcdChannel, key: Buffer, fromRevision: bigint, signal: AbortSignal | undefined): Promise<void> {
  const w = new Watcher(channel, key, { fromRevision, ...(signal !== undefined ? { signal } : {}) });
  try {
    for await (const batch of w) if (batch.events.some((e) => e.type === 'delete')) return;
  } finally {
    w.cancel();
  }
  throw signal?.aborted === true ? aborted(signal, 'waiting for a delete') : new RaftKvError('UNAVAILABLE', 'lost watcher waiting for delete');
}

/** Waits until every key under `pfx` created at or below `maxCreateRev` is gone (etcd's waitDeletes). */
async function waitDeletes(channel: EtcdChannel, pfx: Buffer, maxCreateRev: bigint, signal: AbortSignal | undefined): Promise<ResponseHeader | null> {
  for (;;) {
    if (signal?.aborted === true) throw aborted(signal, 'waiting for earlier keys');
    const r: RangeResponse = await channel.unary(
      'KV',
      'Range',
      { key: pfx, rangeEnd: Buffer.from(prefixEnd(pfx)), sortOrder: RangeRequest_SortOrder.DESCEND, sortTarget: RangeRequest_SortTarget.CREATE, limit: 1n, maxCreateRevision: maxCreateRev },
      'read',
    );
    const last = r.kvs[0];
    if (last === undefined) return r.header;
    await waitDelete(channel, last.key, headerRev(r.header), signal);
  }
}

export class Mutex {
  private readonly pfx: Buffer;
  private myKey: Buffer | undefined;
  private myRev = -1n;
  /** The header of the response that completed the acquire. */
  header: ResponseHeader | null = null;

  constructor(
    readonly session: Session,
    name: string,
  ) {
    this.pfx = buf(`${name}/`);
  }

  /** The lock's key (`NAME/<lease hex>`), once lock() was called. */
  get key(): string {
    return this.myKey?.toString('utf8') ?? '';
  }

  /** The create revision of the key (the lock's fencing token), once held. */
  get revision(): bigint {
    return this.myRev;
  }

  private async tryAcquire(): Promise<TxnResponse> {
    const channel = this.session.channel;
    const key = buf(`${this.pfx.toString('utf8')}${leaseIdHex(this.session.id)}`);
    this.myKey = key;
    const getOwner = { requestRange: firstCreate(this.pfx) };
    const r = await txn(channel, {
      compare: createRevIs(key, 0n),
      success: [{ requestPut: { key, value: Buffer.alloc(0), lease: this.session.id } }, getOwner],
      failure: [{ requestRange: { key } }, getOwner],
    });
    this.myRev = headerRev(r.header);
    if (!r.succeeded) {
      const mine = rangeKvs(r, 0)[0];
      if (mine === undefined) throw new RaftKvError('UNAVAILABLE', `lock: ${key.toString('utf8')} vanished between the compare and the get`);
      this.myRev = mine.createRevision;
    }
    return r;
  }

  /** Acquires the lock, waiting for earlier holders; `signal` gives up (and removes this session's key). */
  async lock(signal?: AbortSignal): Promise<void> {
    const channel = this.session.channel;
    const r = await this.tryAcquire();
    const owner = rangeKvs(r, 1)[0];
    if (owner === undefined || owner.createRevision === this.myRev) {
      this.header = r.header;
      return;
    }
    try {
      this.header = await waitDeletes(channel, this.pfx, this.myRev - 1n, signal);
    } catch (err) {
      await this.unlock().catch(() => undefined); // the wait's error is what the caller gets
      throw err;
    }
    const key = this.myKey ?? Buffer.alloc(0);
    const g = await channel.unary('KV', 'Range', { key }, 'read');
    if (g.kvs.length === 0) throw new RaftKvError('FAILED_PRECONDITION', 'mutex: session is expired');
    this.header = g.header;
  }

  /** Takes the lock only if nobody holds it (etcd's TryLock): false, after removing this session's key, if someone does. */
  async tryLock(): Promise<boolean> {
    const r = await this.tryAcquire();
    const owner = rangeKvs(r, 1)[0];
    if (owner === undefined || owner.createRevision === this.myRev) {
      this.header = r.header;
      return true;
    }
    await this.unlock();
    return false;
  }

  async unlock(): Promise<void> {
    const key = this.myKey;
    if (key === undefined) return;
    await this.session.channel.unary('KV', 'DeleteRange', { key }, 'write');
    this.myKey = undefined;
    this.myRev = -1n;
  }
}

export interface ElectionLeader {
  readonly key: string;
  readonly value: Buffer;
  readonly kv: EtcdKeyValue;
  readonly revision: bigint; // the header revision it was seen at
}

function leaderOf(kv: EtcdKeyValue, revision: bigint): ElectionLeader {
  return { key: kv.key.toString('utf8'), value: kv.value, kv, revision };
}

export class Election {
  private readonly pfx: Buffer;
  private leaderKey: Buffer | undefined;
  private leaderRev = 0n;
  header: ResponseHeader | null = null;

  constructor(
    readonly session: Session,
    readonly name: string,
  ) {
    this.pfx = buf(`${name}/`);
  }

  /** The key this session campaigns with (`NAME/<lease hex>`), once campaign() was called; '' after resign(). */
  get key(): string {
    return this.leaderKey?.toString('utf8') ?? '';
  }

  get revision(): bigint {
    return this.leaderRev;
  }

  /** Puts `value` as a candidate and resolves once elected (every earlier candidate's key is gone). */
  async campaign(value: string | Uint8Array, signal?: AbortSignal): Promise<void> {
    const channel = this.session.channel;
    const key = buf(`${this.pfx.toString('utf8')}${leaseIdHex(this.session.id)}`);
    const val = buf(value);
    const r = await txn(channel, { compare: createRevIs(key, 0n), success: [{ requestPut: { key, value: val, lease: this.session.id } }], failure: [{ requestRange: { key } }] });
    this.leaderKey = key;
    this.leaderRev = headerRev(r.header);
    if (!r.succeeded) {
      const kv = rangeKvs(r, 0)[0];
      if (kv === undefined) throw new RaftKvError('UNAVAILABLE', `campaign: ${key.toString('utf8')} vanished between the compare and the get`);
      this.leaderRev = kv.createRevision;
      if (!kv.value.equals(val)) {
        try {
          await this.proclaim(val);
        } catch (err) {
          await this.resign().catch(() => undefined); // the proclaim's error is what the caller gets
          throw err;
        }
      }
    }
    try {
      await waitDeletes(channel, this.pfx, this.leaderRev - 1n, signal);
    } catch (err) {
      if (signal?.aborted === true) await this.resign().catch(() => undefined);
      else this.leaderKey = undefined;
      throw err;
    }
    this.header = r.header;
  }

  /** Changes the leader's value without a new election; FAILED_PRECONDITION "election: not leader" if not leader. */
  async proclaim(value: string | Uint8Array): Promise<void> {
    const key = this.leaderKey;
    if (key === undefined) throw new RaftKvError('FAILED_PRECONDITION', 'election: not leader');
    const r = await txn(this.session.channel, { compare: createRevIs(key, this.leaderRev), success: [{ requestPut: { key, value: buf(value), lease: this.session.id } }] });
    if (!r.succeeded) {
      this.leaderKey = undefined;
      throw new RaftKvError('FAILED_PRECONDITION', 'election: not leader');
    }
    this.header = r.header;
  }

  /** Gives up leadership (or candidacy): deletes this session's key if it is still the one campaigned with. */
  async resign(): Promise<void> {
    const key = this.leaderKey;
    if (key === undefined) return;
    this.leaderKey = undefined;
    const r = await txn(this.session.channel, { compare: createRevIs(key, this.leaderRev), success: [{ requestDeleteRange: { key } }] });
    this.header = r.header;
  }

  /** The current leader; NOT_FOUND "election: no leader" when there is none. */
  leader(): Promise<ElectionLeader> {
    return electionLeader(this.session.channel, this.name);
  }

  /** Every leader in turn (etcd's Observe): the current one, then its proclaimed values, then the next leader. */
  observe(signal?: AbortSignal): AsyncGenerator<ElectionLeader> {
    return observeElection(this.session.channel, this.name, signal);
  }
}

/** The current leader of election `name` (no session needed); NOT_FOUND "election: no leader" when none. */
export async function electionLeader(channel: EtcdChannel, name: string): Promise<ElectionLeader> {
  const r = await channel.unary('KV', 'Range', firstCreate(buf(`${name}/`)), 'read');
  const kv = r.kvs[0];
  if (kv === undefined) throw new RaftKvError('NOT_FOUND', 'election: no leader');
  return leaderOf(kv, headerRev(r.header));
}

/** etcd's Election.Observe over `name`, without a session: ends when `signal` aborts. */
export async function* observeElection(channel: EtcdChannel, name: string, signal?: AbortSignal): AsyncGenerator<ElectionLeader> {
  const pfx = buf(`${name}/`);
  const withSignal = signal !== undefined ? { signal } : {};
  while (signal?.aborted !== true) {
    const r = await channel.unary('KV', 'Range', firstCreate(pfx), 'read');
    let current: ElectionLeader | undefined = r.kvs[0] !== undefined ? leaderOf(r.kvs[0], headerRev(r.header)) : undefined;
    if (current === undefined) {
      // Wait for the first put under the prefix (a delete would make this spin).
      const w = new Watcher(channel, pfx, { prefix: true, fromRevision: headerRev(r.header), ...withSignal });
      try {
        for await (const batch of w) {
          const put = batch.events.find((e) => e.type === 'put');
          if (put !== undefined) {
            current = leaderOf(put.kv, put.kv.modRevision);
            break;
          }
        }
      } finally {
        w.cancel();
      }
      if (current === undefined) return; // aborted
    }
    yield current;
    const w = new Watcher(channel, current.kv.key, { fromRevision: current.revision + 1n, ...withSignal });
    try {
      let deleted = false;
      for await (const batch of w) {
        for (const e of batch.events) {
          if (e.type === 'delete') {
            deleted = true;
            break;
          }
          yield leaderOf(e.kv, batch.revision);
        }
        if (deleted) break;
      }
      if (!deleted) return; // aborted
    } finally {
      w.cancel();
    }
  }
}
