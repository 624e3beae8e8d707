// The snapshot taker: this member's own state machine snapshots. One is due every snapshotEveryEntries applied
// entries, or when asked (saveSnapshot(), a follower that needs a snapshot no file matches, after installing
// one from the leader). The file is written off the loop (the state machine captures a consistent view and
// keeps applying); when it is done the loop compacts the WAL up to it, and only then are the callers answered
// and the file becomes the newest one, the one the snapshot sender streams to followers.
import type { Index } from '../raft/types.js';
import { assert, toError } from './assert.js';
import type { RoomContext } from './node-context.js';
import type { SnapshotFile, StateMachine } from './ports.js';
import { PendingRequest } from './request.js';
import type { DriverStats } from './stats.js';

// A snapshot asked for (saveSnapshot, or one a follower needs) may take this long to write: minutes for GiBs.
const SNAPSHOT_WAIT_MS = 10 * 60_000;

export interface SnapshotTakerDeps {
  readonly sm: Pick<StateMachine, 'appliedIndex' | 'createSnapshot'>;
  readonly snapDir: string; // where the files go
  readonly snapshotEveryEntries: number; // applied entries between two snapshots
  readonly snapshotsKept: number; // files kept in snapDir
  readonly stats: Pick<DriverStats, 'snapshotsTaken'>;
  /** A file is written (or failed): wake the loop to compact. */
  wakeLoop(): void;
}

/** A written file and the callers it answers once the WAL is compacted to it (completeSnapshot in node.ts). */
export interface TakenSnapshot {
  readonly file: SnapshotFile;
  readonly asked: readonly PendingRequest<string>[];
}

type Finished = TakenSnapshot | { readonly error: Error; readonly asked: readonly PendingRequest<string>[] };

export class SnapshotTaker {
  private asked: PendingRequest<string>[] = []; // callers awaiting the next snapshot (saveSnapshot(), or the node)
  private inFlight: { readonly asked: readonly PendingRequest<string>[] } | undefined; // a file being written
  private finished: Finished | undefined; // written or failed, awaiting the loop
  private latestFile: SnapshotFile | undefined; // newest local snapshot file (what the sender streams)
  private lastIndex: Index; // applied index of the last snapshot taken or installed

  constructor(
    private readonly ctx: RoomContext,
    private readonly deps: SnapshotTakerDeps,
  ) {
    this.lastIndex = deps.sm.appliedIndex;
  }

  /** The newest snapshot file here (undefined: none yet). */
  get latest(): SnapshotFile | undefined {
    return this.latestFile;
  }

  /** The newest file found in snapDir at start. */
  adopt(file: SnapshotFile | undefined): void {
    this.latestFile = file;
  }

  /** A file is being written. */
  get busy(): boolean {
    return this.inFlight !== undefined;
  }

  /** A file was written (or failed) and awaits takeFinished(). */
  get hasFinished(): boolean {
    return this.finished !== undefined;
  }

  /** A request for the next snapshot's file path (pass it to ask() on the loop). */
  request(what: string): PendingRequest<string> {
    return new PendingRequest<string>(this.ctx.clock, this.ctx.clock.now() + SNAPSHOT_WAIT_MS, what, () => undefined);
  }

  /** `request` is answered with the path of the next snapshot taken. */
  ask(request: PendingRequest<string>): void {
    this.asked.push(request);
  }

  /** The node itself needs a fresh snapshot (a failure is logged). */
  askInternal(why: string): void {
    const internal = this.request(`snapshot ${why}`);
    internal.promise.catch((err: unknown) => this.ctx.log.warn({ ...this.ctx.logFields(), err }, `snapshot ${why} failed`));
    this.asked.push(internal);
  }

  /** Starts writing a file if snapshotEveryEntries were applied since the last one, or one was asked for. */
  startIfDue(): void {
    if (this.inFlight !== undefined) return;
    const { sm } = this.deps;
    const due = sm.appliedIndex - this.lastIndex >= this.deps.snapshotEveryEntries;
    const asked = this.asked.filter((r) => !r.settled);
    this.asked = [];
    if (!due && asked.length === 0) return;
    const inFlight = { asked };
    this.inFlight = inFlight;
    this.lastIndex = sm.appliedIndex; // the next one is due snapshotEveryEntries after this one
    sm.createSnapshot(this.deps.snapDir, this.deps.snapshotsKept)
      .then(
        (file) => {
          this.finished = { file, asked: inFlight.asked };
        },
        (err: unknown) => {
          this.finished = { error: toError(err), asked: inFlight.asked };
        },
      )
      .finally(() => {
        this.inFlight = undefined;
        this.deps.wakeLoop();
      });
  }

  /** The loop's turn: the file written, for the loop to compact the WAL to; a failed one is answered here. */
  takeFinished(): TakenSnapshot | undefined {
    const done = this.finished;
    if (done === undefined) return undefined;
    this.finished = undefined;
    if ('error' in done) {
      this.ctx.log.error({ ...this.ctx.logFields(), err: done.error }, 'snapshot failed');
      for (const r of done.asked) r.reject(done.error);
      return undefined;
    }
    this.deps.stats.snapshotsTaken++;
    return done;
  }

  /** The WAL is compacted to `taken` (or already covered by it): it is the newest file, its callers get its path. */
  compacted(taken: TakenSnapshot): void {
    const file = taken.file;
    if (this.latestFile === undefined || file.metadata.index >= this.latestFile.metadata.index) this.latestFile = file;
    for (const r of taken.asked) r.resolve(file.path);
  }

  /** A snapshot from the leader was installed at `index`: the next one is due snapshotEveryEntries after it. */
  installed(index: Index): void {
    this.lastIndex = index;
  }

  /** Rejects every caller still waiting for a snapshot (the node stops or failed). */
  failAll(err: Error): void {
    for (const r of this.asked) r.reject(err);
    this.asked = [];
    for (const r of this.inFlight?.asked ?? []) r.reject(err);
    for (const r of this.finished?.asked ?? []) r.reject(err);
    this.finished = undefined;
  }

  assertInvariants(): void {
    const applied = this.deps.sm.appliedIndex;
    assert(this.lastIndex <= applied, `last snapshot at ${this.lastIndex}, beyond the applied index ${applied}`);
  }
}
