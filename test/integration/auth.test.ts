// etcd's authentication and roles on a real 3-member cluster, driven by etcdctl 3.4, the raftkv CLI and the
// etcd3 npm package: users and roles made with etcdctl; a user with read on /app/ reads it and cannot write it
// nor read /other/; a user without root cannot remove, add, update or promote a member (etcd's Cluster service and
// raftkv's own Admin service) or take a snapshot; a revoked permission is refused on the next request at every
// member (a linearizable read, then a serializable one served from each member's own state); a wrong password
// and a forged token are refused with etcd's messages; etcd3's auth option and its user/role calls work. Then
// once more over TLS with
// client-certificate authentication, where a verified certificate's common name stands for the user.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { Client, credentials, Metadata, status as GrpcStatus } from '@grpc/grpc-js';
import type { ServiceError } from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { EtcdChannel, KvClient } from '../../src/client/index.js';
import type { DialTlsConfig } from '../../src/client/index.js';
import { etcdUnary } from '../../src/protocol/etcd-proto.js';
import { RAFTKV_BIN } from '../../cluster/serve-process.js';
import { issueCertificate } from '../../cluster/tls-certs.js';
import { describeWithSystem } from '../system-deps.js';
import { startTestCluster, type TestCluster } from './helpers.js';

const run = promisify(execFile);
const scratch = mkdtempSync(join(tmpdir(), 'raftkv-auth-it-')); // snapshots and certificates the tests make

/** stdout on success, "ERR <stderr>" on failure: the tests compare etcd's messages. */
async function outcome(p: Promise<{ stdout: string; stderr: string }>): Promise<string> {
  return p.then(
    (r) => r.stdout.trim(),
    (err: { stderr?: string; stdout?: string }) => `ERR ${(err.stderr ?? '').trim()}`,
  );
}

/** The last line of an error outcome: etcdctl's "Error: ..." after its retry warnings. */
function lastLine(s: string): string {
  return s.trim().split('\n').pop() ?? '';
}

function tools(tc: () => TestCluster, tls: () => DialTlsConfig | undefined) {
  const tlsFlags = (): string[] => {
    const t = tls();
    return t === undefined ? [] : ['--cacert', t.caFile ?? '', '--cert', t.certFile ?? '', '--key', t.keyFile ?? ''];
  };
  const etcdctl = (endpoints: string, ...args: string[]): Promise<string> =>
    outcome(run('etcdctl', ['--endpoints', endpoints, ...tlsFlags(), '--command-timeout', '5s', ...args], { env: { ...process.env, ETCDCTL_API: '3' } }));
  const all = (): string => tc().cluster.endpoints().join(',');
  const cli = (...args: string[]): Promise<string> => outcome(run(process.execPath, [RAFTKV_BIN, '--endpoints', all(), ...tlsFlags(), ...args]));
  return { etcdctl, all, cli };
}

describeWithSystem(['etcdctl'], 'authentication and roles on a 3-member cluster', () => {
  let tc: TestCluster;
  beforeAll(async () => {
    tc = await startTestCluster({ nodes: 3, basePort: 27500 });
  }, 60_000);
  afterAll(async () => {
    await tc?.close();
  });
  const { etcdctl, all, cli } = tools(
    () => tc,
    () => undefined,
  );
  const asRoot = (...args: string[]): Promise<string> => etcdctl(all(), '--user', 'root:rootpw', ...args);
  const asAlice = (...args: string[]): Promise<string> => etcdctl(all(), '--user', 'alice:alicepw', ...args);

  it('etcdctl sets up users and roles and turns authentication on', async () => {
    expect(await etcdctl(all(), 'user', 'add', 'root:rootpw')).toBe('User root created');
    expect(await etcdctl(all(), 'auth', 'enable')).toBe('Authentication Enabled');
    expect(await asRoot('role', 'add', 'app')).toBe('Role app created');
    expect(await asRoot('role', 'grant-permission', 'app', 'read', '/app/', '--prefix')).toBe('Role app updated');
    expect(await asRoot('user', 'add', 'alice:alicepw')).toBe('User alice created');
    expect(await asRoot('user', 'grant-role', 'alice', 'app')).toBe('Role app is granted to user alice');
    expect(await asRoot('role', 'get', 'app')).toBe('Role app\nKV Read:\n\t[/app/, /app0) (prefix /app/)\nKV Write:');
    expect(await asRoot('user', 'get', 'alice')).toBe('User: alice\nRoles: app');
    expect(await asRoot('user', 'list')).toBe('alice\nroot');
    expect(await asRoot('role', 'list')).toBe('app\nroot');
    expect(await asRoot('put', '/app/x', 'one')).toBe('OK');
    expect(await asRoot('put', '/other/y', 'two')).toBe('OK');
    // The raftkv CLI shows the same store, etcdctl's way.
    expect(await cli('--user', 'root:rootpw', 'role', 'get', 'app')).toBe('Role app\nKV Read:\n\t[/app/, /app0) (prefix /app/)\nKV Write:');
    expect(await cli('--user', 'root:rootpw', 'auth', 'status')).toMatch(/^Authentication Status: true\nAuthRevision: \d+$/);
  });

  it('a user with read on /app/ reads it, and cannot write it nor read /other/', async () => {
    expect(await asAlice('get', '/app/x')).toBe('/app/x\none');
    expect(lastLine(await asAlice('put', '/app/x', 'mine'))).toBe('Error: etcdserver: permission denied');
    expect(lastLine(await asAlice('get', '/other/y'))).toBe('Error: etcdserver: permission denied');
    // raftkv's own protocol checks the same.
    expect(await cli('--user', 'alice:alicepw', 'get', '/app/x')).toContain('one');
    expect(await cli('--user', 'alice:alicepw', 'put', '/app/x', 'mine')).toMatch(/^ERR .*permission denied/);
    expect(await cli('--user', 'alice:alicepw', 'get', '/other/y')).toMatch(/^ERR .*permission denied/);
    // Nobody at all: etcd's "user name is empty".
    expect(lastLine(await etcdctl(all(), 'get', '/app/x'))).toBe('Error: etcdserver: user name is empty');
    // A watch on a range it may not read is cancelled with etcd's reason (etcdctl 3.4 prints it, as against etcd).
    const watch = await etcdctl(all(), '--user', 'alice:alicepw', 'watch', '/other/y');
    expect(watch).toContain('watch was canceled (rpc error: code = PermissionDenied desc = etcdserver: permission denied)');
    expect(lastLine(watch)).toBe('Error: watch is canceled by the server');
  }, 30_000);

  it('leases and locks with --user: revoking a lease needs write on its keys', async () => {
    const granted = await cli('--user', 'root:rootpw', 'lease', 'grant', '60');
    const id = /^lease ([0-9a-f]{16}) granted with TTL\(60s\)$/.exec(granted)?.[1];
    expect(id, granted).toBeDefined();
    expect(await cli('--user', 'root:rootpw', 'put', '/app/leased', 'v', '--lease', id ?? '')).toMatch(/^OK/);
    expect(lastLine(await asAlice('lease', 'revoke', id ?? ''))).toBe('Error: failed to revoke lease (etcdserver: permission denied)');
    // Attaching a key to that lease needs write on its keys too (etcd's checkLeasePuts), even where carol may write.
    expect(await asRoot('role', 'add', 'writer')).toBe('Role writer created');
    expect(await asRoot('role', 'grant-permission', 'writer', 'readwrite', '/w/', '--prefix')).toBe('Role writer updated');
    expect(await asRoot('user', 'add', 'carol:carolpw')).toBe('User carol created');
    expect(await asRoot('user', 'grant-role', 'carol', 'writer')).toBe('Role writer is granted to user carol');
    const asCarol = (...args: string[]): Promise<string> => etcdctl(all(), '--user', 'carol:carolpw', ...args);
    expect(lastLine(await asCarol('put', '/w/k', 'v', '--lease', id ?? ''))).toBe('Error: etcdserver: permission denied');
    const carols = /^lease ([0-9a-f]{16}) granted/.exec(await asCarol('lease', 'grant', '60'))?.[1];
    expect(await asCarol('put', '/w/k', 'v', '--lease', carols ?? '')).toBe('OK');
    expect(await asCarol('lease', 'revoke', carols ?? '')).toMatch(/revoked/);
    expect(await asRoot('user', 'delete', 'carol')).toBe('User carol deleted');
    expect(await asRoot('role', 'delete', 'writer')).toBe('Role writer deleted');
    expect(await asRoot('get', '/app/leased')).toBe('/app/leased\nv'); // still there
    expect(await cli('--user', 'root:rootpw', 'lease', 'revoke', id ?? '')).toMatch(/revoked/);
    expect(await asRoot('get', '/app/leased')).toBe('');
    // A lock is a txn on the lock's prefix: root may, alice (read on /app/ only) may not.
    expect(await cli('--user', 'root:rootpw', 'lock', 'mylock', '--', 'true')).toBe('');
    expect(await cli('--user', 'alice:alicepw', '--timeout-ms', '3000', 'lock', 'mylock', '--', 'true')).toMatch(/^ERR .*permission denied/);
  }, 30_000);

  it('a user without the root role cannot change the membership nor take a snapshot', async () => {
    expect(lastLine(await asAlice('member', 'remove', '3'))).toBe('Error: etcdserver: permission denied');
    expect(lastLine(await asAlice('member', 'add', 'nine', '--peer-urls=http://127.0.0.1:27597', '--learner'))).toBe('Error: etcdserver: permission denied');
    expect(lastLine(await asAlice('member', 'update', '3', '--peer-urls=http://127.0.0.1:27596'))).toBe('Error: etcdserver: permission denied');
    expect(lastLine(await asAlice('member', 'promote', '3'))).toBe('Error: etcdserver: permission denied');
    expect(await cli('--user', 'alice:alicepw', 'member', 'add', '9', '127.0.0.1:27599', '127.0.0.1:27598')).toMatch(/^ERR .*permission denied/);
    const one = tc.cluster.clientAddress(1);
    // etcd 3.4 answers these with its auth store's own error, unmapped (seen against etcd 3.4.23).
    const hashAlice = await etcdctl(one, '--user', 'alice:alicepw', 'endpoint', 'hashkv');
    expect(hashAlice).toContain(`Failed to get the hash of endpoint ${one} (rpc error: code = Unknown desc = auth: permission denied)`);
    expect(lastLine(hashAlice)).toBe('Error: rpc error: code = Unknown desc = auth: permission denied');
    expect(lastLine(await etcdctl(one, 'endpoint', 'hashkv'))).toBe('Error: rpc error: code = Unknown desc = auth: user name is empty');
    expect(await etcdctl(one, '--user', 'root:rootpw', 'endpoint', 'hashkv')).toMatch(new RegExp(`^${one}, \\d+$`));
    expect(lastLine(await etcdctl(one, '--user', 'alice:alicepw', 'snapshot', 'save', join(scratch, 'alice.snap')))).toBe('Error: rpc error: code = Unknown desc = auth: permission denied');
    expect(lastLine(await etcdctl(one, '--user', 'alice:alicepw', 'defrag'))).toBe(`Failed to defragment etcd member[${one}] (rpc error: code = Unknown desc = auth: permission denied)`);
    // root can (the snapshot is raftkv's own format; etcdctl saves it).
    expect(await etcdctl(one, '--user', 'root:rootpw', 'snapshot', 'save', join(scratch, 'root.snap'))).toContain('Snapshot saved');
    expect((await tc.client.members()).members.length).toBe(3);
  }, 30_000);

  it('a wrong password and a forged token are refused with etcd messages', async () => {
    expect(lastLine(await etcdctl(all(), '--user', 'alice:wrong', 'get', '/app/x'))).toBe('Error: etcdserver: authentication failed, invalid user ID or password');
    expect(lastLine(await etcdctl(all(), '--user', 'mallory:x', 'get', '/app/x'))).toBe('Error: etcdserver: authentication failed, invalid user ID or password');
    const c = new Client(tc.cluster.clientAddress(2), credentials.createInsecure());
    try {
      const md = new Metadata();
      md.set('token', 'ForgedForgedForg.1');
      const err = await etcdUnary(c, 'KV', 'Range', { key: Buffer.from('/app/x') }, { metadata: md, timeoutMs: 5000 }).then(
        () => undefined,
        (e: ServiceError) => e,
      );
      expect(err?.code).toBe(GrpcStatus.UNAUTHENTICATED);
      expect(err?.details).toBe('etcdserver: invalid auth token');
    } finally {
      c.close();
    }
  });

  it('a token issued by one member is valid on every member', async () => {
    const issuer = new Client(tc.cluster.clientAddress(1), credentials.createInsecure());
    try {
      const { token } = await etcdUnary(issuer, 'Auth', 'Authenticate', { name: 'alice', password: 'alicepw' }, { timeoutMs: 5000 });
      expect(token).toMatch(/^[A-Za-z]{16}\.\d+$/);
      for (const id of tc.cluster.ids()) {
        const c = new Client(tc.cluster.clientAddress(id), credentials.createInsecure());
        try {
          const md = new Metadata();
          md.set('token', token);
          const res = await etcdUnary(c, 'KV', 'Range', { key: Buffer.from('/app/x'), serializable: true }, { metadata: md, timeoutMs: 5000 });
          expect(res.kvs.map((kv) => kv.value.toString())).toEqual(['one']);
        } finally {
          c.close();
        }
      }
    } finally {
      issuer.close();
    }
  });

  it('the etcd3 npm package authenticates, puts and gets, and manages users and roles', async () => {
    const root = new Etcd3({ hosts: tc.cluster.endpoints().map((e) => `http://${e}`), auth: { username: 'root', password: 'rootpw' } });
    try {
      await root.put('/app/etcd3').value('via etcd3');
      expect(await root.get('/app/etcd3').string()).toBe('via etcd3');
      const role = await root.role('reader').create();
      await role.grant({ permission: 'Read', range: root.range({ prefix: '/app/' }) });
      const bob = await root.user('bob').create('bobpw');
      await bob.addRole('reader');
      expect((await bob.roles()).map((r) => r.name)).toEqual(['reader']);
      expect((await root.getUsers()).map((u) => u.name).sort()).toEqual(['alice', 'bob', 'root']);
      expect((await role.permissions()).map((p) => p.permission)).toEqual(['Read']);
    } finally {
      root.close();
    }
    const bobClient = new Etcd3({ hosts: tc.cluster.endpoints().map((e) => `http://${e}`), auth: { username: 'bob', password: 'bobpw' } });
    try {
      expect(await bobClient.get('/app/etcd3').string()).toBe('via etcd3');
      await expect(bobClient.put('/app/etcd3').value('no')).rejects.toThrow(/permission denied/);
    } finally {
      bobClient.close();
    }
  }, 30_000);

  it('a revoked permission is refused on the next request at every member', async () => {
    expect(await asRoot('role', 'revoke-permission', 'app', '/app/', '--prefix')).toBe('Permission of range [/app/, /app0) is revoked from role app');
    for (const id of tc.cluster.ids()) {
      const one = tc.cluster.clientAddress(id);
      expect(lastLine(await etcdctl(one, '--user', 'alice:alicepw', 'get', '/app/x')), `member ${id}, linearizable`).toBe('Error: etcdserver: permission denied');
      expect(lastLine(await etcdctl(one, '--user', 'alice:alicepw', 'get', '/app/x', '--consistency=s')), `member ${id}, serializable`).toBe('Error: etcdserver: permission denied');
    }
  }, 30_000);

  it('etcd refusals on the auth store itself, with etcd messages', async () => {
    expect(lastLine(await asRoot('user', 'add', 'alice:again'))).toBe('Error: etcdserver: user name already exists');
    expect(lastLine(await asRoot('user', 'get', 'nobody'))).toBe('Error: etcdserver: user name not found');
    expect(lastLine(await asRoot('role', 'get', 'nothing'))).toBe('Error: etcdserver: role name not found');
    expect(lastLine(await asRoot('user', 'revoke-role', 'alice', 'nothing'))).toBe('Error: etcdserver: role is not granted to the user');
    expect(lastLine(await asRoot('role', 'revoke-permission', 'app', 'nokey'))).toBe('Error: etcdserver: permission is not granted to the role');
    expect(lastLine(await asRoot('user', 'delete', 'root'))).toBe('Error: etcdserver: invalid auth management');
    expect(lastLine(await asRoot('role', 'delete', 'root'))).toBe('Error: etcdserver: invalid auth management');
    expect(lastLine(await asAlice('user', 'add', 'eve:evepw'))).toBe('Error: etcdserver: permission denied');
    expect(await asRoot('auth', 'disable')).toBe('Authentication Disabled');
    expect(await etcdctl(all(), 'get', '/other/y')).toBe('/other/y\ntwo'); // open again
    // etcd's clients ignore "authentication is not enabled" and go on without a token (as against etcd 3.4.23).
    expect(await etcdctl(all(), '--user', 'alice:alicepw', 'get', '/app/x')).toBe('/app/x\none');
  }, 30_000);

  it('a long-lived client authenticates again when its token is refused (auth turned off and on ends every token)', async () => {
    expect(await etcdctl(all(), 'auth', 'enable')).toBe('Authentication Enabled');
    const user = { name: 'root', password: 'rootpw' };
    const kv = new KvClient({ endpoints: tc.cluster.endpoints(), user, timeoutMs: 10_000 });
    // The etcd-API channel of the coordination commands, with its own token and with the KvClient's.
    const own = new EtcdChannel({ endpoints: tc.cluster.endpoints(), user, timeoutMs: 10_000 });
    const shared = new EtcdChannel({ kv, timeoutMs: 10_000 });
    const etcdGet = async (ch: EtcdChannel): Promise<string> => Buffer.from((await ch.unary('KV', 'Range', { key: Buffer.from('/other/y') }, 'read')).kvs[0]?.value ?? []).toString();
    try {
      expect((await kv.get('/other/y')).kv?.value.toString()).toBe('two');
      expect(await etcdGet(own)).toBe('two');
      expect(await etcdGet(shared)).toBe('two');
      expect(await asRoot('auth', 'disable')).toBe('Authentication Disabled');
      expect(await etcdctl(all(), 'auth', 'enable')).toBe('Authentication Enabled');
      expect(await etcdGet(own)).toBe('two'); // its old token is gone: a new one
      expect(await etcdGet(shared)).toBe('two');
      expect((await kv.get('/other/y')).kv?.value.toString()).toBe('two');
      await kv.put('/other/y', 'three');
      expect(await asRoot('get', '/other/y')).toBe('/other/y\nthree');
    } finally {
      own.close();
      shared.close();
      kv.close();
    }
  }, 30_000);
});

describeWithSystem(['openssl', 'etcdctl'], 'authentication over TLS with client certificates', () => {
  let tc: TestCluster;
  let tls: DialTlsConfig;
  beforeAll(async () => {
    tc = await startTestCluster({ nodes: 3, basePort: 27700, tls: true });
    const t = tc.cluster.dialTls();
    if (t === undefined) throw new Error('the cluster has no TLS');
    tls = t;
  }, 60_000);
  afterAll(async () => {
    await tc?.close();
  });
  const { etcdctl, all, cli } = tools(
    () => tc,
    () => tls,
  );

  it('etcdctl, the raftkv CLI and etcd3 with auth over TLS; a certificate common name stands for its user', async () => {
    expect(await etcdctl(all(), 'user', 'add', 'root:rootpw')).toBe('User root created');
    expect(await etcdctl(all(), 'auth', 'enable')).toBe('Authentication Enabled');
    expect(await cli('--user', 'root:rootpw', 'role', 'add', 'app')).toBe('Role app created');
    expect(await cli('--user', 'root:rootpw', 'role', 'grant-permission', 'app', 'readwrite', '/app/', '--prefix')).toBe('Role app updated');
    expect(await cli('--user', 'root:rootpw', 'user', 'add', 'carol:carolpw')).toBe('User carol created');
    expect(await cli('--user', 'root:rootpw', 'user', 'grant-role', 'carol', 'app')).toBe('Role app is granted to user carol');
    expect(await cli('--user', 'carol:carolpw', 'put', '/app/tls', 'yes')).toMatch(/^OK/);
    expect(await etcdctl(all(), '--user', 'carol:carolpw', 'get', '/app/tls')).toBe('/app/tls\nyes');
    expect(lastLine(await etcdctl(all(), '--user', 'carol:carolpw', 'put', '/other/tls', 'no'))).toBe('Error: etcdserver: permission denied');
    // The cluster's client certificate has CN "client", a user that does not exist: denied, as etcd.
    expect(lastLine(await etcdctl(all(), 'get', '/app/tls'))).toBe('Error: etcdserver: permission denied');
    // A certificate with CN carol needs no password.
    const caDir = dirname(tls.caFile ?? '');
    const carol = issueCertificate({ ca: { cert: join(caDir, 'ca.crt'), key: join(caDir, 'ca.key') }, out: join(scratch, 'carol'), cn: 'carol', usage: ['clientAuth'] });
    const viaCert = await outcome(run('etcdctl', ['--endpoints', all(), '--cacert', tls.caFile ?? '', '--cert', carol.cert, '--key', carol.key, 'get', '/app/tls'], { env: { ...process.env, ETCDCTL_API: '3' } }));
    expect(viaCert).toBe('/app/tls\nyes');
    const etcd = new Etcd3({
      hosts: tc.cluster.endpoints().map((e) => `https://${e}`),
      credentials: { rootCertificate: readFile(tls.caFile), certChain: readFile(tls.certFile), privateKey: readFile(tls.keyFile) },
      auth: { username: 'carol', password: 'carolpw' },
    });
    try {
      await etcd.put('/app/etcd3').value('over tls');
      expect(await etcd.get('/app/etcd3').string()).toBe('over tls');
      await expect(etcd.get('/other/tls').string()).rejects.toThrow(/permission denied/);
    } finally {
      etcd.close();
    }
  }, 60_000);
});

function readFile(path: string | undefined): Buffer {
  if (path === undefined) throw new Error('no TLS file');
  return readFileSync(path);
}
