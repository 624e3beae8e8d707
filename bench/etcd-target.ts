// The etcd target: etcd's v3 gRPC API (KV.Put, KV.Range, KV.Txn, Maintenance.Status) over @grpc/grpc-js, with
// the message subset in bench/proto/etcd-kv.proto encoded by protobufjs. Writes and linearizable reads go to
// the leader (found with Maintenance.Status, re-found after a failure), as our KvClient does for raftkv, so the
// comparison measures the servers and not an extra follower-to-leader forwarding hop; serializable reads are
// spread over every member.
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { REPO_ROOT } from '../cluster/serve-process.js';
import { TargetError, type BenchTarget, type CasResult, type GetResult, type WriteAck } from './target.js';

type Obj = Record<string, unknown>;

const DISCOVERY_INTERVAL_MS = 50; // while no leader is known, look for one at most this often

interface Codec {
  readonly encode: (message: Obj) => Buffer;
  readonly decode: (bytes: Buffer) => Obj;
}

function loadCodecs(): Map<string, Codec> {
  const root = protobuf.loadSync(join(REPO_ROOT, 'bench', 'proto', 'etcd-kv.proto'));
  const codecs = new Map<string, Codec>();
  for (const name of [
    'RangeRequest',
    'RangeResponse',
    'PutRequest',
    'PutResponse',
    'TxnRequest',
    'TxnResponse',
    'StatusRequest',
    'StatusResponse',
  ]) {
    const type = root.lookupType(`etcdserverpb.${name}`);
    codecs.set(name, {
      encode: (message) => {
        const err = type.verify(message);
        if (err !== null) throw new Error(`bad etcdserverpb.${name}: ${err}`);
        return Buffer.from(type.encode(type.fromObject(message)).finish());
      },
      decode: (bytes) => type.toObject(type.decode(bytes), { longs: String, defaults: true }),
    });
  }
  return codecs;
}

function field(obj: Obj, name: string): unknown {
  return obj[name];
}

function objField(obj: Obj, name: string): Obj {
  const v = obj[name];
  if (typeof v !== 'object' || v === null) throw new Error(`etcd response without ${name}`);
  return v as Obj;
}

function numField(obj: Obj, name: string): number {
  const v = obj[name];
  if (typeof v === 'string' || typeof v === 'number') return Number(v);
  throw new Error(`etcd response field ${name} is not a number`);
}

function strField(obj: Obj, name: string): string {
  const v = obj[name];
  if (typeof v === 'string' || typeof v === 'number') return String(v);
  throw new Error(`etcd response field ${name} is not a string`);
}

function arrField(obj: Obj, name: string): Obj[] {
  const v = obj[name];
  if (!Array.isArray(v)) throw new Error(`etcd response field ${name} is not a list`);
  return v as Obj[];
}

export interface EtcdTargetOptions {
  readonly endpoints: readonly string[]; // host:port of each member's client URL
  readonly connsPerEndpoint: number; // HTTP/2 connections per member (etcd benchmark's --conns)
}

export class EtcdTarget implements BenchTarget {
  readonly name = 'etcd';
  readonly endpoints: readonly string[];
  private readonly codecs = loadCodecs();
  private readonly clients: grpc.Client[][]; // clients[endpoint][conn]
  private nextConn = 0; // round-robin cursor over connections
  private nextEndpoint = 0; // round-robin cursor for serializable reads and when no leader is known
  private leaderEndpoint: number | undefined; // index into endpoints of the last known leader
  private discovery: Promise<void> | undefined; // the leader discovery in progress, if any
  private lastDiscoveryMs = 0; // when the last discovery started (at most one per DISCOVERY_INTERVAL_MS)

  constructor(opts: EtcdTargetOptions) {
    if (opts.endpoints.length === 0) throw new Error('etcd target needs at least one endpoint');
    this.endpoints = opts.endpoints;
    this.clients = opts.endpoints.map((ep) =>
      Array.from(
        { length: Math.max(1, opts.connsPerEndpoint) },
        (_, i) =>
          new grpc.Client(ep, grpc.credentials.createInsecure(), {
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
      this.endpoints.map((_, i) => this.call(i, '/etcdserverpb.Maintenance/Status', 'StatusRequest', 'StatusResponse', {}, timeoutMs)),
    );
    let leaderId: string | undefined;
    const memberIds: (string | undefined)[] = [];
    for (const s of statuses) {
      if (s.status === 'fulfilled') {
        memberIds.push(strField(objField(s.value, 'header'), 'memberId'));
        const leader = strField(s.value, 'leader');
        if (leader !== '0') leaderId = leader;
      } else {
        memberIds.push(undefined);
      }
    }
    const idx = leaderId === undefined ? -1 : memberIds.indexOf(leaderId);
    this.leaderEndpoint = idx >= 0 ? idx : undefined;
    return this.leaderEndpoint;
  }

  async put(key: Uint8Array, value: Uint8Array, timeoutMs: number): Promise<WriteAck> {
    const res = await this.leaderCall('/etcdserverpb.KV/Put', 'PutRequest', 'PutResponse', { key, value }, timeoutMs);
    const header = objField(res, 'header');
    return { term: numField(header, 'raftTerm'), memberId: strField(header, 'memberId') };
  }

  async putMany(kvs: readonly { readonly key: Uint8Array; readonly value: Uint8Array }[], timeoutMs: number): Promise<WriteAck> {
    const req = { compare: [], success: kvs.map((kv) => ({ requestPut: { key: kv.key, value: kv.value } })), failure: [] };
    const res = await this.leaderCall('/etcdserverpb.KV/Txn', 'TxnRequest', 'TxnResponse', req, timeoutMs);
    const header = objField(res, 'header');
    return { term: numField(header, 'raftTerm'), memberId: strField(header, 'memberId') };
  }

  async get(key: Uint8Array, serializable: boolean, timeoutMs: number): Promise<GetResult> {
    const req = { key, serializable };
    const res = serializable
      ? await this.call(this.roundRobinEndpoint(), '/etcdserverpb.KV/Range', 'RangeRequest', 'RangeResponse', req, timeoutMs)
      : await this.leaderCall('/etcdserverpb.KV/Range', 'RangeRequest', 'RangeResponse', req, timeoutMs);
    const kv = arrField(res, 'kvs')[0];
    return kv === undefined ? { found: false, version: 0 } : { found: true, version: numField(kv, 'version') };
  }

  async compareAndSwap(key: Uint8Array, expectedVersion: number, value: Uint8Array, timeoutMs: number): Promise<CasResult> {
    const req = {
      compare: [{ result: 0 /* EQUAL */, target: 0 /* VERSION */, key, version: expectedVersion }],
      success: [{ requestPut: { key, value } }],
      failure: [{ requestRange: { key } }],
    };
    const res = await this.leaderCall('/etcdserverpb.KV/Txn', 'TxnRequest', 'TxnResponse', req, timeoutMs);
    const term = numField(objField(res, 'header'), 'raftTerm');
    if (field(res, 'succeeded') === true) return { succeeded: true, version: expectedVersion + 1, term };
    const range = arrField(res, 'responses')[0];
    const kv = range === undefined ? undefined : arrField(objField(range, 'responseRange'), 'kvs')[0];
    return { succeeded: false, version: kv === undefined ? 0 : numField(kv, 'version'), term };
  }

  close(): void {
    for (const conns of this.clients) for (const c of conns) c.close();
  }

  private roundRobinEndpoint(): number {
    this.nextEndpoint = (this.nextEndpoint + 1) % this.endpoints.length;
    return this.nextEndpoint;
  }

  private async leaderCall(method: string, reqType: string, resType: string, req: Obj, timeoutMs: number): Promise<Obj> {
    if (this.leaderEndpoint === undefined) this.rediscover();
    const endpoint = this.leaderEndpoint ?? this.roundRobinEndpoint();
    try {
      return await this.call(endpoint, method, reqType, resType, req, timeoutMs);
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

  private call(endpoint: number, method: string, reqType: string, resType: string, req: Obj, timeoutMs: number): Promise<Obj> {
    const conns = this.clients[endpoint];
    if (conns === undefined) throw new Error(`no endpoint ${endpoint}`);
    this.nextConn = (this.nextConn + 1) % conns.length;
    const client = conns[this.nextConn];
    const reqCodec = this.codecs.get(reqType);
    const resCodec = this.codecs.get(resType);
    if (client === undefined || reqCodec === undefined || resCodec === undefined) throw new Error(`bad call ${method}`);
    return new Promise<Obj>((resolve, reject) => {
      client.makeUnaryRequest(
        method,
        reqCodec.encode,
        resCodec.decode,
        req,
        new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs },
        (err: grpc.ServiceError | null, res?: Obj) => {
          if (err !== null) {
            reject(new TargetError(grpc.status[err.code] ?? `GRPC_${err.code}`, `${this.endpoints[endpoint] ?? '?'}: ${err.details}`));
          } else if (res === undefined) {
            reject(new Error(`${method}: empty response`));
          } else {
            resolve(res);
          }
        },
      );
    });
  }
}
