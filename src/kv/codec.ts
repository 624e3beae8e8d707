// Compact binary encodings of the state machine: log entry payloads (Envelope), stored values, session answers.
// One file of ~650 lines: every format's writer and reader side by side, under the one format description
// below, so a format change is made (and reviewed) in one place.
//
// Primitives (all formats):
//   uvarint   unsigned LEB128, at most 8 bytes, values 0 .. 2^53-1 (JS safe integers)
//   int       flag negative | uvarint magnitude (a safe integer of either sign: etcd's int64 fields)
//   bytes     uvarint length, then the bytes
//   string    bytes holding UTF-8
//   flag      one byte, 0 or 1 (anything else is garbage)
//
// Format 2 (MVCC revisions). Format 1 (log indexes as createIndex/modIndex) is refused by name: a directory or
// log written before revisions has no history to serve etcd's API from.
//
// Envelope (the data of a 'normal' log entry; empty data is the leader's no-op and never reaches this codec):
//   u8 0x02 (format version) | string clientId | uvarint seq | Command
//   Command  := u8 tag: 1 put | Put;  2 delete | Delete;  3 txn | Txn;  4 compact | int revision | flag physical
//               5 lease-grant | uvarint id | uvarint ttlSeconds;  6 lease-revoke | uvarint id
//               7 lease-checkpoint | uvarint n, (uvarint id | uvarint remainingSeconds)*n
//               9 alarm | flag activate | uvarint member id | u8 alarm type (1 NOSPACE, 2 CORRUPT)
//               10 auth | string by | AuthChange
//   AuthChange := u8 kind: 1 enable;  2 disable;  3 authenticate | string name | string verifiedHash | string token
//               (the token's random part: apply appends "." and the entry's index, as etcd's)
//               4 user-add | string name | string hash | flag noPassword;  5 user-delete | string name
//               6 user-change-password | string name | string hash;  7 user-grant-role | string name | string role
//               8 user-revoke-role | string name | string role;  9 role-add | string name;  10 role-delete | string name
//               11 role-grant-permission | string name | u8 type (0 read, 1 write, 2 readwrite, etcd's) | KeyRange
//               12 role-revoke-permission | string name | KeyRange
//   Put      := bytes key | bytes value | u8 flags (bit 0 prevKv, 1 ignoreValue, 2 ignoreLease) | int lease
//   Delete   := KeyRange | flag prevKv
//   Txn      := uvarint n, Compare*n | uvarint n, Op*n (success) | uvarint n, Op*n (failure)
//   KeyRange := bytes key | bytes end
//   Compare  := KeyRange | u8 target (1 value, 2 version, 3 create, 4 mod, 5 lease) | u8 op (1 '=', 2 '!=',
//               3 '<', 4 '>') | bytes value (target value) or int number (other targets)
//   Op       := u8 tag: 1 put | Put;  2 delete | Delete;  3 range | RangeRequest;  4 txn | Txn
//   RangeRequest := KeyRange | uvarint limit | u8 flags (bit 0 keysOnly, bit 1 countOnly) | int revision
//               | u8 sortOrder (0 none, 1 ascend, 2 descend) | u8 sortTarget (0 key, 1 version, 2 create,
//               3 mod, 4 value) | int minMod | int maxMod | int minCreate | int maxCreate
//
// StoredValue (the LevelDB value of a live user key, see schema.ts for the key layout):
//   u8 0x02 | uvarint createRevision | uvarint modRevision | uvarint version | uvarint lease | the value bytes
//
// Answer (a client session's first answer, replayed to retries):
//   u8 kind: 1 result | CommandResult   (inside a session record, schema.ts, which carries the version)
//                      2 error  | string code | string message
//   CommandResult := u8 tag: 1 put | OptKv | uvarint revision
//                            2 delete | uvarint deleted | uvarint n, KeyValue*n | uvarint revision
//                            3 txn | flag succeeded | uvarint n, OpResult*n | uvarint revision
//                            4 compact | uvarint revision
//                            5 lease-grant | uvarint id | uvarint ttlSeconds | uvarint revision
//                            6 lease-revoke | uvarint revision;  7 lease-checkpoint | uvarint revision
//                            9 alarm | uvarint revision | uvarint n | n x (uvarint member id | u8 alarm type)
//                            10 auth | uvarint authRevision | uvarint revision | string token
//   OpResult := u8 tag: 1 put, 2 delete (as above);  3 range | RangeResult;  4 txn (as above)
//   RangeResult := uvarint n, KeyValue*n | flag more | uvarint count | uvarint revision
//   OptKv := flag present | KeyValue if present
//   KeyValue := bytes key | bytes value | uvarint createRevision | uvarint modRevision | uvarint version
//               | uvarint lease
//
// Every decoder checks tags, lengths and that the input is consumed exactly, and throws
// RaftKvError('DATA_CORRUPTION') on garbage. There is no checksum here: the WAL and snapshot files carry them.
import { RaftKvError, isErrorCode } from '../shared/errors.js';
import type { ErrorCode } from '../shared/errors.js';
import type {
  AlarmMember,
  AlarmType,
  AuthChange,
  PermissionType,
  Command,
  CommandResult,
  Compare,
  CompareOp,
  CompareTarget,
  DeleteOp,
  Envelope,
  KeyRange,
  KeyValue,
  Op,
  OpResult,
  PutOp,
  RangeRequest,
  RangeResult,
  SortOrder,
  SortTarget,
  TxnOp,
} from './types.js';

const FORMAT_VERSION = 2; // envelopes, stored values and encodeCommandResult
const LEGACY_FORMAT_VERSION = 1; // before MVCC revisions: refused by name
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

  /** A safe integer of either sign. */
  int(n: number): this {
    if (!Number.isSafeInteger(n)) throw new Error(`int out of range: ${n}`);
    return this.flag(n < 0).uvarint(Math.abs(n));
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

  int(): number {
    const negative = this.flag();
    const m = this.uvarint();
    if (negative && m === 0) throw garbage('negative zero');
    return negative ? -m : m;
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

const TARGETS: readonly CompareTarget[] = ['value', 'version', 'create', 'mod', 'lease'];
const OPS: readonly CompareOp[] = ['=', '!=', '<', '>'];
const SORT_ORDERS: readonly SortOrder[] = ['none', 'ascend', 'descend'];
const SORT_TARGETS: readonly SortTarget[] = ['key', 'version', 'create', 'mod', 'value'];

function checkFormat(version: number, what: string): void {
  if (version === FORMAT_VERSION) return;
  if (version === LEGACY_FORMAT_VERSION) {
    throw garbage(`${what} in format 1, written by a raftkv before MVCC revisions: this version cannot read it`);
  }
  throw garbage(`unknown ${what} format ${version}`);
}

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
  w.int(req.revision ?? 0);
  w.u8(SORT_ORDERS.indexOf(req.sortOrder ?? 'none')).u8(SORT_TARGETS.indexOf(req.sortTarget ?? 'key'));
  w.int(req.minModRevision ?? 0).int(req.maxModRevision ?? 0).int(req.minCreateRevision ?? 0).int(req.maxCreateRevision ?? 0);
}

function readRangeRequest(r: ByteReader): RangeRequest {
  const { key, end } = readRange(r);
  const limit = r.uvarint();
  const flags = r.u8();
  if (flags > 3) throw garbage(`bad range flags ${flags}`);
  const revision = r.int();
  const sortOrder = SORT_ORDERS[r.u8()];
  const sortTarget = SORT_TARGETS[r.u8()];
  if (sortOrder === undefined || sortTarget === undefined) throw garbage('bad range sort');
  const minModRevision = r.int();
  const maxModRevision = r.int();
  const minCreateRevision = r.int();
  const maxCreateRevision = r.int();
  return {
    key,
    end,
    limit,
    keysOnly: (flags & 1) !== 0,
    countOnly: (flags & 2) !== 0,
    revision,
    sortOrder,
    sortTarget,
    minModRevision,
    maxModRevision,
    minCreateRevision,
    maxCreateRevision,
  };
}

function writeCompare(w: ByteWriter, c: Compare): void {
  w.bytes(c.key).bytes(c.end ?? new Uint8Array(0)).u8(TARGETS.indexOf(c.target) + 1).u8(OPS.indexOf(c.op) + 1);
  if (c.target === 'value') w.bytes(c.value);
  else w.int(c.number);
}

function readCompare(r: ByteReader): Compare {
  const { key, end } = readRange(r);
  const target = TARGETS[r.u8() - 1];
  const op = OPS[r.u8() - 1];
  if (target === undefined) throw garbage('bad compare target');
  if (op === undefined) throw garbage('bad compare op');
  if (target === 'value') return { key, end, target, op, value: r.bytes() };
  return { key, end, target, op, number: r.int() };
}

function writePut(w: ByteWriter, p: PutOp): void {
  w.bytes(p.key).bytes(p.value);
  w.u8((p.prevKv ? 1 : 0) | (p.ignoreValue === true ? 2 : 0) | (p.ignoreLease === true ? 4 : 0)).int(p.lease ?? 0);
}

function readPut(r: ByteReader): PutOp {
  const key = r.bytes();
  const value = r.bytes();
  const flags = r.u8();
  if (flags > 7) throw garbage(`bad put flags ${flags}`);
  const lease = r.int(); // etcd's int64: a negative id names no lease (LEASE_NOT_FOUND on apply)
  return { type: 'put', key, value, prevKv: (flags & 1) !== 0, ignoreValue: (flags & 2) !== 0, ignoreLease: (flags & 4) !== 0, lease };
}

function writeDelete(w: ByteWriter, d: DeleteOp): void {
  writeRange(w, d.range);
  w.flag(d.prevKv);
}

function readDelete(r: ByteReader): DeleteOp {
  const range = readRange(r);
  return { type: 'delete', range, prevKv: r.flag() };
}

function writeTxn(w: ByteWriter, t: TxnOp): void {
  w.uvarint(t.compares.length);
  for (const c of t.compares) writeCompare(w, c);
  w.uvarint(t.success.length);
  for (const op of t.success) writeOp(w, op);
  w.uvarint(t.failure.length);
  for (const op of t.failure) writeOp(w, op);
}

// Nested txns: a bound on the depth keeps a crafted entry from exhausting the stack (etcd's own 128-op limit
// allows at most 128 levels: each level takes one op of its parent's).
const MAX_TXN_DEPTH = 130;

function readTxn(r: ByteReader, depth: number): TxnOp {
  if (depth > MAX_TXN_DEPTH) throw garbage(`txn nested deeper than ${MAX_TXN_DEPTH}`);
  const compares = readList(r, readCompare);
  const success = readList(r, (x) => readOp(x, depth));
  const failure = readList(r, (x) => readOp(x, depth));
  return { type: 'txn', compares, success, failure };
}

function writeOp(w: ByteWriter, op: Op): void {
  switch (op.type) {
    case 'put':
      writePut(w.u8(1), op);
      return;
    case 'delete':
      writeDelete(w.u8(2), op);
      return;
    case 'range':
      writeRangeRequest(w.u8(3), op.request);
      return;
    case 'txn':
      writeTxn(w.u8(4), op);
      return;
    default:
      assertNever(op);
  }
}

function readOp(r: ByteReader, depth: number): Op {
  const tag = r.u8();
  switch (tag) {
    case 1:
      return readPut(r);
    case 2:
      return readDelete(r);
    case 3:
      return { type: 'range', request: readRangeRequest(r) };
    case 4:
      return readTxn(r, depth + 1);
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
      writePut(w.u8(1), cmd);
      return;
    case 'delete':
      writeDelete(w.u8(2), cmd);
      return;
    case 'txn':
      writeTxn(w.u8(3), cmd);
      return;
    case 'compact':
      w.u8(4).int(cmd.revision).flag(cmd.physical);
      return;
    case 'lease-grant':
      w.u8(5).uvarint(cmd.id).uvarint(cmd.ttlSeconds);
      return;
    case 'lease-revoke':
      w.u8(6).uvarint(cmd.id);
      return;
    case 'lease-checkpoint':
      w.u8(7).uvarint(cmd.checkpoints.length);
      for (const c of cmd.checkpoints) w.uvarint(c.id).uvarint(c.remainingSeconds);
      return;
    case 'alarm':
      writeAlarmMember(w.u8(9).flag(cmd.action === 'activate'), cmd);
      return;
    case 'auth':
      writeAuthChange(w.u8(10).string(cmd.by), cmd.change);
      return;
    default:
      assertNever(cmd);
  }
}

const PERMISSION_TYPE_CODES: Readonly<Record<PermissionType, number>> = { read: 0, write: 1, readwrite: 2 };

function writeAuthChange(w: ByteWriter, c: AuthChange): void {
  switch (c.kind) {
    case 'enable':
      w.u8(1);
      return;
    case 'disable':
      w.u8(2);
      return;
    case 'authenticate':
      w.u8(3).string(c.name).string(c.verifiedHash).string(c.token);
      return;
    case 'user-add':
      w.u8(4).string(c.name).string(c.hash).flag(c.noPassword);
      return;
    case 'user-delete':
      w.u8(5).string(c.name);
      return;
    case 'user-change-password':
      w.u8(6).string(c.name).string(c.hash);
      return;
    case 'user-grant-role':
      w.u8(7).string(c.name).string(c.role);
      return;
    case 'user-revoke-role':
      w.u8(8).string(c.name).string(c.role);
      return;
    case 'role-add':
      w.u8(9).string(c.name);
      return;
    case 'role-delete':
      w.u8(10).string(c.name);
      return;
    case 'role-grant-permission':
      w.u8(11).string(c.name).u8(PERMISSION_TYPE_CODES[c.permission.type]).bytes(c.permission.key).bytes(c.permission.end);
      return;
    case 'role-revoke-permission':
      w.u8(12).string(c.name).bytes(c.key).bytes(c.end);
      return;
    default:
      assertNever(c);
  }
}

function readAuthChange(r: ByteReader): AuthChange {
  const kind = r.u8();
  switch (kind) {
    case 1:
      return { kind: 'enable' };
    case 2:
      return { kind: 'disable' };
    case 3: {
      const name = r.string();
      const verifiedHash = r.string();
      return { kind: 'authenticate', name, verifiedHash, token: r.string() };
    }
    case 4: {
      const name = r.string();
      const hash = r.string();
      return { kind: 'user-add', name, hash, noPassword: r.flag() };
    }
    case 5:
      return { kind: 'user-delete', name: r.string() };
    case 6: {
      const name = r.string();
      return { kind: 'user-change-password', name, hash: r.string() };
    }
    case 7: {
      const name = r.string();
      return { kind: 'user-grant-role', name, role: r.string() };
    }
    case 8: {
      const name = r.string();
      return { kind: 'user-revoke-role', name, role: r.string() };
    }
    case 9:
      return { kind: 'role-add', name: r.string() };
    case 10:
      return { kind: 'role-delete', name: r.string() };
    case 11: {
      const name = r.string();
      const code = r.u8();
      const type = code === 0 ? 'read' : code === 1 ? 'write' : code === 2 ? 'readwrite' : undefined;
      if (type === undefined) throw garbage(`bad permission type ${code}`);
      const key = r.bytes();
      return { kind: 'role-grant-permission', name, permission: { type, key, end: r.bytes() } };
    }
    case 12: {
      const name = r.string();
      const key = r.bytes();
      return { kind: 'role-revoke-permission', name, key, end: r.bytes() };
    }
    default:
      throw garbage(`bad auth change kind ${kind}`);
  }
}

function readCommand(r: ByteReader): Command {
  const tag = r.u8();
  switch (tag) {
    case 1:
      return readPut(r);
    case 2:
      return readDelete(r);
    case 3:
      return readTxn(r, 1);
    case 4: {
      const revision = r.int();
      return { type: 'compact', revision, physical: r.flag() };
    }
    case 5: {
      const id = r.uvarint();
      return { type: 'lease-grant', id, ttlSeconds: r.uvarint() };
    }
    case 6:
      return { type: 'lease-revoke', id: r.uvarint() };
    case 7:
      return {
        type: 'lease-checkpoint',
        checkpoints: readList(r, (rr) => {
          const id = rr.uvarint();
          return { id, remainingSeconds: rr.uvarint() };
        }),
      };
    case 9: {
      const action = r.flag() ? 'activate' : 'deactivate';
      return { type: 'alarm', action, ...readAlarmMember(r) };
    }
    case 10: {
      const by = r.string();
      return { type: 'auth', by, change: readAuthChange(r) };
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
  checkFormat(r.u8(), 'log entry');
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

/** The LevelDB value of a live user key: its metadata and value (the key itself is the LevelDB key). */
export interface StoredValue {
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
  readonly lease: number; // 0 = none
  readonly value: Uint8Array;
}

export function encodeStoredValue(v: StoredValue): Uint8Array {
  const w = new ByteWriter(
    1 + varintBytes(v.createRevision) + varintBytes(v.modRevision) + varintBytes(v.version) + varintBytes(v.lease) + v.value.length,
  );
  w.u8(FORMAT_VERSION).uvarint(v.createRevision).uvarint(v.modRevision).uvarint(v.version).uvarint(v.lease).raw(v.value);
  return w.finish();
}

export function decodeStoredValue(b: Uint8Array): StoredValue {
  const r = new ByteReader(b);
  checkFormat(r.u8(), 'stored value');
  const createRevision = r.uvarint();
  const modRevision = r.uvarint();
  const ver = r.uvarint();
  const lease = r.uvarint();
  if (createRevision < 2 || modRevision < createRevision || ver === 0) {
    throw garbage(`inconsistent metadata create=${createRevision} mod=${modRevision} version=${ver}`);
  }
  return { createRevision, modRevision, version: ver, lease, value: r.rest() };
}

// ---------------------------------------------------------------- results and session answers

function writeKv(w: ByteWriter, kv: KeyValue): void {
  w.bytes(kv.key).bytes(kv.value).uvarint(kv.createRevision).uvarint(kv.modRevision).uvarint(kv.version).uvarint(kv.lease);
}

function readKv(r: ByteReader): KeyValue {
  const key = r.bytes();
  const value = r.bytes();
  const createRevision = r.uvarint();
  const modRevision = r.uvarint();
  const version = r.uvarint();
  const lease = r.uvarint();
  return { key, value, createRevision, modRevision, version, lease };
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

function writeRangeResult(w: ByteWriter, res: RangeResult): void {
  writeKvList(w, res.kvs);
  w.flag(res.more).uvarint(res.count).uvarint(res.revision);
}

function readRangeResult(r: ByteReader): RangeResult {
  const kvs = readList(r, readKv);
  const more = r.flag();
  const count = r.uvarint();
  return { kvs, more, count, revision: r.uvarint() };
}

/** The results an op and a command have in common: put, delete, txn (same tags in both). */
function writeWriteResult(w: ByteWriter, res: Exclude<OpResult, { type: 'range' }>): void {
  switch (res.type) {
    case 'put':
      w.u8(1);
      writeOptKv(w, res.prevKv);
      w.uvarint(res.revision);
      return;
    case 'delete':
      w.u8(2).uvarint(res.deleted);
      writeKvList(w, res.prevKvs);
      w.uvarint(res.revision);
      return;
    case 'txn':
      w.u8(3).flag(res.succeeded).uvarint(res.results.length);
      for (const x of res.results) writeOpResult(w, x);
      w.uvarint(res.revision);
      return;
    default:
      assertNever(res);
  }
}

function writeOpResult(w: ByteWriter, res: OpResult): void {
  if (res.type === 'range') {
    w.u8(4);
    writeRangeResult(w, res.result);
    return;
  }
  writeWriteResult(w, res);
}

function readWriteResult(r: ByteReader, tag: number): Exclude<OpResult, { type: 'range' }> | undefined {
  switch (tag) {
    case 1: {
      const prevKv = readOptKv(r);
      return { type: 'put', prevKv, revision: r.uvarint() };
    }
    case 2: {
      const deleted = r.uvarint();
      const prevKvs = readList(r, readKv);
      return { type: 'delete', deleted, prevKvs, revision: r.uvarint() };
    }
    case 3: {
      const succeeded = r.flag();
      const results = readList(r, readOpResult);
      return { type: 'txn', succeeded, results, revision: r.uvarint() };
    }
    default:
      return undefined;
  }
}

function readOpResult(r: ByteReader): OpResult {
  const tag = r.u8();
  if (tag === 4) return { type: 'range', result: readRangeResult(r) };
  const res = readWriteResult(r, tag);
  if (res === undefined) throw garbage(`bad op result tag ${tag}`);
  return res;
}

// Alarms (tag 9 of commands and results): member id, then the alarm type as one byte (1 NOSPACE, 2 CORRUPT, etcd's numbers).
const ALARM_TYPE_CODES: Readonly<Record<AlarmType, number>> = { NOSPACE: 1, CORRUPT: 2 };

function writeAlarmMember(w: ByteWriter, a: AlarmMember): void {
  w.uvarint(a.memberId).u8(ALARM_TYPE_CODES[a.alarm]);
}

function readAlarmMember(r: ByteReader): AlarmMember {
  const memberId = r.uvarint();
  const code = r.u8();
  const alarm = code === 1 ? 'NOSPACE' : code === 2 ? 'CORRUPT' : undefined;
  if (alarm === undefined) throw garbage(`bad alarm type ${code}`);
  return { memberId, alarm };
}

function writeCommandResult(w: ByteWriter, res: CommandResult): void {
  switch (res.type) {
    case 'compact':
      w.u8(4).uvarint(res.revision);
      return;
    case 'lease-grant':
      w.u8(5).uvarint(res.id).uvarint(res.ttlSeconds).uvarint(res.revision);
      return;
    case 'lease-revoke':
      w.u8(6).uvarint(res.revision);
      return;
    case 'lease-checkpoint':
      w.u8(7).uvarint(res.revision);
      return;
    case 'alarm':
      w.u8(9).uvarint(res.revision).uvarint(res.alarms.length);
      for (const a of res.alarms) writeAlarmMember(w, a);
      return;
    case 'auth':
      w.u8(10).uvarint(res.authRevision).uvarint(res.revision).string(res.token);
      return;
    case 'put':
    case 'delete':
    case 'txn':
      writeWriteResult(w, res);
      return;
    default:
      assertNever(res);
  }
}

function readCommandResult(r: ByteReader): CommandResult {
  const tag = r.u8();
  if (tag === 4) return { type: 'compact', revision: r.uvarint() };
  if (tag === 5) {
    const id = r.uvarint();
    const ttlSeconds = r.uvarint();
    return { type: 'lease-grant', id, ttlSeconds, revision: r.uvarint() };
  }
  if (tag === 6) return { type: 'lease-revoke', revision: r.uvarint() };
  if (tag === 7) return { type: 'lease-checkpoint', revision: r.uvarint() };
  if (tag === 9) {
    const revision = r.uvarint();
    return { type: 'alarm', revision, alarms: readList(r, readAlarmMember) };
  }
  if (tag === 10) {
    const authRevision = r.uvarint();
    const revision = r.uvarint();
    return { type: 'auth', authRevision, revision, token: r.string() };
  }
  const res = readWriteResult(r, tag);
  if (res === undefined) throw garbage(`bad result tag ${tag}`);
  return res;
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
