// The auth store (etcd's auth/store.go): whether authentication is on, the users (a password hash, roles) and the
// roles (key-range permissions), and the auth revision, which grows by 1 with each change that takes effect.
// Changed only by 'auth' commands through the log, so every member holds the same store at the same applied
// index; it lives in LevelDB under KEY_AUTH (and therefore in snapshots), written in the batch of the entry
// that changed it.
//
// etcd's rules kept here: enabling needs a user `root` holding the role `root`; while enabled, the user root
// cannot be deleted nor lose the root role, and the role root cannot be deleted (ErrInvalidAuthMgmt); the role
// root needs no RoleAdd to be granted and holds every permission; deleting a role takes it from every user;
// granting a role a user has is ignored; granting a permission on a range a role already names replaces its type.
// With auth on, every change needs the caller (`by`) to hold the root role (etcd's authApplierV3 checks it on
// apply; with auth off anyone may change the store, as in etcd).
//
// Simple tokens (etcd's `simple` provider) are member-local and not persisted, as etcd's: apply of an
// 'authenticate' change assigns the token on every member; a password change, a user's deletion and disabling
// auth drop the tokens they concern. Their 5-minute TTL is the server's (server/simple-token-ttl.ts), which
// calls forgetToken() when one lapses; MAX_SIMPLE_TOKENS bounds the table.
//
// On-disk format of the KEY_AUTH value: JSON (UTF-8) {"v":1,"enabled":bool,"revision":n,"users":[{"name","hash",
// "roles":[...],"noPassword":bool}],"roles":[{"name","perms":[{"type":"read"|"write"|"readwrite","key":base64,
// "end":base64}]}]}, users and roles sorted by name, a role's permissions by key then end.
import { RaftKvError } from '../shared/errors.js';
import { rangePermitted } from './range-permissions.js';
import type { AuthChange, AuthOp, Permission } from './types.js';

/** The LevelDB key of the auth store (a meta key: 'm' prefix, schema.ts). */
export const KEY_AUTH = Uint8Array.from(Buffer.from('mauth', 'latin1'));

export const ROOT_USER = 'root';
export const ROOT_ROLE = 'root';

/** At most this many live simple tokens per member: the oldest go first (etcd bounds them only by their TTL). */
export const MAX_SIMPLE_TOKENS = 100_000;

// etcd's messages (rpctypes), exact: clients match them.
export const ETCD_ROOT_USER_NOT_EXIST = 'etcdserver: root user does not exist';
export const ETCD_ROOT_ROLE_NOT_EXIST = 'etcdserver: root user does not have root role';
export const ETCD_USER_ALREADY_EXIST = 'etcdserver: user name already exists';
export const ETCD_USER_EMPTY = 'etcdserver: user name is empty';
export const ETCD_USER_NOT_FOUND = 'etcdserver: user name not found';
export const ETCD_ROLE_ALREADY_EXIST = 'etcdserver: role name already exists';
export const ETCD_ROLE_NOT_FOUND = 'etcdserver: role name not found';
export const ETCD_ROLE_EMPTY = 'etcdserver: role name is empty';
export const ETCD_AUTH_FAILED = 'etcdserver: authentication failed, invalid user ID or password';
export const ETCD_PERMISSION_DENIED = 'etcdserver: permission denied';
export const ETCD_ROLE_NOT_GRANTED = 'etcdserver: role is not granted to the user';
export const ETCD_PERMISSION_NOT_GRANTED = 'etcdserver: permission is not granted to the role';
export const ETCD_AUTH_NOT_ENABLED = 'etcdserver: authentication is not enabled';
export const ETCD_INVALID_AUTH_TOKEN = 'etcdserver: invalid auth token';
export const ETCD_INVALID_AUTH_MGMT = 'etcdserver: invalid auth management';
export const ETCD_PERMISSION_NOT_GIVEN = 'etcdserver: permission not given';

export interface AuthUser {
  readonly name: string;
  readonly hash: string; // bcrypt hash; '' for a user added with noPassword
  readonly roles: readonly string[]; // sorted
  readonly noPassword: boolean;
}

export interface AuthRole {
  readonly name: string;
  readonly perms: readonly Permission[]; // sorted by key, then end
}

/** What the services read: the store as of this member's applied index. */
export interface AuthView {
  readonly enabled: boolean;
  readonly revision: number;
  user(name: string): AuthUser | undefined;
  role(name: string): AuthRole | undefined;
  userNames(): string[];
  roleNames(): string[];
  /** The user a simple token was assigned to on this member, if it is live. */
  tokenUser(token: string): string | undefined;
  /** Drops a token on this member (its TTL lapsed). */
  forgetToken(token: string): void;
  /** Whether `user` holds the root role. */
  isRoot(user: string): boolean;
  /** Whether `user` (root: always) may `need` every key of [key, end) (etcd's encoding). */
  permitted(user: string, need: 'read' | 'write', key: Uint8Array, end: Uint8Array): boolean;
}

const refused = (message: string): RaftKvError => new RaftKvError('AUTH_REFUSED', message);
const invalid = (message: string): RaftKvError => new RaftKvError('INVALID_ARGUMENT', message);

function byName<T extends { name: string }>(a: T, b: T): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function comparePerm(a: Permission, b: Permission): number {
  return Buffer.compare(Buffer.from(a.key), Buffer.from(b.key)) || Buffer.compare(Buffer.from(a.end), Buffer.from(b.end));
}

function sameRange(p: Permission, key: Uint8Array, end: Uint8Array): boolean {
  return Buffer.from(p.key).equals(Buffer.from(key)) && Buffer.from(p.end).equals(Buffer.from(end));
}

export class AuthStore implements AuthView {
  private enabledValue = false;
  private revisionValue = 1; // etcd's auth revision starts at 1
  private readonly users = new Map<string, AuthUser>();
  private readonly roles = new Map<string, AuthRole>();
  private readonly tokens = new Map<string, string>(); // token -> user; Map order = assignment order

  get enabled(): boolean {
    return this.enabledValue;
  }

  get revision(): number {
    return this.revisionValue;
  }

  user(name: string): AuthUser | undefined {
    return this.users.get(name);
  }

  role(name: string): AuthRole | undefined {
    return this.roles.get(name);
  }

  userNames(): string[] {
    return [...this.users.keys()].sort();
  }

  roleNames(): string[] {
    return [...this.roles.keys()].sort();
  }

  tokenUser(token: string): string | undefined {
    return this.tokens.get(token);
  }

  forgetToken(token: string): void {
    this.tokens.delete(token);
  }

  isRoot(user: string): boolean {
    return this.users.get(user)?.roles.includes(ROOT_ROLE) ?? false;
  }

  permitted(user: string, need: 'read' | 'write', key: Uint8Array, end: Uint8Array): boolean {
    const u = this.users.get(user);
    if (u === undefined) return false;
    if (u.roles.includes(ROOT_ROLE)) return true;
    const perms = u.roles.flatMap((r) => this.roles.get(r)?.perms ?? []);
    return rangePermitted(perms, need, key, end);
  }

  /**
   * Checks and applies an auth command of log entry `entryIndex`; throws a request error (AUTH_REFUSED,
   * INVALID_ARGUMENT, PERMISSION_DENIED) and changes nothing when refused. `changed`: the persisted store changed
   * (the caller then writes encode() in the entry's batch); `token`: an authenticate's simple token.
   */
  apply(op: AuthOp, entryIndex: number): { changed: boolean; token: string } {
    if (this.enabledValue && op.change.kind !== 'authenticate' && !this.isRoot(op.by)) {
      throw op.by === '' ? invalid(ETCD_USER_EMPTY) : new RaftKvError('PERMISSION_DENIED', ETCD_PERMISSION_DENIED);
    }
    if (op.change.kind === 'authenticate') return { changed: false, token: this.authenticate(op.change, entryIndex) };
    return { changed: this.change(op.change), token: '' };
  }

  /** Assigns the simple token `<random>.<entry index>` (etcd's format: a member that has not applied the entry yet waits for it). */
  private authenticate(c: Extract<AuthChange, { kind: 'authenticate' }>, entryIndex: number): string {
    if (!this.enabledValue) throw refused(ETCD_AUTH_NOT_ENABLED);
    const u = this.users.get(c.name);
    if (u === undefined || u.noPassword || u.hash !== c.verifiedHash) throw invalid(ETCD_AUTH_FAILED);
    const token = `${c.token}.${entryIndex}`;
    this.tokens.set(token, c.name);
    if (this.tokens.size > MAX_SIMPLE_TOKENS) {
      const oldest = this.tokens.keys().next();
      if (oldest.done !== true) this.tokens.delete(oldest.value);
    }
    return token;
  }

  private bump(): true {
    this.revisionValue++;
    return true;
  }

  private mustUser(name: string): AuthUser {
    const u = this.users.get(name);
    if (u === undefined) throw refused(ETCD_USER_NOT_FOUND);
    return u;
  }

  private mustRole(name: string): AuthRole {
    const r = this.roles.get(name);
    if (r === undefined) throw refused(ETCD_ROLE_NOT_FOUND);
    return r;
  }

  private dropTokensOf(user: string): void {
    for (const [t, u] of this.tokens) if (u === user) this.tokens.delete(t);
  }

  private change(c: AuthChange): boolean {
    switch (c.kind) {
      case 'enable': {
        if (this.enabledValue) return false;
        const root = this.users.get(ROOT_USER);
        if (root === undefined) throw refused(ETCD_ROOT_USER_NOT_EXIST);
        if (!root.roles.includes(ROOT_ROLE)) throw refused(ETCD_ROOT_ROLE_NOT_EXIST);
        this.enabledValue = true;
        return true; // etcd does not bump the revision on enable
      }
      case 'disable':
        if (!this.enabledValue) return false;
        this.enabledValue = false;
        this.tokens.clear();
        return this.bump();
      case 'authenticate':
        throw new Error('kv: authenticate is applied by authenticate()');
      case 'user-add':
        if (c.name === '') throw invalid(ETCD_USER_EMPTY);
        if (this.users.has(c.name)) throw refused(ETCD_USER_ALREADY_EXIST);
        this.users.set(c.name, { name: c.name, hash: c.noPassword ? '' : c.hash, roles: [], noPassword: c.noPassword });
        return this.bump();
      case 'user-delete':
        if (this.enabledValue && c.name === ROOT_USER) throw invalid(ETCD_INVALID_AUTH_MGMT);
        this.mustUser(c.name);
        this.users.delete(c.name);
        this.dropTokensOf(c.name);
        return this.bump();
      case 'user-change-password': {
        const u = this.mustUser(c.name);
        this.users.set(c.name, { ...u, hash: c.hash, noPassword: false });
        this.dropTokensOf(c.name);
        return this.bump();
      }
      case 'user-grant-role': {
        const u = this.mustUser(c.name);
        if (c.role !== ROOT_ROLE) this.mustRole(c.role);
        if (u.roles.includes(c.role)) return false; // etcd ignores it
        this.users.set(c.name, { ...u, roles: [...u.roles, c.role].sort() });
        return this.bump();
      }
      case 'user-revoke-role': {
        if (this.enabledValue && c.name === ROOT_USER && c.role === ROOT_ROLE) throw invalid(ETCD_INVALID_AUTH_MGMT);
        const u = this.mustUser(c.name);
        if (!u.roles.includes(c.role)) throw refused(ETCD_ROLE_NOT_GRANTED);
        this.users.set(c.name, { ...u, roles: u.roles.filter((r) => r !== c.role) });
        return this.bump();
      }
      case 'role-add':
        if (c.name === '') throw invalid(ETCD_ROLE_EMPTY);
        if (this.roles.has(c.name)) throw refused(ETCD_ROLE_ALREADY_EXIST);
        this.roles.set(c.name, { name: c.name, perms: [] });
        return this.bump();
      case 'role-delete':
        if (this.enabledValue && c.name === ROOT_ROLE) throw invalid(ETCD_INVALID_AUTH_MGMT);
        this.mustRole(c.name);
        this.roles.delete(c.name);
        for (const u of this.users.values()) {
          if (u.roles.includes(c.name)) this.users.set(u.name, { ...u, roles: u.roles.filter((r) => r !== c.name) });
        }
        return this.bump();
      case 'role-grant-permission': {
        const r = this.mustRole(c.name);
        const rest = r.perms.filter((p) => !sameRange(p, c.permission.key, c.permission.end));
        this.roles.set(c.name, { name: c.name, perms: [...rest, c.permission].sort(comparePerm) });
        return this.bump();
      }
      case 'role-revoke-permission': {
        const r = this.mustRole(c.name);
        const rest = r.perms.filter((p) => !sameRange(p, c.key, c.end));
        if (rest.length === r.perms.length) throw refused(ETCD_PERMISSION_NOT_GRANTED);
        this.roles.set(c.name, { name: c.name, perms: rest });
        return this.bump();
      }
      default: {
        const never: never = c;
        throw new Error(`kv: unknown auth change ${JSON.stringify(never)}`);
      }
    }
  }

  /** Replaces the store with a stored one (undefined: the initial store). Throws DATA_CORRUPTION on a malformed record. Tokens are dropped. */
  load(b: Uint8Array | undefined): void {
    this.users.clear();
    this.roles.clear();
    this.tokens.clear();
    this.enabledValue = false;
    this.revisionValue = 1;
    if (b === undefined) return;
    const bad = (what: string): RaftKvError => new RaftKvError('DATA_CORRUPTION', `kv: the auth record is damaged: ${what}`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.from(b).toString('utf8'));
    } catch (err) {
      throw bad(err instanceof Error ? err.message : String(err));
    }
    const rec = parsed as StoredAuth;
    if (typeof rec !== 'object' || rec === null || rec.v !== 1) throw bad('unknown format');
    if (typeof rec.enabled !== 'boolean' || !Number.isSafeInteger(rec.revision) || !Array.isArray(rec.users) || !Array.isArray(rec.roles)) throw bad('missing fields');
    for (const u of rec.users) {
      if (typeof u.name !== 'string' || typeof u.hash !== 'string' || !Array.isArray(u.roles) || typeof u.noPassword !== 'boolean') throw bad('a malformed user');
      this.users.set(u.name, { name: u.name, hash: u.hash, roles: u.roles.map(String), noPassword: u.noPassword });
    }
    for (const r of rec.roles) {
      if (typeof r.name !== 'string' || !Array.isArray(r.perms)) throw bad('a malformed role');
      const perms = r.perms.map((p): Permission => {
        if (p.type !== 'read' && p.type !== 'write' && p.type !== 'readwrite') throw bad(`a permission of type ${String(p.type)}`);
        return { type: p.type, key: Uint8Array.from(Buffer.from(p.key, 'base64')), end: Uint8Array.from(Buffer.from(p.end, 'base64')) };
      });
      this.roles.set(r.name, { name: r.name, perms });
    }
    this.enabledValue = rec.enabled;
    this.revisionValue = rec.revision;
  }

  encode(): Uint8Array {
    const rec: StoredAuth = {
      v: 1,
      enabled: this.enabledValue,
      revision: this.revisionValue,
      users: [...this.users.values()].sort(byName).map((u) => ({ name: u.name, hash: u.hash, roles: [...u.roles], noPassword: u.noPassword })),
      roles: [...this.roles.values()].sort(byName).map((r) => ({
        name: r.name,
        perms: r.perms.map((p) => ({ type: p.type, key: Buffer.from(p.key).toString('base64'), end: Buffer.from(p.end).toString('base64') })),
      })),
    };
    return Uint8Array.from(Buffer.from(JSON.stringify(rec), 'utf8'));
  }
}

/** The store of a state machine without auth: off, empty, and never changing. */
export const NO_AUTH: AuthView = new AuthStore();

interface StoredAuth {
  v: number;
  enabled: boolean;
  revision: number;
  users: { name: string; hash: string; roles: string[]; noPassword: boolean }[];
  roles: { name: string; perms: { type: string; key: string; end: string }[] }[];
}
