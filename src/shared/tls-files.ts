// TLS settings and the PEM files they name, as every layer that listens or dials sees them: a member's client and
// peer ports (etcd's --cert-file/--key-file/--trusted-ca-file/--client-cert-auth and their --peer-* twins) and a
// client's etcd flags (--cacert/--cert/--key/--insecure-skip-tls-verify). Reading a file here checks what can be
// checked before anything listens or dials: it exists and is readable, it is PEM, a key matches its certificate.
// Problems are RaftKvError('INVALID_ARGUMENT') naming the flag and the file.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { RaftKvError } from './errors.js';

/** One listening port's TLS (etcd's meanings). */
export interface ServerTlsConfig {
  readonly certFile: string;
  readonly keyFile: string;
  /** The CA that signs the certificates of the port's callers (members for the peer port). */
  readonly trustedCaFile?: string;
  /** Callers must present a certificate signed by trustedCaFile; others are refused at the handshake. */
  readonly clientCertAuth: boolean;
  /** Peer port only (--peer-cert-allowed-cn): a caller's certificate must carry this common name. */
  readonly allowedCn?: string;
}

/** A member's TLS: either port may have it; each is plaintext without. */
export interface MemberTlsConfig {
  readonly client?: ServerTlsConfig;
  readonly peer?: ServerTlsConfig;
}

/** A dialer's TLS (etcdctl's flags). Present = TLS; each file optional (no cacert: the system's roots). */
export interface DialTlsConfig {
  readonly caFile?: string; // --cacert
  readonly certFile?: string; // --cert (with keyFile: a client certificate for --client-cert-auth)
  readonly keyFile?: string; // --key
  /** --insecure-skip-tls-verify: do not verify the server's certificate. For tests only. */
  readonly insecureSkipVerify?: boolean;
}

export interface LoadedKeyPair {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly x509: X509Certificate;
}

function invalid(message: string): RaftKvError {
  return new RaftKvError('INVALID_ARGUMENT', message);
}

/** The file at `path` (for `flag`), which must hold at least one PEM block. */
export function readPemFile(flag: string, path: string): Buffer {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (err as Error).message;
    throw invalid(`${flag} ${path}: cannot read it (${why})`);
  }
  if (!bytes.toString('latin1').includes('-----BEGIN ')) throw invalid(`${flag} ${path}: not a PEM file (no -----BEGIN line)`);
  return bytes;
}

/** The CA bundle at `path`: every block must be a certificate. */
export function readCaFile(flag: string, path: string): Buffer {
  const pem = readPemFile(flag, path);
  try {
    new X509Certificate(pem);
  } catch (err) {
    throw invalid(`${flag} ${path}: not a certificate (${(err as Error).message})`);
  }
  return pem;
}

/** A certificate and its private key; refuses a key that does not belong to the certificate. */
export function loadKeyPair(certFlag: string, certFile: string, keyFlag: string, keyFile: string): LoadedKeyPair {
  const cert = readPemFile(certFlag, certFile);
  const key = readPemFile(keyFlag, keyFile);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw invalid(`${certFlag} ${certFile}: not a certificate (${(err as Error).message})`);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw invalid(`${keyFlag} ${keyFile}: not a private key (${(err as Error).message})`);
  }
  if (!x509.checkPrivateKey(privateKey)) throw invalid(`${keyFlag} ${keyFile} does not match the certificate ${certFlag} ${certFile}`);
  return { cert, key, x509 };
}

/** Why `x509` is not valid at `nowMs` (expired, not yet valid); undefined when it is. */
export function validityProblem(x509: X509Certificate, nowMs: number): string | undefined {
  if (Date.parse(x509.validTo) < nowMs) return `certificate ${subjectCn(x509)} expired on ${x509.validTo}`;
  if (Date.parse(x509.validFrom) > nowMs) return `certificate ${subjectCn(x509)} is not valid before ${x509.validFrom}`;
  return undefined;
}

/** The common name in a subject like "CN=member-1\nO=raftkv" ('' if none). */
export function commonNameOf(subject: string): string {
  for (const line of subject.split('\n')) if (line.startsWith('CN=')) return line.slice(3);
  return '';
}

function subjectCn(x509: X509Certificate): string {
  return JSON.stringify(commonNameOf(x509.subject));
}
