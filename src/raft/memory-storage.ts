// An in-memory LogStorage, for tests and the simulation. Modeled on a log with a dummy head entry:
// ents[0] stands for the snapshot (its index and term); real entries follow.
import type { ConfState, Entry, HardState, Index, LogStorage, Snapshot, Term } from './types.js';
import { EMPTY_HARD_STATE, EMPTY_SNAPSHOT, entrySizeBytes } from './types.js';
import { RaftError } from './errors.js';
import { assert } from './util.js';

export class MemoryStorage implements LogStorage {
  private hardState: HardState = EMPTY_HARD_STATE;
  private snap: Snapshot = EMPTY_SNAPSHOT;
  /** ents[0] is a dummy at the snapshot's index/term; ents[i].index === ents[0].index + i (contiguous). */
  private ents: Entry[] = [{ index: 0, term: 0, type: 'normal', data: new Uint8Array(0) }];

  /** Bootstrap storage for a brand-new cluster: a snapshot at index 0 / term 0 carrying the membership. */
  static fromConfState(cs: ConfState): MemoryStorage {
    const s = new MemoryStorage();
    s.snap = { metadata: { index: 0, term: 0, confState: { voters: [...cs.voters], learners: [...cs.learners] } } };
    return s;
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: this.hardState, confState: this.snap.metadata.confState };
  }

  private get offset(): Index {
    const head = this.ents[0];
    assert(head !== undefined, 'memory storage lost its dummy entry');
    return head.index;
  }

  firstIndex(): Index {
    return this.offset + 1;
  }

  lastIndex(): Index {
    return this.offset + this.ents.length - 1;
  }

  term(i: Index): Term {
    const offset = this.offset;
    if (i < offset) throw new RaftError('COMPACTED', `term(${i}): compacted (first index ${offset + 1})`);
    const e = this.ents[i - offset];
    if (e === undefined) throw new RaftError('UNAVAILABLE', `term(${i}): beyond last index ${this.lastIndex()}`);
    return e.term;
  }

  entries(lo: Index, hi: Index, maxBytes: number): Entry[] {
    const offset = this.offset;
    if (lo <= offset) throw new RaftError('COMPACTED', `entries(${lo}): compacted (first index ${offset + 1})`);
    assert(hi <= this.lastIndex() + 1, () => `entries(${lo}, ${hi}): beyond last index ${this.lastIndex()}`);
    const out: Entry[] = [];
    let size = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.ents[i - offset];
      assert(e !== undefined, `memory storage: hole at ${i}`);
      size += entrySizeBytes(e);
      if (out.length > 0 && size > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  setHardState(hs: HardState): void {
    this.hardState = hs;
  }

  /** Appends entries, dropping any already compacted and truncating a conflicting suffix. */
  append(entries: readonly Entry[]): void {
    const first = entries[0];
    if (first === undefined) return;
    for (let i = 1; i < entries.length; i++) {
      assert(entries[i]?.index === first.index + i, 'memory storage: appended entries are not contiguous');
    }
    const firstKept = this.firstIndex();
    const last = first.index + entries.length - 1;
    if (last < firstKept) return; // all compacted
    const toAppend = first.index < firstKept ? entries.slice(firstKept - first.index) : entries;
    const start = toAppend[0];
    assert(start !== undefined, 'memory storage: nothing to append');
    assert(start.index <= this.lastIndex() + 1, () => `memory storage: gap, appending ${start.index} after ${this.lastIndex()}`);
    this.ents.length = start.index - this.offset; // truncate a conflicting suffix (no-op when appending at the end)
    for (const e of toAppend) this.ents.push(e);
  }

  /** Resets the log to the snapshot. */
  applySnapshot(snap: Snapshot): void {
    if (snap.metadata.index <= this.snap.metadata.index && this.snap.metadata.index > 0) {
      throw new RaftError('SNAPSHOT_OUT_OF_DATE', `snapshot ${snap.metadata.index} <= ${this.snap.metadata.index}`);
    }
    this.snap = snap;
    this.ents = [{ index: snap.metadata.index, term: snap.metadata.term, type: 'normal', data: new Uint8Array(0) }];
  }

  /** Drops entries <= index (the term of `index` is kept in the dummy head). */
  compact(index: Index): void {
    const offset = this.offset;
    if (index <= offset) throw new RaftError('COMPACTED', `compact(${index}): already compacted to ${offset}`);
    assert(index <= this.lastIndex(), () => `compact(${index}) beyond last index ${this.lastIndex()}`);
    const head = this.ents[index - offset];
    assert(head !== undefined, 'memory storage: compact head missing');
    this.ents = [{ index: head.index, term: head.term, type: 'normal', data: new Uint8Array(0) }, ...this.ents.slice(index - offset + 1)];
  }

  /** Records a snapshot's metadata at `index` (the application's applied index) with its membership. */
  createSnapshot(index: Index, confState: ConfState): Snapshot {
    if (index <= this.snap.metadata.index) {
      throw new RaftError('SNAPSHOT_OUT_OF_DATE', `createSnapshot(${index}) <= ${this.snap.metadata.index}`);
    }
    assert(index <= this.lastIndex(), () => `createSnapshot(${index}) beyond last index ${this.lastIndex()}`);
    this.snap = {
      metadata: { index, term: this.term(index), confState: { voters: [...confState.voters], learners: [...confState.learners] } },
    };
    return this.snap;
  }

  /** Test helper: the stored hard state. */
  hardStateForTest(): HardState {
    return this.hardState;
  }
}
