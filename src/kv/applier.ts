// etcd's applier: runs one command of an apply batch against its Overlay (the batch's writes so far) on the
// state before it, exactly as etcd's applierV3 would: put, delete range, txn (compares on the pre-txn state,
// then etcd's checks in its order, then the ops), compact, leases, alarms and auth. Every change to a key goes
// through write(), which moves the record, its history, its lease attachment, the digest and the watch event
// together. Nothing here touches LevelDB: the state machine turns the Overlay into one batch.
//
// A request error (a RaftKvError with a request code) is thrown before the command wrote anything, so the
// Overlay holds none of it; any other throw is a bug.
import { RaftKvError } from '../shared/errors.js';
import { assertNever } from './codec.js';
import type { StoredValue } from './codec.js';
import { compareKv, toKeyValue } from './commands.js';
import type { Overlay, WriteTx } from './commands.js';
import { TOMBSTONE, encodeHistoryRecord, historyKey } from './history.js';
import type { HistoryRecord } from './history.js';
import type { AlarmTable } from './alarms.js';
import type { AuthStore } from './auth-store.js';
import type { KeySpaceDigest } from './key-space-digest.js';
import { ETCD_LEASE_EXISTS, MAX_LEASES, attachedKey, checkLeaseGrant } from './leases.js';
import type { MvccReader } from './mvcc-reader.js';
import { keyString } from './schema.js';
import type {
  Command,
  CommandResult,
  Compare,
  DeleteOp,
  DeleteResult,
  Lease,
  LeaseCheckpointOp,
  LeaseGrantOp,
  LeaseRevokeOp,
  Op,
  OpResult,
  PutOp,
  PutResult,
  RangeRequest,
  TxnOp,
} from './types.js';
import { ETCD_COMPACTED, ETCD_FUTURE_REV, ETCD_KEY_NOT_FOUND, ETCD_LEASE_NOT_FOUND } from './validate.js';

/** The state a command reads and the tables it changes in place (the state machine's, as of appliedIndex). */
export interface ApplierHost {
  readonly reader: MvccReader; // the key space with the batch's writes over it
  readonly digest: KeySpaceDigest; // moved by every key change
  readonly leases: ReadonlyMap<number, Lease>; // the lease table before the batch (its changes go to the Overlay)
  readonly alarms: AlarmTable; // changed in place by an alarm command
  readonly auth: AuthStore; // changed in place by an auth command
}

export class Applier {
  constructor(private readonly host: ApplierHost) {}

  /**
   * The one place a batch changes a key: the overlay, its history record, its lease attachment, the digest and
   * the watch event move together.
   */
  private write(overlay: Overlay, tx: WriteTx, key: Uint8Array, prev: StoredValue | undefined, next: StoredValue | undefined): void {
    overlay.data.set(keyString(key), { key, sv: next });
    const prevLease = prev?.lease ?? 0;
    const nextLease = next?.lease ?? 0;
    if (prevLease !== nextLease) {
      if (prevLease !== 0) {
        const a = attachedKey(prevLease, key);
        overlay.attached.set(keyString(a), { key: a, present: false });
      }
      if (nextLease !== 0) {
        const a = attachedKey(nextLease, key);
        overlay.attached.set(keyString(a), { key: a, present: true });
      }
    }
    // etcd's prev_kv is the key as of the revision before (a key a txn changes twice has the same one twice).
    const ks = keyString(key);
    let before = overlay.before.get(ks);
    if (before?.main !== tx.main) {
      before = { main: tx.main, prevKv: prev === undefined ? undefined : toKeyValue(key, prev) };
      overlay.before.set(ks, before);
    }
    overlay.events.push({
      type: next === undefined ? 'delete' : 'put',
      kv: next === undefined ? { key, value: new Uint8Array(0), createRevision: 0, modRevision: tx.main, version: 0, lease: 0 } : toKeyValue(key, next),
      prevKv: before.prevKv,
      sub: tx.sub,
    });
    const hkey = historyKey(key, tx.main, tx.sub++);
    const rec: HistoryRecord =
      next === undefined ? TOMBSTONE : { tombstone: false, createRevision: next.createRevision, version: next.version, lease: next.lease, value: next.value };
    overlay.history.set(keyString(hkey), { key: hkey, value: encodeHistoryRecord(rec) });
    this.host.digest.replace(key, prev, next);
    overlay.digestChanged = true;
  }

  private put(op: PutOp, overlay: Overlay, tx: WriteTx): PutResult {
    const prev = this.host.reader.read(op.key, overlay);
    // precheck() refused ignore_value/ignore_lease on a missing key before anything was written.
    const value = op.ignoreValue === true ? (prev?.value ?? new Uint8Array(0)) : op.value;
    const lease = op.ignoreLease === true ? (prev?.lease ?? 0) : (op.lease ?? 0);
    const sv: StoredValue =
      prev === undefined
        ? { createRevision: tx.main, modRevision: tx.main, version: 1, lease, value }
        : { createRevision: prev.createRevision, modRevision: tx.main, version: prev.version + 1, lease, value };
    this.write(overlay, tx, op.key, prev, sv);
    return { type: 'put', prevKv: op.prevKv && prev !== undefined ? toKeyValue(op.key, prev) : undefined, revision: tx.main };
  }

  private async deleteRange(op: DeleteOp, overlay: Overlay, tx: WriteTx): Promise<DeleteResult> {
    const victims: [Uint8Array, StoredValue][] = [];
    for await (const kv of this.host.reader.scan(op.range, overlay)) victims.push(kv);
    for (const [key, prev] of victims) this.write(overlay, tx, key, prev, undefined);
    return {
      type: 'delete',
      deleted: victims.length,
      prevKvs: op.prevKv ? victims.map(([k, sv]) => toKeyValue(k, sv)) : [],
      revision: tx.sub > 0 ? tx.main : tx.main - 1,
    };
  }

  /** etcd's applyCompare, on the state before the txn: every key of the compare's range must satisfy it. */
  private async compare(c: Compare, overlay: Overlay): Promise<boolean> {
    const end = c.end ?? new Uint8Array(0);
    const found: StoredValue[] = [];
    for await (const [, sv] of this.host.reader.scan({ key: c.key, end }, overlay)) found.push(sv);
    if (found.length === 0) return c.target === 'value' ? false : compareKv(c, undefined);
    return found.every((sv) => compareKv(c, sv));
  }

  /** The branch each txn on the path takes, outermost first (etcd's compareToPath: all on the pre-txn state). */
  private async txnPath(t: TxnOp, overlay: Overlay, path: boolean[]): Promise<void> {
    let ok = true;
    for (const c of t.compares) {
      if (!(await this.compare(c, overlay))) {
        ok = false;
        break;
      }
    }
    path.push(ok);
    for (const op of ok ? t.success : t.failure) if (op.type === 'txn') await this.txnPath(op, overlay, path);
  }

  /**
   * etcd's checkRequests on the chosen path, before anything is written, in etcd's order: every put of the path
   * (one that keeps a missing key's value or lease, then a lease that does not exist), then every range (a future
   * or compacted revision).
   */
  private precheck(ops: readonly Op[], path: readonly boolean[], overlay: Overlay): void {
    const puts: PutOp[] = [];
    const ranges: RangeRequest[] = [];
    const walk = (list: readonly Op[], at: { i: number }): void => {
      for (const op of list) {
        switch (op.type) {
          case 'put':
            puts.push(op);
            break;
          case 'delete':
            break;
          case 'range':
            ranges.push(op.request);
            break;
          case 'txn': {
            const ok = path[at.i++];
            if (ok === undefined) throw new Error('kv: txn path shorter than the txn');
            walk(ok ? op.success : op.failure, at);
            break;
          }
          default:
            assertNever(op);
        }
      }
    };
    walk(ops, { i: 1 });
    for (const p of puts) {
      if ((p.ignoreValue === true || p.ignoreLease === true) && this.host.reader.read(p.key, overlay) === undefined) {
        throw new RaftKvError('KEY_NOT_FOUND', ETCD_KEY_NOT_FOUND);
      }
      this.checkLease(p, overlay);
    }
    for (const r of ranges) {
      // etcd's checkRange: 0 is the current revision; a negative one is checked as it is (note 5 of ETCD-NOTES).
      const rev = r.revision ?? 0;
      if (rev === 0) continue;
      if (rev > overlay.mvcc.revision) throw new RaftKvError('FUTURE_REV', ETCD_FUTURE_REV);
      if (rev < overlay.mvcc.compacted) throw new RaftKvError('COMPACTED', ETCD_COMPACTED);
    }
  }

  /** A top-level put: etcd checks its lease first, then (with ignore_value/ignore_lease) that the key exists. */
  private precheckPut(op: PutOp, overlay: Overlay): void {
    this.checkLease(op, overlay);
    if ((op.ignoreValue === true || op.ignoreLease === true) && this.host.reader.read(op.key, overlay) === undefined) {
      throw new RaftKvError('KEY_NOT_FOUND', ETCD_KEY_NOT_FOUND);
    }
  }

  private checkLease(op: PutOp, overlay: Overlay): void {
    const lease = op.lease ?? 0;
    if (lease !== 0 && this.leaseIn(lease, overlay) === undefined) throw new RaftKvError('LEASE_NOT_FOUND', ETCD_LEASE_NOT_FOUND);
  }

  /** The lease as the batch sees it: its own grants and revokes over the table. */
  private leaseIn(id: number, overlay: Overlay): Lease | undefined {
    return overlay.leases.has(id) ? overlay.leases.get(id) : this.host.leases.get(id);
  }

  /** The live lease count as the batch sees it. */
  private leaseCount(overlay: Overlay): number {
    let n = this.host.leases.size;
    for (const [id, l] of overlay.leases) {
      const had = this.host.leases.has(id);
      if (l === undefined && had) n--;
      else if (l !== undefined && !had) n++;
    }
    return n;
  }

  private leaseGrant(op: LeaseGrantOp, overlay: Overlay, tx: WriteTx): CommandResult {
    checkLeaseGrant(op);
    if (this.leaseIn(op.id, overlay) !== undefined) throw new RaftKvError('LEASE_EXISTS', ETCD_LEASE_EXISTS);
    if (this.leaseCount(overlay) >= MAX_LEASES) throw new RaftKvError('TOO_MANY_LEASES', `etcdserver: too many leases (at most ${MAX_LEASES})`);
    overlay.leases.set(op.id, { id: op.id, ttlSeconds: op.ttlSeconds, remainingSeconds: 0 });
    return { type: 'lease-grant', id: op.id, ttlSeconds: op.ttlSeconds, revision: tx.main - 1 };
  }

  /** etcd's lessor.Revoke: the lease's keys are deleted in key order in one revision, then the lease goes. */
  private async leaseRevoke(op: LeaseRevokeOp, overlay: Overlay, tx: WriteTx): Promise<CommandResult> {
    if (this.leaseIn(op.id, overlay) === undefined) throw new RaftKvError('LEASE_NOT_FOUND', ETCD_LEASE_NOT_FOUND);
    for (const key of await this.host.reader.attachedKeys(op.id, overlay)) {
      const prev = this.host.reader.read(key, overlay);
      if (prev === undefined || prev.lease !== op.id) throw new Error(`kv: lease ${op.id} lists key ${keyString(key)} that it does not hold`);
      this.write(overlay, tx, key, prev, undefined);
    }
    overlay.leases.set(op.id, undefined);
    return { type: 'lease-revoke', revision: tx.sub > 0 ? tx.main : tx.main - 1 };
  }

  /** etcd's lessor.Checkpoint: leases that are gone are skipped. */
  private leaseCheckpoint(op: LeaseCheckpointOp, overlay: Overlay, tx: WriteTx): CommandResult {
    for (const c of op.checkpoints) {
      const l = this.leaseIn(c.id, overlay);
      if (l !== undefined) overlay.leases.set(c.id, { ...l, remainingSeconds: c.remainingSeconds });
    }
    return { type: 'lease-checkpoint', revision: tx.main - 1 };
  }

  private async runOps(ops: readonly Op[], path: readonly boolean[], at: { i: number }, overlay: Overlay, tx: WriteTx): Promise<OpResult[]> {
    const results: OpResult[] = [];
    for (const op of ops) {
      switch (op.type) {
        case 'put':
          results.push(this.put(op, overlay, tx));
          break;
        case 'delete':
          results.push(await this.deleteRange(op, overlay, tx));
          break;
        case 'range':
          // Inside a write txn a range sees the txn's own writes (etcd: its read revision is then main).
          results.push({ type: 'range', result: await this.host.reader.range(op.request, overlay, tx.sub > 0 ? tx.main : tx.main - 1) });
          break;
        case 'txn': {
          const ok = path[at.i++];
          if (ok === undefined) throw new Error('kv: txn path shorter than the txn');
          const nested = await this.runOps(ok ? op.success : op.failure, path, at, overlay, tx);
          results.push({ type: 'txn', succeeded: ok, results: nested, revision: 0 }); // etcd: 0 in nested headers
          break;
        }
        default:
          assertNever(op);
      }
    }
    return results;
  }

  async execute(cmd: Command, overlay: Overlay, tx: WriteTx): Promise<CommandResult> {
    switch (cmd.type) {
      case 'put':
        this.precheckPut(cmd, overlay);
        return this.put(cmd, overlay, tx);
      case 'delete':
        return this.deleteRange(cmd, overlay, tx);
      case 'txn': {
        const path: boolean[] = [];
        await this.txnPath(cmd, overlay, path);
        const ok = path[0] ?? true;
        const branch = ok ? cmd.success : cmd.failure;
        this.precheck(branch, path, overlay);
        const results = await this.runOps(branch, path, { i: 1 }, overlay, tx);
        return { type: 'txn', succeeded: ok, results, revision: tx.sub > 0 ? tx.main : tx.main - 1 };
      }
      case 'compact':
        // etcd's updateCompactRev: at or below the compacted revision, or above the current one, refused.
        if (cmd.revision <= overlay.mvcc.compacted) throw new RaftKvError('COMPACTED', ETCD_COMPACTED);
        if (cmd.revision > overlay.mvcc.revision) throw new RaftKvError('FUTURE_REV', ETCD_FUTURE_REV);
        overlay.mvcc.compacted = cmd.revision;
        overlay.compacted = true;
        return { type: 'compact', revision: overlay.mvcc.revision };
      case 'lease-grant':
        return this.leaseGrant(cmd, overlay, tx);
      case 'lease-revoke':
        return this.leaseRevoke(cmd, overlay, tx);
      case 'lease-checkpoint':
        return this.leaseCheckpoint(cmd, overlay, tx);
      case 'alarm': {
        const alarms = this.host.alarms.apply(cmd);
        if (alarms.length > 0) overlay.alarmsChanged = true;
        return { type: 'alarm', alarms, revision: overlay.mvcc.revision };
      }
      case 'auth': {
        const applied = this.host.auth.apply(cmd, overlay.entryIndex);
        if (applied.changed) overlay.authChanged = true;
        return { type: 'auth', authRevision: this.host.auth.revision, revision: overlay.mvcc.revision, token: applied.token };
      }
      default:
        return assertNever(cmd);
    }
  }
}
