// One conformance suite for every LogStorage (the core's MemoryStorage, the WAL-backed WalStorage): the
// behaviour the Raft core relies on, checked the same way for each.
import { describe, expect, it } from 'vitest';
import type { ConfState, Entry, HardState, Index, LogStorage, Snapshot, Term } from '../../src/raft/types.js';
import { EMPTY_HARD_STATE } from '../../src/raft/types.js';
import { entries, entry, plain, seededRng, testSeed } from './helpers.js';

export interface StorageUnderTest {
  readonly storage: LogStorage;
  append(es: readonly Entry[]): void;
  setHardState(hs: HardState): void;
  /** Makes everything appended durable (WAL: sync; memory: nothing to do). */
  persist(): Promise<void>;
  applySnapshot(snap: Snapshot): Promise<void>;
  /** The application snapshotted at `index` with membership `confState`: compact the log up to it. */
  compact(index: Index, confState: ConfState): Promise<void>;
  /** Durable storages: close and open again (state must survive); undefined when there is no disk. */
  readonly reopen: (() => Promise<StorageUnderTest>) | undefined;
  close(): Promise<void>;
}

export type StorageFactory = (confState: ConfState) => Promise<StorageUnderTest>;

const CONF: ConfState = { voters: [1, 2, 3], learners: [4] };

function errorCode(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (typeof err === 'object' && err !== null && 'code' in err) return String(err.code);
    return `uncoded: ${String(err)}`;
  }
  return 'no error';
}

async function asyncErrorCode(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (typeof err === 'object' && err !== null && 'code' in err) return String(err.code);
    return `uncoded: ${String(err)}`;
  }
  return 'no error';
}

/** The full observable state, for comparing two storages or one storage before and after a restart. */
function observe(s: LogStorage): object {
  const first = s.firstIndex();
  const last = s.lastIndex();
  return {
    initial: s.initialState(),
    snapshot: s.snapshot().metadata,
    first,
    last,
    dummyTerm: s.term(first - 1),
    entries: last >= first ? plain(s.entries(first, last + 1, Number.MAX_SAFE_INTEGER)) : [],
  };
}

export function describeLogStorageConformance(name: string, factory: StorageFactory): void {
  describe(`LogStorage conformance: ${name}`, () => {
    const withStorage = async (fn: (s: StorageUnderTest) => Promise<StorageUnderTest | void>): Promise<void> => {
      let s = await factory(CONF);
      try {
        s = (await fn(s)) ?? s;
      } finally {
        await s.close();
      }
    };

    /** For durable storages: reopen and check the state is identical; returns the (new) subject. */
    const roundTrip = async (s: StorageUnderTest): Promise<StorageUnderTest> => {
      if (s.reopen === undefined) return s;
      await s.persist();
      const before = observe(s.storage);
      const r = await s.reopen();
      expect(observe(r.storage)).toEqual(before);
      return r;
    };

    it('starts empty with the bootstrap membership', () =>
      withStorage(async (s) => {
        expect(s.storage.initialState()).toEqual({ hardState: EMPTY_HARD_STATE, confState: CONF });
        expect(s.storage.firstIndex()).toBe(1);
        expect(s.storage.lastIndex()).toBe(0);
        expect(s.storage.term(0)).toBe(0);
        expect(errorCode(() => s.storage.term(1))).toBe('UNAVAILABLE');
        expect(s.storage.snapshot().metadata).toEqual({ index: 0, term: 0, confState: CONF });
        return roundTrip(s);
      }));

    it('appends and reads entries back, honouring maxBytes but returning at least one', () =>
      withStorage(async (s) => {
        s.append(entries(1, 10, 1, 100));
        s.append([entry(11, 2, 0, 'conf-change')]);
        await s.persist();
        expect(s.storage.lastIndex()).toBe(11);
        expect(plain(s.storage.entries(3, 6, Number.MAX_SAFE_INTEGER))).toEqual(plain(entries(3, 5, 1, 100)));
        expect(s.storage.entries(3, 6, 0)).toHaveLength(1);
        expect(s.storage.entries(3, 11, 2 * (100 + 24))).toHaveLength(2);
        expect(s.storage.entries(3, 11, 2 * (100 + 24) - 1)).toHaveLength(1);
        expect(s.storage.term(11)).toBe(2);
        expect(s.storage.entries(11, 12, 1)[0]?.type).toBe('conf-change');
        expect(errorCode(() => s.storage.term(12))).toBe('UNAVAILABLE');
        return roundTrip(s);
      }));

    it('truncates a conflicting suffix (§5.3)', () =>
      withStorage(async (s) => {
        s.append(entries(1, 10, 1));
        await s.persist();
        s.append(entries(6, 8, 2));
        expect(s.storage.lastIndex()).toBe(8);
        expect(s.storage.term(5)).toBe(1);
        expect(s.storage.term(6)).toBe(2);
        expect(errorCode(() => s.storage.term(9))).toBe('UNAVAILABLE');
        s = await roundTrip(s);
        s.append(entries(9, 9, 3));
        s.append(entries(2, 3, 3)); // truncate deep, in a second record
        expect(s.storage.lastIndex()).toBe(3);
        expect(plain(s.storage.entries(1, 4, Number.MAX_SAFE_INTEGER))).toEqual(plain([entry(1, 1), ...entries(2, 3, 3)]));
        return roundTrip(s);
      }));

    it('refuses a gap', () =>
      withStorage(async (s) => {
        s.append(entries(1, 3, 1));
        expect(() => s.append(entries(5, 6, 1))).toThrow(/gap/);
        expect(s.storage.lastIndex()).toBe(3);
        return roundTrip(s);
      }));

    it('stores the hard state', () =>
      withStorage(async (s) => {
        s.append(entries(1, 4, 2));
        const hs: HardState = { term: 7, vote: 3, commit: 4 };
        s.setHardState(hs);
        expect(s.storage.initialState().hardState).toEqual(hs);
        return roundTrip(s);
      }));

    it('compacts: entries below the snapshot are gone, its term stays readable', () =>
      withStorage(async (s) => {
        s.append(entries(1, 10, 1));
        s.append(entries(11, 20, 2));
        await s.compact(12, { voters: [1, 2], learners: [] });
        expect(s.storage.firstIndex()).toBe(13);
        expect(s.storage.lastIndex()).toBe(20);
        expect(s.storage.term(12)).toBe(2);
        expect(errorCode(() => s.storage.term(11))).toBe('COMPACTED');
        expect(errorCode(() => s.storage.entries(12, 14, 100))).toBe('COMPACTED');
        expect(s.storage.snapshot().metadata).toEqual({ index: 12, term: 2, confState: { voters: [1, 2], learners: [] } });
        expect(s.storage.initialState().confState).toEqual({ voters: [1, 2], learners: [] });
        expect(await asyncErrorCode(s.compact(10, CONF))).toBe('SNAPSHOT_OUT_OF_DATE');
        s = await roundTrip(s);
        // An append overlapping the compacted prefix drops that part and truncates from the first kept index.
        s.append(entries(10, 15, 3));
        expect(s.storage.firstIndex()).toBe(13);
        expect(s.storage.lastIndex()).toBe(15);
        expect(s.storage.term(13)).toBe(3);
        s.append(entries(5, 12, 1)); // wholly compacted: ignored
        expect(s.storage.lastIndex()).toBe(15);
        return roundTrip(s);
      }));

    it('installs a snapshot: the log is reset to it', () =>
      withStorage(async (s) => {
        s.append(entries(1, 30, 1));
        await s.persist();
        await s.applySnapshot({ metadata: { index: 20, term: 4, confState: { voters: [1, 2, 3, 5], learners: [] } } });
        expect(s.storage.firstIndex()).toBe(21);
        expect(s.storage.lastIndex()).toBe(20);
        expect(s.storage.term(20)).toBe(4);
        expect(errorCode(() => s.storage.term(19))).toBe('COMPACTED');
        expect(errorCode(() => s.storage.term(21))).toBe('UNAVAILABLE');
        expect(s.storage.initialState().confState).toEqual({ voters: [1, 2, 3, 5], learners: [] });
        s = await roundTrip(s);
        expect(await asyncErrorCode(s.applySnapshot({ metadata: { index: 15, term: 4, confState: CONF } }))).toBe(
          'SNAPSHOT_OUT_OF_DATE',
        );
        s.append(entries(21, 25, 5));
        await s.applySnapshot({ metadata: { index: 100, term: 6, confState: CONF } }); // beyond the last index
        expect(s.storage.lastIndex()).toBe(100);
        s.append(entries(101, 102, 6));
        return roundTrip(s);
      }));

    it('matches a simple model under seeded random operations', async () => {
      const seed = testSeed();
      const rng = seededRng(seed);
      let s = await factory(CONF);
      // The model: snapshot (index, term), then the entries after it.
      let snapIndex = 0;
      let snapTerm = 0;
      let log: Entry[] = [];
      let term = 1;
      let hs: HardState = EMPTY_HARD_STATE;
      try {
        for (let step = 0; step < 400; step++) {
          const last = snapIndex + log.length;
          const op = rng.int(100);
          if (op < 55) {
            // append, sometimes overlapping (conflict) or reaching into the compacted prefix
            const from = Math.max(1, last + 1 - rng.int(6));
            const n = 1 + rng.int(5);
            if (from <= last && rng.int(2) === 0) term++;
            const batch = entries(from, from + n - 1, term, rng.int(64));
            s.append(batch);
            const kept = batch.filter((e) => e.index > snapIndex);
            if (kept.length > 0) log = log.slice(0, (kept[0]?.index ?? 0) - snapIndex - 1).concat(kept);
          } else if (op < 70) {
            hs = { term: term + rng.int(2), vote: rng.int(4), commit: Math.min(last, hs.commit + rng.int(5)) };
            s.setHardState(hs);
          } else if (op < 80 && last > snapIndex) {
            const at = snapIndex + 1 + rng.int(last - snapIndex);
            const t: Term = log[at - snapIndex - 1]?.term ?? -1;
            await s.compact(at, { voters: [1, 2, 3], learners: [at % 7] });
            log = log.slice(at - snapIndex);
            snapIndex = at;
            snapTerm = t;
          } else if (op < 83) {
            const at = snapIndex + 1 + rng.int(last - snapIndex + 10);
            term++;
            await s.applySnapshot({ metadata: { index: at, term, confState: { voters: [1, 2, 3], learners: [] } } });
            snapIndex = at;
            snapTerm = term;
            log = [];
          } else if (op < 95) {
            await s.persist();
          } else if (s.reopen !== undefined) {
            s = await roundTrip(s);
          }
          const where = `seed ${seed} step ${step}`;
          expect(s.storage.firstIndex(), where).toBe(snapIndex + 1);
          expect(s.storage.lastIndex(), where).toBe(snapIndex + log.length);
          expect(s.storage.term(snapIndex), where).toBe(snapTerm);
          expect(s.storage.initialState().hardState, where).toEqual(hs);
          if (log.length > 0) {
            expect(plain(s.storage.entries(snapIndex + 1, snapIndex + log.length + 1, Number.MAX_SAFE_INTEGER)), where).toEqual(
              plain(log),
            );
          }
        }
        s = await roundTrip(s);
      } finally {
        await s.close();
      }
    });
  });
}
