// The CLI side of authentication: --user NAME[:PASSWORD] (and $RAFTKV_USER / $RAFTKV_PASSWORD, never a prompt),
// finding the user/role/auth commands behind global flags, and bad arguments refused before anything is dialled.
import { describe, expect, it } from 'vitest';
import { authCommandOf, runAuthCommand } from '../../src/cli/auth-commands.js';
import { dialUserFromFlags } from '../../src/cli/dial-flags.js';

const io = { stdout: { write: (): boolean => true }, env: {} };

describe('--user', () => {
  it('takes NAME:PASSWORD, or NAME with $RAFTKV_PASSWORD, and never prompts', () => {
    expect(dialUserFromFlags({ user: 'alice:pw:with:colons' }, {})).toEqual({ name: 'alice', password: 'pw:with:colons' });
    expect(dialUserFromFlags({ user: 'alice' }, { RAFTKV_PASSWORD: 'envpw' })).toEqual({ name: 'alice', password: 'envpw' });
    expect(dialUserFromFlags({}, { RAFTKV_USER: 'bob:b' })).toEqual({ name: 'bob', password: 'b' });
    expect(dialUserFromFlags({}, {})).toBeUndefined();
    expect(() => dialUserFromFlags({ user: 'alice' }, {})).toThrow(/no password .*does not prompt/);
    expect(() => dialUserFromFlags({ user: ':pw' }, {})).toThrow(/no user name/);
  });
});

describe('user, role and auth commands', () => {
  it('are found behind global flags that take values', () => {
    expect(authCommandOf(['--endpoints', 'a:1', '--user', 'root:x', 'role', 'list'])).toBe('role');
    expect(authCommandOf(['user', 'add', 'bob:pw'])).toBe('user');
    expect(authCommandOf(['--user', 'auth', 'get', 'k'])).toBeUndefined(); // "auth" here is --user's value
    expect(authCommandOf(['get', 'user'])).toBeUndefined();
  });

  it('refuse bad arguments before dialling (the endpoint does not exist)', async () => {
    const at = ['--endpoints', '127.0.0.1:1', '--timeout-ms', '200'];
    await expect(runAuthCommand([...at, 'role', 'grant-permission', 'app', 'readish', 'k'], io)).rejects.toThrow(/not read, write or readwrite/);
    await expect(runAuthCommand([...at, 'role', 'grant-permission', 'app', 'read', 'k', 'l', '--prefix'], io)).rejects.toThrow(/END cannot be given/);
    await expect(runAuthCommand([...at, 'role', 'revoke-permission', 'app', 'k', '--prefix', '--from-key'], io)).rejects.toThrow(/cannot both/);
    await expect(runAuthCommand([...at, 'user', 'add', 'bob'], io)).rejects.toThrow(/no password/);
    await expect(runAuthCommand([...at, 'user', 'frobnicate'], io)).rejects.toThrow(/unknown command "user frobnicate"/);
    await expect(runAuthCommand([...at, 'auth', 'enable', '--prefix'], io)).rejects.toThrow(/unknown flag --prefix/);
  });
});
