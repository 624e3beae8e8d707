// Durable small files, the way every layer writes them: to `<name>.tmp`, fsynced, renamed over `<name>`, then
// the directory fsynced (the rename itself survives a power loss only then). A crash leaves the old file or
// the new one, never a mix; a leftover `.tmp` is the writer's to remove.
import { open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';

/** Writes `data` to `dir/name` atomically and durably: tmp file, fsync, rename, directory fsync. */
export async function writeFileDurably(dir: string, name: string, data: string | Uint8Array): Promise<void> {
  const tmp = join(dir, `${name}.tmp`);
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, join(dir, name));
  await fsyncDir(dir);
}

/** Makes the directory's entries (creations, renames, removals) durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

/** The file's UTF-8 text, or undefined when it does not exist (other errors propagate). */
export async function readTextIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
