// Request validation: the same checks on the way in (the server, before proposing) and on apply (every
// replica, deterministically, so a command that slipped past an older server is refused identically).
// Failures are RaftKvError('INVALID_ARGUMENT') (or DUPLICATE_KEY) with a message naming the field and the limit;
// where etcd refuses the same request its message is etcd's exact string (clients match on it).
import { RaftKvError } from '../shared/errors.js';
import { assertNever } from './codec.js';
import type { Command, Compare, KeyRange, KvLimits, Op, PutOp, RangeRequest, TxnOp } from './types.js';

function invalid(message: string): RaftKvError {
  return new RaftKvError('INVALID_ARGUMENT', message);
}

// etcd's messages for the requests it refuses (rpctypes), matched by clients.
/** Leases in one checkpoint command (etcd's leaseCheckpointRate batches 1,000 at a time too). */
export const MAX_LEASE_CHECKPOINTS = 1000;

export const ETCD_EMPTY_KEY = 'etcdserver: key is not provided';
export const ETCD_TOO_MANY_OPS = 'etcdserver: too many operations in txn request';
export const ETCD_DUPLICATE_KEY = 'etcdserver: duplicate key given in txn request';
export const ETCD_VALUE_PROVIDED = 'etcdserver: value is provided';
export const ETCD_LEASE_PROVIDED = 'etcdserver: lease is provided';
export const ETCD_COMPACTED = 'etcdserver: mvcc: required revision has been compacted';
export const ETCD_FUTURE_REV = 'etcdserver: mvcc: required revision is a future revision';
export const ETCD_KEY_NOT_FOUND = 'etcdserver: key not found';
export const ETCD_LEASE_NOT_FOUND = 'etcdserver: requested lease not found';

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

/** True if the range holds no key at all (an end at or below the key: etcd answers it empty, not as an error). */
export function isEmptyRange(r: KeyRange): boolean {
  return r.end.length !== 0 && !isOpenEnd(r.end) && compareBytes(r.end, r.key) <= 0;
}

function checkKey(what: string, key: Uint8Array, limits: KvLimits): void {
  if (key.length === 0) throw invalid(ETCD_EMPTY_KEY);
  if (key.length > limits.maxKeyBytes) {
    throw invalid(`${what}: key is ${key.length} bytes, more than the limit of ${limits.maxKeyBytes}`);
  }
}

function checkValue(what: string, value: Uint8Array, limits: KvLimits): void {
  if (value.length > limits.maxValueBytes) {
    throw invalid(`${what}: value is ${value.length} bytes, more than the limit of ${limits.maxValueBytes}`);
  }
}

function checkRevisionField(what: string, name: string, n: number | undefined): void {
  if (n !== undefined && !Number.isSafeInteger(n)) throw invalid(`${what}: ${name} must be an integer, got ${n}`);
}

function checkKeyRange(what: string, r: KeyRange, limits: KvLimits): void {
  checkKey(what, r.key, limits);
  if (r.end.length > limits.maxKeyBytes) {
    throw invalid(`${what}: range end is ${r.end.length} bytes, more than the limit of ${limits.maxKeyBytes}`);
  }
}

/** Throws INVALID_ARGUMENT for a malformed range request (empty key, bad limit or revision). */
export function validateRange(req: RangeRequest, limits: KvLimits): void {
  checkKeyRange('range', req, limits);
  if (!Number.isSafeInteger(req.limit) || req.limit < 0) {
    throw invalid(`range: limit must be a non-negative integer, got ${req.limit}`);
  }
  checkRevisionField('range', 'revision', req.revision);
  checkRevisionField('range', 'min_mod_revision', req.minModRevision);
  checkRevisionField('range', 'max_mod_revision', req.maxModRevision);
  checkRevisionField('range', 'min_create_revision', req.minCreateRevision);
  checkRevisionField('range', 'max_create_revision', req.maxCreateRevision);
}

function checkCompare(i: number, c: Compare, limits: KvLimits): void {
  const what = `txn compare ${i}`;
  checkKeyRange(what, { key: c.key, end: c.end ?? new Uint8Array(0) }, limits);
  switch (c.target) {
    case 'value':
      checkValue(what, c.value, limits);
      return;
    case 'version':
    case 'create':
    case 'mod':
    case 'lease':
      if (!Number.isSafeInteger(c.number)) throw invalid(`${what}: ${c.target} must be an integer, got ${c.number}`);
      return;
    default:
      assertNever(c);
  }
}

function checkPut(what: string, p: PutOp, limits: KvLimits): void {
  checkKey(what, p.key, limits);
  checkValue(what, p.value, limits);
  const lease = p.lease ?? 0;
  if (!Number.isSafeInteger(lease)) throw invalid(`${what}: lease must be an integer, got ${lease}`);
  if (p.ignoreValue === true && p.value.length !== 0) throw invalid(ETCD_VALUE_PROVIDED);
  if (p.ignoreLease === true && lease !== 0) throw invalid(ETCD_LEASE_PROVIDED);
}

function checkOp(what: string, op: Op, limits: KvLimits, maxOps: number): void {
  switch (op.type) {
    case 'put':
      checkPut(what, op, limits);
      return;
    case 'delete':
      checkKeyRange(what, op.range, limits);
      return;
    case 'range':
      validateRange(op.request, limits);
      return;
    case 'txn':
      checkTxn(op, limits, maxOps);
      return;
    default:
      assertNever(op);
  }
}

/** etcd's checkTxnRequest: compares and each branch at most maxOps; a nested txn gets maxOps minus its parent's. */
function checkTxn(t: TxnOp, limits: KvLimits, maxOps: number): void {
  const opc = Math.max(t.compares.length, t.success.length, t.failure.length);
  if (opc > maxOps) throw invalid(ETCD_TOO_MANY_OPS);
  t.compares.forEach((c, i) => checkCompare(i, c, limits));
  t.success.forEach((op, i) => checkOp(`txn success op ${i}`, op, limits, maxOps - opc));
  t.failure.forEach((op, i) => checkOp(`txn failure op ${i}`, op, limits, maxOps - opc));
}

/**
 * A delete's keys as etcd's duplicate check sees them: [lo, hi) of latin1 strings, a single key [k, k + "\0").
 * An open end ("\0") is taken literally, as etcd does: the interval is empty and catches no put.
 */
interface Interval {
  readonly lo: string;
  readonly hi: string;
}

function latin1(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
}

function deleteInterval(r: KeyRange): Interval {
  const lo = latin1(r.key);
  return { lo, hi: r.end.length === 0 ? `${lo}\0` : latin1(r.end) };
}

function inAny(dels: readonly Interval[], k: string): boolean {
  return dels.some((d) => k >= d.lo && k < d.hi);
}

/**
 * etcd's checkIntervals over one branch: no key put twice, and no key both put and deleted, at this level or
 * in nested txns (whose then/else branches may put the same key, being exclusive). Returns the branch's puts
 * and deletes for its parent.
 */
function checkIntervals(ops: readonly Op[]): { puts: Set<string>; dels: Interval[] } {
  const dels: Interval[] = [];
  for (const op of ops) if (op.type === 'delete') dels.push(deleteInterval(op.range));
  const puts = new Set<string>();
  const duplicate = (): RaftKvError => new RaftKvError('DUPLICATE_KEY', ETCD_DUPLICATE_KEY);
  for (const op of ops) {
    if (op.type !== 'txn') continue;
    const then = checkIntervals(op.success);
    const otherwise = checkIntervals(op.failure);
    for (const k of then.puts) {
      if (puts.has(k) || inAny(dels, k)) throw duplicate();
      puts.add(k);
    }
    for (const k of otherwise.puts) {
      if (puts.has(k) && !then.puts.has(k)) throw duplicate();
      if (inAny(dels, k)) throw duplicate();
      puts.add(k);
    }
    dels.push(...then.dels, ...otherwise.dels);
  }
  for (const op of ops) {
    if (op.type !== 'put') continue;
    const k = latin1(op.key);
    if (puts.has(k) || inAny(dels, k)) throw duplicate();
    puts.add(k);
  }
  return { puts, dels };
}

/** Throws INVALID_ARGUMENT (or DUPLICATE_KEY) for a command that breaks a limit or is malformed. */
export function validateCommand(cmd: Command, limits: KvLimits): void {
  switch (cmd.type) {
    case 'put':
      checkPut('put', cmd, limits);
      return;
    case 'delete':
      checkKeyRange('delete', cmd.range, limits);
      return;
    case 'txn':
      checkTxn(cmd, limits, limits.maxTxnOps);
      checkIntervals(cmd.success);
      checkIntervals(cmd.failure);
      return;
    case 'compact':
      if (!Number.isSafeInteger(cmd.revision)) throw invalid(`compact: revision must be an integer, got ${cmd.revision}`);
      return;
    case 'lease-grant':
      return; // the state machine's leaseGrant checks it (leases.ts checkLeaseGrant), with etcd's codes
    case 'lease-revoke':
      if (!Number.isSafeInteger(cmd.id)) throw invalid(`lease revoke: id must be an integer, got ${cmd.id}`);
      return;
    case 'lease-checkpoint':
      if (cmd.checkpoints.length > MAX_LEASE_CHECKPOINTS) throw invalid(`lease checkpoint: at most ${MAX_LEASE_CHECKPOINTS} leases, got ${cmd.checkpoints.length}`);
      return;
    case 'alarm':
      if (!Number.isSafeInteger(cmd.memberId) || cmd.memberId < 0) throw invalid(`alarm: member id must be a whole number, got ${cmd.memberId}`);
      return;
    case 'auth': // the auth store checks its own rules on apply (auth-store.ts); the request size limit bounds it
      return;
    default:
      assertNever(cmd);
  }
}
