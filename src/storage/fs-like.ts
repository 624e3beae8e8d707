// The file operations the WAL needs, injectable so fault tests can fail them (ENOSPC, EIO) on purpose.
import { fdatasyncSync, writeSync } from 'node:fs';
import * as fsp from 'node:fs/promises';

/** Writes up to this size go to the page cache synchronously (see nodeFs.open). */
const SYNC_WRITE_MAX_BYTES = 256 * 1024;

/** An open file. Writes are positional (pwrite): the WAL always says where the bytes go. */
export interface FileHandleLike {
  write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesWritten: number }>;
  datasync(): Promise<void>;
  /** fdatasync on the calling thread (blocks the event loop); optional, datasync() is used without it. */
  datasyncBlocking?(): void;
  sync(): Promise<void>;
  truncate(lengthBytes: number): Promise<void>;
  close(): Promise<void>;
}

export interface FsLike {
  /** flags as node:fs: 'r' (read, also used to fsync a directory), 'r+', 'w', 'wx'. */
  open(path: string, flags: string): Promise<FileHandleLike>;
  readFile(path: string): Promise<Uint8Array>;
  readdir(path: string): Promise<string[]>;
  mkdir(path: string): Promise<void>; // recursive; no error if it exists
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
}

/** The real file system (node:fs/promises). */
export const nodeFs: FsLike = {
  async open(path, flags) {
    const handle = await fsp.open(path, flags);
    return {
      // Small writes (a group commit's records) are copied into the page cache synchronously: that takes
      // microseconds, while a thread-pool round trip costs a wake-up of a pool thread and of the event loop,
      // right on the write path (write, then fdatasync). Large writes stay asynchronous.
      write: async (buffer, offset, length, position) =>
        length <= SYNC_WRITE_MAX_BYTES ? { bytesWritten: writeSync(handle.fd, buffer, offset, length, position) } : handle.write(buffer, offset, length, position),
      datasync: () => handle.datasync(),
      datasyncBlocking: () => fdatasyncSync(handle.fd),
      sync: () => handle.sync(),
      truncate: (lengthBytes) => handle.truncate(lengthBytes),
      close: () => handle.close(),
    };
  },
  readFile: (path) => fsp.readFile(path),
  readdir: (path) => fsp.readdir(path),
  async mkdir(path) {
    await fsp.mkdir(path, { recursive: true });
  },
  rename: (from, to) => fsp.rename(from, to),
  unlink: (path) => fsp.unlink(path),
};

/** The errno code of a Node system error, or undefined. */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code: unknown = err.code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}
