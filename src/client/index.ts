// The raftkv client library's public entry point.
export { KvClient, hashHex, text, toBytes } from './kv-client.js';
export type {
  Bytes,
  CallOpts,
  ClientOpResult,
  DeleteResult,
  GetResult,
  DefragmentResult,
  HashKvResult,
  KvClientOptions,
  MembersResult,
  PutResult,
  RangeResponse,
  RangeSpec,
  SnapshotSaveResult,
  StatusResult,
  TxnCompare,
  TxnOp,
  TxnResult,
} from './kv-client.js';
export { RaftKvError, isRaftKvError } from '../shared/errors.js';
export type { ErrorCode, LeaderHint } from '../shared/errors.js';
export type { Member } from '../shared/member.js';
export type { ResponseHeader } from '../shared/responses.js';
export type { KeyValue } from '../kv/types.js';
export { CoordClient } from './coord-client.js';
export type { HeldLock, SessionOptions } from './coord-client.js';
export { EtcdChannel } from './etcd-channel.js';
export type { CallKind, EtcdChannelOptions } from './etcd-channel.js';
export { Watcher, WatchCompactedError } from './watch.js';
export type { EtcdKeyValue, WatchBatch, WatchEvent, WatchOptions } from './watch.js';
export { Lease, grantLease, keepAliveOnce, leaseIdHex, leaseTimeToLive, listLeases, parseLeaseId, revokeLease } from './lease.js';
export type { LeaseLost, LeaseLostReason, LeaseTimeToLive } from './lease.js';
export { DEFAULT_SESSION_TTL_SECONDS, Election, Mutex, Session, electionLeader, observeElection } from './concurrency.js';
export type { ElectionLeader } from './concurrency.js';
export { clientCredentials, resolveDial } from './dial-options.js';
export type { DialOptions, DialTlsConfig, DialUser, ResolvedDial } from './dial-options.js';
// etcd's permission types (authpb.Permission), for the auth commands and other Auth service callers.
export { Permission_Type } from '../protocol/etcd-types.js';
export type { Permission as EtcdPermission } from '../protocol/etcd-types.js';
