// Majority counting over a set of voters: commit index (§5.3, §5.4.2 is applied by the caller) and votes.
import type { Index, NodeId } from './types.js';

/** The largest index that a majority of `voters` has matched (0 for no voters). */
export function committedIndex(voters: ReadonlySet<NodeId>, matchOf: (id: NodeId) => Index): Index {
  if (voters.size === 0) return 0;
  const matches: Index[] = [];
  for (const id of voters) matches.push(matchOf(id));
  matches.sort((a, b) => b - a); // descending
  const q = Math.floor(voters.size / 2) + 1;
  return matches[q - 1] ?? 0;
}

export type VoteResult = 'won' | 'lost' | 'pending';

export function voteResult(voters: ReadonlySet<NodeId>, votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  if (voters.size === 0) return 'won'; // by convention, like an empty joint half
  let granted = 0;
  let missing = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === undefined) missing++;
    else if (v) granted++;
  }
  const q = Math.floor(voters.size / 2) + 1;
  if (granted >= q) return 'won';
  if (granted + missing >= q) return 'pending';
  return 'lost';
}

/** Whether the ids in `active` form a majority of `voters`. */
export function hasQuorum(voters: ReadonlySet<NodeId>, active: (id: NodeId) => boolean): boolean {
  let n = 0;
  for (const id of voters) if (active(id)) n++;
  return n >= Math.floor(voters.size / 2) + 1;
}
