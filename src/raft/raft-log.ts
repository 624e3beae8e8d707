// The Raft log as the core sees it: stable storage plus the unstable tail, the commit and applied indexes.
import type { Entry, Index, LogStorage, Snapshot, Term } from './types.js';
import { entrySizeBytes } from './types.js';
import { RaftError, isRaftError } from './errors.js';
import { Unstable } from './unstable.js';
import { assert } from './util.js';

export class RaftLog {
  readonly storage: LogStorage;
  readonly unstable: Unstable;
  /** Highest index known committed. Invariant: applied <= committed <= lastIndex(). */
  committed: Index;
  /** Highest index handed to the application and acknowledged by advance(). */
  applied: Index;

  constructor(storage: LogStorage) {
    this.storage = storage;
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.unstable = new Unstable(last + 1);
    this.committed = first - 1;
    this.applied = first - 1;
  }

  firstIndex(): Index {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): Index {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  lastTerm(): Term {
    return this.term(this.lastIndex());
  }

  /** Term of entry i; throws RaftError COMPACTED below firstIndex()-1, UNAVAILABLE beyond lastIndex(). */
  term(i: Index): Term {
    const dummy = this.firstIndex() - 1;
    if (i < dummy) throw new RaftError('COMPACTED', `term(${i}): compacted below ${dummy}`);
    if (i > this.lastIndex()) throw new RaftError('UNAVAILABLE', `term(${i}): beyond last index ${this.lastIndex()}`);
    const t = this.unstable.maybeTerm(i);
    if (t !== undefined) return t;
    return this.storage.term(i);
  }

  /** Term of entry i, or undefined when it is compacted or beyond the log. */
  maybeTerm(i: Index): Term | undefined {
    // Bounds first: this is on the hot path (findConflict probes past the end) and errors are costly.
    if (i < this.firstIndex() - 1 || i > this.lastIndex()) return undefined;
    const t = this.unstable.maybeTerm(i);
    if (t !== undefined) return t;
    try {
      return this.storage.term(i);
    } catch (err) {
      if (isRaftError(err, 'COMPACTED') || isRaftError(err, 'UNAVAILABLE')) return undefined;
      throw err;
    }
  }

  matchTerm(i: Index, t: Term): boolean {
    return this.maybeTerm(i) === t;
  }

  /** §5.4.1: is a log ending at (lasti, term) at least as up-to-date as ours? */
  isUpToDate(lasti: Index, term: Term): boolean {
    const ourTerm = this.lastTerm();
    return term > ourTerm || (term === ourTerm && lasti >= this.lastIndex());
  }

  /**
   * Follower side of AppendEntries (§5.3): if our log holds (index, logTerm), appends `ents` (truncating a
   * conflicting suffix), advances commit to min(committed, last new index) and returns the last new index.
   */
  maybeAppend(index: Index, logTerm: Term, committed: Index, ents: readonly Entry[]): Index | undefined {
    if (!this.matchTerm(index, logTerm)) return undefined;
    const lastNew = index + ents.length;
    const ci = this.findConflict(ents);
    if (ci !== 0) {
      assert(ci > this.committed, () => `entry ${ci} conflicts with committed entry (committed ${this.committed})`);
      const first = ents[0];
      assert(first !== undefined, 'conflict without entries');
      this.append(ents.slice(ci - first.index));
    }
    this.commitTo(Math.min(committed, lastNew));
    return lastNew;
  }

  /** Appends to the unstable tail (truncating a conflicting suffix); returns the new last index. */
  append(ents: readonly Entry[]): Index {
    const first = ents[0];
    if (first === undefined) return this.lastIndex();
    assert(first.index - 1 >= this.committed, () => `append at ${first.index} would overwrite committed ${this.committed}`);
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  /** Index of the first entry of `ents` whose term differs from ours (or that we lack), 0 if none. */
  findConflict(ents: readonly Entry[]): Index {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * Fast back-off: the largest index <= `index` whose term is <= `term`, with that term. When the probe is
   * below our first index, returns (index, 0): the leader then falls back to its own search.
   */
  findConflictByTerm(index: Index, term: Term): { index: Index; term: Term } {
    for (let i = index; i >= 0; i--) {
      const t = this.maybeTerm(i);
      if (t === undefined) return { index: i, term: 0 };
      if (t <= term) return { index: i, term: t };
    }
    return { index: 0, term: 0 };
  }

  commitTo(toCommit: Index): void {
    if (toCommit <= this.committed) return; // never regresses
    assert(toCommit <= this.lastIndex(), () => `commit ${toCommit} beyond last index ${this.lastIndex()} (log lost?)`);
    this.committed = toCommit;
  }

  appliedTo(i: Index): void {
    if (i === 0) return;
    assert(i <= this.committed && i >= this.applied, () => `appliedTo(${i}) outside [${this.applied}, ${this.committed}]`);
    this.applied = i;
  }

  /** §5.4.2: commits maxIndex only if that entry is from `term` (the leader's current term). */
  maybeCommit(maxIndex: Index, term: Term, skipTermCheck: boolean): boolean {
    if (maxIndex > this.committed && (skipTermCheck || this.maybeTerm(maxIndex) === term)) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  /** Entries [lo, lastIndex], at most maxBytes (at least one). */
  entriesFrom(lo: Index, maxBytes: number): Entry[] {
    if (lo > this.lastIndex()) return [];
    return this.slice(lo, this.lastIndex() + 1, maxBytes);
  }

  /** Entries [lo, hi), at most maxBytes (at least one if any). Throws COMPACTED below firstIndex(). */
  slice(lo: Index, hi: Index, maxBytes: number): Entry[] {
    assert(lo <= hi, `slice(${lo}, ${hi}): lo > hi`);
    if (lo < this.firstIndex()) throw new RaftError('COMPACTED', `slice(${lo}): compacted below ${this.firstIndex()}`);
    assert(hi <= this.lastIndex() + 1, () => `slice(${lo}, ${hi}) beyond last index ${this.lastIndex()}`);
    if (lo === hi) return [];
    let out: Entry[] = [];
    const uOffset = this.unstable.offset;
    if (lo < uOffset) {
      out = this.storage.entries(lo, Math.min(hi, uOffset), maxBytes);
      if (out.length < Math.min(hi, uOffset) - lo) return out; // size limit reached in storage
    }
    if (hi > uOffset) {
      const tail = this.unstable.slice(Math.max(lo, uOffset), hi);
      out = out.length === 0 ? tail : out.concat(tail);
    }
    return limitSize(out, maxBytes);
  }

  hasPendingSnapshot(): boolean {
    return this.unstable.snapshot !== undefined;
  }

  /** Committed entries not yet applied (none while a snapshot waits to be installed). */
  nextCommittedEntries(maxBytes: number): Entry[] {
    if (this.hasPendingSnapshot()) return [];
    const lo = Math.max(this.applied + 1, this.firstIndex());
    const hi = this.committed + 1;
    if (lo >= hi) return [];
    return this.slice(lo, hi, maxBytes);
  }

  hasNextCommittedEntries(): boolean {
    if (this.hasPendingSnapshot()) return false;
    return this.committed > Math.max(this.applied, this.firstIndex() - 1);
  }

  /** The last index persisted to stable storage and still part of our log. */
  stableLastIndex(): Index {
    if (this.unstable.snapshot !== undefined) return 0;
    return this.unstable.offset - 1;
  }

  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  /** Installs a snapshot from the leader: the whole log is replaced by it. */
  restore(snap: Snapshot): void {
    this.committed = snap.metadata.index;
    this.unstable.restore(snap);
  }
}

function limitSize(ents: Entry[], maxBytes: number): Entry[] {
  let size = 0;
  for (let i = 0; i < ents.length; i++) {
    const e = ents[i];
    if (e === undefined) break;
    size += entrySizeBytes(e);
    if (i > 0 && size > maxBytes) return ents.slice(0, i);
  }
  return ents;
}
