// What the loop last learned from the core's Readys (term and commit from the hard state, role and leader from
// the soft state), and what every room may ask of it: who this member is, its clock and logger, the fields of a
// log line, the leader hint of an error, the header of a response. Only the loop writes it (node.ts); rooms get
// it as a RoomContext, read-only, and never the core itself.
import type { pino } from 'pino';
import type { Index, NodeId, Role, Term } from '../raft/types.js';
import { NONE } from '../raft/types.js';
import type { Clock } from '../shared/clock.js';
import { RaftKvError } from '../shared/errors.js';
import type { LeaderHint } from '../shared/errors.js';
import type { Member, ResponseHeader } from './api.js';

/** A room's view of its node. */
export interface RoomContext {
  readonly id: NodeId;
  readonly clock: Clock;
  readonly log: pino.Logger;
  /** The term and role of the last Ready: the first fields of every log line about the node's state. */
  logFields(): { term: Term; role: Role };
  /** The last known leader and its client address, for NOT_LEADER and UNAVAILABLE errors. */
  leaderHint(): LeaderHint;
  /** NOT_LEADER (with the hint) on a follower that knows the leader, UNAVAILABLE when no leader is known. */
  notLeaderError(): RaftKvError;
  /** The header of a response served at applied index `index`. */
  header(index: Index): ResponseHeader;
}

export class NodeContext implements RoomContext {
  role: Role = 'follower'; // last soft state seen from the core
  leaderId: NodeId = NONE; // last known leader (NONE = unknown)
  term: Term = 0; // last hard state term seen
  commitIndex: Index = 0; // last hard state commit seen

  constructor(
    readonly id: NodeId,
    readonly clock: Clock,
    readonly log: pino.Logger,
    private readonly members: () => readonly Member[], // the state machine's member table
  ) {}

  /** This member leads, as of the last Ready. */
  leads(): boolean {
    return this.leaderId === this.id && this.role === 'leader';
  }

  logFields(): { term: Term; role: Role } {
    return { term: this.term, role: this.role };
  }

  leaderHint(): LeaderHint {
    const m = this.leaderId === NONE ? undefined : this.members().find((x) => x.id === this.leaderId);
    return { leaderId: this.leaderId, leaderAddress: m?.clientAddress ?? '' };
  }

  notLeaderError(): RaftKvError {
    if (this.leaderId === NONE) {
      return new RaftKvError('UNAVAILABLE', `node ${this.id}: no leader known (term ${this.term}); retry later`, this.leaderHint());
    }
    return new RaftKvError('NOT_LEADER', `node ${this.id} is not the leader; the leader is ${this.leaderId}`, this.leaderHint());
  }

  header(index: Index): ResponseHeader {
    return { memberId: this.id, term: this.term, index, leaderId: this.leaderId };
  }
}
