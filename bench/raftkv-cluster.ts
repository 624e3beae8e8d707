// A 3-member raftkv on loopback for the comparison: `node bin/raftkv.js serve ...` per member (the flags:
// cluster/serve-process.ts), --tick-ms 100 --election-ticks 10 to match etcd's --heartbeat-interval 100
// --election-timeout 1000, data dirs under a run folder.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterUnderTest } from './cluster-under-test.js';
import { KvClient } from '../src/client/index.js';
import { RAFTKV_BIN, REPO_ROOT, memberIds, peerAddress, clientAddress, planAddresses, requireBuiltCli, serveArgs, type PortPlan } from '../cluster/serve-process.js';
import { ManagedProcess } from './proc-group.js';
import { createTarget } from './run-bench.js';
import type { RaftKvTransport } from './run-bench.js';
import type { BenchTarget } from './target.js';
import { errorCode } from './target.js';
import { clientTls, memberTlsArgs } from '../cluster/tls-certs.js';
import type { DialTlsConfig } from '../src/client/index.js';

// etcd's timing (bench/etcd-cluster.ts) in raftkv's units: a tick per heartbeat, the election timeout in ticks.
const TICK_MS = 100;
const ELECTION_TICKS = 10;

/** The commit being measured, "+dirty" if src/ has uncommitted changes. */
function gitDescribe(root: string): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: root, encoding: 'utf8' }).trim() !== '';
    return `${head}${dirty ? '+dirty' : ''}`;
  } catch (err) {
    return `(no git: ${err instanceof Error ? err.message.split('\n')[0] : String(err)})`;
  }
}

/** src/**\/*.ts files modified after their dist/src/**\/*.js (the servers would run older code). */
function staleBuildFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
      const rel = join(dir, e.name);
      if (e.isDirectory()) walk(rel);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) {
        const built = join(root, 'dist', rel.replace(/\.ts$/, '.js'));
        if (!existsSync(built) || statSync(built).mtimeMs < statSync(join(root, rel)).mtimeMs) out.push(rel);
      }
    }
  };
  walk('src');
  return out;
}

export interface RaftKvClusterOptions {
  readonly runDir: string; // data dirs and logs go under runDir/raftkv
  readonly size: number;
  readonly clientBasePort: number; // member i (1-based) serves clients on clientBasePort + i
  readonly peerBasePort: number; // and peers on peerBasePort + i
  readonly extraFlags?: readonly string[]; // e.g. ['--snapshot-count', '100000']
  readonly transport?: RaftKvTransport; // the measured client's (default 'stream')
  /** Certificates from cluster/tls-certs.ts makeClusterCertificates: TLS with client certificates on every port. */
  readonly tlsDir?: string;
}

export class RaftKvCluster implements ClusterUnderTest {
  readonly name = 'raftkv';
  readonly version: string;
  readonly members: ManagedProcess[] = []; // index i = member id i+1
  readonly clientEndpoints: string[] = [];
  readonly dataDirs: string[] = [];

  constructor(private readonly opts: RaftKvClusterOptions) {
    requireBuiltCli();
    this.version = `raftkv ${gitDescribe(REPO_ROOT)}`;
    const stale = staleBuildFiles(REPO_ROOT);
    if (stale.length > 0) {
      process.stderr.write(`raftkv: WARNING ${stale.length} file(s) in src/ are newer than their build in dist/ (e.g. ${stale[0] ?? ''}): run \`npm run build\` to measure the current code\n`);
    }
    this.ports = { basePeerPort: opts.peerBasePort, baseClientPort: opts.clientBasePort };
    this.dir = join(opts.runDir, 'raftkv');
    mkdirSync(this.dir, { recursive: true });
    for (let i = 1; i <= opts.size; i++) this.addMemberProcess(i, opts.size, 'new');
  }

  private readonly ports: PortPlan; // member i on peerBasePort + i and clientBasePort + i

  private get tls(): DialTlsConfig | undefined {
    return this.opts.tlsDir === undefined ? undefined : clientTls(this.opts.tlsDir);
  }
  private readonly dir: string; // runDir/raftkv

  /** Member i, started with members 1..initialSize as its initial cluster. */
  private addMemberProcess(i: number, initialSize: number, state: 'new' | 'existing'): void {
    this.clientEndpoints.push(clientAddress(this.ports, i));
    const dataDir = join(this.dir, `n${i}`);
    this.dataDirs.push(dataDir);
    const args = serveArgs({
      id: i,
      clusterId: 'bench',
      dataDir,
      ...planAddresses(this.ports, i, memberIds(initialSize)),
      initialClusterState: state,
      tickMs: TICK_MS,
      electionTicks: ELECTION_TICKS,
      logLevel: 'warn',
      extraArgs: [...(this.opts.tlsDir !== undefined ? memberTlsArgs({ dir: this.opts.tlsDir }, i) : []), ...(this.opts.extraFlags ?? [])],
    });
    // RAFTKV_NODE_ARGS: extra flags for node itself, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" or "--perf-basic-prof".
    const nodeArgs = (process.env.RAFTKV_NODE_ARGS ?? '').split(' ').filter((x) => x !== '');
    this.members.push(new ManagedProcess(`raftkv ${i}`, process.execPath, [...nodeArgs, RAFTKV_BIN, ...args], join(this.dir, `n${i}.log`)));
  }

  async addLearner(): Promise<number> {
    const i = this.members.length + 1;
    const client = new KvClient({ endpoints: this.clientEndpoints, ...(this.tls !== undefined ? { tls: this.tls } : {}) });
    try {
      await client.memberAdd({ id: i, peerAddress: peerAddress(this.ports, i), clientAddress: clientAddress(this.ports, i), learner: true }, { timeoutMs: 10_000 });
    } finally {
      client.close();
    }
    this.addMemberProcess(i, i, 'existing');
    this.members[i - 1]?.start();
    return i - 1;
  }

  async snapshotIndexOf(index: number): Promise<number> {
    const ep = this.clientEndpoints[index];
    if (ep === undefined) throw new Error(`no raftkv member ${index}`);
    const client = new KvClient({ endpoints: [ep], ...(this.tls !== undefined ? { tls: this.tls } : {}) });
    try {
      return (await client.status(ep, { timeoutMs: 5000 })).snapshotIndex;
    } finally {
      client.close();
    }
  }

  targetFor(index: number): Promise<BenchTarget> {
    const ep = this.clientEndpoints[index];
    if (ep === undefined) throw new Error(`no raftkv member ${index}`);
    return createTarget('raftkv', [ep], 1, 'stream', this.tls);
  }

  async start(timeoutMs = 30_000): Promise<void> {
    for (const m of this.members) m.start();
    await this.waitReady(timeoutMs);
  }

  /** Waits until a put through the client library succeeds. */
  async waitReady(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const target = await createTarget('raftkv', this.clientEndpoints, 1, 'stream', this.tls);
    try {
      for (;;) {
        try {
          await target.put(Buffer.from('bench-ready'), Buffer.from('1'), 2000);
          return;
        } catch (err) {
          const code = errorCode(err);
          if (Date.now() > deadline) throw new Error(`raftkv cluster not ready after ${timeoutMs} ms (last error ${code}; logs in ${this.opts.runDir}/raftkv)`);
          await new Promise((r) => setTimeout(r, 200));
        }
      }
    } finally {
      target.close();
    }
  }

  /** The leader's index: the member that answered a write (writes are served by the leader). */
  async leaderIndex(): Promise<number | undefined> {
    const target = await createTarget('raftkv', this.clientEndpoints, 1, 'stream', this.tls);
    try {
      const ack = await target.put(Buffer.from('bench-leader'), Buffer.from('1'), 2000);
      const id = Number(ack.memberId);
      return Number.isInteger(id) && id >= 1 && id <= this.members.length ? id - 1 : undefined;
    } catch (err) {
      errorCode(err);
      return undefined;
    } finally {
      target.close();
    }
  }

  async kill9(index: number): Promise<void> {
    const m = this.members[index];
    if (m === undefined) throw new Error(`no raftkv member ${index}`);
    await m.kill9();
  }

  async restart(index: number): Promise<void> {
    const m = this.members[index];
    if (m === undefined) throw new Error(`no raftkv member ${index}`);
    m.start();
    await this.waitReady();
  }

  makeTarget(): Promise<BenchTarget> {
    return createTarget('raftkv', this.clientEndpoints, 1, this.opts.transport, this.tls);
  }

  pids(): { label: string; pid: number }[] {
    const out: { label: string; pid: number }[] = [];
    this.members.forEach((m, i) => {
      if (m.pid !== undefined) out.push({ label: this.clientEndpoints[i] ?? m.label, pid: m.pid });
    });
    return out;
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((m) => m.stop(10_000)));
  }
}
