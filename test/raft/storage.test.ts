import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../../src/raft/memory-storage.js';
import { isRaftError } from '../../src/raft/errors.js';
import { seededRng } from '../../src/raft/rng.js';
import { describeEntry, describeMessage, describeReady } from '../../src/raft/describe.js';
import { Inflights } from '../../src/raft/inflights.js';
import { committedIndex, voteResult } from '../../src/raft/quorum.js';
import { entry } from './helpers.js';

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return isRaftError(e) ? e.code : `other: ${String(e)}`;
  }
  return undefined;
}

describe('MemoryStorage', () => {
  it('appends, truncates a conflicting suffix and refuses gaps', () => {
    const s = new MemoryStorage();
    s.append([entry(1, 1), entry(1, 2), entry(1, 3)]);
    expect([s.firstIndex(), s.lastIndex()]).toEqual([1, 3]);
    s.append([entry(2, 2)]);
    expect(s.lastIndex()).toBe(2);
    expect(s.term(2)).toBe(2);
    expect(() => s.append([entry(2, 5)])).toThrow(/gap/);
  });

  it('compacts into a dummy head: term() keeps the compacted index, entries() below it is COMPACTED', () => {
    const s = new MemoryStorage();
    s.append([entry(1, 1), entry(1, 2), entry(2, 3), entry(2, 4)]);
    s.createSnapshot(3, { voters: [1], learners: [] });
    s.compact(3);
    expect([s.firstIndex(), s.lastIndex(), s.term(3)]).toEqual([4, 4, 2]);
    expect(codeOf(() => s.entries(3, 5, Infinity))).toBe('COMPACTED');
    expect(codeOf(() => s.term(2))).toBe('COMPACTED');
    expect(codeOf(() => s.term(5))).toBe('UNAVAILABLE');
    expect(codeOf(() => s.compact(2))).toBe('COMPACTED');
    expect(s.snapshot().metadata).toEqual({ index: 3, term: 2, confState: { voters: [1], learners: [] } });
    expect(codeOf(() => s.createSnapshot(2, { voters: [1], learners: [] }))).toBe('SNAPSHOT_OUT_OF_DATE');
    s.append([entry(1, 2), entry(2, 3), entry(2, 4), entry(2, 5)]); // already-compacted prefix is dropped
    expect(s.lastIndex()).toBe(5);
  });

  it('entries() honours maxBytes but always returns at least one entry', () => {
    const s = new MemoryStorage();
    s.append([entry(1, 1, 'x'.repeat(100)), entry(1, 2, 'x'.repeat(100)), entry(1, 3, 'x'.repeat(100))]);
    expect(s.entries(1, 4, 0)).toHaveLength(1);
    expect(s.entries(1, 4, 250)).toHaveLength(2);
    expect(s.entries(1, 4, Infinity)).toHaveLength(3);
  });

  it('applySnapshot resets the log; an older snapshot is refused', () => {
    const s = MemoryStorage.fromConfState({ voters: [1, 2, 3], learners: [] });
    expect(s.initialState().confState.voters).toEqual([1, 2, 3]);
    s.append([entry(1, 1), entry(1, 2)]);
    s.applySnapshot({ metadata: { index: 10, term: 3, confState: { voters: [1, 2], learners: [4] } } });
    expect([s.firstIndex(), s.lastIndex(), s.term(10)]).toEqual([11, 10, 3]);
    expect(s.initialState().confState).toEqual({ voters: [1, 2], learners: [4] });
    expect(codeOf(() => s.applySnapshot({ metadata: { index: 5, term: 3, confState: { voters: [1], learners: [] } } }))).toBe('SNAPSHOT_OUT_OF_DATE');
  });
});

describe('building blocks', () => {
  it('seededRng is deterministic per seed, in range and roughly uniform', () => {
    const a = seededRng(42);
    const b = seededRng(42);
    const xs = Array.from({ length: 1000 }, () => a.int(10));
    expect(Array.from({ length: 1000 }, () => b.int(10))).toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 10)).toBe(true);
    for (let v = 0; v < 10; v++) expect(xs.filter((x) => x === v).length).toBeGreaterThan(60);
    expect(Array.from({ length: 20 }, () => seededRng(43).int(1000))).not.toEqual(xs.slice(0, 20));
  });

  it('quorum: commit index is the largest index a majority matched; votes won, lost or pending', () => {
    const voters = new Set([1, 2, 3, 4, 5]);
    const match = new Map([[1, 9], [2, 7], [3, 5], [4, 2], [5, 0]]);
    expect(committedIndex(voters, (id) => match.get(id) ?? 0)).toBe(5);
    expect(committedIndex(new Set([1, 2]), (id) => match.get(id) ?? 0)).toBe(7);
    expect(voteResult(voters, new Map([[1, true], [2, true]]))).toBe('pending');
    expect(voteResult(voters, new Map([[1, true], [2, true], [3, true]]))).toBe('won');
    expect(voteResult(voters, new Map([[1, false], [2, false], [3, false]]))).toBe('lost');
  });

  it('inflights: bounded window freed by acknowledgement', () => {
    const w = new Inflights(3);
    w.add(5, 10);
    w.add(7, 10);
    w.add(9, 10);
    expect(w.full()).toBe(true);
    w.freeLE(7);
    expect([w.count(), w.sizeBytes(), w.full()]).toEqual([1, 10, false]);
    w.freeFirst();
    expect(w.count()).toBe(0);
  });

  it('describe renders one line per message, entry and Ready', () => {
    expect(describeEntry(entry(2, 7, 'ab'))).toBe('2/7 n 6162');
    expect(describeMessage({ type: 'app-resp', from: 2, to: 1, term: 3, index: 5, reject: true, rejectHint: 4, logTerm: 2 })).toBe('2->1 app-resp t3 REJECT 5 hint=2/4');
    const line = describeReady({
      softState: { leader: 1, role: 'leader' },
      hardState: { term: 3, vote: 1, commit: 4 },
      snapshot: undefined,
      entries: [entry(3, 5)],
      committedEntries: [],
      messages: [],
      messagesAfterPersist: [],
      readStates: [],
      mustSync: true,
    });
    expect(line).toBe('ready{soft={leader lead=1} hard={t3 vote=1 commit=4} entries=[3/5 noop] sync}');
    expect(line.includes('\n')).toBe(false);
  });
});
