// The files of one simulated member's disk that are not the WAL or the state machine's store: snapshot files
// (written by the state machine, sent and received by the transport) addressed by path strings, as the driver
// names them. Written whole and at once (the real ones are written to a tmp name, fsynced and renamed), so a file
// exists complete or not at all, and survives crashes. SimNodeFiles is the NodeFiles port of one incarnation.
import { basename, dirname } from 'node:path';
import type { NodeFiles } from '../../../src/node/ports.js';
import type { SnapshotMetadata } from '../../../src/raft/types.js';
import type { KvImage } from './kv-image.js';

/** A snapshot file's content: its metadata and the state machine image it restores. */
export interface SnapshotBlob {
  readonly metadata: SnapshotMetadata;
  readonly image: KvImage;
}

export class SimFileStore {
  private readonly files = new Map<string, SnapshotBlob>(); // path -> content

  get(path: string): SnapshotBlob | undefined {
    return this.files.get(path);
  }

  put(path: string, blob: SnapshotBlob): void {
    this.files.set(path, blob);
  }

  remove(path: string): void {
    this.files.delete(path);
  }

  /** The names of the files directly in `dir`, sorted. */
  list(dir: string): string[] {
    const out: string[] = [];
    for (const p of this.files.keys()) if (dirname(p) === dir) out.push(basename(p));
    return out.sort();
  }
}

/** NodeFiles over a SimFileStore; after the incarnation's crash its calls never settle. */
export class SimNodeFiles implements NodeFiles {
  constructor(
    private readonly store: SimFileStore,
    private readonly alive: () => boolean,
  ) {}

  mkdir(_dir: string): Promise<void> {
    return this.settled(undefined);
  }

  list(dir: string): Promise<string[]> {
    return this.settled(this.store.list(dir));
  }

  remove(path: string): Promise<void> {
    if (this.alive()) this.store.remove(path);
    return this.settled(undefined);
  }

  private settled<T>(value: T): Promise<T> {
    return this.alive() ? Promise.resolve(value) : new Promise<T>(() => undefined);
  }
}
