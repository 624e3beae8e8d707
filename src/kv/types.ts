// The state machine's command and result types: what goes through the Raft log and what reads return.
// Keys and values are bytes. Encoded by src/kv/codec.ts; served over gRPC by src/server.

/** A key as etcd's MVCC store reports it (mvccpb.KeyValue). Revisions are store revisions, not log indexes. */
export interface KeyValue {
  readonly key: Uint8Array;
  readonly value: Uint8Array;
  readonly createRevision: number; // revision of the put that created the key (since its last delete)
  readonly modRevision: number; // revision of the last put to the key
  readonly version: number; // puts since creation, 1 after the first
  readonly lease: number; // the lease the key is attached to, 0 for none
}

/** A key range: `end` empty means the single key `key`; use prefixEnd(key) for a prefix. */
export interface KeyRange {
  readonly key: Uint8Array;
  readonly end: Uint8Array;
}

export type SortOrder = 'none' | 'ascend' | 'descend';
export type SortTarget = 'key' | 'version' | 'create' | 'mod' | 'value';

/** etcd's RangeRequest. The optional fields are absent = etcd's default (0, NONE, KEY). */
export interface RangeRequest extends KeyRange {
  readonly limit: number; // 0 = no limit (bounded by KvLimits.maxResponseBytes)
  readonly keysOnly: boolean;
  readonly countOnly: boolean;
  readonly revision?: number; // <= 0: the current revision
  readonly sortOrder?: SortOrder;
  readonly sortTarget?: SortTarget;
  readonly minModRevision?: number; // 0 = no bound; the bounds filter kvs, not count
  readonly maxModRevision?: number;
  readonly minCreateRevision?: number;
  readonly maxCreateRevision?: number;
}

export interface RangeResult {
  readonly kvs: readonly KeyValue[];
  readonly more: boolean; // more keys matched than `limit`
  readonly count: number; // keys in the range at the revision read (before the revision filters)
  readonly revision: number; // the store revision the header reports
}

export type CompareTarget = 'value' | 'version' | 'create' | 'mod' | 'lease';
export type CompareOp = '=' | '!=' | '<' | '>';

/**
 * A missing key has version, create, mod and lease 0 and compares false on 'value' (whatever the op, as in
 * etcd). With `end` non-empty the compare holds when it holds for every key in [key, end) (true for none).
 * Numbers may be negative (etcd's int64; the adapters clamp beyond 2^53 without changing any outcome).
 */
export type Compare =
  | { readonly key: Uint8Array; readonly end?: Uint8Array; readonly target: 'value'; readonly op: CompareOp; readonly value: Uint8Array }
  | {
      readonly key: Uint8Array;
      readonly end?: Uint8Array;
      readonly target: 'version' | 'create' | 'mod' | 'lease';
      readonly op: CompareOp;
      readonly number: number;
    };

/** etcd's PutRequest: `lease` 0 = none (a negative one names no lease); ignoreValue/ignoreLease keep the key's value/lease. */
export interface PutOp {
  readonly type: 'put';
  readonly key: Uint8Array;
  readonly value: Uint8Array;
  readonly prevKv: boolean;
  readonly lease?: number;
  readonly ignoreValue?: boolean;
  readonly ignoreLease?: boolean;
}

export interface DeleteOp {
  readonly type: 'delete';
  readonly range: KeyRange;
  readonly prevKv: boolean;
}

/** etcd's TxnRequest: compares, then the ops of one branch in order (a nested txn is an op). */
export interface TxnOp {
  readonly type: 'txn';
  readonly compares: readonly Compare[];
  readonly success: readonly Op[];
  readonly failure: readonly Op[];
}

export type Op = PutOp | DeleteOp | TxnOp | { readonly type: 'range'; readonly request: RangeRequest };

/** Each result carries the revision its etcd response header reports. */
export interface PutResult {
  readonly type: 'put';
  readonly prevKv: KeyValue | undefined;
  readonly revision: number;
}

export interface DeleteResult {
  readonly type: 'delete';
  readonly deleted: number;
  readonly prevKvs: readonly KeyValue[];
  readonly revision: number;
}

export interface TxnResult {
  readonly type: 'txn';
  readonly succeeded: boolean;
  readonly results: readonly OpResult[];
  readonly revision: number; // a nested txn's is 0 (as etcd's)
}

export type OpResult = PutResult | DeleteResult | TxnResult | { readonly type: 'range'; readonly result: RangeResult };

/** etcd's CompactionRequest: history below `revision` goes; `physical` answers once it is gone from disk. */
export interface CompactOp {
  readonly type: 'compact';
  readonly revision: number;
  readonly physical: boolean;
}

/**
 * etcd's LeaseGrant: the id is chosen before proposing (the same on every replica) and the TTL is already
 * raised to the minimum (leases.ts); a lease that exists is LEASE_EXISTS.
 */
export interface LeaseGrantOp {
  readonly type: 'lease-grant';
  readonly id: number; // > 0, a safe integer
  readonly ttlSeconds: number;
}

/** etcd's LeaseRevoke (also what the leader proposes for an expired lease): its keys go in one revision. */
export interface LeaseRevokeOp {
  readonly type: 'lease-revoke';
  readonly id: number;
}

/** etcd's LeaseCheckpoint: the leader's remaining TTLs, so a new leader does not restart long leases from the full TTL. */
export interface LeaseCheckpointOp {
  readonly type: 'lease-checkpoint';
  readonly checkpoints: readonly { readonly id: number; readonly remainingSeconds: number }[];
}

/** etcd's alarm types raftkv raises (etcd's AlarmType names; NONE only appears on the wire). */
export type AlarmType = 'NOSPACE' | 'CORRUPT';

/** One raised alarm: which member raised it, and what (etcd's AlarmMember). */
export interface AlarmMember {
  readonly memberId: number;
  readonly alarm: AlarmType;
}

/** etcd's AlarmRequest ACTIVATE/DEACTIVATE: through the log, so every member holds the same alarms (alarms.ts). */
export interface AlarmOp {
  readonly type: 'alarm';
  readonly action: 'activate' | 'deactivate';
  readonly memberId: number;
  readonly alarm: AlarmType;
}

/** etcd's authpb.Permission type: what a role may do on a key or a key range. */
export type PermissionType = 'read' | 'write' | 'readwrite';

/** One permission of a role: `end` empty = the one key; "\0" = every key >= key (etcd's from-key). */
export interface Permission {
  readonly type: PermissionType;
  readonly key: Uint8Array;
  readonly end: Uint8Array;
}

/**
 * A change to the auth store (etcd's Auth* requests, auth-store.ts). Passwords arrive hashed: the member that
 * received the request hashed (or, for authenticate, verified) it before proposing, so apply stays fast and
 * deterministic. `by` is the authenticated caller ('' for none): with auth on, apply checks it has the root role.
 */
export type AuthChange =
  | { readonly kind: 'enable' }
  | { readonly kind: 'disable' }
  // verifiedHash: the password hash the receiving member checked the password against; a user whose hash changed
  // since (or who is gone) is refused as etcd's ErrAuthFailed. token: the simple token every member assigns.
  | { readonly kind: 'authenticate'; readonly name: string; readonly verifiedHash: string; readonly token: string }
  | { readonly kind: 'user-add'; readonly name: string; readonly hash: string; readonly noPassword: boolean }
  | { readonly kind: 'user-delete'; readonly name: string }
  | { readonly kind: 'user-change-password'; readonly name: string; readonly hash: string }
  | { readonly kind: 'user-grant-role'; readonly name: string; readonly role: string }
  | { readonly kind: 'user-revoke-role'; readonly name: string; readonly role: string }
  | { readonly kind: 'role-add'; readonly name: string }
  | { readonly kind: 'role-delete'; readonly name: string }
  | { readonly kind: 'role-grant-permission'; readonly name: string; readonly permission: Permission }
  | { readonly kind: 'role-revoke-permission'; readonly name: string; readonly key: Uint8Array; readonly end: Uint8Array };

export interface AuthOp {
  readonly type: 'auth';
  readonly by: string;
  readonly change: AuthChange;
}

/** A write command: applied through the log. Compare-and-swap is a txn with one compare. */
export type Command = PutOp | DeleteOp | TxnOp | CompactOp | LeaseGrantOp | LeaseRevokeOp | LeaseCheckpointOp | AlarmOp | AuthOp;

export type CommandResult =
  | PutResult
  | DeleteResult
  | TxnResult
  | { readonly type: 'compact'; readonly revision: number }
  | { readonly type: 'lease-grant'; readonly id: number; readonly ttlSeconds: number; readonly revision: number }
  | { readonly type: 'lease-revoke'; readonly revision: number }
  | { readonly type: 'lease-checkpoint'; readonly revision: number }
  // the alarm that changed (none when it already was so), as etcd's AlarmResponse lists it
  | { readonly type: 'alarm'; readonly alarms: readonly AlarmMember[]; readonly revision: number }
  // the auth store's revision after the change (etcd's auth revision), and the store revision for the header
  // token: an authenticate's simple token ('' for other changes)
  | { readonly type: 'auth'; readonly authRevision: number; readonly revision: number; readonly token: string };

/** A lease as the state machine holds it (the deadline is the leader's, in memory: node/lessor.ts). */
export interface Lease {
  readonly id: number;
  readonly ttlSeconds: number; // as granted (after the minimum)
  readonly remainingSeconds: number; // the last checkpoint's remaining TTL, 0 = none (the full TTL counts)
}

/** One change to one key, as a watch sees it (etcd's mvccpb.Event before prev_kv is looked up). */
export interface KvEvent {
  readonly type: 'put' | 'delete';
  readonly kv: KeyValue; // a delete's has only key and modRevision (etcd's tombstone)
  readonly prevKv: KeyValue | undefined; // the key before this change (undefined: it did not exist)
  readonly sub: number; // the change's sub-revision within kv.modRevision
}

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
  readonly maxTxnOps: number; // default 128 (etcd's --max-txn-ops): compares, and each branch, at most this many
  // default 64 MiB: a range answer (keys and values) beyond it fails with RESOURCE_EXHAUSTED rather than
  // building an answer the client's gRPC receive limit would refuse anyway (etcd has none; its clients'
  // default receive limit is 2 GiB, ours cannot hold that in one Node buffer)
  readonly maxResponseBytes: number;
}

export const DEFAULT_KV_LIMITS: KvLimits = {
  maxKeyBytes: 1536,
  maxValueBytes: 1024 * 1024,
  maxTxnOps: 128,
  maxResponseBytes: 64 * 1024 * 1024,
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
