// The snapshot sender: a leader streams its newest snapshot file to a follower when the core emits a 'snap'
// message for it (the follower's log starts after the leader's first index), off the loop, and reports the
// outcome back to the core (RawNode.reportSnapshot, through the loop's inbox). If no file matches the log's
// snapshot, the core is told the send failed and a fresh snapshot is taken for the next attempt.
import type { NodeId, SnapshotMessage } from '../raft/types.js';
import type { Transport } from '../transport/transport.js';
import { assert } from './assert.js';
import type { RoomContext } from './node-context.js';
import type { SnapshotFile } from './ports.js';
import type { DriverStats } from './stats.js';

export interface SnapshotSenderDeps {
  readonly transport: Pick<Transport, 'sendSnapshot'>;
  readonly stats: Pick<DriverStats, 'snapshotsSent'>;
  /** The newest local snapshot file (the snapshot taker's). */
  latest(): SnapshotFile | undefined;
  /** Asks the snapshot taker for a fresh file. */
  askSnapshot(why: string): void;
  /** The outcome of a send, for the core (queued for the loop). */
  report(peer: NodeId, ok: boolean): void;
  /** A send finished (the node may be idle now). */
  onIdle(): void;
}

export class SnapshotSender {
  private inflight = 0; // sendSnapshot() calls not yet reported back

  constructor(
    private readonly ctx: RoomContext,
    private readonly deps: SnapshotSenderDeps,
  ) {}

  /** Sends are in flight. */
  get busy(): boolean {
    return this.inflight > 0;
  }

  /** Streams the file of `m`'s snapshot to `m.to` (never rejects: the outcome goes to report()). */
  send(m: SnapshotMessage): void {
    const file = this.deps.latest();
    const fields = this.ctx.logFields();
    if (file === undefined || file.metadata.index !== m.snapshot.metadata.index) {
      this.ctx.log.warn(
        { ...fields, to: m.to, index: m.snapshot.metadata.index, fileIndex: file?.metadata.index },
        'no snapshot file matches the log snapshot: taking a fresh one',
      );
      this.deps.askSnapshot('for a follower');
      this.deps.report(m.to, false);
      return;
    }
    this.inflight++;
    this.ctx.log.info({ ...fields, to: m.to, index: file.metadata.index, path: file.path }, 'sending snapshot');
    this.deps.transport.sendSnapshot(m, file.path).then(
      () => {
        this.deps.stats.snapshotsSent++;
        this.ctx.log.info({ ...this.ctx.logFields(), to: m.to, index: file.metadata.index }, 'snapshot sent');
        this.finish(m.to, true);
      },
      (err: unknown) => {
        this.ctx.log.warn({ ...this.ctx.logFields(), to: m.to, err }, 'snapshot send failed');
        this.finish(m.to, false);
      },
    );
  }

  assertInvariants(): void {
    assert(this.inflight >= 0, `${this.inflight} snapshot sends in flight`);
  }

  private finish(peer: NodeId, ok: boolean): void {
    this.inflight--;
    this.deps.report(peer, ok);
    this.deps.onIdle();
  }
}
