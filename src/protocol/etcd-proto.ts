// The one place proto/etcd (etcd's v3 API as raftkv's own .proto files) is loaded, with protobufjs: the gRPC
// ServiceDefinitions that @grpc/grpc-js servers and clients both take, message codecs, and typed call helpers.
// Values as the TypeScript types of etcd-types.ts (generated from the same files) give them:
// - field names camelCase (`range_end` is rangeEnd, `ID` stays ID);
// - every int64/uint64 (and sint64/fixed64/sfixed64) a bigint, both ways: decoding never yields a Long or a
//   rounded number, and encoding takes only bigints and refuses one out of its type's range instead of
//   wrapping it (protobufjs would: -1n as a uint64 is 2^64-1 on the wire);
// - bytes as Buffer (any Uint8Array accepted on encode), enums as numbers (the TS enums of etcd-types.ts);
// - unset scalars and lists read as proto3 defaults, an unset message field as null, and in a oneof only the
//   member that is set, with the oneof's own name as a virtual field naming it (`request: 'requestPut'`).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { ETCD_SERVICE_NAMES, type EtcdMessages, type EtcdServices } from './etcd-types.js';
import { findProtoFile } from './proto-dir.js';
import { strictRequestDeserialize } from './strict-wire.js';

export * from './etcd-types.js';

/** proto/etcd/etcdserverpb/rpc.proto, whose imports bring in mvccpb/kv.proto and authpb/auth.proto. */
export const ETCD_RPC_PROTO = findProtoFile(join('etcd', 'etcdserverpb', 'rpc.proto'));

/** Imports that carry only Go code-generation or HTTP-gateway options (no wire meaning): not loaded. */
const OPTION_ONLY_IMPORTS = ['gogoproto/', 'google/api/', 'protoc-gen-openapiv2/'];

/**
 * Parses a .proto file and its imports into a resolved protobufjs Root. An import is looked up in the
 * importing file's folder and then in each folder above it (so `mvccpb/kv.proto` from
 * proto/etcd/etcdserverpb/ is proto/etcd/mvccpb/kv.proto, and etcd's own `etcd/mvcc/mvccpb/kv.proto` is found
 * above its rpc.proto); option-only imports are skipped, and options naming them are kept unresolved.
 * keepCase: proto field names as written (the conformance test) instead of camelCase (the codecs).
 */
export function loadProtoRoot(entryFile: string, options: { readonly keepCase: boolean }): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = resolveImport;
  root.loadSync(entryFile, { keepCase: options.keepCase });
  root.resolveAll();
  return root;
}

function resolveImport(origin: string, target: string): string | null {
  if (origin === '') return target; // the entry file itself
  if (OPTION_ONLY_IMPORTS.some((prefix) => target.startsWith(prefix))) return null;
  for (let dir = dirname(origin); ; dir = dirname(dir)) {
    const candidate = join(dir, target);
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) throw new Error(`import "${target}" of ${origin} is in no folder above it`);
  }
}

const ROOT = loadProtoRoot(ETCD_RPC_PROTO, { keepCase: false });

// ------------------------------------------------------------------ codecs

/** What encode takes for a message of type T: every field optional (proto3 default), bytes as any Uint8Array. */
export type MessageInit<T> = T extends Buffer
  ? Uint8Array
  : T extends bigint | number | boolean | string
    ? T
    : T extends readonly (infer E)[]
      ? readonly MessageInit<E>[]
      : T extends object
        ? { [K in keyof T]?: MessageInit<NonNullable<T[K]>> | null }
        : T;

/**
 * A message already encoded, written as it is (every codec passes it through): the Watch service encodes one
 * revision's header and events once and sends them to every watcher with only its watch_id appended.
 */
export class PreEncoded {
  constructor(readonly bytes: Buffer) {}
}

/** What a server may write as a response of type T: the message, or its bytes encoded already. */
export type ResponseInit<T> = MessageInit<T> | PreEncoded;

export interface MessageCodec<T> {
  readonly encode: (value: MessageInit<T> | PreEncoded) => Buffer;
  readonly decode: (bytes: Uint8Array) => T;
}

export type EtcdMessageName = keyof EtcdMessages;

const DECODED: protobuf.IConversionOptions = {
  longs: BigInt, // Long -> bigint (decoded 64-bit values are Longs: protobufjs depends on the `long` package)
  defaults: true, // unset scalars as proto3 defaults (bytes as an empty Buffer), unset messages as null
  arrays: true, // unset repeated fields as []
  objects: true, // unset maps as {}
  oneofs: true, // the oneof's name as a virtual field naming the member set
  // enums: left out, so enums stay numbers; bytes: left out, so they stay the Buffers the reader made.
};

const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;
const UINT64_MAX = (1n << 64n) - 1n;
const UNSIGNED_64 = new Set(['uint64', 'fixed64']);
const SIGNED_64 = new Set(['int64', 'sint64', 'sfixed64']);

/** Throws unless every 64-bit field in `value` (a message of `type`, at any depth) is a bigint in range. */
function check64(type: protobuf.Type, value: object, path: string): void {
  const fields = value as Record<string, unknown>;
  for (const field of type.fieldsArray) {
    const v = fields[field.name];
    if (v === undefined || v === null) continue;
    const at = `${path}.${field.name}`;
    const items: unknown[] = field.map ? Object.values(v) : field.repeated && Array.isArray(v) ? v : [v];
    const sub = field.resolvedType;
    if (sub instanceof protobuf.Type) {
      for (const item of items) if (typeof item === 'object' && item !== null) check64(sub, item, at);
    } else if (UNSIGNED_64.has(field.type) || SIGNED_64.has(field.type)) {
      const [min, max] = UNSIGNED_64.has(field.type) ? [0n, UINT64_MAX] : [INT64_MIN, INT64_MAX];
      for (const item of items) {
        if (typeof item !== 'bigint') throw new TypeError(`${at} (${field.type}) must be a bigint, not ${typeof item}`);
        if (item < min || item > max) throw new RangeError(`${at} (${field.type}) out of range: ${item}`);
      }
    }
  }
}

/**
 * Set (true, not enumerable) on a decoded RangeRequest whose range_end was on the wire with no bytes. proto3
 * cannot tell that from an unset field, but etcd can (Go reads it as a non-nil empty slice): on Range and in a
 * read-only Txn it means "every key >= key" (ETCD-NOTES, behaviour 1). protobufjs does not keep the difference,
 * so the decoder reads it from the wire: only for the types that hold a RangeRequest (Range, Txn requests).
 */
export const EMPTY_RANGE_END_SENT: unique symbol = Symbol('etcd: range_end sent empty');

const RANGE_REQUEST = 'etcdserverpb.RangeRequest';
const carriesRange = new Map<string, boolean>(); // by full name: the type holds a RangeRequest at some depth

function holdsRangeRequest(type: protobuf.Type, seen: Set<string> = new Set()): boolean {
  const known = carriesRange.get(type.fullName);
  if (known !== undefined) return known;
  if (type.fullName.slice(1) === RANGE_REQUEST) return true;
  if (seen.has(type.fullName)) return false;
  seen.add(type.fullName);
  const holds = type.fieldsArray.some((f) => f.resolvedType instanceof protobuf.Type && holdsRangeRequest(f.resolvedType, seen));
  carriesRange.set(type.fullName, holds);
  return holds;
}

/** The length-delimited fields of a message on the wire, in order: field number and the bytes. */
function delimitedFields(bytes: Uint8Array): { id: number; value: Uint8Array }[] {
  const reader = protobuf.Reader.create(bytes);
  const out: { id: number; value: Uint8Array }[] = [];
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    if ((tag & 7) === 2) out.push({ id: tag >>> 3, value: reader.bytes() });
    else reader.skipType(tag & 7);
  }
  return out;
}

/** Marks, in `obj` (the decoded copy of `bytes`), every RangeRequest whose range_end was sent empty. */
function markEmptyRangeEnds(type: protobuf.Type, bytes: Uint8Array, obj: Record<string, unknown>): void {
  const wire = delimitedFields(bytes);
  if (type.fullName.slice(1) === RANGE_REQUEST) {
    const id = type.fields['rangeEnd']?.id;
    if (wire.some((f) => f.id === id && f.value.length === 0)) Object.defineProperty(obj, EMPTY_RANGE_END_SENT, { value: true });
    return;
  }
  for (const field of type.fieldsArray) {
    const sub = field.resolvedType;
    if (!(sub instanceof protobuf.Type) || !holdsRangeRequest(sub)) continue;
    const occurrences = wire.filter((f) => f.id === field.id);
    const decoded = obj[field.name];
    const targets: unknown[] = field.repeated && Array.isArray(decoded) ? decoded : [decoded];
    occurrences.forEach((f, i) => {
      // A repeated field's i-th element is its i-th occurrence; a single one is the last occurrence merged (etcd's
      // clients send it once).
      const target = field.repeated ? targets[i] : targets[0];
      if (typeof target === 'object' && target !== null) markEmptyRangeEnds(sub, f.value, target as Record<string, unknown>);
    });
  }
}

function codecOf<T>(type: protobuf.Type): MessageCodec<T> {
  const name = type.fullName.slice(1);
  const marks = holdsRangeRequest(type);
  return {
    encode: (value) => {
      if (value instanceof PreEncoded) return value.bytes;
      check64(type, value as object, name);
      const bytes = type.encode(type.fromObject(value as Record<string, unknown>)).finish();
      return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    },
    decode: (bytes) => {
      const obj = type.toObject(type.decode(bytes), DECODED);
      if (marks) markEmptyRangeEnds(type, bytes, obj);
      return obj as unknown as T;
    },
  };
}

const codecs = new Map<string, MessageCodec<unknown>>(); // by full name, built once each

function cachedCodec(type: protobuf.Type): MessageCodec<unknown> {
  let codec = codecs.get(type.fullName);
  if (codec === undefined) {
    codec = codecOf<unknown>(type);
    codecs.set(type.fullName, codec);
  }
  return codec;
}

/** The codec of a message by its full proto name ('etcdserverpb.RangeRequest', 'mvccpb.KeyValue', ...). */
export function etcdCodec<N extends EtcdMessageName>(name: N): MessageCodec<EtcdMessages[N]> {
  return cachedCodec(ROOT.lookupType(name)) as MessageCodec<EtcdMessages[N]>;
}

// ------------------------------------------------------------------ services

export type EtcdServiceName = keyof EtcdServices;
export type EtcdMethodName<S extends EtcdServiceName> = keyof EtcdServices[S] & string;
type MethodOf<S extends EtcdServiceName, M extends EtcdMethodName<S>> = EtcdServices[S][M];
export type EtcdRequest<S extends EtcdServiceName, M extends EtcdMethodName<S>> =
  MethodOf<S, M> extends { request: infer R } ? R : never;
export type EtcdResponse<S extends EtcdServiceName, M extends EtcdMethodName<S>> =
  MethodOf<S, M> extends { response: infer R } ? R : never;

/** Methods of S that are plain request/response calls (no stream either way). */
export type EtcdUnaryMethod<S extends EtcdServiceName> = {
  [M in EtcdMethodName<S>]: MethodOf<S, M> extends { requestStream: false; responseStream: false } ? M : never;
}[EtcdMethodName<S>];

/** What a server implements for one method: the request decoded, the response as MessageInit (or PreEncoded). */
export type EtcdHandler<T> = T extends { request: infer Q; response: infer R; requestStream: infer QS; responseStream: infer RS }
  ? QS extends true
    ? RS extends true
      ? grpc.handleBidiStreamingCall<Q, ResponseInit<R>>
      : grpc.handleClientStreamingCall<Q, ResponseInit<R>>
    : RS extends true
      ? grpc.handleServerStreamingCall<Q, ResponseInit<R>>
      : grpc.handleUnaryCall<Q, ResponseInit<R>>
  : never;

/** A server's implementation of service S, for `server.addService(ETCD_SERVICES[S], handlers)`. */
export type EtcdServiceHandlers<S extends EtcdServiceName> = { [M in EtcdMethodName<S>]: EtcdHandler<MethodOf<S, M>> };

function resolved(type: protobuf.Type | null, what: string): protobuf.Type {
  if (type === null) throw new Error(`${what}: message type not resolved`);
  return type;
}

function serviceDefinition(service: protobuf.Service): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methodsArray) {
    const requestType = resolved(method.resolvedRequestType, `${service.fullName}.${method.name}`);
    const request = cachedCodec(requestType);
    const response = cachedCodec(resolved(method.resolvedResponseType, `${service.fullName}.${method.name}`));
    definition[method.name] = {
      path: `/${service.fullName.slice(1)}/${method.name}`,
      requestStream: method.requestStream === true,
      responseStream: method.responseStream === true,
      requestSerialize: request.encode,
      requestDeserialize: strictRequestDeserialize(requestType, request.decode), // servers refuse bad bytes: INVALID_ARGUMENT
      responseSerialize: response.encode,
      responseDeserialize: response.decode,
      originalName: method.name.charAt(0).toLowerCase() + method.name.slice(1),
    };
  }
  return definition;
}

/** etcdserverpb's services as @grpc/grpc-js wants them: `server.addService(ETCD_SERVICES.KV, ...)`, or
 * `grpc.makeGenericClientConstructor(ETCD_SERVICES.KV, 'KV')` for an untyped client. */
export const ETCD_SERVICES: { readonly [S in EtcdServiceName]: grpc.ServiceDefinition } = Object.fromEntries(
  ETCD_SERVICE_NAMES.map((name) => [name, serviceDefinition(ROOT.lookupService(`etcdserverpb.${name}`))]),
) as { [S in EtcdServiceName]: grpc.ServiceDefinition };

function methodDefinition<S extends EtcdServiceName, M extends EtcdMethodName<S>>(
  service: S,
  method: M,
): grpc.MethodDefinition<MessageInit<EtcdRequest<S, M>>, EtcdResponse<S, M>> {
  const definition = ETCD_SERVICES[service][method];
  if (definition === undefined) throw new Error(`etcdserverpb.${service} has no method ${method}`);
  return definition as grpc.MethodDefinition<MessageInit<EtcdRequest<S, M>>, EtcdResponse<S, M>>;
}

// ------------------------------------------------------------------ typed client calls (on any grpc.Client)

export interface EtcdCallOptions {
  readonly timeoutMs?: number; // deadline from now; none if absent
  readonly metadata?: grpc.Metadata; // e.g. `token` after Authenticate, `hasleader: true`
}

function callOptions(options: EtcdCallOptions): grpc.CallOptions {
  return options.timeoutMs === undefined ? {} : { deadline: Date.now() + options.timeoutMs };
}

/** One unary call of etcdserverpb.S/M on `client` (a plain grpc.Client serves every service of a channel). */
export function etcdUnary<S extends EtcdServiceName, M extends EtcdUnaryMethod<S>>(
  client: grpc.Client,
  service: S,
  method: M,
  request: MessageInit<EtcdRequest<S, M>>,
  options: EtcdCallOptions = {},
): Promise<EtcdResponse<S, M>> {
  const def = methodDefinition(service, method);
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      def.path,
      def.requestSerialize,
      def.responseDeserialize,
      request,
      options.metadata ?? new grpc.Metadata(),
      callOptions(options),
      (err, response) => {
        if (err !== null) reject(err);
        else if (response === undefined) reject(new Error(`etcdserverpb.${service}/${method}: no response`));
        else resolve(response);
      },
    );
  });
}

/** A server stream (Maintenance.Snapshot): one request, a readable stream of responses. */
export function etcdServerStream<S extends EtcdServiceName, M extends EtcdMethodName<S>>(
  client: grpc.Client,
  service: S,
  method: M,
  request: MessageInit<EtcdRequest<S, M>>,
  options: EtcdCallOptions = {},
): grpc.ClientReadableStream<EtcdResponse<S, M>> {
  const def = methodDefinition(service, method);
  return client.makeServerStreamRequest(
    def.path,
    def.requestSerialize,
    def.responseDeserialize,
    request,
    options.metadata ?? new grpc.Metadata(),
    callOptions(options),
  );
}

/** A bidirectional stream (Watch.Watch, Lease.LeaseKeepAlive). */
export function etcdBidiStream<S extends EtcdServiceName, M extends EtcdMethodName<S>>(
  client: grpc.Client,
  service: S,
  method: M,
  options: EtcdCallOptions = {},
): grpc.ClientDuplexStream<MessageInit<EtcdRequest<S, M>>, EtcdResponse<S, M>> {
  const def = methodDefinition(service, method);
  return client.makeBidiStreamRequest(
    def.path,
    def.requestSerialize,
    def.responseDeserialize,
    options.metadata ?? new grpc.Metadata(),
    callOptions(options),
  );
}
