// ReadIndex (thesis §6.4): pending read requests at the leader, each with the commit index recorded when it
// arrived, released once a quorum of voters acknowledged a heartbeat carrying its (or a later) context.
import type { Index, NodeId } from './types.js';
import { bytesKey } from './util.js';

export interface ReadIndexStatus {
  readonly index: Index; // the leader's commit index when the request arrived
  readonly from: NodeId; // requester: the leader itself, or a follower that forwarded it
  readonly context: Uint8Array;
  readonly acks: Set<NodeId>;
}

export class ReadOnly {
  private readonly pending = new Map<string, ReadIndexStatus>();
  /** Keys in arrival order. */
  private queue: string[] = [];

  /** Adds a request; a duplicate context is ignored (returns false). */
  addRequest(index: Index, from: NodeId, context: Uint8Array, self: NodeId): boolean {
    const key = bytesKey(context);
    if (this.pending.has(key)) return false;
    this.pending.set(key, { index, from, context, acks: new Set([self]) });
    this.queue.push(key);
    return true;
  }

  /** Records an ack of `context` by `id`; returns the acks so far (undefined if unknown). */
  recvAck(id: NodeId, context: Uint8Array): ReadonlySet<NodeId> | undefined {
    const rs = this.pending.get(bytesKey(context));
    if (rs === undefined) return undefined;
    rs.acks.add(id);
    return rs.acks;
  }

  /** Releases every request up to and including `context` (a later confirmation covers earlier requests). */
  advance(context: Uint8Array): ReadIndexStatus[] {
    const key = bytesKey(context);
    const at = this.queue.indexOf(key);
    if (at < 0) return [];
    const released: ReadIndexStatus[] = [];
    for (const k of this.queue.slice(0, at + 1)) {
      const rs = this.pending.get(k);
      if (rs !== undefined) released.push(rs);
      this.pending.delete(k);
    }
    this.queue = this.queue.slice(at + 1);
    return released;
  }

  /** Context of the newest pending request (sent with heartbeats), or undefined. */
  lastPendingContext(): Uint8Array | undefined {
    const k = this.queue[this.queue.length - 1];
    return k === undefined ? undefined : this.pending.get(k)?.context;
  }

  pendingCount(): number {
    return this.queue.length;
  }

  reset(): void {
    this.pending.clear();
    this.queue = [];
  }
}
