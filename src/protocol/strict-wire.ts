// Strict decoding of requests: the bytes of a request must be a well-formed protobuf encoding of its message
// type before any decoder reads them. protobufjs reads a declared field whatever wire type it arrives on and
// skips malformed tails, so garbage could decode into a plausible request (the Admin.MemberRemove that
// read as {id: 1}). Go's protobuf, which etcd uses, refuses such bytes; this check refuses what it refuses.
//
// Rules, per message (and recursively per embedded message, up to MAX_NESTING_DEPTH):
//   - every tag is a complete varint with a field number >= 1 and a wire type of 0, 1, 2 or 5 (proto3 has no
//     groups: 3 and 4 are refused; 6 and 7 do not exist);
//   - a declared field arrives on its type's wire type (a repeated scalar also packed, as length-delimited);
//   - varints end within 10 bytes, fixed fields and length-delimited payloads within the message;
//   - a string is valid UTF-8 (as in Go's proto3); an embedded message is itself well-formed;
//   - a packed field holds whole elements; a map entry is a well-formed message of its key and value.
// Unknown fields with a valid wire type are skipped (proto3's forward compatibility, as Go does).
//
// Wiring: `strictRequestDeserialize` wraps a method's requestDeserialize so that bad bytes give a
// MalformedRequest instead of a decoded value; grpc-js answers INTERNAL when a deserializer throws, so the
// server's strict-decoding interceptor (src/server/strict-decoding.ts) refuses MalformedRequest with
// INVALID_ARGUMENT before any handler sees it.
import { isUtf8 } from 'node:buffer';
import protobuf from 'protobufjs';

/**
 * Deepest nesting of embedded messages accepted. etcd's deepest legitimate requests are nested Txns (each level
 * TxnRequest -> RequestOp -> TxnRequest: two levels), and etcd limits a txn to 128 operations in all; 100
 * levels is far beyond any real request while keeping a hostile one from recursing without bound.
 */
export const MAX_NESTING_DEPTH = 100;

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_DELIMITED = 2;
const WIRE_FIXED32 = 5;

const VARINT_TYPES = new Set(['int32', 'int64', 'uint32', 'uint64', 'sint32', 'sint64', 'bool']);
const FIXED64_TYPES = new Set(['fixed64', 'sfixed64', 'double']);
const FIXED32_TYPES = new Set(['fixed32', 'sfixed32', 'float']);

/** What the deserializer gives instead of a request when the bytes are not one (never reaches a handler). */
export class MalformedRequest {
  constructor(readonly reason: string) {}
}

class WireError extends Error {}

/** The wire type a scalar (or enum) of proto type `type` is encoded with; undefined for string/bytes/messages. */
function scalarWireType(type: string, resolved: protobuf.ReflectionObject | null): number | undefined {
  if (resolved instanceof protobuf.Enum) return WIRE_VARINT;
  if (VARINT_TYPES.has(type)) return WIRE_VARINT;
  if (FIXED64_TYPES.has(type)) return WIRE_FIXED64;
  if (FIXED32_TYPES.has(type)) return WIRE_FIXED32;
  return undefined;
}

class Walker {
  private pos: number;

  constructor(
    private readonly buf: Uint8Array,
    start: number,
    private readonly end: number,
  ) {
    this.pos = start;
  }

  atEnd(): boolean {
    return this.pos >= this.end;
  }

  varint(what: string): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new WireError(`${what}: truncated varint at byte ${this.pos}`);
      const b = this.buf[this.pos++] ?? 0;
      value += (b & 0x7f) * scale; // exact below 2^53; larger values only matter as lengths, which then overrun
      if (b < 0x80) return value;
      scale *= 0x80;
    }
    throw new WireError(`${what}: varint longer than 10 bytes at byte ${this.pos}`);
  }

  skip(n: number, what: string): number {
    const at = this.pos;
    if (n > this.end - this.pos) throw new WireError(`${what}: ${n} bytes at byte ${at} overrun the message`);
    this.pos += n;
    return at;
  }

  /** A length-delimited payload: its [start, end) in the buffer. */
  delimited(what: string): [number, number] {
    const n = this.varint(what);
    const start = this.skip(n, what);
    return [start, start + n];
  }
}

function checkPacked(buf: Uint8Array, start: number, end: number, wireType: number, what: string): void {
  if (wireType === WIRE_VARINT) {
    const w = new Walker(buf, start, end);
    while (!w.atEnd()) w.varint(what);
    return;
  }
  const size = wireType === WIRE_FIXED64 ? 8 : 4;
  if ((end - start) % size !== 0) throw new WireError(`${what}: packed field of ${end - start} bytes is no whole number of ${size}-byte elements`);
}

/** Per message type, the names its errors use, made once (the check runs on every request: no strings per field). */
interface TypeNames {
  readonly name: string;
  readonly tag: string;
  readonly fields: Map<number, string>;
}
const typeNames = new WeakMap<protobuf.Type, TypeNames>();

function namesOf(type: protobuf.Type): TypeNames {
  let names = typeNames.get(type);
  if (names === undefined) {
    const name = type.fullName.slice(1);
    names = { name, tag: `${name}: tag`, fields: new Map(type.fieldsArray.map((f) => [f.id, `${name}.${f.name}`])) };
    typeNames.set(type, names);
  }
  return names;
}

function checkMessage(type: protobuf.Type, buf: Uint8Array, start: number, end: number, depth: number): void {
  if (depth > MAX_NESTING_DEPTH) throw new WireError(`${type.fullName.slice(1)}: nested deeper than ${MAX_NESTING_DEPTH} messages`);
  const w = new Walker(buf, start, end);
  const names = namesOf(type);
  const name = names.name;
  while (!w.atEnd()) {
    const tag = w.varint(names.tag);
    const id = Math.floor(tag / 8);
    const wireType = tag % 8;
    if (id < 1 || id > 0x1fffffff) throw new WireError(`${name}: field number ${id} is out of range`);
    const field = type.fieldsById[id];
    const what = names.fields.get(id) ?? `${name}.#${id}`;
    switch (wireType) {
      case WIRE_VARINT:
        w.varint(what);
        break;
      case WIRE_FIXED64:
        w.skip(8, what);
        break;
      case WIRE_FIXED32:
        w.skip(4, what);
        break;
      case WIRE_DELIMITED: {
        const [s, e] = w.delimited(what);
        if (field !== undefined) checkDelimitedField(field, buf, s, e, depth, what);
        break;
      }
      default:
        throw new WireError(`${what}: wire type ${wireType} is not valid in proto3`);
    }
    if (field !== undefined && wireType !== WIRE_DELIMITED) {
      const expected = field.map ? WIRE_DELIMITED : scalarWireType(field.type, field.resolvedType);
      if (expected !== wireType) throw new WireError(`${what} (${field.type}) arrived on wire type ${wireType}`);
    }
  }
}

function checkDelimitedField(field: protobuf.Field, buf: Uint8Array, start: number, end: number, depth: number, what: string): void {
  if (field instanceof protobuf.MapField) {
    checkMapEntry(field, buf, start, end, depth, what);
    return;
  }
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Type) {
    checkMessage(resolved, buf, start, end, depth + 1);
    return;
  }
  if (field.type === 'string') {
    if (!isUtf8(buf.subarray(start, end))) throw new WireError(`${what} (string) is not valid UTF-8`);
    return;
  }
  if (field.type === 'bytes') return;
  const scalar = scalarWireType(field.type, resolved);
  if (scalar !== undefined && field.repeated) {
    checkPacked(buf, start, end, scalar, what);
    return;
  }
  throw new WireError(`${what} (${field.type}) arrived length-delimited`);
}

function checkMapEntry(field: protobuf.MapField, buf: Uint8Array, start: number, end: number, depth: number, what: string): void {
  const w = new Walker(buf, start, end);
  while (!w.atEnd()) {
    const tag = w.varint(`${what}: map entry tag`);
    const id = Math.floor(tag / 8);
    const wireType = tag % 8;
    const isKey = id === 1;
    const type = isKey ? field.keyType : field.type;
    const resolved = isKey ? null : field.resolvedType;
    if (id !== 1 && id !== 2) throw new WireError(`${what}: map entry field ${id}`);
    const scalar = scalarWireType(type, resolved);
    const expected = scalar ?? WIRE_DELIMITED;
    if (wireType !== expected) throw new WireError(`${what}: map ${isKey ? 'key' : 'value'} (${type}) arrived on wire type ${wireType}`);
    if (wireType === WIRE_VARINT) w.varint(what);
    else if (wireType === WIRE_FIXED64) w.skip(8, what);
    else if (wireType === WIRE_FIXED32) w.skip(4, what);
    else {
      const [s, e] = w.delimited(what);
      if (resolved instanceof protobuf.Type) checkMessage(resolved, buf, s, e, depth + 1);
      else if (type === 'string' && !isUtf8(buf.subarray(s, e))) throw new WireError(`${what}: map ${isKey ? 'key' : 'value'} is not valid UTF-8`);
    }
  }
}

/** Why `bytes` is not a well-formed encoding of `type`; undefined when it is. */
export function wireProblem(type: protobuf.Type, bytes: Uint8Array): string | undefined {
  try {
    checkMessage(type, bytes, 0, bytes.byteLength, 0);
    return undefined;
  } catch (err) {
    if (err instanceof WireError) return err.message;
    throw err;
  }
}

/** `deserialize`, but only for well-formed bytes: others give a MalformedRequest naming the problem. */
export function strictRequestDeserialize<T>(type: protobuf.Type, deserialize: (bytes: Buffer) => T): (bytes: Buffer) => T {
  return (bytes) => {
    const problem = wireProblem(type, bytes);
    // A MalformedRequest in place of T: the server's strict-decoding interceptor refuses it before any handler
    // (typed as T) can see it. Decoding that throws on well-formed bytes (a value out of range) is refused the same way.
    if (problem !== undefined) return new MalformedRequest(`malformed request: ${problem}`) as unknown as T;
    try {
      return deserialize(bytes);
    } catch (err) {
      return new MalformedRequest(`malformed request: ${type.fullName.slice(1)}: ${err instanceof Error ? err.message : String(err)}`) as unknown as T;
    }
  };
}
