// Request validation: the same checks on the way in (the server, before proposing) and on apply (every
// replica, deterministically, so a command that slipped past an older server is refused identically).
// Failures are RaftKvError('INVALID_ARGUMENT') with a message naming the field and the limit.
import { RaftKvError } from '../shared/errors.js';
import { assertNever } from './codec.js';
import type { Command, Compare, KeyRange, KvLimits, Op, RangeRequest } from './types.js';

function invalid(message: string): RaftKvError {
  return new RaftKvError('INVALID_ARGUMENT', message);
}

/** Byte-wise comparison (LevelDB's default comparator): negative, 0 or positive. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

/** `end` = "\0" means "every key from `key` on" (etcd's convention, what prefixEnd returns for an all-0xff prefix). */
export function isOpenEnd(end: Uint8Array): boolean {
  return end.length === 1 && end[0] === 0;
}

function checkKey(what: string, key: Uint8Array, limits: KvLimits): void {
  if (key.length === 0) throw invalid(`${what}: key is empty`);
  if (key.length > limits.maxKeyBytes) {
    throw invalid(`${what}: key is ${key.length} bytes, more than the limit of ${limits.maxKeyBytes}`);
  }
}

function checkValue(what: string, value: Uint8Array, limits: KvLimits): void {
  if (value.length > limits.maxValueBytes) {
    throw invalid(`${what}: value is ${value.length} bytes, more than the limit of ${limits.maxValueBytes}`);
  }
}

function checkKeyRange(what: string, r: KeyRange, limits: KvLimits): void {
  checkKey(what, r.key, limits);
  if (r.end.length === 0 || isOpenEnd(r.end)) return;
  if (r.end.length > limits.maxKeyBytes) {
    throw invalid(`${what}: range end is ${r.end.length} bytes, more than the limit of ${limits.maxKeyBytes}`);
  }
  if (compareBytes(r.end, r.key) <= 0) throw invalid(`${what}: range end must sort after the key`);
}

/** Throws INVALID_ARGUMENT for a malformed range request (empty key, end <= key, bad limit). */
export function validateRange(req: RangeRequest, limits: KvLimits): void {
  checkKeyRange('range', req, limits);
  if (!Number.isSafeInteger(req.limit) || req.limit < 0) {
    throw invalid(`range: limit must be a non-negative integer, got ${req.limit}`);
  }
}

function checkCompare(i: number, c: Compare, limits: KvLimits): void {
  const what = `txn compare ${i}`;
  checkKey(what, c.key, limits);
  switch (c.target) {
    case 'value':
      checkValue(what, c.value, limits);
      return;
    case 'version':
    case 'create':
    case 'mod':
      if (!Number.isSafeInteger(c.number) || c.number < 0) {
        throw invalid(`${what}: ${c.target} must be a non-negative integer, got ${c.number}`);
      }
      return;
    default:
      assertNever(c);
  }
}

function checkOp(what: string, op: Op, limits: KvLimits): void {
  switch (op.type) {
    case 'put':
      checkKey(what, op.key, limits);
      checkValue(what, op.value, limits);
      return;
    case 'delete':
      checkKeyRange(what, op.range, limits);
      return;
    case 'range':
      validateRange(op.request, limits);
      return;
    default:
      assertNever(op);
  }
}

/** Throws INVALID_ARGUMENT for a command that breaks a limit or is malformed. */
export function validateCommand(cmd: Command, limits: KvLimits): void {
  switch (cmd.type) {
    case 'put':
      checkKey('put', cmd.key, limits);
      checkValue('put', cmd.value, limits);
      return;
    case 'delete':
      checkKeyRange('delete', cmd.range, limits);
      return;
    case 'txn': {
      const ops = cmd.compares.length + cmd.success.length + cmd.failure.length;
      // etcd counts compares and each branch separately against --max-txn-ops; one total is simpler and stricter.
      if (ops > limits.maxTxnOps) {
        throw invalid(`txn: ${ops} compares and ops, more than the limit of ${limits.maxTxnOps}`);
      }
      cmd.compares.forEach((c, i) => checkCompare(i, c, limits));
      cmd.success.forEach((op, i) => checkOp(`txn success op ${i}`, op, limits));
      cmd.failure.forEach((op, i) => checkOp(`txn failure op ${i}`, op, limits));
      return;
    }
    default:
      assertNever(cmd);
  }
}
