// The etcd target against a real single-member etcd (Debian's etcd-server), checked with etcdctl, an
// independent client: this is what proves our etcdserverpb field numbers right. Skipped where etcd is absent
// (failing instead under CI: ../system-deps.ts).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { EtcdTarget } from '../../bench/etcd-target.js';
import { ManagedProcess } from '../../bench/proc-group.js';
import { describeWithSystem } from '../system-deps.js';

describeWithSystem(['etcd', 'etcdctl'], 'EtcdTarget against a real etcd', () => {
  let dir = '';
  let etcd: ManagedProcess | undefined;
  let target: EtcdTarget | undefined;
  let endpoint = '';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'raftkv-etcd-target-'));
    // Fixed ports below the ephemeral range: a port found free and closed again can be taken meanwhile by any
    // other test's outgoing connection (CI runs test files in parallel), and etcd would then fail to listen.
    const clientPort = 30000 + (process.pid % 500) * 2;
    const peerPort = clientPort + 1;
    endpoint = `127.0.0.1:${clientPort}`;
    etcd = new ManagedProcess('etcd', 'etcd', [
      '--name', 'solo', '--data-dir', join(dir, 'data'),
      '--listen-client-urls', `http://${endpoint}`, '--advertise-client-urls', `http://${endpoint}`,
      '--listen-peer-urls', `http://127.0.0.1:${peerPort}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
      '--initial-cluster', `solo=http://127.0.0.1:${peerPort}`,
    ], join(dir, 'etcd.log'));
    etcd.start();
    target = new EtcdTarget({ endpoints: [endpoint], connsPerEndpoint: 2 });
    const deadline = Date.now() + 20_000;
    while ((await target.discoverLeader(500)) === undefined) {
      if (Date.now() > deadline) throw new Error(`etcd did not start (log ${dir}/etcd.log)`);
      await new Promise((r) => setTimeout(r, 100));
    }
    // discoverLeader needed one connection; the other may still sit in backoff after a refused first attempt.
    await target.connect(20_000);
  });

  afterAll(async () => {
    target?.close();
    await etcd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const etcdctl = (...args: string[]): string =>
    execFileSync('etcdctl', ['--endpoints', endpoint, ...args], { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' } });

  it('puts bytes that etcdctl reads back, and reads what etcdctl wrote', async () => {
    const t = target as EtcdTarget;
    const ack = await t.put(Buffer.from('bench-a'), Buffer.from('value-1'), 2000);
    expect(ack.term).toBeGreaterThan(0);
    expect(ack.memberId).toMatch(/^\d+$/);
    expect(etcdctl('get', 'bench-a', '--print-value-only').trim()).toBe('value-1');
    etcdctl('put', 'bench-b', 'x');
    etcdctl('put', 'bench-b', 'y');
    expect(await t.get(Buffer.from('bench-b'), false, 2000)).toEqual({ found: true, version: 2 });
    expect(await t.get(Buffer.from('bench-b'), true, 2000)).toEqual({ found: true, version: 2 });
    expect(await t.get(Buffer.from('bench-missing'), false, 2000)).toEqual({ found: false, version: 0 });
  });

  it('compare-and-swap on version: fails with the current version, then succeeds with it', async () => {
    const t = target as EtcdTarget;
    const key = Buffer.from('bench-cas');
    const first = await t.compareAndSwap(key, 0, Buffer.from('v1'), 2000);
    expect(first).toMatchObject({ succeeded: true, version: 1 });
    const stale = await t.compareAndSwap(key, 0, Buffer.from('nope'), 2000);
    expect(stale).toMatchObject({ succeeded: false, version: 1 });
    const second = await t.compareAndSwap(key, stale.version, Buffer.from('v2'), 2000);
    expect(second).toMatchObject({ succeeded: true, version: 2 });
    expect(etcdctl('get', 'bench-cas', '--print-value-only').trim()).toBe('v2');
  });

  it('maps gRPC failures to TargetError codes', async () => {
    const t = target as EtcdTarget;
    // etcd refuses an empty key with INVALID_ARGUMENT ("etcdserver: key is not provided").
    await expect(t.put(new Uint8Array(0), Buffer.from('x'), 2000)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});
