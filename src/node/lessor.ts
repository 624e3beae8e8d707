// The leader's side of leases (etcd's lessor as primary): the deadline of every lease, kept in memory on the
// leader only. Keep-alives move a deadline; expiry is not decided here but proposed: the node proposes a
// revoke for each expired lease and the lease ends when the log applies it, on every member alike.
//
// Rules (etcd's):
// - Only a leader has deadlines. On becoming leader (promote) every lease gets now + extendMs + its remaining
//   TTL (the last checkpoint's, else its full TTL): a new leader never expires a lease it could not have seen
//   kept alive, and a failover does not restart long leases from their full TTL when they were checkpointed.
//   Losing leadership (demote) drops every deadline: a deposed or paused leader decides nothing.
// - A revoke proposed for an expired lease is proposed again after revokeRetryMs if the lease is still there
//   (the proposal was dropped in a leader change); at most maxRevokesPerCheck per check (etcd: 1,000 a second).
// - Leases longer than checkpointIntervalMs are checkpointed every checkpointIntervalMs (their remaining TTL
//   through the log); a keep-alive of a lease whose stored checkpoint is below its TTL checkpoints it again,
//   so a new leader does not use the stale remaining TTL (etcd's fix of its checkpoint-after-renew bug).
// Times are the node clock's milliseconds, passed in: this room sets no timer.
import type { Lease } from '../kv/types.js';

/** What the lessor reads: the state machine's lease table as of the applied index. */
export interface LeaseTable {
  lease(id: number): Lease | undefined;
  leaseList(): readonly Lease[];
}

export interface LessorOptions {
  readonly extendMs: number; // what a new leader adds to every lease: the election timeout
  readonly checkpointIntervalMs: number;
  readonly revokeRetryMs: number;
  readonly maxRevokesPerCheck: number;
  readonly maxCheckpointsPerCheck: number;
}

/** etcd's defaults: checkpoints every 5 minutes, revokes retried after 3 s (its leaseRevokeRate is 1,000/s). */
export const LEASE_CHECKPOINT_INTERVAL_MS = 5 * 60_000;
export const LEASE_REVOKE_RETRY_MS = 3_000;
export const LEASE_MAX_REVOKES_PER_CHECK = 500; // checks run every LEASE_CHECK_INTERVAL_MS: 1,000 a second
export const LEASE_CHECK_INTERVAL_MS = 500;

export class Lessor {
  private primary = false; // this member leads: deadlines are kept
  private readonly deadlines = new Map<number, number>(); // lease id -> ms when it expires (primary only)
  private readonly revoking = new Map<number, number>(); // lease id -> ms its revoke was proposed
  private readonly checkpointDue = new Map<number, number>(); // lease id -> ms its next checkpoint is due
  private readonly resetCheckpoint = new Set<number>(); // kept alive while a stale checkpoint is stored

  constructor(
    private readonly table: LeaseTable,
    private readonly opts: LessorOptions,
  ) {}

  get isPrimary(): boolean {
    return this.primary;
  }

  promote(nowMs: number): void {
    this.primary = true;
    this.deadlines.clear();
    this.revoking.clear();
    this.checkpointDue.clear();
    for (const l of this.table.leaseList()) this.start(l, nowMs, this.opts.extendMs);
  }

  demote(): void {
    this.primary = false;
    this.deadlines.clear();
    this.revoking.clear();
    this.checkpointDue.clear();
    this.resetCheckpoint.clear();
  }

  /** Applied lease changes: a grant starts its deadline (on the leader), a revoke ends it. */
  onApplied(leases: ReadonlyMap<number, Lease | undefined>, nowMs: number): void {
    for (const [id, l] of leases) {
      if (l === undefined) {
        this.deadlines.delete(id);
        this.revoking.delete(id);
        this.checkpointDue.delete(id);
        this.resetCheckpoint.delete(id);
      } else if (this.primary && !this.deadlines.has(id)) {
        this.start(l, nowMs, 0);
      }
    }
  }

  private start(l: Lease, nowMs: number, extendMs: number): void {
    const remainingMs = (l.remainingSeconds > 0 ? l.remainingSeconds : l.ttlSeconds) * 1000;
    this.deadlines.set(l.id, nowMs + extendMs + remainingMs);
    if (l.ttlSeconds * 1000 > this.opts.checkpointIntervalMs) this.checkpointDue.set(l.id, nowMs + this.opts.checkpointIntervalMs);
  }

  /** A keep-alive: the lease's TTL, or undefined when it does not exist or has expired (etcd answers TTL 0). */
  renew(id: number, nowMs: number): number | undefined {
    if (!this.primary) throw new Error('lessor: renew on a member that does not lead');
    const l = this.table.lease(id);
    const deadline = this.deadlines.get(id);
    if (l === undefined || deadline === undefined || deadline <= nowMs) return undefined;
    this.deadlines.set(id, nowMs + l.ttlSeconds * 1000);
    if (l.remainingSeconds > 0 && l.remainingSeconds < l.ttlSeconds) this.resetCheckpoint.add(id);
    return l.ttlSeconds;
  }

  /** Whole seconds left (rounded up, as etcd's RemainingTTL), undefined when the lease does not exist. */
  remainingSeconds(id: number, nowMs: number): number | undefined {
    if (!this.primary) throw new Error('lessor: remaining TTL on a member that does not lead');
    const deadline = this.deadlines.get(id);
    if (this.table.lease(id) === undefined || deadline === undefined) return undefined;
    return Math.max(0, Math.ceil((deadline - nowMs) / 1000));
  }

  /** Expired leases whose revoke is due (marked as proposed at nowMs). */
  takeExpired(nowMs: number): number[] {
    if (!this.primary) return [];
    const out: number[] = [];
    for (const [id, deadline] of this.deadlines) {
      if (out.length >= this.opts.maxRevokesPerCheck) break;
      if (deadline > nowMs) continue;
      const proposed = this.revoking.get(id);
      if (proposed !== undefined && nowMs - proposed < this.opts.revokeRetryMs) continue;
      this.revoking.set(id, nowMs);
      out.push(id);
    }
    return out;
  }

  /** Remaining TTLs due for a checkpoint (and those a keep-alive made stale). */
  takeCheckpoints(nowMs: number): { id: number; remainingSeconds: number }[] {
    if (!this.primary) return [];
    const out: { id: number; remainingSeconds: number }[] = [];
    for (const id of this.resetCheckpoint) {
      if (out.length >= this.opts.maxCheckpointsPerCheck) return out;
      const l = this.table.lease(id);
      this.resetCheckpoint.delete(id);
      if (l !== undefined) out.push({ id, remainingSeconds: l.ttlSeconds });
    }
    for (const [id, due] of this.checkpointDue) {
      if (out.length >= this.opts.maxCheckpointsPerCheck) break;
      if (due > nowMs) continue;
      const left = this.remainingSeconds(id, nowMs);
      if (left === undefined) {
        this.checkpointDue.delete(id);
        continue;
      }
      this.checkpointDue.set(id, nowMs + this.opts.checkpointIntervalMs);
      if (left > 0) out.push({ id, remainingSeconds: left });
    }
    return out;
  }
}
