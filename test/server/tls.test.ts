// TLS on a member's ports (src/server/tls-listener.ts) with etcd's --client-cert-auth, in-process over loopback:
// a client with a certificate from the cluster CA is served; without one, with one from another CA, with an
// expired one, or in plaintext it is refused, and the member's log says why; a rotated certificate is served to
// new connections without a restart; the serve flags refuse missing files and a key that does not match.
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConnection } from 'node:net';
import { connect } from 'node:tls';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, Metadata, status as GrpcStatus } from '@grpc/grpc-js';
import type { ServiceError } from '@grpc/grpc-js';
import { clientCredentials, KvClient } from '../../src/client/index.js';
import { PEER_METHODS } from '../../src/protocol/proto.js';
import type { DialTlsConfig } from '../../src/client/index.js';
import { runServer } from '../../src/server/serve.js';
import type { RunningServer } from '../../src/server/serve.js';
import { parseServeArgs } from '../../src/cli/serve-config.js';
import { issueCertificate, makeCa, makeClusterCertificates, requireOpenssl } from '../../cluster/tls-certs.js';
import type { ClusterCertificates, CertPair } from '../../cluster/tls-certs.js';
import { FakeCluster, FakeNode, testConfig } from './fake-node.js';
import { waitFor } from './helpers.js';
import { describeWithSystem } from '../system-deps.js';

const CLIENT = '127.0.0.1:27011';
const PEER = '127.0.0.1:27012';

let dir = '';
let certs: ClusterCertificates;
let foreign: CertPair; // a client certificate from another CA
let expired: CertPair; // from the cluster CA, expired a day ago
let served: { cert: string; key: string }; // the files the member serves (rotated below)
let server: RunningServer;
const lines: Record<string, unknown>[] = [];

describeWithSystem(['openssl'], 'TLS on member ports', () => {
beforeAll(async () => {
  requireOpenssl();
  dir = mkdtempSync(join(tmpdir(), 'raftkv-tls-'));
  certs = makeClusterCertificates(join(dir, 'tls'), [1]);
  const otherCa = makeCa(join(dir, 'other-ca'), 'someone else');
  foreign = issueCertificate({ ca: otherCa, out: join(dir, 'foreign'), cn: 'client', usage: ['clientAuth'] });
  expired = issueCertificate({ ca: certs.ca, out: join(dir, 'expired'), cn: 'client', usage: ['clientAuth'], days: -1 });
  const member = certs.members.get(1);
  if (member === undefined) throw new Error('no member certificate');
  served = { cert: join(dir, 'served.crt'), key: join(dir, 'served.key') };
  copyFileSync(member.cert, served.cert);
  copyFileSync(member.key, served.key);
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const tlsPort = { certFile: served.cert, keyFile: served.key, trustedCaFile: certs.ca.cert, clientCertAuth: true };
  server = await runServer(testConfig(1, join(dir, 'n1'), { clientListen: CLIENT, peerListen: PEER }), {
    logger: pino({ level: 'info' }, sink),
    startNode: () => Promise.resolve(new FakeNode(1, new FakeCluster())),
    tls: { client: tlsPort, peer: tlsPort },
  });
}, 60_000);

afterAll(async () => {
  // A caller that connected and never started its handshake must not hold up the stop (Node would wait 120 s).
  const idle = createConnection({ host: '127.0.0.1', port: Number(CLIENT.split(':')[1]) });
  idle.on('error', () => undefined);
  await new Promise<void>((resolve) => idle.once('connect', () => resolve()));
  await server.stop();
  idle.destroy();
  rmSync(dir, { recursive: true, force: true });
});

const withClientCert = (pair: CertPair): DialTlsConfig => ({ caFile: certs.ca.cert, certFile: pair.cert, keyFile: pair.key });

async function statusWith(tls: DialTlsConfig | undefined): Promise<unknown> {
  const client = new KvClient({ endpoints: [CLIENT], timeoutMs: 1500, attemptTimeoutMs: 500, ...(tls !== undefined ? { tls } : {}) });
  try {
    return await client.status(CLIENT);
  } catch (err) {
    return err;
  } finally {
    client.close();
  }
}

/** Waits for the member's log to say `reason` about a refused connection. */
async function refusalLogged(reason: RegExp): Promise<void> {
  await waitFor(`a log line matching ${reason}`, () => lines.some((l) => typeof l['reason'] === 'string' && reason.test(l['reason']) && /refused TLS/.test(String(l['msg']))));
}

/** The common name of the certificate a new TLS connection to `address` is served. */
function servedCn(address: string): Promise<string> {
  const [host = '', port = ''] = address.split(':');
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port: Number(port), ca: [certs.ca.cert].map((p) => p), rejectUnauthorized: false, ALPNProtocols: ['h2'], cert: undefined }, () => {
      const cn = socket.getPeerCertificate().subject.CN;
      socket.destroy();
      resolve(typeof cn === 'string' ? cn : '');
    });
    socket.on('error', reject);
  });
}

describe('TLS with --client-cert-auth', () => {
  it('serves a client with a certificate from the cluster CA', async () => {
    expect(await statusWith(withClientCert(certs.client))).toMatchObject({ id: 1 });
  });

  it('refuses a client without a certificate, and says so in the log', async () => {
    expect(await statusWith({ caFile: certs.ca.cert })).toMatchObject({ code: 'UNAVAILABLE' });
    await refusalLogged(/no client certificate/);
  });

  it('refuses a client certificate from another CA', async () => {
    expect(await statusWith(withClientCert(foreign))).toMatchObject({ code: 'UNAVAILABLE' });
    await refusalLogged(/not signed by the trusted CA/);
  });

  it('refuses an expired client certificate', async () => {
    expect(await statusWith(withClientCert(expired))).toMatchObject({ code: 'UNAVAILABLE' });
    await refusalLogged(/expired on/);
  });

  it('refuses plaintext', async () => {
    expect(await statusWith(undefined)).toMatchObject({ code: 'UNAVAILABLE' });
    await refusalLogged(/not TLS \(plaintext is refused/);
  });

  it('refuses TLS below 1.2', async () => {
    const [host = '', port = ''] = CLIENT.split(':');
    const failed = await new Promise<boolean>((resolve) => {
      const socket = connect({ host, port: Number(port), rejectUnauthorized: false, maxVersion: 'TLSv1.1', minVersion: 'TLSv1' }, () => {
        socket.destroy();
        resolve(false);
      });
      socket.on('error', () => resolve(true));
    });
    expect(failed).toBe(true);
  });

  it('picks up a rotated certificate without a restart', async () => {
    expect(await servedCn(CLIENT)).toBe('member-1');
    const rotated = issueCertificate({ ca: certs.ca, out: join(dir, 'rotated'), cn: 'member-1-rotated', ips: ['127.0.0.1'] });
    copyFileSync(rotated.key, served.key); // the key first: until the certificate follows, the pair does not load
    copyFileSync(rotated.cert, served.cert);
    const deadline = Date.now() + 10_000;
    let cn = '';
    while ((cn = await servedCn(CLIENT)) !== 'member-1-rotated' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(cn).toBe('member-1-rotated');
    expect(await servedCn(PEER)).toBe('member-1-rotated');
    expect(await statusWith(withClientCert(certs.client))).toMatchObject({ id: 1 }); // and it still serves
  });
});

describe('--peer-cert-allowed-cn', () => {
  it('serves a peer whose certificate carries the allowed common name and refuses another from the same CA', async () => {
    const member = certs.members.get(1) ?? { cert: '', key: '' };
    const peerTls = { certFile: member.cert, keyFile: member.key, trustedCaFile: certs.ca.cert, clientCertAuth: true, allowedCn: 'member-1' };
    const peerAddress = '127.0.0.1:27016';
    const other = await runServer(testConfig(1, join(dir, 'n2'), { clientListen: '127.0.0.1:27015', peerListen: peerAddress }), {
      logger: pino({ level: 'info' }, new Writable({ write: (chunk: Buffer, _enc, done) => { for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>); done(); } })),
      startNode: () => Promise.resolve(new FakeNode(1, new FakeCluster())),
      tls: { peer: peerTls },
    });
    try {
      const streamWith = (pair: CertPair): Promise<string> =>
        new Promise((resolve) => {
          const c = new Client(peerAddress, clientCredentials(withClientCert(pair)));
          const call = c.makeClientStreamRequest(PEER_METHODS.stream.path, (b: Buffer) => b, (b: Buffer) => b, new Metadata(), { deadline: Date.now() + 2000 }, (err: ServiceError | null) => {
            c.close();
            resolve(err === null ? 'OK' : `${err.code}: ${err.details}`);
          });
          call.on('error', () => undefined);
          call.end();
        });
      // member-1's certificate reaches the Peer service (an empty stream ends cleanly)
      expect(await streamWith(member)).toBe('OK');
      expect(await streamWith(certs.client)).toMatch(new RegExp(`^${GrpcStatus.UNAVAILABLE}:`));
      await refusalLogged(/common name "client" is not the allowed "member-1"/);
    } finally {
      await other.stop();
    }
  });
});

describe('serve TLS flags', () => {
  const base = ['--id', '1', '--cluster-id', 'c', '--data-dir', '/tmp/x', '--listen-peer', '127.0.0.1:27013', '--listen-client', '127.0.0.1:27014', '--initial-cluster', '1=127.0.0.1:27013/127.0.0.1:27014'];
  it('takes etcd flag names', () => {
    const m = certs.members.get(1) ?? { cert: '', key: '' };
    const { tls } = parseServeArgs([
      ...base,
      '--cert-file', m.cert, '--key-file', m.key, '--trusted-ca-file', certs.ca.cert, '--client-cert-auth',
      '--peer-cert-file', m.cert, '--peer-key-file', m.key, '--peer-trusted-ca-file', certs.ca.cert, '--peer-client-cert-auth', '--peer-cert-allowed-cn', 'member-1',
    ]);
    expect(tls).toEqual({
      client: { certFile: m.cert, keyFile: m.key, trustedCaFile: certs.ca.cert, clientCertAuth: true },
      peer: { certFile: m.cert, keyFile: m.key, trustedCaFile: certs.ca.cert, clientCertAuth: true, allowedCn: 'member-1' },
    });
  });
  it('accepts https:// URLs where TLS is on and refuses them where it is not', () => {
    const m = certs.members.get(1) ?? { cert: '', key: '' };
    const https = ['--id', '1', '--cluster-id', 'c', '--data-dir', '/tmp/x', '--listen-peer', 'https://127.0.0.1:27013', '--listen-client', '127.0.0.1:27014', '--initial-cluster', '1=https://127.0.0.1:27013/127.0.0.1:27014'];
    const { config } = parseServeArgs([...https, '--peer-cert-file', m.cert, '--peer-key-file', m.key]);
    expect(config.initialMembers).toEqual([{ id: 1, peerAddress: '127.0.0.1:27013', clientAddress: '127.0.0.1:27014' }]);
    expect(() => parseServeArgs(https)).toThrow(/--listen-peer: https:\/\/127\.0\.0\.1:27013 is https:\/\/, but the peer port has no TLS/);
  });
  const refusals: [string, () => string[], RegExp][] = [
    ['a missing certificate file', () => ['--cert-file', join(dir, 'nope.crt'), '--key-file', certs.client.key], /--cert-file .*nope\.crt: cannot read it \(no such file\)/],
    ['a key that does not match its certificate', () => ['--cert-file', certs.client.cert, '--key-file', foreign.key], /--key-file .*foreign\.key does not match the certificate --cert-file/],
    ['a file that is not PEM', () => ['--cert-file', join(dir, 'n1', 'node.json'), '--key-file', certs.client.key], /not a PEM file|cannot read it/],
    ['--client-cert-auth without a CA', () => ['--cert-file', certs.client.cert, '--key-file', certs.client.key, '--client-cert-auth'], /--client-cert-auth needs --trusted-ca-file/],
    ['a certificate without its key', () => ['--peer-cert-file', certs.client.cert], /--peer-cert-file and --peer-key-file go together/],
  ];
  for (const [name, flags, message] of refusals) {
    it(`refuses ${name}`, () => {
      expect(() => parseServeArgs([...base, ...flags()])).toThrow(message);
    });
  }
});
});
