// What the load generator needs from a system under test. One implementation per target (etcd over its own
// gRPC API, raftkv over our KvClient), so every workload runs the same code against both.

export type TargetName = 'raftkv' | 'etcd';

export interface WriteAck {
  readonly term: number; // the Raft term the write was acknowledged in (shows a failover)
  readonly memberId: string; // the member that answered (the leader, for a write routed to it)
}

export interface GetResult {
  readonly found: boolean;
  readonly version: number; // puts since creation; 0 when absent
}

export interface CasResult {
  readonly succeeded: boolean;
  /** After success: the key's new version. After a failed compare: its current version (learned in the same round-trip). */
  readonly version: number;
  readonly term: number;
}

export interface BenchTarget {
  readonly name: TargetName;
  /** host:port of every member's client endpoint (for pid discovery and reports). */
  readonly endpoints: readonly string[];
  put(key: Uint8Array, value: Uint8Array, timeoutMs: number): Promise<WriteAck>;
  get(key: Uint8Array, serializable: boolean, timeoutMs: number): Promise<GetResult>;
  /** Puts `value` iff the key's version is `expectedVersion` (0 = absent): one transaction, one round-trip. */
  compareAndSwap(key: Uint8Array, expectedVersion: number, value: Uint8Array, timeoutMs: number): Promise<CasResult>;
  /** Puts several keys in one transaction (bulk loading; at most 128 ops, both systems' default limit). */
  putMany(kvs: readonly { readonly key: Uint8Array; readonly value: Uint8Array }[], timeoutMs: number): Promise<WriteAck>;
  close(): void;
}

/** An operation failed in an expected way: `code` is a stable name (gRPC status name or RaftKvError code). */
export class TargetError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'TargetError';
  }
}

export function errorCode(err: unknown): string {
  if (err instanceof TargetError) return err.code;
  if (err instanceof Error && 'code' in err && typeof err.code === 'string') return err.code;
  throw err; // anything else is a bug in the benchmark: crash loudly
}
