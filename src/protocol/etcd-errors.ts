// THE one place RaftKvError codes become the gRPC statuses etcd's clients expect: etcd's code and its exact
// message string (rpctypes in etcd's api/v3rpc: clients such as clientv3 and the etcd3 npm package match the
// message to raise their own error types). raftkv's own protocol maps the same codes in wire-errors.ts.
import { Metadata, status as GrpcStatus } from '@grpc/grpc-js';
import type { StatusObject } from '@grpc/grpc-js';
import { RaftKvError } from '../shared/errors.js';
import type { ErrorCode } from '../shared/errors.js';

export const ETCD_NO_LEADER = 'etcdserver: no leader';
export const ETCD_NOT_LEADER = 'etcdserver: not leader';
export const ETCD_TIMEOUT = 'etcdserver: request timed out';
export const ETCD_NO_SPACE = 'etcdserver: mvcc: database space exceeded';
export const ETCD_REQUEST_TOO_LARGE = 'etcdserver: request is too large';
export const ETCD_CORRUPT = 'etcdserver: corrupt cluster';
export const ETCD_PROPOSAL_DROPPED = 'etcdserver: request timed out, possibly due to previous leader failure';

function assertNever(x: never): never {
  throw new Error(`unexpected value ${JSON.stringify(x)}`);
}

/** etcd's status for an error code; `message` is ours when etcd has no fixed string for the case. */
function etcdStatusOf(code: ErrorCode, message: string): { code: GrpcStatus; details: string } {
  switch (code) {
    case 'NOT_LEADER':
      return { code: GrpcStatus.UNAVAILABLE, details: ETCD_NOT_LEADER };
    case 'UNAVAILABLE':
      return { code: GrpcStatus.UNAVAILABLE, details: message.includes('no leader') ? ETCD_NO_LEADER : `etcdserver: ${message}` };
    case 'DEADLINE_EXCEEDED':
      return { code: GrpcStatus.UNAVAILABLE, details: ETCD_TIMEOUT };
    case 'PROPOSAL_DROPPED':
      return { code: GrpcStatus.UNAVAILABLE, details: ETCD_PROPOSAL_DROPPED };
    case 'INVALID_ARGUMENT':
      // etcd's own refusals carry its strings already (validate.ts); ours (a key over --max-key-bytes, ...)
      // are what etcd says of a request it cannot take.
      return { code: GrpcStatus.INVALID_ARGUMENT, details: message.startsWith('etcdserver: ') ? message : message.includes('larger than the limit') ? ETCD_REQUEST_TOO_LARGE : message };
    case 'COMPACTED':
    case 'FUTURE_REV':
      return { code: GrpcStatus.OUT_OF_RANGE, details: message };
    case 'KEY_NOT_FOUND':
    case 'DUPLICATE_KEY':
      return { code: GrpcStatus.INVALID_ARGUMENT, details: message };
    case 'LEASE_NOT_FOUND':
      return { code: GrpcStatus.NOT_FOUND, details: message };
    case 'LEASE_EXISTS':
      return { code: GrpcStatus.FAILED_PRECONDITION, details: message };
    case 'LEASE_TTL_TOO_LARGE':
      return { code: GrpcStatus.OUT_OF_RANGE, details: message };
    case 'TOO_MANY_LEASES':
      return { code: GrpcStatus.RESOURCE_EXHAUSTED, details: message };
    case 'WATCH_CANCELED':
      return { code: GrpcStatus.CANCELLED, details: message };
    case 'RESOURCE_EXHAUSTED':
      return { code: GrpcStatus.RESOURCE_EXHAUSTED, details: message };
    case 'DISK_FULL':
    case 'NO_SPACE':
      return { code: GrpcStatus.RESOURCE_EXHAUSTED, details: ETCD_NO_SPACE };
    case 'FAILED_PRECONDITION':
      return { code: GrpcStatus.FAILED_PRECONDITION, details: message };
    case 'NOT_FOUND':
      return { code: GrpcStatus.NOT_FOUND, details: message };
    case 'CLUSTER_MISMATCH':
      return { code: GrpcStatus.FAILED_PRECONDITION, details: message };
    case 'DATA_CORRUPTION':
      return { code: GrpcStatus.DATA_LOSS, details: ETCD_CORRUPT };
    case 'AUTH_REFUSED':
      return { code: GrpcStatus.FAILED_PRECONDITION, details: message };
    case 'PERMISSION_DENIED':
      // etcd 3.4's Maintenance service answers its auth store's own error unmapped ("auth: permission denied",
      // gRPC Unknown): etcdctl prints exactly that, so raftkv does too (etcd-maintenance-service.ts).
      return { code: message.startsWith('auth: ') ? GrpcStatus.UNKNOWN : GrpcStatus.PERMISSION_DENIED, details: message };
    case 'UNAUTHENTICATED':
      return { code: GrpcStatus.UNAUTHENTICATED, details: message };
    default:
      return assertNever(code);
  }
}

/** Server side: the status an etcd API handler answers with. Non-RaftKvError values are bugs: INTERNAL. */
export function toEtcdStatus(err: unknown): Partial<StatusObject> & { code: GrpcStatus; details: string; metadata: Metadata } {
  const metadata = new Metadata();
  if (err instanceof RaftKvError) return { ...etcdStatusOf(err.code, err.message), metadata };
  const message = err instanceof Error ? err.message : String(err);
  return { code: GrpcStatus.INTERNAL, details: `internal error: ${message}`, metadata };
}

/** etcd's strings a client tells apart (rpctypes in etcd's api/v3rpc; clientv3 matches them the same way). */
export const ETCD_COMPACTED = 'etcdserver: mvcc: required revision has been compacted';
export const ETCD_FUTURE_REV = 'etcdserver: mvcc: required revision is a future revision';
export const ETCD_LEASE_NOT_FOUND = 'etcdserver: requested lease not found';
export const ETCD_KEY_NOT_FOUND = 'etcdserver: key not found';
export const ETCD_DUPLICATE_KEY = 'etcdserver: duplicate key given in txn request';

function isGrpcError(err: unknown): err is Error & { code: GrpcStatus; details?: string } {
  return err instanceof Error && typeof (err as { code?: unknown }).code === 'number';
}

/**
 * Client side: the RaftKvError an etcd API call failed with, from etcd's gRPC code and its message string.
 * Anything that is not a gRPC error (a broken connection, a stream that ended) is UNAVAILABLE: try another member.
 */
export function fromEtcdError(err: unknown): RaftKvError {
  if (err instanceof RaftKvError) return err;
  if (!isGrpcError(err)) return new RaftKvError('UNAVAILABLE', err instanceof Error ? err.message : String(err));
  const details = err.details !== undefined && err.details !== '' ? err.details : err.message;
  switch (err.code) {
    case GrpcStatus.OUT_OF_RANGE:
      if (details === ETCD_COMPACTED) return new RaftKvError('COMPACTED', details);
      if (details === ETCD_FUTURE_REV) return new RaftKvError('FUTURE_REV', details);
      return new RaftKvError('INVALID_ARGUMENT', details);
    case GrpcStatus.NOT_FOUND:
      return new RaftKvError(details === ETCD_LEASE_NOT_FOUND ? 'LEASE_NOT_FOUND' : 'NOT_FOUND', details);
    case GrpcStatus.INVALID_ARGUMENT:
      if (details === ETCD_KEY_NOT_FOUND) return new RaftKvError('KEY_NOT_FOUND', details);
      if (details === ETCD_DUPLICATE_KEY) return new RaftKvError('DUPLICATE_KEY', details);
      return new RaftKvError('INVALID_ARGUMENT', details);
    case GrpcStatus.DEADLINE_EXCEEDED:
      return new RaftKvError('DEADLINE_EXCEEDED', details);
    case GrpcStatus.RESOURCE_EXHAUSTED:
      return new RaftKvError(details === ETCD_NO_SPACE ? 'DISK_FULL' : 'RESOURCE_EXHAUSTED', details);
    case GrpcStatus.FAILED_PRECONDITION:
      return new RaftKvError('FAILED_PRECONDITION', details);
    case GrpcStatus.PERMISSION_DENIED:
      return new RaftKvError('PERMISSION_DENIED', details);
    case GrpcStatus.UNAUTHENTICATED:
      return new RaftKvError('UNAUTHENTICATED', details);
    case GrpcStatus.UNIMPLEMENTED:
      return new RaftKvError('INVALID_ARGUMENT', `not served by this member: ${details}`);
    case GrpcStatus.DATA_LOSS:
      return new RaftKvError('DATA_CORRUPTION', details);
    case GrpcStatus.OK:
    case GrpcStatus.CANCELLED:
    case GrpcStatus.UNKNOWN:
    case GrpcStatus.ALREADY_EXISTS:
    case GrpcStatus.ABORTED:
    case GrpcStatus.INTERNAL:
    case GrpcStatus.UNAVAILABLE:
    default:
      // No leader, not leader, request timed out, refused or reset connections: this member could not answer.
      return new RaftKvError('UNAVAILABLE', details);
  }
}
