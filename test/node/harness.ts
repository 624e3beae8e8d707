// In-process clusters for the driver tests: real WAL + LevelDB in temp dirs, the in-memory transport, one
// ManualClock for every node (ticks and deadlines move only when a test says so), seeded election timeouts.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { seededRng } from '../../src/raft/rng.js';
import type { NodeId } from '../../src/raft/types.js';
import type { Command, RangeRequest } from '../../src/kv/types.js';
import { ManualClock } from '../../src/shared/clock.js';
import { NODE_CONFIG_DEFAULTS } from '../../src/node/config.js';
import type { NodeConfig, PeerConfig } from '../../src/node/config.js';
import { RaftKvNode, startNode } from '../../src/node/node.js';
import type { NodeStores } from '../../src/node/node.js';
import { MemoryHub } from '../../src/transport/memory-transport.js';
import type { MemoryTransport } from '../../src/transport/memory-transport.js';

export const TICK_MS = 100;
export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
export const dec = (b: Uint8Array): string => new TextDecoder().decode(b);
export const put = (key: string, value: string): Command => ({ type: 'put', key: enc(key), value: enc(value), prevKv: false });
export const get = (key: string): RangeRequest => ({ key: enc(key), end: new Uint8Array(0), limit: 0, keysOnly: false, countOnly: false });

export function testSeed(): number {
  const env = process.env['SEED'];
  return env !== undefined && env !== '' ? Number(env) : (Date.now() % 1_000_000) + 1;
}

export function peer(id: NodeId): PeerConfig {
  return { id, peerAddress: `mem-peer-${id}:1`, clientAddress: `mem-client-${id}:2` };
}

export class TestCluster {
  readonly hub = new MemoryHub();
  readonly clock = new ManualClock();
  readonly nodes = new Map<NodeId, RaftKvNode>();
  readonly transports = new Map<NodeId, MemoryTransport>();
  readonly logger: pino.Logger;
  /** Driver loops that died (onFatal), by node id. destroy() fails the test if any did, unless expected. */
  readonly fatal = new Map<NodeId, Error>();
  fatalExpected = false;

  private constructor(
    readonly baseDir: string,
    readonly seed: number,
    readonly initialIds: readonly NodeId[],
    readonly overrides: Partial<NodeConfig>,
  ) {
    this.logger = pino({ level: process.env['LOG_LEVEL'] ?? 'silent', base: { seed } });
  }

  static async create(size: number, overrides: Partial<NodeConfig> = {}, seed = testSeed()): Promise<TestCluster> {
    const baseDir = await mkdtemp(join(tmpdir(), 'raftkv-node-test-'));
    const ids = Array.from({ length: size }, (_, i) => i + 1);
    return new TestCluster(baseDir, seed, ids, overrides);
  }

  /** Creates the cluster and starts every initial member. */
  static async start(size: number, overrides: Partial<NodeConfig> = {}, seed = testSeed()): Promise<TestCluster> {
    const c = await TestCluster.create(size, overrides, seed);
    for (const id of c.initialIds) await c.startMember(id);
    return c;
  }

  dataDir(id: NodeId): string {
    return join(this.baseDir, `node-${id}`);
  }

  config(id: NodeId, extra: Partial<NodeConfig> = {}): NodeConfig {
    return {
      id,
      clusterId: 'test-cluster',
      dataDir: this.dataDir(id),
      peerListen: peer(id).peerAddress,
      clientListen: peer(id).clientAddress,
      advertisePeer: peer(id).peerAddress,
      advertiseClient: peer(id).clientAddress,
      initialClusterState: 'new',
      initialMembers: this.initialIds.map(peer),
      ...NODE_CONFIG_DEFAULTS,
      tickIntervalMs: TICK_MS,
      snapshotsKept: 2,
      walSegmentSizeBytes: 1024 * 1024, // small segments: tests cut and compact them
      ...this.overrides,
      ...extra,
    };
  }

  async startMember(id: NodeId, extra: Partial<NodeConfig> = {}, stores?: NodeStores): Promise<RaftKvNode> {
    if (this.nodes.has(id)) throw new Error(`node ${id} already running`);
    const transport = this.hub.transport(id, join(this.baseDir, `snap-transfer-${id}`));
    const deps = {
      transport,
      logger: this.logger,
      clock: this.clock,
      rng: seededRng(this.seed * 31 + id),
      onFatal: (err: Error) => this.fatal.set(id, err),
    };
    const cfg = this.config(id, extra);
    const node = stores === undefined ? await startNode(cfg, deps) : await RaftKvNode.start(cfg, deps, stores);
    this.nodes.set(id, node);
    this.transports.set(id, transport);
    return node;
  }

  node(id: NodeId): RaftKvNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`node ${id} is not running`);
    return n;
  }

  /** Graceful stop (a leader hands over first); time moves only while it waits for the handover. */
  async stopMember(id: NodeId): Promise<void> {
    const n = this.node(id);
    const done = n.stop();
    for (let i = 0; i < 100 && n.stopPhase === 'handing-over'; i++) {
      await this.settle();
      if (n.stopPhase === 'handing-over') this.clock.advance(TICK_MS);
    }
    await done;
    this.nodes.delete(id);
    this.transports.delete(id);
  }

  /** Waits until every running node's loop is parked with nothing to do. */
  async settle(): Promise<void> {
    for (let round = 0; round < 10_000; round++) {
      const live = [...this.nodes.values()];
      await Promise.all(live.map((n) => n.whenIdle()));
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (live.every((n) => n.isIdle())) return;
    }
    throw new Error(`cluster did not settle (seed ${this.seed})`);
  }

  /** Ticks every node (settling in between) until `cond` holds; throws after maxTicks. */
  async tickUntil(cond: () => boolean, maxTicks: number, what = 'condition'): Promise<number> {
    await this.settle();
    for (let i = 0; i <= maxTicks; i++) {
      if (cond()) return i;
      this.clock.advance(TICK_MS);
      await this.settle();
    }
    throw new Error(`${what} not reached within ${maxTicks} ticks (seed ${this.seed})`);
  }

  async ticks(n: number): Promise<void> {
    for (let i = 0; i < n; i++) {
      this.clock.advance(TICK_MS);
      await this.settle();
    }
  }

  /** The running node that believes it leads in the highest term, if any. */
  leader(): RaftKvNode | undefined {
    let best: RaftKvNode | undefined;
    for (const n of this.nodes.values()) {
      const s = n.status();
      if (s.role === 'leader' && (best === undefined || s.term > best.status().term)) best = n;
    }
    return best;
  }

  async waitForLeader(maxTicks = 200): Promise<RaftKvNode> {
    await this.tickUntil(() => {
      const l = this.leader();
      // Every running voter agrees on it.
      return l !== undefined && [...this.nodes.values()].every((n) => n.status().leaderId === l.id || !n.status().members.some((m) => m.id === n.id && !m.learner));
    }, maxTicks, 'a leader known to all');
    const l = this.leader();
    if (l === undefined) throw new Error('no leader');
    return l;
  }

  deadline(ms = 10_000): number {
    return this.clock.now() + ms;
  }

  /** Runs a request to completion while settling the cluster (time does not move). */
  async run<T>(p: Promise<T>, maxTicks = 0): Promise<T> {
    let done = false;
    const tracked = p.finally(() => {
      done = true;
    });
    void tracked.catch(() => undefined);
    await this.settle();
    for (let i = 0; i < maxTicks && !done; i++) {
      this.clock.advance(TICK_MS);
      await this.settle();
    }
    return tracked;
  }

  async destroy(): Promise<void> {
    for (const id of [...this.nodes.keys()]) {
      const n = this.nodes.get(id);
      this.nodes.delete(id);
      if (n !== undefined) {
        const stopping = n.stop();
        // A leader waits for a handover: let time run so it gives up quickly.
        for (let i = 0; i < 50; i++) {
          let finished = false;
          await Promise.race([stopping.then(() => (finished = true), () => (finished = true)), new Promise((r) => setImmediate(r))]);
          if (finished) break;
          this.clock.advance(TICK_MS * 5);
        }
        await stopping.catch(() => undefined);
      }
    }
    await rm(this.baseDir, { recursive: true, force: true });
    if (this.fatal.size > 0 && !this.fatalExpected) {
      const [id, err] = [...this.fatal][0] ?? [0, new Error('?')];
      throw new Error(`driver loop of node ${id} died: ${err.message} (seed ${this.seed})`);
    }
  }
}
