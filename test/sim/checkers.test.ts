// Unit tests of the global checkers on hand-made histories: each property check fires on its violation.
import { describe, expect, it } from 'vitest';
import type { ConfState, Entry } from '../../src/raft/types.js';
import { SafetyChecker, checkDurableLogMatching } from './checkers.js';
import { SimStorage } from './sim-storage.js';
import { HashChainStateMachine, encodeProposal } from './state-machine.js';
import { SimViolation, type SimProperty } from './violation.js';
import { seededRng } from '../../src/raft/rng.js';

const CS: ConfState = { voters: [1, 2, 3], learners: [] };

function entry(index: number, term: number, proposal: number): Entry {
  return { index, term, type: 'normal', data: encodeProposal(proposal, 0) };
}

function storage(): SimStorage {
  const sm = new HashChainStateMachine(CS);
  return new SimStorage(CS, sm.snapshot(), () => sm.confState);
}

function violationOf(f: () => void): SimProperty | undefined {
  try {
    f();
  } catch (err) {
    if (err instanceof SimViolation) return err.property;
    throw err;
  }
  return undefined;
}

describe('SafetyChecker', () => {
  it('election safety: two leaders in one term', () => {
    const c = new SafetyChecker();
    c.onLeader(1, 2, storage());
    expect(violationOf(() => c.onLeader(1, 2, storage()))).toBeUndefined(); // same leader again is fine
    expect(violationOf(() => c.onLeader(2, 2, storage()))).toBe('election-safety');
  });

  it('log matching: same index and term, different content or different previous term', () => {
    const c = new SafetyChecker();
    const a = storage();
    a.append([entry(1, 1, 1), entry(2, 1, 2)]);
    c.onEntriesWritten(1, [entry(1, 1, 1), entry(2, 1, 2)], a);
    const b = storage();
    b.append([entry(1, 1, 1), entry(2, 1, 99)]);
    expect(violationOf(() => c.onEntriesWritten(2, [entry(1, 1, 1), entry(2, 1, 99)], b))).toBe('log-matching');
    const d = storage();
    d.append([entry(1, 2, 5), entry(2, 1, 2)]); // same (2, t1) after a different previous entry
    expect(violationOf(() => c.onEntriesWritten(3, [entry(2, 1, 2)], d))).toBe('log-matching');
  });

  it('leader completeness: a new leader lacks a committed entry', () => {
    const c = new SafetyChecker();
    const a = storage();
    a.append([entry(1, 1, 1), entry(2, 1, 2)]);
    c.onCommit(1, 0, 2, a);
    const b = storage();
    b.append([entry(1, 1, 1), entry(2, 2, 3)]);
    expect(violationOf(() => c.onLeader(2, 3, b))).toBe('leader-completeness');
    const short = storage();
    short.append([entry(1, 1, 1)]);
    expect(violationOf(() => c.onLeader(3, 4, short))).toBe('leader-completeness');
    expect(violationOf(() => c.onLeader(1, 5, a))).toBeUndefined();
  });

  it('state machine safety: a different entry applied at the same index', () => {
    const c = new SafetyChecker();
    c.onApply(1, entry(1, 1, 1), 111);
    expect(violationOf(() => c.onApply(2, entry(1, 1, 1), 111))).toBeUndefined();
    expect(violationOf(() => c.onApply(3, entry(1, 1, 7), 112))).toBe('state-machine-safety');
  });

  it('proposals: acknowledged when their entry is applied, dropped when another one is', () => {
    const c = new SafetyChecker();
    const e1 = entry(1, 1, 1);
    c.addProposal({ id: 1, node: 1, index: 1, term: 1, key: 'n:p1:k0', status: 'pending' });
    c.addProposal({ id: 2, node: 2, index: 2, term: 1, key: 'n:p2:k0', status: 'pending' });
    c.onApply(1, e1, 5);
    c.onApply(1, entry(2, 2, 9), 6);
    expect(c.proposals.get(1)?.status).toBe('acked');
    expect(c.proposals.get(2)?.status).toBe('dropped');
  });
});

describe('checkDurableLogMatching', () => {
  it('fires when two durable logs share an (index, term) but differ before it', () => {
    const a = storage();
    const b = storage();
    a.append([entry(1, 1, 1), entry(2, 1, 2), entry(3, 2, 3)]);
    b.append([entry(1, 1, 1), entry(2, 1, 7), entry(3, 2, 3)]);
    const c = storage();
    c.append([entry(1, 1, 1), entry(2, 3, 8)]); // diverges after 1: fine
    for (const s of [a, b, c]) s.sync();
    expect(violationOf(() => checkDurableLogMatching([{ id: 1, storage: a }, { id: 3, storage: c }]))).toBeUndefined();
    expect(violationOf(() => checkDurableLogMatching([{ id: 1, storage: a }, { id: 2, storage: b }]))).toBe('log-matching');
  });

  it('only looks at durable entries', () => {
    const a = storage();
    const b = storage();
    a.append([entry(1, 1, 1)]);
    b.append([entry(1, 1, 9)]); // written, never synced: not on disk
    a.sync();
    expect(violationOf(() => checkDurableLogMatching([{ id: 1, storage: a }, { id: 2, storage: b }]))).toBeUndefined();
    b.sync();
    expect(violationOf(() => checkDurableLogMatching([{ id: 1, storage: a }, { id: 2, storage: b }]))).toBe('log-matching');
  });
});

describe('SimStorage crash model', () => {
  it('a crash keeps synced writes and a prefix of the unsynced batches', () => {
    const rng = seededRng(3);
    for (let trial = 0; trial < 50; trial++) {
      const s = storage();
      s.append([entry(1, 1, 1)]);
      s.setHardState({ term: 1, vote: 1, commit: 0 });
      s.endBatch();
      s.sync();
      s.append([entry(2, 1, 2)]);
      s.setHardState({ term: 1, vote: 1, commit: 1 });
      s.endBatch();
      s.append([entry(3, 1, 3)]);
      s.endBatch();
      s.crash(rng, false);
      const last = s.lastIndex();
      expect(last).toBeGreaterThanOrEqual(1);
      expect(last).toBeLessThanOrEqual(3);
      // Whole batches: entry 2 survives exactly when its hard state (commit 1) does.
      expect(s.initialState().hardState.commit).toBe(last >= 2 ? 1 : 0);
    }
  });
});
