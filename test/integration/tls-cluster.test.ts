// A 3-member cluster of real processes with TLS and client-certificate authentication on every client and peer
// port (the certificates of `npm run cluster -- up --tls`, cluster/tls-certs.ts): it elects a leader, survives
// killing the leader, and the raftkv CLI, etcdctl (--cacert --cert --key) and the etcd3 npm package put and get
// over TLS. Its peer ports refuse a stream without a certificate from the cluster CA, and a forged Raft message
// at a higher term over such a stream changes nothing (same leader, same term).
import { execFile, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client, credentials, Metadata, status as GrpcStatus } from '@grpc/grpc-js';
import type { ChannelCredentials, ServiceError } from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { clientCredentials } from '../../src/client/index.js';
import type { DialTlsConfig } from '../../src/client/index.js';
import { PEER_METHODS } from '../../src/protocol/proto.js';
import type { WireEmpty, WirePeerBatch } from '../../src/protocol/proto.js';
import { encodeMessages } from '../../src/transport/grpc-codec.js';
import { RAFTKV_BIN } from '../../cluster/serve-process.js';
import { issueCertificate, makeCa } from '../../cluster/tls-certs.js';
import { describeWithSystem } from '../system-deps.js';
import { startTestCluster, type TestCluster } from './helpers.js';

const run = promisify(execFile);

describeWithSystem(['openssl', 'etcdctl'], '3-member cluster with TLS and client certificates on every port', () => {
  let tc: TestCluster;
  let tls: DialTlsConfig;
  beforeAll(async () => {
    tc = await startTestCluster({ nodes: 3, basePort: 27300, tls: true });
    const t = tc.cluster.dialTls();
    if (t === undefined) throw new Error('the cluster has no TLS');
    tls = t;
  }, 60_000);
  afterAll(async () => {
    await tc.close();
  });

  const tlsFlags = (): string[] => ['--cacert', tls.caFile ?? '', '--cert', tls.certFile ?? '', '--key', tls.keyFile ?? ''];
  const cli = async (...args: string[]): Promise<string> => (await run(process.execPath, [RAFTKV_BIN, '--endpoints', tc.cluster.endpoints().join(','), ...tlsFlags(), ...args])).stdout;
  const etcdctl = async (...args: string[]): Promise<string> =>
    (await run('etcdctl', ['--endpoints', tc.cluster.endpoints().join(','), ...tlsFlags(), ...args], { env: { ...process.env, ETCDCTL_API: '3' } })).stdout;

  async function leaderAndTerm(): Promise<{ leader: number; term: number }> {
    const leader = await tc.leader();
    return { leader, term: (await tc.client.status(tc.cluster.clientAddress(leader))).term };
  }

  it('the raftkv CLI puts and gets over TLS', async () => {
    expect(await cli('put', 'tls/cli', 'hello')).toMatch(/^OK/);
    expect((await cli('get', 'tls/cli')).trim().split('\n')).toEqual(['tls/cli', 'hello']);
    expect(await cli('status')).toMatch(/leader/);
  });

  it('the raftkv CLI without a client certificate is refused', async () => {
    const refused = await run(process.execPath, [RAFTKV_BIN, '--endpoints', tc.cluster.endpoints().join(','), '--cacert', tls.caFile ?? '', '--timeout-ms', '1500', 'get', 'tls/cli']).then(
      () => 'served',
      (err: { stderr?: string }) => err.stderr ?? '',
    );
    expect(refused).toMatch(/UNAVAILABLE|unavailable|No connection/i);
  });

  it('etcdctl 3.4 puts and gets with --cacert --cert --key', async () => {
    expect((await etcdctl('put', 'tls/etcdctl', 'v1')).trim()).toBe('OK');
    expect((await etcdctl('get', 'tls/etcdctl', '--print-value-only')).trim()).toBe('v1');
    const health = await run('etcdctl', ['--endpoints', tc.cluster.endpoints().join(','), ...tlsFlags(), 'endpoint', 'health'], { env: { ...process.env, ETCDCTL_API: '3' } });
    expect(health.stdout + health.stderr).toMatch(/is healthy/); // etcdctl 3.4 writes health to stderr
  });

  it('the etcd3 npm package puts and gets over TLS', async () => {
    const etcd = new Etcd3({
      hosts: tc.cluster.endpoints().map((e) => `https://${e}`),
      credentials: { rootCertificate: readFileSync(tls.caFile ?? ''), certChain: readFileSync(tls.certFile ?? ''), privateKey: readFileSync(tls.keyFile ?? '') },
    });
    try {
      await etcd.put('tls/etcd3').value('v2');
      expect(await etcd.get('tls/etcd3').string()).toBe('v2');
    } finally {
      etcd.close();
    }
  });

  it('leases and watches over TLS: a lease granted on a follower (forwarded to the leader over the peer TLS), the CLI watch and lease commands', async () => {
    const leader = await tc.leader();
    const follower = tc.cluster.ids().find((id) => id !== leader) ?? 0;
    const etcd = new Etcd3({
      hosts: [`https://${tc.cluster.clientAddress(follower)}`],
      credentials: { rootCertificate: readFileSync(tls.caFile ?? ''), certChain: readFileSync(tls.certFile ?? ''), privateKey: readFileSync(tls.keyFile ?? '') },
    });
    try {
      const lease = etcd.lease(30, { autoKeepAlive: false });
      await lease.put('tls/leased').value('v');
      const id = await lease.grant();
      expect((await cli('lease', 'timetolive', BigInt(id).toString(16), '--keys')).trim()).toMatch(/granted with TTL\(30s\).*attached keys\(\[tls\/leased\]\)/);
      await lease.keepaliveOnce(); // forwarded to the leader: its deadline moves
      await lease.revoke();
      expect(await etcd.get('tls/leased').string()).toBeNull();
    } finally {
      etcd.close();
    }
    const revision = (await tc.client.put('tls/watched', 'w')).header.revision;
    // `raftkv watch` runs until stopped: its first event's three lines, then SIGTERM.
    const watch = spawn(process.execPath, [RAFTKV_BIN, '--endpoints', tc.cluster.endpoints().join(','), ...tlsFlags(), 'watch', 'tls/watched', '--rev', String(revision)]);
    const lines: string[] = [];
    let stderr = '';
    watch.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<void>((resolve) => watch.on('exit', () => resolve()));
    for await (const line of createInterface({ input: watch.stdout })) {
      lines.push(line);
      if (lines.length === 3) break;
    }
    watch.kill('SIGTERM');
    await exited;
    expect(lines, stderr).toEqual(['PUT', 'tls/watched', 'w']);
  });

  /** A Peer.Stream to `address` with `creds`, carrying a forged heartbeat-resp at term + 100; its status. */
  function forge(address: string, creds: ChannelCredentials, leader: number, from: number, term: number): Promise<{ code: GrpcStatus; details: string }> {
    const client = new Client(address, creds);
    const m = PEER_METHODS.stream;
    return new Promise((resolve) => {
      const call = client.makeClientStreamRequest<WirePeerBatch, WireEmpty>(m.path, m.requestSerialize, m.responseDeserialize, new Metadata(), { deadline: Date.now() + 3000 }, (err: ServiceError | null) => {
        client.close();
        resolve(err === null ? { code: GrpcStatus.OK, details: '' } : { code: err.code, details: err.details });
      });
      call.on('error', () => undefined);
      const payload = Buffer.from(encodeMessages([{ type: 'heartbeat-resp', from, to: leader, term: term + 100, context: new Uint8Array(0) }]));
      call.write({ clusterId: 'local', from, to: leader, payload, incarnation: 'a'.repeat(32) });
      call.end();
    });
  }

  it('a peer port refuses a stream without a certificate from the cluster CA, and the forged message changes nothing', async () => {
    const before = await leaderAndTerm();
    const follower = tc.cluster.ids().find((id) => id !== before.leader) ?? 0;
    const dir = join(tc.cluster.options.dir, 'outsider');
    const otherCa = makeCa(join(tc.cluster.options.dir, 'outsider-ca'), 'outsider');
    const outsider = issueCertificate({ ca: otherCa, out: dir, cn: `member-${follower}`, usage: ['clientAuth'] });
    const attempts: [string, ChannelCredentials][] = [
      ['plaintext', credentials.createInsecure()],
      ['TLS without a client certificate', clientCredentials({ caFile: tls.caFile ?? '' })],
      ['TLS with a certificate from another CA', clientCredentials({ caFile: tls.caFile ?? '', certFile: outsider.cert, keyFile: outsider.key })],
    ];
    for (const [what, creds] of attempts) {
      const answer = await forge(tc.cluster.peerAddress(before.leader), creds, before.leader, follower, before.term);
      expect(answer.code, `${what}: ${answer.details}`).toBe(GrpcStatus.UNAVAILABLE);
    }
    await tc.client.put('tls/after-forgery', 'x');
    expect(await leaderAndTerm()).toEqual(before);
    const log = readFileSync(tc.cluster.logFile(before.leader), 'utf8');
    expect(log).toMatch(/no client certificate/);
    expect(log).toMatch(/not signed by the trusted CA/);
    expect(log).toMatch(/plaintext is refused/);
  });

  it('elects a new leader when the leader is killed, and the CLI works against it', async () => {
    const { leader } = await leaderAndTerm();
    tc.cluster.kill(leader);
    await tc.cluster.waitExit(leader);
    const next = await tc.leader({ exclude: [leader] });
    expect(next).not.toBe(leader);
    expect(await cli('put', 'tls/after-failover', 'yes')).toMatch(/^OK/);
    expect((await cli('get', 'tls/after-failover')).trim().split('\n')).toEqual(['tls/after-failover', 'yes']);
    tc.cluster.start(leader);
    await tc.leader();
  });
});
