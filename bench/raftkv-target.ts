// The raftkv target: our client library (src/client, KvClient) as a user gets it: leader discovery,
// redirects, retries with backoff, at-most-once write sessions. Serializable reads are spread over every
// member (one KvClient per member, each listing that member first), as the etcd target spreads them.
import { KvClient } from '../src/client/index.js';
import type { DialTlsConfig } from '../src/client/index.js';
import type { BenchTarget, CasResult, GetResult, WriteAck } from './target.js';

export class RaftKvTarget implements BenchTarget {
  readonly name = 'raftkv';
  private nextReader = 0; // round-robin cursor over readers

  private constructor(
    readonly endpoints: readonly string[],
    private readonly main: KvClient, // writes and linearizable reads (follows the leader)
    private readonly readers: readonly KvClient[], // readers[i] prefers endpoints[i] (serializable reads)
  ) {}

  static create(endpoints: readonly string[], transport: 'stream' | 'unary' = 'stream', tls?: DialTlsConfig): RaftKvTarget {
    const rotated = endpoints.map((_, i) => [...endpoints.slice(i), ...endpoints.slice(0, i)]);
    const dial = tls !== undefined ? { tls } : {};
    const readers = rotated.map((eps) => new KvClient({ endpoints: eps, transport, ...dial }));
    return new RaftKvTarget(endpoints, new KvClient({ endpoints, transport, ...dial }), readers);
  }

  async put(key: Uint8Array, value: Uint8Array, timeoutMs: number): Promise<WriteAck> {
    const r = await this.main.put(key, value, { timeoutMs });
    return { term: r.header.term, memberId: String(r.header.memberId) };
  }

  async putMany(kvs: readonly { readonly key: Uint8Array; readonly value: Uint8Array }[], timeoutMs: number): Promise<WriteAck> {
    const r = await this.main.txn({ success: kvs.map((kv) => ({ type: 'put' as const, key: kv.key, value: kv.value })) }, { timeoutMs });
    return { term: r.header.term, memberId: String(r.header.memberId) };
  }

  async get(key: Uint8Array, serializable: boolean, timeoutMs: number): Promise<GetResult> {
    let client = this.main;
    if (serializable) {
      this.nextReader = (this.nextReader + 1) % this.readers.length;
      client = this.readers[this.nextReader] ?? this.main;
    }
    const r = await client.get(key, { serializable, timeoutMs });
    return r.kv === undefined ? { found: false, version: 0 } : { found: true, version: r.kv.version };
  }

  async compareAndSwap(key: Uint8Array, expectedVersion: number, value: Uint8Array, timeoutMs: number): Promise<CasResult> {
    const r = await this.main.txn(
      {
        compares: [{ key, target: 'version', op: '=', number: expectedVersion }],
        success: [{ type: 'put', key, value }],
        failure: [{ type: 'range', range: { key, end: new Uint8Array(0) } }],
      },
      { timeoutMs },
    );
    if (r.succeeded) return { succeeded: true, version: expectedVersion + 1, term: r.header.term };
    const first = r.results[0];
    const kv = first?.type === 'range' ? first.result.kvs[0] : undefined;
    return { succeeded: false, version: kv?.version ?? 0, term: r.header.term };
  }

  close(): void {
    this.main.close();
    for (const c of this.readers) c.close();
  }
}
