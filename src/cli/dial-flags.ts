// etcdctl's TLS flags on every raftkv command that dials: --cacert, --cert, --key, --insecure-skip-tls-verify
// (tests only), each also from the environment (RAFTKV_CACERT, RAFTKV_CERT, RAFTKV_KEY), like --endpoints from
// RAFTKV_ENDPOINTS. Any of them, or an https:// endpoint, turns TLS on; the client library reads the files
// (src/client/dial-options.ts). And etcdctl's --user NAME[:PASSWORD] (default $RAFTKV_USER; the password, when
// not after the colon, from $RAFTKV_PASSWORD: raftkv never prompts): every call then carries the user's token.
import type { DialTlsConfig, DialUser } from '../client/index.js';
import { RaftKvError } from '../shared/errors.js';

export const DIAL_FLAG_OPTIONS = {
  cacert: { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
  'insecure-skip-tls-verify': { type: 'boolean' },
  user: { type: 'string' },
} as const;
export const DIAL_FLAGS: readonly string[] = Object.keys(DIAL_FLAG_OPTIONS);

export const DIAL_USAGE = `  --cacert FILE             verify members' certificates with this CA (TLS; default $RAFTKV_CACERT)
  --cert FILE --key FILE    a client certificate for --client-cert-auth (default $RAFTKV_CERT, $RAFTKV_KEY)
  --insecure-skip-tls-verify  TLS without verifying the members' certificates (tests only)
  --user NAME[:PASSWORD]    authenticate as NAME (default $RAFTKV_USER; password default $RAFTKV_PASSWORD)`;

/** Global flags of the dialling commands that take a value (command-name detection skips their values). */
export const DIAL_VALUE_FLAGS: readonly string[] = ['--cacert', '--cert', '--key', '--user'];

export interface DialFlagValues {
  readonly cacert?: string | undefined;
  readonly cert?: string | undefined;
  readonly key?: string | undefined;
  readonly 'insecure-skip-tls-verify'?: boolean | undefined;
  readonly user?: string | undefined;
}

/** The user --user (or $RAFTKV_USER) names, with its password; undefined for none. */
export function dialUserFromFlags(values: DialFlagValues, env: Readonly<Record<string, string | undefined>>): DialUser | undefined {
  const spec = values.user ?? env['RAFTKV_USER'];
  if (spec === undefined || spec === '') return undefined;
  const colon = spec.indexOf(':');
  const name = colon < 0 ? spec : spec.slice(0, colon);
  const password = colon < 0 ? env['RAFTKV_PASSWORD'] : spec.slice(colon + 1);
  if (name === '') throw new RaftKvError('INVALID_ARGUMENT', '--user: no user name before the ":"');
  if (password === undefined) throw new RaftKvError('INVALID_ARGUMENT', `--user ${name}: no password (give --user ${name}:PASSWORD or set RAFTKV_PASSWORD; raftkv does not prompt)`);
  return { name, password };
}

/** What a client of these flags dials with: TLS (also for https:// endpoints) and the user. */
export interface DialFlags {
  readonly tls?: DialTlsConfig;
  readonly user?: DialUser;
}

export function dialFromFlags(values: DialFlagValues, env: Readonly<Record<string, string | undefined>>, rawEndpoints: readonly string[]): DialFlags {
  const tls = dialTlsFromFlags(values, env) ?? (rawEndpoints.some((e) => e.startsWith('https://')) ? {} : undefined);
  const user = dialUserFromFlags(values, env);
  return { ...(tls !== undefined ? { tls } : {}), ...(user !== undefined ? { user } : {}) };
}

/** The TLS the flags ask for; undefined when none is given (plaintext, unless an endpoint says https://). */
export function dialTlsFromFlags(values: DialFlagValues, env: Readonly<Record<string, string | undefined>>): DialTlsConfig | undefined {
  const caFile = values.cacert ?? env['RAFTKV_CACERT'];
  const certFile = values.cert ?? env['RAFTKV_CERT'];
  const keyFile = values.key ?? env['RAFTKV_KEY'];
  const skip = values['insecure-skip-tls-verify'] === true;
  if (caFile === undefined && certFile === undefined && keyFile === undefined && !skip) return undefined;
  return {
    ...(caFile !== undefined ? { caFile } : {}),
    ...(certFile !== undefined ? { certFile } : {}),
    ...(keyFile !== undefined ? { keyFile } : {}),
    ...(skip ? { insecureSkipVerify: true } : {}),
  };
}
