// The peer corrupt check (src/server/corrupt-check.ts): the decision rule with fake members reached through an
// in-memory PeerDigests and a ManualClock (agree, this member in the minority, a peer in the minority, no
// majority, peers unreachable / NOT_FOUND / silent), its timers (initial check after applying up to the commit
// index at start, the periodic check, off at 0, stop), and once end to end: runServer, HashKV over real gRPC.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { formatDigest } from '../../src/kv/key-space-digest.js';
import type { DigestValue } from '../../src/kv/key-space-digest.js';
import type { KeySpaceDigestAt } from '../../src/node/api.js';
import { ManualClock } from '../../src/shared/clock.js';
import { DEFAULT_CORRUPT_CHECK_INTERVAL_MS } from '../../src/node/config.js';
import { RaftKvError } from '../../src/shared/errors.js';
import { CorruptCheck, DEFAULT_PEER_DIGEST_TIMEOUT_MS, INITIAL_RETRY_MS, judgeDigests } from '../../src/server/corrupt-check.js';
import type { PeerDigestCall, PeerDigests } from '../../src/server/corrupt-check.js';
import { runServer } from '../../src/server/serve.js';
import type { RunningServer } from '../../src/server/serve.js';
import { FakeCluster, FakeNode, testConfig } from './fake-node.js';
import { silentLogger } from './helpers.js';

const A: DigestValue = { lane1: 0x11111111, lane2: 0x22222222, count: 5 };
const B: DigestValue = { lane1: 0x33333333, lane2: 0x44444444, count: 5 };
const C: DigestValue = { lane1: 0x55555555, lane2: 0x66666666, count: 6 };
const INTERVAL_MS = 60_000;
const AT = 10; // FakeCluster's applied (and commit) index

const address = (id: number): string => `127.0.0.1:${7100 + id}`;

interface LogLine {
  readonly level: number;
  readonly msg: string;
}
const ERROR = 50;

function capturingLogger(): { logger: pino.Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
  return { logger, lines };
}

/** Reaches fake members by address, in memory; `silent` addresses never answer; unknown ones are refused. */
class FakePeers implements PeerDigests {
  readonly nodes = new Map<string, FakeNode>();
  readonly silent = new Set<string>();
  readonly asked: { address: string; index: number; timeoutMs: number }[] = [];
  readonly cancelled: string[] = [];
  closed = false;

  ask(addr: string, index: number, timeoutMs: number): PeerDigestCall {
    this.asked.push({ address: addr, index, timeoutMs });
    if (this.silent.has(addr)) return { answer: new Promise<never>(() => undefined), cancel: () => void this.cancelled.push(addr) };
    const node = this.nodes.get(addr);
    const answer: Promise<KeySpaceDigestAt> = node === undefined ? Promise.reject(new RaftKvError('UNAVAILABLE', `${addr}: connection refused`)) : node.keySpaceDigest(index, Number.MAX_SAFE_INTEGER);
    return { answer, cancel: () => void this.cancelled.push(addr) };
  }

  retain(): void {
    // in memory: no connections to drop
  }

  close(): void {
    this.closed = true;
  }
}

/** `n` fake members sharing one FakeCluster; `digests[i]` is member i+1's digest at AT (undefined: none). */
function members(digests: readonly (DigestValue | undefined)[]): { cluster: FakeCluster; nodes: FakeNode[]; peers: FakePeers } {
  const cluster = new FakeCluster();
  const peers = new FakePeers();
  const nodes = digests.map((d, i) => {
    const id = i + 1;
    const node = new FakeNode(id, cluster);
    if (d !== undefined) node.digests.set(AT, d);
    cluster.members.push({ id, peerAddress: `127.0.0.1:${7000 + id}`, clientAddress: address(id), learner: false });
    cluster.addresses.set(id, address(id));
    peers.nodes.set(address(id), node);
    return node;
  });
  return { cluster, nodes, peers };
}

function checker(node: FakeNode, peers: FakePeers, clock = new ManualClock(), logger: pino.Logger = silentLogger, intervalMs = INTERVAL_MS): CorruptCheck {
  return new CorruptCheck({ node, clock, logger, intervalMs, peers });
}

function node(nodes: readonly FakeNode[], id: number): FakeNode {
  const n = nodes[id - 1];
  if (n === undefined) throw new Error(`no member ${id}`);
  return n;
}

describe('judgeDigests (the decision rule)', () => {
  it('names the majority and the minority', () => {
    expect(judgeDigests({ id: 1, digest: A }, [{ id: 2, digest: A }, { id: 3, digest: A }])).toEqual({ kind: 'agreed' });
    expect(judgeDigests({ id: 1, digest: A }, [])).toEqual({ kind: 'agreed' });
    expect(judgeDigests({ id: 1, digest: A }, [{ id: 2, digest: B }, { id: 3, digest: B }])).toEqual({ kind: 'corrupt', majority: B, agreeing: [2, 3] });
    expect(judgeDigests({ id: 1, digest: A }, [{ id: 2, digest: A }, { id: 3, digest: B }])).toEqual({ kind: 'peers-diverged', agreeing: [1, 2], diverged: [{ id: 3, digest: B }] });
    expect(judgeDigests({ id: 1, digest: A }, [{ id: 2, digest: B }]).kind).toBe('no-majority'); // 1-1: nobody can tell
    expect(judgeDigests({ id: 1, digest: A }, [{ id: 2, digest: B }, { id: 3, digest: C }]).kind).toBe('no-majority');
    // Two of four is not a strict majority.
    expect(judgeDigests({ id: 1, digest: A }, [{ id: 2, digest: A }, { id: 3, digest: B }, { id: 4, digest: B }]).kind).toBe('no-majority');
    // The same hash with another key count is another digest.
    expect(judgeDigests({ id: 1, digest: A }, [{ id: 2, digest: { ...A, count: 4 } }, { id: 3, digest: { ...A, count: 4 } }]).kind).toBe('corrupt');
  });
});

describe('CorruptCheck decisions', () => {
  it('(a) all members agree: nothing raised, nothing logged as an error; every peer asked at this member\'s index', async () => {
    const { nodes, peers } = members([A, A, A]);
    const { logger, lines } = capturingLogger();
    const outcome = await checker(node(nodes, 1), peers, new ManualClock(), logger).checkNow();
    expect(outcome).toMatchObject({ kind: 'agreed', index: AT, own: A, skipped: [] });
    expect(outcome.kind === 'skipped' ? [] : outcome.answered.map((m) => m.id)).toEqual([2, 3]);
    expect(peers.asked.map((a) => [a.address, a.index, a.timeoutMs])).toEqual([
      [address(2), AT, DEFAULT_PEER_DIGEST_TIMEOUT_MS],
      [address(3), AT, DEFAULT_PEER_DIGEST_TIMEOUT_MS],
    ]);
    expect(nodes.flatMap((n) => n.corruptReasons)).toEqual([]);
    expect(lines.filter((l) => l.level >= ERROR)).toEqual([]);
  });

  it('(b) this member in the minority: raiseCorrupt names the index, both digests and the majority; no further checks', async () => {
    const { nodes, peers } = members([A, B, B]);
    const clock = new ManualClock();
    const check = checker(node(nodes, 1), peers, clock);
    check.start();
    expect((await check.inFlight)?.kind).toBe('corrupt');
    const reasons = node(nodes, 1).corruptReasons;
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toContain(`member 1's key-space digest at applied index ${AT} is ${formatDigest(A)}`);
    expect(reasons[0]).toContain(`2 of the 3 members that answered (members 2, 3) have ${formatDigest(B)}`);
    expect(node(nodes, 2).corruptReasons).toEqual([]);
    expect(clock.pendingTimers()).toBe(0); // the periodic timer is gone: this member stops
    const asked = peers.asked.length;
    clock.advance(3 * INTERVAL_MS);
    expect(check.inFlight).toBeUndefined();
    expect(peers.asked).toHaveLength(asked);
  });

  it('(b) the majority is of the members that answered: 2 of 3 answering in a cluster of 5 is enough', async () => {
    const { nodes, peers } = members([A, B, B, undefined, B]);
    peers.nodes.delete(address(5)); // refused
    const outcome = await checker(node(nodes, 1), peers).checkNow();
    expect(outcome).toMatchObject({ kind: 'corrupt', agreeing: [2, 3] });
    expect(outcome.kind === 'skipped' ? [] : outcome.skipped.map((s) => [s.id, s.code])).toEqual([
      [4, 'NOT_FOUND'],
      [5, 'UNAVAILABLE'],
    ]);
    expect(node(nodes, 1).corruptReasons).toHaveLength(1);
  });

  it('(c) a peer in the minority: nothing raised here; an error log names that peer and its digest', async () => {
    const { nodes, peers } = members([A, A, B]);
    const { logger, lines } = capturingLogger();
    const outcome = await checker(node(nodes, 1), peers, new ManualClock(), logger).checkNow();
    expect(outcome).toMatchObject({ kind: 'peers-diverged', agreeing: [1, 2], diverged: [{ id: 3, digest: B }] });
    expect(nodes.flatMap((n) => n.corruptReasons)).toEqual([]);
    const errors = lines.filter((l) => l.level >= ERROR);
    expect(errors).toHaveLength(1);
    expect(errors[0]?.msg).toContain(`member 3 has ${formatDigest(B)}`);
    expect(errors[0]?.msg).toContain(`majority (members 1, 2, this one included) has ${formatDigest(A)}`);
  });

  it('no majority (a 1-1 split): nothing raised, an error logged', async () => {
    const { nodes, peers } = members([A, B, undefined]);
    const { logger, lines } = capturingLogger();
    const outcome = await checker(node(nodes, 1), peers, new ManualClock(), logger).checkNow();
    expect(outcome.kind).toBe('no-majority');
    expect(nodes.flatMap((n) => n.corruptReasons)).toEqual([]);
    expect(lines.filter((l) => l.level >= ERROR).map((l) => l.msg)).toEqual([expect.stringMatching(/no digest has a majority .*nothing raised/)]);
  });

  it('(d) peers unreachable or past their digest history: left out, nothing raised', async () => {
    const { nodes, peers } = members([A, B, B]);
    peers.nodes.delete(address(2)); // refused: UNAVAILABLE
    node(nodes, 3).digests.clear(); // no longer remembers index AT: NOT_FOUND
    node(nodes, 3).digests.set(AT + 20_000, B);
    const { logger, lines } = capturingLogger();
    const outcome = await checker(node(nodes, 1), peers, new ManualClock(), logger).checkNow();
    expect(outcome).toMatchObject({ kind: 'agreed', answered: [] });
    expect(outcome.kind === 'skipped' ? [] : outcome.skipped.map((s) => [s.id, s.code])).toEqual([
      [2, 'UNAVAILABLE'],
      [3, 'NOT_FOUND'],
    ]);
    expect(node(nodes, 1).corruptReasons).toEqual([]);
    expect(lines.filter((l) => l.level >= ERROR)).toEqual([]);
  });

  it('(d) a peer that does not answer is given up after the peer timeout on the clock (and its call cancelled)', async () => {
    const { nodes, peers } = members([A, B, B]);
    peers.silent.add(address(2));
    peers.silent.add(address(3));
    const clock = new ManualClock();
    const check = checker(node(nodes, 1), peers, clock);
    const pending = check.checkNow();
    await new Promise<void>((resolve) => setImmediate(resolve)); // let the asks go out
    expect(peers.asked).toHaveLength(2);
    clock.advance(DEFAULT_PEER_DIGEST_TIMEOUT_MS - 1);
    expect(peers.cancelled).toEqual([]);
    clock.advance(1);
    const outcome = await pending;
    expect(outcome.kind === 'skipped' ? [] : outcome.skipped.map((s) => [s.id, s.code])).toEqual([
      [2, 'DEADLINE_EXCEEDED'],
      [3, 'DEADLINE_EXCEEDED'],
    ]);
    expect(peers.cancelled.sort()).toEqual([address(2), address(3)]);
    expect(node(nodes, 1).corruptReasons).toEqual([]);
  });

  it('an answer from another member or for another index is left out, not counted', async () => {
    const { nodes, peers } = members([A, B, B]);
    peers.nodes.set(address(2), node(nodes, 3)); // member 3 answers at member 2's address
    const inner = peers.ask.bind(peers);
    // Member 3 answers for another index than the one asked.
    peers.ask = (addr, index, timeoutMs) => (addr === address(3) ? { answer: Promise.resolve({ memberId: 3, index: index + 1, ...B }), cancel: () => undefined } : inner(addr, index, timeoutMs));
    const outcome = await checker(node(nodes, 1), peers).checkNow();
    expect(outcome.kind === 'skipped' ? [] : outcome.skipped.map((s) => [s.id, s.code])).toEqual([
      [2, 'CLUSTER_MISMATCH'],
      [3, 'FAILED_PRECONDITION'],
    ]);
    expect(node(nodes, 1).corruptReasons).toEqual([]);
  });

  it('skips the round when this member has applied nothing or cannot read its own digest', async () => {
    const { nodes, peers } = members([A, B, B]);
    const n1 = node(nodes, 1);
    n1.digests.clear();
    n1.digests.set(0, A); // applied index 0
    expect(await checker(n1, peers).checkNow()).toEqual({ kind: 'skipped', why: 'nothing applied yet' });
    n1.digestFailures.push('UNAVAILABLE');
    expect((await checker(n1, peers).checkNow()).kind).toBe('skipped');
    expect(peers.asked).toEqual([]);
    expect(n1.corruptReasons).toEqual([]);
  });
});

/** A fake member whose applied index moves only when the test says (keySpaceDigest waits for it, like the node). */
class LaggingNode extends FakeNode {
  applied = 0; // what keySpaceDigest(0) answers for; higher indices wait
  private readonly waiters: { index: number; resolve: () => void }[] = [];

  override async keySpaceDigest(index: number, deadlineMs: number): Promise<KeySpaceDigestAt> {
    if (index > this.applied) await new Promise<void>((resolve) => this.waiters.push({ index, resolve }));
    return super.keySpaceDigest(index === 0 ? this.applied : index, deadlineMs);
  }

  applyTo(index: number): void {
    this.applied = index;
    for (const w of this.waiters.splice(0)) {
      if (w.index <= index) w.resolve();
      else this.waiters.push(w);
    }
  }
}

describe('CorruptCheck timers', () => {
  function lagging(): { n1: LaggingNode; peers: FakePeers; nodes: FakeNode[] } {
    const { cluster, nodes, peers } = members([undefined, A, A]);
    const n1 = new LaggingNode(1, cluster);
    n1.digests.set(7, A);
    n1.digests.set(AT, A);
    n1.applied = 7;
    for (const n of nodes) n.digests.set(7, A);
    peers.nodes.set(address(1), n1);
    return { n1, peers, nodes };
  }

  it('the initial check waits until this member has applied its commit index at start, then compares there', async () => {
    const { n1, peers } = lagging();
    const clock = new ManualClock();
    const check = checker(n1, peers, clock);
    check.start();
    const initial = check.inFlight;
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(peers.asked).toEqual([]); // still applying up to index 10
    n1.applyTo(AT);
    const outcome = await initial;
    expect(outcome).toMatchObject({ kind: 'agreed', index: AT });
    expect(peers.asked.map((a) => a.index)).toEqual([AT, AT]);
    await check.stop();
  });

  it('the initial check tries again while no peer answers (members starting together), and compares once one does', async () => {
    const { nodes, peers } = members([A, B, B]);
    const n2 = node(nodes, 2);
    const n3 = node(nodes, 3);
    peers.nodes.delete(address(2)); // not up yet: refused
    peers.nodes.delete(address(3));
    const clock = new ManualClock();
    const check = checker(node(nodes, 1), peers, clock);
    check.start();
    const initial = check.inFlight;
    for (let i = 0; i < 5 && peers.asked.length < 2; i++) await new Promise<void>((resolve) => setImmediate(resolve));
    expect(peers.asked.length).toBe(2); // first attempt: both refused
    peers.nodes.set(address(2), n2);
    peers.nodes.set(address(3), n3);
    clock.advance(INITIAL_RETRY_MS);
    const outcome = await initial;
    expect(outcome).toMatchObject({ kind: 'corrupt', agreeing: [2, 3] }); // compared on the second attempt
    expect(node(nodes, 1).corruptReasons.length).toBe(1);
    await check.stop();
  });

  it('the initial check gives up waiting after the initial wait and compares what is applied', async () => {
    const { n1, peers } = lagging();
    const clock = new ManualClock();
    const check = new CorruptCheck({ node: n1, clock, logger: silentLogger, intervalMs: INTERVAL_MS, peers, initialApplyWaitMs: 30_000 });
    check.start();
    const initial = check.inFlight;
    await new Promise<void>((resolve) => setImmediate(resolve));
    clock.advance(30_000);
    expect(await initial).toMatchObject({ kind: 'agreed', index: 7 });
    expect(peers.asked.map((a) => a.index)).toEqual([7, 7]);
    await check.stop();
  });

  it('checks again every interval; stop() cancels the timer, ends waits at once and closes the peers', async () => {
    const { nodes, peers } = members([A, A, A]);
    const clock = new ManualClock();
    const check = checker(node(nodes, 1), peers, clock);
    check.start();
    await check.inFlight;
    expect(peers.asked).toHaveLength(2);
    expect(clock.pendingTimers()).toBe(1); // the interval only
    clock.advance(INTERVAL_MS - 1);
    expect(check.inFlight).toBeUndefined();
    clock.advance(1);
    await check.inFlight;
    expect(peers.asked).toHaveLength(4);
    // Member 3 diverges later: the next round finds it.
    node(nodes, 3).digests.set(AT, B);
    clock.advance(INTERVAL_MS);
    expect(await check.inFlight).toMatchObject({ kind: 'peers-diverged', diverged: [{ id: 3 }] });
    // A round in flight (a silent peer) ends at stop() without moving the clock.
    peers.silent.add(address(2));
    clock.advance(INTERVAL_MS);
    const inFlight = check.inFlight;
    await new Promise<void>((resolve) => setImmediate(resolve));
    await check.stop();
    expect((await inFlight)?.kind).toBe('skipped');
    expect(peers.cancelled).toEqual([address(2)]);
    expect(peers.closed).toBe(true);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('an interval of 0 turns the check off: no initial check, no timer', async () => {
    const { nodes, peers } = members([A, B, B]);
    const clock = new ManualClock();
    const check = checker(node(nodes, 1), peers, clock, silentLogger, 0);
    check.start();
    expect(check.inFlight).toBeUndefined();
    expect(clock.pendingTimers()).toBe(0);
    clock.advance(10 * DEFAULT_CORRUPT_CHECK_INTERVAL_MS);
    expect(node(nodes, 1).digestCalls).toEqual([]);
    await check.stop();
    expect(() => checker(node(nodes, 1), peers, clock, silentLogger, -1)).toThrow(/interval/);
  });
});

describe('runServer runs the peer corrupt check over HashKV', () => {
  let dir = '';
  const running: RunningServer[] = [];
  afterEach(async () => {
    for (const s of running.splice(0)) await s.stop();
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  it('the member whose digest differs from the other two raises CORRUPT on itself; they do not', async () => {
    dir = await mkdtemp(join(tmpdir(), 'raftkv-corrupt-check-'));
    const cluster = new FakeCluster();
    const clock = new ManualClock();
    const nodes: FakeNode[] = [];
    for (const id of [1, 2, 3]) {
      const n = new FakeNode(id, cluster);
      const s = await runServer(testConfig(id, join(dir, `n${id}`)), { logger: silentLogger, startNode: () => Promise.resolve(n), corruptCheckClock: clock });
      running.push(s);
      nodes.push(n);
      cluster.members.push({ id, peerAddress: s.peerAddress, clientAddress: s.clientAddress, learner: false });
      cluster.addresses.set(id, s.clientAddress);
    }
    // The initial checks found nothing to compare (no digests yet).
    for (const s of running) expect((await s.corruptCheck.inFlight)?.kind ?? 'done').toMatch(/skipped|done/);
    node(nodes, 1).digests.set(20, A);
    node(nodes, 2).digests.set(20, A);
    node(nodes, 3).digests.set(20, B);
    clock.advance(DEFAULT_CORRUPT_CHECK_INTERVAL_MS);
    const outcomes = await Promise.all(running.map((s) => s.corruptCheck.inFlight ?? Promise.resolve(undefined)));
    expect(outcomes.map((o) => o?.kind)).toEqual(['peers-diverged', 'peers-diverged', 'corrupt']);
    expect(node(nodes, 1).corruptReasons).toEqual([]);
    expect(node(nodes, 2).corruptReasons).toEqual([]);
    expect(node(nodes, 3).corruptReasons).toEqual([`member 3's key-space digest at applied index 20 is ${formatDigest(B)}, but 2 of the 3 members that answered (members 1, 2) have ${formatDigest(A)} there`]);
  });
});
