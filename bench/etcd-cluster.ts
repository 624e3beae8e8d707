// A 3-member etcd on loopback for the comparison: Debian's etcd-server (installed if missing, which needs
// root), distinct ports, data dirs under a run folder, --heartbeat-interval 100 --election-timeout 1000 (the
// defaults, the same timing as raftkv's --tick-ms 100 --election-ticks 10), fsync on (the default).
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { EtcdTarget } from './etcd-target.js';
import type { ClusterUnderTest } from './cluster-under-test.js';
import { ManagedProcess } from './proc-group.js';
import { clientTls } from '../cluster/tls-certs.js';

export interface EtcdClusterOptions {
  readonly runDir: string; // data dirs and logs go under runDir/etcd
  readonly size: number; // members (3)
  readonly clientBasePort: number; // member i (1-based) serves clients on clientBasePort + i
  readonly peerBasePort: number; // and peers on peerBasePort + i
  readonly extraFlags?: readonly string[]; // e.g. ['--snapshot-count', '200000']
  /** Certificates from cluster/tls-certs.ts makeClusterCertificates: TLS with client certificates on every port. */
  readonly tlsDir?: string;
}

/** True if `cmd` is on the PATH (the etcd benchmarks and their tests skip without etcd). */
export function onPath(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch (err) {
    if (err instanceof Error) return false;
    throw err;
  }
}

/**
 * Installs Debian's etcd-server (etcd) and etcd-client (etcdctl, for membership changes in the recovery
 * benchmark) non-interactively if either is not on PATH (needs root: says so if not).
 */
export function ensureEtcdInstalled(): string {
  const missing = [...(onPath('etcd') ? [] : ['etcd-server']), ...(onPath('etcdctl') ? [] : ['etcd-client'])];
  if (missing.length > 0) {
    const isRoot = process.getuid?.() === 0;
    if (!isRoot) {
      throw new Error(`etcd is not fully installed and this is not root: run \`sudo apt-get install -y ${missing.join(' ')}\` (Debian/Ubuntu) first`);
    }
    process.stderr.write(`installing Debian ${missing.join(', ')} (apt-get)\n`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    execFileSync('apt-get', ['update', '-q'], { stdio: ['ignore', 'ignore', 'inherit'], env });
    execFileSync('apt-get', ['install', '-y', '-q', ...missing], { stdio: ['ignore', 'ignore', 'inherit'], env });
  }
  return execFileSync('etcd', ['--version'], { encoding: 'utf8' }).split('\n')[0] ?? 'etcd (unknown version)';
}

export class EtcdCluster implements ClusterUnderTest {
  readonly name = 'etcd';
  readonly members: ManagedProcess[] = []; // index i = member i+1
  readonly clientEndpoints: string[] = []; // host:port per member
  readonly version: string;

  constructor(private readonly opts: EtcdClusterOptions) {
    this.version = ensureEtcdInstalled();
    this.dir = join(opts.runDir, 'etcd');
    mkdirSync(this.dir, { recursive: true });
    const initialCluster = Array.from({ length: opts.size }, (_, k) => `m${k + 1}=${this.peerUrl(k + 1)}`).join(',');
    for (let i = 1; i <= opts.size; i++) this.addMemberProcess(i, initialCluster, 'new');
  }

  private readonly dir: string; // runDir/etcd
  private readonly token = `raftkv-bench-${process.pid}-${Date.now()}`; // --initial-cluster-token

  private get scheme(): string {
    return this.opts.tlsDir === undefined ? 'http' : 'https';
  }

  private peerUrl(i: number): string {
    return `${this.scheme}://127.0.0.1:${this.opts.peerBasePort + i}`;
  }

  /** etcd's TLS flags for member i (the same certificates and client-certificate checks raftkv gets). */
  private tlsFlags(i: number): string[] {
    const d = this.opts.tlsDir;
    if (d === undefined) return [];
    const [ca, cert, key] = [join(d, 'ca.crt'), join(d, `member-${i}.crt`), join(d, `member-${i}.key`)];
    return ['--cert-file', cert, '--key-file', key, '--trusted-ca-file', ca, '--client-cert-auth', '--peer-cert-file', cert, '--peer-key-file', key, '--peer-trusted-ca-file', ca, '--peer-client-cert-auth'];
  }

  /** etcdctl's flags for the same TLS. */
  private etcdctlTlsFlags(): string[] {
    if (this.opts.tlsDir === undefined) return [];
    const t = clientTls(this.opts.tlsDir);
    return ['--cacert', t.caFile, '--cert', t.certFile, '--key', t.keyFile];
  }

  private target(endpoints: readonly string[]): EtcdTarget {
    return new EtcdTarget({ endpoints, connsPerEndpoint: 1, ...(this.opts.tlsDir !== undefined ? { tls: clientTls(this.opts.tlsDir) } : {}) });
  }

  private addMemberProcess(i: number, initialCluster: string, state: 'new' | 'existing'): void {
    const clientUrl = `${this.scheme}://127.0.0.1:${this.opts.clientBasePort + i}`;
    this.clientEndpoints.push(`127.0.0.1:${this.opts.clientBasePort + i}`);
    this.members.push(
      new ManagedProcess(
        `etcd m${i}`,
        'etcd',
        [
          '--name', `m${i}`,
          '--data-dir', join(this.dir, `m${i}`),
          '--listen-client-urls', clientUrl,
          '--advertise-client-urls', clientUrl,
          '--listen-peer-urls', this.peerUrl(i),
          '--initial-advertise-peer-urls', this.peerUrl(i),
          '--initial-cluster', initialCluster,
          '--initial-cluster-token', this.token,
          '--initial-cluster-state', state,
          '--heartbeat-interval', '100',
          '--election-timeout', '1000',
          '--logger', 'zap',
          '--log-level', 'warn',
          ...this.tlsFlags(i),
          ...(this.opts.extraFlags ?? []),
        ],
        join(this.dir, `m${i}.log`),
      ),
    );
  }

  async addLearner(): Promise<number> {
    const i = this.members.length + 1;
    const env = { ...process.env, ETCDCTL_API: '3' };
    const live = this.clientEndpoints.filter((_, k) => this.members[k]?.running === true).join(',');
    execFileSync('etcdctl', ['--endpoints', live, ...this.etcdctlTlsFlags(), 'member', 'add', `m${i}`, `--peer-urls=${this.peerUrl(i)}`, '--learner'], { env, stdio: 'ignore' });
    const initialCluster = Array.from({ length: i }, (_, k) => `m${k + 1}=${this.peerUrl(k + 1)}`).join(',');
    this.addMemberProcess(i, initialCluster, 'existing');
    this.members[i - 1]?.start();
    return Promise.resolve(i - 1);
  }

  async targetFor(index: number): Promise<EtcdTarget> {
    const ep = this.clientEndpoints[index];
    if (ep === undefined) throw new Error(`no etcd member ${index}`);
    return Promise.resolve(this.target([ep]));
  }

  /** Starts every member and waits until a leader answers writes. */
  async start(timeoutMs = 30_000): Promise<void> {
    for (const m of this.members) m.start();
    await this.waitReady(timeoutMs);
  }

  /** Waits until some member reports a leader and a put through it succeeds. */
  async waitReady(timeoutMs = 30_000): Promise<void> {
    const live = this.clientEndpoints.filter((_, i) => this.members[i]?.running === true);
    const target = this.target(live);
    const deadline = Date.now() + timeoutMs;
    try {
      for (;;) {
        const leader = await target.discoverLeader(1000);
        if (leader !== undefined) {
          try {
            await target.put(Buffer.from('bench-ready'), Buffer.from('1'), 2000);
            return;
          } catch (err) {
            if (Date.now() > deadline) throw err;
          }
        }
        if (Date.now() > deadline) throw new Error(`etcd cluster not ready after ${timeoutMs} ms (logs in ${this.opts.runDir}/etcd)`);
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      target.close();
    }
  }

  /** The index (0-based) of the current leader, by Maintenance.Status. */
  async leaderIndex(): Promise<number | undefined> {
    const target = this.target(this.clientEndpoints);
    try {
      return await target.discoverLeader(1000);
    } finally {
      target.close();
    }
  }

  async kill9(index: number): Promise<void> {
    const m = this.members[index];
    if (m === undefined) throw new Error(`no etcd member ${index}`);
    await m.kill9();
  }

  /** Restarts a stopped member on its data dir and waits until the cluster answers writes. */
  async restart(index: number): Promise<void> {
    const m = this.members[index];
    if (m === undefined) throw new Error(`no etcd member ${index}`);
    m.start();
    await this.waitReady();
  }

  async makeTarget(): Promise<EtcdTarget> {
    const t = this.target(this.clientEndpoints);
    await t.discoverLeader();
    return t;
  }

  pids(): { label: string; pid: number }[] {
    const out: { label: string; pid: number }[] = [];
    this.members.forEach((m, i) => {
      if (m.pid !== undefined) out.push({ label: this.clientEndpoints[i] ?? m.label, pid: m.pid });
    });
    return out;
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((m) => m.stop()));
  }
}
