// Compact binary encodings of the state machine: log entry payloads (Envelope), stored values, session answers.
//
// Primitives (all formats):
//   uvarint   unsigned LEB128, at most 8 bytes, values 0 .. 2^53-1 (JS safe integers)
//   bytes     uvarint length, then the bytes
//   string    bytes holding UTF-8
//   flag      one byte, 0 or 1 (anything else is garbage)
//
// Envelope (the data of a 'normal' log entry; empty data is the leader's no-op and never reaches this codec):
//   u8 0x01 (format version) | string clientId | uvarint seq | Command
//   Command  := u8 tag: 1 put    | bytes key | bytes value | flag prevKv
//                       2 delete | KeyRange | flag prevKv
//                       3 txn    | uvarint n, Compare*n | uvarint n, Op*n (success) | uvarint n, Op*n (failure)
//   KeyRange := bytes key | bytes end
//   Compare  := bytes key | u8 target (1 value, 2 version, 3 create, 4 mod) | u8 op (1 '=', 2 '!=', 3 '<', 4 '>')
//               | bytes value (target value) or uvarint number (other targets)
//   Op       := u8 tag: 1 put | bytes key | bytes value | flag prevKv
//                       2 delete | KeyRange | flag prevKv
//                       3 range | RangeRequest
//   RangeRequest := KeyRange | uvarint limit | u8 flags (bit 0 keysOnly, bit 1 countOnly)
//
// StoredValue (the LevelDB value of a user key, see state-machine.ts for the key layout):
//   u8 0x01 | uvarint createIndex | uvarint modIndex | uvarint version | the value bytes (to the end)
//
// Answer (a client session's first answer, replayed to retries):
//   u8 0x01 | u8 kind: 1 result | CommandResult
//                      2 error  | string code | string message
//   CommandResult := u8 tag: 1 put | OptKv
//                            2 delete | uvarint deleted | uvarint n, KeyValue*n
//                            3 txn | flag succeeded | uvarint n, OpResult*n
//   OpResult := u8 tag: 1 put | OptKv;  2 delete (as above);  3 range | RangeResult
//   RangeResult := uvarint n, KeyValue*n | flag more | uvarint count
//   OptKv := flag present | KeyValue if present
//   KeyValue := bytes key | bytes value | uvarint createIndex | uvarint modIndex | uvarint version
//
// Every decoder checks tags, lengths and that the input is consumed exactly, and throws
// RaftKvError('DATA_CORRUPTION') on garbage. There is no checksum here: the WAL and snapshot files carry them.
import { RaftKvError, isErrorCode } from '../shared/errors.js';
import type { ErrorCode } from '../shared/errors.js';
import type {
  Command,
  CommandResult,
  Compare,
  CompareOp,
  CompareTarget,
  Envelope,
  KeyRange,
  KeyValue,
  Op,
  OpResult,
  RangeRequest,
  RangeResult,
} from './types.js';

const FORMAT_VERSION = 1;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

export function assertNever(x: never): never {
  throw new Error(`unexpected value: ${JSON.stringify(x)}`);
}

function garbage(what: string): RaftKvError {
  return new RaftKvError('DATA_CORRUPTION', `kv codec: ${what}`);
}

/** An append-only byte buffer that grows by doubling. */
export class ByteWriter {
  private buf: Uint8Array;
  private len = 0; // bytes written; invariant: len <= buf.length

  constructor(initialBytes = 64) {
    this.buf = new Uint8Array(initialBytes);
  }

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  u8(b: number): this {
    this.reserve(1);
    this.buf[this.len++] = b & 0xff;
    return this;
  }

  uvarint(n: number): this {
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`uvarint out of range: ${n}`);
    this.reserve(8);
    let v = n;
    while (v >= 0x80) {
      this.buf[this.len++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.len++] = v;
    return this;
  }

  raw(b: Uint8Array): this {
    this.reserve(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
    return this;
  }

  bytes(b: Uint8Array): this {
    return this.uvarint(b.length).raw(b);
  }

  string(s: string): this {
    return this.bytes(Buffer.from(s, 'utf8'));
  }

  flag(b: boolean): this {
    return this.u8(b ? 1 : 0);
  }

  finish(): Uint8Array {
    return this.len === this.buf.length ? this.buf : this.buf.slice(0, this.len);
  }
}

/** A bounds-checked reader: every overrun is a DATA_CORRUPTION error, never an exception of another type. */
export class ByteReader {
  private pos = 0; // next byte to read; invariant: pos <= b.length
  private readonly b: Uint8Array; // a plain Uint8Array view: slice() copies (Buffer#slice would not)

  constructor(input: Uint8Array) {
    this.b = new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  }

  get remaining(): number {
    return this.b.length - this.pos;
  }

  u8(): number {
    const v = this.b[this.pos];
    if (v === undefined) throw garbage('unexpected end of input');
    this.pos++;
    return v;
  }

  uvarint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      const byte = this.u8();
      result += (byte & 0x7f) * mul;
      if (byte < 0x80) {
        if (result > MAX_SAFE) throw garbage('varint beyond 2^53');
        if (i > 0 && byte === 0) throw garbage('non-minimal varint');
        return result;
      }
      mul *= 0x80;
    }
    throw garbage('varint longer than 8 bytes');
  }

  raw(n: number): Uint8Array {
    if (n > this.remaining) throw garbage(`length ${n} beyond the end of input`);
    const out = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** Copies: the result does not alias the input buffer. */
  bytes(): Uint8Array {
    return this.raw(this.uvarint()).slice();
  }

  string(): string {
    const raw = this.raw(this.uvarint());
    const s = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('utf8');
    if (Buffer.byteLength(s, 'utf8') !== raw.length) throw garbage('invalid UTF-8');
    return s;
  }

  flag(): boolean {
    const v = this.u8();
    if (v > 1) throw garbage(`bad flag byte ${v}`);
    return v === 1;
  }

  rest(): Uint8Array {
    return this.raw(this.remaining).slice();
  }

  end(): void {
    if (this.remaining !== 0) throw garbage(`${this.remaining} trailing bytes`);
  }
}

// ---------------------------------------------------------------- envelope

const TARGETS: readonly CompareTarget[] = ['value', 'version', 'create', 'mod'];
const OPS: readonly CompareOp[] = ['=', '!=', '<', '>'];

function writeRange(w: ByteWriter, r: KeyRange): void {
  w.bytes(r.key).bytes(r.end);
}

function readRange(r: ByteReader): KeyRange {
  const key = r.bytes();
  const end = r.bytes();
  return { key, end };
}

function writeRangeRequest(w: ByteWriter, req: RangeRequest): void {
  writeRange(w, req);
  w.uvarint(req.limit).u8((req.keysOnly ? 1 : 0) | (req.countOnly ? 2 : 0));
}

function readRangeRequest(r: ByteReader): RangeRequest {
  const { key, end } = readRange(r);
  const limit = r.uvarint();
  const flags = r.u8();
  if (flags > 3) throw garbage(`bad range flags ${flags}`);
  return { key, end, limit, keysOnly: (flags & 1) !== 0, countOnly: (flags & 2) !== 0 };
}

function writeCompare(w: ByteWriter, c: Compare): void {
  w.bytes(c.key).u8(TARGETS.indexOf(c.target) + 1).u8(OPS.indexOf(c.op) + 1);
  if (c.target === 'value') w.bytes(c.value);
  else w.uvarint(c.number);
}

function readCompare(r: ByteReader): Compare {
  const key = r.bytes();
  const target = TARGETS[r.u8() - 1];
  const op = OPS[r.u8() - 1];
  if (target === undefined) throw garbage('bad compare target');
  if (op === undefined) throw garbage('bad compare op');
  if (target === 'value') return { key, target, op, value: r.bytes() };
  return { key, target, op, number: r.uvarint() };
}

function writeOp(w: ByteWriter, op: Op): void {
  switch (op.type) {
    case 'put':
      w.u8(1).bytes(op.key).bytes(op.value).flag(op.prevKv);
      return;
    case 'delete':
      w.u8(2);
      writeRange(w, op.range);
      w.flag(op.prevKv);
      return;
    case 'range':
      w.u8(3);
      writeRangeRequest(w, op.request);
      return;
    default:
      assertNever(op);
  }
}

function readOp(r: ByteReader): Op {
  const tag = r.u8();
  switch (tag) {
    case 1: {
      const key = r.bytes();
      const value = r.bytes();
      return { type: 'put', key, value, prevKv: r.flag() };
    }
    case 2: {
      const range = readRange(r);
      return { type: 'delete', range, prevKv: r.flag() };
    }
    case 3:
      return { type: 'range', request: readRangeRequest(r) };
    default:
      throw garbage(`bad op tag ${tag}`);
  }
}

function readList<T>(r: ByteReader, read: (r: ByteReader) => T): T[] {
  const n = r.uvarint();
  // Each element takes at least one byte: a count beyond the input is garbage (and no huge allocation).
  if (n > r.remaining) throw garbage(`list of ${n} beyond the end of input`);
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push(read(r));
  return out;
}

function writeCommand(w: ByteWriter, cmd: Command): void {
  switch (cmd.type) {
    case 'put':
      w.u8(1).bytes(cmd.key).bytes(cmd.value).flag(cmd.prevKv);
      return;
    case 'delete':
      w.u8(2);
      writeRange(w, cmd.range);
      w.flag(cmd.prevKv);
      return;
    case 'txn':
      w.u8(3).uvarint(cmd.compares.length);
      for (const c of cmd.compares) writeCompare(w, c);
      w.uvarint(cmd.success.length);
      for (const op of cmd.success) writeOp(w, op);
      w.uvarint(cmd.failure.length);
      for (const op of cmd.failure) writeOp(w, op);
      return;
    default:
      assertNever(cmd);
  }
}

function readCommand(r: ByteReader): Command {
  const tag = r.u8();
  switch (tag) {
    case 1: {
      const key = r.bytes();
      const value = r.bytes();
      return { type: 'put', key, value, prevKv: r.flag() };
    }
    case 2: {
      const range = readRange(r);
      return { type: 'delete', range, prevKv: r.flag() };
    }
    case 3: {
      const compares = readList(r, readCompare);
      const success = readList(r, readOp);
      const failure = readList(r, readOp);
      return { type: 'txn', compares, success, failure };
    }
    default:
      throw garbage(`bad command tag ${tag}`);
  }
}

export function encodeCommand(cmd: Command): Uint8Array {
  const w = new ByteWriter();
  writeCommand(w, cmd);
  return w.finish();
}

export function encodeEnvelope(env: Envelope): Uint8Array {
  const w = new ByteWriter(32 + estimateCommandBytes(env.command));
  w.u8(FORMAT_VERSION).string(env.clientId).uvarint(env.seq);
  writeCommand(w, env.command);
  return w.finish();
}

function estimateCommandBytes(cmd: Command): number {
  return cmd.type === 'put' ? cmd.key.length + cmd.value.length : 64;
}

export function decodeEnvelope(b: Uint8Array): Envelope {
  const r = new ByteReader(b);
  const version = r.u8();
  if (version !== FORMAT_VERSION) throw garbage(`unknown envelope format ${version}`);
  const clientId = r.string();
  const seq = r.uvarint();
  const command = readCommand(r);
  r.end();
  return { clientId, seq, command };
}

// ---------------------------------------------------------------- stored values

function varintBytes(n: number): number {
  let bytes = 1;
  for (let v = n; v >= 0x80; v = Math.floor(v / 0x80)) bytes++;
  return bytes;
}

/** The LevelDB value of a user key: its metadata and value (the key itself is the LevelDB key). */
export interface StoredValue {
  readonly createIndex: number;
  readonly modIndex: number;
  readonly version: number;
  readonly value: Uint8Array;
}

export function encodeStoredValue(v: StoredValue): Uint8Array {
  const w = new ByteWriter(1 + varintBytes(v.createIndex) + varintBytes(v.modIndex) + varintBytes(v.version) + v.value.length);
  w.u8(FORMAT_VERSION).uvarint(v.createIndex).uvarint(v.modIndex).uvarint(v.version).raw(v.value);
  return w.finish();
}

export function decodeStoredValue(b: Uint8Array): StoredValue {
  const r = new ByteReader(b);
  const version = r.u8();
  if (version !== FORMAT_VERSION) throw garbage(`unknown stored value format ${version}`);
  const createIndex = r.uvarint();
  const modIndex = r.uvarint();
  const ver = r.uvarint();
  if (createIndex === 0 || modIndex < createIndex || ver === 0) {
    throw garbage(`inconsistent metadata create=${createIndex} mod=${modIndex} version=${ver}`);
  }
  return { createIndex, modIndex, version: ver, value: r.rest() };
}

// ---------------------------------------------------------------- results and session answers

function writeKv(w: ByteWriter, kv: KeyValue): void {
  w.bytes(kv.key).bytes(kv.value).uvarint(kv.createIndex).uvarint(kv.modIndex).uvarint(kv.version);
}

function readKv(r: ByteReader): KeyValue {
  const key = r.bytes();
  const value = r.bytes();
  const createIndex = r.uvarint();
  const modIndex = r.uvarint();
  const version = r.uvarint();
  return { key, value, createIndex, modIndex, version };
}

function writeOptKv(w: ByteWriter, kv: KeyValue | undefined): void {
  w.flag(kv !== undefined);
  if (kv !== undefined) writeKv(w, kv);
}

function readOptKv(r: ByteReader): KeyValue | undefined {
  return r.flag() ? readKv(r) : undefined;
}

function writeKvList(w: ByteWriter, kvs: readonly KeyValue[]): void {
  w.uvarint(kvs.length);
  for (const kv of kvs) writeKv(w, kv);
}

function writeOpResult(w: ByteWriter, res: OpResult): void {
  switch (res.type) {
    case 'put':
      w.u8(1);
      writeOptKv(w, res.prevKv);
      return;
    case 'delete':
      w.u8(2).uvarint(res.deleted);
      writeKvList(w, res.prevKvs);
      return;
    case 'range':
      w.u8(3);
      writeRangeResult(w, res.result);
      return;
    default:
      assertNever(res);
  }
}

function readOpResult(r: ByteReader): OpResult {
  const tag = r.u8();
  switch (tag) {
    case 1:
      return { type: 'put', prevKv: readOptKv(r) };
    case 2: {
      const deleted = r.uvarint();
      return { type: 'delete', deleted, prevKvs: readList(r, readKv) };
    }
    case 3:
      return { type: 'range', result: readRangeResult(r) };
    default:
      throw garbage(`bad op result tag ${tag}`);
  }
}

function writeRangeResult(w: ByteWriter, res: RangeResult): void {
  writeKvList(w, res.kvs);
  w.flag(res.more).uvarint(res.count);
}

function readRangeResult(r: ByteReader): RangeResult {
  const kvs = readList(r, readKv);
  const more = r.flag();
  return { kvs, more, count: r.uvarint() };
}

function writeCommandResult(w: ByteWriter, res: CommandResult): void {
  switch (res.type) {
    case 'put':
      w.u8(1);
      writeOptKv(w, res.prevKv);
      return;
    case 'delete':
      w.u8(2).uvarint(res.deleted);
      writeKvList(w, res.prevKvs);
      return;
    case 'txn':
      w.u8(3).flag(res.succeeded).uvarint(res.results.length);
      for (const x of res.results) writeOpResult(w, x);
      return;
    default:
      assertNever(res);
  }
}

function readCommandResult(r: ByteReader): CommandResult {
  const tag = r.u8();
  switch (tag) {
    case 1:
      return { type: 'put', prevKv: readOptKv(r) };
    case 2: {
      const deleted = r.uvarint();
      return { type: 'delete', deleted, prevKvs: readList(r, readKv) };
    }
    case 3: {
      const succeeded = r.flag();
      return { type: 'txn', succeeded, results: readList(r, readOpResult) };
    }
    default:
      throw garbage(`bad result tag ${tag}`);
  }
}

/** What a client session remembers of its last request: the first answer, replayed to retries. */
export type SessionAnswer =
  | { readonly type: 'result'; readonly result: CommandResult }
  | { readonly type: 'error'; readonly code: ErrorCode; readonly message: string };

export function writeAnswer(w: ByteWriter, a: SessionAnswer): void {
  switch (a.type) {
    case 'result':
      w.u8(1);
      writeCommandResult(w, a.result);
      return;
    case 'error':
      w.u8(2).string(a.code).string(a.message);
      return;
    default:
      assertNever(a);
  }
}

export function readAnswer(r: ByteReader): SessionAnswer {
  const kind = r.u8();
  switch (kind) {
    case 1:
      return { type: 'result', result: readCommandResult(r) };
    case 2: {
      const code = r.string();
      if (!isErrorCode(code)) throw garbage(`unknown error code ${code}`);
      return { type: 'error', code, message: r.string() };
    }
    default:
      throw garbage(`bad answer kind ${kind}`);
  }
}

export function encodeCommandResult(res: CommandResult): Uint8Array {
  const w = new ByteWriter();
  w.u8(FORMAT_VERSION);
  writeCommandResult(w, res);
  return w.finish();
}

export function decodeCommandResult(b: Uint8Array): CommandResult {
  const r = new ByteReader(b);
  const version = r.u8();
  if (version !== FORMAT_VERSION) throw garbage(`unknown result format ${version}`);
  const res = readCommandResult(r);
  r.end();
  return res;
}
