// Key-range permission matching (etcd's range_perm_cache.go): does the union of a user's granted ranges cover
// the key or key range a request touches? Pure functions over byte strings, no state.
//
// Ranges are etcd's: `end` empty = the one key `key`; `end` = "\0" = every key >= key (from-key); otherwise the
// half-open [key, end). A request for the whole key space (key "\0", end "\0") is covered only by a grant that
// starts at the smallest key. As in etcd, a range request is permitted when ONE merged interval of the grants
// covers it (adjacent and overlapping grants merge: [a, c) and [c, e) cover [b, d)).
import type { Permission, PermissionType } from './types.js';

/** A half-open byte interval; hi undefined = unbounded above. */
interface Interval {
  readonly lo: Buffer;
  readonly hi: Buffer | undefined;
}

function isFromKey(end: Uint8Array): boolean {
  return end.length === 1 && end[0] === 0;
}

/** The interval of a key or range in etcd's encoding. */
export function intervalOf(key: Uint8Array, end: Uint8Array): Interval {
  const lo = Buffer.from(key);
  if (end.length === 0) return { lo, hi: Buffer.concat([lo, Buffer.of(0)]) }; // the one key: [key, key + "\0")
  if (isFromKey(end)) return { lo, hi: undefined };
  return { lo, hi: Buffer.from(end) };
}

function hiLess(a: Buffer | undefined, b: Buffer | undefined): boolean {
  if (a === undefined) return false;
  if (b === undefined) return true;
  return Buffer.compare(a, b) < 0;
}

/** The grants' intervals merged: sorted, disjoint, non-adjacent. */
function merge(intervals: readonly Interval[]): Interval[] {
  const sorted = intervals.filter((i) => i.hi === undefined || Buffer.compare(i.lo, i.hi) < 0).sort((a, b) => Buffer.compare(a.lo, b.lo));
  const out: { lo: Buffer; hi: Buffer | undefined }[] = [];
  for (const i of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && (last.hi === undefined || Buffer.compare(i.lo, last.hi) <= 0)) {
      if (hiLess(last.hi, i.hi)) last.hi = i.hi;
    } else {
      out.push({ lo: i.lo, hi: i.hi });
    }
  }
  return out;
}

/** Whether `perm` grants access of `need` ('read' or 'write'). */
export function grants(perm: PermissionType, need: 'read' | 'write'): boolean {
  return perm === 'readwrite' || perm === need;
}

/** True when the permissions `perms` give `need` access to every key of [key, end) (etcd's encoding of the range). */
export function rangePermitted(perms: readonly Permission[], need: 'read' | 'write', key: Uint8Array, end: Uint8Array): boolean {
  const want = intervalOf(key, end);
  if (want.hi !== undefined && Buffer.compare(want.lo, want.hi) >= 0) return true; // an empty range touches no key
  const merged = merge(perms.filter((p) => grants(p.type, need)).map((p) => intervalOf(p.key, p.end)));
  return merged.some((m) => Buffer.compare(m.lo, want.lo) <= 0 && !hiLess(m.hi, want.hi));
}
