import { describe, expect, it } from 'vitest';
import { validateCommand, validateRange } from '../../src/kv/validate.js';
import { DEFAULT_KV_LIMITS, prefixEnd } from '../../src/kv/types.js';
import type { Command, KvLimits, RangeRequest } from '../../src/kv/types.js';
import { isRaftKvError } from '../../src/shared/errors.js';
import { del, enc, put, txn } from './helpers.js';

const limits: KvLimits = { maxKeyBytes: 8, maxValueBytes: 16, maxTxnOps: 3, maxResponseBytes: 1024 * 1024 };

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

  it('refuses empty and oversized keys and values, naming the limit (etcd\'s message for an empty key)', () => {
    expect(invalidMessage(() => validateCommand(put('', 'v'), limits))).toBe('etcdserver: key is not provided');
    expect(invalidMessage(() => validateCommand(put('123456789', 'v'), limits))).toMatch(/9 bytes, more than the limit of 8/);
    expect(invalidMessage(() => validateCommand(put('k', 'x'.repeat(17)), limits))).toMatch(/value is 17 bytes.*16/);
    expect(invalidMessage(() => validateCommand(del(''), limits))).toBe('etcdserver: key is not provided');
    expect(invalidMessage(() => validateCommand(put('k', 'x'.repeat(1024 * 1024 + 1)), DEFAULT_KV_LIMITS))).toMatch(
      /1048577 bytes/,
    );
    const p = { type: 'put' as const, key: enc('a'), value: enc('v'), prevKv: false };
    expect(invalidMessage(() => validateCommand({ ...p, ignoreValue: true }, limits))).toBe('etcdserver: value is provided');
    expect(invalidMessage(() => validateCommand({ ...p, value: enc(''), ignoreLease: true, lease: 5 }, limits))).toBe('etcdserver: lease is provided');
    expect(() => validateCommand({ ...p, value: enc(''), ignoreValue: true, ignoreLease: true }, limits)).not.toThrow();
  });

  it('counts txn ops as etcd does: compares and each branch at most maxTxnOps, a nested txn what its parent leaves', () => {
    const p = (k: string) => ({ type: 'put' as const, key: enc(k), value: enc('v'), prevKv: false });
    expect(() => validateCommand(txn([], [p('a'), p('b'), p('c')], [p('a'), p('b'), p('c')]), limits)).not.toThrow();
    expect(invalidMessage(() => validateCommand(txn([], [p('a'), p('b'), p('c'), p('d')]), limits))).toBe('etcdserver: too many operations in txn request');
    const inner = (n: number) => ({ type: 'txn' as const, compares: [], success: Array.from({ length: n }, (_, i) => p(`n${i}`)), failure: [] });
    expect(() => validateCommand(txn([], [p('x'), inner(1)]), limits)).not.toThrow(); // 3 - 2 = 1 left for the nested one
    expect(invalidMessage(() => validateCommand(txn([], [p('x'), inner(2)]), limits))).toBe('etcdserver: too many operations in txn request');
    expect(invalidMessage(() => validateCommand(txn([{ key: enc(''), target: 'mod', op: '>', number: 1 }], []), limits))).toBe(
      'etcdserver: key is not provided',
    );
    expect(() => validateCommand(txn([{ key: enc('a'), target: 'mod', op: '>', number: -1 }], []), limits)).not.toThrow(); // signed, as etcd's
    expect(invalidMessage(() => validateCommand(txn([], [], [{ ...p('a'), value: enc('x'.repeat(20)) }]), limits))).toMatch(/txn failure op 0: value/);
  });

  it('refuses a branch that writes a key twice (etcd\'s checkIntervals), in either branch, nested ones included', () => {
    const p = (k: string) => ({ type: 'put' as const, key: enc(k), value: enc('v'), prevKv: false });
    const d = (k: string, end = '') => ({ type: 'delete' as const, range: { key: enc(k), end: enc(end) }, prevKv: false });
    const t = (success: Command[] | unknown[], failure: unknown[] = []) => ({ type: 'txn' as const, compares: [], success: success as never[], failure: failure as never[] });
    const big: KvLimits = { ...limits, maxTxnOps: 16 };
    const dup = (c: Command): boolean => {
      try {
        validateCommand(c, big);
        return false;
      } catch (err) {
        if (isRaftKvError(err, 'DUPLICATE_KEY') && err.message === 'etcdserver: duplicate key given in txn request') return true;
        throw err;
      }
    };
    expect(dup(txn([], [p('a'), p('a')]))).toBe(true);
    expect(dup(txn([], [], [p('a'), p('a')]))).toBe(true); // the failure branch too
    expect(dup(txn([], [d('a', 'c'), p('b')]))).toBe(true); // a put inside a deleted range
    expect(dup(txn([], [d('a'), p('a')]))).toBe(true);
    expect(dup(txn([], [d('a', 'c'), p('c')]))).toBe(false); // the end is exclusive
    expect(dup(txn([], [d('a', 'c'), d('b', 'd')]))).toBe(false); // deletes may overlap
    expect(dup(txn([], [p('a')], [p('a')]))).toBe(false); // success and failure exclude each other
    expect(dup(txn([], [t([p('a')], [p('a')])]))).toBe(false); // so do a nested txn's branches
    expect(dup(txn([], [p('a'), t([p('a')])]))).toBe(true);
    expect(dup(txn([], [t([p('a')]), t([], [p('a')])]))).toBe(true);
    expect(dup(txn([], [d('a', 'c'), t([p('b')])]))).toBe(true); // a nested put under the parent's delete
    expect(dup(txn([], [t([d('a', 'c')]), p('b')]))).toBe(true); // a put under a nested delete
    expect(dup(txn([], [d('a', '\0'), p('b')]))).toBe(false); // etcd takes an open end literally: no overlap found
  });

  it('accepts ranges etcd accepts (an end at or below the key is an empty range), refuses the malformed', () => {
    expect(() => validateRange(req('b', 'a'), limits)).not.toThrow();
    expect(() => validateCommand(del('b', 'a'), limits)).not.toThrow();
    expect(invalidMessage(() => validateRange(req('', 'a'), limits))).toBe('etcdserver: key is not provided');
    expect(invalidMessage(() => validateRange(req('a', 'b', -1), limits))).toMatch(/limit/);
    expect(invalidMessage(() => validateRange(req('a', 'b', 1.5), limits))).toMatch(/limit/);
    expect(invalidMessage(() => validateRange({ ...req('a', 'b'), revision: 0.5 }, limits))).toMatch(/revision/);
    expect(() => validateRange(req('a', 'b', 1000), limits)).not.toThrow();
  });
});
