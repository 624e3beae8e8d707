// The LevelDB raftkv runs on keeps a deleted key deleted through compaction while snapshots are held (google/leveldb
// issue 320, raftkv's FOUND-BUGS 4). scripts/leveldb-check.mjs lays the files out by hand so the bug shows on
// every run; the stock prebuilt binary (PREBUILDS_ONLY) is checked too, so the check is known to be able to fail.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../cluster/serve-process.js';

function check(env: NodeJS.ProcessEnv): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [join(REPO_ROOT, 'scripts', 'leveldb-check.mjs')], { cwd: REPO_ROOT, env: { ...process.env, ...env }, encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('LevelDB compaction with snapshots held', () => {
  it('the classic-level build in use (scripts/build-leveldb.mjs) keeps a deleted key deleted', () => {
    const r = check({});
    expect(r.out).toContain('leveldb-check: ok');
    expect(r.status).toBe(0);
  });

  it.runIf(process.platform === 'linux' && process.arch === 'x64')('the stock prebuilt LevelDB 1.20 brings it back (what the fix is for)', () => {
    const r = check({ PREBUILDS_ONLY: '1' });
    expect(r.out).toContain('RESURRECTED');
    expect(r.status).toBe(1);
  });

  it.runIf(process.platform === 'linux' && process.arch === 'x64')('a state machine refuses to open on the stock binary', () => {
    const dir = mkdtempSync(join(tmpdir(), 'raftkv-stock-leveldb-'));
    const smUrl = new URL(`file://${join(REPO_ROOT, 'dist', 'src', 'kv', 'state-machine.js')}`).href;
    const script = `const { KvStateMachine } = await import(${JSON.stringify(smUrl)}); await KvStateMachine.open(${JSON.stringify(dir)});`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, PREBUILDS_ONLY: '1' }, encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/not the LevelDB raftkv builds with its fix for google\/leveldb issue 320/);
  });
});
