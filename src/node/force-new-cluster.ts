// `raftkv serve --force-new-cluster`: after a quorum is lost for good, a surviving member starts a one-member
// cluster from its own data, as etcd's --force-new-cluster does (etcdserver/raft.go restartAsStandaloneNode):
// - the entries after the durable commit index are dropped (they may never have been committed; etcd drops them
//   too), everything committed is kept: the state machine and the log up to the commit index;
// - conf-change entries removing every other member (voters and learners, as of the commit index) are appended
//   in the current term and marked committed, so the core, the member table (when they are applied) and every
//   replica added later agree that the cluster is this member alone;
// - the cluster id stays; the removed members' incarnations are retired for good (incarnations.ts `retire`):
//   their old data directories are refused even after `member add` of the same id, so a member that comes back
//   with stale data cannot rejoin; a re-added member must start on an empty directory (new incarnation) with
//   --initial-cluster-state existing, and is sent a snapshot by the new leader.
// It runs on the loop's stores before the core is made (node.ts start, after recover()), and only writes the WAL;
// on a member already alone it changes nothing. A restart with the flag still set is harmless (nothing to remove).
import type { pino } from 'pino';
import { applyConfChangeTo, decodeConfChange, encodeConfChange } from '../raft/conf-change.js';
import type { ConfState, Entry, NodeId } from '../raft/types.js';
import { RaftKvError } from '../shared/errors.js';
import type { DurableLog } from './ports.js';

/** The membership as of the durable commit index, from the log alone (its snapshot, then the conf changes after it). */
export function confStateAtCommit(wal: DurableLog): ConfState {
  const snap = wal.snapshot().metadata;
  let cs: ConfState = snap.confState;
  const commit = wal.initialState().hardState.commit;
  for (let lo = snap.index + 1; lo <= commit; ) {
    const batch = wal.entries(lo, commit + 1, 64 * 1024 * 1024);
    for (const e of batch) if (e.type === 'conf-change') cs = applyConfChangeTo(cs, decodeConfChange(e.data));
    const last = batch[batch.length - 1];
    if (last === undefined) break;
    lo = last.index + 1;
  }
  return cs;
}

export interface ForcedCluster {
  readonly removed: readonly NodeId[];
  readonly dropped: number; // uncommitted entries dropped
  readonly commit: number; // the commit index after the removals
}

/**
 * Rewrites the log of member `self` so it is a cluster of itself alone (see the top of this file). Durable on
 * return. `retire` is told the removed member ids (to refuse their old incarnations).
 */
export async function forceNewCluster(self: NodeId, wal: DurableLog, log: pino.Logger, retire: (ids: readonly NodeId[]) => Promise<void>): Promise<ForcedCluster> {
  const hs = wal.initialState().hardState;
  const cs = confStateAtCommit(wal);
  if (!cs.voters.includes(self)) {
    const what = cs.learners.includes(self) ? 'a learner' : 'not a member';
    throw new RaftKvError('FAILED_PRECONDITION', `--force-new-cluster: this member (${self}) is ${what} as of its commit index ${hs.commit}: only a voter can start the new cluster; use one that was a voter`);
  }
  const others = [...cs.voters, ...cs.learners].filter((id) => id !== self).sort((a, b) => a - b);
  const dropped = wal.lastIndex() - hs.commit;
  if (others.length === 0) {
    log.info({ commit: hs.commit }, '--force-new-cluster: already the only member; nothing to change');
    return { removed: [], dropped: 0, commit: hs.commit };
  }
  const term = hs.term; // >= the term of every entry in the log
  const entries: Entry[] = others.map((id, i) => ({
    term,
    index: hs.commit + 1 + i,
    type: 'conf-change',
    data: encodeConfChange({ type: 'remove', nodeId: id, context: new Uint8Array(0) }),
  }));
  await retire(others); // before the log says they are gone: a crash in between leaves them refused, never admitted
  await wal.append(entries); // truncates the uncommitted tail (a conflicting append)
  const commit = hs.commit + entries.length;
  await wal.setHardState({ term, vote: hs.vote, commit });
  await wal.sync();
  log.warn({ removed: others, droppedUncommitted: dropped, commit, term }, '--force-new-cluster: this member is now the only member of the cluster; add the others back with member add and an empty data directory');
  return { removed: others, dropped, commit };
}
