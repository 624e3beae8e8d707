// The state machine's command and result types: what goes through the Raft log and what reads return.
// Keys and values are bytes. Encoded by src/kv/codec.ts; served over gRPC by src/server.

/** etcd-style key metadata: a user can build fencing tokens from modIndex or version. */
export interface KeyValue {
  readonly key: Uint8Array;
  readonly value: Uint8Array;
  readonly createIndex: number; // log index of the put that created the key (since its last delete)
  readonly modIndex: number; // log index of the last put to the key
  readonly version: number; // puts since creation, 1 after the first
}

/** A key range: `end` empty means the single key `key`; use prefixEnd(key) for a prefix. */
export interface KeyRange {
  readonly key: Uint8Array;
  readonly end: Uint8Array;
}

export interface RangeRequest extends KeyRange {
  readonly limit: number; // 0 = the server's maximum
  readonly keysOnly: boolean;
  readonly countOnly: boolean;
}

export interface RangeResult {
  readonly kvs: readonly KeyValue[];
  readonly more: boolean; // more keys matched than `limit`
  readonly count: number; // keys matched in all
}

export type CompareTarget = 'value' | 'version' | 'create' | 'mod';
export type CompareOp = '=' | '!=' | '<' | '>';

/** A missing key has version 0, create 0, mod 0 and compares as absent on 'value' (never equal). */
export type Compare =
  | { readonly key: Uint8Array; readonly target: 'value'; readonly op: CompareOp; readonly value: Uint8Array }
  | { readonly key: Uint8Array; readonly target: 'version' | 'create' | 'mod'; readonly op: CompareOp; readonly number: number };

export type Op =
  | { readonly type: 'put'; readonly key: Uint8Array; readonly value: Uint8Array; readonly prevKv: boolean }
  | { readonly type: 'delete'; readonly range: KeyRange; readonly prevKv: boolean }
  | { readonly type: 'range'; readonly request: RangeRequest };

export type OpResult =
  | { readonly type: 'put'; readonly prevKv: KeyValue | undefined }
  | { readonly type: 'delete'; readonly deleted: number; readonly prevKvs: readonly KeyValue[] }
  | { readonly type: 'range'; readonly result: RangeResult };

/** A write command: applied through the log. Compare-and-swap is a txn with one compare. */
export type Command =
  | { readonly type: 'put'; readonly key: Uint8Array; readonly value: Uint8Array; readonly prevKv: boolean }
  | { readonly type: 'delete'; readonly range: KeyRange; readonly prevKv: boolean }
  | {
      readonly type: 'txn';
      readonly compares: readonly Compare[];
      readonly success: readonly Op[];
      readonly failure: readonly Op[];
    };

export type CommandResult =
  | { readonly type: 'put'; readonly prevKv: KeyValue | undefined }
  | { readonly type: 'delete'; readonly deleted: number; readonly prevKvs: readonly KeyValue[] }
  | { readonly type: 'txn'; readonly succeeded: boolean; readonly results: readonly OpResult[] };

/**
 * What a normal log entry carries: a client session id and sequence number (at-most-once apply of retries),
 * and the command. clientId "" with seq 0 means no session (not deduplicated).
 */
export interface Envelope {
  readonly clientId: string;
  readonly seq: number;
  readonly command: Command;
}

/** Named limits, enforced on the way in (typed errors) and again on apply. */
export interface KvLimits {
  readonly maxKeyBytes: number; // default 1536 (etcd has no fixed key limit; Consul's is 512 bytes of path)
  readonly maxValueBytes: number; // default 1 MiB (etcd's default request limit is 1.5 MiB)
  readonly maxTxnOps: number; // default 128 (etcd's --max-txn-ops)
  readonly maxRangeLimit: number; // default 10_000 keys per range response
}

export const DEFAULT_KV_LIMITS: KvLimits = {
  maxKeyBytes: 1536,
  maxValueBytes: 1024 * 1024,
  maxTxnOps: 128,
  maxRangeLimit: 10_000,
};

/** The end of the range of every key that starts with `prefix` (etcd's GetPrefixRangeEnd). */
export function prefixEnd(prefix: Uint8Array): Uint8Array {
  const end = Uint8Array.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    const b = end[i];
    if (b !== undefined && b < 0xff) {
      end[i] = b + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Uint8Array.of(0); // every key: "\0" as end means "to the end of the keyspace"
}

/** The subset of a pino logger the state machine uses. */
export interface KvLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}
