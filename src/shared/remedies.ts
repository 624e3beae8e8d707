// What an operator does about a member that cannot go on: the text every refusal ends with, in one place, so
// the README, the chaos harness (which matches it) and every layer say the same thing.

/** A member whose data is damaged or lost: replace its data from the cluster. */
export const REPLACE_MEMBER_REMEDY =
  'remove this member (raftkv member remove ID), wipe its data directory, add it back (raftkv member add) and start it ' +
  'with --initial-cluster-state existing: it catches up from the leader';
