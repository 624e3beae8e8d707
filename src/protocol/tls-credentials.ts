// The one dial-options helper: gRPC channel credentials from a DialTlsConfig (etcdctl's --cacert, --cert, --key,
// --insecure-skip-tls-verify), for every raftkv dialer: the client library (and through it the CLI and the
// cluster tools), the chaos and bench clients, and members dialling each other (the transport, write
// forwarding, the corrupt check, with the peer certificate as the client certificate).
//   - undefined: plaintext (grpc's insecure credentials);
//   - `dialCredentials`: the files read once, now (a short-lived dialer: the CLI, a client);
//   - `reloadingDialCredentials`: grpc-js's FileWatcherCertificateProvider re-reads the files every
//     refreshIntervalMs, so a long-lived dialer (a member) presents a rotated certificate on its next connection.
// Either way, the files are read and checked first (a missing file, a key that does not match its certificate:
// INVALID_ARGUMENT naming the flag). Node's minimum TLS version (1.2) applies.
import { credentials, experimental } from '@grpc/grpc-js';
import type { ChannelCredentials, VerifyOptions } from '@grpc/grpc-js';
import { loadKeyPair, readCaFile } from '../shared/tls-files.js';
import type { DialTlsConfig } from '../shared/tls-files.js';
import { RaftKvError } from '../shared/errors.js';

/** Flag names for messages: etcdctl's (a client) or the member's own --peer-* (a member dialling a member). */
export interface DialFlagNames {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}
export const CLIENT_DIAL_FLAGS: DialFlagNames = { ca: '--cacert', cert: '--cert', key: '--key' };
export const PEER_DIAL_FLAGS: DialFlagNames = { ca: '--peer-trusted-ca-file', cert: '--peer-cert-file', key: '--peer-key-file' };

function verifyOptions(tls: DialTlsConfig): VerifyOptions {
  // --insecure-skip-tls-verify: any certificate, any name (tests only, as etcdctl says).
  return tls.insecureSkipVerify === true ? { rejectUnauthorized: false, checkServerIdentity: () => undefined } : {};
}

function checkPairGiven(tls: DialTlsConfig, flags: DialFlagNames): void {
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
    throw new RaftKvError('INVALID_ARGUMENT', `${flags.cert} and ${flags.key} go together (a client certificate and its key)`);
  }
}

/** Credentials for one dial, the files read now. */
export function dialCredentials(tls: DialTlsConfig | undefined, flags: DialFlagNames = CLIENT_DIAL_FLAGS): ChannelCredentials {
  if (tls === undefined) return credentials.createInsecure();
  checkPairGiven(tls, flags);
  const ca = tls.caFile !== undefined ? readCaFile(flags.ca, tls.caFile) : null;
  const pair = tls.certFile !== undefined && tls.keyFile !== undefined ? loadKeyPair(flags.cert, tls.certFile, flags.key, tls.keyFile) : undefined;
  return credentials.createSsl(ca, pair?.key ?? null, pair?.cert ?? null, verifyOptions(tls));
}

/** Credentials that re-read the files every `refreshIntervalMs` (checked once now). */
export function reloadingDialCredentials(tls: DialTlsConfig | undefined, flags: DialFlagNames, refreshIntervalMs: number): ChannelCredentials {
  if (tls === undefined) return credentials.createInsecure();
  dialCredentials(tls, flags); // the checks, with clear messages, before the provider reads anything
  if (tls.caFile === undefined) return dialCredentials(tls, flags); // the provider needs a CA file: system roots do not rotate
  const provider = new experimental.FileWatcherCertificateProvider({
    caCertificateFile: tls.caFile,
    ...(tls.certFile !== undefined && tls.keyFile !== undefined ? { certificateFile: tls.certFile, privateKeyFile: tls.keyFile } : {}),
    refreshIntervalMs,
  });
  const identity = tls.certFile !== undefined ? provider : null;
  return experimental.createCertificateProviderChannelCredentials(provider, identity, verifyOptions(tls));
}

/**
 * An endpoint as etcd's tools write it, split into the host:port gRPC dials and whether it asks for TLS:
 * `https://h:p` is TLS, `http://h:p` and `h:p` are as configured (raftkv's own address format stays host:port).
 */
export function splitEndpoint(endpoint: string): { address: string; scheme: 'https' | 'http' | undefined } {
  const m = /^(https?):\/\/(.*?)\/?$/.exec(endpoint);
  if (m === null) return { address: endpoint, scheme: undefined };
  return { address: m[2] ?? '', scheme: m[1] === 'https' ? 'https' : 'http' };
}
