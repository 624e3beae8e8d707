// An in-process Transport over a shared in-memory hub, for tests that run whole clusters in one process.
// Messages are delivered synchronously into the receiver's handlers (which only queue them), in send order.
// Links can be cut and healed per direction; a stopped or unknown endpoint drops what is sent to it.
// Snapshot files are copied into the receiver's snapshot inbox directory, as the gRPC transport would.
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Message, NodeId, SnapshotMessage } from '../raft/types.js';
import type { Transport, TransportHandlers } from './transport.js';

export interface MemoryHubStats {
  delivered: number; // messages handed to a receiver
  dropped: number; // messages lost to cut links, unknown peers or stopped endpoints
  snapshotsSent: number; // snapshot files delivered
  snapshotsFailed: number; // snapshot transfers that failed (unreachable, cut, or injected)
}

export class MemoryHub {
  private readonly endpoints = new Map<NodeId, MemoryTransport>(); // started endpoints by node id
  private readonly cutLinks = new Set<string>(); // "from>to": messages from -> to are dropped
  private snapshotSeq = 0; // names received snapshot files uniquely
  readonly stats: MemoryHubStats = { delivered: 0, dropped: 0, snapshotsSent: 0, snapshotsFailed: 0 };
  /** Tests: the next this-many snapshot transfers fail after copying (as a broken stream would). */
  failNextSnapshots = 0;

  /** A transport for node `id`; received snapshot files are copied into `snapshotInboxDir`. */
  transport(id: NodeId, snapshotInboxDir: string): MemoryTransport {
    return new MemoryTransport(this, id, snapshotInboxDir);
  }

  /** Cuts both directions between a and b (or one direction with oneWay). */
  cut(a: NodeId, b: NodeId, oneWay = false): void {
    this.cutLinks.add(`${a}>${b}`);
    if (!oneWay) this.cutLinks.add(`${b}>${a}`);
  }

  /** Cuts every link between `id` and every other node that is or will be registered. */
  isolate(id: NodeId, others: readonly NodeId[]): void {
    for (const o of others) if (o !== id) this.cut(id, o);
  }

  heal(a?: NodeId, b?: NodeId): void {
    if (a === undefined || b === undefined) {
      this.cutLinks.clear();
      return;
    }
    this.cutLinks.delete(`${a}>${b}`);
    this.cutLinks.delete(`${b}>${a}`);
  }

  linkUp(from: NodeId, to: NodeId): boolean {
    return !this.cutLinks.has(`${from}>${to}`) && this.endpoints.has(to);
  }

  /** @internal */
  register(t: MemoryTransport): void {
    if (this.endpoints.has(t.id)) throw new Error(`MemoryHub: node ${t.id} is already registered`);
    this.endpoints.set(t.id, t);
  }

  /** @internal */
  unregister(t: MemoryTransport): void {
    if (this.endpoints.get(t.id) === t) this.endpoints.delete(t.id);
  }

  /** @internal Delivers one batch from one sender to one receiver; false when it was dropped. */
  deliver(from: NodeId, to: NodeId, messages: readonly Message[]): boolean {
    const dest = this.endpoints.get(to);
    if (dest === undefined || this.cutLinks.has(`${from}>${to}`)) {
      this.stats.dropped += messages.length;
      return false;
    }
    this.stats.delivered += messages.length;
    dest.receive(messages);
    return true;
  }

  /** @internal */
  async deliverSnapshot(from: NodeId, message: SnapshotMessage, filePath: string): Promise<void> {
    try {
      await this.transferSnapshot(from, message, filePath);
    } catch (err) {
      this.stats.snapshotsFailed++;
      throw err;
    }
  }

  private async transferSnapshot(from: NodeId, message: SnapshotMessage, filePath: string): Promise<void> {
    const dest = this.endpoints.get(message.to);
    if (dest === undefined || this.cutLinks.has(`${from}>${message.to}`)) {
      throw new Error(`snapshot to node ${message.to}: unreachable`);
    }
    await mkdir(dest.snapshotInboxDir, { recursive: true });
    const target = join(dest.snapshotInboxDir, `recv-${from}-${message.snapshot.metadata.index}-${++this.snapshotSeq}.snap`);
    await copyFile(filePath, target);
    if (this.failNextSnapshots > 0) {
      this.failNextSnapshots--;
      await rm(target, { force: true });
      throw new Error(`snapshot to node ${message.to}: stream broken (injected)`);
    }
    // The link may have been cut, or the receiver stopped, while the file was copied.
    if (this.endpoints.get(message.to) !== dest || this.cutLinks.has(`${from}>${message.to}`)) {
      throw new Error(`snapshot to node ${message.to}: link lost during transfer`);
    }
    this.stats.snapshotsSent++;
    dest.receiveSnapshot(message, target);
  }
}

export class MemoryTransport implements Transport {
  private handlers: TransportHandlers | undefined; // set by start(), cleared by stop()
  private readonly peers = new Map<NodeId, string>(); // peers we send to (address unused in memory)
  private readonly unreachable = new Set<NodeId>(); // peers whose last send failed (reported once per outage)

  constructor(
    private readonly hub: MemoryHub,
    readonly id: NodeId,
    readonly snapshotInboxDir: string,
  ) {}

  start(handlers: TransportHandlers): Promise<void> {
    if (this.handlers !== undefined) throw new Error(`MemoryTransport ${this.id}: started twice`);
    this.handlers = handlers;
    this.hub.register(this);
    return Promise.resolve();
  }

  send(messages: readonly Message[]): void {
    if (this.handlers === undefined || messages.length === 0) return;
    const byPeer = new Map<NodeId, Message[]>();
    for (const m of messages) {
      const list = byPeer.get(m.to);
      if (list === undefined) byPeer.set(m.to, [m]);
      else list.push(m);
    }
    for (const [to, list] of byPeer) {
      const ok = this.peers.has(to) && this.hub.deliver(this.id, to, list);
      if (ok) {
        this.unreachable.delete(to);
      } else if (!this.unreachable.has(to)) {
        this.unreachable.add(to);
        this.handlers.onPeerUnreachable(to);
      }
    }
  }

  async sendSnapshot(message: SnapshotMessage, filePath: string): Promise<void> {
    if (this.handlers === undefined) throw new Error(`MemoryTransport ${this.id}: not started`);
    if (!this.peers.has(message.to)) throw new Error(`snapshot to node ${message.to}: unknown peer`);
    await this.hub.deliverSnapshot(this.id, message, filePath);
  }

  setPeer(id: NodeId, peerAddress: string): void {
    this.peers.set(id, peerAddress);
  }

  removePeer(id: NodeId): void {
    this.peers.delete(id);
    this.unreachable.delete(id);
  }

  /** The peers this endpoint currently sends to (tests check membership wiring). */
  peerIds(): NodeId[] {
    return [...this.peers.keys()].sort((a, b) => a - b);
  }

  stop(): Promise<void> {
    this.hub.unregister(this);
    this.handlers = undefined;
    return Promise.resolve();
  }

  /** @internal */
  receive(messages: readonly Message[]): void {
    this.handlers?.onMessages(messages);
  }

  /** @internal */
  receiveSnapshot(message: SnapshotMessage, filePath: string): void {
    this.handlers?.onSnapshot(message, filePath);
  }
}
