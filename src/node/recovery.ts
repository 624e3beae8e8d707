// Before the loop starts: bootstrap an empty directory of a new cluster, and reconcile the WAL with the state
// machine after a crash (the rules are in node.ts's header, "Bootstrap and restarts").
import type { pino } from 'pino';
import { encodeConfChange } from '../raft/conf-change.js';
import type { Entry, Term } from '../raft/types.js';
import { NONE } from '../raft/types.js';
import { encodeMemberContext } from '../kv/state-machine.js';
import { RaftKvError } from '../shared/errors.js';
import type { Member } from './api.js';
import type { NodeConfig } from './config.js';
import type { DurableLog, StateMachine } from './ports.js';

/** Bootstraps an empty directory, and reconciles the WAL with the state machine after a crash. */
export async function recover(config: NodeConfig, wal: DurableLog, sm: StateMachine, snapDir: string, log: pino.Logger): Promise<void> {
  const walState = wal.initialState();
  if (sm.appliedIndex === 0 && sm.members().length === 0 && wal.snapshot().metadata.index === 0 && wal.lastIndex() === 0) {
    if (config.initialClusterState === 'new') {
      // A brand-new member (or one whose bootstrap a crash interrupted): the WAL was created with the
      // voters in its index-0 snapshot (startNode passes initialConfState). The initial membership also goes
      // into the log as committed conf-change entries 1..n of term 1, identical on every initial member, so
      // that a member joining later and replaying the log from index 1 learns it too (etcd does the same).
      const members: Member[] = [...config.initialMembers]
        .sort((x, y) => x.id - y.id)
        .map((m) => ({ id: m.id, peerAddress: m.peerAddress, clientAddress: m.clientAddress, learner: false }));
      const voters = members.map((m) => m.id);
      const walVoters = [...walState.confState.voters].sort((x, y) => x - y);
      if (walVoters.join(',') !== voters.join(',') || walState.confState.learners.length > 0) {
        throw new RaftKvError(
          'CLUSTER_MISMATCH',
          `the log in ${config.dataDir} starts with voters [${walVoters.join(',')}], not initialMembers [${voters.join(',')}]`,
        );
      }
      const entries: Entry[] = members.map((m, i) => ({
        term: 1,
        index: i + 1,
        type: 'conf-change',
        data: encodeConfChange({ type: 'add-voter', nodeId: m.id, context: encodeMemberContext(m) }),
      }));
      await wal.append(entries);
      await wal.setHardState({ term: 1, vote: NONE, commit: entries.length });
      await wal.sync();
      log.info({ voters }, 'bootstrapped a new cluster');
    } else {
      log.info('empty data directory joining an existing cluster: waiting for the leader to send the log');
    }
    return;
  }
  const walSnap = wal.snapshot().metadata;
  if (sm.appliedIndex < walSnap.index) {
    // The WAL was compacted past what the state machine holds (its last writes were lost): restore the
    // newest snapshot file, which must cover the WAL's snapshot.
    const latest = await sm.latestSnapshot(snapDir);
    if (latest === undefined || latest.metadata.index < walSnap.index) {
      throw new RaftKvError(
        'DATA_CORRUPTION',
        `state machine at index ${sm.appliedIndex} is behind the log's snapshot at ${walSnap.index}, and no snapshot file in ${snapDir} covers it`,
      );
    }
    log.warn({ applied: sm.appliedIndex, snapshotIndex: latest.metadata.index }, 'state machine behind the log: restoring snapshot');
    await sm.restoreSnapshot(latest.path);
  }
  const hs = wal.initialState().hardState;
  if (sm.appliedIndex > hs.commit) {
    // The state machine is ahead of the durable commit index: either the hard state's commit was not yet
    // synced, or a received snapshot was restored before the log recorded it. Both are committed state.
    let termAt: Term | undefined;
    if (sm.appliedIndex >= wal.firstIndex() - 1 && sm.appliedIndex <= wal.lastIndex()) termAt = wal.term(sm.appliedIndex);
    if (termAt === sm.appliedTerm) {
      await wal.setHardState({ ...hs, commit: sm.appliedIndex });
    } else {
      log.warn({ applied: sm.appliedIndex, commit: hs.commit }, 'log behind the state machine: recording its snapshot in the log');
      await wal.applySnapshot({ metadata: { index: sm.appliedIndex, term: sm.appliedTerm, confState: sm.confState() } });
      const after = wal.initialState().hardState;
      if (after.commit < sm.appliedIndex) await wal.setHardState({ ...after, commit: sm.appliedIndex });
    }
    await wal.sync();
  }
}
