// Round-trips of the peer-stream codec: every message type, fuzzed with a seeded rng; malformed payloads refused.
import { describe, expect, it } from 'vitest';
import type { Entry, Message, MessageType } from '../../src/raft/types.js';
import { CodecError, decodeMessages, encodeMessages } from '../../src/transport/grpc-codec.js';
import { seededRng } from '../../src/raft/rng.js';

const SEED = Number(process.env['SEED'] ?? Date.now() % 1_000_000);

const TYPES: MessageType[] = [
  'app', 'app-resp', 'vote', 'vote-resp', 'pre-vote', 'pre-vote-resp', 'heartbeat', 'heartbeat-resp', 'snap',
  'timeout-now', 'read-index', 'read-index-resp',
];

function gen(rand: () => number) {
  const int = (max: number) => Math.floor(rand() * max);
  // Mix small numbers, 32-bit edges and values up to 2^53 - 1.
  const num = () => {
    const k = int(4);
    if (k === 0) return int(128);
    if (k === 1) return int(2 ** 31);
    if (k === 2) return 2 ** 32 + int(1000);
    return Math.floor(rand() * Number.MAX_SAFE_INTEGER);
  };
  const bytes = (max: number) => {
    const b = new Uint8Array(int(max));
    for (let i = 0; i < b.length; i++) b[i] = int(256);
    return b;
  };
  const bool = () => rand() < 0.5;
  const message = (): Message => {
    const type = TYPES[int(TYPES.length)] ?? 'app';
    const base = { from: 1 + int(2 ** 31 - 1), to: 1 + int(7), term: num() };
    switch (type) {
      case 'app': {
        const entries: Entry[] = [];
        const n = int(5);
        for (let i = 0; i < n; i++) entries.push({ term: num(), index: num(), type: bool() ? 'normal' : 'conf-change', data: bytes(300) });
        return { ...base, type, index: num(), logTerm: num(), commit: num(), entries };
      }
      case 'app-resp':
        return { ...base, type, index: num(), reject: bool(), rejectHint: num(), logTerm: num() };
      case 'vote':
      case 'pre-vote':
        return { ...base, type, index: num(), logTerm: num(), transfer: bool() };
      case 'vote-resp':
      case 'pre-vote-resp':
        return { ...base, type, reject: bool() };
      case 'heartbeat':
        return { ...base, type, commit: num(), context: bytes(20) };
      case 'heartbeat-resp':
        return { ...base, type, context: bytes(20) };
      case 'snap':
        return {
          ...base,
          type,
          snapshot: { metadata: { index: num(), term: num(), confState: { voters: [1, 2, 3].slice(0, int(4)), learners: int(2) ? [9] : [] } } },
        };
      case 'timeout-now':
        return { ...base, type };
      case 'read-index':
        return { ...base, type, context: bytes(16) };
      case 'read-index-resp':
        return { ...base, type, index: num(), reject: bool(), context: bytes(16) };
    }
  };
  return { int, message };
}

describe('grpc-codec', () => {
  it(`round-trips 2000 random batches (SEED=${SEED})`, () => {
    const rng = seededRng(SEED);
    const rand = (): number => rng.float();
    const g = gen(rand);
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const batch: Message[] = [];
      const n = g.int(8);
      for (let j = 0; j < n; j++) batch.push(g.message());
      for (const m of batch) seen.add(m.type);
      const decoded = decodeMessages(encodeMessages(batch));
      expect(decoded, `SEED=${SEED} batch ${i}`).toEqual(batch);
    }
    expect(seen.size, `SEED=${SEED}: every type generated`).toBe(TYPES.length);
  });

  it('decodes entries as Uint8Array copies that do not alias the payload', () => {
    const data = Uint8Array.of(1, 2, 3);
    const payload = encodeMessages([{ type: 'app', from: 1, to: 2, term: 3, index: 4, logTerm: 3, commit: 2, entries: [{ term: 3, index: 5, type: 'normal', data }] }]);
    const [m] = decodeMessages(payload);
    payload.fill(0);
    expect(m?.type === 'app' && Array.from(m.entries[0]?.data ?? [])).toEqual([1, 2, 3]);
  });

  it(`refuses truncated, extended and corrupted payloads with CodecError (SEED=${SEED})`, () => {
    const rng = seededRng(SEED + 1);
    const rand = (): number => rng.float();
    const g = gen(rand);
    const batch = [g.message(), g.message(), { type: 'timeout-now', from: 1, to: 2, term: 7 } as Message];
    const payload = encodeMessages(batch);
    for (let cut = 0; cut < payload.length; cut++) {
      expect(() => decodeMessages(payload.subarray(0, cut)), `SEED=${SEED} cut ${cut}`).toThrow(CodecError);
    }
    expect(() => decodeMessages(Uint8Array.of(...payload, 0))).toThrow(/trailing/);
    expect(() => decodeMessages(Uint8Array.of(2, 0))).toThrow(/version/);
    expect(() => decodeMessages(Uint8Array.of(1, 1, 99, 1, 2, 3))).toThrow(/type code/);
    // Random corruption must either decode to something or throw CodecError: never another exception.
    for (let i = 0; i < 500; i++) {
      const bad = Uint8Array.from(payload);
      bad[g.int(bad.length)] = g.int(256);
      try {
        decodeMessages(bad);
      } catch (err) {
        expect(err, `SEED=${SEED} corruption ${i}`).toBeInstanceOf(CodecError);
      }
    }
  });

  it('refuses to encode a term that is not a safe non-negative integer (a bug, not an input)', () => {
    expect(() => encodeMessages([{ type: 'timeout-now', from: 1, to: 2, term: -1 }])).toThrow(/safe integer/);
  });
});
