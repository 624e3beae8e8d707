// The peer set: the transport's peers follow the member table (or the configured initial members until it is
// known); a removed member's incarnation is forgotten in peers.json (incarnations.ts), so that it may rejoin on
// an empty directory. A peer that refuses this member as a stale incarnation (its directory was wiped while it
// was still a member) ends the loop: it must not take part, having forgotten its votes and log.
import type { ConfState, Index, NodeId } from '../raft/types.js';
import { RaftKvError } from '../shared/errors.js';
import type { Transport } from '../transport/transport.js';
import type { Member } from './api.js';
import { assert } from './assert.js';
import type { PeerConfig } from './config.js';
import type { IncarnationRegistry } from './incarnations.js';
import type { RoomContext } from './node-context.js';

export interface PeerSetDeps {
  readonly transport: Pick<Transport, 'setPeer' | 'removePeer'>;
  readonly initialMembers: readonly PeerConfig[];
  /** Peers' incarnations (peers.json); undefined: not checked (in-process tests). */
  readonly incarnations: IncarnationRegistry | undefined;
  /** The state machine's member table (empty until the log or a snapshot brings it). */
  members(): readonly Member[];
  /** A peer refused this member: wake the loop to end with refusal. */
  wakeLoop(): void;
}

export class PeerSet {
  private peerIds = new Set<NodeId>(); // peers given to the transport (never this member)
  private refusalError: RaftKvError | undefined; // a peer refused this member as a stale incarnation

  constructor(
    private readonly ctx: RoomContext,
    private readonly deps: PeerSetDeps,
  ) {}

  /** Set once a peer refused this member as a stale incarnation: the loop ends with it. */
  get refusal(): RaftKvError | undefined {
    return this.refusalError;
  }

  /** Gives the transport the peers of the member table, and takes away the ones it no longer has. */
  update(): void {
    const members = this.deps.members();
    const known: { id: NodeId; peerAddress: string }[] = members.length > 0 ? [...members] : [...this.deps.initialMembers];
    const wanted = new Map(known.filter((m) => m.id !== this.ctx.id).map((m) => [m.id, m.peerAddress]));
    for (const [id, address] of wanted) this.deps.transport.setPeer(id, address);
    for (const id of this.peerIds) if (!wanted.has(id)) this.deps.transport.removePeer(id);
    this.peerIds = new Set(wanted.keys());
  }

  /** Forgets a removed member's incarnation (durable; a failure is logged: the record stays, refusing that id). */
  forget(id: NodeId, removedAt: Index): void {
    this.deps.incarnations?.forget(id, removedAt).catch((err: unknown) => {
      this.ctx.log.error({ ...this.ctx.logFields(), member: id, err }, 'could not forget the incarnation of a removed member');
    });
  }

  /** A snapshot at `index` brought configuration `cs`: forgets the incarnations of members not in it. */
  forgetAbsent(cs: ConfState, index: Index): void {
    this.deps.incarnations?.forgetAbsent(new Set([...cs.voters, ...cs.learners]), index).catch((err: unknown) => {
      this.ctx.log.error({ ...this.ctx.logFields(), err }, 'could not update peers.json after a snapshot');
    });
  }

  /**
   * A peer knows another data directory for this member id: this one replaced a wiped directory without the
   * member being removed and added again. It must not take part (it forgot its votes and log): stop.
   */
  onRefusedAsStale(peer: NodeId, reason: string): void {
    if (this.refusalError !== undefined) return;
    const id = this.ctx.id;
    this.refusalError = new RaftKvError(
      'CLUSTER_MISMATCH',
      `member ${peer} refused this member (${id}): its data directory is not the one the cluster knows for member ${id} ` +
        `(it was emptied or replaced while still a member). Remove it (raftkv member remove ${id}), add it again ` +
        `(raftkv member add ${id} ...) and start it on an empty data directory with --initial-cluster-state existing. ` +
        `Peer said: ${reason}`,
    );
    this.deps.wakeLoop();
  }

  assertInvariants(): void {
    assert(!this.peerIds.has(this.ctx.id), `member ${this.ctx.id} is its own peer`);
  }
}
