// What the dashboard shows: the whole cluster as one member sees it, gathered on demand for GET /cluster.
//
// Design: the page polls only the member that served it; that member does the fan-out server-side. It knows
// its peers from its member table (status().members) and calls each one's Admin.Status on its client port
// (role, term, leader, commit and applied index, the leader's per-follower progress, and the peer's metrics
// URL, which Status carries); a member that does not answer within PEER_STATUS_TIMEOUT_MS is shown down with
// the error. For members that have a metrics server it also reads GET <metricsUrl>/member (requests per second
// and latency, which only that member counts). So the page needs no address of its own for any peer, and works
// the same from a follower; if its own member stops answering, the page itself moves on to another member's
// /cluster (the addresses it learned here; /cluster answers with CORS open for that).
//
// The timeline is this member's own record: leader changes as its node saw them (with how long it was without
// a leader: the failover as seen from here), and members going down and up as its gathers saw them (so only
// while someone watches; one gather every CLUSTER_CACHE_MS at most, shared by every open page). Bounded to
// MAX_EVENTS.
import { Client, Metadata, credentials } from '@grpc/grpc-js';
import type { ChannelCredentials, ServiceError } from '@grpc/grpc-js';
import type { KvNode, NodeStatus } from '../node/api.js';
import type { NodeId, Term } from '../raft/types.js';
import { NONE } from '../raft/types.js';
import { ADMIN_METHODS } from '../protocol/proto.js';
import type { WireStatusResponse } from '../protocol/proto.js';
import type { RequestRecorder, RequestStats } from './request-recorder.js';
import { grpcCodeName } from './grpc-metrics.js';

/** gRPC's connection errors run to several sentences; the first says what happened. */
function firstSentence(text: string): string {
  const m = /^[^.]*\./.exec(text);
  return (m?.[0] ?? text).slice(0, 120);
}

/** A peer's Status must answer within this, or the member shows as down (a live one answers in ~1 ms). */
export const PEER_STATUS_TIMEOUT_MS = 500;
/** Gathers are shared within this window: ten open pages cost one fan-out a poll, not ten. */
export const CLUSTER_CACHE_MS = 250;
/** Timeline events kept (the oldest go first). */
export const MAX_EVENTS = 200;

export interface FollowerProgress {
  readonly id: NodeId;
  readonly match: number;
  readonly state: string;
  readonly lagEntries: number; // the leader's last index - match
}

export interface MemberView {
  readonly id: NodeId;
  readonly clientAddress: string;
  readonly metricsUrl: string; // "" if it serves none (or is down and never told us)
  readonly up: boolean;
  readonly error?: string; // why it is shown down
  readonly role?: string;
  readonly term?: number;
  readonly leaderId?: number;
  readonly commitIndex?: number;
  readonly appliedIndex?: number;
  readonly lastLogIndex?: number;
  readonly revision?: number;
  readonly applyLagEntries?: number; // commit - applied, as it reports
  readonly replicationLagEntries?: number; // the leader's last index - its match, from the leader's progress
  readonly progress?: readonly FollowerProgress[]; // the leader's replication progress
  readonly requests?: RequestStats;
}

export type TimelineEvent =
  | { readonly atMs: number; readonly type: 'leader'; readonly leader: NodeId; readonly previousLeader: NodeId; readonly term: Term; readonly withoutLeaderMs: number }
  | { readonly atMs: number; readonly type: 'leader-lost'; readonly previousLeader: NodeId; readonly term: Term }
  | { readonly atMs: number; readonly type: 'member-down'; readonly member: NodeId; readonly error: string }
  | { readonly atMs: number; readonly type: 'member-up'; readonly member: NodeId };

export interface ClusterSnapshot {
  readonly servedBy: NodeId;
  readonly atMs: number;
  readonly leaderId: NodeId; // the leader as the serving member knows it
  readonly term: Term;
  readonly members: readonly MemberView[];
  readonly events: readonly TimelineEvent[]; // oldest first
}

export interface ClusterViewOptions {
  readonly node: KvNode;
  readonly requests: RequestRecorder;
  readonly metricsUrl: () => string; // this member's own
  readonly now?: () => number; // wall clock for the timeline; default Date.now
  readonly credentials?: ChannelCredentials; // how other members' client ports are dialled; default plaintext
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class ClusterView {
  private readonly events: TimelineEvent[] = [];
  private readonly clients = new Map<string, Client>(); // one channel per peer client address
  private readonly wasUp = new Map<NodeId, boolean>(); // as of the last gather
  private lastLeader: NodeId = NONE;
  private leaderLostAtMs: number | undefined; // when this member last lost its leader
  private cached: { atMs: number; snapshot: Promise<ClusterSnapshot> } | undefined;
  private readonly now: () => number;

  constructor(private readonly opts: ClusterViewOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** The node saw a leader change (PromMetrics' listener). */
  onLeaderChange(leader: NodeId, term: Term): void {
    const atMs = this.now();
    const previousLeader = this.lastLeader;
    this.lastLeader = leader;
    if (leader === NONE) {
      this.leaderLostAtMs = atMs;
      this.push({ atMs, type: 'leader-lost', previousLeader, term });
      return;
    }
    const withoutLeaderMs = this.leaderLostAtMs === undefined ? 0 : atMs - this.leaderLostAtMs;
    this.leaderLostAtMs = undefined;
    this.push({ atMs, type: 'leader', leader, previousLeader, term, withoutLeaderMs });
  }

  /** This member's own figures (GET /member, read by the other members' gathers). */
  self(): { id: NodeId; requests: RequestStats } {
    return { id: this.opts.node.id, requests: this.opts.requests.stats() };
  }

  /** The cluster now (shared with gathers started within CLUSTER_CACHE_MS). Never rejects. */
  snapshot(): Promise<ClusterSnapshot> {
    const atMs = this.now();
    if (this.cached !== undefined && atMs - this.cached.atMs < CLUSTER_CACHE_MS) return this.cached.snapshot;
    const snapshot = this.gather(atMs);
    this.cached = { atMs, snapshot };
    return snapshot;
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }

  private async gather(atMs: number): Promise<ClusterSnapshot> {
    const node = this.opts.node;
    let own: NodeStatus | undefined;
    try {
      own = node.status();
    } catch {
      own = undefined; // starting
    }
    const members = own?.members ?? [];
    const views = await Promise.all(
      members.map(async (m): Promise<MemberView> => {
        if (m.id === node.id && own !== undefined) return this.viewOf(own, this.opts.metricsUrl(), this.opts.requests.stats());
        try {
          const s = await this.peerStatus(m.clientAddress);
          const requests = s.metricsUrl === '' ? undefined : await this.peerRequests(s.metricsUrl);
          return this.viewOf(fromWire(s), s.metricsUrl, requests);
        } catch (err) {
          return { id: m.id, clientAddress: m.clientAddress, metricsUrl: '', up: false, error: errorText(err) };
        }
      }),
    );
    const leaderView = views.find((v) => v.up && v.role === 'leader');
    const withLag = views.map((v): MemberView => {
      const p = leaderView?.progress?.find((x) => x.id === v.id);
      return p === undefined ? v : { ...v, replicationLagEntries: p.lagEntries };
    });
    for (const v of withLag) {
      const before = this.wasUp.get(v.id);
      if (before !== undefined && before !== v.up) {
        this.push(v.up ? { atMs, type: 'member-up', member: v.id } : { atMs, type: 'member-down', member: v.id, error: v.error ?? '' });
      }
      this.wasUp.set(v.id, v.up);
    }
    return { servedBy: node.id, atMs, leaderId: own?.leaderId ?? NONE, term: own?.term ?? 0, members: withLag, events: [...this.events] };
  }

  private viewOf(s: NodeStatus, metricsUrl: string, requests: RequestStats | undefined): MemberView {
    return {
      id: s.id,
      clientAddress: s.clientAddress,
      metricsUrl,
      up: true,
      role: s.role,
      term: s.term,
      leaderId: s.leaderId,
      commitIndex: s.commitIndex,
      appliedIndex: s.appliedIndex,
      lastLogIndex: s.lastLogIndex,
      revision: s.revision,
      applyLagEntries: Math.max(0, s.commitIndex - s.appliedIndex),
      ...(s.role === 'leader' ? { progress: s.progress.map((p) => ({ id: p.id, match: p.match, state: p.state, lagEntries: Math.max(0, s.lastLogIndex - p.match) })) } : {}),
      ...(requests !== undefined ? { requests } : {}),
    };
  }

  private peerStatus(address: string): Promise<WireStatusResponse> {
    const m = ADMIN_METHODS.status;
    return new Promise((resolve, reject) => {
      this.clientFor(address).makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, {}, new Metadata(), { deadline: Date.now() + PEER_STATUS_TIMEOUT_MS }, (err: ServiceError | null, res?: WireStatusResponse) => {
        if (err) reject(new Error(`${grpcCodeName(err.code)}: ${firstSentence(err.details || err.message)}`));
        else if (res === undefined) reject(new Error(`${address}: empty Status response`));
        else resolve(res);
      });
    });
  }

  /** A peer's request figures; undefined when its metrics server does not answer (it still shows as up). */
  private async peerRequests(metricsUrl: string): Promise<RequestStats | undefined> {
    try {
      const res = await fetch(`${metricsUrl}/member`, { signal: AbortSignal.timeout(PEER_STATUS_TIMEOUT_MS) });
      if (!res.ok) return undefined;
      const body = (await res.json()) as { requests?: RequestStats };
      return body.requests;
    } catch {
      return undefined;
    }
  }

  private clientFor(address: string): Client {
    let c = this.clients.get(address);
    if (c === undefined) {
      c = new Client(address, this.opts.credentials ?? credentials.createInsecure(), {
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 1000,
        'grpc.enable_retries': 0,
      });
      this.clients.set(address, c);
    }
    return c;
  }

  private push(e: TimelineEvent): void {
    this.events.push(e);
    if (this.events.length > MAX_EVENTS) this.events.shift();
  }
}

function fromWire(s: WireStatusResponse): NodeStatus {
  return {
    id: s.id,
    clusterId: s.clusterId,
    clientAddress: s.clientAddress,
    role: s.role as NodeStatus['role'],
    term: s.term,
    leaderId: s.leaderId,
    commitIndex: s.commitIndex,
    appliedIndex: s.appliedIndex,
    revision: s.revision,
    compactedRevision: s.compactedRevision,
    lastLogIndex: s.lastLogIndex,
    snapshotIndex: s.snapshotIndex,
    dataSizeBytes: s.dataSizeBytes,
    members: s.members,
    progress: s.progress,
  };
}
