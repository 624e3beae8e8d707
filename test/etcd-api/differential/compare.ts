// Sending one op of the differential test to a server, normalising what it answered, and comparing two answers.
// A normal form is plain JSON data: bigints as decimal strings, bytes as latin1 strings (lossless, and readable
// for these keys), a status error as its gRPC code and exact details string. Only header cluster_id, member_id
// and raft_term are dropped (they name the cluster, the member and its term, which differ by construction).
import type * as grpc from '@grpc/grpc-js';
import { Metadata } from '@grpc/grpc-js';
import { ETCD_SERVICES, etcdCodec, etcdUnary, type MessageInit, type RangeRequest } from '../../../src/protocol/etcd-proto.js';
import type { DiffOp } from './ops.js';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** What a server answered: the response or the status error, in normal form. */
export type Outcome = { readonly ok: true; readonly response: Json } | { readonly ok: false; readonly code: number; readonly details: string };

const IGNORED_FIELDS = new Set(['clusterId', 'memberId', 'raftTerm']);

/** Plain JSON data for a decoded message (or a request): bigints and Buffers as strings; `drop` leaves fields out. */
export function normalise(value: unknown, drop: ReadonlySet<string> = IGNORED_FIELDS): Json {
  if (value === null || value === undefined) return null;
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'boolean' || typeof value === 'number' || typeof value === 'string') return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('latin1');
  if (Array.isArray(value)) return value.map((v) => normalise(v, drop));
  if (typeof value === 'object') {
    const out: { [key: string]: Json } = {};
    for (const [k, v] of Object.entries(value)) if (!drop.has(k)) out[k] = normalise(v, drop);
    return out;
  }
  throw new TypeError(`cannot normalise a ${typeof value}`);
}

function isServiceError(err: unknown): err is grpc.ServiceError {
  return err instanceof Error && typeof (err as Partial<grpc.ServiceError>).code === 'number';
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}

/** A length-delimited field (wire type 2) of a protobuf message. */
function lengthDelimited(field: number, bytes: Buffer): Buffer {
  return Buffer.concat([varint((field << 3) | 2), varint(bytes.length), bytes]);
}

/** A RangeRequest whose range_end (field 2) is on the wire and empty. */
function rangeWithEmptyEnd(range: MessageInit<RangeRequest>): Buffer {
  return Buffer.concat([etcdCodec('etcdserverpb.RangeRequest').encode(range), lengthDelimited(2, Buffer.alloc(0))]);
}

/** The wire bytes of a request, when protobufjs cannot make them (an explicitly empty range_end). */
function rawRequest(op: DiffOp): Buffer | undefined {
  if (op.method === 'Range' && op.explicitEmptyRangeEnd === true) return rangeWithEmptyEnd(op.request);
  if (op.method === 'Txn' && op.successRangeWithEmptyEnd !== undefined) {
    // TxnRequest.success is field 2; RequestOp.request_range field 1. Repeated fields may come in any order.
    const op1 = lengthDelimited(1, rangeWithEmptyEnd(op.successRangeWithEmptyEnd));
    return Buffer.concat([etcdCodec('etcdserverpb.TxnRequest').encode(op.request), lengthDelimited(2, op1)]);
  }
  return undefined;
}

function rawUnary(client: grpc.Client, method: 'Range' | 'Txn', bytes: Buffer, timeoutMs: number): Promise<unknown> {
  const def = ETCD_SERVICES.KV[method];
  if (def === undefined) throw new Error(`no KV/${method}`);
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      def.path,
      (b: Buffer) => b,
      def.responseDeserialize,
      bytes,
      new Metadata(),
      { deadline: Date.now() + timeoutMs },
      (err, response) => (err !== null ? reject(err) : resolve(response)),
    );
  });
}

/** Sends `op` to `client` and returns its outcome; errors that are not gRPC statuses are thrown. */
export async function send(client: grpc.Client, op: DiffOp, timeoutMs = 10_000): Promise<Outcome> {
  const options = { timeoutMs };
  try {
    let response: unknown;
    const raw = rawRequest(op);
    switch (op.method) {
      case 'Range':
        response = raw !== undefined ? await rawUnary(client, 'Range', raw, timeoutMs) : await etcdUnary(client, 'KV', 'Range', op.request, options);
        break;
      case 'Put':
        response = await etcdUnary(client, 'KV', 'Put', op.request, options);
        break;
      case 'DeleteRange':
        response = await etcdUnary(client, 'KV', 'DeleteRange', op.request, options);
        break;
      case 'Txn':
        response = raw !== undefined ? await rawUnary(client, 'Txn', raw, timeoutMs) : await etcdUnary(client, 'KV', 'Txn', op.request, options);
        break;
      case 'Compact':
        response = await etcdUnary(client, 'KV', 'Compact', op.request, options);
        break;
    }
    return { ok: true, response: normalise(response) };
  } catch (err) {
    if (isServiceError(err)) return { ok: false, code: err.code, details: err.details };
    throw err;
  }
}

/** The first path at which two normal forms differ ('' when equal), e.g. `.response.kvs[1].modRevision`. */
export function firstDifference(a: Json, b: Json, path = ''): string | undefined {
  if (a === b) return undefined;
  if (Array.isArray(a) && Array.isArray(b)) {
    for (let i = 0; i < Math.max(a.length, b.length); i++) {
      if (i >= a.length || i >= b.length) return `${path}[${i}] (lengths ${a.length} and ${b.length})`;
      const d = firstDifference(a[i] ?? null, b[i] ?? null, `${path}[${i}]`);
      if (d !== undefined) return d;
    }
    return undefined;
  }
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])]; // in order: `ok` first
    for (const k of keys) {
      if (!(k in a) || !(k in b)) return `${path}.${k} (only in ${k in a ? 'the first' : 'the second'})`;
      const d = firstDifference(a[k] ?? null, b[k] ?? null, `${path}.${k}`);
      if (d !== undefined) return d;
    }
    return undefined;
  }
  return path === '' ? '(top level)' : path;
}

export function outcomeJson(o: Outcome): Json {
  return o.ok ? { ok: true, response: o.response } : { ok: false, code: o.code, details: o.details };
}

/** The op as JSON for a failure message: bigints as strings, Buffers as (latin1) strings. */
export function opJson(op: DiffOp): string {
  return JSON.stringify(normalise(op, new Set()));
}

// A lossless encoding of ops for replay files (DIFF_REPLAY): bigints as {"$i": "..."}, bytes as {"$b": hex}.
export function encodeOp(op: DiffOp): string {
  const walk = (v: unknown): unknown => {
    if (typeof v === 'bigint') return { $i: v.toString() };
    if (v instanceof Uint8Array) return { $b: Buffer.from(v).toString('hex') };
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    return v;
  };
  return JSON.stringify(walk(op));
}

export function decodeOp(line: string): DiffOp {
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      const keys = Object.keys(o);
      if (keys.length === 1 && typeof o.$i === 'string') return BigInt(o.$i);
      if (keys.length === 1 && typeof o.$b === 'string') return Buffer.from(o.$b, 'hex');
      return Object.fromEntries(keys.map((k) => [k, walk(o[k])]));
    }
    return v;
  };
  return walk(JSON.parse(line)) as DiffOp;
}
