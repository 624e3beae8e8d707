// etcd's KV service (etcdserverpb.KV: Range, Put, DeleteRange, Txn, Compact) on the client port: a thin adapter
// from etcd's messages to the one request model (src/kv/types.ts) and back. Every behaviour lives in the state
// machine and the node, behind both this and raftkv's own KV service; here only the field mapping, etcd's
// response headers, the `hasleader` metadata and etcd's error strings (src/protocol/etcd-errors.ts).
//
// 64-bit fields arrive as bigints. Revisions and compare numbers beyond +-(2^53 - 1) are clamped to it: no
// revision or version of this store comes near, so every comparison, filter and FUTURE_REV answer is the same.
import { createHash } from 'node:crypto';
import type { ServerUnaryCall, sendUnaryData } from '@grpc/grpc-js';
import type pino from 'pino';
import type { KvNode, ResponseHeader } from '../node/api.js';
import { RaftKvError } from '../shared/errors.js';
import type { Command, Compare, CompareOp, KeyValue, KvLimits, Op, OpResult, RangeRequest, SortOrder, SortTarget } from '../kv/types.js';
import { ETCD_KEY_NOT_FOUND, validateCommand, validateRange } from '../kv/validate.js';
import { Compare_CompareResult, Compare_CompareTarget, EMPTY_RANGE_END_SENT, RangeRequest_SortOrder, RangeRequest_SortTarget } from '../protocol/etcd-proto.js';
import type * as etcd from '../protocol/etcd-proto.js';
import type { EtcdServiceHandlers, MessageInit } from '../protocol/etcd-proto.js';
import { ETCD_NO_LEADER, toEtcdStatus } from '../protocol/etcd-errors.js';
import { checkRequestSize, deadlineOf } from './kv-service.js';
import type { AuthGate, CallerContext } from './auth-gate.js';

export interface EtcdKvOptions {
  readonly node: KvNode;
  readonly limits: KvLimits;
  readonly maxRequestBytes: number;
  readonly defaultTimeoutMs: number;
  readonly logger: pino.Logger;
  /** Permission checks once authentication is on (auth-gate.ts); none without. */
  readonly auth?: AuthGate;
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** An int64 as a safe integer, clamped (see the top of the file). */
export function clampToSafe(n: bigint): number {
  if (n > MAX_SAFE) return Number.MAX_SAFE_INTEGER;
  if (n < -MAX_SAFE) return -Number.MAX_SAFE_INTEGER;
  return Number(n);
}

/** etcd's cluster id for raftkv's cluster id string: the first 8 bytes of its SHA-256, as a uint64. */
export function etcdClusterId(clusterId: string): bigint {
  return createHash('sha256').update(clusterId, 'utf8').digest().readBigUInt64BE(0);
}

function invalid(message: string): RaftKvError {
  return new RaftKvError('INVALID_ARGUMENT', message);
}

const SORT_ORDERS: Readonly<Record<number, SortOrder>> = {
  [RangeRequest_SortOrder.NONE]: 'none',
  [RangeRequest_SortOrder.ASCEND]: 'ascend',
  [RangeRequest_SortOrder.DESCEND]: 'descend',
};

const SORT_TARGETS: Readonly<Record<number, SortTarget>> = {
  [RangeRequest_SortTarget.KEY]: 'key',
  [RangeRequest_SortTarget.VERSION]: 'version',
  [RangeRequest_SortTarget.CREATE]: 'create',
  [RangeRequest_SortTarget.MOD]: 'mod',
  [RangeRequest_SortTarget.VALUE]: 'value',
};

const COMPARE_RESULTS: Readonly<Record<number, CompareOp>> = {
  [Compare_CompareResult.EQUAL]: '=',
  [Compare_CompareResult.NOT_EQUAL]: '!=',
  [Compare_CompareResult.LESS]: '<',
  [Compare_CompareResult.GREATER]: '>',
};

/**
 * `emptyEndOpen`: a range_end sent empty means every key >= key (a Range, or a Range in a read-only Txn, which
 * etcd serves without the log; in the log the empty field is dropped and it means the one key).
 */
export function rangeFromEtcd(r: etcd.RangeRequest, emptyEndOpen: boolean): RangeRequest {
  const sentEmpty = (r as { [EMPTY_RANGE_END_SENT]?: boolean })[EMPTY_RANGE_END_SENT] === true;
  const sortOrder = SORT_ORDERS[r.sortOrder];
  const sortTarget = SORT_TARGETS[r.sortTarget];
  if (sortOrder === undefined) throw invalid(`range: unknown sort order ${r.sortOrder}`);
  if (sortTarget === undefined) throw invalid(`range: unknown sort target ${r.sortTarget}`);
  return {
    key: r.key,
    end: emptyEndOpen && sentEmpty && r.rangeEnd.length === 0 ? Uint8Array.of(0) : r.rangeEnd,
    limit: r.limit > 0n ? clampToSafe(r.limit) : 0, // etcd: a limit <= 0 is no limit
    keysOnly: r.keysOnly,
    countOnly: r.countOnly,
    revision: clampToSafe(r.revision),
    sortOrder,
    sortTarget,
    minModRevision: clampToSafe(r.minModRevision),
    maxModRevision: clampToSafe(r.maxModRevision),
    minCreateRevision: clampToSafe(r.minCreateRevision),
    maxCreateRevision: clampToSafe(r.maxCreateRevision),
  };
}

function compareFromEtcd(c: etcd.Compare): Compare {
  const op = COMPARE_RESULTS[c.result];
  if (op === undefined) throw invalid(`txn: unknown compare result ${c.result}`);
  const base = { key: c.key, end: c.rangeEnd, op };
  // An unset target_union compares against 0 (or the empty value), as etcd's compareKV does.
  switch (c.target) {
    case Compare_CompareTarget.VALUE:
      return { ...base, target: 'value', value: c.value ?? Buffer.alloc(0) };
    case Compare_CompareTarget.VERSION:
      return { ...base, target: 'version', number: clampToSafe(c.version ?? 0n) };
    case Compare_CompareTarget.CREATE:
      return { ...base, target: 'create', number: clampToSafe(c.createRevision ?? 0n) };
    case Compare_CompareTarget.MOD:
      return { ...base, target: 'mod', number: clampToSafe(c.modRevision ?? 0n) };
    case Compare_CompareTarget.LEASE:
      return { ...base, target: 'lease', number: clampToSafe(c.lease ?? 0n) };
    default:
      throw invalid(`txn: unknown compare target ${String(c.target)}`);
  }
}

function putFromEtcd(p: etcd.PutRequest): Op & { type: 'put' } {
  return { type: 'put', key: p.key, value: p.value, prevKv: p.prevKv, lease: clampToSafe(p.lease), ignoreValue: p.ignoreValue, ignoreLease: p.ignoreLease };
}

function deleteFromEtcd(d: etcd.DeleteRangeRequest): Op & { type: 'delete' } {
  return { type: 'delete', range: { key: d.key, end: d.rangeEnd }, prevKv: d.prevKv };
}

/** etcd's isTxnReadonly: no put or delete in either branch, at any depth. */
function isReadOnly(t: etcd.TxnRequest): boolean {
  return [...t.success, ...t.failure].every((o) =>
    o.request === 'requestPut' || o.request === 'requestDeleteRange' ? false : o.request === 'requestTxn' && o.requestTxn !== undefined ? isReadOnly(o.requestTxn) : true,
  );
}

/**
 * etcd's isTxnSerializable: every op of both branches is a serializable Range (a nested txn is not), so a
 * read-only txn of them is served from this member's state without ReadIndex.
 */
function isSerializable(t: etcd.TxnRequest): boolean {
  return [...t.success, ...t.failure].every((o) => o.request === 'requestRange' && o.requestRange?.serializable === true);
}

function txnFromEtcd(t: etcd.TxnRequest, readOnly = isReadOnly(t)): Op & { type: 'txn' } {
  const op = (o: etcd.RequestOp): Op => opFromEtcd(o, readOnly);
  return { type: 'txn', compares: t.compare.map(compareFromEtcd), success: t.success.map(op), failure: t.failure.map(op) };
}

function opFromEtcd(o: etcd.RequestOp, readOnly: boolean): Op {
  switch (o.request) {
    case 'requestRange':
      if (o.requestRange !== undefined) return { type: 'range', request: rangeFromEtcd(o.requestRange, readOnly) };
      break;
    case 'requestPut':
      if (o.requestPut !== undefined) return putFromEtcd(o.requestPut);
      break;
    case 'requestDeleteRange':
      if (o.requestDeleteRange !== undefined) return deleteFromEtcd(o.requestDeleteRange);
      break;
    case 'requestTxn':
      if (o.requestTxn !== undefined) return txnFromEtcd(o.requestTxn, readOnly);
      break;
    case undefined:
      break;
  }
  throw new RaftKvError('KEY_NOT_FOUND', ETCD_KEY_NOT_FOUND); // etcd answers an empty RequestOp so
}

export function kvToEtcd(kv: KeyValue): MessageInit<etcd.KeyValue> {
  return { key: kv.key, value: kv.value, createRevision: BigInt(kv.createRevision), modRevision: BigInt(kv.modRevision), version: BigInt(kv.version), lease: BigInt(kv.lease) };
}

/** A response inside a txn: its header carries only the revision (0 for a nested txn), as etcd's. */
function opResultToEtcd(r: OpResult): MessageInit<etcd.ResponseOp> {
  switch (r.type) {
    case 'put':
      return { responsePut: { header: { revision: BigInt(r.revision) }, prevKv: r.prevKv === undefined ? null : kvToEtcd(r.prevKv) } };
    case 'delete':
      return { responseDeleteRange: { header: { revision: BigInt(r.revision) }, deleted: BigInt(r.deleted), prevKvs: r.prevKvs.map(kvToEtcd) } };
    case 'range':
      return {
        responseRange: { header: { revision: BigInt(r.result.revision) }, kvs: r.result.kvs.map(kvToEtcd), more: r.result.more, count: BigInt(r.result.count) },
      };
    case 'txn':
      return { responseTxn: { header: { revision: BigInt(r.revision) }, succeeded: r.succeeded, responses: r.results.map(opResultToEtcd) } };
    default: {
      const never: never = r;
      throw new Error(`unexpected op result ${JSON.stringify(never)}`);
    }
  }
}

/** True when the call carries etcd's `hasleader: true` metadata (fail at once without a leader). */
function requiresLeader(call: ServerUnaryCall<unknown, unknown>): boolean {
  return call.metadata.get('hasleader').some((v) => String(v) === 'true');
}

/** What every etcd service handler shares: the request size limit, `hasleader`, etcd's headers and errors. */
export interface EtcdHandlerKit {
  /** etcd's ResponseHeader for a node header (and the store revision the answer reports). */
  readonly header: (h: ResponseHeader, revision: number) => MessageInit<etcd.ResponseHeader>;
  /** A unary handler: request size check, `hasleader`, then `fn`; RaftKvError -> etcd's status, else INTERNAL + log. */
  readonly unary: <Req, Res>(
    method: string,
    fn: (req: Req, deadlineMs: number, call: ServerUnaryCall<Req, MessageInit<Res>>) => Promise<MessageInit<Res>>,
  ) => (call: ServerUnaryCall<Req, MessageInit<Res>>, callback: sendUnaryData<MessageInit<Res>>) => void;
}

export function etcdHandlerKit(opts: Omit<EtcdKvOptions, 'limits'>): EtcdHandlerKit {
  const { node } = opts;
  let clusterId: bigint | undefined; // on the first answer: the node may be bound after the services are made
  return {
    header: (h, revision) => ({
      clusterId: (clusterId ??= etcdClusterId(node.status().clusterId)),
      memberId: BigInt(h.memberId),
      revision: BigInt(revision),
      raftTerm: BigInt(h.term),
    }),
    unary: <Req, Res>(method: string, fn: (req: Req, deadlineMs: number, call: ServerUnaryCall<Req, MessageInit<Res>>) => Promise<MessageInit<Res>>) => {
      return (call: ServerUnaryCall<Req, MessageInit<Res>>, callback: sendUnaryData<MessageInit<Res>>): void => {
        const run = async (): Promise<MessageInit<Res>> => {
          checkRequestSize(opts, `etcd ${method}`, call.request);
          if (requiresLeader(call) && node.status().leaderId === 0) throw new RaftKvError('UNAVAILABLE', ETCD_NO_LEADER);
          const deadlineMs = deadlineOf(call, opts.defaultTimeoutMs);
          await opts.auth?.ready(call, deadlineMs);
          return fn(call.request, deadlineMs, call);
        };
        run().then(
          (res) => callback(null, res),
          (err: unknown) => {
            if (!(err instanceof RaftKvError)) opts.logger.error({ err, method: `etcdserverpb.${method}` }, 'internal error in handler');
            callback(toEtcdStatus(err));
          },
        );
      };
    },
  };
}

export function createEtcdKvService(opts: EtcdKvOptions): EtcdServiceHandlers<'KV'> {
  const { node, limits } = opts;
  const { header, unary: kitUnary } = etcdHandlerKit(opts);
  const unary = <Req, Res>(name: string, fn: (req: Req, deadlineMs: number, call: CallerContext) => Promise<MessageInit<Res>>) => kitUnary<Req, Res>(`KV/${name}`, fn);

  const write = async (command: Command, deadlineMs: number, call: CallerContext) => {
    validateCommand(command, limits);
    await opts.auth?.checkWrite(call, command, deadlineMs);
    return node.write(command, { clientId: '', seq: 0, deadlineMs });
  };

  return {
    Range: unary<etcd.RangeRequest, etcd.RangeResponse>('Range', async (req, deadlineMs, call) => {
      const request = rangeFromEtcd(req, true);
      validateRange(request, limits);
      opts.auth?.caller(call); // a bad token is refused before reading
      const { header: h, result } = await node.read(request, { serializable: req.serializable, deadlineMs });
      // Checked once the read index is applied here (etcd checks after its linearizable wait): a permission revoked
      // before this read arrived is refused even on a member that had not applied the revoke then.
      opts.auth?.checkRange(call, 'read', request);
      return { header: header(h, result.revision), kvs: result.kvs.map(kvToEtcd), more: result.more, count: BigInt(result.count) };
    }),
    Put: unary<etcd.PutRequest, etcd.PutResponse>('Put', async (req, deadlineMs, call) => {
      const { header: h, result } = await write(putFromEtcd(req), deadlineMs, call);
      if (result.type !== 'put') throw new Error(`node answered a put with a ${result.type} result`);
      return { header: header(h, result.revision), prevKv: result.prevKv === undefined ? null : kvToEtcd(result.prevKv) };
    }),
    DeleteRange: unary<etcd.DeleteRangeRequest, etcd.DeleteRangeResponse>('DeleteRange', async (req, deadlineMs, call) => {
      const { header: h, result } = await write(deleteFromEtcd(req), deadlineMs, call);
      if (result.type !== 'delete') throw new Error(`node answered a delete with a ${result.type} result`);
      return { header: header(h, result.revision), deleted: BigInt(result.deleted), prevKvs: result.prevKvs.map(kvToEtcd) };
    }),
    Txn: unary<etcd.TxnRequest, etcd.TxnResponse>('Txn', async (req, deadlineMs, call) => {
      const txn = txnFromEtcd(req);
      // etcd serves a read-only txn as it serves a Range: after ReadIndex (or locally when serializable), not
      // through the log; the state machine decides it as apply would, so the answer is the same. Its permissions
      // are checked once it is served, as a Range's are.
      let reply;
      if (isReadOnly(req)) {
        validateCommand(txn, limits);
        opts.auth?.caller(call); // a bad token is refused before reading
        reply = await node.readTxn(txn, { serializable: isSerializable(req), deadlineMs });
        opts.auth?.checkCommand(call, txn);
      } else {
        reply = await write(txn, deadlineMs, call);
      }
      const { header: h, result } = reply;
      if (result.type !== 'txn') throw new Error(`node answered a txn with a ${result.type} result`);
      return { header: header(h, result.revision), succeeded: result.succeeded, responses: result.results.map(opResultToEtcd) };
    }),
    Compact: unary<etcd.CompactionRequest, etcd.CompactionResponse>('Compact', async (req, deadlineMs, call) => {
      const revision = clampToSafe(req.revision);
      const { header: h, result } = await write({ type: 'compact', revision, physical: req.physical }, deadlineMs, call);
      if (result.type !== 'compact') throw new Error(`node answered a compact with a ${result.type} result`);
      if (req.physical) await node.whenCompacted(revision, deadlineMs);
      return { header: header(h, result.revision) };
    }),
  };
}
