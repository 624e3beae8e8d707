// The core's typed errors (src/raft/errors.ts) as the node's (src/shared/errors.ts), with the leader hint.
import type { RaftError } from '../raft/errors.js';
import { assertNever } from '../raft/util.js';
import { RaftKvError } from '../shared/errors.js';
import type { LeaderHint } from '../shared/errors.js';

/** Maps the core's typed errors to the node's. */
export function fromRaftError(err: RaftError, hint: LeaderHint): RaftKvError {
  switch (err.code) {
    case 'NOT_LEADER':
      return new RaftKvError('NOT_LEADER', err.message, hint);
    case 'TRANSFER_IN_PROGRESS':
      return new RaftKvError('UNAVAILABLE', `leadership transfer in progress: ${err.message}`, hint);
    case 'UNCOMMITTED_LIMIT':
      return new RaftKvError('RESOURCE_EXHAUSTED', `too many uncommitted entries: ${err.message}`);
    case 'CONF_CHANGE_PENDING':
      return new RaftKvError('FAILED_PRECONDITION', `a membership change is pending: ${err.message}`);
    case 'INVALID_CONF_CHANGE':
      return new RaftKvError('FAILED_PRECONDITION', `invalid membership change: ${err.message}`);
    case 'PROPOSAL_TOO_LARGE':
      return new RaftKvError('INVALID_ARGUMENT', `proposal too large: ${err.message}`);
    case 'UNAVAILABLE':
      return new RaftKvError('UNAVAILABLE', err.message, hint);
    case 'COMPACTED':
    case 'SNAPSHOT_OUT_OF_DATE':
      return new RaftKvError('UNAVAILABLE', `storage: ${err.message}`);
    default:
      return assertNever(err.code);
  }
}
