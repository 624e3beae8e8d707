// The Transport port of one simulated process incarnation, over the seeded SimNetwork. Sends never block and
// never throw (unknown peers and cut links drop, Raft retries); a snapshot is "streamed" by copying the file's
// content into the receiver's snapshot inbox. After a crash the endpoint is dead: it sends nothing, and what
// it awaited never settles.
//
// Replies to senders the driver never gave us (`remotes`): only with `repliesToRemotes` (known issue K2 of
// FOUND-BUGS.md, tolerated unless the simulation is strict): a member behind the cluster cannot recognize a
// member added after its progress, so without them it cannot answer that member once it leads. etcd's
// rafthttp does the same (Transport.AddRemote from the sender's X-PeerURLs).
import type { Message, NodeId, SnapshotMessage } from '../../../src/raft/types.js';
import type { Transport, TransportHandlers } from '../../../src/transport/transport.js';
import type { SimNetwork } from './sim-network.js';

export class SimTransport implements Transport {
  private handlers: TransportHandlers | undefined; // set by start(), cleared by stop()
  readonly peers = new Map<NodeId, string>(); // the peers the driver gave us
  readonly remotes = new Set<NodeId>(); // senders not among `peers` (repliesToRemotes only)

  constructor(
    private readonly network: SimNetwork,
    readonly id: NodeId,
    private readonly alive: () => boolean,
    private readonly repliesToRemotes: boolean,
  ) {}

  /** May this endpoint send to `to`? */
  reaches(to: NodeId): boolean {
    return this.peers.has(to) || this.remotes.has(to);
  }

  get isAlive(): boolean {
    return this.alive();
  }

  start(handlers: TransportHandlers): Promise<void> {
    if (!this.alive()) return new Promise<void>(() => undefined);
    if (this.handlers !== undefined) throw new Error(`SimTransport ${this.id}: started twice`);
    this.handlers = handlers;
    this.network.register(this);
    return Promise.resolve();
  }

  send(messages: readonly Message[]): void {
    if (!this.alive() || this.handlers === undefined || messages.length === 0) return;
    this.network.route(this, messages);
  }

  sendSnapshot(message: SnapshotMessage, filePath: string): Promise<void> {
    if (!this.alive()) return new Promise<void>(() => undefined);
    if (this.handlers === undefined) return Promise.reject(new Error(`SimTransport ${this.id}: not started`));
    if (!this.peers.has(message.to)) return Promise.reject(new Error(`snapshot to node ${message.to}: unknown peer`));
    return this.network.transferSnapshot(this, message, filePath);
  }

  setPeer(id: NodeId, peerAddress: string): void {
    this.peers.set(id, peerAddress);
  }

  removePeer(id: NodeId): void {
    this.peers.delete(id);
  }

  stop(): Promise<void> {
    this.network.unregister(this);
    this.handlers = undefined;
    return Promise.resolve();
  }

  /** The process died: the network forgets this endpoint. */
  kill(): void {
    this.network.unregister(this);
    this.handlers = undefined;
  }

  receive(messages: readonly Message[]): void {
    if (!this.alive()) return;
    if (this.repliesToRemotes) for (const m of messages) if (!this.peers.has(m.from)) this.remotes.add(m.from);
    this.handlers?.onMessages(messages);
  }

  receiveSnapshot(message: SnapshotMessage, filePath: string): void {
    if (this.alive()) this.handlers?.onSnapshot(message, filePath);
  }

  reportUnreachable(peer: NodeId): void {
    if (this.alive()) this.handlers?.onPeerUnreachable(peer);
  }
}
