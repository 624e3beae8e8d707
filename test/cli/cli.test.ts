// The raftkv command: argument parsing, error messages, output formats, in-process against fake members over
// real loopback gRPC; serve flag/config validation; and the bin's exit status and one-line stderr.
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main, statusTable } from '../../src/cli/main.js';
import type { CliIo } from '../../src/cli/main.js';
import { parseServeArgs } from '../../src/cli/serve-config.js';
import { RaftKvError } from '../../src/shared/errors.js';
import { runServer } from '../../src/server/serve.js';
import type { RunningServer } from '../../src/server/serve.js';
import { FakeCluster, FakeNode, testConfig } from '../server/fake-node.js';
import { silentLogger } from '../server/helpers.js';

let dir = '';
const running: RunningServer[] = [];
let cluster: FakeCluster;
let endpoints = '';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'raftkv-cli-'));
  cluster = new FakeCluster();
  for (const id of [1, 2]) {
    const node = new FakeNode(id, cluster);
    const s = await runServer(testConfig(id, join(dir, `n${id}`)), { logger: silentLogger, startNode: () => Promise.resolve(node) });
    running.push(s);
    cluster.addresses.set(id, s.clientAddress);
    cluster.members.push({ id, peerAddress: s.peerAddress, clientAddress: s.clientAddress, learner: false });
  }
  cluster.leaderId = 2;
  endpoints = [...cluster.addresses.values()].join(',');
});

afterAll(async () => {
  for (const s of running.splice(0)) await s.stop();
  await rm(dir, { recursive: true, force: true });
});

/** Runs `raftkv ARGS` in-process; returns stdout, or the error's code and message. */
async function run(args: string[], env: Record<string, string> = {}): Promise<{ out: string; error?: RaftKvError }> {
  let out = '';
  const io: CliIo = { stdout: { write: (s: string) => (out += s) }, env: { RAFTKV_ENDPOINTS: endpoints, ...env } };
  try {
    await main(args, io);
    return { out };
  } catch (err) {
    if (err instanceof RaftKvError) return { out, error: err };
    throw err;
  }
}

describe('raftkv client commands', () => {
  it('put, get, range, del, cas in simple and json output', async () => {
    expect((await run(['put', 'greeting', 'hello'])).out).toMatch(/^OK \(member 2, term \d+, index \d+, revision \d+, leader 2\)\n$/);
    expect((await run(['get', 'greeting'])).out).toBe('greeting\nhello\n');
    const j = JSON.parse((await run(['-w', 'json', 'get', 'greeting'])).out) as { header: { memberId: number }; kv: { value: string; version: number } };
    expect(j.header.memberId).toBe(2);
    expect(j.kv).toMatchObject({ value: 'hello', version: 1 });
    expect((await run(['get', 'missing'])).out).toBe('');
    const compacted = await run(['compact', '1']);
    expect(compacted.error).toBeUndefined();
    expect(compacted.out).toMatch(/^compacted revision 1 \(member 2, term \d+, index \d+, revision \d+, leader 2\)\n$/);
    expect((await run(['compact', 'soon'])).error?.message).toMatch(/REVISION "soon" is not a whole number/);
    await run(['put', 'greeting2', 'hi']);
    expect((await run(['range', 'greet'])).out).toBe('greeting\nhello\ngreeting2\nhi\n');
    expect((await run(['range', 'greet', '--keys-only', '--limit', '1'])).out).toBe('greeting\n');
    expect((await run(['range', 'greet', '--count-only'])).out).toBe('2\n');
    expect((await run(['cas', 'greeting', 'hello', 'bye'])).out).toMatch(/^OK/);
    const failed = await run(['cas', 'greeting', 'hello', 'again']);
    expect(failed.error?.code).toBe('FAILED_PRECONDITION');
    expect(failed.error?.message).toMatch(/^cas: the value is not the expected one/);
    expect((await run(['cas', 'fresh', 'v', '--create'])).out).toMatch(/^OK/);
    expect((await run(['cas', 'fresh', 'v', '--create'])).error?.message).toMatch(/the key exists/);
    expect((await run(['del', 'greet', '--prefix'])).out).toBe('2\n');
    expect((await run(['--endpoints', endpoints.split(',')[0] ?? '', 'get', 'fresh', '--serializable'])).out).toBe('fresh\nv\n');
  });

  it('status prints one row per member; --watch refreshes --count times', async () => {
    const { out } = await run(['status']);
    const lines = out.trim().split('\n');
    expect(lines[0]).toMatch(/^ID\s+ADDRESS\s+ROLE\s+TERM\s+LEADER\s+COMMIT\s+APPLIED\s+LAG$/);
    expect(lines).toHaveLength(3);
    expect(lines[1]).toMatch(/^1\s+127\.0\.0\.1:\d+\s+follower\s+\d+\s+2\s/);
    expect(lines[2]).toMatch(/^2\s+127\.0\.0\.1:\d+\s+leader\s+\d+\s+2\s+\d+\s+\d+\s+0$/);
    const watched = await run(['status', '--watch', '--count', '2', '--interval-ms', '10']);
    expect(watched.out.split('\x1b[H\x1b[2J')).toHaveLength(3);
    const json = JSON.parse((await run(['-w', 'json', 'status'])).out) as { id: number; role: string }[];
    expect(json.map((s) => [s.id, s.role])).toEqual([[1, 'follower'], [2, 'leader']]);
  });

  it('status marks an unreachable member and fails when none answers', async () => {
    const table = statusTable([{ address: '127.0.0.1:1', status: undefined, error: 'UNAVAILABLE' }]);
    expect(table).toMatch(/127\.0\.0\.1:1\s+unreachable \(UNAVAILABLE\)/);
    const r = await run(['--endpoints', '127.0.0.1:1', '--timeout-ms', '300', 'status']);
    expect(r.error?.code).toBe('UNAVAILABLE');
    expect(r.out).toMatch(/unreachable/);
  });

  it('member and transfer-leader commands', async () => {
    expect((await run(['member', 'list'])).out).toMatch(/^1\tvoter\tpeer=.*\n2\tvoter/);
    expect((await run(['member', 'add', '5', '127.0.0.1:7005', '127.0.0.1:7105', '--learner'])).out).toMatch(/5\tlearner\tpeer=127\.0\.0\.1:7005\tclient=127\.0\.0\.1:7105/);
    expect((await run(['member', 'promote', '5'])).out).toMatch(/5\tvoter/);
    expect((await run(['member', 'remove', '5'])).out).not.toMatch(/^5\t/m);
    expect((await run(['member', 'remove', '9'])).error?.code).toBe('NOT_FOUND');
    expect((await run(['transfer-leader', '1'])).out).toMatch(/^OK: leadership transferred to member 1/);
    expect(cluster.leaderId).toBe(1);
  });

  it('snapshot save writes the file', async () => {
    const file = join(dir, 'cli.snap');
    expect((await run(['snapshot', 'save', file])).out).toMatch(/^saved \d+ bytes to .*cli\.snap \(sha256 [0-9a-f]{64}/);
  });
});

describe('raftkv argument errors', () => {
  it.each([
    [['bogus'], /unknown command "bogus"/],
    [['get', 'k', '--prefix'], /get: unknown flag --prefix/],
    [['get', 'k', '--nope'], /Unknown option '--nope'/],
    [['get'], /get: expected KEY, got nothing/],
    [['put', 'k'], /put: expected KEY VALUE/],
    [['range', 'p', '--limit', 'x'], /--limit: "x" is not a whole number/],
    [['range', 'p', '--limit=-1'], /^--limit: "-1" is not a whole number >= 0$/],
    [['range', 'p', '--limit', '1.5'], /^--limit: "1\.5" is not a whole number >= 0$/],
    [['range', 'p', '--limit', '99999999999999999999'], /^--limit: "99999999999999999999" is more than 9007199254740991$/],
    [['--timeout-ms', '2147483648', 'get', 'k'], /^--timeout-ms: "2147483648" is more than 2147483647 \(the longest timer Node can set\)$/],
    [['status', '--watch', '--interval-ms', '4294967296'], /^--interval-ms: "4294967296" is more than 2147483647/],
    [['member', 'add', 'x', '127.0.0.1:1', '127.0.0.1:2'], /member add: "x" is not a member id/],
    [['member', 'add', '4', 'nohost', '127.0.0.1:2'], /PEER_ADDR: "nohost" is not HOST:PORT/],
    [['member', 'frob'], /member: expected list, add, remove or promote/],
    [['transfer-leader', '0'], /not a member id/],
    [['snapshot', 'load', 'f'], /snapshot: expected "snapshot save FILE"/],
    [['-w', 'yaml', 'get', 'k'], /--write-out: "yaml" is not simple or json/],
    [['--endpoints', 'localhost', 'get', 'k'], /--endpoints: "localhost" is not HOST:PORT/],
  ])('%j -> %s', async (args, message) => {
    const r = await run(args);
    expect(r.error?.code).toBe('INVALID_ARGUMENT');
    expect(r.error?.message).toMatch(message);
    expect(r.error?.message).not.toContain('\n');
  });

  it('--help prints the usage', async () => {
    expect((await run(['--help'])).out).toMatch(/^raftkv: a Raft-replicated key-value store/);
    expect((await run([])).out).toMatch(/commands:/);
    expect((await run(['serve', '--help'])).out).toMatch(/^raftkv serve --id N/);
  });
});

describe('raftkv serve configuration', () => {
  const base = ['--id', '2', '--cluster-id', 'prod', '--data-dir', '/tmp/x', '--listen-peer', '127.0.0.1:7002', '--listen-client', '127.0.0.1:7102', '--initial-cluster', '1=127.0.0.1:7001/127.0.0.1:7101,2=127.0.0.1:7002/127.0.0.1:7102'];

  it('turns flags into a NodeConfig with defaults', () => {
    const { config, dialOverrides } = parseServeArgs([...base, '--dial-override', '1=127.0.0.1:9011', '--election-ticks', '20']);
    expect(config).toMatchObject({
      id: 2,
      clusterId: 'prod',
      advertisePeer: '127.0.0.1:7002',
      advertiseClient: '127.0.0.1:7102',
      initialClusterState: 'new',
      tickIntervalMs: 100,
      electionTimeoutTicks: 20,
      heartbeatIntervalTicks: 1,
      snapshotEveryEntries: 10_000,
      maxRequestBytes: 2 * 1024 * 1024,
      logLevel: 'info',
      logPretty: false,
    });
    expect(config.initialMembers).toEqual([
      { id: 1, peerAddress: '127.0.0.1:7001', clientAddress: '127.0.0.1:7101' },
      { id: 2, peerAddress: '127.0.0.1:7002', clientAddress: '127.0.0.1:7102' },
    ]);
    expect([...dialOverrides]).toEqual([[1, '127.0.0.1:9011']]);
  });

  it('tells followers of commits at once by default (etcd), lazily with --commit-broadcast lazy', () => {
    expect(parseServeArgs(base).config.commitBroadcast).toBe('eager');
    expect(parseServeArgs([...base, '--commit-broadcast', 'lazy']).config.commitBroadcast).toBe('lazy');
  });

  it('reads a JSON config file; flags win', async () => {
    const file = join(dir, 'serve.json');
    await writeFile(file, JSON.stringify({ id: 2, clusterId: 'fromfile', dataDir: '/tmp/y', listenPeer: '127.0.0.1:7002', listenClient: '127.0.0.1:7102', initialCluster: '2=127.0.0.1:7002/127.0.0.1:7102', tickMs: 50, logPretty: true }));
    const { config } = parseServeArgs(['--config', file, '--cluster-id', 'fromflag']);
    expect(config).toMatchObject({ clusterId: 'fromflag', dataDir: '/tmp/y', tickIntervalMs: 50, logPretty: true });
    await writeFile(file, JSON.stringify({ id: 2, tickMillis: 50 }));
    expect(() => parseServeArgs(['--config', file])).toThrow(/unknown key "tickMillis"/);
    await writeFile(file, '{ not json');
    expect(() => parseServeArgs(['--config', file])).toThrow(/--config .*JSON/);
  });

  it.each([
    [['--id', '2'], /--cluster-id is required/],
    [base.map((a) => (a === '2' ? 'two' : a)), /--id: "two" is not a whole number/],
    [[...base, '--initial-cluster', '1=127.0.0.1:7001'], /--initial-cluster: "1=127.0.0.1:7001" is not ID=PEER/],
    [[...base, '--initial-cluster', '1=127.0.0.1:7001/127.0.0.1:7101'], /does not list this member/],
    [[...base, '--initial-cluster', '2=a:1/b:2,2=a:3/b:4'], /member 2 is listed twice/],
    [[...base, '--initial-cluster-state', 'old'], /--initial-cluster-state: "old" is not new or existing/],
    [[...base, '--election-ticks', '1', '--heartbeat-ticks', '1'], /--election-ticks: 1 is out of range 2\.\./],
    [[...base, '--election-ticks', '3', '--heartbeat-ticks', '3'], /must be greater than --heartbeat-ticks/],
    [[...base, '--tick-ms', '0'], /--tick-ms: 0 is out of range/],
    [[...base, '--max-request-bytes', '10'], /--max-request-bytes: 10 is out of range/],
    [[...base, '--log-level', 'loud'], /--log-level: "loud" is not one of/],
    [[...base, '--listen-peer', '127.0.0.1:99999'], /--listen-peer: "127.0.0.1:99999" is not HOST:PORT/],
    [[...base, '--dial-override', 'x'], /--dial-override: "x" is not ID=HOST:PORT/],
    [[...base, '--cluster-id', 'a b'], /--cluster-id: "a b" must be/],
    [[...base, '--frobnicate'], /serve: Unknown option '--frobnicate'/],
    [[...base, '--initial-corrupt-check', 'no'], /--initial-corrupt-check: "no" is not true or false/],
    [[...base, '--commit-broadcast', 'sometimes'], /--commit-broadcast: "sometimes" is not eager or lazy/],
  ])('%j is refused: %s', (args, message) => {
    expect(() => parseServeArgs(args)).toThrow(message);
  });
});

describe('bin/raftkv.js', () => {
  const bin = join(import.meta.dirname, '..', '..', 'bin', 'raftkv.js');
  it('exits 1 with a one-line error for an unknown command, 0 for --help', () => {
    const bad = spawnSync(process.execPath, [bin, 'frobnicate'], { encoding: 'utf8', timeout: 20_000 });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toBe('raftkv: unknown command "frobnicate" (see raftkv --help)\n');
    const help = spawnSync(process.execPath, [bin, '--help'], { encoding: 'utf8', timeout: 20_000 });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^raftkv: a Raft-replicated key-value store/);
  });

  it('exits 1 with a one-line error for a bad number flag, before connecting anywhere', () => {
    for (const [args, stderr] of [
      [['range', 'p', '--limit=-1'], 'raftkv: --limit: "-1" is not a whole number >= 0\n'],
      [['--timeout-ms', '2147483648', 'get', 'k'], 'raftkv: --timeout-ms: "2147483648" is more than 2147483647 (the longest timer Node can set)\n'],
    ] as const) {
      const r = spawnSync(process.execPath, [bin, '--endpoints', '127.0.0.1:1', ...args], { encoding: 'utf8', timeout: 20_000 });
      expect(r.status, args.join(' ')).toBe(1);
      expect(r.stderr).toBe(stderr);
    }
  });

  it('serve exits 1 before starting anything when a flag is bad', () => {
    const r = spawnSync(process.execPath, [bin, 'serve', '--id', '1'], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('raftkv: serve: --cluster-id is required\n');
  });
});
