// The raftkv client library's public entry point.
export { KvClient, hashHex, text, toBytes } from './kv-client.js';
export type {
  Bytes,
  CallOpts,
  ClientOpResult,
  DeleteResult,
  GetResult,
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
export { clientCredentials, resolveDial } from './dial-options.js';
export type { DialOptions, DialTlsConfig, ResolvedDial } from './dial-options.js';
