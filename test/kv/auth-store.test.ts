// The auth store (etcd's auth/store.go) on its own and through the state machine: etcd's rules for enabling,
// the root user and role, grants and revokes with etcd's messages, the auth revision, permission checks by role,
// simple tokens (assigned on apply with the entry index, dropped by a password change, a deletion, disabling),
// and that the store survives a reopen and a snapshot restore and round-trips through the log codec.
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  AuthStore,
  ETCD_AUTH_FAILED,
  ETCD_AUTH_NOT_ENABLED,
  ETCD_INVALID_AUTH_MGMT,
  ETCD_PERMISSION_DENIED,
  ETCD_PERMISSION_NOT_GRANTED,
  ETCD_ROLE_ALREADY_EXIST,
  ETCD_ROLE_NOT_FOUND,
  ETCD_ROLE_NOT_GRANTED,
  ETCD_ROOT_ROLE_NOT_EXIST,
  ETCD_ROOT_USER_NOT_EXIST,
  ETCD_USER_ALREADY_EXIST,
  ETCD_USER_EMPTY,
  ETCD_USER_NOT_FOUND,
} from '../../src/kv/auth-store.js';
import { decodeCommandResult, decodeEnvelope, encodeCommandResult, encodeEnvelope } from '../../src/kv/codec.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import type { ApplyOutcome } from '../../src/kv/state-machine.js';
import type { AuthChange, AuthOp, Command } from '../../src/kv/types.js';
import { prefixEnd } from '../../src/kv/types.js';
import { LogBuilder, tempDir } from './helpers.js';

const b = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s));
const NONE = new Uint8Array(0);
const op = (change: AuthChange, by = ''): AuthOp => ({ type: 'auth', by, change });

/** Applies a change, answering 'ok' or 'CODE: message'. */
function attempt(store: AuthStore, change: AuthChange, by = '', index = 1): string {
  try {
    store.apply(op(change, by), index);
    return 'ok';
  } catch (err) {
    const e = err as { code?: string; message: string };
    return `${e.code ?? '?'}: ${e.message}`;
  }
}

/** A store with root (root role), role app reading /app/, user alice holding app, and auth on. */
function enabledStore(): AuthStore {
  const s = new AuthStore();
  for (const c of [
    { kind: 'user-add', name: 'root', hash: 'H-root', noPassword: false },
    { kind: 'role-add', name: 'root' },
    { kind: 'user-grant-role', name: 'root', role: 'root' },
    { kind: 'role-add', name: 'app' },
    { kind: 'role-grant-permission', name: 'app', permission: { type: 'read', key: b('/app/'), end: prefixEnd(b('/app/')) } },
    { kind: 'user-add', name: 'alice', hash: 'H-alice', noPassword: false },
    { kind: 'user-grant-role', name: 'alice', role: 'app' },
    { kind: 'enable' },
  ] as const satisfies readonly AuthChange[]) {
    expect(attempt(s, c)).toBe('ok');
  }
  return s;
}

describe('auth store rules (etcd 3.4)', () => {
  it('enabling needs a user root holding the role root', () => {
    const s = new AuthStore();
    expect(attempt(s, { kind: 'enable' })).toBe(`AUTH_REFUSED: ${ETCD_ROOT_USER_NOT_EXIST}`);
    expect(attempt(s, { kind: 'user-add', name: 'root', hash: 'h', noPassword: false })).toBe('ok');
    expect(attempt(s, { kind: 'enable' })).toBe(`AUTH_REFUSED: ${ETCD_ROOT_ROLE_NOT_EXIST}`);
    // The role root needs no RoleAdd to be granted (etcd).
    expect(attempt(s, { kind: 'user-grant-role', name: 'root', role: 'root' })).toBe('ok');
    expect(attempt(s, { kind: 'enable' })).toBe('ok');
    expect(s.enabled).toBe(true);
  });

  it('refuses what etcd refuses, with its messages', () => {
    const s = enabledStore();
    const root = (c: AuthChange): string => attempt(s, c, 'root');
    expect(root({ kind: 'user-add', name: 'alice', hash: 'x', noPassword: false })).toBe(`AUTH_REFUSED: ${ETCD_USER_ALREADY_EXIST}`);
    expect(root({ kind: 'user-add', name: '', hash: 'x', noPassword: false })).toBe(`INVALID_ARGUMENT: ${ETCD_USER_EMPTY}`);
    expect(root({ kind: 'user-delete', name: 'nobody' })).toBe(`AUTH_REFUSED: ${ETCD_USER_NOT_FOUND}`);
    expect(root({ kind: 'role-add', name: 'app' })).toBe(`AUTH_REFUSED: ${ETCD_ROLE_ALREADY_EXIST}`);
    expect(root({ kind: 'user-grant-role', name: 'alice', role: 'nothing' })).toBe(`AUTH_REFUSED: ${ETCD_ROLE_NOT_FOUND}`);
    expect(root({ kind: 'user-revoke-role', name: 'alice', role: 'root' })).toBe(`AUTH_REFUSED: ${ETCD_ROLE_NOT_GRANTED}`);
    expect(root({ kind: 'role-revoke-permission', name: 'app', key: b('/app/'), end: NONE })).toBe(`AUTH_REFUSED: ${ETCD_PERMISSION_NOT_GRANTED}`);
    // root is protected while auth is on
    expect(root({ kind: 'user-delete', name: 'root' })).toBe(`INVALID_ARGUMENT: ${ETCD_INVALID_AUTH_MGMT}`);
    expect(root({ kind: 'role-delete', name: 'root' })).toBe(`INVALID_ARGUMENT: ${ETCD_INVALID_AUTH_MGMT}`);
    expect(root({ kind: 'user-revoke-role', name: 'root', role: 'root' })).toBe(`INVALID_ARGUMENT: ${ETCD_INVALID_AUTH_MGMT}`);
    // with auth on, only root changes the store
    expect(attempt(s, { kind: 'role-add', name: 'x' }, 'alice')).toBe(`PERMISSION_DENIED: ${ETCD_PERMISSION_DENIED}`);
    expect(attempt(s, { kind: 'role-add', name: 'x' }, '')).toBe(`INVALID_ARGUMENT: ${ETCD_USER_EMPTY}`);
    expect(attempt(s, { kind: 'disable' }, 'alice')).toBe(`PERMISSION_DENIED: ${ETCD_PERMISSION_DENIED}`);
    // once off, the root user may go
    expect(root({ kind: 'disable' })).toBe('ok');
    expect(attempt(s, { kind: 'user-delete', name: 'root' })).toBe('ok');
  });

  it('the auth revision grows by one per effective change; enable and ignored grants leave it', () => {
    const s = enabledStore();
    const r0 = s.revision;
    expect(attempt(s, { kind: 'user-grant-role', name: 'alice', role: 'app' }, 'root')).toBe('ok'); // already held: ignored
    expect(s.revision).toBe(r0);
    expect(attempt(s, { kind: 'role-add', name: 'ops' }, 'root')).toBe('ok');
    expect(s.revision).toBe(r0 + 1);
    expect(attempt(s, { kind: 'role-add', name: 'ops' }, 'root')).not.toBe('ok');
    expect(s.revision).toBe(r0 + 1); // a refused change changes nothing
    expect(attempt(s, { kind: 'disable' }, 'root')).toBe('ok');
    expect(s.revision).toBe(r0 + 2);
    expect(attempt(s, { kind: 'enable' })).toBe('ok');
    expect(s.revision).toBe(r0 + 2);
  });

  it('permissions come from the roles a user holds; root holds every one; a deleted role leaves its users', () => {
    const s = enabledStore();
    expect(s.permitted('alice', 'read', b('/app/x'), NONE)).toBe(true);
    expect(s.permitted('alice', 'write', b('/app/x'), NONE)).toBe(false);
    expect(s.permitted('alice', 'read', b('/other/x'), NONE)).toBe(false);
    expect(s.permitted('root', 'write', b('\x00'), Uint8Array.of(0))).toBe(true);
    expect(s.permitted('nobody', 'read', b('/app/x'), NONE)).toBe(false);
    // Granting the same range again replaces its type.
    expect(attempt(s, { kind: 'role-grant-permission', name: 'app', permission: { type: 'readwrite', key: b('/app/'), end: prefixEnd(b('/app/')) } }, 'root')).toBe('ok');
    expect(s.role('app')?.perms.length).toBe(1);
    expect(s.permitted('alice', 'write', b('/app/x'), NONE)).toBe(true);
    expect(attempt(s, { kind: 'role-delete', name: 'app' }, 'root')).toBe('ok');
    expect(s.user('alice')?.roles).toEqual([]);
    expect(s.permitted('alice', 'read', b('/app/x'), NONE)).toBe(false);
  });

  it('a simple token is assigned on apply with the entry index, and dropped by a password change, a deletion or disabling', () => {
    const s = enabledStore();
    const token = s.apply(op({ kind: 'authenticate', name: 'alice', verifiedHash: 'H-alice', token: 'abcdefghijklmnop' }), 42).token;
    expect(token).toBe('abcdefghijklmnop.42');
    expect(s.tokenUser(token)).toBe('alice');
    // A hash that changed since the member checked the password is etcd's ErrAuthFailed.
    expect(attempt(s, { kind: 'authenticate', name: 'alice', verifiedHash: 'stale', token: 't' })).toBe(`INVALID_ARGUMENT: ${ETCD_AUTH_FAILED}`);
    expect(attempt(s, { kind: 'user-change-password', name: 'alice', hash: 'H2' }, 'root')).toBe('ok');
    expect(s.tokenUser(token)).toBeUndefined();
    const t2 = s.apply(op({ kind: 'authenticate', name: 'alice', verifiedHash: 'H2', token: 'q' }), 50).token;
    const t3 = s.apply(op({ kind: 'authenticate', name: 'root', verifiedHash: 'H-root', token: 'r' }), 51).token;
    expect(attempt(s, { kind: 'user-delete', name: 'alice' }, 'root')).toBe('ok');
    expect(s.tokenUser(t2)).toBeUndefined();
    expect(s.tokenUser(t3)).toBe('root');
    expect(attempt(s, { kind: 'disable' }, 'root')).toBe('ok');
    expect(s.tokenUser(t3)).toBeUndefined();
    expect(attempt(s, { kind: 'authenticate', name: 'root', verifiedHash: 'H-root', token: 'r' })).toBe(`AUTH_REFUSED: ${ETCD_AUTH_NOT_ENABLED}`);
  });

  it('encode and load give the same store (tokens are member-local and not kept)', () => {
    const s = enabledStore();
    s.apply(op({ kind: 'authenticate', name: 'alice', verifiedHash: 'H-alice', token: 'x' }), 7);
    const copy = new AuthStore();
    copy.load(s.encode());
    expect(copy.encode()).toEqual(s.encode());
    expect(copy.enabled).toBe(true);
    expect(copy.revision).toBe(s.revision);
    expect(copy.permitted('alice', 'read', b('/app/x'), NONE)).toBe(true);
    expect(copy.tokenUser('x.7')).toBeUndefined();
    expect(() => copy.load(b('{"v":2}'))).toThrow(/auth record is damaged/);
    expect(() => copy.load(b('not json'))).toThrow(/auth record is damaged/);
  });
});

describe('auth commands through the log', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let sm: KvStateMachine;
  let log: LogBuilder;
  beforeEach(async () => {
    dir = await tempDir('auth');
    sm = await KvStateMachine.open(join(dir.path, 'kv'));
    log = new LogBuilder();
  });
  afterEach(async () => {
    await sm.close();
    await dir.cleanup();
  });
  const cmd = (change: AuthChange, by = ''): Command => ({ type: 'auth', by, change });
  const text = (o: ApplyOutcome | undefined): string => (o === undefined ? 'missing' : o.type === 'error' ? `error ${o.error.code}: ${o.error.message}` : o.type === 'none' ? 'none' : `result ${o.result.type}`);

  it('applies changes, refuses with request errors, survives a reopen and travels in snapshots', async () => {
    const outs = await sm.apply([
      log.cmd(cmd({ kind: 'enable' })),
      log.cmd(cmd({ kind: 'user-add', name: 'root', hash: 'h', noPassword: false })),
      log.cmd(cmd({ kind: 'user-grant-role', name: 'root', role: 'root' })),
      log.cmd(cmd({ kind: 'enable' })),
      log.cmd(cmd({ kind: 'role-add', name: 'r' }, 'nobody')),
      log.cmd(cmd({ kind: 'role-add', name: 'r' }, 'root')),
      log.cmd(cmd({ kind: 'authenticate', name: 'root', verifiedHash: 'h', token: 'tok' })),
    ]);
    expect(outs.map(text)).toEqual([
      `error AUTH_REFUSED: ${ETCD_ROOT_USER_NOT_EXIST}`,
      'result auth',
      'result auth',
      'result auth',
      `error PERMISSION_DENIED: ${ETCD_PERMISSION_DENIED}`,
      'result auth',
      'result auth',
    ]);
    const last = outs[6];
    expect(last?.type === 'result' && last.result.type === 'auth' ? last.result.token : '').toBe(`tok.${log.lastIndex}`);
    const view = sm.authView();
    expect(view.enabled).toBe(true);
    expect(view.roleNames()).toEqual(['r']);
    const revision = view.revision;

    await sm.flush();
    await sm.close();
    sm = await KvStateMachine.open(join(dir.path, 'kv'));
    expect(sm.authView().enabled).toBe(true);
    expect(sm.authView().revision).toBe(revision);
    expect(sm.authView().userNames()).toEqual(['root']);

    const snap = await sm.createSnapshot(join(dir.path, 'snap'), 2);
    const other = await KvStateMachine.open(join(dir.path, 'kv2'));
    try {
      await other.restoreSnapshot(snap.path);
      expect(other.authView().enabled).toBe(true);
      expect(other.authView().roleNames()).toEqual(['r']);
      expect(other.authView().isRoot('root')).toBe(true);
    } finally {
      await other.close();
    }
  });

  it('every auth change and its result round-trip through the codec', () => {
    const changes: AuthChange[] = [
      { kind: 'enable' },
      { kind: 'disable' },
      { kind: 'authenticate', name: 'u', verifiedHash: '$2b$10$abc', token: 'tok' },
      { kind: 'user-add', name: 'u', hash: 'h', noPassword: true },
      { kind: 'user-delete', name: 'u' },
      { kind: 'user-change-password', name: 'u', hash: 'h2' },
      { kind: 'user-grant-role', name: 'u', role: 'r' },
      { kind: 'user-revoke-role', name: 'u', role: 'r' },
      { kind: 'role-add', name: 'r' },
      { kind: 'role-delete', name: 'r' },
      { kind: 'role-grant-permission', name: 'r', permission: { type: 'readwrite', key: b('k'), end: Uint8Array.of(0) } },
      { kind: 'role-revoke-permission', name: 'r', key: b('k'), end: b('l') },
    ];
    for (const change of changes) {
      const env = { clientId: 'c', seq: 3, command: cmd(change, 'root') };
      expect(decodeEnvelope(encodeEnvelope(env))).toEqual(env);
    }
    const res = { type: 'auth' as const, authRevision: 9, revision: 4, token: 'abc.12' };
    expect(decodeCommandResult(encodeCommandResult(res))).toEqual(res);
  });
});
