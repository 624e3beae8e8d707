// The in-memory WAL of the driver simulation, as a record stream and the log state it replays to. The records
// are those of src/storage/wal.ts (entry, hard state, truncate, snapshot marker: compact or install), so a crash
// that keeps a prefix of the stream (a torn tail) replays exactly as the real WAL's recovery would.
import type { Entry, HardState, Index, SnapshotMetadata, Term } from '../../../src/raft/types.js';
import { EMPTY_HARD_STATE } from '../../../src/raft/types.js';

export type WalRecord =
  | { readonly kind: 'entry'; readonly entry: Entry }
  | { readonly kind: 'hard-state'; readonly hardState: HardState }
  | { readonly kind: 'truncate'; readonly lastKept: Index } // the entries after lastKept are discarded (§5.3)
  | { readonly kind: 'snapshot'; readonly install: boolean; readonly metadata: SnapshotMetadata }; // compact or install

/** The log a record stream replays to: the snapshot it starts from, the hard state, the entries after it. */
export class WalImage {
  hardState: HardState = EMPTY_HARD_STATE;
  entries: Entry[] = []; // entries[k].index === snapshot.index + 1 + k

  constructor(public snapshot: SnapshotMetadata) {}

  clone(): WalImage {
    const c = new WalImage(this.snapshot);
    c.hardState = this.hardState;
    c.entries = this.entries.slice();
    return c;
  }

  firstIndex(): Index {
    return this.snapshot.index + 1;
  }

  lastIndex(): Index {
    return this.snapshot.index + this.entries.length;
  }

  /** Term at i (the snapshot's at snapshot.index), undefined outside [snapshot.index, lastIndex]. */
  termAt(i: Index): Term | undefined {
    if (i === this.snapshot.index) return this.snapshot.term;
    return this.entryAt(i)?.term;
  }

  entryAt(i: Index): Entry | undefined {
    if (i <= this.snapshot.index) return undefined;
    return this.entries[i - this.snapshot.index - 1];
  }

  /** Replays one record; a record the real WAL's recovery would call corruption is a simulation bug here. */
  apply(r: WalRecord): void {
    switch (r.kind) {
      case 'entry':
        if (r.entry.index !== this.lastIndex() + 1) throw new Error(`wal image: entry ${r.entry.index} after last index ${this.lastIndex()}`);
        this.entries.push(r.entry);
        return;
      case 'hard-state':
        this.hardState = r.hardState;
        return;
      case 'truncate':
        if (r.lastKept < this.snapshot.index || r.lastKept > this.lastIndex()) {
          throw new Error(`wal image: truncate to ${r.lastKept} outside [${this.snapshot.index}, ${this.lastIndex()}]`);
        }
        this.entries.length = r.lastKept - this.snapshot.index;
        return;
      case 'snapshot':
        if (r.install) {
          this.entries = [];
        } else {
          if (r.metadata.index > this.lastIndex()) throw new Error(`wal image: compact to ${r.metadata.index} beyond ${this.lastIndex()}`);
          this.entries = this.entries.slice(r.metadata.index - this.snapshot.index);
        }
        this.snapshot = r.metadata;
        return;
      default: {
        const never: never = r;
        throw new Error(`unknown wal record ${JSON.stringify(never)}`);
      }
    }
  }
}
