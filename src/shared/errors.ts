// Expected failures: typed errors with stable codes. src/protocol/wire-errors.ts maps them to gRPC status in one place.

export type ErrorCode =
  | 'NOT_LEADER' // this member is not the leader; details carry the leader's id and client address if known
  | 'UNAVAILABLE' // no leader known, no quorum, the node is stopping, or the disk refused a write
  | 'INVALID_ARGUMENT' // malformed request, oversized key or value, too many ops, bad flags or config
  | 'RESOURCE_EXHAUSTED' // a named limit was hit: inbox full, too many pending proposals or reads
  | 'DEADLINE_EXCEEDED' // the request's deadline passed before it was answered (outcome may be unknown)
  | 'FAILED_PRECONDITION' // the request cannot be done in the current state (conf change pending, ...)
  | 'NOT_FOUND' // an unknown member
  | 'CLUSTER_MISMATCH' // a data directory or message from another cluster or node
  | 'DATA_CORRUPTION' // a checksum or framing failure on disk: the node refuses to start
  | 'DISK_FULL' // ENOSPC: writes stop until space returns
  | 'NO_SPACE' // the NOSPACE alarm is raised (over --quota-backend-bytes, or a full disk): writes that grow the store are refused (etcd's ErrNoSpace)
  | 'PROPOSAL_DROPPED' // the entry was proposed but overwritten after a leader change: safe to retry
  | 'COMPACTED' // a revision below the compacted revision (etcd's ErrCompacted)
  | 'FUTURE_REV' // a revision above the current revision (etcd's ErrFutureRev)
  | 'KEY_NOT_FOUND' // a put with ignore_value/ignore_lease on a missing key, or an empty txn op (etcd's ErrKeyNotFound)
  | 'LEASE_NOT_FOUND' // a put naming a lease that does not exist (etcd's ErrLeaseNotFound)
  | 'DUPLICATE_KEY' // a txn branch writes one key twice, or puts a key it also deletes (etcd's ErrDuplicateKey)
  | 'LEASE_EXISTS' // a lease grant naming an id that is granted already (etcd's ErrLeaseExists)
  | 'LEASE_TTL_TOO_LARGE' // a lease grant over MAX_LEASE_TTL_SECONDS (etcd's ErrLeaseTTLTooLarge)
  | 'TOO_MANY_LEASES' // a lease grant while MAX_LEASES leases are live
  | 'WATCH_CANCELED' // a watch the server ended: its member lost the leader, or the watcher fell too far behind
  | 'AUTH_REFUSED' // an auth change the auth store's state refuses: user exists, role not found, no root user, ... (etcd's FailedPrecondition auth errors)
  | 'PERMISSION_DENIED' // authentication is on and the user may not do this (etcd's ErrPermissionDenied)
  | 'UNAUTHENTICATED'; // a token that names no live session (etcd's ErrInvalidAuthToken)

export interface LeaderHint {
  readonly leaderId: number; // 0 if unknown
  readonly leaderAddress: string; // client address, "" if unknown
}

export class RaftKvError extends Error {
  readonly code: ErrorCode;
  readonly leader: LeaderHint | undefined;

  constructor(code: ErrorCode, message: string, leader?: LeaderHint) {
    super(message);
    this.name = 'RaftKvError';
    this.code = code;
    this.leader = leader;
  }
}

export function isRaftKvError(err: unknown, code?: ErrorCode): err is RaftKvError {
  return err instanceof RaftKvError && (code === undefined || err.code === code);
}

// Every code once: the Record makes the compiler refuse a code missing here.
const ERROR_CODES: Readonly<Record<ErrorCode, true>> = {
  NOT_LEADER: true,
  UNAVAILABLE: true,
  INVALID_ARGUMENT: true,
  RESOURCE_EXHAUSTED: true,
  DEADLINE_EXCEEDED: true,
  FAILED_PRECONDITION: true,
  NOT_FOUND: true,
  CLUSTER_MISMATCH: true,
  DATA_CORRUPTION: true,
  DISK_FULL: true,
  NO_SPACE: true,
  PROPOSAL_DROPPED: true,
  COMPACTED: true,
  FUTURE_REV: true,
  KEY_NOT_FOUND: true,
  LEASE_NOT_FOUND: true,
  DUPLICATE_KEY: true,
  LEASE_EXISTS: true,
  LEASE_TTL_TOO_LARGE: true,
  TOO_MANY_LEASES: true,
  WATCH_CANCELED: true,
  AUTH_REFUSED: true,
  PERMISSION_DENIED: true,
  UNAUTHENTICATED: true,
};

/** The codes a request earns from its content: decided on apply identically on every replica, stored in sessions. */
export const REQUEST_ERROR_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'INVALID_ARGUMENT',
  'COMPACTED',
  'FUTURE_REV',
  'KEY_NOT_FOUND',
  'LEASE_NOT_FOUND',
  'DUPLICATE_KEY',
  'LEASE_EXISTS',
  'LEASE_TTL_TOO_LARGE',
  'TOO_MANY_LEASES',
  'NO_SPACE',
  'AUTH_REFUSED',
  'PERMISSION_DENIED',
]);

/** True if `s` is one of our stable error codes (decoding them from the wire or from disk). */
export function isErrorCode(s: string): s is ErrorCode {
  return Object.hasOwn(ERROR_CODES, s);
}
