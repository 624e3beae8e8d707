// Local multi-process clusters: each member is a `raftkv serve` process on loopback with its own data
// directory and log file under one folder. Used by `npm run cluster`, `npm run demo` and the integration tests.
// The folder's state.json remembers the pids so separate CLI invocations can manage them. The serve flags, the
// addresses and the spawn itself are serve-process.ts's.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DialTlsConfig } from '../src/client/index.js';
import { clientTls, memberTlsArgs } from './tls-certs.js';
import { LOOPBACK, RAFTKV_BIN, clientAddress, memberFiles, memberIds, metricsUrl, peerAddress, planAddresses, serveArgs, spawnServe, type PortPlan } from './serve-process.js';

// Member i listens for peers on 7000 + i and serves clients on 7100 + i: 7101.. are the client commands' default
// endpoints (DEFAULT_ENDPOINTS in src/cli/main.ts), so `npm run cluster -- up` then `raftkv put a b` needs no --endpoints.
const DEFAULT_BASE_PEER_PORT = 7000;
const DEFAULT_BASE_CLIENT_PORT = 7100;
/** `npm run cluster`'s members serve metrics and the dashboard on 7400 + i (tests choose their own, or none). */
export const CLI_BASE_METRICS_PORT = 7400;

export interface LocalClusterOptions {
  readonly nodes: number; // members of the initial cluster (3 or 5)
  readonly dir: string; // data, logs and state.json live here
  readonly clusterId?: string; // default 'local'
  readonly host?: string; // default LOOPBACK
  readonly basePeerPort?: number; // member i listens for peers on basePeerPort + i (default DEFAULT_BASE_PEER_PORT)
  readonly baseClientPort?: number; // member i serves clients on baseClientPort + i (default DEFAULT_BASE_CLIENT_PORT)
  readonly baseMetricsPort?: number; // member i serves --listen-metrics on baseMetricsPort + i (default: no metrics server)
  readonly tickMs?: number;
  readonly electionTicks?: number;
  readonly snapshotCount?: number;
  readonly logLevel?: string;
  readonly extraArgs?: (id: number) => readonly string[]; // e.g. --dial-override for proxies
  /**
   * A folder made by makeClusterCertificates (tls-certs.ts): every member serves its client and peer ports with
   * TLS and client-certificate authentication, and clients dial with its client certificate. Absent: plaintext.
   */
  readonly tlsDir?: string;
  /** Detached members outlive the process that started them (the CLI); tests keep them attached. */
  readonly detached?: boolean;
}

interface ClusterState {
  readonly options: Omit<LocalClusterOptions, 'extraArgs'>;
  pids: Record<string, number>; // member id -> pid of its serve process
}

export class LocalCluster {
  readonly options: LocalClusterOptions;
  private readonly state: ClusterState;

  constructor(options: LocalClusterOptions) {
    this.options = options;
    const { extraArgs: _extra, ...plain } = options;
    this.state = { options: plain, pids: {} };
  }

  /** Reopens the cluster described by dir/state.json (written by an earlier `up`). */
  static load(dir: string): LocalCluster {
    const file = join(dir, 'state.json');
    if (!existsSync(file)) throw new Error(`no cluster in ${dir} (run: npm run cluster -- up)`);
    const state = JSON.parse(readFileSync(file, 'utf8')) as ClusterState;
    const cluster = new LocalCluster({ ...state.options, dir });
    cluster.state.pids = state.pids;
    return cluster;
  }

  get host(): string {
    return this.options.host ?? LOOPBACK;
  }
  get clusterId(): string {
    return this.options.clusterId ?? 'local';
  }
  ids(): number[] {
    return memberIds(this.options.nodes);
  }
  /** Where member i listens (PortPlan: the base ports + i). */
  get ports(): PortPlan {
    const o = this.options;
    return {
      host: this.host,
      basePeerPort: o.basePeerPort ?? DEFAULT_BASE_PEER_PORT,
      baseClientPort: o.baseClientPort ?? DEFAULT_BASE_CLIENT_PORT,
      ...(o.baseMetricsPort !== undefined ? { baseMetricsPort: o.baseMetricsPort } : {}),
    };
  }
  /** Member id's metrics server and dashboard (undefined without baseMetricsPort). */
  metricsUrl(id: number): string | undefined {
    return metricsUrl(this.ports, id);
  }
  peerAddress(id: number): string {
    return peerAddress(this.ports, id);
  }
  clientAddress(id: number): string {
    return clientAddress(this.ports, id);
  }
  endpoints(ids: readonly number[] = this.ids()): string[] {
    return ids.map((id) => this.clientAddress(id));
  }
  /** What clients dial this cluster with: its client certificate under tlsDir, or undefined (plaintext). */
  dialTls(): DialTlsConfig | undefined {
    return this.options.tlsDir !== undefined ? clientTls(this.options.tlsDir) : undefined;
  }
  dataDir(id: number): string {
    return memberFiles(this.options.dir, id).dataDir;
  }
  logFile(id: number): string {
    return memberFiles(this.options.dir, id).logFile;
  }

  serveArgs(id: number, state: 'new' | 'existing', members: readonly number[] = this.ids()): string[] {
    const o = this.options;
    return serveArgs({
      id,
      clusterId: this.clusterId,
      dataDir: this.dataDir(id),
      ...planAddresses(this.ports, id, members),
      initialClusterState: state,
      tickMs: o.tickMs,
      electionTicks: o.electionTicks,
      snapshotCount: o.snapshotCount,
      logLevel: o.logLevel,
      extraArgs: [...(o.tlsDir !== undefined ? memberTlsArgs({ dir: o.tlsDir }, id) : []), ...(o.extraArgs?.(id) ?? [])],
    });
  }

  pid(id: number): number | undefined {
    return this.state.pids[String(id)];
  }

  /** True while member id's process exists (and is not a zombie). */
  isRunning(id: number): boolean {
    const pid = this.pid(id);
    if (pid === undefined) return false;
    return processAlive(pid);
  }

  /**
   * Starts member id. 'new' bootstraps with the initial members; 'existing' joins a running cluster
   * (after `member add`). `members` overrides the initial member list passed on the command line.
   */
  start(id: number, opts: { state?: 'new' | 'existing'; members?: readonly number[] } = {}): number {
    if (this.isRunning(id)) throw new Error(`member ${id} is already running (pid ${this.pid(id)})`);
    mkdirSync(this.dataDir(id), { recursive: true });
    const member = spawnServe(this.serveArgs(id, opts.state ?? 'new', opts.members), { logFile: this.logFile(id), detached: this.options.detached ?? false });
    void member.exited.then((exit) => {
      if (exit.spawnError !== undefined) process.stderr.write(`member ${id}: could not run ${RAFTKV_BIN}: ${exit.spawnError}\n`);
    });
    const pid = member.child.pid;
    if (pid === undefined) throw new Error(`could not start member ${id}`);
    this.state.pids[String(id)] = pid;
    this.save();
    return pid;
  }

  /** SIGKILL: the process dies at once, whatever it was doing. */
  kill(id: number): void {
    this.signal(id, 'SIGKILL');
  }

  /** SIGSTOP / SIGCONT: freeze and thaw a member (its sockets stay open). */
  pause(id: number): void {
    this.signal(id, 'SIGSTOP');
  }
  resume(id: number): void {
    this.signal(id, 'SIGCONT');
  }

  /** SIGTERM and wait for the graceful exit (a leader hands over first); SIGKILL after timeoutMs. */
  async stop(id: number, timeoutMs = 15_000): Promise<void> {
    const pid = this.pid(id);
    if (pid === undefined || !processAlive(pid)) return;
    this.signal(id, 'SIGTERM');
    const until = Date.now() + timeoutMs;
    while (processAlive(pid)) {
      if (Date.now() > until) {
        this.signal(id, 'SIGKILL');
        break;
      }
      await delay(50);
    }
    await this.waitExit(id);
  }

  async waitExit(id: number, timeoutMs = 10_000): Promise<void> {
    const pid = this.pid(id);
    const until = Date.now() + timeoutMs;
    while (pid !== undefined && processAlive(pid)) {
      if (Date.now() > until) throw new Error(`member ${id} (pid ${pid}) did not exit`);
      await delay(20);
    }
  }

  /** Starts every member that is not running. */
  up(): void {
    for (const id of this.ids()) if (!this.isRunning(id)) this.start(id);
  }

  /** Kills every member (SIGKILL after a graceful attempt when graceful) and optionally wipes the folder. */
  async down(opts: { wipe?: boolean; graceful?: boolean } = {}): Promise<void> {
    for (const key of Object.keys(this.state.pids)) {
      const id = Number(key);
      if (opts.graceful) await this.stop(id);
      else if (this.isRunning(id)) {
        this.resume(id);
        this.kill(id);
        await this.waitExit(id);
      }
    }
    this.state.pids = {};
    if (opts.wipe) rmSync(this.options.dir, { recursive: true, force: true });
    else this.save();
  }

  /** Removes a member's data directory (it must not be running). */
  wipe(id: number): void {
    if (this.isRunning(id)) throw new Error(`member ${id} is running`);
    rmSync(this.dataDir(id), { recursive: true, force: true });
  }

  /** Members recorded beyond the initial ones (added with `member add`) are tracked too. */
  track(id: number): void {
    if (id > this.options.nodes) (this.options as { nodes: number }).nodes = id;
    (this.state.options as { nodes: number }).nodes = this.options.nodes;
    this.save();
  }

  private signal(id: number, sig: NodeJS.Signals): void {
    const pid = this.pid(id);
    if (pid === undefined) return;
    try {
      process.kill(pid, sig);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }

  private save(): void {
    mkdirSync(this.options.dir, { recursive: true });
    writeFileSync(join(this.options.dir, 'state.json'), JSON.stringify(this.state, null, 2));
  }
}

/** A pid is alive if it exists and is not a zombie waiting to be reaped. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
