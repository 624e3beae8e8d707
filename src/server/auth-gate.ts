// Who is calling, and may they: the permission checks every client-port service makes once authentication is on
// (etcd's AuthInfoFromCtx and IsRangePermitted / IsPutPermitted / IsAdminPermitted), against this member's
// applied auth store (node.auth(), kv/auth-store.ts). With auth off every check passes and tokens are ignored.
//
// The caller: the `token` metadata (a simple token, kv/auth-store.ts; an unknown or lapsed one is etcd's
// "invalid auth token", UNAUTHENTICATED); without one, with --client-cert-auth, the common name of the verified
// client certificate (etcd's AuthInfoFromTLS); else nobody, whom every check refuses with etcd's
// "user name is empty" (INVALID_ARGUMENT). Root holds every permission.
//
// What each request needs (etcd 3.4): a range read on its range; a put write on its key (and read when it asks
// for prev_kv); a delete write on its range (and read with prev_kv); a txn read on every compare and the needs
// of every op of BOTH branches, nested txns too; a put with a lease and a lease revoke write on every key the
// lease holds (etcd's checkLeasePuts); a watch read on its range; cluster membership changes, snapshots,
// defragmentation, Hash, HashKV and the auth store's reads root. Changes to the auth store itself are checked
// on apply (auth-store.ts).
//
// When: a token ends with the log index that assigned it (etcd's format): a member that has not applied it yet
// waits for it first (ready()). A read is checked once it is served, i.e. after its read index is applied here,
// as etcd checks after its linearizable wait (a serializable read: this member's state, as etcd's). A write
// and an admin call are checked after a linearizable barrier (a ReadIndex round, only while auth is on), so a
// permission revoked before the request arrived is refused on every member; etcd checks writes on apply
// instead, which raftkv's log entries, carrying no user, cannot yet: so a member that has not applied the
// AuthEnable itself lets a write through unchecked for that moment.
import type { Metadata } from '@grpc/grpc-js';
import type { KvNode } from '../node/api.js';
import type { AuthView } from '../kv/auth-store.js';
import { ETCD_INVALID_AUTH_TOKEN, ETCD_PERMISSION_DENIED, ETCD_USER_EMPTY, ETCD_USER_NOT_FOUND } from '../kv/auth-store.js';
import { RaftKvError } from '../shared/errors.js';
import type { Clock } from '../shared/clock.js';
import type { Command, KeyRange, Op, TxnOp } from '../kv/types.js';
import { SimpleTokenTtl } from './simple-token-ttl.js';

/** What a check needs of a call: its metadata and, on a TLS port, the peer certificate (grpc-js getAuthContext). */
export interface CallerContext {
  readonly metadata: Metadata;
  getAuthContext?(): { transportSecurityType?: string; sslPeerCertificate?: { subject?: { CN?: string | string[] } } };
}

export interface AuthGateOptions {
  readonly node: KvNode;
  readonly clock: Clock;
  /** etcd's --client-cert-auth on the client port: a verified certificate's common name stands for the user. */
  readonly clientCertAuth: boolean;
}

const denied = (): RaftKvError => new RaftKvError('PERMISSION_DENIED', ETCD_PERMISSION_DENIED);

export class AuthGate {
  readonly tokens: SimpleTokenTtl;

  constructor(private readonly opts: AuthGateOptions) {
    this.tokens = new SimpleTokenTtl(opts.clock, (token) => this.view().forgetToken(token));
  }

  private view(): AuthView {
    return this.opts.node.auth();
  }

  /** Waits (up to deadlineMs) until this member has applied the entry that assigned the call's token, if it has not. */
  async ready(call: CallerContext, deadlineMs: number): Promise<void> {
    if (!this.view().enabled) return;
    const token = call.metadata.get('token')[0];
    if (token === undefined) return;
    const index = Number(String(token).slice(String(token).lastIndexOf('.') + 1));
    if (!Number.isSafeInteger(index) || index <= this.opts.node.status().appliedIndex) return;
    try {
      await this.opts.node.waitApplied(index, deadlineMs);
    } catch (err) {
      if (!(err instanceof RaftKvError)) throw err; // a forged index far ahead: refused as an invalid token below
    }
  }

  /**
   * With auth on (or `always`): resolves once this member has applied everything committed before the call
   * (ReadIndex). `always`: also while this member's own view says auth is off (it may not have applied an enable).
   */
  async barrier(deadlineMs: number, always = false): Promise<void> {
    if (!always && !this.view().enabled) return;
    await this.opts.node.read({ key: Uint8Array.of(0), end: new Uint8Array(0), limit: 1, keysOnly: true, countOnly: true }, { serializable: false, deadlineMs });
  }

  /** checkCommand after a barrier: the write is checked against every change committed before it. */
  async checkWrite(call: CallerContext, command: Command, deadlineMs: number): Promise<void> {
    await this.barrier(deadlineMs);
    this.checkCommand(call, command);
    if (command.type === 'put' && command.lease !== undefined) await this.checkLeaseKeys(call, command.lease);
  }

  /**
   * etcd's checkLeasePuts, after a barrier: the caller needs write on every key attached to the lease. A revoke
   * deletes them; a put that attaches a key to a lease holding keys the caller may not write is refused too, or
   * the caller could not revoke the lease it wrote with. A lease that does not exist passes (the write fails on it).
   */
  async checkLeaseKeys(call: CallerContext, id: number): Promise<void> {
    if (!this.view().enabled || id === 0) return;
    for (const key of await this.opts.node.leaseKeys(id)) this.checkRange(call, 'write', { key, end: new Uint8Array(0) });
  }

  /** checkAdmin after a barrier. */
  async checkAdminNow(call: CallerContext, deadlineMs: number): Promise<void> {
    await this.barrier(deadlineMs);
    this.checkAdmin(call);
  }

  /** Whether authentication is on at this member's applied index. */
  get enabled(): boolean {
    return this.view().enabled;
  }

  /** The calling user: '' for nobody (or with auth off). Throws UNAUTHENTICATED for a token that names no session. */
  caller(call: CallerContext): string {
    const auth = this.view();
    if (!auth.enabled) return '';
    const token = call.metadata.get('token')[0] ?? call.metadata.get('authorization')[0];
    if (token !== undefined) {
      const t = String(token);
      const user = auth.tokenUser(t);
      if (user === undefined || !this.tokens.use(t)) throw new RaftKvError('UNAUTHENTICATED', ETCD_INVALID_AUTH_TOKEN);
      return user;
    }
    if (!this.opts.clientCertAuth) return '';
    const ctx = call.getAuthContext?.();
    if (ctx?.transportSecurityType !== 'ssl') return '';
    const cn = ctx.sslPeerCertificate?.subject?.CN;
    return typeof cn === 'string' ? cn : Array.isArray(cn) ? (cn[0] ?? '') : '';
  }

  /**
   * The caller, who must be somebody when auth is on (etcd: "user name is empty" for nobody). A name the store
   * does not know (a certificate's common name, a user deleted since) is refused as etcd does: "user name not
   * found" for an admin call, "permission denied" for the others.
   */
  private known(call: CallerContext, auth: AuthView, admin: boolean): string {
    const user = this.caller(call);
    if (user === '') throw new RaftKvError('INVALID_ARGUMENT', ETCD_USER_EMPTY);
    if (auth.user(user) === undefined) throw admin ? new RaftKvError('AUTH_REFUSED', ETCD_USER_NOT_FOUND) : denied();
    return user;
  }

  /** Refuses unless the caller may `need` every key of `range` (etcd's encoding). */
  checkRange(call: CallerContext, need: 'read' | 'write', range: KeyRange): void {
    const auth = this.view();
    if (!auth.enabled) return;
    const user = this.known(call, auth, false);
    if (!auth.permitted(user, need, range.key, range.end)) throw denied();
  }

  /** Refuses unless the caller holds the root role (etcd's IsAdminPermitted). */
  checkAdmin(call: CallerContext): void {
    const auth = this.view();
    if (!auth.enabled) return;
    const user = this.known(call, auth, true);
    if (!auth.isRoot(user)) throw denied();
  }

  /** Refuses a write command the caller may not make (put, delete, txn as etcd checks them; others pass). */
  checkCommand(call: CallerContext, command: Command): void {
    const auth = this.view();
    if (!auth.enabled) return;
    switch (command.type) {
      case 'put':
      case 'delete':
      case 'txn': {
        const user = this.known(call, auth, false);
        if (auth.isRoot(user)) return;
        for (const [need, range] of needsOf(command)) if (!auth.permitted(user, need, range.key, range.end)) throw denied();
        return;
      }
      case 'compact': // etcd 3.4 checks no permission for these either
      case 'lease-grant':
      case 'lease-revoke':
      case 'lease-checkpoint':
      case 'alarm':
      case 'auth':
        this.caller(call); // only a bad token is refused (etcd validates the token of every proposal)
        return;
      default: {
        const never: never = command;
        throw new Error(`auth: unknown command ${JSON.stringify(never)}`);
      }
    }
  }
}

/** Every (access, range) a put, delete or txn needs, as etcd's checkTxnReqsPermission lists them. */
export function needsOf(op: Op): ['read' | 'write', KeyRange][] {
  switch (op.type) {
    case 'put': {
      const one: KeyRange = { key: op.key, end: new Uint8Array(0) };
      return op.prevKv ? [['write', one], ['read', one]] : [['write', one]];
    }
    case 'delete':
      return op.prevKv ? [['write', op.range], ['read', op.range]] : [['write', op.range]];
    case 'range':
      return [['read', op.request]];
    case 'txn':
      return txnNeeds(op);
    default: {
      const never: never = op;
      throw new Error(`auth: unknown op ${JSON.stringify(never)}`);
    }
  }
}

function txnNeeds(t: TxnOp): ['read' | 'write', KeyRange][] {
  const out: ['read' | 'write', KeyRange][] = t.compares.map((c) => ['read', { key: c.key, end: c.end ?? new Uint8Array(0) }]);
  for (const op of [...t.success, ...t.failure]) out.push(...needsOf(op));
  return out;
}
