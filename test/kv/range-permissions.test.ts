// Key-range permission matching (etcd's range_perm_cache): a single key, a prefix, from-key ("\0") and plain
// ranges; merged grants covering a range together; read vs write vs readwrite.
import { describe, expect, it } from 'vitest';
import { rangePermitted } from '../../src/kv/range-permissions.js';
import type { Permission, PermissionType } from '../../src/kv/types.js';
import { prefixEnd } from '../../src/kv/types.js';

const b = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'latin1'));
const NONE = new Uint8Array(0);
const FROM_KEY = Uint8Array.of(0);
const perm = (type: PermissionType, key: string, end: Uint8Array | string = NONE): Permission => ({ type, key: b(key), end: typeof end === 'string' ? b(end) : end });
const prefix = (type: PermissionType, p: string): Permission => perm(type, p, prefixEnd(b(p)));

describe('range permissions', () => {
  it('a single-key grant covers that key only', () => {
    const perms = [perm('read', 'k')];
    expect(rangePermitted(perms, 'read', b('k'), NONE)).toBe(true);
    expect(rangePermitted(perms, 'read', b('k0'), NONE)).toBe(false);
    expect(rangePermitted(perms, 'read', b('j'), NONE)).toBe(false);
    expect(rangePermitted(perms, 'read', b('k'), b('l'))).toBe(false); // [k, l) holds more than k
    expect(rangePermitted(perms, 'read', b('k'), b('k\x00'))).toBe(true); // exactly {k}
  });

  it('a prefix grant covers every key and range under the prefix, and nothing next to it', () => {
    const perms = [prefix('read', '/app/')];
    expect(rangePermitted(perms, 'read', b('/app/'), NONE)).toBe(true);
    expect(rangePermitted(perms, 'read', b('/app/x/y'), NONE)).toBe(true);
    expect(rangePermitted(perms, 'read', b('/app/'), prefixEnd(b('/app/')))).toBe(true);
    expect(rangePermitted(perms, 'read', b('/app/a'), b('/app/b'))).toBe(true);
    expect(rangePermitted(perms, 'read', b('/app'), NONE)).toBe(false);
    expect(rangePermitted(perms, 'read', b('/app0'), NONE)).toBe(false);
    expect(rangePermitted(perms, 'read', b('/app/'), FROM_KEY)).toBe(false); // from /app/ to the end: beyond the prefix
    expect(rangePermitted(perms, 'read', b('/'), prefixEnd(b('/')))).toBe(false);
  });

  it('a from-key grant ("\\0") covers every key at or after its key, to the end of the key space', () => {
    const perms = [perm('write', 'z', FROM_KEY)];
    expect(rangePermitted(perms, 'write', b('z'), NONE)).toBe(true);
    expect(rangePermitted(perms, 'write', b('\xff\xff\xff'), NONE)).toBe(true);
    expect(rangePermitted(perms, 'write', b('z'), FROM_KEY)).toBe(true);
    expect(rangePermitted(perms, 'write', b('za'), b('zz'))).toBe(true);
    expect(rangePermitted(perms, 'write', b('y'), NONE)).toBe(false);
    expect(rangePermitted(perms, 'write', b('y'), FROM_KEY)).toBe(false);
  });

  it('grants that touch or overlap merge to cover a range neither covers alone', () => {
    const perms = [perm('read', 'a', 'c'), perm('read', 'c', 'e')];
    expect(rangePermitted(perms, 'read', b('b'), b('d'))).toBe(true);
    expect(rangePermitted(perms, 'read', b('a'), b('e'))).toBe(true);
    expect(rangePermitted(perms, 'read', b('a'), b('f'))).toBe(false);
    const gap = [perm('read', 'a', 'c'), perm('read', 'd', 'f')];
    expect(rangePermitted(gap, 'read', b('b'), b('e'))).toBe(false); // "c" is in neither
    expect(rangePermitted(gap, 'read', b('d'), NONE)).toBe(true);
  });

  it('read, write and readwrite grant what their names say', () => {
    const perms = [perm('read', 'r'), perm('write', 'w'), perm('readwrite', 'rw')];
    expect(rangePermitted(perms, 'read', b('r'), NONE)).toBe(true);
    expect(rangePermitted(perms, 'write', b('r'), NONE)).toBe(false);
    expect(rangePermitted(perms, 'write', b('w'), NONE)).toBe(true);
    expect(rangePermitted(perms, 'read', b('w'), NONE)).toBe(false);
    expect(rangePermitted(perms, 'read', b('rw'), NONE)).toBe(true);
    expect(rangePermitted(perms, 'write', b('rw'), NONE)).toBe(true);
    // Merging only joins grants of the access asked for.
    const mixed = [perm('read', 'a', 'c'), perm('write', 'c', 'e')];
    expect(rangePermitted(mixed, 'read', b('b'), b('d'))).toBe(false);
  });

  it('no grants: nothing is permitted', () => {
    expect(rangePermitted([], 'read', b('a'), NONE)).toBe(false);
    expect(rangePermitted([], 'write', b('a'), FROM_KEY)).toBe(false);
  });
});
