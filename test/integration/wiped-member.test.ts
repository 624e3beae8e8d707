// A member restarted on an emptied data directory without being removed and re-added (issue 4): the cluster
// refuses it, it exits 78 with a message saying what to do, the others keep serving; with the leader down too
// (only a follower knows it, through gossip) it is refused all the same; remove + add on an empty directory
// (the documented disk replacement) is accepted.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { KvClient } from '../../src/client/index.js';
import { waitForApplied } from '../../cluster/wait.js';
import { EXIT_STALE_MEMBER } from '../../src/server/serve.js';
import { startTestCluster, type TestCluster } from './helpers.js';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'raftkv.js');

let tc: TestCluster | undefined;
afterEach(async () => {
  await tc?.close();
  tc = undefined;
});

/** Runs `raftkv serve` for member `id` in the foreground until it exits; its status and output. */
function serveUntilExit(c: TestCluster['cluster'], id: number, state: 'new' | 'existing', timeoutMs = 30_000): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...c.serveArgs(id, state)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`member ${id} still running after ${timeoutMs} ms; output:\n${output.slice(-2000)}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe('a member restarted on an empty data directory', () => {
  it('is refused and exits 78, also when only a follower knows it; remove + add on an empty directory is accepted', async () => {
    tc = await startTestCluster({ nodes: 3, basePort: 22600 });
    const c = tc.cluster;
    for (let i = 0; i < 10; i++) await tc.client.put(`w/${i}`, `v${i}`);
    const leader = await tc.leader();
    const victim = c.ids().find((id) => id !== leader) ?? 0;
    const other = c.ids().find((id) => id !== leader && id !== victim) ?? 0;

    // 1. The victim is wiped and started again as if new: the leader refuses it.
    c.kill(victim);
    await c.waitExit(victim);
    c.wipe(victim);
    const first = await serveUntilExit(c, victim, 'new');
    expect(first.code, first.output.slice(-3000)).toBe(EXIT_STALE_MEMBER);
    expect(first.output).toMatch(/its data directory is not the one the cluster knows/);
    expect(first.output).toMatch(new RegExp(`raftkv member remove ${victim}`));
    await tc.client.put('w/after-first', 'ok'); // the other two go on

    // 2. Again with the leader down as well: the remaining follower learnt the victim's incarnation from the
    // leader's gossip (followers do not stream to each other otherwise) and refuses its vote requests.
    c.kill(leader);
    await c.waitExit(leader);
    c.wipe(victim);
    const second = await serveUntilExit(c, victim, 'new');
    expect(second.code, second.output.slice(-3000)).toBe(EXIT_STALE_MEMBER);
    const peers = JSON.parse(readFileSync(join(c.dataDir(other), 'peers.json'), 'utf8')) as { incarnations: Record<string, unknown> };
    expect(Object.keys(peers.incarnations)).toContain(String(victim));
    c.start(leader);
    await tc.leader({ exclude: [victim] });
    await tc.client.put('w/after-second', 'ok');

    // 3. The documented way: remove, add, start on an empty directory with state existing.
    await tc.client.memberRemove(victim);
    await tc.client.memberAdd({ id: victim, peerAddress: c.peerAddress(victim), clientAddress: c.clientAddress(victim) });
    c.wipe(victim);
    c.start(victim, { state: 'existing' });
    const mark = await tc.client.put('w/mark', 'x');
    await waitForApplied([c.clientAddress(victim)], mark.header.index, 30_000, tc.tls);
    const local = new KvClient(tc.dial([c.clientAddress(victim)]));
    const got = await local.range({ prefix: 'w/' }, { serializable: true });
    local.close();
    expect(got.kvs.length).toBe(13);
  });
});
