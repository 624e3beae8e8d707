// Where every raftkv client decides how it connects: endpoints (host:port, or etcd's http:// / https:// URLs) and
// the TLS to dial them with (etcdctl's --cacert, --cert, --key, --insecure-skip-tls-verify). KvClient, the CLI,
// the cluster tools, chaos and bench all dial through this, so credentials that ride on every call (etcd's
// `--user`: a token in the metadata, auth-token.ts) are added here, in one place.
import type { ChannelCredentials, ClientOptions } from '@grpc/grpc-js';
import { AuthToken } from './auth-token.js';
import type { DialUser } from './auth-token.js';
import { RaftKvError } from '../shared/errors.js';
import type { DialTlsConfig } from '../shared/tls-files.js';
import { CLIENT_DIAL_FLAGS, dialCredentials, splitEndpoint } from '../protocol/tls-credentials.js';

export type { DialTlsConfig } from '../shared/tls-files.js';
export type { DialUser } from './auth-token.js';

export interface DialOptions {
  readonly endpoints: readonly string[];
  /** TLS for every endpoint; an https:// endpoint turns it on (system roots unless caFile is given). */
  readonly tls?: DialTlsConfig;
  /** etcd's --user: every call carries this user's token (authenticated on first use). */
  readonly user?: DialUser;
}

export interface ResolvedDial {
  readonly endpoints: string[]; // host:port, deduplicated, in order
  readonly credentials: ChannelCredentials;
  readonly secure: boolean;
  /** What every grpc Client of these endpoints takes in its options (the token interceptor with a user). */
  readonly channelOptions: Pick<ClientOptions, 'interceptors'>;
  /** The user's token source, to close with the client; undefined without a user. */
  readonly auth: AuthToken | undefined;
}

/** Endpoints checked and stripped of their scheme, and the credentials for all of them (files read now). */
export function resolveDial(opts: DialOptions, who = 'KvClient'): ResolvedDial {
  const split = opts.endpoints.map((e) => e.trim()).filter((e) => e !== '').map(splitEndpoint);
  const endpoints = [...new Set(split.map((s) => s.address))];
  if (endpoints.length === 0) throw new RaftKvError('INVALID_ARGUMENT', `${who}: at least one endpoint is needed`);
  for (const e of endpoints) {
    if (!/^[^\s:]+:\d{1,5}$/.test(e)) throw new RaftKvError('INVALID_ARGUMENT', `${who}: endpoint ${JSON.stringify(e)} is not host:port`);
  }
  const https = split.some((s) => s.scheme === 'https');
  if (https && split.some((s) => s.scheme === 'http')) throw new RaftKvError('INVALID_ARGUMENT', `${who}: endpoints mix http:// and https://`);
  if (opts.tls !== undefined && split.some((s) => s.scheme === 'http')) throw new RaftKvError('INVALID_ARGUMENT', `${who}: TLS options given with http:// endpoints`);
  const tls = opts.tls ?? (https ? {} : undefined);
  const credentials = dialCredentials(tls, CLIENT_DIAL_FLAGS);
  const auth = opts.user === undefined ? undefined : new AuthToken(opts.user, endpoints, credentials);
  return { endpoints, credentials, secure: tls !== undefined, channelOptions: auth === undefined ? {} : { interceptors: [auth.interceptor()] }, auth };
}

/** Channel credentials alone (raw gRPC clients: chaos, bench, tests). */
export function clientCredentials(tls: DialTlsConfig | undefined): ChannelCredentials {
  return dialCredentials(tls, CLIENT_DIAL_FLAGS);
}
