// `raftkv check`: every member's key-space digest at one common index (the smallest applied index), against three
// fake members over real loopback gRPC: agreement, a member in the minority (exit 2 with the remedy), no majority,
// an unreachable member and a member past its digest history (exit 1), JSON output, and the bin's exit status.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CliFailure, EXIT_DIGEST_MISMATCH, main } from '../../src/cli/main.js';
import type { CliIo } from '../../src/cli/main.js';
import type { Member } from '../../src/node/api.js';
import { RaftKvError } from '../../src/shared/errors.js';
import { runServer } from '../../src/server/serve.js';
import type { RunningServer } from '../../src/server/serve.js';
import { FakeCluster, FakeNode, testConfig } from '../server/fake-node.js';
import { silentLogger } from '../server/helpers.js';

const A = { lane1: 0x0123abcd, lane2: 0x89ef4567, count: 42 };
const B = { lane1: 0x1111aaaa, lane2: 0x2222bbbb, count: 41 };
const C = { lane1: 7, lane2: 8, count: 9 };
const HASH_A = '0123abcd89ef4567';
const HASH_B = '1111aaaa2222bbbb';

let dir = '';
const running: RunningServer[] = [];
const nodes: FakeNode[] = [];
let cluster: FakeCluster;
const members: Member[] = [];
let endpoints = '';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'raftkv-check-'));
  cluster = new FakeCluster();
  for (const id of [1, 2, 3]) {
    const n = new FakeNode(id, cluster);
    // corruptCheckIntervalMs 0: the members' own peer check stays quiet, so the digest calls are the CLI's.
    const s = await runServer(testConfig(id, join(dir, `n${id}`), { corruptCheckIntervalMs: 0 }), { logger: silentLogger, startNode: () => Promise.resolve(n) });
    running.push(s);
    nodes.push(n);
    cluster.addresses.set(id, s.clientAddress);
    members.push({ id, peerAddress: s.peerAddress, clientAddress: s.clientAddress, learner: false });
  }
  cluster.leaderId = 1;
  endpoints = [...cluster.addresses.values()].join(',');
});

beforeEach(() => {
  cluster.members = [...members];
  for (const n of nodes) {
    n.digests.clear();
    n.digestCalls.length = 0;
  }
});

afterAll(async () => {
  for (const s of running.splice(0)) await s.stop();
  await rm(dir, { recursive: true, force: true });
});

function node(id: number): FakeNode {
  const n = nodes[id - 1];
  if (n === undefined) throw new Error(`no member ${id}`);
  return n;
}

/** Sets member id's digests: index -> digest. */
function digests(id: number, at: Record<number, typeof A>): void {
  for (const [index, d] of Object.entries(at)) node(id).digests.set(Number(index), d);
}

async function run(args: string[]): Promise<{ out: string; error?: RaftKvError }> {
  let out = '';
  const io: CliIo = { stdout: { write: (s: string) => (out += s) }, env: { RAFTKV_ENDPOINTS: endpoints } };
  try {
    await main(args, io);
    return { out };
  } catch (err) {
    if (err instanceof RaftKvError) return { out, error: err };
    throw err;
  }
}

const exitStatusOf = (err: RaftKvError | undefined): number => (err === undefined ? 0 : err instanceof CliFailure ? err.exitStatus : 1);

describe('raftkv check', () => {
  it('all agree: asks everyone at the smallest applied index, prints the table and OK, exit 0', async () => {
    digests(1, { 10: A });
    digests(2, { 10: A });
    digests(3, { 10: A, 12: B }); // member 3 is ahead: compared at 10, where it had A
    const r = await run(['check']);
    expect(r.error).toBeUndefined();
    const lines = r.out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+ADDRESS\s+INDEX\s+HASH\s+KEYS\s+VERDICT$/);
    expect(lines[1]).toMatch(new RegExp(`^1\\s+127\\.0\\.0\\.1:\\d+\\s+10\\s+${HASH_A}\\s+42\\s+ok$`));
    expect(lines[3]).toMatch(new RegExp(`^3\\s+127\\.0\\.0\\.1:\\d+\\s+10\\s+${HASH_A}\\s+42\\s+ok$`));
    expect(lines[4]).toBe(`OK: all 3 members agree on ${HASH_A}/42 keys at index 10`);
    expect(lines).toHaveLength(5);
    expect(node(3).digestCalls).toEqual([0, 10]);
    expect(node(1).digestCalls).toEqual([0, 10]);
  });

  it('a member in the minority: exit 2, naming it, the majority and the remedy', async () => {
    digests(1, { 10: A });
    digests(2, { 10: A });
    digests(3, { 10: B });
    const r = await run(['check']);
    expect(exitStatusOf(r.error)).toBe(EXIT_DIGEST_MISMATCH);
    expect(r.error?.code).toBe('DATA_CORRUPTION');
    const m3 = members[2];
    expect(r.error?.message).toBe(
      `MISMATCH at index 10: member 3 has ${HASH_B}/41 keys, but the majority (members 1, 2) has ${HASH_A}/42 keys. ` +
        `Remedy: remove member 3 (raftkv member remove 3), wipe its data directory, add it back (raftkv member add 3 ${m3?.peerAddress ?? ''} ${m3?.clientAddress ?? ''}) ` +
        'and start it with --initial-cluster-state existing',
    );
    const lines = r.out.trimEnd().split('\n');
    expect(lines[1]).toMatch(/\sok$/);
    expect(lines[3]).toMatch(new RegExp(`^3\\s+\\S+\\s+10\\s+${HASH_B}\\s+41\\s+MISMATCH$`));
    expect(lines).toHaveLength(4); // the verdict goes to stderr (the thrown error)
  });

  it('no digest has a majority: exit 2, nobody named for removal', async () => {
    digests(1, { 10: A });
    digests(2, { 10: B });
    digests(3, { 10: C });
    const r = await run(['check']);
    expect(exitStatusOf(r.error)).toBe(EXIT_DIGEST_MISMATCH);
    expect(r.error?.message).toMatch(/^MISMATCH at index 10: no digest is held by a majority of the 3 members that answered \(member 1: .*; member 2: .*; member 3: .*\); cannot tell which diverged/);
    expect(r.error?.message).not.toMatch(/Remedy/);
    expect(r.out).toMatch(/no majority/);
  });

  it('an unreachable member: exit 1 naming it; the others are still compared', async () => {
    digests(1, { 10: A });
    digests(2, { 10: A });
    digests(3, { 10: A });
    cluster.members = [...members, { id: 4, peerAddress: '127.0.0.1:1', clientAddress: '127.0.0.1:1', learner: false }];
    const r = await run(['--timeout-ms', '2000', 'check']);
    expect(exitStatusOf(r.error)).toBe(1);
    expect(r.error?.message).toMatch(/^check: the 3 members that answered agree on 0123abcd89ef4567\/42 keys at index 10; no digest from member 4 \(127\.0\.0\.1:1: UNAVAILABLE: /);
    expect(r.out).toMatch(/^4\s+127\.0\.0\.1:1\s+-\s+-\s+-\s+error \(UNAVAILABLE: /m);
  });

  it('a mismatch outranks an unreachable member (exit 2, the failure listed too)', async () => {
    digests(1, { 10: A });
    digests(2, { 10: A });
    digests(3, { 10: B });
    cluster.members = [...members, { id: 4, peerAddress: '127.0.0.1:1', clientAddress: '127.0.0.1:1', learner: false }];
    const r = await run(['--timeout-ms', '2000', 'check']);
    expect(exitStatusOf(r.error)).toBe(EXIT_DIGEST_MISMATCH);
    expect(r.error?.message).toMatch(/^MISMATCH at index 10: member 3 has .*; no digest from member 4 \(127\.0\.0\.1:1: UNAVAILABLE/);
  });

  it('a member that no longer remembers the common index, or has applied nothing: exit 1 naming it', async () => {
    digests(1, { 10: A });
    digests(2, { 10: A });
    digests(3, { 0: A }); // current index 0: it has applied nothing
    node(2).digests.delete(10);
    node(2).digests.set(20_000, A); // far ahead: its history does not reach 10
    const r = await run(['check']);
    expect(exitStatusOf(r.error)).toBe(1);
    expect(r.error?.message).toMatch(/no digest from member 2 \(.*NOT_FOUND: .*\), member 3 \(.*FAILED_PRECONDITION: it has applied nothing yet\)$/);
    expect(node(2).digestCalls).toEqual([0, 10]);
  });

  it('-w json prints one object with every row', async () => {
    digests(1, { 10: A });
    digests(2, { 10: A });
    digests(3, { 10: B });
    const r = await run(['-w', 'json', 'check']);
    expect(exitStatusOf(r.error)).toBe(EXIT_DIGEST_MISMATCH);
    const j = JSON.parse(r.out) as { index: number; exitStatus: number; members: { id: number; hash: string; keys: number; verdict: string }[] };
    expect(j.index).toBe(10);
    expect(j.exitStatus).toBe(2);
    expect(j.members.map((m) => [m.id, m.hash, m.keys, m.verdict])).toEqual([
      [1, HASH_A, 42, 'ok'],
      [2, HASH_A, 42, 'ok'],
      [3, HASH_B, 41, 'MISMATCH'],
    ]);
  });

  it('check takes no arguments and no command flags; it is in the usage', async () => {
    expect((await run(['check', 'x'])).error?.message).toMatch(/check: expected no arguments/);
    expect((await run(['check', '--prefix'])).error?.message).toMatch(/check: unknown flag --prefix/);
    expect((await run(['--help'])).out).toMatch(/^ {2}check {3,}every member's key-space digest/m);
  });

  it('bin/raftkv.js exits 2 with a one-line error on a mismatch, 0 when all agree', async () => {
    digests(1, { 10: A });
    digests(2, { 10: A });
    digests(3, { 10: B });
    const bin = join(import.meta.dirname, '..', '..', 'bin', 'raftkv.js');
    // Not spawnSync: the fake members answer from this process's event loop.
    const runBin = (): Promise<{ status: number | null; stdout: string; stderr: string }> =>
      new Promise((resolve, reject) => {
        const child = spawn(process.execPath, [bin, '--endpoints', endpoints, 'check'], { stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
        child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
        child.on('error', reject);
        child.on('close', (status) => resolve({ status, stdout, stderr }));
      });
    const bad = await runBin();
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/^raftkv: MISMATCH at index 10: member 3 has [0-9a-f]{16}\/41 keys, .*--initial-cluster-state existing\n$/);
    expect(bad.stdout).toMatch(/MISMATCH\n$/);
    digests(3, { 10: A });
    const good = await runBin();
    expect(good.status).toBe(0);
    expect(good.stdout).toMatch(/\nOK: all 3 members agree on 0123abcd89ef4567\/42 keys at index 10\n$/);
  });
});
