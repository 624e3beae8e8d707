// The part of the log not yet persisted: entries (and maybe a snapshot) handed out in Ready.entries /
// Ready.snapshot, dropped from here once the driver reports them durable in advance().
import type { Entry, Index, Snapshot, Term } from './types.js';
import { assert } from './util.js';

export class Unstable {
  /** A received snapshot not yet installed by the driver. */
  snapshot: Snapshot | undefined = undefined;
  /** Entries not yet persisted; entries[i].index === offset + i. */
  entries: Entry[] = [];
  /** Index of entries[0]; everything below it is in stable storage (or the snapshot). */
  offset: Index;

  constructor(offset: Index) {
    this.offset = offset;
  }

  maybeFirstIndex(): Index | undefined {
    return this.snapshot === undefined ? undefined : this.snapshot.metadata.index + 1;
  }

  maybeLastIndex(): Index | undefined {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    return this.snapshot?.metadata.index;
  }

  maybeTerm(i: Index): Term | undefined {
    if (i < this.offset) {
      if (this.snapshot !== undefined && this.snapshot.metadata.index === i) return this.snapshot.metadata.term;
      return undefined;
    }
    return this.entries[i - this.offset]?.term;
  }

  /** Entries up to (index, term) are durable. A mismatched term means they were replaced meanwhile: keep them. */
  stableTo(index: Index, term: Term): void {
    const t = this.maybeTerm(index);
    if (t === undefined || t !== term || index < this.offset) return;
    this.entries = this.entries.slice(index + 1 - this.offset);
    this.offset = index + 1;
  }

  stableSnapTo(index: Index): void {
    if (this.snapshot !== undefined && this.snapshot.metadata.index === index) this.snapshot = undefined;
  }

  restore(snap: Snapshot): void {
    this.offset = snap.metadata.index + 1;
    this.entries = [];
    this.snapshot = snap;
  }

  truncateAndAppend(ents: readonly Entry[]): void {
    const first = ents[0];
    if (first === undefined) return;
    const after = first.index;
    if (after === this.offset + this.entries.length) {
      this.entries.push(...ents);
    } else if (after <= this.offset) {
      // Replaces everything unstable (and, once persisted, a suffix of stable storage).
      this.offset = after;
      this.entries = [...ents];
    } else {
      this.entries = this.entries.slice(0, after - this.offset).concat(ents);
    }
  }

  /** Entries [lo, hi) from the unstable part; lo >= offset. */
  slice(lo: Index, hi: Index): Entry[] {
    assert(lo >= this.offset && hi <= this.offset + this.entries.length && lo <= hi, () => `unstable.slice(${lo}, ${hi}) out of [${this.offset}, ${this.offset + this.entries.length})`);
    return this.entries.slice(lo - this.offset, hi - this.offset);
  }
}
