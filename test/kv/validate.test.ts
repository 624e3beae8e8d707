import { describe, expect, it } from 'vitest';
import { validateCommand, validateRange } from '../../src/kv/validate.js';
import { DEFAULT_KV_LIMITS, prefixEnd } from '../../src/kv/types.js';
import type { Command, KvLimits, RangeRequest } from '../../src/kv/types.js';
import { isRaftKvError } from '../../src/shared/errors.js';
import { del, enc, put, txn } from './helpers.js';

const limits: KvLimits = { maxKeyBytes: 8, maxValueBytes: 16, maxTxnOps: 3, maxRangeLimit: 10 };

function invalidMessage(f: () => void): string {
  try {
    f();
  } catch (err) {
    if (isRaftKvError(err, 'INVALID_ARGUMENT')) return err.message;
    throw err;
  }
  throw new Error('expected INVALID_ARGUMENT, nothing was thrown');
}

const req = (key: string, end: string, limit = 0): RangeRequest => ({
  key: enc(key),
  end: enc(end),
  limit,
  keysOnly: false,
  countOnly: false,
});

describe('kv validate', () => {
  it('accepts commands within the limits', () => {
    const ok: Command[] = [
      put('12345678', '0123456789abcdef'),
      del('a'),
      del('a', 'b'),
      { type: 'delete', range: { key: enc('a'), end: prefixEnd(enc('a')) }, prevKv: true },
      { type: 'delete', range: { key: Uint8Array.of(0), end: Uint8Array.of(0) }, prevKv: false },
      txn([{ key: enc('a'), target: 'version', op: '=', number: 0 }], [{ type: 'put', key: enc('a'), value: enc('v'), prevKv: false }], [
        { type: 'range', request: req('a', '') },
      ]),
    ];
    for (const c of ok) expect(() => validateCommand(c, limits)).not.toThrow();
    expect(() => validateCommand(put('k', 'x'.repeat(1024 * 1024)), DEFAULT_KV_LIMITS)).not.toThrow();
  });

  it('refuses empty and oversized keys and values, naming the limit', () => {
    expect(invalidMessage(() => validateCommand(put('', 'v'), limits))).toMatch(/key is empty/);
    expect(invalidMessage(() => validateCommand(put('123456789', 'v'), limits))).toMatch(/9 bytes, more than the limit of 8/);
    expect(invalidMessage(() => validateCommand(put('k', 'x'.repeat(17)), limits))).toMatch(/value is 17 bytes.*16/);
    expect(invalidMessage(() => validateCommand(del(''), limits))).toMatch(/key is empty/);
    expect(invalidMessage(() => validateCommand(put('k', 'x'.repeat(1024 * 1024 + 1)), DEFAULT_KV_LIMITS))).toMatch(
      /1048577 bytes/,
    );
  });

  it('refuses too many txn ops and bad ops inside a txn', () => {
    const p = { type: 'put' as const, key: enc('a'), value: enc('v'), prevKv: false };
    expect(invalidMessage(() => validateCommand(txn([], [p, p], [p, p]), limits))).toMatch(/4 compares and ops.*3/);
    expect(
      invalidMessage(() => validateCommand(txn([{ key: enc(''), target: 'mod', op: '>', number: 1 }], []), limits)),
    ).toMatch(/txn compare 0: key is empty/);
    expect(
      invalidMessage(() => validateCommand(txn([{ key: enc('a'), target: 'mod', op: '>', number: -1 }], []), limits)),
    ).toMatch(/non-negative/);
    expect(invalidMessage(() => validateCommand(txn([], [], [{ ...p, value: enc('x'.repeat(20)) }]), limits))).toMatch(
      /txn failure op 0: value/,
    );
  });

  it('refuses bad ranges', () => {
    expect(invalidMessage(() => validateRange(req('b', 'a'), limits))).toMatch(/range end must sort after the key/);
    expect(invalidMessage(() => validateRange(req('a', 'a'), limits))).toMatch(/range end/);
    expect(invalidMessage(() => validateRange(req('', 'a'), limits))).toMatch(/key is empty/);
    expect(invalidMessage(() => validateRange(req('a', 'b', -1), limits))).toMatch(/limit/);
    expect(invalidMessage(() => validateRange(req('a', 'b', 1.5), limits))).toMatch(/limit/);
    expect(() => validateRange(req('a', 'b', 1000), limits)).not.toThrow(); // clamped on execution
    expect(invalidMessage(() => validateCommand(del('b', 'a'), limits))).toMatch(/range end/);
  });
});
