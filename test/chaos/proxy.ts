// Fault-injecting TCP proxies for real partitions between processes: one proxy per directed peer link a->b.
// Node a dials peer b through the proxy (`raftkv serve --dial-override b=<proxy address>`), so cutting
// link a->b affects exactly the connections a opens to b. A link carries bytes in two directions:
// 'forward' (dialer -> target, a's requests) and 'backward' (target -> dialer, b's responses).
//
// Cut modes:
//   'stall': bytes in the cut direction(s) are held by the proxy (a black hole); on heal they are delivered
//            in order, like TCP retransmitting after a partition heals. New connections are accepted but stall.
//   'drop':  bytes in the cut direction(s) are discarded; cutting both directions also resets every open
//            connection and resets new ones at once (connection refused-like). On heal, connections that lost
//            bytes are reset (their framing is broken), and the dialer reconnects.
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { NodeId } from '../../src/raft/types.js';
import { assertNever } from './history.js';

export type CutMode = 'drop' | 'stall';
export type LinkDirection = 'both' | 'forward' | 'backward';

export type LinkState =
  | { readonly kind: 'open' }
  | { readonly kind: 'cut'; readonly mode: CutMode; readonly direction: LinkDirection };

const MAX_HELD_BYTES = 64 * 1024 * 1024; // past this a stalled direction stops reading (TCP backpressure)

/** One direction of one proxied connection. */
class Pipe {
  private held: Buffer[] = []; // stalled bytes, in order
  private heldBytes = 0;
  tainted = false; // bytes were dropped: the stream is broken and must be reset on heal

  constructor(
    private readonly src: Socket,
    private readonly dst: Socket,
    private readonly stateOf: () => 'pass' | CutMode, // this direction's current state
    private readonly count: (n: number) => void,
    private readonly countDropped: (n: number) => void,
  ) {
    src.on('data', (chunk: Buffer) => this.onData(chunk));
  }

  private onData(chunk: Buffer): void {
    const s = this.stateOf();
    switch (s) {
      case 'drop':
        this.tainted = true;
        this.countDropped(chunk.length);
        return;
      case 'stall':
        this.held.push(chunk);
        this.heldBytes += chunk.length;
        if (this.heldBytes > MAX_HELD_BYTES) this.src.pause();
        return;
      case 'pass':
        this.forward(chunk);
        return;
      default:
        assertNever(s);
    }
  }

  private forward(chunk: Buffer): void {
    if (this.dst.destroyed) return;
    this.count(chunk.length);
    if (!this.dst.write(chunk)) {
      this.src.pause();
      this.dst.once('drain', () => {
        if (this.stateOf() === 'pass' && !this.src.destroyed) this.src.resume();
      });
    }
  }

  /** Delivers held bytes (after a heal). */
  flush(): void {
    const held = this.held;
    this.held = [];
    this.heldBytes = 0;
    for (const c of held) this.forward(c);
    if (!this.src.destroyed && this.src.isPaused() && this.dst.writableLength === 0) this.src.resume();
  }

  get bytesHeld(): number {
    return this.heldBytes;
  }
}

interface Conn {
  readonly client: Socket; // the dialer's socket (accepted by the proxy)
  readonly upstream: Socket; // the proxy's socket to the target
  readonly forward: Pipe;
  readonly backward: Pipe;
}

export interface LinkStats {
  connections: number; // accepted in all
  open: number; // open now
  bytesForward: number;
  bytesBackward: number;
  resets: number; // connections reset by the proxy (drop cuts, heals of broken streams)
  bytesDropped: number; // discarded by 'drop' cuts
}

/** A TCP proxy for one directed link. */
export class LinkProxy {
  private server: Server | undefined;
  private readonly conns = new Set<Conn>();
  private linkState: LinkState = { kind: 'open' };
  private listenPort = 0; // 0 until started
  readonly stats: LinkStats = { connections: 0, open: 0, bytesForward: 0, bytesBackward: 0, resets: 0, bytesDropped: 0 };

  constructor(
    readonly name: string, // e.g. "1->2"
    private readonly target: { host: string; port: number },
    private readonly listen: { host: string; port: number } = { host: '127.0.0.1', port: 0 },
  ) {}

  async start(): Promise<void> {
    const server = createServer((client) => this.accept(client));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.listen.port, this.listen.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address();
    if (addr === null || typeof addr === 'string') throw new Error(`proxy ${this.name}: no TCP address`);
    this.listenPort = addr.port;
  }

  /** host:port the dialer should use. */
  get address(): string {
    if (this.listenPort === 0) throw new Error(`proxy ${this.name} not started`);
    return `${this.listen.host}:${this.listenPort}`;
  }

  get state(): LinkState {
    return this.linkState;
  }

  /** Bytes held by stalled directions right now. */
  get bytesHeld(): number {
    let n = 0;
    for (const c of this.conns) n += c.forward.bytesHeld + c.backward.bytesHeld;
    return n;
  }

  private directionState(dir: 'forward' | 'backward'): 'pass' | CutMode {
    const s = this.linkState;
    if (s.kind === 'open') return 'pass';
    return s.direction === 'both' || s.direction === dir ? s.mode : 'pass';
  }

  private droppingBoth(): boolean {
    return this.linkState.kind === 'cut' && this.linkState.mode === 'drop' && this.linkState.direction === 'both';
  }

  private accept(client: Socket): void {
    this.stats.connections++;
    if (this.droppingBoth()) {
      this.stats.resets++;
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(this.target.port, this.target.host);
    const drop = (n: number): void => {
      this.stats.bytesDropped += n;
    };
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const conn: Conn = {
      client,
      upstream,
      forward: new Pipe(client, upstream, () => this.directionState('forward'), (n) => (this.stats.bytesForward += n), drop),
      backward: new Pipe(upstream, client, () => this.directionState('backward'), (n) => (this.stats.bytesBackward += n), drop),
    };
    this.conns.add(conn);
    this.stats.open++;
    const close = (): void => {
      if (!this.conns.delete(conn)) return;
      this.stats.open--;
      if (!client.destroyed) client.destroy();
      if (!upstream.destroyed) upstream.destroy();
    };
    // Errors (resets, refused target) close both sides: the dialer sees its connection break.
    client.on('error', close);
    upstream.on('error', close);
    client.on('close', close);
    upstream.on('close', close);
  }

  private reset(conn: Conn): void {
    this.stats.resets++;
    if (!conn.client.destroyed) conn.client.resetAndDestroy();
    if (!conn.upstream.destroyed) conn.upstream.resetAndDestroy();
  }

  cut(mode: CutMode, direction: LinkDirection = 'both'): void {
    this.linkState = { kind: 'cut', mode, direction };
    if (this.droppingBoth()) for (const c of [...this.conns]) this.reset(c);
  }

  heal(): void {
    this.linkState = { kind: 'open' };
    for (const c of [...this.conns]) {
      if (c.forward.tainted || c.backward.tainted) {
        this.reset(c);
        continue;
      }
      c.forward.flush();
      c.backward.flush();
    }
  }

  async stop(): Promise<void> {
    for (const c of [...this.conns]) {
      c.client.destroy();
      c.upstream.destroy();
    }
    const server = this.server;
    this.server = undefined;
    if (server === undefined) return;
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

export function parseHostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  const port = Number(address.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`bad host:port "${address}"`);
  return { host: address.slice(0, i), port };
}

/**
 * One proxy per ordered pair of members. Partitions are expressed as sets of cut directed links.
 */
export class ProxyMesh {
  private readonly links = new Map<string, LinkProxy>(); // "a->b"

  constructor(private readonly peerAddresses: ReadonlyMap<NodeId, string>) {}

  async start(): Promise<void> {
    for (const [a] of this.peerAddresses) {
      for (const [b, addr] of this.peerAddresses) {
        if (a === b) continue;
        const p = new LinkProxy(`${a}->${b}`, parseHostPort(addr));
        await p.start();
        this.links.set(`${a}->${b}`, p);
      }
    }
  }

  link(from: NodeId, to: NodeId): LinkProxy {
    const p = this.links.get(`${from}->${to}`);
    if (p === undefined) throw new Error(`no proxy for link ${from}->${to}`);
    return p;
  }

  /** The `--dial-override` value for node `from`: every other member through its proxy. */
  dialOverride(from: NodeId): string {
    return [...this.peerAddresses.keys()]
      .filter((b) => b !== from)
      .map((b) => `${b}=${this.link(from, b).address}`)
      .join(',');
  }

  /** Cut every link between members of different groups (members in no group are unaffected). */
  partition(groups: readonly (readonly NodeId[])[], mode: CutMode = 'stall'): void {
    const groupOf = new Map<NodeId, number>();
    groups.forEach((g, i) => g.forEach((n) => groupOf.set(n, i)));
    for (const [a, ga] of groupOf) {
      for (const [b, gb] of groupOf) {
        if (a !== b && ga !== gb) this.link(a, b).cut(mode);
      }
    }
  }

  /** Cut `node` off from everyone. */
  isolate(node: NodeId, mode: CutMode = 'stall'): void {
    const others = [...this.peerAddresses.keys()].filter((n) => n !== node);
    this.partition([[node], others], mode);
  }

  /**
   * A bridge (Jepsen's): two halves that cannot talk to each other, and one `bridge` node that talks to both.
   */
  bridge(left: readonly NodeId[], bridgeNode: NodeId, right: readonly NodeId[], mode: CutMode = 'stall'): void {
    for (const a of left) for (const b of right) {
      this.link(a, b).cut(mode);
      this.link(b, a).cut(mode);
    }
    void bridgeNode; // its links stay open
  }

  /** `from`'s messages no longer reach `to` (the connections `from` dials to `to` are cut); the reverse works. */
  oneWay(from: NodeId, to: NodeId, mode: CutMode = 'stall'): void {
    this.link(from, to).cut(mode);
  }

  heal(): void {
    for (const p of this.links.values()) p.heal();
  }

  /** Links currently cut, e.g. ["1->2", "2->1"]. */
  cutLinks(): string[] {
    return [...this.links.values()].filter((p) => p.state.kind === 'cut').map((p) => p.name);
  }

  async stop(): Promise<void> {
    for (const p of this.links.values()) await p.stop();
    this.links.clear();
  }
}
