// Finds a file under the repository's proto/ folder from src/protocol/ (tests, tsx) or dist/src/protocol/ (the
// built CLI), so both loaders (proto.ts for raftkv's API, etcd-proto.ts for etcd's) read the same files.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The absolute path of proto/`relative` in the nearest folder above this module that has it. */
export function findProtoFile(relative: string): string {
  const here = dirname(fileURLToPath(import.meta.url));
  let dir = here;
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'proto', relative);
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new Error(`proto/${relative} not found above ${here}`);
}
