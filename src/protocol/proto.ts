// The one place proto/raftkv.proto is loaded (proto-loader): camelCase fields, bytes as Buffer, 64-bit integers
// as JS numbers, enums as strings, defaults filled in, oneofs as a virtual field naming the set member.
// Services, clients and the peer transport all take their method definitions and wire types from here.
import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import { findProtoFile } from './proto-dir.js';
import { strictRequestDeserialize } from './strict-wire.js';

export const PROTO_FILE = findProtoFile('raftkv.proto');

const packageDefinition = loadSync(PROTO_FILE, {
  keepCase: false,
  longs: Number,
  enums: String,
  bytes: Buffer,
  defaults: true,
  arrays: true,
  oneofs: true,
});

// The same file as protobufjs reflection, for the strict wire check of every request (strict-wire.ts).
const reflection = new protobuf.Root().loadSync(PROTO_FILE, { keepCase: false });
reflection.resolveAll();

/** A service whose requests decode only from well-formed bytes (servers refuse others: INVALID_ARGUMENT). */
function service(name: string): ServiceDefinition {
  const def = packageDefinition[`raftkv.v1.${name}`];
  if (def === undefined || 'format' in def) throw new Error(`service raftkv.v1.${name} missing from ${PROTO_FILE}`);
  const methods = reflection.lookupService(`raftkv.v1.${name}`);
  return Object.fromEntries(
    Object.entries(def).map(([methodName, m]) => {
      const requestType = methods.methods[methodName]?.resolvedRequestType;
      if (requestType === undefined || requestType === null) throw new Error(`raftkv.v1.${name}.${methodName}: request type not resolved`);
      return [methodName, { ...m, requestDeserialize: strictRequestDeserialize(requestType, m.requestDeserialize) }];
    }),
  );
}

export const KV_SERVICE = service('KV');
export const ADMIN_SERVICE = service('Admin');
export const PEER_SERVICE = service('Peer');

/** Bytes a request carries in its byte and string fields (what --max-request-bytes bounds). */
export function requestBytes(value: unknown): number {
  if (value instanceof Uint8Array) return value.byteLength;
  if (typeof value === 'string') return value.length;
  if (typeof value === 'number' || typeof value === 'boolean') return 8;
  if (Array.isArray(value)) return value.reduce((n: number, v) => n + requestBytes(v), 0);
  if (value !== null && typeof value === 'object') {
    let n = 0;
    for (const v of Object.values(value)) n += requestBytes(v);
    return n;
  }
  return 0;
}

function method<Req, Res>(svc: ServiceDefinition, name: string): MethodDefinition<Req, Res> {
  const m = svc[name];
  if (m === undefined) throw new Error(`method ${name} missing from ${PROTO_FILE}`);
  return m as MethodDefinition<Req, Res>;
}

// ------------------------------------------------------------------ wire types (as proto-loader decodes them)
// Requests may omit fields (proto defaults); responses arrive with every field set (null for an unset message).

export interface WireHeader {
  memberId: number;
  term: number;
  index: number;
  leaderId: number;
  revision: number;
}
export interface WireKeyValue {
  key: Buffer;
  value: Buffer;
  createRevision: number;
  modRevision: number;
  version: number;
  lease: number;
}
export interface WirePutRequest {
  key: Uint8Array;
  value: Uint8Array;
  prevKv?: boolean;
  clientId?: string;
  seq?: number;
  /** A client sends a lease id as a decimal string (lossless on the wire); a server reads a number (longs: Number). */
  lease?: number | string;
}
export interface WirePutResponse {
  header: WireHeader | null;
  prevKv: WireKeyValue | null;
}
export interface WireGetRequest {
  key: Uint8Array;
  serializable?: boolean;
}
export interface WireGetResponse {
  header: WireHeader | null;
  kv: WireKeyValue | null;
}
export interface WireRangeRequest {
  key: Uint8Array;
  end?: Uint8Array;
  limit?: number;
  keysOnly?: boolean;
  countOnly?: boolean;
  serializable?: boolean;
  revision?: number;
}
export interface WireRangeResponse {
  header: WireHeader | null;
  kvs: WireKeyValue[];
  more: boolean;
  count: number;
}
export interface WireDeleteRequest {
  key: Uint8Array;
  end?: Uint8Array;
  prevKv?: boolean;
  clientId?: string;
  seq?: number;
}
export interface WireDeleteResponse {
  header: WireHeader | null;
  deleted: number;
  prevKvs: WireKeyValue[];
}
export type WireCompareTarget = 'VALUE' | 'VERSION' | 'CREATE' | 'MOD' | 'LEASE';
export type WireCompareOp = 'EQUAL' | 'NOT_EQUAL' | 'LESS' | 'GREATER';
export interface WireCompare {
  key: Uint8Array;
  target: WireCompareTarget;
  op: WireCompareOp;
  value?: Uint8Array;
  number?: number;
}
export interface WirePutOp {
  key: Uint8Array;
  value: Uint8Array;
  prevKv?: boolean;
  lease?: number | string; // as WirePutRequest.lease
}
export interface WireDeleteOp {
  key: Uint8Array;
  end?: Uint8Array;
  prevKv?: boolean;
}
export interface WireRangeOp {
  key: Uint8Array;
  end?: Uint8Array;
  limit?: number;
  keysOnly?: boolean;
  countOnly?: boolean;
}
export interface WireRequestOp {
  op?: 'put' | 'delete' | 'range';
  put?: WirePutOp | null;
  delete?: WireDeleteOp | null;
  range?: WireRangeOp | null;
}
export interface WireResponseOp {
  result?: 'put' | 'delete' | 'range';
  put?: { prevKv: WireKeyValue | null } | null;
  delete?: { deleted: number; prevKvs: WireKeyValue[] } | null;
  range?: { kvs: WireKeyValue[]; more: boolean; count: number } | null;
}
export interface WireTxnRequest {
  compares: WireCompare[];
  success: WireRequestOp[];
  failure: WireRequestOp[];
  clientId?: string;
  seq?: number;
}
export interface WireTxnResponse {
  header: WireHeader | null;
  succeeded: boolean;
  results: WireResponseOp[];
}
/** One call on the KV Stream (`request` names the set member of the oneof). */
export interface WireStreamCall {
  id: number;
  timeoutMs?: number;
  request?: 'put' | 'get' | 'range' | 'delete' | 'txn';
  put?: WirePutRequest | null;
  get?: WireGetRequest | null;
  range?: WireRangeRequest | null;
  delete?: WireDeleteRequest | null;
  txn?: WireTxnRequest | null;
}
export interface WireStreamCalls {
  calls: WireStreamCall[];
}
export interface WireStreamError {
  code: number;
  details: string;
  metadata: Record<string, string>;
}
export interface WireStreamAnswer {
  id: number;
  response?: 'put' | 'get' | 'range' | 'delete' | 'txn' | 'error';
  put?: WirePutResponse | null;
  get?: WireGetResponse | null;
  range?: WireRangeResponse | null;
  delete?: WireDeleteResponse | null;
  txn?: WireTxnResponse | null;
  error?: WireStreamError | null;
}
export interface WireStreamAnswers {
  answers: WireStreamAnswer[];
}
export interface WireMember {
  id: number;
  peerAddress: string;
  clientAddress: string;
  learner: boolean;
}
export interface WireStatusResponse {
  header: WireHeader | null;
  id: number;
  clusterId: string;
  clientAddress: string;
  role: string;
  term: number;
  leaderId: number;
  commitIndex: number;
  appliedIndex: number;
  lastLogIndex: number;
  snapshotIndex: number;
  dataSizeBytes: number;
  members: WireMember[];
  progress: { id: number; match: number; state: string }[];
  revision: number;
  compactedRevision: number;
  metricsUrl: string;
}
export type WireEmpty = Record<string, never>;
export interface WireMemberAddRequest {
  member: WireMember | null;
}
export interface WireIdRequest {
  id: number;
}
export interface WireMemberListResponse {
  header: WireHeader | null;
  members: WireMember[];
}
export interface WireTransferLeaderRequest {
  to: number;
}
export interface WireTransferLeaderResponse {
  header: WireHeader | null;
}
export interface WireSnapshotSaveChunk {
  data: Buffer;
  sha256: string;
  totalBytes: number;
  header: WireHeader | null;
}
export interface WireHashKvRequest {
  index?: number; // 0 = the current applied index
}
/** The digest's 64-bit hash travels as two uint32 lanes (a uint64 would not survive `longs: Number`). */
export interface WireHashKvResponse {
  header: WireHeader | null;
  memberId: number;
  index: number;
  hashLane1: number;
  hashLane2: number;
  keyCount: number;
}
export interface WireDefragmentResponse {
  header: WireHeader | null;
  memberId: number;
  beforeBytes: number;
  afterBytes: number;
  tookMs: number;
}
export interface WirePeerBatch {
  clusterId: string;
  from: number;
  to: number;
  payload: Buffer;
  incarnation?: string;
  known?: { id: number; incarnation: string; recordedAt: number }[];
}
export interface WireSnapshotChunk {
  clusterId?: string;
  from?: number;
  to?: number;
  message?: Uint8Array;
  totalBytes?: number;
  data?: Uint8Array;
  sha256?: string;
  incarnation?: string;
}
export interface WireSnapshotAck {
  receivedBytes: number;
}

export interface WireCompactRequest {
  revision?: number;
  physical?: boolean;
}
export interface WireCompactResponse {
  header: WireHeader | null;
}

export const KV_METHODS = {
  put: method<WirePutRequest, WirePutResponse>(KV_SERVICE, 'Put'),
  get: method<WireGetRequest, WireGetResponse>(KV_SERVICE, 'Get'),
  range: method<WireRangeRequest, WireRangeResponse>(KV_SERVICE, 'Range'),
  delete: method<WireDeleteRequest, WireDeleteResponse>(KV_SERVICE, 'Delete'),
  txn: method<WireTxnRequest, WireTxnResponse>(KV_SERVICE, 'Txn'),
  compact: method<WireCompactRequest, WireCompactResponse>(KV_SERVICE, 'Compact'),
  stream: method<WireStreamCalls, WireStreamAnswers>(KV_SERVICE, 'Stream'),
};

export const ADMIN_METHODS = {
  status: method<WireEmpty, WireStatusResponse>(ADMIN_SERVICE, 'Status'),
  memberList: method<WireEmpty, WireMemberListResponse>(ADMIN_SERVICE, 'MemberList'),
  memberAdd: method<WireMemberAddRequest, WireMemberListResponse>(ADMIN_SERVICE, 'MemberAdd'),
  memberRemove: method<WireIdRequest, WireMemberListResponse>(ADMIN_SERVICE, 'MemberRemove'),
  memberPromote: method<WireIdRequest, WireMemberListResponse>(ADMIN_SERVICE, 'MemberPromote'),
  transferLeader: method<WireTransferLeaderRequest, WireTransferLeaderResponse>(ADMIN_SERVICE, 'TransferLeader'),
  snapshotSave: method<WireEmpty, WireSnapshotSaveChunk>(ADMIN_SERVICE, 'SnapshotSave'),
  hashKv: method<WireHashKvRequest, WireHashKvResponse>(ADMIN_SERVICE, 'HashKV'),
  defragment: method<WireEmpty, WireDefragmentResponse>(ADMIN_SERVICE, 'Defragment'),
};

export interface WireForwardRequest {
  clusterId: string;
  envelope: Uint8Array;
  timeoutMs: number;
}
export interface WireForwardResponse {
  result: Buffer;
  index: number;
  term: number;
  leaderId: number;
}

export interface WireLeaseForwardRequest {
  clusterId: string;
  leaseId: number;
  timeToLive: boolean;
  keys: boolean;
  timeoutMs: number;
}
export interface WireLeaseForwardResponse {
  found: boolean;
  ttl: number;
  grantedTtl: number;
  keys: Uint8Array[];
  term: number;
  leaderId: number;
}

export interface WireMemberForwardRequest {
  clusterId: string;
  change: string;
  memberId: number;
  peerAddress: string;
  clientAddress: string;
  learner: boolean;
  timeoutMs: number;
}
export interface WireMemberForwardResponse {
  member: WireMember | null;
  members: WireMember[];
  index: number;
}

export const PEER_METHODS = {
  stream: method<WirePeerBatch, WireEmpty>(PEER_SERVICE, 'Stream'),
  sendSnapshot: method<WireSnapshotChunk, WireSnapshotAck>(PEER_SERVICE, 'SendSnapshot'),
  forward: method<WireForwardRequest, WireForwardResponse>(PEER_SERVICE, 'Forward'),
  leaseForward: method<WireLeaseForwardRequest, WireLeaseForwardResponse>(PEER_SERVICE, 'LeaseForward'),
  memberForward: method<WireMemberForwardRequest, WireMemberForwardResponse>(PEER_SERVICE, 'MemberForward'),
};
