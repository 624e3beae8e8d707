// An FsLike over the real file system that can run out of space (ENOSPC, with a partial write first), fail
// fdatasync, hold fdatasync until released, and count what it was asked to do.
import { nodeFs } from '../../src/storage/fs-like.js';
import type { FileHandleLike, FsLike } from '../../src/storage/fs-like.js';

export function enospc(): Error {
  return Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28 });
}

export class FaultFs implements FsLike {
  spaceLeftBytes = Infinity; // a write past this writes what fits (a partial write), then fails with ENOSPC
  datasyncFailures = 0; // the next n datasync() calls fail with ENOSPC
  failOpenForWrite = false; // open(..., 'w') fails with ENOSPC (a new segment cannot be created)
  datasyncGate: Promise<void> | undefined; // when set, datasync waits for it
  datasyncs = 0; // datasync calls that succeeded
  blockingDatasyncs = 0; // of which on the calling thread (datasyncBlocking)
  writes = 0; // write calls

  async open(path: string, flags: string): Promise<FileHandleLike> {
    if (this.failOpenForWrite && flags.startsWith('w')) throw enospc();
    const h = await nodeFs.open(path, flags);
    return {
      write: async (buffer, offset, length, position) => {
        this.writes++;
        if (length > this.spaceLeftBytes) {
          const fits = this.spaceLeftBytes;
          this.spaceLeftBytes = 0;
          if (fits > 0) await h.write(buffer, offset, fits, position);
          throw enospc();
        }
        this.spaceLeftBytes -= length;
        return h.write(buffer, offset, length, position);
      },
      datasync: async () => {
        if (this.datasyncGate !== undefined) await this.datasyncGate;
        if (this.datasyncFailures > 0) {
          this.datasyncFailures--;
          throw enospc();
        }
        await h.datasync();
        this.datasyncs++;
      },
      datasyncBlocking: () => {
        if (this.datasyncFailures > 0) {
          this.datasyncFailures--;
          throw enospc();
        }
        h.datasyncBlocking?.();
        this.datasyncs++;
        this.blockingDatasyncs++;
      },
      sync: () => h.sync(),
      truncate: (len) => h.truncate(len),
      close: () => h.close(),
    };
  }

  readFile(path: string): Promise<Uint8Array> {
    return nodeFs.readFile(path);
  }
  readdir(path: string): Promise<string[]> {
    return nodeFs.readdir(path);
  }
  mkdir(path: string): Promise<void> {
    return nodeFs.mkdir(path);
  }
  rename(from: string, to: string): Promise<void> {
    return nodeFs.rename(from, to);
  }
  unlink(path: string): Promise<void> {
    return nodeFs.unlink(path);
  }
}
