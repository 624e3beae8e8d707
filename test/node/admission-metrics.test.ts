// etcd's proposals_pending and proposals_failed_total as the admission room reports them: a slot taken is
// pending until it settles; it failed when it got no outcome from the log, not when the state machine refused it.
import { expect, it } from 'vitest';
import { Admission } from '../../src/node/admission.js';
import { NO_NODE_METRICS } from '../../src/node/node-metrics.js';
import { ManualClock } from '../../src/shared/clock.js';
import { RaftKvError } from '../../src/shared/errors.js';

it('counts pending proposals and the ones that failed', async () => {
  const clock = new ManualClock();
  let pending = 0;
  let failed = 0;
  const admission = new Admission(
    { maxPendingProposals: 10, maxPendingReads: 10 },
    clock,
    {
      id: 1,
      failure: () => undefined,
      stopping: () => false,
      diskFull: () => false,
      leads: () => true,
      leaderKnown: () => true,
      notLeaderError: () => new RaftKvError('UNAVAILABLE', 'no leader'),
    },
    {
      ...NO_NODE_METRICS,
      onProposalStarted: () => pending++,
      onProposalSettled: (f) => {
        pending--;
        if (f) failed++;
      },
    },
  );
  const answered = admission.writeSlot<number>(clock.now() + 1000, 'write');
  const refused = admission.writeSlot<number>(clock.now() + 1000, 'write');
  const dropped = admission.writeSlot<number>(clock.now() + 1000, 'write');
  const timedOut = admission.writeSlot<number>(clock.now() + 1000, 'write');
  expect(pending).toBe(4);
  answered.resolve(1);
  refused.reject(new RaftKvError('COMPACTED', 'compacted')); // the state machine's outcome
  dropped.reject(new RaftKvError('PROPOSAL_DROPPED', 'replaced'));
  clock.advance(1000); // the deadline
  await expect(timedOut.promise).rejects.toMatchObject({ code: 'DEADLINE_EXCEEDED' });
  await Promise.allSettled([refused.promise, dropped.promise]);
  expect(pending).toBe(0);
  expect(failed).toBe(2);
});
