import { describe, expect, it } from 'vitest';
import {
  decodeCommandResult,
  decodeEnvelope,
  decodeStoredValue,
  encodeCommandResult,
  encodeEnvelope,
  encodeStoredValue,
} from '../../src/kv/codec.js';
import { isRaftKvError } from '../../src/shared/errors.js';
import type { Command, CommandResult, Compare, Envelope, KeyValue, Op } from '../../src/kv/types.js';
import { enc, seedFromEnv, seededRng } from './helpers.js';

type Rng = ReturnType<typeof seededRng>;

function bytes(rng: Rng, max: number): Uint8Array {
  const b = new Uint8Array(rng.int(max + 1));
  for (let i = 0; i < b.length; i++) b[i] = rng.int(256);
  return b;
}

function bigInt(rng: Rng): number {
  return [0, 1, 127, 128, 300, 2 ** 31, Number.MAX_SAFE_INTEGER][rng.int(7)] ?? 0;
}

function signed(rng: Rng): number {
  const n = bigInt(rng);
  return rng.int(2) === 0 || n === 0 ? n : -n;
}

function compare(rng: Rng): Compare {
  const op = (['=', '!=', '<', '>'] as const)[rng.int(4)] ?? '=';
  const key = bytes(rng, 10);
  const end = bytes(rng, 4);
  if (rng.int(2) === 0) return { key, end, target: 'value', op, value: bytes(rng, 10) };
  const target = (['version', 'create', 'mod', 'lease'] as const)[rng.int(4)] ?? 'mod';
  return { key, end, target, op, number: signed(rng) };
}

function putOp(rng: Rng): Op & { type: 'put' } {
  return {
    type: 'put',
    key: bytes(rng, 8),
    value: bytes(rng, 20),
    prevKv: rng.int(2) === 1,
    ignoreValue: rng.int(2) === 1,
    ignoreLease: rng.int(2) === 1,
    lease: bigInt(rng),
  };
}

function txnOp(rng: Rng, depth: number): Op & { type: 'txn' } {
  const list = <T>(f: (r: Rng) => T): T[] => Array.from({ length: rng.int(4) }, () => f(rng));
  return { type: 'txn', compares: list(compare), success: list((r) => op(r, depth + 1)), failure: list((r) => op(r, depth + 1)) };
}

function op(rng: Rng, depth: number): Op {
  switch (rng.int(depth < 3 ? 4 : 3)) {
    case 0:
      return putOp(rng);
    case 1:
      return { type: 'delete', range: { key: bytes(rng, 8), end: bytes(rng, 8) }, prevKv: rng.int(2) === 1 };
    case 2:
      return {
        type: 'range',
        request: {
          key: bytes(rng, 8),
          end: bytes(rng, 8),
          limit: bigInt(rng),
          keysOnly: rng.int(2) === 1,
          countOnly: rng.int(2) === 1,
          revision: signed(rng),
          sortOrder: (['none', 'ascend', 'descend'] as const)[rng.int(3)] ?? 'none',
          sortTarget: (['key', 'version', 'create', 'mod', 'value'] as const)[rng.int(5)] ?? 'key',
          minModRevision: signed(rng),
          maxModRevision: signed(rng),
          minCreateRevision: signed(rng),
          maxCreateRevision: signed(rng),
        },
      };
    default:
      return txnOp(rng, depth);
  }
}

function command(rng: Rng): Command {
  switch (rng.int(4)) {
    case 0:
      return putOp(rng);
    case 1:
      return { type: 'delete', range: { key: bytes(rng, 8), end: bytes(rng, 8) }, prevKv: rng.int(2) === 1 };
    case 2:
      return { type: 'compact', revision: signed(rng), physical: rng.int(2) === 1 };
    default:
      return txnOp(rng, 1);
  }
}

function kv(rng: Rng): KeyValue {
  return { key: bytes(rng, 8), value: bytes(rng, 8), createRevision: bigInt(rng), modRevision: bigInt(rng), version: bigInt(rng), lease: bigInt(rng) };
}

function result(rng: Rng): CommandResult {
  const kvs = (): KeyValue[] => Array.from({ length: rng.int(3) }, () => kv(rng));
  switch (rng.int(4)) {
    case 0:
      return { type: 'put', prevKv: rng.int(2) === 0 ? undefined : kv(rng), revision: bigInt(rng) };
    case 1:
      return { type: 'delete', deleted: bigInt(rng), prevKvs: kvs(), revision: bigInt(rng) };
    case 2:
      return { type: 'compact', revision: bigInt(rng) };
    default:
      return {
        type: 'txn',
        succeeded: rng.int(2) === 1,
        results: [
          { type: 'put', prevKv: kv(rng), revision: 3 },
          { type: 'delete', deleted: 2, prevKvs: kvs(), revision: 3 },
          { type: 'range', result: { kvs: kvs(), more: rng.int(2) === 1, count: bigInt(rng), revision: bigInt(rng) } },
          { type: 'txn', succeeded: true, results: [{ type: 'put', prevKv: undefined, revision: 3 }], revision: 0 },
        ],
        revision: bigInt(rng),
      };
  }
}

function expectCorruption(f: () => unknown): void {
  let thrown: unknown;
  try {
    f();
  } catch (err) {
    thrown = err;
  }
  expect(isRaftKvError(thrown, 'DATA_CORRUPTION'), `expected DATA_CORRUPTION, got ${String(thrown)}`).toBe(true);
}

describe('kv codec', () => {
  const seed = seedFromEnv();

  it(`round-trips random envelopes and rejects every truncation (seed ${seed})`, () => {
    const rng = seededRng(seed);
    for (let i = 0; i < 300; i++) {
      const env: Envelope = { clientId: rng.int(2) === 0 ? '' : `client-${rng.int(1000)}-é`, seq: bigInt(rng), command: command(rng) };
      const b = encodeEnvelope(env);
      expect(decodeEnvelope(b), `seed ${seed} case ${i}`).toEqual(env);
      const cut = rng.int(b.length);
      expectCorruption(() => decodeEnvelope(b.subarray(0, cut)));
      const longer = new Uint8Array(b.length + 1);
      longer.set(b);
      expectCorruption(() => decodeEnvelope(longer));
    }
  });

  it(`never throws anything but DATA_CORRUPTION on random garbage or bit flips (seed ${seed})`, () => {
    const rng = seededRng(seed + 1);
    for (let i = 0; i < 2000; i++) {
      const b = i % 2 === 0 ? bytes(rng, 64) : encodeEnvelope({ clientId: 'c', seq: 3, command: command(rng) });
      if (i % 2 === 1) {
        const bit = rng.int(b.length * 8);
        b[bit >> 3] = (b[bit >> 3] ?? 0) ^ (1 << (bit & 7));
      }
      try {
        decodeEnvelope(b);
      } catch (err) {
        expect(isRaftKvError(err, 'DATA_CORRUPTION'), `seed ${seed} case ${i}: ${String(err)}`).toBe(true);
      }
    }
  });

  it('encodes a put compactly', () => {
    const b = encodeEnvelope({ clientId: '', seq: 0, command: { type: 'put', key: enc('k'), value: enc('v'), prevKv: false } });
    // version, clientId len, seq, tag, key len, key, value len, value, flags, lease sign, lease
    expect(b.length).toBe(11);
  });

  it('rejects non-minimal and oversized varints', () => {
    // version 1, clientId length encoded as 0x80 0x00 (non-minimal zero)
    expectCorruption(() => decodeEnvelope(Uint8Array.of(2, 0x80, 0x00, 0, 1, 0, 0, 0)));
    expectCorruption(() => decodeEnvelope(Uint8Array.of(2, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)));
    expectCorruption(() => decodeEnvelope(Uint8Array.of(3, 0, 0, 1, 0, 0, 0, 0))); // unknown format version
    // format 1 (before MVCC revisions) is refused by name
    expect(() => decodeEnvelope(Uint8Array.of(1, 0, 0, 1, 1, 0x6b, 1, 0x76, 0))).toThrow(/format 1, written by a raftkv before MVCC revisions/);
  });

  it(`round-trips stored values and command results (seed ${seed})`, () => {
    const rng = seededRng(seed + 2);
    for (let i = 0; i < 200; i++) {
      const sv = { createRevision: 2 + rng.int(100), modRevision: 0, version: 1 + rng.int(5), lease: bigInt(rng), value: bytes(rng, 50) };
      const full = { ...sv, modRevision: sv.createRevision + rng.int(100) };
      expect(decodeStoredValue(encodeStoredValue(full))).toEqual(full);
      const res = result(rng);
      expect(decodeCommandResult(encodeCommandResult(res))).toEqual(res);
    }
    expectCorruption(() => decodeStoredValue(encodeStoredValue({ createRevision: 5, modRevision: 4, version: 1, lease: 0, value: enc('x') })));
    expectCorruption(() => decodeStoredValue(Uint8Array.of()));
  });
});
