// The coordination half of the client in one object: watch, leases, locks and elections over etcd's v3 API
// (Watch, Lease and KV services), on the same client port and, given a KvClient, the same connections as raftkv's
// own KV API. Works against raftkv and against a real etcd alike.
import type { EtcdChannelOptions } from './etcd-channel.js';
import { EtcdChannel } from './etcd-channel.js';
import { Election, electionLeader, Mutex, observeElection, Session } from './concurrency.js';
import type { ElectionLeader } from './concurrency.js';
import { grantLease, keepAliveOnce, leaseTimeToLive, listLeases, revokeLease } from './lease.js';
import type { Lease, LeaseTimeToLive } from './lease.js';
import { Watcher } from './watch.js';
import type { WatchOptions } from './watch.js';

/** How a lock or an election gets its session: an existing lease (kept as it is), or a new one of `ttlSeconds`. */
export interface SessionOptions {
  readonly lease?: Lease;
  readonly ttlSeconds?: number; // default 60 (etcd's concurrency package)
}

/** A lock held: its key (`NAME/<lease hex>`), the key's create revision (a fencing token), and unlock(). */
export interface HeldLock {
  readonly key: string;
  readonly revision: bigint;
  readonly session: Session;
  /** Deletes the lock's key, then revokes the session's lease if the lock made it. */
  unlock(): Promise<void>;
}

export class CoordClient {
  readonly channel: EtcdChannel;

  constructor(opts: EtcdChannelOptions) {
    this.channel = new EtcdChannel(opts);
  }

  /** A resuming watch on a key (or a prefix, or a range): `for await (const batch of client.watch('k/', { prefix: true }))`. */
  watch(keyOrPrefix: string | Uint8Array, opts: WatchOptions = {}): Watcher {
    return new Watcher(this.channel, keyOrPrefix, opts);
  }

  /** Grants a lease and keeps it alive (every TTL/3) until revoke() or stopKeepAlive(); `lost` says when it is gone. */
  lease(ttlSeconds: number, opts: { readonly keepAlive?: boolean } = {}): Promise<Lease> {
    return grantLease(this.channel, ttlSeconds, opts);
  }

  leases(): Promise<bigint[]> {
    return listLeases(this.channel);
  }

  leaseTimeToLive(id: bigint, opts: { readonly keys?: boolean } = {}): Promise<LeaseTimeToLive> {
    return leaseTimeToLive(this.channel, id, opts);
  }

  revokeLease(id: bigint): Promise<void> {
    return revokeLease(this.channel, id);
  }

  /** One keep-alive of lease `id`: the TTL answered (0: no such lease). */
  keepAliveOnce(id: bigint): Promise<number> {
    return keepAliveOnce(this.channel, id);
  }

  session(opts: SessionOptions = {}): Promise<Session> {
    return Session.create(this.channel, opts);
  }

  /** Acquires lock `name` (etcd's concurrency.Mutex: an `etcdctl lock` on the same name excludes it). */
  async lock(name: string, opts: SessionOptions & { readonly signal?: AbortSignal } = {}): Promise<HeldLock> {
    const session = await this.session(opts);
    const mutex = new Mutex(session, name);
    try {
      await mutex.lock(opts.signal);
    } catch (err) {
      await session.close().catch(() => undefined); // the lock's error is what the caller gets
      throw err;
    }
    return {
      key: mutex.key,
      revision: mutex.revision,
      session,
      unlock: async () => {
        await mutex.unlock();
        await session.close();
      },
    };
  }

  /** An election on `name` for a new session (or `lease`): campaign(), proclaim(), resign(), leader(), observe(). */
  async election(name: string, opts: SessionOptions = {}): Promise<Election> {
    return new Election(await this.session(opts), name);
  }

  /** Campaigns in election `name` with `value` and resolves once elected (the Election's resign() gives it up). */
  async campaign(name: string, value: string | Uint8Array, opts: SessionOptions & { readonly signal?: AbortSignal } = {}): Promise<Election> {
    const e = await this.election(name, opts);
    try {
      await e.campaign(value, opts.signal);
    } catch (err) {
      if (opts.lease === undefined) await e.session.close().catch(() => undefined); // the campaign's error is what the caller gets
      throw err;
    }
    return e;
  }

  /** The leader of election `name`; NOT_FOUND "election: no leader" if none. */
  leader(name: string): Promise<ElectionLeader> {
    return electionLeader(this.channel, name);
  }

  /** Every leader of election `name` in turn, until `signal` aborts. */
  observe(name: string, signal?: AbortSignal): AsyncGenerator<ElectionLeader> {
    return observeElection(this.channel, name, signal);
  }

  close(): void {
    this.channel.close();
  }
}
