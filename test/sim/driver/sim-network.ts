// The seeded network of the driver simulation: every batch a transport sends becomes delivery events on the
// scheduler, after a drawn latency, with the seed's faults: loss, duplication, long delays (reordering), and
// partitions (any set of directed links, so one-way cuts too). Messages go to whatever incarnation of the
// receiver is up when they arrive. A sender whose link is cut is told "unreachable" now and then, as a broken
// stream would. Snapshot transfers take longer, can fail, and need the link for their whole duration.
import { join } from 'node:path';
import type { Message, NodeId, Rng, SnapshotMessage } from '../../../src/raft/types.js';
import { between, chance } from '../sim-rng.js';
import type { SimScheduler } from './sim-scheduler.js';
import type { SimFileStore } from './sim-files.js';
import type { SimTransport } from './sim-transport.js';

export interface NetworkFaults {
  readonly dropRate: number; // per message
  readonly dupRate: number; // per message
  readonly longDelayRate: number; // per message: delivered 10..80 ms late
  readonly snapshotFailRate: number; // per snapshot transfer
}

export interface NetworkHooks {
  /** Every batch as a transport sends it, before any fault (the persist-before-send checks). */
  onSend(from: NodeId, messages: readonly Message[]): void;
  onDeliver(from: NodeId, to: NodeId, messages: readonly Message[]): void;
  onDrop(from: NodeId, to: NodeId, messages: readonly Message[], why: string): void;
  /** `from` sends to `to`, which it knows only as a remote (a sender not among its peers): known issue K2. */
  onRemote(from: NodeId, to: NodeId): void;
  /** The files of member `id` (snapshots are read from the sender's and written into the receiver's inbox). */
  files(id: NodeId): { store: SimFileStore; inboxDir: string } | undefined;
}

const BASE_LATENCY_MS = { min: 1, max: 8 };
const LONG_DELAY_MS = { min: 10, max: 80 };
const SNAPSHOT_TRANSFER_MS = { min: 5, max: 40 };
const UNREACHABLE_REPORT_RATE = 0.3; // a send over a cut link is reported to the sender this often

const LINK_SPAN = 1024; // directed link (from, to) as one number: from * LINK_SPAN + to

export function link(from: NodeId, to: NodeId): number {
  return from * LINK_SPAN + to;
}

export class SimNetwork {
  private readonly endpoints = new Map<NodeId, SimTransport>(); // the started endpoint of each member
  private readonly partitions = new Map<number, Set<number>>(); // id -> blocked directed links
  private nextPartition = 1;
  private snapshotSeq = 0; // names received snapshot files uniquely
  /** No more random loss, duplication, delays or failed transfers (the liveness phase). */
  calm = false;

  constructor(
    private readonly scheduler: SimScheduler,
    private readonly rng: Rng,
    private readonly faults: NetworkFaults,
    private readonly hooks: NetworkHooks,
  ) {}

  register(t: SimTransport): void {
    this.endpoints.set(t.id, t);
  }

  unregister(t: SimTransport): void {
    if (this.endpoints.get(t.id) === t) this.endpoints.delete(t.id);
  }

  blocked(from: NodeId, to: NodeId): boolean {
    if (this.partitions.size === 0) return false;
    const l = link(from, to);
    for (const p of this.partitions.values()) if (p.has(l)) return true;
    return false;
  }

  /** Blocks `links` until heal(id) or healAll(). */
  partition(links: ReadonlySet<number>): number {
    const id = this.nextPartition++;
    this.partitions.set(id, new Set(links));
    return id;
  }

  heal(id: number): boolean {
    return this.partitions.delete(id);
  }

  healAll(): void {
    this.partitions.clear();
  }

  route(sender: SimTransport, messages: readonly Message[]): void {
    const from = sender.id;
    this.hooks.onSend(from, messages);
    const byPeer = new Map<NodeId, Message[]>();
    for (const m of messages) {
      const list = byPeer.get(m.to);
      if (list === undefined) byPeer.set(m.to, [m]);
      else list.push(m);
    }
    for (const [to, list] of byPeer) {
      if (!sender.reaches(to)) {
        this.hooks.onDrop(from, to, list, 'unknown peer');
        continue;
      }
      if (!sender.peers.has(to)) this.hooks.onRemote(from, to);
      if (this.blocked(from, to) || !this.endpoints.has(to)) {
        this.hooks.onDrop(from, to, list, this.blocked(from, to) ? 'link cut' : 'peer down');
        if (chance(this.rng, UNREACHABLE_REPORT_RATE)) this.scheduler.after(1, () => sender.reportUnreachable(to));
        continue;
      }
      const onTime: Message[] = [];
      for (const m of list) {
        if (!this.calm && chance(this.rng, this.faults.dropRate)) {
          this.hooks.onDrop(from, to, [m], 'lost');
          continue;
        }
        if (!this.calm && chance(this.rng, this.faults.longDelayRate)) this.deliverLater(from, to, [m], between(this.rng, LONG_DELAY_MS.min, LONG_DELAY_MS.max));
        else onTime.push(m);
        if (!this.calm && chance(this.rng, this.faults.dupRate)) this.deliverLater(from, to, [m], between(this.rng, BASE_LATENCY_MS.min, LONG_DELAY_MS.max));
      }
      if (onTime.length > 0) this.deliverLater(from, to, onTime, between(this.rng, BASE_LATENCY_MS.min, BASE_LATENCY_MS.max));
    }
  }

  /** Copies the sender's file into the receiver's snapshot inbox after the transfer time, then hands it over. */
  transferSnapshot(sender: SimTransport, message: SnapshotMessage, filePath: string): Promise<void> {
    const from = sender.id;
    const blob = this.hooks.files(from)?.store.get(filePath);
    if (blob === undefined) return Promise.reject(new Error(`snapshot to node ${message.to}: no file ${filePath}`));
    return new Promise<void>((resolve, reject) => {
      this.scheduler.after(between(this.rng, SNAPSHOT_TRANSFER_MS.min, SNAPSHOT_TRANSFER_MS.max), () => {
        if (!sender.isAlive) return; // the sender died: its promise never settles
        const to = message.to;
        const dest = this.endpoints.get(to);
        const inbox = this.hooks.files(to);
        if (dest === undefined || inbox === undefined || this.blocked(from, to) || (!this.calm && chance(this.rng, this.faults.snapshotFailRate))) {
          this.hooks.onDrop(from, to, [message], 'snapshot transfer failed');
          reject(new Error(`snapshot to node ${to}: stream broken (simulated)`));
          return;
        }
        const path = join(inbox.inboxDir, `recv-${from}-${message.snapshot.metadata.index}-${++this.snapshotSeq}.snap`);
        inbox.store.put(path, blob);
        this.hooks.onDeliver(from, to, [message]);
        dest.receiveSnapshot(message, path);
        resolve();
      });
    });
  }

  private deliverLater(from: NodeId, to: NodeId, messages: readonly Message[], delayMs: number): void {
    this.scheduler.after(delayMs, () => {
      const dest = this.endpoints.get(to);
      if (dest === undefined || this.blocked(from, to)) {
        this.hooks.onDrop(from, to, messages, dest === undefined ? 'peer down' : 'link cut');
        return;
      }
      this.hooks.onDeliver(from, to, messages);
      dest.receive(messages);
    });
  }
}
