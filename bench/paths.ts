// Where the repository is, from wherever this file runs (bench/*.ts under vitest, dist/bench/*.js when built).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: unknown }).name === 'raftkv') return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find the raftkv repository above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}
