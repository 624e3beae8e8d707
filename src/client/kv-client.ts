// The raftkv client library: endpoints, leader discovery, NOT_LEADER redirects, retries with backoff.
// Why one file of ~650 lines: routing, sessions and retries share one state per client (the remembered leader,
// the channel per endpoint, the session pool); every public call is a thin method over that one retry loop.
//
// Routing: writes, linearizable reads and membership calls go to the remembered leader, else to the endpoints
// in turn. NOT_LEADER with a leader address is followed at once (at most `maxRedirects` hops per round) and the
// leader is remembered. UNAVAILABLE (no leader, refused connection), PROPOSAL_DROPPED, RESOURCE_EXHAUSTED and a
// timed-out attempt move to the next endpoint after a backoff with jitter, until the call's deadline.
// Other errors (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION, ...) are returned at once. Every error is a
// RaftKvError with a stable code.
//
// At-most-once writes: every write runs in a client session `<clientId>.<slot>` with its own sequence number;
// a retry of the same write reuses slot and seq, so the state machine applies it once. The state machine keeps
// one outstanding request per session, so concurrent writes take different slots (a pool grows on demand).
//
// Validation: numbers in options and requests are checked here, before anything is sent: the wire's unsigned
// fields would turn -1 into 2^64-1 and 1.5 into 1, and a timer cannot wait longer than MAX_TIMER_DELAY_MS.
import { createHash, randomUUID } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import { Client, Metadata } from '@grpc/grpc-js';
import type { CallOptions, ChannelCredentials, ClientReadableStream, MethodDefinition, ServiceError } from '@grpc/grpc-js';
import type { Member } from '../shared/member.js';
import type { NodeStatus, ResponseHeader } from '../shared/responses.js';
import { MAX_TIMER_DELAY_MS } from '../shared/clock.js';
import { RaftKvError } from '../shared/errors.js';
import type { ErrorCode } from '../shared/errors.js';
import type { CompareOp, KeyValue, RangeResult } from '../kv/types.js';
import { prefixEnd } from '../kv/types.js';
import type { Role } from '../raft/types.js';
import { ADMIN_METHODS, KV_METHODS, requestBytes } from '../protocol/proto.js';
import type {
  WireCompare,
  WireCompareOp,
  WireCompareTarget,
  WireHashKvResponse,
  WireHeader,
  WireKeyValue,
  WireMember,
  WireRequestOp,
  WireResponseOp,
  WireSnapshotSaveChunk,
  WireStatusResponse,
  WireTxnRequest,
} from '../protocol/proto.js';
import { fromGrpcError } from '../protocol/wire-errors.js';
import { KvStreamChannel, STREAM_MAX_CALL_BYTES } from './kv-stream.js';
import type { StreamKind, StreamKinds } from './kv-stream.js';
import { resolveDial } from './dial-options.js';
import { MAX_REAUTHENTICATIONS, reauthenticationPauseMs, refusedForToken } from './auth-token.js';
import type { AuthToken } from './auth-token.js';
import type { DialTlsConfig, DialUser, ResolvedDial } from './dial-options.js';

export type Bytes = string | Uint8Array;

export interface KvClientOptions {
  readonly endpoints: readonly string[]; // host:port of members' client services (or https://host:port: TLS)
  /** TLS (etcdctl's --cacert, --cert, --key, --insecure-skip-tls-verify); plaintext without. dial-options.ts. */
  readonly tls?: DialTlsConfig;
  /** etcd's --user: every call carries the user's token (dial-options.ts, auth-token.ts). */
  readonly user?: DialUser;
  readonly timeoutMs?: number; // per call, across retries; default 5000
  readonly attemptTimeoutMs?: number; // per attempt (a stopped member must not eat the whole call); default 2000
  readonly maxRedirects?: number; // NOT_LEADER hops followed per round; default 3
  readonly clientId?: string; // session id prefix for at-most-once writes; default a random UUID; "" = no sessions
  readonly backoffMinMs?: number; // default 20
  readonly backoffMaxMs?: number; // default 500
  /** 'stream' (default): KV calls multiplexed on one stream per member; 'unary': one gRPC call each. */
  readonly transport?: 'stream' | 'unary';
}

export interface CallOpts {
  readonly timeoutMs?: number;
}

export interface PutResult {
  readonly header: ClientHeader;
  readonly prevKv: KeyValue | undefined;
}
export interface GetResult {
  readonly header: ClientHeader;
  readonly kv: KeyValue | undefined;
}
/** The node's header and the store revision (etcd's): of a write, or the current one when a read was served. */
export interface ClientHeader extends ResponseHeader {
  readonly revision: number;
}

export interface RangeResponse extends RangeResult {
  readonly header: ClientHeader;
}
export interface DeleteResult {
  readonly header: ClientHeader;
  readonly deleted: number;
  readonly prevKvs: readonly KeyValue[];
}
export interface TxnResult {
  readonly header: ClientHeader;
  readonly succeeded: boolean;
  readonly results: readonly ClientOpResult[];
}
export interface MembersResult {
  readonly header: ClientHeader;
  readonly members: readonly Member[];
}
export interface StatusResult extends NodeStatus {
  readonly header: ClientHeader;
  readonly endpoint: string; // the endpoint that answered
}
/** One member's key-space digest at one applied index (HashKV): equal on every healthy member at the same index. */
export interface HashKvResult {
  readonly endpoint: string; // the endpoint asked
  readonly header: ClientHeader;
  readonly memberId: number; // the member that answered
  readonly index: number; // the applied index the digest describes
  readonly lane1: number; // uint32
  readonly lane2: number; // uint32
  readonly hash: string; // the two lanes as 16 hex digits (hashHex)
  readonly keyCount: number; // live keys at that index
}
/** What one member's defragmentation freed (its state machine's bytes on disk before and after). */
export interface DefragmentResult {
  readonly endpoint: string;
  readonly header: ClientHeader;
  readonly memberId: number;
  readonly beforeBytes: number;
  readonly afterBytes: number;
  readonly tookMs: number;
}
export interface SnapshotSaveResult {
  readonly header: ClientHeader;
  readonly sizeBytes: number;
  readonly sha256: string;
}

/** A key range for range / delete: a single key, a prefix, or [key, end). */
export type RangeSpec = Bytes | { readonly prefix: Bytes } | { readonly key: Bytes; readonly end: Bytes };

export type TxnCompare =
  | { readonly key: Bytes; readonly target: 'value'; readonly op: CompareOp; readonly value: Bytes }
  | { readonly key: Bytes; readonly target: 'version' | 'create' | 'mod' | 'lease'; readonly op: CompareOp; readonly number: number };
export type TxnOp =
  | { readonly type: 'put'; readonly key: Bytes; readonly value: Bytes; readonly prevKv?: boolean; readonly lease?: bigint }
  | { readonly type: 'delete'; readonly range: RangeSpec; readonly prevKv?: boolean }
  | { readonly type: 'range'; readonly range: RangeSpec; readonly limit?: number; readonly keysOnly?: boolean; readonly countOnly?: boolean };
export type ClientOpResult =
  | { readonly type: 'put'; readonly prevKv: KeyValue | undefined }
  | { readonly type: 'delete'; readonly deleted: number; readonly prevKvs: readonly KeyValue[] }
  | { readonly type: 'range'; readonly result: RangeResult };

const RETRYABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['NOT_LEADER', 'UNAVAILABLE', 'PROPOSAL_DROPPED', 'RESOURCE_EXHAUSTED', 'DEADLINE_EXCEEDED']);

/** An attempt is not started with less time than this left: it could only time out. */
const MIN_ATTEMPT_MS = 20;

/** Member ids are positive integers below 2^31 (src/raft/types.ts). */
const MAX_MEMBER_ID = 2 ** 31 - 1;

function invalid(message: string): RaftKvError {
  return new RaftKvError('INVALID_ARGUMENT', message);
}

/** A count or index the wire carries as an unsigned integer: refused unless a non-negative safe integer. */
function checkNonNegativeInteger(what: string, n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) throw invalid(`${what} must be a non-negative integer, got ${n}`);
  return n;
}

function checkMemberId(what: string, id: number): number {
  if (!Number.isSafeInteger(id) || id < 1 || id > MAX_MEMBER_ID) throw invalid(`${what}: member id must be in 1..2^31-1, got ${id}`);
  return id;
}

/** A timeout or delay in ms: a longer one than a timer can wait would fire at once (MAX_TIMER_DELAY_MS). */
function checkDelayMs(what: string, ms: number, min: 'positive' | 'non-negative'): number {
  const low = min === 'positive' ? !(ms > 0) : !(ms >= 0);
  if (low || !(ms <= MAX_TIMER_DELAY_MS)) {
    throw invalid(`${what} must be ${min === 'positive' ? 'more than 0' : 'at least 0'} and at most ${MAX_TIMER_DELAY_MS} ms (the longest timer Node can set), got ${ms}`);
  }
  return ms;
}

const WIRE_TARGETS: Readonly<Record<'version' | 'create' | 'mod' | 'lease', WireCompareTarget>> = { version: 'VERSION', create: 'CREATE', mod: 'MOD', lease: 'LEASE' };

const COMPARE_OPS: Readonly<Record<CompareOp, WireCompareOp>> = { '=': 'EQUAL', '!=': 'NOT_EQUAL', '<': 'LESS', '>': 'GREATER' };

export function toBytes(b: Bytes): Uint8Array {
  return typeof b === 'string' ? Buffer.from(b, 'utf8') : b;
}

/** UTF-8 text of a key or value (for printing). */
export function text(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8');
}

function rangeOf(spec: RangeSpec): { key: Uint8Array; end: Uint8Array } {
  if (typeof spec === 'string' || spec instanceof Uint8Array) return { key: toBytes(spec), end: new Uint8Array(0) };
  if ('prefix' in spec) {
    const key = toBytes(spec.prefix);
    return { key, end: prefixEnd(key) };
  }
  return { key: toBytes(spec.key), end: toBytes(spec.end) };
}

function headerOf(h: WireHeader | null): ClientHeader {
  return { memberId: h?.memberId ?? 0, term: h?.term ?? 0, index: h?.index ?? 0, leaderId: h?.leaderId ?? 0, revision: h?.revision ?? 0 };
}

/** A digest's two uint32 lanes as 16 hex digits, lane 1 first (how the members' logs print it too). */
export function hashHex(lane1: number, lane2: number): string {
  return `${lane1.toString(16).padStart(8, '0')}${lane2.toString(16).padStart(8, '0')}`;
}

function hashKvOf(r: WireHashKvResponse, endpoint: string): HashKvResult {
  return { endpoint, header: headerOf(r.header), memberId: r.memberId, index: r.index, lane1: r.hashLane1, lane2: r.hashLane2, hash: hashHex(r.hashLane1, r.hashLane2), keyCount: r.keyCount };
}

function kvOf(kv: WireKeyValue): KeyValue {
  return { key: kv.key, value: kv.value, createRevision: kv.createRevision, modRevision: kv.modRevision, version: kv.version, lease: kv.lease };
}

function memberOf(m: WireMember): Member {
  return { id: m.id, peerAddress: m.peerAddress, clientAddress: m.clientAddress, learner: m.learner };
}

function opResultOf(r: WireResponseOp): ClientOpResult {
  switch (r.result) {
    case 'put':
      return { type: 'put', prevKv: r.put?.prevKv ? kvOf(r.put.prevKv) : undefined };
    case 'delete':
      return { type: 'delete', deleted: r.delete?.deleted ?? 0, prevKvs: (r.delete?.prevKvs ?? []).map(kvOf) };
    case 'range':
      return { type: 'range', result: { kvs: (r.range?.kvs ?? []).map(kvOf), more: r.range?.more ?? false, count: r.range?.count ?? 0, revision: 0 } };
    case undefined:
      throw new RaftKvError('UNAVAILABLE', 'server sent an empty txn result');
    default: {
      const never: never = r.result;
      throw new Error(`unexpected txn result ${String(never)}`);
    }
  }
}

function opToWire(op: TxnOp, where: string): WireRequestOp {
  switch (op.type) {
    case 'put':
      return { put: { key: toBytes(op.key), value: toBytes(op.value), prevKv: op.prevKv ?? false, ...leaseField(`${where}: lease`, op.lease) } };
    case 'delete':
      return { delete: { ...rangeOf(op.range), prevKv: op.prevKv ?? false } };
    case 'range':
      return { range: { ...rangeOf(op.range), limit: checkNonNegativeInteger(`${where}: limit`, op.limit ?? 0), keysOnly: op.keysOnly ?? false, countOnly: op.countOnly ?? false } };
    default: {
      const never: never = op;
      throw new Error(`unexpected op ${JSON.stringify(never)}`);
    }
  }
}

function compareToWire(c: TxnCompare, where: string): WireCompare {
  const key = toBytes(c.key);
  const op = COMPARE_OPS[c.op];
  if (c.target === 'value') return { key, target: 'VALUE', op, value: toBytes(c.value) };
  const number = checkNonNegativeInteger(`${where}: ${c.target}`, c.number);
  return { key, target: WIRE_TARGETS[c.target], op, number };
}

const INT64_MAX = (1n << 63n) - 1n;

/**
 * A put's lease id on raftkv's wire: a decimal string (lossless: lease ids are random 64-bit values, more than
 * a JS number holds exactly), left out for none. Refused unless an int64 (etcd's type for it).
 */
function leaseField(what: string, lease: bigint | undefined): { lease?: string } {
  if (lease === undefined || lease === 0n) return {};
  if (typeof lease !== 'bigint' || lease < -INT64_MAX - 1n || lease > INT64_MAX) throw invalid(`${what} must be an int64 bigint, got ${String(lease)}`);
  return { lease: lease.toString() };
}

const ROLES: ReadonlySet<string> = new Set<Role>(['follower', 'pre-candidate', 'candidate', 'leader']);

function statusOf(s: WireStatusResponse, endpoint: string): StatusResult {
  return {
    endpoint,
    header: headerOf(s.header),
    id: s.id,
    clusterId: s.clusterId,
    clientAddress: s.clientAddress,
    role: ROLES.has(s.role) ? (s.role as Role) : 'follower',
    term: s.term,
    leaderId: s.leaderId,
    commitIndex: s.commitIndex,
    appliedIndex: s.appliedIndex,
    lastLogIndex: s.lastLogIndex,
    snapshotIndex: s.snapshotIndex,
    dataSizeBytes: s.dataSizeBytes,
    members: s.members.map(memberOf),
    progress: s.progress.map((p) => ({ id: p.id, match: p.match, state: p.state })),
    revision: s.revision,
    compactedRevision: s.compactedRevision,
  };
}

interface Session {
  readonly id: string;
  seq: number; // last seq used
}

type Route = 'leader' | 'any';

export class KvClient {
  private readonly endpoints: string[]; // known client addresses; redirects add to it
  private readonly clients = new Map<string, Client>(); // one channel per endpoint, created lazily
  private readonly credentials: ChannelCredentials; // how every endpoint is dialled (resolveDial)
  private readonly dial: ResolvedDial; // and what each channel carries (a user's token)
  private readonly streams = new Map<string, KvStreamChannel>(); // KV Stream per endpoint, created lazily
  private readonly transport: 'stream' | 'unary';
  private readonly timeoutMs: number;
  private readonly attemptTimeoutMs: number;
  private readonly maxRedirects: number;
  private readonly backoffMinMs: number;
  private readonly backoffMaxMs: number;
  private readonly clientId: string;
  private readonly freeSessions: Session[] = []; // sessions with no write in flight
  private sessionCount = 0; // sessions created (names the next one)
  private leader: string | undefined; // the endpoint last seen acting as leader
  private next = 0; // round-robin position in endpoints
  private closed = false;

  constructor(opts: KvClientOptions) {
    const dial = resolveDial(opts);
    this.endpoints = dial.endpoints;
    this.credentials = dial.credentials;
    this.dial = dial;
    this.timeoutMs = checkDelayMs('KvClient: timeoutMs', opts.timeoutMs ?? 5000, 'positive');
    this.attemptTimeoutMs = checkDelayMs('KvClient: attemptTimeoutMs', opts.attemptTimeoutMs ?? Math.min(this.timeoutMs, 2000), 'positive');
    this.maxRedirects = checkNonNegativeInteger('KvClient: maxRedirects', opts.maxRedirects ?? 3);
    this.backoffMinMs = checkDelayMs('KvClient: backoffMinMs', opts.backoffMinMs ?? 20, 'non-negative');
    this.backoffMaxMs = checkDelayMs('KvClient: backoffMaxMs', opts.backoffMaxMs ?? 500, 'non-negative');
    this.clientId = opts.clientId ?? randomUUID();
    this.transport = opts.transport ?? 'stream';
  }

  /** The endpoint currently believed to be the leader (undefined if none is known). */
  get knownLeader(): string | undefined {
    return this.leader;
  }

  // ---------------------------------------------------------------- KV

  /** `lease`: attach the key to a lease (granted through etcd's Lease service: lease() in ./lease.ts); LEASE_NOT_FOUND if there is none such. */
  async put(key: Bytes, value: Bytes, opts: CallOpts & { prevKv?: boolean; lease?: bigint } = {}): Promise<PutResult> {
    const res = await this.write('put', { key: toBytes(key), value: toBytes(value), prevKv: opts.prevKv ?? false, ...leaseField('put: lease', opts.lease) }, opts);
    return { header: headerOf(res.header), prevKv: res.prevKv ? kvOf(res.prevKv) : undefined };
  }

  async get(key: Bytes, opts: CallOpts & { serializable?: boolean } = {}): Promise<GetResult> {
    const serializable = opts.serializable ?? false;
    const res = await this.kv(serializable ? 'any' : 'leader', 'get', { key: toBytes(key), serializable }, opts);
    return { header: headerOf(res.header), kv: res.kv ? kvOf(res.kv) : undefined };
  }

  /** `revision`: the keys as of that store revision (history until compaction); 0 or absent: the current one. */
  async range(
    spec: RangeSpec,
    opts: CallOpts & { limit?: number; keysOnly?: boolean; countOnly?: boolean; serializable?: boolean; revision?: number } = {},
  ): Promise<RangeResponse> {
    const serializable = opts.serializable ?? false;
    const limit = checkNonNegativeInteger('range: limit', opts.limit ?? 0); // 0: no limit (bounded by the server's response size limit)
    const revision = checkNonNegativeInteger('range: revision', opts.revision ?? 0);
    const req = {
      ...rangeOf(typeof spec === 'string' || spec instanceof Uint8Array ? { prefix: spec } : spec),
      limit,
      keysOnly: opts.keysOnly ?? false,
      countOnly: opts.countOnly ?? false,
      serializable,
      revision,
    };
    const res = await this.kv(serializable ? 'any' : 'leader', 'range', req, opts);
    const header = headerOf(res.header);
    return { header, kvs: res.kvs.map(kvOf), more: res.more, count: res.count, revision: header.revision };
  }

  /**
   * Compacts the history below `revision` (etcd's Compact): COMPACTED at or below the compacted revision,
   * FUTURE_REV above the current one. `physical`: answered once the history is gone from the leader's disk.
   * Retried and redirected like the admin calls: a retry after a lost answer of an applied compaction answers
   * COMPACTED (as etcd's would).
   */
  async compact(revision: number, opts: CallOpts & { physical?: boolean } = {}): Promise<{ header: ClientHeader }> {
    if (!Number.isSafeInteger(revision)) throw new RaftKvError('INVALID_ARGUMENT', `compact: revision must be an integer, got ${revision}`);
    const res = await this.call('leader', KV_METHODS.compact, { revision, physical: opts.physical ?? false }, opts);
    return { header: headerOf(res.header) };
  }

  /** Deletes one key (a string / bytes), every key under `{ prefix }`, or `[key, end)`. */
  async delete(spec: RangeSpec, opts: CallOpts & { prevKv?: boolean } = {}): Promise<DeleteResult> {
    const res = await this.write('delete', { ...rangeOf(spec), prevKv: opts.prevKv ?? false }, opts);
    return { header: headerOf(res.header), deleted: res.deleted, prevKvs: res.prevKvs.map(kvOf) };
  }

  async txn(t: { compares?: readonly TxnCompare[]; success?: readonly TxnOp[]; failure?: readonly TxnOp[] }, opts: CallOpts = {}): Promise<TxnResult> {
    const req: WireTxnRequest = {
      compares: (t.compares ?? []).map((c, i) => compareToWire(c, `txn: compare ${i}`)),
      success: (t.success ?? []).map((op, i) => opToWire(op, `txn: success op ${i}`)),
      failure: (t.failure ?? []).map((op, i) => opToWire(op, `txn: failure op ${i}`)),
    };
    const res = await this.write('txn', req, opts);
    return { header: headerOf(res.header), succeeded: res.succeeded, results: res.results.map(opResultOf) };
  }

  /** Compare-and-swap: sets `key` to `next` iff its value is `expected` (null: iff the key does not exist). */
  async cas(key: Bytes, expected: Bytes | null, next: Bytes, opts: CallOpts = {}): Promise<{ header: ClientHeader; succeeded: boolean }> {
    const compare: TxnCompare = expected === null ? { key, target: 'version', op: '=', number: 0 } : { key, target: 'value', op: '=', value: expected };
    const r = await this.txn({ compares: [compare], success: [{ type: 'put', key, value: next }] }, opts);
    return { header: r.header, succeeded: r.succeeded };
  }

  // ---------------------------------------------------------------- admin

  /** The status of one member (`endpoint`), or of the first endpoint that answers. */
  async status(endpoint?: string, opts: CallOpts = {}): Promise<StatusResult> {
    if (endpoint !== undefined) {
      const deadline = Date.now() + checkDelayMs('status: timeoutMs', opts.timeoutMs ?? this.attemptTimeoutMs, 'positive');
      try {
        return statusOf(await this.unary(endpoint, ADMIN_METHODS.status, {}, deadline), endpoint);
      } catch (err) {
        throw fromGrpcError(err);
      }
    }
    return this.callAt('any', opts, async (target, deadline) => statusOf(await this.unary(target, ADMIN_METHODS.status, {}, deadline), target));
  }

  /**
   * The key-space digest of the member at `endpoint` (never another: no routing, no retries) at applied index
   * `index` (0: its current applied index). The member waits until it has applied `index`, up to the timeout
   * (then DEADLINE_EXCEEDED); NOT_FOUND when it no longer remembers that index.
   */
  async hashKv(endpoint: string, index: number, opts: CallOpts = {}): Promise<HashKvResult> {
    checkNonNegativeInteger('hashKv: index', index);
    const deadline = Date.now() + checkDelayMs('hashKv: timeoutMs', opts.timeoutMs ?? this.attemptTimeoutMs, 'positive');
    try {
      return hashKvOf(await this.unary(endpoint, ADMIN_METHODS.hashKv, { index }, deadline), endpoint);
    } catch (err) {
      throw fromGrpcError(err);
    }
  }

  /** Defragments the member at `endpoint` (never another: no routing, no retries); default timeout 60 s. */
  async defragment(endpoint: string, opts: CallOpts = {}): Promise<DefragmentResult> {
    const deadline = Date.now() + checkDelayMs('defragment: timeoutMs', opts.timeoutMs ?? 60_000, 'positive');
    try {
      const r = await this.unary(endpoint, ADMIN_METHODS.defragment, {}, deadline);
      return { endpoint, header: headerOf(r.header), memberId: r.memberId, beforeBytes: r.beforeBytes, afterBytes: r.afterBytes, tookMs: r.tookMs };
    } catch (err) {
      throw fromGrpcError(err);
    }
  }

  async members(opts: CallOpts = {}): Promise<MembersResult> {
    const res = await this.call('leader', ADMIN_METHODS.memberList, {}, opts);
    return { header: headerOf(res.header), members: res.members.map(memberOf) };
  }

  async memberAdd(member: { id: number; peerAddress: string; clientAddress: string; learner?: boolean }, opts: CallOpts = {}): Promise<MembersResult> {
    checkMemberId('memberAdd', member.id);
    const res = await this.call('leader', ADMIN_METHODS.memberAdd, { member: { ...member, learner: member.learner ?? false } }, opts);
    return { header: headerOf(res.header), members: res.members.map(memberOf) };
  }

  async memberRemove(id: number, opts: CallOpts = {}): Promise<MembersResult> {
    const res = await this.call('leader', ADMIN_METHODS.memberRemove, { id: checkMemberId('memberRemove', id) }, opts);
    return { header: headerOf(res.header), members: res.members.map(memberOf) };
  }

  async memberPromote(id: number, opts: CallOpts = {}): Promise<MembersResult> {
    const res = await this.call('leader', ADMIN_METHODS.memberPromote, { id: checkMemberId('memberPromote', id) }, opts);
    return { header: headerOf(res.header), members: res.members.map(memberOf) };
  }

  async transferLeader(to: number, opts: CallOpts = {}): Promise<{ header: ResponseHeader }> {
    const res = await this.call('leader', ADMIN_METHODS.transferLeader, { to: checkMemberId('transferLeader', to) }, opts);
    this.leader = undefined; // it moved
    return { header: headerOf(res.header) };
  }

  /** Downloads a fresh snapshot of the state machine from the leader (or `endpoint`) into `file` (verified). */
  async snapshotSave(file: string, opts: CallOpts & { endpoint?: string } = {}): Promise<SnapshotSaveResult> {
    const timeoutMs = checkDelayMs('snapshotSave: timeoutMs', opts.timeoutMs ?? Math.max(this.timeoutMs, 60_000), 'positive');
    const run = (target: string, deadline: number) => this.downloadSnapshot(target, file, deadline);
    if (opts.endpoint !== undefined) {
      try {
        return await run(opts.endpoint, Date.now() + timeoutMs);
      } catch (err) {
        throw fromGrpcError(err);
      }
    }
    return this.callAt('leader', { timeoutMs }, run, timeoutMs);
  }

  /** The client addresses known (the configured ones, then leaders learnt from redirects). */
  /** The user's token source (etcdctl's --user), if the client was given one: channels sharing this client's use it. */
  get authToken(): AuthToken | undefined {
    return this.dial.auth;
  }

  get knownEndpoints(): readonly string[] {
    return this.endpoints;
  }

  /** The gRPC channel to `endpoint` (made on first use): etcd's services share it (./etcd-channel.ts). */
  channelTo(endpoint: string): Client {
    return this.clientFor(endpoint);
  }

  close(): void {
    this.closed = true;
    for (const st of this.streams.values()) st.close();
    this.streams.clear();
    for (const c of this.clients.values()) c.close();
    this.dial.auth?.close();
    this.clients.clear();
  }

  // ---------------------------------------------------------------- plumbing

  private clientFor(endpoint: string): Client {
    if (this.closed) throw new RaftKvError('FAILED_PRECONDITION', 'KvClient is closed');
    let c = this.clients.get(endpoint);
    if (c === undefined) {
      c = new Client(endpoint, this.credentials, {
        'grpc.max_receive_message_length': -1,
        'grpc.max_send_message_length': -1,
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 1000,
        'grpc.enable_retries': 0,
        ...this.dial.channelOptions,
      });
      this.clients.set(endpoint, c);
    }
    return c;
  }

  private unary<Req, Res>(endpoint: string, m: MethodDefinition<Req, Res>, req: Req, deadline: number): Promise<Res> {
    return new Promise((resolve, reject) => {
      const options: CallOptions = { deadline };
      this.clientFor(endpoint).makeUnaryRequest<Req, Res>(m.path, m.requestSerialize, m.responseDeserialize, req, new Metadata(), options, (err: ServiceError | null, res?: Res) => {
        if (err) reject(err);
        else if (res === undefined) reject(new RaftKvError('UNAVAILABLE', `${endpoint}: empty response`));
        else resolve(res);
      });
    });
  }

  private call<Req, Res>(route: Route, m: MethodDefinition<Req, Res>, req: Req, opts: CallOpts): Promise<Res> {
    return this.callAt(route, opts, (target, deadline) => this.unary(target, m, req, deadline));
  }

  /** A KV call with retries and redirects: on the endpoint's stream, or unary (option, or a large request). */
  private kv<K extends StreamKind>(route: Route, kind: K, req: StreamKinds[K][0], opts: CallOpts): Promise<StreamKinds[K][1]> {
    const viaStream = this.transport === 'stream' && requestBytes(req) <= STREAM_MAX_CALL_BYTES;
    return this.callAt(route, opts, (target, deadline) =>
      viaStream ? this.streamFor(target).call(kind, req, deadline) : this.unary(target, KV_METHODS[kind] as MethodDefinition<StreamKinds[K][0], StreamKinds[K][1]>, req, deadline),
    );
  }

  private streamFor(endpoint: string): KvStreamChannel {
    let st = this.streams.get(endpoint);
    if (st === undefined) {
      st = new KvStreamChannel(this.clientFor(endpoint), endpoint);
      this.streams.set(endpoint, st);
    }
    return st;
  }

  /** A write in a session slot: retries reuse the slot and seq (at-most-once). */
  private async write<K extends 'put' | 'delete' | 'txn'>(kind: K, req: StreamKinds[K][0], opts: CallOpts): Promise<StreamKinds[K][1]> {
    if (opts.timeoutMs !== undefined) checkDelayMs('KvClient call: timeoutMs', opts.timeoutMs, 'positive'); // before a seq is used
    if (this.clientId === '') return this.kv('leader', kind, { ...req, clientId: '', seq: 0 }, opts);
    const session = this.freeSessions.pop() ?? { id: `${this.clientId}.${++this.sessionCount}`, seq: 0 };
    session.seq++;
    try {
      return await this.kv('leader', kind, { ...req, clientId: session.id, seq: session.seq }, opts);
    } finally {
      this.freeSessions.push(session);
    }
  }

  private pickTarget(route: Route): string {
    if (route === 'leader' && this.leader !== undefined) return this.leader;
    const e = this.endpoints[this.next % this.endpoints.length] ?? this.endpoints[0] ?? '';
    return e;
  }

  private rotate(): void {
    this.next = (this.next + 1) % this.endpoints.length;
  }

  private async callAt<T>(route: Route, opts: CallOpts, attempt: (target: string, deadline: number) => Promise<T>, attemptTimeoutMs = this.attemptTimeoutMs): Promise<T> {
    const started = Date.now();
    const deadline = started + checkDelayMs('KvClient call: timeoutMs', opts.timeoutMs ?? this.timeoutMs, 'positive');
    let redirects = 0;
    let failures = 0;
    let lastTelling: RaftKvError | undefined; // the last error other than an attempt's timeout
    let reauthentications = 0;
    let target = this.pickTarget(route);
    for (;;) {
      const attemptDeadline = Math.min(deadline, Date.now() + attemptTimeoutMs);
      let err: RaftKvError;
      try {
        const res = await attempt(target, attemptDeadline);
        if (route === 'leader') this.leader = target;
        return res;
      } catch (e) {
        err = fromGrpcError(e);
      }
      if (refusedForToken(err) && this.dial.auth !== undefined && reauthentications < MAX_REAUTHENTICATIONS && Date.now() < deadline) {
        // The token lapsed (or auth was turned off and on, or it was never given): a new one, and a new stream
        // to carry it; after the first, a short pause lets a lagging member apply `auth enable`.
        reauthentications++;
        const pauseMs = reauthenticationPauseMs(reauthentications);
        if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
        this.dial.auth.reset();
        this.streams.get(target)?.close();
        this.streams.delete(target);
        continue;
      }
      if (!RETRYABLE.has(err.code)) throw err;
      const now = Date.now();
      const hint = err.code === 'NOT_LEADER' ? err.leader?.leaderAddress : undefined;
      if (hint !== undefined && hint !== '' && hint !== target && redirects < this.maxRedirects && now < deadline) {
        // Follow the hint at once, and remember it.
        redirects++;
        if (!this.endpoints.includes(hint)) this.endpoints.push(hint);
        this.leader = hint;
        target = hint;
        continue;
      }
      if (this.leader === target) this.leader = undefined;
      // Back off with jitter, then try the next endpoint (a fresh round of redirects); give up when the backoff
      // would reach the deadline, with the most telling error seen.
      failures++;
      if (err.code !== 'DEADLINE_EXCEEDED') lastTelling = err;
      const base = Math.min(this.backoffMaxMs, this.backoffMinMs * 2 ** Math.min(failures - 1, 16));
      const delay = base / 2 + Math.random() * (base / 2);
      if (now + delay + MIN_ATTEMPT_MS >= deadline) {
        const spent = now - started;
        const why = err.code === 'DEADLINE_EXCEEDED' && lastTelling !== undefined ? `${err.message}; before that: ${lastTelling.code} ${lastTelling.message}` : err.message;
        throw new RaftKvError(err.code === 'NOT_LEADER' ? 'UNAVAILABLE' : err.code, `${why} (gave up after ${failures} attempts in ${spent} ms)`, err.leader);
      }
      await new Promise((r) => setTimeout(r, delay));
      redirects = 0;
      this.rotate();
      target = this.pickTarget(route);
    }
  }

  private async downloadSnapshot(target: string, file: string, deadline: number): Promise<SnapshotSaveResult> {
    const m = ADMIN_METHODS.snapshotSave;
    const stream: ClientReadableStream<WireSnapshotSaveChunk> = this.clientFor(target).makeServerStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, {}, new Metadata(), { deadline });
    const tmp = `${file}.${randomUUID()}.tmp`;
    const fh = await open(tmp, 'w');
    let moved = false;
    try {
      const hash = createHash('sha256');
      let size = 0;
      let header: ClientHeader | undefined;
      let sha256 = '';
      let totalBytes = -1;
      for await (const raw of stream) {
        const chunk = raw as WireSnapshotSaveChunk;
        if (chunk.header && header === undefined) header = headerOf(chunk.header);
        if (chunk.data.byteLength > 0) {
          hash.update(chunk.data);
          size += chunk.data.byteLength;
          await fh.write(chunk.data);
        }
        if (chunk.sha256 !== '') {
          sha256 = chunk.sha256;
          totalBytes = chunk.totalBytes;
        }
      }
      const actual = hash.digest('hex');
      if (sha256 === '' || totalBytes !== size || actual !== sha256) {
        throw new RaftKvError('DATA_CORRUPTION', `snapshot from ${target} failed verification (${size} bytes, sha256 ${actual}; server said ${totalBytes} bytes, ${sha256 || 'no checksum'})`);
      }
      await fh.sync();
      await fh.close();
      await rename(tmp, file);
      moved = true;
      return { header: header ?? headerOf(null), sizeBytes: size, sha256 };
    } finally {
      if (!moved) {
        // Cleanup after a failure: the failure itself is what the caller gets; a cleanup error would hide it.
        await fh.close().catch(() => undefined);
        await unlink(tmp).catch(() => undefined);
      }
    }
  }
}
