// Compact binary codec for batches of Raft messages on the peer stream (the `payload` of a PeerBatch).
//
// Format (all integers are unsigned LEB128 varints, exact up to 2^53 - 1; byte strings are varint length + bytes):
//   batch    := VERSION(=1, one byte) count message*
//   message  := type(one byte, TYPE_CODES) from to term body
//   app      := index logTerm commit entryCount entry*        entry := term index entryType(one byte) bytes
//   app-resp := index reject(byte) rejectHint logTerm
//   vote, pre-vote := index logTerm transfer(byte)
//   vote-resp, pre-vote-resp := reject(byte)
//   heartbeat := commit bytes(context)          heartbeat-resp := bytes(context)
//   snap     := index term voterCount voter* learnerCount learner*
//   timeout-now := (nothing)                    read-index := bytes(context)
//   read-index-resp := index reject(byte) bytes(context)
// Entries' data is copied out of the payload (the payload buffer is not retained).
import { entryTypeCode, entryTypeOfCode } from '../shared/entry-type-code.js';
import type { Entry, Message, MessageType, NodeId } from '../raft/types.js';

export const CODEC_VERSION = 1;

const TYPE_CODES: Readonly<Record<MessageType, number>> = {
  app: 1,
  'app-resp': 2,
  vote: 3,
  'vote-resp': 4,
  'pre-vote': 5,
  'pre-vote-resp': 6,
  heartbeat: 7,
  'heartbeat-resp': 8,
  snap: 9,
  'timeout-now': 10,
  'read-index': 11,
  'read-index-resp': 12,
};
const TYPES_BY_CODE: readonly (MessageType | undefined)[] = (() => {
  const out: (MessageType | undefined)[] = [];
  for (const [name, code] of Object.entries(TYPE_CODES)) out[code] = name as MessageType;
  return out;
})();

/** A payload that does not decode: the sender is broken or hostile; the stream carrying it is refused. */
export class CodecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CodecError';
  }
}

function assertNever(x: never): never {
  throw new Error(`unexpected value ${JSON.stringify(x)}`);
}

class Writer {
  private buf: Uint8Array; // capacity; bytes [0, pos) are written
  private pos = 0;

  constructor(initialBytes: number) {
    this.buf = new Uint8Array(Math.max(64, initialBytes));
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  byte(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  uint(n: number): void {
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`codec: not a non-negative safe integer: ${n}`);
    this.ensure(8);
    while (n >= 0x80) {
      this.buf[this.pos++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    this.buf[this.pos++] = n;
  }

  bytes(b: Uint8Array): void {
    this.uint(b.byteLength);
    this.ensure(b.byteLength);
    this.buf.set(b, this.pos);
    this.pos += b.byteLength;
  }

  finish(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }
}

class Reader {
  private pos = 0;

  constructor(private readonly buf: Uint8Array) {}

  done(): boolean {
    return this.pos === this.buf.length;
  }

  byte(): number {
    const b = this.buf[this.pos];
    if (b === undefined) throw new CodecError(`truncated payload at byte ${this.pos}`);
    this.pos++;
    return b;
  }

  bool(): boolean {
    const b = this.byte();
    if (b > 1) throw new CodecError(`bad boolean ${b} at byte ${this.pos - 1}`);
    return b === 1;
  }

  uint(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.byte();
      result += (b & 0x7f) * scale;
      if (b < 0x80) {
        if (!Number.isSafeInteger(result)) throw new CodecError(`varint overflow at byte ${this.pos}`);
        return result;
      }
      scale *= 0x80;
    }
    throw new CodecError(`varint too long at byte ${this.pos}`);
  }

  bytes(): Uint8Array {
    const n = this.uint();
    if (this.pos + n > this.buf.length) throw new CodecError(`byte string of ${n} overruns the payload at ${this.pos}`);
    const out = new Uint8Array(this.buf.subarray(this.pos, this.pos + n)); // a plain copy: the payload is not retained
    this.pos += n;
    return out;
  }

  count(minBytesEach: number): number {
    const n = this.uint();
    if (n * minBytesEach > this.buf.length - this.pos) throw new CodecError(`count ${n} overruns the payload`);
    return n;
  }
}

function writeIds(w: Writer, ids: readonly NodeId[]): void {
  w.uint(ids.length);
  for (const id of ids) w.uint(id);
}

function readIds(r: Reader): NodeId[] {
  const n = r.count(1);
  const ids: NodeId[] = [];
  for (let i = 0; i < n; i++) ids.push(r.uint());
  return ids;
}

function sizeHint(messages: readonly Message[]): number {
  let n = 16;
  for (const m of messages) {
    n += 48;
    if (m.type === 'app') for (const e of m.entries) n += e.data.byteLength + 24;
  }
  return n;
}

/** Encodes a batch of messages (any mix of types and destinations). */
export function encodeMessages(messages: readonly Message[]): Uint8Array {
  const w = new Writer(sizeHint(messages));
  w.byte(CODEC_VERSION);
  w.uint(messages.length);
  for (const m of messages) {
    w.byte(TYPE_CODES[m.type]);
    w.uint(m.from);
    w.uint(m.to);
    w.uint(m.term);
    switch (m.type) {
      case 'app':
        w.uint(m.index);
        w.uint(m.logTerm);
        w.uint(m.commit);
        w.uint(m.entries.length);
        for (const e of m.entries) {
          w.uint(e.term);
          w.uint(e.index);
          w.byte(entryTypeCode(e.type));
          w.bytes(e.data);
        }
        break;
      case 'app-resp':
        w.uint(m.index);
        w.byte(m.reject ? 1 : 0);
        w.uint(m.rejectHint);
        w.uint(m.logTerm);
        break;
      case 'vote':
      case 'pre-vote':
        w.uint(m.index);
        w.uint(m.logTerm);
        w.byte(m.transfer ? 1 : 0);
        break;
      case 'vote-resp':
      case 'pre-vote-resp':
        w.byte(m.reject ? 1 : 0);
        break;
      case 'heartbeat':
        w.uint(m.commit);
        w.bytes(m.context);
        break;
      case 'heartbeat-resp':
        w.bytes(m.context);
        break;
      case 'snap':
        w.uint(m.snapshot.metadata.index);
        w.uint(m.snapshot.metadata.term);
        writeIds(w, m.snapshot.metadata.confState.voters);
        writeIds(w, m.snapshot.metadata.confState.learners);
        break;
      case 'timeout-now':
        break;
      case 'read-index':
        w.bytes(m.context);
        break;
      case 'read-index-resp':
        w.uint(m.index);
        w.byte(m.reject ? 1 : 0);
        w.bytes(m.context);
        break;
      default:
        assertNever(m);
    }
  }
  return w.finish();
}

/** Decodes a batch; throws CodecError on any malformed or trailing byte. */
export function decodeMessages(payload: Uint8Array): Message[] {
  const r = new Reader(payload);
  const version = r.byte();
  if (version !== CODEC_VERSION) throw new CodecError(`unknown codec version ${version}`);
  const n = r.count(4);
  const out: Message[] = [];
  for (let i = 0; i < n; i++) {
    const code = r.byte();
    const type = TYPES_BY_CODE[code];
    if (type === undefined) throw new CodecError(`unknown message type code ${code}`);
    const from = r.uint();
    const to = r.uint();
    const term = r.uint();
    switch (type) {
      case 'app': {
        const index = r.uint();
        const logTerm = r.uint();
        const commit = r.uint();
        const count = r.count(4);
        const entries: Entry[] = [];
        for (let j = 0; j < count; j++) {
          const eTerm = r.uint();
          const eIndex = r.uint();
          const t = r.byte();
          const entryType = entryTypeOfCode(t);
          if (entryType === undefined) throw new CodecError(`unknown entry type code ${t}`);
          entries.push({ term: eTerm, index: eIndex, type: entryType, data: r.bytes() });
        }
        out.push({ type, from, to, term, index, logTerm, commit, entries });
        break;
      }
      case 'app-resp': {
        const index = r.uint();
        const reject = r.bool();
        const rejectHint = r.uint();
        const logTerm = r.uint();
        out.push({ type, from, to, term, index, reject, rejectHint, logTerm });
        break;
      }
      case 'vote':
      case 'pre-vote': {
        const index = r.uint();
        const logTerm = r.uint();
        const transfer = r.bool();
        out.push({ type, from, to, term, index, logTerm, transfer });
        break;
      }
      case 'vote-resp':
      case 'pre-vote-resp':
        out.push({ type, from, to, term, reject: r.bool() });
        break;
      case 'heartbeat': {
        const commit = r.uint();
        out.push({ type, from, to, term, commit, context: r.bytes() });
        break;
      }
      case 'heartbeat-resp':
        out.push({ type, from, to, term, context: r.bytes() });
        break;
      case 'snap': {
        const index = r.uint();
        const sTerm = r.uint();
        const voters = readIds(r);
        const learners = readIds(r);
        out.push({ type, from, to, term, snapshot: { metadata: { index, term: sTerm, confState: { voters, learners } } } });
        break;
      }
      case 'timeout-now':
        out.push({ type, from, to, term });
        break;
      case 'read-index':
        out.push({ type, from, to, term, context: r.bytes() });
        break;
      case 'read-index-resp': {
        const index = r.uint();
        const reject = r.bool();
        out.push({ type, from, to, term, index, reject, context: r.bytes() });
        break;
      }
      default:
        assertNever(type);
    }
  }
  if (!r.done()) throw new CodecError('trailing bytes after the last message');
  return out;
}
