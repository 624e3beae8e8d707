// A second `raftkv serve` on a running member's data directory (issue 10, case 1): it used to truncate the
// live member's WAL segment before failing. Now it exits at once with one line naming the holder's pid, and
// the running member's files are untouched: after a restart of the whole cluster every acknowledged key is there.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { RAFTKV_BIN } from '../../cluster/serve-process.js';
import { startTestCluster } from './helpers.js';
import type { TestCluster } from './helpers.js';

let tc: TestCluster | undefined;
afterEach(async () => {
  await tc?.close();
  tc = undefined;
});

async function walDigest(dir: string): Promise<string> {
  const h = createHash('sha256');
  for (const name of (await readdir(dir)).sort()) h.update(name).update(await readFile(join(dir, name)));
  return h.digest('hex');
}

it('a second serve on a live data directory exits naming the holder, and the live member loses nothing', async () => {
  tc = await startTestCluster({ nodes: 3, basePort: 22800 });
  const { cluster, client } = tc;
  for (let i = 0; i < 50; i++) await client.put(`k${i}`, `v${i}`);
  const victim = 3;
  const holder = cluster.pid(victim);
  const wal = join(cluster.dataDir(victim), 'wal');
  const before = await walDigest(wal);
  const args = cluster.serveArgs(victim, 'new').map((a) => a.replace(/:(22[89]\d\d)$/, (_, p: string) => `:${Number(p) + 50}`));
  const second = spawnSync(process.execPath, [RAFTKV_BIN, ...args], { encoding: 'utf8', timeout: 20_000 });
  expect(second.status).toBe(1);
  expect(second.stderr).toBe(`raftkv: data directory ${cluster.dataDir(victim)} is in use by another raftkv process (pid ${holder}); stop it first, or give this member its own --data-dir\n`);
  expect(await walDigest(wal)).toBe(before);
  // The member goes on, and restarts from its own files.
  await cluster.stop(victim);
  cluster.start(victim);
  await tc.leader();
  for (let i = 0; i < 50; i++) expect(Buffer.from((await client.get(`k${i}`)).kv?.value ?? []).toString()).toBe(`v${i}`);
});
