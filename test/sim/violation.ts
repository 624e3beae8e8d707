// A safety or liveness property the simulation saw broken. Thrown by the checkers, caught by runSimulation.

export type SimProperty =
  | 'election-safety' // at most one leader per term
  | 'log-matching' // same index+term => same entry and same prefix
  | 'leader-completeness' // every committed entry is in every later leader's log
  | 'state-machine-safety' // the same entry applied at each index on every node
  | 'acknowledged-write-lost' // a committed proposal missing or different at the end
  | 'commit-rule' // §5.4.2: a leader advances its commit index only to an entry of its own term
  | 'durability' // term/vote regressed on disk, commit beyond the log, vote changed within a term
  | 'ready-contract' // a Ready that breaks its documented contract
  | 'read-index' // a read index below an index acknowledged before the read started
  | 'node-invariant' // checkNodeInvariants from src/raft/invariants.ts
  | 'core-exception' // the core threw where it must not (step/tick/advance/ready or an assertion)
  | 'liveness' // no leader, or proposals not applied everywhere, within the bound after healing
  // The driver level (test/sim/driver) adds client-visible properties checked at RaftKvNode's API:
  | 'linearizability' // a read returned what the per-key register model does not allow
  | 'applied-twice' // one client write applied at two log indexes
  | 'convergence' // members at the same applied index hold different state after healing
  | 'driver-failure'; // the production driver's loop died (onFatal) or a member failed to start

export class SimViolation extends Error {
  readonly property: SimProperty;
  readonly detail: string;

  constructor(property: SimProperty, detail: string) {
    super(`${property}: ${detail}`);
    this.name = 'SimViolation';
    this.property = property;
    this.detail = detail;
  }
}
