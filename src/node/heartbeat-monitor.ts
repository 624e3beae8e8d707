// The leader's heartbeats, watched: etcd's heartbeat timeout detector ("leader failed to send out heartbeat on
// time") and the round trip of each heartbeat to its follower's answer.
//
// Late: a heartbeat to a follower sent more than LATE_HEARTBEAT_FACTOR heartbeat intervals after the previous
// one (on the node's clock) means the loop could not send in time: one warn line with the figures, and
// NodeMetrics.onHeartbeatLate. The record is forgotten when this member stops leading.
//
// Round trip: from handing a heartbeat to the transport to its heartbeat-resp arriving from the transport,
// on a monotonic clock (sub-millisecond). It includes the follower's loop turn (the answer leaves after its
// next Ready), so it is an upper bound on the network's round trip; etcd's prober measures a bare HTTP round
// trip on the peer port. Only the latest heartbeat per peer is timed: a lost answer leaves no sample.
import type { Message, NodeId } from '../raft/types.js';
import type { RoomContext } from './node-context.js';
import type { NodeMetrics } from './node-metrics.js';
import { LATE_HEARTBEAT_FACTOR } from './slow-ops.js';

export class HeartbeatMonitor {
  private readonly lastSentMs = new Map<NodeId, number>(); // node clock: when the last heartbeat to a peer left
  private readonly awaiting = new Map<NodeId, number>(); // monotonic: the unanswered heartbeat to a peer

  constructor(
    private readonly ctx: RoomContext,
    private readonly metrics: NodeMetrics,
    private readonly heartbeatIntervalMs: number,
    private readonly monotonicMs: () => number = () => performance.now(),
  ) {}

  /** Messages handed to the transport. */
  onSend(messages: readonly Message[]): void {
    for (const m of messages) {
      if (m.type !== 'heartbeat') continue;
      const now = this.ctx.clock.now();
      const last = this.lastSentMs.get(m.to);
      const expectedMs = LATE_HEARTBEAT_FACTOR * this.heartbeatIntervalMs;
      if (last !== undefined && now - last > expectedMs) {
        this.metrics.onHeartbeatLate(m.to);
        this.ctx.log.warn(
          { ...this.ctx.logFields(), to: m.to, heartbeatIntervalMs: this.heartbeatIntervalMs, expectedDurationMs: expectedMs, exceededDurationMs: now - last - expectedMs },
          'leader failed to send out heartbeat on time; took too long, leader is overloaded likely from slow disk',
        );
      }
      this.lastSentMs.set(m.to, now);
      this.awaiting.set(m.to, this.monotonicMs());
    }
  }

  /** Messages that arrived from peers. */
  onReceive(messages: readonly Message[]): void {
    for (const m of messages) {
      if (m.type !== 'heartbeat-resp') continue;
      const sent = this.awaiting.get(m.from);
      if (sent === undefined) continue;
      this.awaiting.delete(m.from);
      this.metrics.onPeerRoundTrip(m.from, this.monotonicMs() - sent);
    }
  }

  /** This member stopped leading: the next term's heartbeats start a new record. */
  onLeaderChange(): void {
    this.lastSentMs.clear();
    this.awaiting.clear();
  }
}
