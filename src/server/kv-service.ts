// The client-facing KV service: wire requests -> validated commands -> KvNode -> wire responses.
// Malformed requests and invalid keys answer INVALID_ARGUMENT with a message; nothing a client sends can crash it.
import type { sendUnaryData, ServerDuplexStream, ServerUnaryCall, UntypedServiceImplementation } from '@grpc/grpc-js';
import type { pino } from 'pino';
import type { ResponseHeader, KvNode } from '../node/api.js';
import { RaftKvError } from '../shared/errors.js';
import type {
  Command,
  Compare,
  CompareOp,
  CommandResult,
  KeyValue,
  KvLimits,
  Op,
  OpResult,
  RangeRequest,
  RangeResult,
} from '../kv/types.js';
import { validateCommand, validateRange } from '../kv/validate.js';
import { isTxnReadonly } from '../kv/commands.js';
import type {
  WireCompare,
  WireDeleteRequest,
  WireDeleteResponse,
  WireGetRequest,
  WireGetResponse,
  WireHeader,
  WireKeyValue,
  WirePutRequest,
  WirePutResponse,
  WireRangeRequest,
  WireRangeResponse,
  WireRequestOp,
  WireResponseOp,
  WireTxnRequest,
  WireTxnResponse,
  WireCompactRequest,
  WireCompactResponse,
  WireStreamCalls,
  WireStreamAnswers,
} from '../protocol/proto.js';
import { requestBytes } from '../protocol/proto.js';
import { toGrpcStatus } from '../protocol/wire-errors.js';
import { serveKvStream } from './kv-stream.js';
import type { AuthGate, CallerContext } from './auth-gate.js';

export interface ServiceOptions {
  readonly node: KvNode;
  readonly limits: KvLimits;
  readonly maxRequestBytes: number; // requests whose keys and values add up to more are INVALID_ARGUMENT
  readonly defaultTimeoutMs: number; // deadline for calls that carry none
  readonly logger: pino.Logger;
  /** This member's metrics server URL, for Status (the dashboard finds the other members' through it). */
  readonly metricsUrl?: () => string;
  /** Permission checks once authentication is on (auth-gate.ts); none without. */
  readonly auth?: AuthGate;
}

function assertNever(x: never): never {
  throw new Error(`unexpected value ${JSON.stringify(x)}`);
}

function invalid(message: string): RaftKvError {
  return new RaftKvError('INVALID_ARGUMENT', message);
}

// ------------------------------------------------------------------ conversions

export function headerToWire(h: ResponseHeader, revision: number): WireHeader {
  return { memberId: h.memberId, term: h.term, index: h.index, leaderId: h.leaderId, revision };
}

export function kvToWire(kv: KeyValue): WireKeyValue {
  return {
    key: Buffer.from(kv.key.buffer, kv.key.byteOffset, kv.key.byteLength),
    value: Buffer.from(kv.value.buffer, kv.value.byteOffset, kv.value.byteLength),
    createRevision: kv.createRevision,
    modRevision: kv.modRevision,
    version: kv.version,
    lease: kv.lease,
  };
}

function bytesOf(b: Uint8Array | null | undefined): Uint8Array {
  return b ?? new Uint8Array(0);
}

function count(n: number | undefined, what: string): number {
  const v = n ?? 0;
  if (!Number.isSafeInteger(v) || v < 0) throw invalid(`${what} must be a non-negative integer, got ${v}`);
  return v;
}

function rangeRequestFromWire(r: { key: Uint8Array; end?: Uint8Array; limit?: number; keysOnly?: boolean; countOnly?: boolean; revision?: number }): RangeRequest {
  const revision = r.revision ?? 0;
  if (!Number.isSafeInteger(revision)) throw invalid(`revision must be an integer, got ${revision}`);
  return {
    key: bytesOf(r.key),
    end: bytesOf(r.end),
    limit: count(r.limit, 'limit'),
    keysOnly: r.keysOnly ?? false,
    countOnly: r.countOnly ?? false,
    revision,
  };
}

const COMPARE_OPS: Readonly<Record<string, CompareOp>> = { EQUAL: '=', NOT_EQUAL: '!=', LESS: '<', GREATER: '>' };

function compareFromWire(c: WireCompare, i: number): Compare {
  const op = COMPARE_OPS[c.op];
  if (op === undefined) throw invalid(`txn compare ${i}: unknown op ${String(c.op)}`);
  const key = bytesOf(c.key);
  switch (c.target) {
    case 'VALUE':
      return { key, target: 'value', op, value: bytesOf(c.value) };
    case 'VERSION':
      return { key, target: 'version', op, number: count(c.number, `txn compare ${i} number`) };
    case 'CREATE':
      return { key, target: 'create', op, number: count(c.number, `txn compare ${i} number`) };
    case 'MOD':
      return { key, target: 'mod', op, number: count(c.number, `txn compare ${i} number`) };
    case 'LEASE':
      return { key, target: 'lease', op, number: count(c.number, `txn compare ${i} number`) };
    default:
      throw invalid(`txn compare ${i}: unknown target ${String(c.target)}`);
  }
}

function opFromWire(o: WireRequestOp, what: string): Op {
  switch (o.op) {
    case 'put':
      if (!o.put) break;
      return { type: 'put', key: bytesOf(o.put.key), value: bytesOf(o.put.value), prevKv: o.put.prevKv ?? false, lease: leaseOf(o.put.lease) };
    case 'delete':
      if (!o.delete) break;
      return { type: 'delete', range: { key: bytesOf(o.delete.key), end: bytesOf(o.delete.end) }, prevKv: o.delete.prevKv ?? false };
    case 'range':
      if (!o.range) break;
      return { type: 'range', request: rangeRequestFromWire(o.range) };
    case undefined:
      break;
    default:
      assertNever(o.op);
  }
  throw invalid(`${what}: empty request op`);
}

function rangeResultToWire(r: RangeResult): { kvs: WireKeyValue[]; more: boolean; count: number } {
  return { kvs: r.kvs.map(kvToWire), more: r.more, count: r.count };
}

function opResultToWire(r: OpResult): WireResponseOp {
  switch (r.type) {
    case 'put':
      return { put: { prevKv: r.prevKv ? kvToWire(r.prevKv) : null } };
    case 'delete':
      return { delete: { deleted: r.deleted, prevKvs: r.prevKvs.map(kvToWire) } };
    case 'range':
      return { range: rangeResultToWire(r.result) };
    case 'txn':
      throw new Error('kv-service: a nested txn result, but this protocol sends no nested txn');
    default:
      return assertNever(r);
  }
}

// ------------------------------------------------------------------ handlers

/** The deadline of a call as an absolute Date.now() time (the default when the client sent none). */
export function deadlineOf(call: { getDeadline(): Date | number }, defaultTimeoutMs: number): number {
  const d = call.getDeadline();
  const ms = d instanceof Date ? d.getTime() : d;
  return Number.isFinite(ms) ? ms : Date.now() + defaultTimeoutMs;
}

/** INVALID_ARGUMENT when a request's byte and string fields add up to more than --max-request-bytes. */
export function checkRequestSize(opts: Pick<ServiceOptions, 'maxRequestBytes'>, name: string, request: unknown): void {
  const size = requestBytes(request);
  if (size > opts.maxRequestBytes) {
    throw invalid(`${name}: request of ${size} bytes is larger than the limit of ${opts.maxRequestBytes} (--max-request-bytes)`);
  }
}

/** Runs one unary handler: request size check, then `fn`; RaftKvError -> its status, anything else -> INTERNAL + log. */
export function unary<Req, Res>(
  opts: Pick<ServiceOptions, 'maxRequestBytes' | 'logger'>,
  name: string,
  fn: (req: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res>,
): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
  return (call, callback) => {
    const run = async (): Promise<Res> => {
      checkRequestSize(opts, name, call.request);
      return fn(call.request, call);
    };
    run().then(
      (res) => callback(null, res),
      (err: unknown) => {
        if (!(err instanceof RaftKvError)) opts.logger.error({ err, method: name }, 'internal error in handler');
        callback(toGrpcStatus(err));
      },
    );
  };
}

export function commandFromPut(req: WirePutRequest): Command {
  return { type: 'put', key: bytesOf(req.key), value: bytesOf(req.value), prevKv: req.prevKv ?? false, lease: leaseOf(req.lease) };
}

/** A put's lease id as the node's PutOp holds it (0 = none; a nonzero one must exist, else LEASE_NOT_FOUND). */
function leaseOf(lease: number | string | undefined): number {
  return lease === undefined ? 0 : Number(lease);
}

export function commandFromDelete(req: WireDeleteRequest): Command {
  return { type: 'delete', range: { key: bytesOf(req.key), end: bytesOf(req.end) }, prevKv: req.prevKv ?? false };
}

export function commandFromTxn(req: WireTxnRequest): Command {
  return {
    type: 'txn',
    compares: (req.compares ?? []).map(compareFromWire),
    success: (req.success ?? []).map((o, i) => opFromWire(o, `txn success op ${i}`)),
    failure: (req.failure ?? []).map((o, i) => opFromWire(o, `txn failure op ${i}`)),
  };
}

function expectResult<T extends CommandResult['type']>(r: CommandResult, type: T): Extract<CommandResult, { type: T }> {
  if (r.type !== type) throw new Error(`node answered a ${type} with a ${r.type} result`);
  return r as Extract<CommandResult, { type: T }>;
}

/** The five KV calls, shared by their unary methods and the Stream method: request in, response out. */
export interface KvHandlers {
  readonly put: (req: WirePutRequest, deadlineMs: number, call: CallerContext) => Promise<WirePutResponse>;
  readonly get: (req: WireGetRequest, deadlineMs: number, call: CallerContext) => Promise<WireGetResponse>;
  readonly range: (req: WireRangeRequest, deadlineMs: number, call: CallerContext) => Promise<WireRangeResponse>;
  readonly delete: (req: WireDeleteRequest, deadlineMs: number, call: CallerContext) => Promise<WireDeleteResponse>;
  readonly txn: (req: WireTxnRequest, deadlineMs: number, call: CallerContext) => Promise<WireTxnResponse>;
}

export function createKvHandlers(opts: ServiceOptions): KvHandlers {
  const { node, limits } = opts;

  const write = async (command: Command, req: { clientId?: string; seq?: number }, deadlineMs: number, call: CallerContext) => {
    validateCommand(command, limits);
    await opts.auth?.ready(call, deadlineMs);
    await opts.auth?.checkWrite(call, command, deadlineMs);
    const clientId = req.clientId ?? '';
    const seq = count(req.seq, 'seq');
    if (clientId.length > 256) throw invalid(`client_id is ${clientId.length} characters, more than 256`);
    return node.write(command, { clientId, seq, deadlineMs });
  };

  const read = async (request: RangeRequest, serializable: boolean, deadlineMs: number, call: CallerContext) => {
    validateRange(request, limits);
    await opts.auth?.ready(call, deadlineMs);
    opts.auth?.caller(call);
    const reply = await node.read(request, { serializable, deadlineMs });
    opts.auth?.checkRange(call, 'read', request); // once served: see etcd-kv-service.ts Range
    return reply;
  };

  return {
    put: async (req, deadlineMs, call) => {
      const { header, result } = await write(commandFromPut(req), req, deadlineMs, call);
      const r = expectResult(result, 'put');
      return { header: headerToWire(header, r.revision), prevKv: r.prevKv ? kvToWire(r.prevKv) : null };
    },
    get: async (req, deadlineMs, call) => {
      const request: RangeRequest = { key: bytesOf(req.key), end: new Uint8Array(0), limit: 1, keysOnly: false, countOnly: false };
      const { header, result } = await read(request, req.serializable ?? false, deadlineMs, call);
      const kv = result.kvs[0];
      return { header: headerToWire(header, result.revision), kv: kv ? kvToWire(kv) : null };
    },
    range: async (req, deadlineMs, call) => {
      const { header, result } = await read(rangeRequestFromWire(req), req.serializable ?? false, deadlineMs, call);
      return { header: headerToWire(header, result.revision), ...rangeResultToWire(result) };
    },
    delete: async (req, deadlineMs, call) => {
      const { header, result } = await write(commandFromDelete(req), req, deadlineMs, call);
      const r = expectResult(result, 'delete');
      return { header: headerToWire(header, r.revision), deleted: r.deleted, prevKvs: r.prevKvs.map(kvToWire) };
    },
    txn: async (req, deadlineMs, call) => {
      const command = commandFromTxn(req);
      // A read-only txn is served as a Range is (ReadIndex on any member), as on etcd's API: not logged; its
      // permissions checked once served, as a Range's.
      let reply;
      if (command.type === 'txn' && isTxnReadonly(command)) {
        validateCommand(command, limits);
        await opts.auth?.ready(call, deadlineMs);
        opts.auth?.caller(call);
        reply = await node.readTxn(command, { serializable: false, deadlineMs });
        opts.auth?.checkCommand(call, command);
      } else {
        reply = await write(command, req, deadlineMs, call);
      }
      const { header, result } = reply;
      const r = expectResult(result, 'txn');
      return { header: headerToWire(header, r.revision), succeeded: r.succeeded, results: r.results.map(opResultToWire) };
    },
  };
}

export function createKvService(opts: ServiceOptions): UntypedServiceImplementation {
  const h = createKvHandlers(opts);
  const deadline = (call: { getDeadline(): Date | number }): number => deadlineOf(call, opts.defaultTimeoutMs);
  return {
    Put: unary<WirePutRequest, WirePutResponse>(opts, 'Put', (req, call) => h.put(req, deadline(call), call)),
    Get: unary<WireGetRequest, WireGetResponse>(opts, 'Get', (req, call) => h.get(req, deadline(call), call)),
    Range: unary<WireRangeRequest, WireRangeResponse>(opts, 'Range', (req, call) => h.range(req, deadline(call), call)),
    Delete: unary<WireDeleteRequest, WireDeleteResponse>(opts, 'Delete', (req, call) => h.delete(req, deadline(call), call)),
    Txn: unary<WireTxnRequest, WireTxnResponse>(opts, 'Txn', (req, call) => h.txn(req, deadline(call), call)),
    Compact: unary<WireCompactRequest, WireCompactResponse>(opts, 'Compact', async (req, call) => {
      const revision = req.revision ?? 0;
      if (!Number.isSafeInteger(revision)) throw invalid(`compact: revision must be an integer, got ${revision}`);
      const command: Command = { type: 'compact', revision, physical: req.physical ?? false };
      validateCommand(command, opts.limits);
      const deadlineMs = deadline(call);
      await opts.auth?.ready(call, deadlineMs);
      await opts.auth?.checkWrite(call, command, deadlineMs);
      const { header, result } = await opts.node.write(command, { clientId: '', seq: 0, deadlineMs });
      const r = expectResult(result, 'compact');
      if (command.physical) await opts.node.whenCompacted(revision, deadlineMs);
      return { header: headerToWire(header, r.revision) };
    }),
    Stream: (call: ServerDuplexStream<WireStreamCalls, WireStreamAnswers>) =>
      serveKvStream(call, h, { defaultTimeoutMs: opts.defaultTimeoutMs, logger: opts.logger, checkSize: (name, req) => checkRequestSize(opts, name, req) }),
  };
}
