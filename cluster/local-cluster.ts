// Local multi-process clusters: each member is a `raftkv serve` process on loopback with its own data
// directory and log file under one folder. Used by `npm run cluster`, `npm run demo`, the integration and
// chaos tests. The folder's state.json remembers the pids so separate CLI invocations can manage them.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, found from this file's place in dist/cluster or cluster/. */
export const REPO_ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), fileURLToPath(import.meta.url).includes('/dist/') ? '../..' : '..');
export const RAFTKV_BIN = join(REPO_ROOT, 'bin', 'raftkv.js');

export interface LocalClusterOptions {
  readonly nodes: number; // members of the initial cluster (3 or 5)
  readonly dir: string; // data, logs and state.json live here
  readonly clusterId?: string; // default 'local'
  readonly host?: string; // default 127.0.0.1
  readonly basePeerPort?: number; // member i listens for peers on basePeerPort + i (default 7000 → 7001..)
  readonly baseClientPort?: number; // member i serves clients on baseClientPort + i (default 7100 → 7101..)
  readonly tickMs?: number;
  readonly electionTicks?: number;
  readonly snapshotCount?: number;
  readonly logLevel?: string;
  readonly extraArgs?: (id: number) => readonly string[]; // e.g. --dial-override for proxies
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
    return this.options.host ?? '127.0.0.1';
  }
  get clusterId(): string {
    return this.options.clusterId ?? 'local';
  }
  ids(): number[] {
    return Array.from({ length: this.options.nodes }, (_, i) => i + 1);
  }
  peerAddress(id: number): string {
    return `${this.host}:${(this.options.basePeerPort ?? 7000) + id}`;
  }
  clientAddress(id: number): string {
    return `${this.host}:${(this.options.baseClientPort ?? 7100) + id}`;
  }
  endpoints(ids: readonly number[] = this.ids()): string[] {
    return ids.map((id) => this.clientAddress(id));
  }
  dataDir(id: number): string {
    return join(this.options.dir, `n${id}`, 'data');
  }
  logFile(id: number): string {
    return join(this.options.dir, `n${id}`, 'raftkv.log');
  }
  initialCluster(ids: readonly number[] = this.ids()): string {
    return ids.map((id) => `${id}=${this.peerAddress(id)}/${this.clientAddress(id)}`).join(',');
  }

  serveArgs(id: number, state: 'new' | 'existing', members: readonly number[] = this.ids()): string[] {
    const o = this.options;
    const args = [
      'serve',
      '--id', String(id),
      '--cluster-id', this.clusterId,
      '--data-dir', this.dataDir(id),
      '--listen-peer', this.peerAddress(id),
      '--listen-client', this.clientAddress(id),
      '--initial-cluster', this.initialCluster(members),
      '--initial-cluster-state', state,
    ];
    if (o.tickMs !== undefined) args.push('--tick-ms', String(o.tickMs));
    if (o.electionTicks !== undefined) args.push('--election-ticks', String(o.electionTicks));
    if (o.snapshotCount !== undefined) args.push('--snapshot-count', String(o.snapshotCount));
    if (o.logLevel !== undefined) args.push('--log-level', o.logLevel);
    if (o.extraArgs) args.push(...o.extraArgs(id));
    return args;
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
    const log = openSync(this.logFile(id), 'a');
    try {
      const child = spawn(process.execPath, [RAFTKV_BIN, ...this.serveArgs(id, opts.state ?? 'new', opts.members)], {
        cwd: REPO_ROOT,
        detached: this.options.detached ?? false,
        stdio: ['ignore', log, log],
        env: { ...process.env },
      });
      if (child.pid === undefined) throw new Error(`could not start member ${id}`);
      if (this.options.detached) child.unref();
      child.on('error', (err) => process.stderr.write(`member ${id}: could not run ${RAFTKV_BIN}: ${err.message}\n`));
      this.state.pids[String(id)] = child.pid;
      this.save();
      return child.pid;
    } finally {
      closeSync(log);
    }
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
    rmSync(join(this.options.dir, `n${id}`, 'data'), { recursive: true, force: true });
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
