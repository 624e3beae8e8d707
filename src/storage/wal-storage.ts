// The WAL-backed LogStorage: an in-memory view of the entries since the last snapshot (decoded Entry objects,
// as etcd keeps them), made durable by the segmented WAL in wal.ts (whose top documents the on-disk format).
//
// Bootstrap: a brand-new cluster member calls WalStorage.bootstrap(dir, confState): the WAL is created with a
// snapshot marker at index 0 / term 0 carrying the initial membership, the same state as the core's
// MemoryStorage.fromConfState(). A member joining an existing cluster calls open() on an empty directory
// (empty membership; the leader sends it a snapshot).
import type { ConfState, Entry, HardState, Index, LogStorage, Snapshot, SnapshotMetadata, Term } from '../raft/types.js';
import { entrySizeBytes } from '../raft/types.js';
import { RaftError } from '../raft/errors.js';
import { RaftKvError } from '../shared/errors.js';
import { Wal } from './wal.js';
import type { WalOptions } from './wal.js';

export type { WalOptions, WalLogger } from './wal.js';
export type { FsLike, FileHandleLike } from './fs-like.js';

function assert(cond: boolean, msg: string | (() => string)): asserts cond {
  if (!cond) throw new Error(`wal storage assertion failed: ${typeof msg === 'string' ? msg : msg()}`);
}

export interface WalStats {
  readonly segments: number; // segment files
  readonly bytes: number; // durable bytes in them
  readonly firstIndex: Index;
  readonly lastIndex: Index;
}

export class WalStorage implements LogStorage {
  private readonly wal: Wal;
  private readonly created: boolean; // the directory held no WAL when opened
  private hardState: HardState;
  private snap: Snapshot;
  private ents: Entry[]; // ents[i].index === snap.metadata.index + 1 + i (contiguous, after the snapshot)

  private constructor(wal: Wal, created: boolean, snapshot: SnapshotMetadata, hardState: HardState, ents: Entry[]) {
    this.wal = wal;
    this.created = created;
    this.snap = { metadata: snapshot };
    this.hardState = hardState;
    this.ents = ents;
  }

  /** Opens the WAL in `dir`: creates it if the directory holds none, recovers it otherwise. */
  static async open(dir: string, opts?: WalOptions): Promise<WalStorage> {
    const { wal, recovered } = await Wal.open(dir, opts);
    return new WalStorage(wal, recovered.isNew, recovered.snapshot, recovered.hardState, recovered.entries);
  }

  /** Creates the WAL of a brand-new cluster member. FAILED_PRECONDITION if `dir` already holds a WAL. */
  static async bootstrap(dir: string, confState: ConfState, opts?: WalOptions): Promise<WalStorage> {
    const s = await WalStorage.open(dir, { ...opts, initialConfState: confState });
    if (!s.isNew()) {
      await s.close();
      throw new RaftKvError('FAILED_PRECONDITION', `wal: ${dir} already holds a WAL; cannot bootstrap it again`);
    }
    return s;
  }

  /** True if the directory held no WAL when opened (it was created by this open). */
  isNew(): boolean {
    return this.created;
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: this.hardState, confState: this.snap.metadata.confState };
  }

  firstIndex(): Index {
    return this.snap.metadata.index + 1;
  }

  lastIndex(): Index {
    return this.snap.metadata.index + this.ents.length;
  }

  term(i: Index): Term {
    const snapIndex = this.snap.metadata.index;
    if (i < snapIndex) throw new RaftError('COMPACTED', `term(${i}): compacted (first index ${snapIndex + 1})`);
    if (i === snapIndex) return this.snap.metadata.term;
    const e = this.ents[i - snapIndex - 1];
    if (e === undefined) throw new RaftError('UNAVAILABLE', `term(${i}): beyond last index ${this.lastIndex()}`);
    return e.term;
  }

  entries(lo: Index, hi: Index, maxBytes: number): Entry[] {
    const snapIndex = this.snap.metadata.index;
    if (lo <= snapIndex) throw new RaftError('COMPACTED', `entries(${lo}): compacted (first index ${snapIndex + 1})`);
    assert(hi <= this.lastIndex() + 1, () => `entries(${lo}, ${hi}): beyond last index ${this.lastIndex()}`);
    const out: Entry[] = [];
    let size = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.ents[i - snapIndex - 1];
      assert(e !== undefined, () => `wal storage: hole at ${i}`);
      size += entrySizeBytes(e);
      if (out.length > 0 && size > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /**
   * Buffers the entries (durable after the next sync()) and updates the view: entries already compacted are
   * dropped, and a conflicting suffix (first index <= lastIndex) is truncated, with a truncate record so that
   * recovery reproduces it.
   */
  append(entries: readonly Entry[]): void {
    const first = entries[0];
    if (first === undefined) return;
    for (let i = 1; i < entries.length; i++) {
      assert(entries[i]?.index === first.index + i, 'wal storage: appended entries are not contiguous');
    }
    const firstKept = this.firstIndex();
    const last = first.index + entries.length - 1;
    if (last < firstKept) return; // all compacted
    const toAppend = first.index < firstKept ? entries.slice(firstKept - first.index) : entries;
    const start = toAppend[0];
    assert(start !== undefined, 'wal storage: nothing to append');
    const lastIndex = this.lastIndex();
    assert(start.index <= lastIndex + 1, () => `wal storage: gap, appending ${start.index} after ${lastIndex}`);
    if (start.index <= lastIndex) {
      this.wal.appendTruncate(start.index - 1);
      this.ents.length = start.index - 1 - this.snap.metadata.index;
    }
    for (const e of toAppend) {
      this.wal.appendEntry(e);
      this.ents.push(e);
    }
  }

  /** Buffers the hard state (durable after the next sync()). Unchanged hard state writes nothing. */
  setHardState(hs: HardState): void {
    const cur = this.hardState;
    if (cur.term === hs.term && cur.vote === hs.vote && cur.commit === hs.commit) return;
    this.wal.appendHardState(hs);
    this.hardState = hs;
  }

  /** Group commit: resolves when everything appended before the call is durable. DISK_FULL on ENOSPC. */
  sync(opts: { readonly blocking?: boolean } = {}): Promise<void> {
    return this.wal.sync(opts);
  }

  /** Follower install (§7): the log is reset to the snapshot; durable on return. */
  async applySnapshot(snap: Snapshot): Promise<void> {
    const cur = this.snap.metadata.index;
    if (snap.metadata.index <= cur && cur > 0) {
      throw new RaftError('SNAPSHOT_OUT_OF_DATE', `snapshot ${snap.metadata.index} <= ${cur}`);
    }
    this.wal.appendSnapshot('install', snap.metadata);
    this.snap = snap;
    this.ents = [];
    await this.wal.sync();
  }

  /**
   * The application took a snapshot at snapshot.metadata.index (<= lastIndex): writes the marker, drops the
   * entries up to it, and once the marker is durable deletes the segments wholly below it. Durable on return.
   */
  async compact(snapshot: Snapshot): Promise<void> {
    const m = snapshot.metadata;
    const cur = this.snap.metadata.index;
    if (m.index <= cur) throw new RaftError('SNAPSHOT_OUT_OF_DATE', `compact(${m.index}) <= snapshot ${cur}`);
    assert(m.index <= this.lastIndex(), () => `compact(${m.index}) beyond last index ${this.lastIndex()}`);
    const t = this.term(m.index);
    assert(t === m.term, () => `compact(${m.index}): snapshot term ${m.term}, entry term ${t}`);
    this.wal.appendSnapshot('compact', m);
    this.ents = this.ents.slice(m.index - cur);
    this.snap = snapshot;
    await this.wal.sync();
  }

  /** Flushes what is buffered and closes the WAL. */
  close(): Promise<void> {
    return this.wal.close();
  }

  stats(): WalStats {
    return { ...this.wal.stats(), firstIndex: this.firstIndex(), lastIndex: this.lastIndex() };
  }

  /** The segment file names, oldest first. */
  segmentFiles(): string[] {
    return this.wal.segmentFiles();
  }
}
