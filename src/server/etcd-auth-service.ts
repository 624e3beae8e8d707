// etcd's Auth service (etcdserverpb.Auth) on the client port: users, roles, permissions, on/off and
// Authenticate, over the auth store (kv/auth-store.ts). Every change is an 'auth' command through the log (a
// follower forwards it: the node given is the forwarding one), carrying the caller so apply can check it holds
// the root role (etcd's authApplierV3); the reads (UserGet/List, RoleGet/List, AuthStatus) answer from this
// member's applied store.
//
// Passwords: hashed with bcrypt (bcryptjs, cost 10 = etcd's bcrypt.DefaultCost) by the member that received the
// request, before proposing: apply stays fast and deterministic, and the hashes are etcd's own format. bcryptjs
// rather than node:crypto's scrypt: the same algorithm and cost as etcd, pure JavaScript (no native build), and
// its async API runs the rounds in slices so the event loop keeps serving meanwhile.
// Authenticate: the password is compared here with the applied hash; the token (etcd's `simple`: 16 random
// letters; apply appends a dot and the entry's log index, as etcd's) then goes through the log with the hash it
// was checked against, so every member assigns it (a token from one member works on all; a member that has not
// applied that index yet waits for it, auth-gate.ts) and a password changed in between refuses it.
import { randomInt } from 'node:crypto';
import { Metadata } from '@grpc/grpc-js';
import bcrypt from 'bcryptjs';
import type pino from 'pino';
import type { KvNode } from '../node/api.js';
import { RaftKvError } from '../shared/errors.js';
import type { AuthChange, Permission, PermissionType } from '../kv/types.js';
import { ETCD_AUTH_FAILED, ETCD_AUTH_NOT_ENABLED, ETCD_PERMISSION_NOT_GIVEN, ETCD_ROLE_NOT_FOUND, ETCD_USER_NOT_FOUND } from '../kv/auth-store.js';
import { Permission_Type } from '../protocol/etcd-proto.js';
import type { EtcdServiceHandlers, MessageInit } from '../protocol/etcd-proto.js';
import type * as etcd from '../protocol/etcd-proto.js';
import { etcdHandlerKit } from './etcd-kv-service.js';
import type { AuthGate, CallerContext } from './auth-gate.js';

/** etcd's bcrypt.DefaultCost. */
export const BCRYPT_COST = 10;
/** Letters of a simple token (etcd's defaultSimpleTokenLength). */
const SIMPLE_TOKEN_LETTERS = 16;
const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

export interface EtcdAuthOptions {
  readonly node: KvNode; // with writes forwarded to the leader
  readonly auth: AuthGate;
  readonly maxRequestBytes: number;
  readonly defaultTimeoutMs: number;
  readonly logger: pino.Logger;
}

const PERMISSION_TYPES: Readonly<Record<number, PermissionType>> = {
  [Permission_Type.READ]: 'read',
  [Permission_Type.WRITE]: 'write',
  [Permission_Type.READWRITE]: 'readwrite',
};
const WIRE_PERMISSION_TYPES: Readonly<Record<PermissionType, Permission_Type>> = { read: Permission_Type.READ, write: Permission_Type.WRITE, readwrite: Permission_Type.READWRITE };

/** The random part of a simple token (apply appends "." and the entry's index). */
function simpleToken(): string {
  let letters = '';
  for (let i = 0; i < SIMPLE_TOKEN_LETTERS; i++) letters += LETTERS[randomInt(LETTERS.length)] ?? 'a';
  return letters;
}

export function createEtcdAuthService(opts: EtcdAuthOptions): EtcdServiceHandlers<'Auth'> {
  const { node, auth } = opts;
  const { header, unary: kitUnary } = etcdHandlerKit(opts);
  const unary = <Req, Res>(name: string, fn: (req: Req, deadlineMs: number, call: CallerContext) => Promise<MessageInit<Res>>) => kitUnary<Req, Res>(`Auth/${name}`, fn);
  const localHeader = (): MessageInit<etcd.ResponseHeader> => {
    const s = node.status();
    return header({ memberId: s.id, term: s.term, index: s.appliedIndex, leaderId: s.leaderId }, s.revision);
  };
  /** Proposes a change as the caller. */
  const write = async (c: AuthChange, deadlineMs: number, call: CallerContext) => {
    const by = auth.caller(call);
    const { header: h, result } = await node.write({ type: 'auth', by, change: c }, { clientId: '', seq: 0, deadlineMs });
    if (result.type !== 'auth') throw new Error(`node answered an auth change with a ${result.type} result`);
    return { header: h, result };
  };
  /** Proposes a change as the caller; answers with the header of the applied entry. */
  const change = async (c: AuthChange, deadlineMs: number, call: CallerContext): Promise<{ header: MessageInit<etcd.ResponseHeader> }> => {
    const { header: h, result } = await write(c, deadlineMs, call);
    return { header: header(h, result.revision) };
  };
  const hash = (password: string): Promise<string> => bcrypt.hash(password, BCRYPT_COST);

  return {
    AuthEnable: unary<etcd.AuthEnableRequest, etcd.AuthEnableResponse>('AuthEnable', (_req, deadlineMs, call) => change({ kind: 'enable' }, deadlineMs, call)),
    AuthDisable: unary<etcd.AuthDisableRequest, etcd.AuthDisableResponse>('AuthDisable', (_req, deadlineMs, call) => change({ kind: 'disable' }, deadlineMs, call)),
    AuthStatus: unary<etcd.AuthStatusRequest, etcd.AuthStatusResponse>('AuthStatus', (_req, _deadlineMs, call) => {
      auth.caller(call);
      const view = node.auth();
      return Promise.resolve({ header: localHeader(), enabled: view.enabled, authRevision: BigInt(view.revision) });
    }),
    Authenticate: unary<etcd.AuthenticateRequest, etcd.AuthenticateResponse>('Authenticate', async (req, deadlineMs) => {
      // After a read barrier: a member that has not applied an `auth enable` (or a password change) the cluster
      // committed before this request must not answer from its older state (etcd sends Authenticate through the
      // log). Without it a client just after `auth enable` went on without a token and was refused.
      await auth.barrier(deadlineMs, true);
      const view = node.auth();
      if (!view.enabled) throw new RaftKvError('AUTH_REFUSED', ETCD_AUTH_NOT_ENABLED);
      const user = view.user(req.name);
      const ok = user !== undefined && !user.noPassword && (await bcrypt.compare(req.password, user.hash));
      if (!ok || user === undefined) {
        opts.logger.info({ user: req.name }, 'authentication failed, invalid user ID or password');
        throw new RaftKvError('INVALID_ARGUMENT', ETCD_AUTH_FAILED);
      }
      const by = { metadata: new Metadata() }; // anyone may authenticate
      const { header: h, result } = await write({ kind: 'authenticate', name: req.name, verifiedHash: user.hash, token: simpleToken() }, deadlineMs, by);
      auth.tokens.issued(result.token);
      return { header: header(h, result.revision), token: result.token };
    }),
    UserAdd: unary<etcd.AuthUserAddRequest, etcd.AuthUserAddResponse>('UserAdd', async (req, deadlineMs, call) => {
      auth.caller(call);
      const noPassword = req.options?.noPassword ?? false;
      const hashed = noPassword ? '' : req.hashedPassword !== '' ? req.hashedPassword : await hash(req.password);
      return change({ kind: 'user-add', name: req.name, hash: hashed, noPassword }, deadlineMs, call);
    }),
    UserDelete: unary<etcd.AuthUserDeleteRequest, etcd.AuthUserDeleteResponse>('UserDelete', (req, deadlineMs, call) => change({ kind: 'user-delete', name: req.name }, deadlineMs, call)),
    UserChangePassword: unary<etcd.AuthUserChangePasswordRequest, etcd.AuthUserChangePasswordResponse>('UserChangePassword', async (req, deadlineMs, call) => {
      auth.caller(call);
      const hashed = req.hashedPassword !== '' ? req.hashedPassword : await hash(req.password);
      return change({ kind: 'user-change-password', name: req.name, hash: hashed }, deadlineMs, call);
    }),
    UserGrantRole: unary<etcd.AuthUserGrantRoleRequest, etcd.AuthUserGrantRoleResponse>('UserGrantRole', (req, deadlineMs, call) =>
      change({ kind: 'user-grant-role', name: req.user, role: req.role }, deadlineMs, call),
    ),
    UserRevokeRole: unary<etcd.AuthUserRevokeRoleRequest, etcd.AuthUserRevokeRoleResponse>('UserRevokeRole', (req, deadlineMs, call) =>
      change({ kind: 'user-revoke-role', name: req.name, role: req.role }, deadlineMs, call),
    ),
    RoleAdd: unary<etcd.AuthRoleAddRequest, etcd.AuthRoleAddResponse>('RoleAdd', (req, deadlineMs, call) => change({ kind: 'role-add', name: req.name }, deadlineMs, call)),
    RoleDelete: unary<etcd.AuthRoleDeleteRequest, etcd.AuthRoleDeleteResponse>('RoleDelete', (req, deadlineMs, call) => change({ kind: 'role-delete', name: req.role }, deadlineMs, call)),
    RoleGrantPermission: unary<etcd.AuthRoleGrantPermissionRequest, etcd.AuthRoleGrantPermissionResponse>('RoleGrantPermission', (req, deadlineMs, call) => {
      if (req.perm === null) throw new RaftKvError('INVALID_ARGUMENT', ETCD_PERMISSION_NOT_GIVEN);
      const type = PERMISSION_TYPES[req.perm.permType];
      if (type === undefined) throw new RaftKvError('INVALID_ARGUMENT', `etcdserver: unknown permission type ${String(req.perm.permType)}`);
      const permission: Permission = { type, key: new Uint8Array(req.perm.key), end: new Uint8Array(req.perm.rangeEnd) };
      return change({ kind: 'role-grant-permission', name: req.name, permission }, deadlineMs, call);
    }),
    RoleRevokePermission: unary<etcd.AuthRoleRevokePermissionRequest, etcd.AuthRoleRevokePermissionResponse>('RoleRevokePermission', (req, deadlineMs, call) =>
      change({ kind: 'role-revoke-permission', name: req.role, key: new Uint8Array(req.key), end: new Uint8Array(req.rangeEnd) }, deadlineMs, call),
    ),
    // The reads (from this member's store after a barrier, so they see every change committed before): root, except that a user may read itself and the roles it holds (etcd's authApplierV3).
    UserGet: unary<etcd.AuthUserGetRequest, etcd.AuthUserGetResponse>('UserGet', async (req, deadlineMs, call) => {
      await auth.barrier(deadlineMs);
      if (auth.enabled && auth.caller(call) !== req.name) auth.checkAdmin(call);
      const user = node.auth().user(req.name);
      if (user === undefined) throw new RaftKvError('AUTH_REFUSED', ETCD_USER_NOT_FOUND);
      return { header: localHeader(), roles: [...user.roles] };
    }),
    UserList: unary<etcd.AuthUserListRequest, etcd.AuthUserListResponse>('UserList', async (_req, deadlineMs, call) => {
      await auth.checkAdminNow(call, deadlineMs);
      return { header: localHeader(), users: node.auth().userNames() };
    }),
    RoleGet: unary<etcd.AuthRoleGetRequest, etcd.AuthRoleGetResponse>('RoleGet', async (req, deadlineMs, call) => {
      await auth.barrier(deadlineMs);
      if (auth.enabled) {
        const caller = auth.caller(call);
        const holds = caller !== '' && (node.auth().user(caller)?.roles.includes(req.role) ?? false);
        if (!holds) auth.checkAdmin(call);
      }
      const role = node.auth().role(req.role);
      if (role === undefined) throw new RaftKvError('AUTH_REFUSED', ETCD_ROLE_NOT_FOUND);
      return { header: localHeader(), perm: role.perms.map((p) => ({ permType: WIRE_PERMISSION_TYPES[p.type], key: p.key, rangeEnd: p.end })) };
    }),
    RoleList: unary<etcd.AuthRoleListRequest, etcd.AuthRoleListResponse>('RoleList', async (_req, deadlineMs, call) => {
      await auth.checkAdminNow(call, deadlineMs);
      return { header: localHeader(), roles: node.auth().roleNames() };
    }),
  };
}
