// The etcd target: etcd's v3 gRPC API (KV.Put, KV.Range, KV.Txn, Maintenance.Status) over @grpc/grpc-js, through
// the project's one etcd API loader (src/protocol/etcd-proto.ts: proto/etcd, 64-bit values as bigints). Writes and linearizable reads go to
// the leader (found with Maintenance.Status, re-found after a failure), as our KvClient does for raftkv, so the
// comparison measures the servers and not an extra follower-to-leader forwarding hop; serializable reads are
// spread over every member.
import { clientCredentials } from '../src/client/index.js';
import type { DialTlsConfig } from '../src/client/index.js';
import * as grpc from '@grpc/grpc-js';
import { Compare_CompareResult, Compare_CompareTarget, etcdUnary } from '../src/protocol/etcd-proto.js';
import type { EtcdRequest, EtcdResponse, EtcdServiceName, EtcdUnaryMethod, MessageInit } from '../src/protocol/etcd-proto.js';
import { TargetError, type BenchTarget, type CasResult, type GetResult, type TargetName, type WriteAck } from './target.js';

const DISCOVERY_INTERVAL_MS = 50; // while no leader is known, look for one at most this often

function isServiceError(err: unknown): err is grpc.ServiceError {
  return err instanceof Error && typeof (err as Partial<grpc.ServiceError>).code === 'number';
}

export interface EtcdTargetOptions {
  readonly endpoints: readonly string[]; // host:port of each member's client URL
  readonly connsPerEndpoint: number; // HTTP/2 connections per member (etcd benchmark's --conns)
  readonly name?: TargetName; // the system measured (default etcd; raftkv through its etcd API)
  readonly tls?: DialTlsConfig | undefined; // etcd's --cacert/--cert/--key (src/client/dial-options.ts); plaintext without
}

export class EtcdTarget implements BenchTarget {
  readonly name: TargetName;
  readonly endpoints: readonly string[];
  private readonly clients: grpc.Client[][]; // clients[endpoint][conn]
  private nextConn = 0; // round-robin cursor over connections
  private nextEndpoint = 0; // round-robin cursor for serializable reads and when no leader is known
  private leaderEndpoint: number | undefined; // index into endpoints of the last known leader
  private discovery: Promise<void> | undefined; // the leader discovery in progress, if any
  private lastDiscoveryMs = 0; // when the last discovery started (at most one per DISCOVERY_INTERVAL_MS)

  constructor(opts: EtcdTargetOptions) {
    if (opts.endpoints.length === 0) throw new Error('etcd target needs at least one endpoint');
    this.endpoints = opts.endpoints;
    this.name = opts.name ?? 'etcd';
    this.clients = opts.endpoints.map((ep) =>
      Array.from(
        { length: Math.max(1, opts.connsPerEndpoint) },
        (_, i) =>
          new grpc.Client(ep, clientCredentials(opts.tls), {
            'grpc.use_local_subchannel_pool': 1,
            'raftkv.bench.conn': i, // a distinct option per connection: grpc-js then opens a distinct HTTP/2 connection
            'grpc.max_receive_message_length': 16 * 1024 * 1024,
          }),
      ),
    );
  }

  /**
   * Waits until every connection is established. A connection whose first attempt was refused (the member was
   * still starting) sits in reconnect backoff, and grpc-js fails calls on it at once with that stale error.
   */
  async connect(timeoutMs: number): Promise<void> {
    const deadline = new Date(Date.now() + timeoutMs);
    await Promise.all(
      this.clients.flatMap((conns, i) =>
        conns.map(
          (c) =>
            new Promise<void>((resolve, reject) => {
              c.waitForReady(deadline, (err) => {
                if (err === undefined || err === null) resolve();
                else reject(new TargetError('UNAVAILABLE', `${this.endpoints[i] ?? '?'}: not connected within ${timeoutMs} ms: ${err.message}`));
              });
            }),
        ),
      ),
    );
  }

  /** Finds the leader now (the bench calls it once before a run so the first ops do not pay for it). */
  async discoverLeader(timeoutMs = 2000): Promise<number | undefined> {
    const statuses = await Promise.allSettled(
      this.endpoints.map((_, i) => this.call(i, 'Maintenance', 'Status', {}, timeoutMs)),
    );
    let leaderId: bigint | undefined;
    const memberIds: (bigint | undefined)[] = [];
    for (const s of statuses) {
      if (s.status === 'fulfilled') {
        memberIds.push(s.value.header?.memberId);
        if (s.value.leader !== 0n) leaderId = s.value.leader;
      } else {
        memberIds.push(undefined);
      }
    }
    const idx = leaderId === undefined ? -1 : memberIds.indexOf(leaderId);
    this.leaderEndpoint = idx >= 0 ? idx : undefined;
    return this.leaderEndpoint;
  }

  async put(key: Uint8Array, value: Uint8Array, timeoutMs: number): Promise<WriteAck> {
    return ackOf(await this.leaderCall('KV', 'Put', { key, value }, timeoutMs));
  }

  async putMany(kvs: readonly { readonly key: Uint8Array; readonly value: Uint8Array }[], timeoutMs: number): Promise<WriteAck> {
    const req = { compare: [], success: kvs.map((kv) => ({ requestPut: { key: kv.key, value: kv.value } })), failure: [] };
    return ackOf(await this.leaderCall('KV', 'Txn', req, timeoutMs));
  }

  async get(key: Uint8Array, serializable: boolean, timeoutMs: number): Promise<GetResult> {
    const req = { key, serializable };
    const res = serializable
      ? await this.call(this.roundRobinEndpoint(), 'KV', 'Range', req, timeoutMs)
      : await this.leaderCall('KV', 'Range', req, timeoutMs);
    const kv = res.kvs[0];
    return kv === undefined ? { found: false, version: 0 } : { found: true, version: Number(kv.version) };
  }

  async compareAndSwap(key: Uint8Array, expectedVersion: number, value: Uint8Array, timeoutMs: number): Promise<CasResult> {
    const req = {
      compare: [{ result: Compare_CompareResult.EQUAL, target: Compare_CompareTarget.VERSION, key, version: BigInt(expectedVersion) }],
      success: [{ requestPut: { key, value } }],
      failure: [{ requestRange: { key } }],
    };
    const res = await this.leaderCall('KV', 'Txn', req, timeoutMs);
    const term = Number(res.header?.raftTerm ?? 0n);
    if (res.succeeded) return { succeeded: true, version: expectedVersion + 1, term };
    const kv = res.responses[0]?.responseRange?.kvs[0];
    return { succeeded: false, version: kv === undefined ? 0 : Number(kv.version), term };
  }

  close(): void {
    for (const conns of this.clients) for (const c of conns) c.close();
  }

  private roundRobinEndpoint(): number {
    this.nextEndpoint = (this.nextEndpoint + 1) % this.endpoints.length;
    return this.nextEndpoint;
  }

  private async leaderCall<S extends EtcdServiceName, M extends EtcdUnaryMethod<S>>(
    service: S,
    method: M,
    req: MessageInit<EtcdRequest<S, M>>,
    timeoutMs: number,
  ): Promise<EtcdResponse<S, M>> {
    if (this.leaderEndpoint === undefined) this.rediscover();
    const endpoint = this.leaderEndpoint ?? this.roundRobinEndpoint();
    try {
      return await this.call(endpoint, service, method, req, timeoutMs);
    } catch (err) {
      // A dead or deposed leader: forget it and look again in the background.
      if (err instanceof TargetError && err.code !== 'INVALID_ARGUMENT' && this.leaderEndpoint === endpoint) {
        this.leaderEndpoint = undefined;
        this.rediscover();
      }
      throw err;
    }
  }

  /** Starts a leader discovery in the background unless one runs or one started very recently. */
  private rediscover(): void {
    const now = performance.now();
    if (this.discovery !== undefined || now - this.lastDiscoveryMs < DISCOVERY_INTERVAL_MS) return;
    this.lastDiscoveryMs = now;
    this.discovery = this.discoverLeader(1000).then(
      () => {
        this.discovery = undefined;
      },
      (err: unknown) => {
        this.discovery = undefined;
        process.stderr.write(`etcd target: leader discovery failed: ${String(err)}\n`);
      },
    );
  }

  private async call<S extends EtcdServiceName, M extends EtcdUnaryMethod<S>>(
    endpoint: number,
    service: S,
    method: M,
    req: MessageInit<EtcdRequest<S, M>>,
    timeoutMs: number,
  ): Promise<EtcdResponse<S, M>> {
    const conns = this.clients[endpoint];
    if (conns === undefined) throw new Error(`no endpoint ${endpoint}`);
    this.nextConn = (this.nextConn + 1) % conns.length;
    const client = conns[this.nextConn];
    if (client === undefined) throw new Error(`no connection ${this.nextConn} to endpoint ${endpoint}`);
    try {
      return await etcdUnary(client, service, method, req, { timeoutMs });
    } catch (err) {
      if (!isServiceError(err)) throw err;
      throw new TargetError(grpc.status[err.code] ?? `GRPC_${err.code}`, `${this.endpoints[endpoint] ?? '?'}: ${err.details}`);
    }
  }
}

function ackOf(res: { readonly header: { readonly raftTerm: bigint; readonly memberId: bigint } | null }): WriteAck {
  return { term: Number(res.header?.raftTerm ?? 0n), memberId: String(res.header?.memberId ?? 0n) };
}
