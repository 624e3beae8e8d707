// THE one place RaftKvError codes become gRPC statuses (server side) and gRPC statuses become RaftKvError again
// (client side).
//
// Every error status carries trailing metadata `raftkv-code` = the RaftKvError code, so our client recovers the
// exact code; generic gRPC clients still see a meaningful status:
//   NOT_LEADER          -> UNAVAILABLE + `raftkv-leader-id`, `raftkv-leader-address` (retry elsewhere: transient
//                          for a generic client; our client follows the hint)
//   UNAVAILABLE         -> UNAVAILABLE
//   INVALID_ARGUMENT    -> INVALID_ARGUMENT
//   RESOURCE_EXHAUSTED  -> RESOURCE_EXHAUSTED
//   DEADLINE_EXCEEDED   -> DEADLINE_EXCEEDED
//   FAILED_PRECONDITION -> FAILED_PRECONDITION
//   NOT_FOUND           -> NOT_FOUND
//   CLUSTER_MISMATCH    -> FAILED_PRECONDITION
//   DATA_CORRUPTION     -> DATA_LOSS
//   DISK_FULL, NO_SPACE -> RESOURCE_EXHAUSTED
//   PROPOSAL_DROPPED    -> ABORTED
//   COMPACTED, FUTURE_REV -> OUT_OF_RANGE (as etcd's)
//   KEY_NOT_FOUND, DUPLICATE_KEY -> INVALID_ARGUMENT (as etcd's)
//   LEASE_NOT_FOUND     -> NOT_FOUND (as etcd's)
//   LEASE_EXISTS        -> FAILED_PRECONDITION (as etcd's)
//   LEASE_TTL_TOO_LARGE -> OUT_OF_RANGE (as etcd's)
//   TOO_MANY_LEASES     -> RESOURCE_EXHAUSTED
//   WATCH_CANCELED      -> CANCELLED
//   AUTH_REFUSED        -> FAILED_PRECONDITION (as etcd's)
//   PERMISSION_DENIED   -> PERMISSION_DENIED (as etcd's)
//   UNAUTHENTICATED     -> UNAUTHENTICATED (as etcd's)
//   anything else (a bug) -> INTERNAL (logged by the service)
// Without `raftkv-code` (a status made by gRPC itself), the client maps: UNAVAILABLE / CANCELLED (connection
// refused or reset) -> UNAVAILABLE; DEADLINE_EXCEEDED -> DEADLINE_EXCEEDED; RESOURCE_EXHAUSTED "Received message
// larger than max" (a request over --max-request-bytes) -> INVALID_ARGUMENT; others by name, else UNAVAILABLE
// for transport-level failures and INVALID_ARGUMENT for UNIMPLEMENTED / INTERNAL deserialization errors.
import { Metadata, status as GrpcStatus } from '@grpc/grpc-js';
import type { ServiceError, StatusObject } from '@grpc/grpc-js';
import { RaftKvError, isErrorCode } from '../shared/errors.js';
import type { ErrorCode, LeaderHint } from '../shared/errors.js';

export const CODE_METADATA_KEY = 'raftkv-code';
export const LEADER_ID_METADATA_KEY = 'raftkv-leader-id';
export const LEADER_ADDRESS_METADATA_KEY = 'raftkv-leader-address';

function assertNever(x: never): never {
  throw new Error(`unexpected value ${JSON.stringify(x)}`);
}

export function grpcStatusOf(code: ErrorCode): GrpcStatus {
  switch (code) {
    case 'NOT_LEADER':
      return GrpcStatus.UNAVAILABLE;
    case 'UNAVAILABLE':
      return GrpcStatus.UNAVAILABLE;
    case 'INVALID_ARGUMENT':
      return GrpcStatus.INVALID_ARGUMENT;
    case 'RESOURCE_EXHAUSTED':
      return GrpcStatus.RESOURCE_EXHAUSTED;
    case 'DEADLINE_EXCEEDED':
      return GrpcStatus.DEADLINE_EXCEEDED;
    case 'FAILED_PRECONDITION':
      return GrpcStatus.FAILED_PRECONDITION;
    case 'NOT_FOUND':
      return GrpcStatus.NOT_FOUND;
    case 'CLUSTER_MISMATCH':
      return GrpcStatus.FAILED_PRECONDITION;
    case 'DATA_CORRUPTION':
      return GrpcStatus.DATA_LOSS;
    case 'DISK_FULL':
    case 'NO_SPACE':
      return GrpcStatus.RESOURCE_EXHAUSTED;
    case 'PROPOSAL_DROPPED':
      return GrpcStatus.ABORTED;
    case 'COMPACTED':
    case 'FUTURE_REV':
      return GrpcStatus.OUT_OF_RANGE;
    case 'KEY_NOT_FOUND':
    case 'DUPLICATE_KEY':
      return GrpcStatus.INVALID_ARGUMENT;
    case 'LEASE_NOT_FOUND':
      return GrpcStatus.NOT_FOUND;
    case 'LEASE_EXISTS':
      return GrpcStatus.FAILED_PRECONDITION;
    case 'LEASE_TTL_TOO_LARGE':
      return GrpcStatus.OUT_OF_RANGE;
    case 'TOO_MANY_LEASES':
      return GrpcStatus.RESOURCE_EXHAUSTED;
    case 'WATCH_CANCELED':
      return GrpcStatus.CANCELLED;
    case 'AUTH_REFUSED':
      return GrpcStatus.FAILED_PRECONDITION;
    case 'PERMISSION_DENIED':
      return GrpcStatus.PERMISSION_DENIED;
    case 'UNAUTHENTICATED':
      return GrpcStatus.UNAUTHENTICATED;
    default:
      return assertNever(code);
  }
}

/** Server side: the status a handler answers with. Non-RaftKvError values are bugs: INTERNAL. */
export function toGrpcStatus(err: unknown): Partial<StatusObject> & { code: GrpcStatus; details: string; metadata: Metadata } {
  const metadata = new Metadata();
  if (err instanceof RaftKvError) {
    metadata.set(CODE_METADATA_KEY, err.code);
    if (err.leader !== undefined) {
      metadata.set(LEADER_ID_METADATA_KEY, String(err.leader.leaderId));
      metadata.set(LEADER_ADDRESS_METADATA_KEY, err.leader.leaderAddress);
    }
    return { code: grpcStatusOf(err.code), details: `${err.code}: ${err.message}`, metadata };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { code: GrpcStatus.INTERNAL, details: `internal error: ${message}`, metadata };
}

/** A failed call on the KV Stream: the status its unary twin would have ended with, as plain data. */
export interface StreamErrorData {
  readonly code: number;
  readonly details: string;
  readonly metadata: Record<string, string>;
}

/** Server side, for a call on the KV Stream: toGrpcStatus() as plain data. */
export function toStreamError(err: unknown): StreamErrorData {
  const status = toGrpcStatus(err);
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(status.metadata.getMap())) if (typeof v === 'string') metadata[k] = v;
  return { code: status.code, details: status.details, metadata };
}

/** Client side: a KV Stream error as the ServiceError its unary twin would have failed with (for fromGrpcError). */
export function serviceErrorOf(e: StreamErrorData): ServiceError {
  const metadata = new Metadata();
  for (const [k, v] of Object.entries(e.metadata)) metadata.set(k, v);
  const name = GrpcStatus[e.code] ?? 'UNKNOWN';
  return Object.assign(new Error(`${e.code} ${name}: ${e.details}`), { code: e.code, details: e.details, metadata });
}

function firstString(md: Metadata | undefined, key: string): string | undefined {
  const v = md?.get(key)[0];
  return typeof v === 'string' ? v : undefined;
}

function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === 'number';
}

/** Strips the "CODE: " prefix toGrpcStatus added and gRPC's "N STATUS: " prefix. */
function cleanMessage(err: ServiceError, code: ErrorCode): string {
  const details = err.details || err.message;
  return details.startsWith(`${code}: `) ? details.slice(code.length + 2) : details;
}

/** Client side: the RaftKvError a failed call stands for. Anything not a gRPC error is returned as UNAVAILABLE. */
export function fromGrpcError(err: unknown): RaftKvError {
  if (err instanceof RaftKvError) return err;
  if (!isServiceError(err)) return new RaftKvError('UNAVAILABLE', err instanceof Error ? err.message : String(err));
  const tagged = firstString(err.metadata, CODE_METADATA_KEY);
  if (tagged !== undefined && isErrorCode(tagged)) {
    let leader: LeaderHint | undefined;
    const id = firstString(err.metadata, LEADER_ID_METADATA_KEY);
    if (id !== undefined) {
      const leaderId = Number(id);
      leader = { leaderId: Number.isSafeInteger(leaderId) && leaderId > 0 ? leaderId : 0, leaderAddress: firstString(err.metadata, LEADER_ADDRESS_METADATA_KEY) ?? '' };
    }
    return new RaftKvError(tagged, cleanMessage(err, tagged), leader);
  }
  const details = err.details || err.message;
  switch (err.code) {
    case GrpcStatus.DEADLINE_EXCEEDED:
      return new RaftKvError('DEADLINE_EXCEEDED', details);
    case GrpcStatus.RESOURCE_EXHAUSTED:
      if (/larger than max/i.test(details)) return new RaftKvError('INVALID_ARGUMENT', `request too large: ${details}`);
      return new RaftKvError('RESOURCE_EXHAUSTED', details);
    case GrpcStatus.INVALID_ARGUMENT:
    case GrpcStatus.OUT_OF_RANGE:
    case GrpcStatus.UNIMPLEMENTED:
      return new RaftKvError('INVALID_ARGUMENT', details);
    case GrpcStatus.FAILED_PRECONDITION:
      return new RaftKvError('FAILED_PRECONDITION', details);
    case GrpcStatus.NOT_FOUND:
      return new RaftKvError('NOT_FOUND', details);
    case GrpcStatus.ABORTED:
      return new RaftKvError('PROPOSAL_DROPPED', details);
    case GrpcStatus.DATA_LOSS:
      return new RaftKvError('DATA_CORRUPTION', details);
    case GrpcStatus.OK:
    case GrpcStatus.CANCELLED:
    case GrpcStatus.UNKNOWN:
    case GrpcStatus.ALREADY_EXISTS:
    case GrpcStatus.PERMISSION_DENIED:
    case GrpcStatus.INTERNAL:
    case GrpcStatus.UNAVAILABLE:
    case GrpcStatus.UNAUTHENTICATED:
    default:
      // Refused / reset connections, cancelled or broken calls: the member could not answer; try another.
      return new RaftKvError('UNAVAILABLE', details);
  }
}
