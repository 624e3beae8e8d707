// The snapshot installer: snapshots received from a leader. The transport verifies a file (SHA-256, chunked
// stream) into snap-inbox/; the loop sets it aside here, by index, and steps the 'snap' message into the core.
// Only if the core accepts it (it appears in Ready.snapshot) is the state machine restored from it, then the
// snapshot recorded in the WAL (the loop's half: a crash between the two is repaired by recover()). Files the
// core will not install (stale, replaced, covered) are removed; snap-inbox/ is emptied at start.
import { basename, join } from 'node:path';
import type { Index, Snapshot } from '../raft/types.js';
import { assert } from './assert.js';
import type { RoomContext } from './node-context.js';
import type { NodeFiles, StateMachine } from './ports.js';

export class SnapshotInstaller {
  private readonly received = new Map<Index, string>(); // verified files from a leader, by snapshot index
  private restoringNow: Promise<void> | undefined; // set while the state machine restores a received snapshot

  constructor(
    private readonly ctx: RoomContext,
    private readonly sm: Pick<StateMachine, 'appliedIndex' | 'restoreSnapshot'>,
    private readonly files: NodeFiles,
    private readonly inboxDir: string, // snap-inbox/: where the transport writes received files
  ) {}

  /** Resolves when a restore in progress has ended (undefined: none is). Serializable reads wait for it. */
  get restoring(): Promise<void> | undefined {
    return this.restoringNow;
  }

  /** At start: files of an earlier process were never stepped into this core. */
  async cleanInbox(): Promise<void> {
    for (const name of await this.files.list(this.inboxDir)) await this.files.remove(join(this.inboxDir, basename(name)));
  }

  /** A verified file for the snapshot at `index`, about to be stepped into the core. */
  receive(index: Index, filePath: string): void {
    const previous = this.received.get(index);
    if (previous !== undefined && previous !== filePath) this.discard(previous);
    for (const [i, p] of this.received) {
      if (i <= this.sm.appliedIndex) {
        this.received.delete(i); // stale: the core will not install it
        this.discard(p);
      }
    }
    this.received.set(index, filePath);
  }

  /**
   * The core accepted `snap`: the state machine restores its file (state machine first: if we crash before the
   * log records the snapshot, recover() sees the state machine ahead of the log and records it then). A retry
   * after the WAL found the disk full finds the state machine restored already.
   */
  async restore(snap: Snapshot): Promise<void> {
    const index = snap.metadata.index;
    const path = this.received.get(index);
    assert(path !== undefined, `the core accepted snapshot ${index} but no received file is known`);
    this.ctx.log.info({ ...this.ctx.logFields(), index, snapshotTerm: snap.metadata.term, path }, 'installing snapshot');
    if (this.sm.appliedIndex === index) return;
    let done: () => void = () => undefined;
    this.restoringNow = new Promise<void>((resolve) => (done = resolve));
    try {
      const restored = await this.sm.restoreSnapshot(path);
      assert(restored.index === index, `snapshot file ${path} holds index ${restored.index}, expected ${index}`);
    } finally {
      this.restoringNow = undefined;
      done();
    }
  }

  /** The snapshot at `index` is installed (state machine and WAL): its file and every older one go. */
  installed(index: Index): void {
    const path = this.received.get(index);
    this.received.delete(index);
    for (const [i, p] of this.received) {
      if (i <= index) {
        this.received.delete(i);
        this.discard(p);
      }
    }
    if (path !== undefined) this.discard(path);
  }

  /** Removes a received file nobody will install (in the background; a failure is logged). */
  discard(path: string): void {
    void this.files.remove(path).catch((err: unknown) => this.ctx.log.warn({ err, path }, 'could not remove a file'));
  }

  assertInvariants(): void {
    // One file per index: a file removed for one index must not be another's.
    const paths = new Set(this.received.values());
    assert(paths.size === this.received.size, `${this.received.size} received snapshots share ${paths.size} files`);
  }
}
