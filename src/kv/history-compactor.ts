// The background deletion of compacted history (etcd's scheduleCompaction): after a compact command at
// revision R, every key's history records at or below R go but the newest (and that one too if it is a
// tombstone below R), COMPACTION_BATCH_RECORDS at a time, each batch through the write-behind between two
// applies. When it is done the MVCC record's compactedOnDisk says so (in the same serial order), so a crash
// midway resumes it at open; whenCompacted() waits for it (etcd's `physical` compaction).
//
// It runs in an epoch: a restore or close stops it (stop()), and it touches nothing after its epoch ended.
import type { MvccState } from './history.js';
import { HISTORY_HI, HISTORY_LO, decodeHistoryRecord, encodeMvcc, parseHistoryKey } from './history.js';
import type { Db } from './level-store.js';
import { KEY_MVCC, keyString } from './schema.js';
import type { Serial } from './serial.js';
import type { KvLogger } from './types.js';
import type { WriteBehind } from './write-behind.js';
import type { BatchOp } from './write-buffer.js';

// Compaction deletes history in batches of at most this many records, each through the write buffer between two
// applies: a compaction of millions of revisions never holds the apply loop for long (etcd: 1,000 per batch too).
export const COMPACTION_BATCH_RECORDS = 1000;
const SCAN_READ_BYTES = 1024 * 1024; // iterator read-ahead of the history scan

/** The state machine's state the compaction reads and writes, in its serial order. */
export interface HistoryCompactorHost {
  readonly serial: Serial; // the apply order: each step runs between two applies
  db(): Db; // the live store (a restore swaps it, after stop())
  readonly writes: WriteBehind; // deletions and the MVCC record go through it
  mvcc(): MvccState; // as of appliedIndex; compactedOnDisk is set here, in the serial order
  check(): void; // throws once the state machine is closed or broken
  flushAll(): Promise<void>; // LevelDB then holds every applied batch
  readonly readsInFlight: Set<Promise<unknown>>; // a restore or close waits for the history reads counted here
  readonly logger: KvLogger | undefined;
  /** Tests only: a throw at 'compaction-batch' simulates a crash between two deletion batches. */
  readonly failpoint: ((point: 'compaction-batch') => void) | undefined;
}

export class HistoryCompactor {
  private running: Promise<void> | undefined; // the deletion, while it runs
  private epoch = 0; // bumped by stop(): a running deletion stops at its next step
  private readonly waiters: { revision: number; resolve: () => void }[] = []; // whenCompacted() calls

  constructor(private readonly host: HistoryCompactorHost) {}

  /** After open, a restore or a full disk: a compaction the MVCC record shows unfinished goes on. */
  resume(): void {
    const mvcc = this.host.mvcc();
    if (mvcc.compactedOnDisk < mvcc.compacted) this.start();
  }

  /** Stops a running deletion at its next step (the live store is about to be swapped or closed). */
  stop(): void {
    this.epoch++;
  }

  /** After stop() and a swapped store: the stopped run no longer counts; resume() what the new store shows. */
  restart(): void {
    this.running = undefined;
    this.resume();
  }

  /** Resolves once every record the compaction at `revision` removes is gone from LevelDB. */
  whenCompacted(revision: number): Promise<void> {
    if (this.host.mvcc().compactedOnDisk >= revision) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ revision, resolve }));
  }

  /** Starts the background deletion of compacted history unless it runs (it then goes on to the newest revision). */
  start(): void {
    if (this.running !== undefined) return;
    const epoch = this.epoch;
    const run = this.compactLoop(epoch)
      .catch((err: unknown) => {
        // Stopped by a restore or close (nothing lost: the MVCC record says where to resume), or by a full disk
        // (retryFlush() starts it again), or a LevelDB failure that breaks the state machine anyway.
        if (epoch === this.epoch) this.host.logger?.warn({ err: (err as Error).message }, 'kv: compaction stopped; it resumes at the next open');
      })
      .finally(() => {
        if (this.running === run) this.running = undefined;
      });
    this.running = run;
  }

  private async compactLoop(epoch: number): Promise<void> {
    while (epoch === this.epoch && this.host.mvcc().compactedOnDisk < this.host.mvcc().compacted) {
      const target = this.host.mvcc().compacted;
      await this.deleteCompacted(target, epoch);
      const landed = await this.host.serial.run(async () => {
        if (epoch !== this.epoch) return false;
        this.host.check();
        this.host.mvcc().compactedOnDisk = target; // no batch is being applied: the next one copies it
        this.host.writes.add([{ type: 'put', key: KEY_MVCC, value: encodeMvcc(this.host.mvcc()) }]);
        await this.host.flushAll();
        return true;
      });
      if (!landed) return;
      this.host.logger?.info({ revision: target }, 'kv: compacted history deleted');
      for (let i = this.waiters.length - 1; i >= 0; i--) {
        const w = this.waiters[i];
        if (w !== undefined && w.revision <= target) {
          this.waiters.splice(i, 1);
          w.resolve();
        }
      }
    }
  }

  /**
   * Deletes, per key, every history record at or below `target` but the newest, and that one too if it is a
   * tombstone. Reads a LevelDB view taken after every batch up to the compact entry landed (so it holds every
   * such record; later writes are all above `target`); each COMPACTION_BATCH_RECORDS records' deletions go
   * through the write buffer between two applies. Idempotent: a crash midway resumes from the start.
   */
  private async deleteCompacted(target: number, epoch: number): Promise<void> {
    const it = await this.host.serial.run(async () => {
      this.host.check();
      await this.host.flushAll();
      return this.host.db().iterator({ gte: HISTORY_LO, lt: HISTORY_HI, highWaterMarkBytes: SCAN_READ_BYTES });
    });
    let group: string | undefined; // the user key whose records are being read
    // Its newest record at or below target so far. A tombstone at exactly target stays: a watcher may start at
    // the compaction revision (etcd's rule) and must see that delete; the next compaction removes it.
    let candidate: { key: Uint8Array; tombstone: boolean; main: number } | undefined;
    const staleTombstone = (): boolean => candidate?.tombstone === true && candidate.main < target;
    try {
      for (;;) {
        if (epoch !== this.epoch) return;
        const read = it.nextv(COMPACTION_BATCH_RECORDS);
        this.host.readsInFlight.add(read);
        let chunk: [Uint8Array, Uint8Array][];
        try {
          chunk = await read;
        } finally {
          this.host.readsInFlight.delete(read);
        }
        const dels: BatchOp[] = [];
        const drop = (key: Uint8Array): void => {
          dels.push({ type: 'del', key });
        };
        for (const [k, v] of chunk) {
          const h = parseHistoryKey(k);
          const ks = keyString(h.key);
          if (ks !== group) {
            if (candidate !== undefined && staleTombstone()) drop(candidate.key);
            group = ks;
            candidate = undefined;
          }
          if (h.main > target) {
            if (candidate !== undefined && staleTombstone()) drop(candidate.key);
            candidate = undefined;
            continue;
          }
          if (candidate !== undefined) drop(candidate.key);
          candidate = { key: Uint8Array.from(k), tombstone: decodeHistoryRecord(v).tombstone, main: h.main };
        }
        if (chunk.length === 0 && candidate !== undefined && staleTombstone()) drop(candidate.key);
        if (dels.length > 0) {
          this.host.failpoint?.('compaction-batch');
          await this.host.serial.run(() => {
            if (epoch !== this.epoch) return Promise.resolve();
            this.host.check();
            this.host.writes.add(dels);
            return Promise.resolve();
          });
        }
        if (chunk.length === 0) return;
      }
    } finally {
      await it.close();
    }
  }
}
