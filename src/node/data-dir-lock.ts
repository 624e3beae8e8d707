// The data directory's exclusive lock: one process (one node) per directory.
//
// `<dataDir>/LOCK` holds the holder's pid and a newline (informational only). The lock itself is an
// open-file-description lock (Linux F_OFD_SETLK, through fs-native-extensions) on that file: the kernel drops
// it when the holder closes the file or dies, however it dies, so there are no stale locks to guess about.
// It is taken before anything else in the directory is read or written (a second `raftkv serve` on a live
// member's directory used to truncate its WAL before failing), and held until the node has closed its WAL
// and state machine. Two nodes in one process on one directory are refused too (each open is its own
// description). The lock is advisory: it keeps raftkv processes apart, not other programs.
import { mkdir, open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { RaftKvError } from '../shared/errors.js';

export const LOCK_FILE = 'LOCK';

interface FsNativeExtensions {
  tryLock(fd: number): boolean; // true: locked exclusively; false: another description holds it
  unlock(fd: number): void;
}
const fsx = createRequire(import.meta.url)('fs-native-extensions') as FsNativeExtensions;

export class DataDirLock {
  private constructor(
    readonly dataDir: string,
    private handle: FileHandle | undefined, // the locked file; undefined once released
  ) {}

  /** Takes the lock on `dataDir` (created if missing), or throws FAILED_PRECONDITION naming the holder. */
  static async acquire(dataDir: string): Promise<DataDirLock> {
    await mkdir(dataDir, { recursive: true });
    const path = join(dataDir, LOCK_FILE);
    // 'a+' neither truncates nor fails if the file exists: nothing is changed before the lock is ours.
    const fh = await open(path, 'a+');
    let locked: boolean;
    try {
      locked = fsx.tryLock(fh.fd);
    } catch (err) {
      await fh.close();
      throw new RaftKvError('FAILED_PRECONDITION', `cannot lock ${path}: ${(err as Error).message}`);
    }
    if (!locked) {
      const holder = (await fh.readFile('utf8')).trim();
      await fh.close();
      throw new RaftKvError(
        'FAILED_PRECONDITION',
        `data directory ${dataDir} is in use by another raftkv process (pid ${/^\d+$/.test(holder) ? holder : 'unknown'}); ` +
          `stop it first, or give this member its own --data-dir`,
      );
    }
    await fh.truncate(0);
    await fh.write(`${process.pid}\n`, 0);
    return new DataDirLock(dataDir, fh);
  }

  /** Releases the lock (idempotent). The file stays: removing it would race with a new holder. */
  async release(): Promise<void> {
    const fh = this.handle;
    if (fh === undefined) return;
    this.handle = undefined;
    fsx.unlock(fh.fd);
    await fh.close();
  }
}
