// Expected failures of the core, with stable codes. The driver maps them to RaftKvError (src/shared/errors.ts).

export type RaftErrorCode =
  | 'NOT_LEADER' // propose / transfer / conf change on a non-leader
  | 'TRANSFER_IN_PROGRESS' // proposals are refused while leadership is being handed over
  | 'UNCOMMITTED_LIMIT' // maxUncommittedEntriesBytes reached: back off and retry
  | 'CONF_CHANGE_PENDING' // one membership change at a time (or the previous term's log not yet applied)
  | 'INVALID_CONF_CHANGE' // e.g. adding an existing voter, removing an unknown member or the last voter
  | 'PROPOSAL_TOO_LARGE' // a single entry larger than maxUncommittedEntriesBytes
  | 'COMPACTED' // storage: the requested index was compacted into a snapshot
  | 'UNAVAILABLE' // storage: index beyond the last; core: no leader known (readIndex), bad transfer target
  | 'SNAPSHOT_OUT_OF_DATE'; // storage: a snapshot older than the current one

export class RaftError extends Error {
  readonly code: RaftErrorCode;

  constructor(code: RaftErrorCode, message: string) {
    super(message);
    this.name = 'RaftError';
    this.code = code;
  }
}

export function isRaftError(err: unknown, code?: RaftErrorCode): err is RaftError {
  return err instanceof RaftError && (code === undefined || err.code === code);
}
