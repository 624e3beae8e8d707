// `raftkv serve`'s TLS flags, with etcd's names and meanings, parsed into a MemberTlsConfig:
//   client port: --cert-file, --key-file, --trusted-ca-file, --client-cert-auth
//   peer port:   --peer-cert-file, --peer-key-file, --peer-trusted-ca-file, --peer-client-cert-auth,
//                --peer-cert-allowed-cn
// A port has TLS when its certificate and key are given (both or neither). The files are read and checked here,
// before anything starts: readable, PEM, the key matches its certificate; --*client-cert-auth needs the CA.
// URL schemes as etcd writes them: `https://` in --initial-cluster, --advertise-* and --listen-* needs TLS on that
// port, `http://` refuses it; a bare host:port (raftkv's own format) takes whatever the port has.
import { RaftKvError } from '../shared/errors.js';
import { loadKeyPair, readCaFile } from '../shared/tls-files.js';
import type { MemberTlsConfig, ServerTlsConfig } from '../shared/tls-files.js';

export const TLS_STRING_FLAGS = ['cert-file', 'key-file', 'trusted-ca-file', 'peer-cert-file', 'peer-key-file', 'peer-trusted-ca-file', 'peer-cert-allowed-cn'] as const;
export const TLS_BOOLEAN_FLAGS = ['client-cert-auth', 'peer-client-cert-auth'] as const;
export type TlsStringFlag = (typeof TLS_STRING_FLAGS)[number];
export type TlsBooleanFlag = (typeof TLS_BOOLEAN_FLAGS)[number];

export const SERVE_TLS_USAGE = `  [--cert-file F --key-file F]                 (TLS on the client port; plaintext is then refused)
  [--trusted-ca-file F] [--client-cert-auth]    (clients must present a certificate this CA signed)
  [--peer-cert-file F --peer-key-file F]       (TLS on the peer port; members dial each other with it)
  [--peer-trusted-ca-file F] [--peer-client-cert-auth] [--peer-cert-allowed-cn NAME]`;

function invalid(message: string): RaftKvError {
  return new RaftKvError('INVALID_ARGUMENT', message);
}

function portTls(
  get: (f: TlsStringFlag) => string | undefined,
  getBool: (f: TlsBooleanFlag) => boolean,
  prefix: '' | 'peer-',
): ServerTlsConfig | undefined {
  const certFlag = `${prefix}cert-file` as TlsStringFlag;
  const keyFlag = `${prefix}key-file` as TlsStringFlag;
  const caFlag = `${prefix}trusted-ca-file` as TlsStringFlag;
  const authFlag: TlsBooleanFlag = prefix === 'peer-' ? 'peer-client-cert-auth' : 'client-cert-auth';
  const certFile = get(certFlag);
  const keyFile = get(keyFlag);
  const trustedCaFile = get(caFlag);
  const clientCertAuth = getBool(authFlag);
  const allowedCn = prefix === 'peer-' ? get('peer-cert-allowed-cn') : undefined;
  if (certFile === undefined && keyFile === undefined) {
    const stray = [trustedCaFile !== undefined ? `--${caFlag}` : '', clientCertAuth ? `--${authFlag}` : '', allowedCn !== undefined ? '--peer-cert-allowed-cn' : ''].filter((x) => x !== '');
    if (stray.length > 0) throw invalid(`${stray.join(', ')} needs --${certFlag} and --${keyFlag} (TLS on that port)`);
    return undefined;
  }
  if (certFile === undefined || keyFile === undefined) throw invalid(`--${certFlag} and --${keyFlag} go together`);
  loadKeyPair(`--${certFlag}`, certFile, `--${keyFlag}`, keyFile);
  if (trustedCaFile !== undefined) readCaFile(`--${caFlag}`, trustedCaFile);
  if (clientCertAuth && trustedCaFile === undefined) throw invalid(`--${authFlag} needs --${caFlag} (the CA that signs the callers' certificates)`);
  if (allowedCn !== undefined && !clientCertAuth) throw invalid('--peer-cert-allowed-cn needs --peer-client-cert-auth (a peer certificate to check)');
  return { certFile, keyFile, clientCertAuth, ...(trustedCaFile !== undefined ? { trustedCaFile } : {}), ...(allowedCn !== undefined ? { allowedCn } : {}) };
}

/** The TLS flags; `urls` are the raw address flags, checked against each port's TLS by their scheme. */
export function parseServeTls(
  get: (f: TlsStringFlag) => string | undefined,
  getBool: (f: TlsBooleanFlag) => boolean,
  urls: { readonly peer: readonly [flag: string, value: string | undefined][]; readonly client: readonly [flag: string, value: string | undefined][] },
): MemberTlsConfig {
  const client = portTls(get, getBool, '');
  const peer = portTls(get, getBool, 'peer-');
  const check = (port: 'client' | 'peer', on: boolean, list: readonly [string, string | undefined][]): void => {
    for (const [flag, value] of list) {
      if (value === undefined) continue;
      if (on && value.startsWith('http://')) throw invalid(`--${flag}: ${value} is http://, but the ${port} port has TLS (use https:// or HOST:PORT)`);
      if (!on && value.startsWith('https://')) {
        throw invalid(`--${flag}: ${value} is https://, but the ${port} port has no TLS (give --${port === 'peer' ? 'peer-' : ''}cert-file and --${port === 'peer' ? 'peer-' : ''}key-file)`);
      }
    }
  };
  check('client', client !== undefined, urls.client);
  check('peer', peer !== undefined, urls.peer);
  return { ...(client !== undefined ? { client } : {}), ...(peer !== undefined ? { peer } : {}) };
}

/** The peer and client URLs of --initial-cluster's ID=PEER/CLIENT entries, for the scheme check. */
export function initialClusterUrls(value: string | undefined): { peer: string[]; client: string[] } {
  const peer: string[] = [];
  const client: string[] = [];
  for (const part of (value ?? '').split(',')) {
    // ID=PEER/CLIENT, each either HOST:PORT or a URL (whose `//` is not the separator).
    const entry = /^\s*\d+=((?:https?:\/\/)?[^/]+)\/((?:https?:\/\/)?[^/]+)\/?\s*$/.exec(part);
    // etcdctl member add's form, NAME=PEER_URL (etcd-initial-cluster.ts): a peer URL only.
    const etcdEntry = entry === null ? /^\s*[^=\s]+=((?:https?:\/\/)?[^/]+)\/?\s*$/.exec(part) : null;
    if (etcdEntry !== null) peer.push(etcdEntry[1] ?? '');
    if (entry === null) continue; // parseInitialCluster names the bad entry
    peer.push(entry[1] ?? '');
    client.push(entry[2] ?? '');
  }
  return { peer, client };
}
