// Who a call is and what it may do (auth-gate.ts) against an applied auth store: tokens (valid on first use,
// refreshed by use, lapsing after etcd's 5 minutes of disuse, forged ones refused with etcd's message), a client
// certificate's common name only with --client-cert-auth, etcd's errors for nobody and for unknown users, and the
// needs of a txn (every compare and both branches, nested txns too).
import { Metadata } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { AuthStore, ETCD_INVALID_AUTH_TOKEN, ETCD_PERMISSION_DENIED, ETCD_USER_EMPTY, ETCD_USER_NOT_FOUND } from '../../src/kv/auth-store.js';
import type { AuthView } from '../../src/kv/auth-store.js';
import type { AuthChange, Command, Op } from '../../src/kv/types.js';
import { prefixEnd } from '../../src/kv/types.js';
import { ManualClock } from '../../src/shared/clock.js';
import { AuthGate, needsOf } from '../../src/server/auth-gate.js';
import type { CallerContext } from '../../src/server/auth-gate.js';
import { SIMPLE_TOKEN_TTL_MS } from '../../src/server/simple-token-ttl.js';
import { FakeCluster, FakeNode } from './fake-node.js';

const b = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s));
const NONE = new Uint8Array(0);

class AuthNode extends FakeNode {
  readonly store = new AuthStore();
  override auth(): AuthView {
    return this.store;
  }
}

function setUp(clientCertAuth = false): { node: AuthNode; gate: AuthGate; clock: ManualClock; token: string } {
  const node = new AuthNode(1, new FakeCluster());
  const changes: AuthChange[] = [
    { kind: 'user-add', name: 'root', hash: 'h', noPassword: false },
    { kind: 'user-grant-role', name: 'root', role: 'root' },
    { kind: 'role-add', name: 'app' },
    { kind: 'role-grant-permission', name: 'app', permission: { type: 'read', key: b('/app/'), end: prefixEnd(b('/app/')) } },
    { kind: 'user-add', name: 'alice', hash: 'ha', noPassword: false },
    { kind: 'user-grant-role', name: 'alice', role: 'app' },
    { kind: 'enable' },
  ];
  for (const change of changes) node.store.apply({ type: 'auth', by: '', change }, 1);
  const token = node.store.apply({ type: 'auth', by: '', change: { kind: 'authenticate', name: 'alice', verifiedHash: 'ha', token: 'abcdefghijklmnop' } }, 1).token;
  const clock = new ManualClock();
  return { node, gate: new AuthGate({ node, clock, clientCertAuth }), clock, token };
}

function call(token?: string, cn?: string): CallerContext {
  const metadata = new Metadata();
  if (token !== undefined) metadata.set('token', token);
  return { metadata, getAuthContext: () => (cn === undefined ? {} : { transportSecurityType: 'ssl', sslPeerCertificate: { subject: { CN: cn } } }) };
}

function refusal(fn: () => void): string {
  try {
    fn();
    return 'allowed';
  } catch (err) {
    const e = err as { code?: string; message: string };
    return `${e.code ?? '?'}: ${e.message}`;
  }
}

describe('the auth gate', () => {
  it('a token names its user; a forged one is etcd\'s invalid auth token; nobody is "user name is empty"', () => {
    const { gate, token } = setUp();
    expect(gate.caller(call(token))).toBe('alice');
    expect(refusal(() => gate.caller(call('ForgedForgedForg.1')))).toBe(`UNAUTHENTICATED: ${ETCD_INVALID_AUTH_TOKEN}`);
    expect(refusal(() => gate.checkRange(call(), 'read', { key: b('/app/x'), end: NONE }))).toBe(`INVALID_ARGUMENT: ${ETCD_USER_EMPTY}`);
    expect(refusal(() => gate.checkRange(call(token), 'read', { key: b('/app/x'), end: NONE }))).toBe('allowed');
    expect(refusal(() => gate.checkRange(call(token), 'write', { key: b('/app/x'), end: NONE }))).toBe(`PERMISSION_DENIED: ${ETCD_PERMISSION_DENIED}`);
    expect(refusal(() => gate.checkAdmin(call(token)))).toBe(`PERMISSION_DENIED: ${ETCD_PERMISSION_DENIED}`);
  });

  it('a token lapses after 5 minutes without use, and each use refreshes it', () => {
    const { gate, clock, token, node } = setUp();
    expect(gate.caller(call(token))).toBe('alice');
    clock.advance(SIMPLE_TOKEN_TTL_MS - 1000);
    expect(gate.caller(call(token))).toBe('alice'); // used: refreshed
    clock.advance(SIMPLE_TOKEN_TTL_MS - 1000);
    expect(gate.caller(call(token))).toBe('alice');
    clock.advance(SIMPLE_TOKEN_TTL_MS);
    expect(refusal(() => gate.caller(call(token)))).toBe(`UNAUTHENTICATED: ${ETCD_INVALID_AUTH_TOKEN}`);
    expect(node.store.tokenUser(token)).toBeUndefined(); // the store forgot it
  });

  it('the sweep forgets lapsed tokens that are not used again', () => {
    const { gate, clock, token, node } = setUp();
    const stop = gate.tokens.start();
    try {
      gate.tokens.issued(token);
      clock.advance(SIMPLE_TOKEN_TTL_MS + 2000);
      expect(node.store.tokenUser(token)).toBeUndefined();
    } finally {
      stop();
    }
  });

  it('a verified certificate common name stands for the user only with --client-cert-auth, and a token wins', () => {
    const off = setUp(false);
    expect(refusal(() => off.gate.checkRange(call(undefined, 'alice'), 'read', { key: b('/app/x'), end: NONE }))).toBe(`INVALID_ARGUMENT: ${ETCD_USER_EMPTY}`);
    const on = setUp(true);
    expect(on.gate.caller(call(undefined, 'alice'))).toBe('alice');
    expect(on.gate.caller(call(on.token, 'root'))).toBe('alice');
    // A name the store does not know: denied for data, "user name not found" for admin calls (etcd's).
    expect(refusal(() => on.gate.checkRange(call(undefined, 'client'), 'read', { key: b('/app/x'), end: NONE }))).toBe(`PERMISSION_DENIED: ${ETCD_PERMISSION_DENIED}`);
    expect(refusal(() => on.gate.checkAdmin(call(undefined, 'client')))).toBe(`AUTH_REFUSED: ${ETCD_USER_NOT_FOUND}`);
    expect(refusal(() => on.gate.checkAdmin(call(undefined, 'root')))).toBe('allowed');
  });

  it('a txn needs read on every compare and the needs of both branches, nested txns too', () => {
    const put = (k: string, prevKv = false): Op => ({ type: 'put', key: b(k), value: b('v'), prevKv });
    const txn: Command = {
      type: 'txn',
      compares: [{ key: b('/c'), target: 'version', op: '=', number: 0 }],
      success: [put('/s', true)],
      failure: [{ type: 'txn', compares: [], success: [{ type: 'delete', range: { key: b('/d'), end: b('/e') }, prevKv: false }], failure: [{ type: 'range', request: { key: b('/r'), end: NONE, limit: 0, keysOnly: false, countOnly: false } }] }],
    };
    const needs = needsOf(txn).map(([need, r]) => `${need} ${Buffer.from(r.key).toString()}..${Buffer.from(r.end).toString()}`);
    expect(needs).toEqual(['read /c..', 'write /s..', 'read /s..', 'write /d../e', 'read /r..']);
    const { gate, token } = setUp();
    // alice reads /app/ only: a txn that compares /app/x and writes nothing passes; one writing in the branch not taken does not.
    const readOnly: Command = { type: 'txn', compares: [{ key: b('/app/x'), target: 'version', op: '>', number: 0 }], success: [], failure: [] };
    expect(refusal(() => gate.checkCommand(call(token), readOnly))).toBe('allowed');
    const writes: Command = { ...readOnly, failure: [put('/app/x')] };
    expect(refusal(() => gate.checkCommand(call(token), writes))).toBe(`PERMISSION_DENIED: ${ETCD_PERMISSION_DENIED}`);
  });

  it('with authentication off every check passes and tokens are not looked at', () => {
    const node = new AuthNode(1, new FakeCluster());
    const gate = new AuthGate({ node, clock: new ManualClock(), clientCertAuth: true });
    expect(gate.caller(call('whatever'))).toBe('');
    expect(refusal(() => gate.checkAdmin(call()))).toBe('allowed');
    expect(refusal(() => gate.checkCommand(call(), { type: 'put', key: b('k'), value: b('v'), prevKv: false }))).toBe('allowed');
  });
});
