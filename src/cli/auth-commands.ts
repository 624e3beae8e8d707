// The authentication commands of `raftkv`: user, role and auth, over etcd's Auth service (as etcdctl's, with its
// output: `User alice created`, `Role app is granted to user alice`, `Authentication Enabled`, a role's
// permissions as `KV Read:` / `KV Write:` lists). raftkv never prompts: a password comes after the colon of
// NAME:PASSWORD or from --new-user-password. `auth enable` adds the role root and grants it to the user root
// when they lack it, as etcdctl does.
import { parseArgs } from 'node:util';
import { EtcdChannel, Permission_Type, RaftKvError } from '../client/index.js';
import type { EtcdPermission } from '../client/index.js';
import { MAX_TIMER_DELAY_MS } from '../shared/clock.js';
import { DEFAULT_ENDPOINTS } from './main.js';
import type { CliIo } from './main.js';
import { AUTH_USAGE } from './auth-usage.js';
import { DIAL_FLAGS, DIAL_USAGE, dialFromFlags } from './dial-flags.js';
import { GLOBAL_FLAG_OPTIONS, commandIn, endpointsOf, writeOut } from './global-flags.js';
import { prefixEnd as prefixEndOf } from '../kv/types.js';

const AUTH_COMMANDS: ReadonlySet<string> = new Set(['user', 'role', 'auth']);
const GLOBAL_FLAGS = ['endpoints', 'write-out', 'timeout-ms', 'help', ...DIAL_FLAGS];
const COMMAND_FLAGS: Readonly<Record<string, readonly string[]>> = {
  user: ['new-user-password', 'no-password'],
  role: ['prefix', 'from-key'],
  auth: [],
};


function invalid(message: string): RaftKvError {
  return new RaftKvError('INVALID_ARGUMENT', message);
}

/** The command `argv` names when it is user, role or auth (global flags may come before it), else undefined. */
export function authCommandOf(argv: readonly string[]): string | undefined {
  return commandIn(argv, AUTH_COMMANDS, ['--new-user-password']);
}

/** etcd's GetPrefixRangeEnd on a string key. */
function prefixEnd(key: string): Buffer {
  return Buffer.from(prefixEndOf(Buffer.from(key)));
}

/** The range a permission command names: KEY [END], or --prefix / --from-key (etcdctl's). */
function rangeOf(args: readonly string[], prefix: boolean, fromKey: boolean, what: string): { key: Buffer; end: Buffer } {
  const [key, end] = args;
  if (key === undefined || args.length > 2) throw invalid(`${what}: expected KEY [END]`);
  if (prefix && fromKey) throw invalid(`${what}: --prefix and --from-key cannot both be given`);
  if ((prefix || fromKey) && end !== undefined) throw invalid(`${what}: END cannot be given with --prefix or --from-key`);
  if (prefix) return { key: Buffer.from(key), end: prefixEnd(key) };
  if (fromKey) return { key: Buffer.from(key), end: Buffer.of(0) };
  return { key: Buffer.from(key), end: end === undefined ? Buffer.alloc(0) : Buffer.from(end) };
}

/** etcdctl's role get lines for one access (KV Read: / KV Write:). */
function permissionLines(perms: readonly EtcdPermission[], read: boolean): string[] {
  const lines: string[] = [];
  for (const p of perms) {
    const fits = p.permType === Permission_Type.READWRITE || p.permType === (read ? Permission_Type.READ : Permission_Type.WRITE);
    if (!fits) continue;
    const key = p.key.toString();
    if (p.rangeEnd.length === 0) {
      lines.push(`\t${key}`);
      continue;
    }
    const fromKey = p.rangeEnd.length === 1 && p.rangeEnd[0] === 0;
    const range = fromKey ? `\t[${key}, <open ended>` : `\t[${key}, ${p.rangeEnd.toString()})`;
    lines.push(prefixEnd(key).equals(p.rangeEnd) ? `${range} (prefix ${key})` : range);
  }
  return lines;
}

/** NAME[:PASSWORD], the password else from --new-user-password (never prompted). */
function nameAndPassword(spec: string | undefined, flag: string | undefined, what: string, optional: boolean): { name: string; password: string } {
  if (spec === undefined || spec === '') throw invalid(`${what}: expected NAME[:PASSWORD]`);
  const colon = spec.indexOf(':');
  const name = colon < 0 ? spec : spec.slice(0, colon);
  const password = flag ?? (colon < 0 ? undefined : spec.slice(colon + 1));
  if (password === undefined && !optional) throw invalid(`${what}: no password: give NAME:PASSWORD or --new-user-password (raftkv does not prompt)`);
  return { name, password: password ?? '' };
}

export async function runAuthCommand(argv: string[], io: CliIo): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        ...GLOBAL_FLAG_OPTIONS,
        'new-user-password': { type: 'string' },
        'no-password': { type: 'boolean' },
        prefix: { type: 'boolean' },
        'from-key': { type: 'boolean' },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw invalid(`${err instanceof Error ? (err.message.split('\n')[0] ?? '') : String(err)} (see raftkv --help)`);
  }
  const { values, positionals } = parsed;
  const [cmd = '', sub = '', ...args] = positionals;
  if (values.help === true) {
    io.stdout.write(`usage: raftkv [global flags] COMMAND ...\n${AUTH_USAGE}\n${DIAL_USAGE}\n`);
    return;
  }
  const allowed = COMMAND_FLAGS[cmd] ?? [];
  for (const [flag, v] of Object.entries(values)) {
    if (v !== undefined && !GLOBAL_FLAGS.includes(flag) && !allowed.includes(flag)) throw invalid(`${cmd}: unknown flag --${flag}`);
  }
  const { out } = writeOut(values['write-out'], io.stdout);
  const { raw: rawEndpoints, endpoints } = endpointsOf(values.endpoints, io.env, DEFAULT_ENDPOINTS);
  const t = values['timeout-ms'];
  if (t !== undefined && (!/^\d+$/.test(t) || Number(t) < 1 || Number(t) > MAX_TIMER_DELAY_MS)) throw invalid(`--timeout-ms: ${JSON.stringify(t)} is not a whole number of ms`);
  const timeoutMs = t === undefined ? 5000 : Number(t);
  const want = (n: number, usage: string): void => {
    if (args.length !== n) throw invalid(`${cmd} ${sub}: expected ${usage}`);
  };
  // Check the arguments before dialling.
  const run = plan(cmd, sub, args, values, want);
  const channel = new EtcdChannel({ endpoints, timeoutMs, ...dialFromFlags(values, io.env, rawEndpoints) });
  try {
    await run(channel, out);
  } finally {
    channel.close();
  }
}

type Out = (simple: string, obj: object) => void;
type Step = (c: EtcdChannel, out: Out) => Promise<void>;

function plan(
  cmd: string,
  sub: string,
  args: readonly string[],
  values: { 'new-user-password'?: string | undefined; 'no-password'?: boolean | undefined; prefix?: boolean | undefined; 'from-key'?: boolean | undefined },
  want: (n: number, usage: string) => void,
): Step {
  const name = args[0] ?? '';
  switch (`${cmd} ${sub}`) {
    case 'user add': {
      want(1, 'NAME[:PASSWORD]');
      const noPassword = values['no-password'] === true;
      const u = nameAndPassword(args[0], values['new-user-password'], 'user add', noPassword);
      return async (c, out) => {
        await c.unary('Auth', 'UserAdd', { name: u.name, password: u.password, options: { noPassword } }, 'write');
        out(`User ${u.name} created`, { user: u.name, created: true });
      };
    }
    case 'user delete':
      want(1, 'NAME');
      return async (c, out) => {
        await c.unary('Auth', 'UserDelete', { name }, 'write');
        out(`User ${name} deleted`, { user: name, deleted: true });
      };
    case 'user get':
      want(1, 'NAME');
      return async (c, out) => {
        const r = await c.unary('Auth', 'UserGet', { name }, 'read');
        out(`User: ${name}\nRoles: ${r.roles.join(' ')}`, { user: name, roles: r.roles });
      };
    case 'user list':
      want(0, 'nothing');
      return async (c, out) => {
        const r = await c.unary('Auth', 'UserList', {}, 'read');
        out(r.users.join('\n'), { users: r.users });
      };
    case 'user passwd': {
      want(1, 'NAME[:PASSWORD]');
      const u = nameAndPassword(args[0], values['new-user-password'], 'user passwd', false);
      return async (c, out) => {
        await c.unary('Auth', 'UserChangePassword', { name: u.name, password: u.password }, 'write');
        out('Password updated', { user: u.name, passwordChanged: true });
      };
    }
    case 'user grant-role':
      want(2, 'NAME ROLE');
      return async (c, out) => {
        await c.unary('Auth', 'UserGrantRole', { user: name, role: args[1] ?? '' }, 'write');
        out(`Role ${args[1] ?? ''} is granted to user ${name}`, { user: name, role: args[1], granted: true });
      };
    case 'user revoke-role':
      want(2, 'NAME ROLE');
      return async (c, out) => {
        await c.unary('Auth', 'UserRevokeRole', { name, role: args[1] ?? '' }, 'write');
        out(`Role ${args[1] ?? ''} is revoked from user ${name}`, { user: name, role: args[1], revoked: true });
      };
    case 'role add':
      want(1, 'ROLE');
      return async (c, out) => {
        await c.unary('Auth', 'RoleAdd', { name }, 'write');
        out(`Role ${name} created`, { role: name, created: true });
      };
    case 'role delete':
      want(1, 'ROLE');
      return async (c, out) => {
        await c.unary('Auth', 'RoleDelete', { role: name }, 'write');
        out(`Role ${name} deleted`, { role: name, deleted: true });
      };
    case 'role get':
      want(1, 'ROLE');
      return async (c, out) => {
        const r = await c.unary('Auth', 'RoleGet', { role: name }, 'read');
        const perms = r.perm.map((p) => ({ type: Permission_Type[p.permType], key: p.key.toString(), rangeEnd: p.rangeEnd.toString() }));
        out([`Role ${name}`, 'KV Read:', ...permissionLines(r.perm, true), 'KV Write:', ...permissionLines(r.perm, false)].join('\n'), { role: name, permissions: perms });
      };
    case 'role list':
      want(0, 'nothing');
      return async (c, out) => {
        const r = await c.unary('Auth', 'RoleList', {}, 'read');
        out(r.roles.join('\n'), { roles: r.roles });
      };
    case 'role grant-permission': {
      if (args.length < 3) throw invalid('role grant-permission: expected ROLE read|write|readwrite KEY [END]');
      const types: Readonly<Record<string, Permission_Type>> = { read: Permission_Type.READ, write: Permission_Type.WRITE, readwrite: Permission_Type.READWRITE };
      const permType = types[(args[1] ?? '').toLowerCase()];
      if (permType === undefined) throw invalid(`role grant-permission: ${JSON.stringify(args[1])} is not read, write or readwrite`);
      const range = rangeOf(args.slice(2), values.prefix === true, values['from-key'] === true, 'role grant-permission');
      return async (c, out) => {
        await c.unary('Auth', 'RoleGrantPermission', { name, perm: { permType, key: range.key, rangeEnd: range.end } }, 'write');
        out(`Role ${name} updated`, { role: name, updated: true });
      };
    }
    case 'role revoke-permission': {
      if (args.length < 2) throw invalid('role revoke-permission: expected ROLE KEY [END]');
      const range = rangeOf(args.slice(1), values.prefix === true, values['from-key'] === true, 'role revoke-permission');
      return async (c, out) => {
        await c.unary('Auth', 'RoleRevokePermission', { role: name, key: range.key, rangeEnd: range.end }, 'write');
        const key = range.key.toString();
        const what = range.end.length === 0 ? `key ${key}` : range.end.length === 1 && range.end[0] === 0 ? `range [${key}, <open ended>` : `range [${key}, ${range.end.toString()})`;
        out(`Permission of ${what} is revoked from role ${name}`, { role: name, revoked: true });
      };
    }
    case 'auth enable':
      want(0, 'nothing');
      return async (c, out) => {
        // etcdctl's: when root lacks the root role, add it (if missing) and grant it, then try again.
        for (let attempt = 0; ; attempt++) {
          try {
            await c.unary('Auth', 'AuthEnable', {}, 'write');
            break;
          } catch (err) {
            if (attempt > 0 || !(err instanceof RaftKvError) || !err.message.includes('root user does not have root role')) throw err;
            const roles = await c.unary('Auth', 'RoleList', {}, 'read');
            if (!roles.roles.includes('root')) await c.unary('Auth', 'RoleAdd', { name: 'root' }, 'write');
            await c.unary('Auth', 'UserGrantRole', { user: 'root', role: 'root' }, 'write');
          }
        }
        out('Authentication Enabled', { enabled: true });
      };
    case 'auth disable':
      want(0, 'nothing');
      return async (c, out) => {
        await c.unary('Auth', 'AuthDisable', {}, 'write');
        out('Authentication Disabled', { enabled: false });
      };
    case 'auth status':
      want(0, 'nothing');
      return async (c, out) => {
        const r = await c.unary('Auth', 'AuthStatus', {}, 'read');
        out(`Authentication Status: ${String(r.enabled)}\nAuthRevision: ${r.authRevision}`, { enabled: r.enabled, authRevision: Number(r.authRevision) });
      };
    default:
      throw invalid(`unknown command ${JSON.stringify(`${cmd} ${sub}`.trim())} (see raftkv --help)`);
  }
}
