// What etcd's applier does to a range after the MVCC read: the revision filters, the sort, the limit and
// `more` (etcd's applierV3backend.Range), kept apart from the store that reads the keys.
import { RaftKvError } from '../shared/errors.js';
import { assertNever } from './codec.js';
import type { KeyValue, RangeRequest, RangeResult, SortOrder } from './types.js';
import { compareBytes } from './validate.js';

/**
 * How many keys the store must return in key order (0 = all): etcd reads everything when it sorts or filters,
 * else limit + 1 (to know `more`). Note: sort order NONE with a non-key target still reads limit + 1 in key
 * order and sorts only those (etcd 3.4 does exactly this).
 */
export function keysNeeded(req: RangeRequest): number {
  if ((req.sortOrder ?? 'none') !== 'none' || hasRevisionFilters(req)) return 0;
  return req.limit > 0 ? req.limit + 1 : 0;
}

export function hasRevisionFilters(req: RangeRequest): boolean {
  return (
    (req.minModRevision ?? 0) !== 0 ||
    (req.maxModRevision ?? 0) !== 0 ||
    (req.minCreateRevision ?? 0) !== 0 ||
    (req.maxCreateRevision ?? 0) !== 0
  );
}

function sortKey(kv: KeyValue, target: NonNullable<RangeRequest['sortTarget']>): number | Uint8Array {
  switch (target) {
    case 'key':
      return kv.key;
    case 'value':
      return kv.value;
    case 'version':
      return kv.version;
    case 'create':
      return kv.createRevision;
    case 'mod':
      return kv.modRevision;
    default:
      return assertNever(target);
  }
}

function compareBy(a: number | Uint8Array, b: number | Uint8Array): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (a instanceof Uint8Array && b instanceof Uint8Array) return compareBytes(a, b);
  throw new Error('range-query: mixed sort keys');
}

/**
 * `kvs` in key order as the store read them (keysNeeded(req) of them, or all), `count` every key in the range:
 * the filtered, sorted and truncated answer. Ties of a sort keep key order (a stable sort), both ways.
 */
export function finishRange(req: RangeRequest, kvs: KeyValue[], count: number, revision: number, maxResponseBytes: number): RangeResult {
  if (req.countOnly) return { kvs: [], more: false, count, revision };
  const minMod = req.minModRevision ?? 0;
  const maxMod = req.maxModRevision ?? 0;
  const minCreate = req.minCreateRevision ?? 0;
  const maxCreate = req.maxCreateRevision ?? 0;
  let out = kvs.filter(
    (kv) =>
      (maxMod === 0 || kv.modRevision <= maxMod) &&
      (minMod === 0 || kv.modRevision >= minMod) &&
      (maxCreate === 0 || kv.createRevision <= maxCreate) &&
      (minCreate === 0 || kv.createRevision >= minCreate),
  );
  const target = req.sortTarget ?? 'key';
  let order: SortOrder = req.sortOrder ?? 'none';
  if (target !== 'key' && order === 'none') order = 'ascend';
  switch (order) {
    case 'none':
      break;
    case 'ascend':
      if (target !== 'key') out.sort((a, b) => compareBy(sortKey(a, target), sortKey(b, target)));
      break;
    case 'descend':
      if (target === 'key') out.reverse();
      else out.sort((a, b) => compareBy(sortKey(b, target), sortKey(a, target)));
      break;
    default:
      assertNever(order);
  }
  let more = false;
  if (req.limit > 0 && out.length > req.limit) {
    out = out.slice(0, req.limit);
    more = true;
  }
  if (req.keysOnly) out = out.map((kv) => ({ ...kv, value: new Uint8Array(0) }));
  checkResponseBytes(out, maxResponseBytes);
  return { kvs: out, more, count, revision };
}

/** RESOURCE_EXHAUSTED when the keys and values of an answer pass the named limit. */
export function checkResponseBytes(kvs: readonly KeyValue[], maxResponseBytes: number): void {
  let bytes = 0;
  for (const kv of kvs) bytes += kv.key.length + kv.value.length;
  if (bytes > maxResponseBytes) {
    throw new RaftKvError(
      'RESOURCE_EXHAUSTED',
      `range: the answer holds ${bytes} bytes of keys and values, more than the limit of ${maxResponseBytes} (maxResponseBytes); ask with a limit or keys_only`,
    );
  }
}
