// A local certificate authority for `npm run cluster -- up --tls` and the TLS tests, made with the `openssl`
// command: a CA, one certificate per member (used for its client port, its peer port and as its client
// certificate when it dials other members: extended key usage serverAuth + clientAuth, names 127.0.0.1 and
// localhost), and a client certificate for the CLI and etcdctl.
// Why openssl and not an npm package: it is what etcd's own docs and most operators use (cfssl or openssl), so
// the files and commands here are ones a reader can repeat by hand; Debian has it everywhere (it is installed
// by scripts/install-system-deps.sh when missing); and it can issue a certificate that is already expired
// (`-days -1`), which the expired-certificate test needs. Node itself can verify certificates but not issue them.
// Keys are EC P-256 (fast to make, accepted by Go's TLS, i.e. etcdctl).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CertPair {
  readonly cert: string; // PEM file paths
  readonly key: string;
}

export interface ClusterCertificates {
  readonly dir: string;
  readonly ca: CertPair;
  readonly members: ReadonlyMap<number, CertPair>;
  readonly client: CertPair;
}

export interface IssueOptions {
  readonly ca: CertPair; // signer
  readonly out: string; // path prefix: <out>.crt and <out>.key
  readonly cn: string;
  /** Days valid from now; -1 issues a certificate that expired a day ago (OpenSSL 3 takes a negative count). */
  readonly days?: number;
  readonly ips?: readonly string[];
  readonly dnsNames?: readonly string[];
  readonly usage?: readonly ('serverAuth' | 'clientAuth')[];
}

/** Throws with the remedy when the openssl command is missing. */
export function requireOpenssl(): void {
  try {
    execFileSync('openssl', ['version'], { stdio: 'pipe' });
  } catch {
    throw new Error('openssl is missing: run `bash scripts/install-system-deps.sh` as root (Debian package openssl), or install it yourself');
  }
}

function openssl(args: readonly string[]): void {
  try {
    execFileSync('openssl', [...args], { stdio: 'pipe' });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim() ?? '';
    throw new Error(`openssl ${args[0] ?? ''} failed: ${stderr || (err as Error).message}`);
  }
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

/** A self-signed CA (10 years) at <out>.crt / <out>.key. */
export function makeCa(out: string, cn = 'raftkv local CA'): CertPair {
  const pair = { cert: `${out}.crt`, key: `${out}.key` };
  openssl(['req', '-x509', ...EC_KEY, '-keyout', pair.key, '-out', pair.cert, '-subj', `/CN=${cn}`, '-days', '3650', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  return pair;
}

/** A certificate signed by `ca`. */
export function issueCertificate(o: IssueOptions): CertPair {
  const pair = { cert: `${o.out}.crt`, key: `${o.out}.key` };
  const csr = `${o.out}.csr`;
  const ext = `${o.out}.ext`;
  const sans = [...(o.ips ?? []).map((ip) => `IP:${ip}`), ...(o.dnsNames ?? []).map((d) => `DNS:${d}`)];
  const lines = ['basicConstraints=CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', `extendedKeyUsage=${(o.usage ?? ['serverAuth', 'clientAuth']).join(',')}`];
  if (sans.length > 0) lines.push(`subjectAltName=${sans.join(',')}`);
  writeFileSync(ext, lines.join('\n') + '\n');
  openssl(['req', ...EC_KEY, '-keyout', pair.key, '-out', csr, '-subj', `/CN=${o.cn}`]);
  openssl(['x509', '-req', '-in', csr, '-CA', o.ca.cert, '-CAkey', o.ca.key, '-CAcreateserial', '-out', pair.cert, '-days', String(o.days ?? 825), '-extfile', ext]);
  return pair;
}

/** The CA, member and client certificates of a local cluster under `dir` (made once; kept if already there). */
export function makeClusterCertificates(dir: string, memberIds: readonly number[], host = '127.0.0.1'): ClusterCertificates {
  requireOpenssl();
  mkdirSync(dir, { recursive: true });
  const ca = existsSync(join(dir, 'ca.crt')) ? { cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') } : makeCa(join(dir, 'ca'));
  const members = new Map<number, CertPair>();
  for (const id of memberIds) {
    const out = join(dir, `member-${id}`);
    members.set(id, existsSync(`${out}.crt`) ? { cert: `${out}.crt`, key: `${out}.key` } : issueCertificate({ ca, out, cn: `member-${id}`, ips: [...new Set([host, '127.0.0.1'])], dnsNames: ['localhost'] }));
  }
  const clientOut = join(dir, 'client');
  const client = existsSync(`${clientOut}.crt`) ? { cert: `${clientOut}.crt`, key: `${clientOut}.key` } : issueCertificate({ ca, out: clientOut, cn: 'client', usage: ['clientAuth'] });
  return { dir, ca, members, client };
}

/** Member `id`'s serve flags for client and peer TLS with client-certificate authentication on both ports. */
export function memberTlsArgs(certs: { readonly dir: string }, id: number): string[] {
  const ca = join(certs.dir, 'ca.crt');
  const cert = join(certs.dir, `member-${id}.crt`);
  const key = join(certs.dir, `member-${id}.key`);
  return [
    '--cert-file', cert, '--key-file', key, '--trusted-ca-file', ca, '--client-cert-auth',
    '--peer-cert-file', cert, '--peer-key-file', key, '--peer-trusted-ca-file', ca, '--peer-client-cert-auth',
  ];
}

/** What a client dials a TLS cluster under `dir` with (the client certificate; etcdctl's --cacert --cert --key). */
export function clientTls(dir: string): { caFile: string; certFile: string; keyFile: string } {
  return { caFile: join(dir, 'ca.crt'), certFile: join(dir, 'client.crt'), keyFile: join(dir, 'client.key') };
}
