// The chaos run's `raftkv serve` processes: one per member, each with its data directory and log file under
// the run folder (n<id>/data, n<id>/raftkv.log). Kill (SIGKILL), pause (SIGSTOP), resume (SIGCONT), restart,
// wipe. Children stay attached to this process and are all killed by down().
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NodeId } from '../../src/raft/types.js';

/** The repository root, from test/chaos (vitest) or dist/test/chaos (the built CLI). */
export const REPO_ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), fileURLToPath(import.meta.url).includes('/dist/') ? '../../..' : '../..');
export const RAFTKV_BIN = join(REPO_ROOT, 'bin', 'raftkv.js');
export const RAFTKV_MAIN = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
/** Test hook: another script that takes `serve` and its flags (default bin/raftkv.js). */
const SERVE_BIN = process.env['RAFTKV_CHAOS_BIN'];

export interface ProcessesOptions {
  readonly nodes: number;
  readonly dir: string;
  readonly clusterId: string;
  readonly basePeerPort: number; // member i listens for peers on basePeerPort + i
  readonly baseClientPort: number; // and for clients on baseClientPort + i
  readonly tickMs: number;
  readonly electionTicks: number;
  readonly logLevel: string;
  readonly snapshotCount?: number; // --snapshot-count (default: the server's)
  readonly extraArgs: (id: NodeId) => readonly string[]; // e.g. --dial-override
}

interface Member {
  child: ChildProcess | undefined; // undefined when not started or exited
  exited: Promise<void>; // resolves when the current child exits
  paused: boolean;
  expectingExit: boolean; // we sent SIGKILL: the exit is the nemesis's doing
}

export interface UnexpectedExit {
  readonly id: NodeId;
  readonly code: number | null;
  readonly signal: string | null;
  readonly logTail: string;
}

/** Every serve process of this process's runs: killed if we exit first (a crash, a test timeout, Ctrl-C). */
const LIVE_CHILDREN = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of LIVE_CHILDREN) c.kill('SIGKILL');
  });
}

export class ServeProcesses {
  private readonly members = new Map<NodeId, Member>();
  /** Members that exited without being killed by us (a crash, or a refusal to start). */
  readonly unexpectedExits: UnexpectedExit[] = [];

  constructor(readonly options: ProcessesOptions) {}

  ids(): NodeId[] {
    return Array.from({ length: this.options.nodes }, (_, i) => i + 1);
  }
  peerAddress(id: NodeId): string {
    return `127.0.0.1:${this.options.basePeerPort + id}`;
  }
  clientAddress(id: NodeId): string {
    return `127.0.0.1:${this.options.baseClientPort + id}`;
  }
  dataDir(id: NodeId): string {
    return join(this.options.dir, `n${id}`, 'data');
  }
  logFile(id: NodeId): string {
    return join(this.options.dir, `n${id}`, 'raftkv.log');
  }
  initialCluster(ids: readonly NodeId[]): string {
    return ids.map((id) => `${id}=${this.peerAddress(id)}/${this.clientAddress(id)}`).join(',');
  }

  serveArgs(id: NodeId, state: 'new' | 'existing', members: readonly NodeId[]): string[] {
    const o = this.options;
    return [
      'serve',
      '--id', String(id),
      '--cluster-id', o.clusterId,
      '--data-dir', this.dataDir(id),
      '--listen-peer', this.peerAddress(id),
      '--listen-client', this.clientAddress(id),
      '--initial-cluster', this.initialCluster(members),
      '--initial-cluster-state', state,
      '--tick-ms', String(o.tickMs),
      '--election-ticks', String(o.electionTicks),
      '--log-level', o.logLevel,
      ...(o.snapshotCount !== undefined ? ['--snapshot-count', String(o.snapshotCount)] : []),
      ...o.extraArgs(id),
    ];
  }

  isRunning(id: NodeId): boolean {
    return this.members.get(id)?.child !== undefined;
  }

  pid(id: NodeId): number | undefined {
    return this.members.get(id)?.child?.pid;
  }

  start(id: NodeId, opts: { state: 'new' | 'existing'; members: readonly NodeId[] }): void {
    if (this.isRunning(id)) throw new Error(`member ${id} is already running`);
    if (SERVE_BIN === undefined && !existsSync(RAFTKV_MAIN)) throw new Error(`${RAFTKV_MAIN} is missing: run \`npm run build\` first`);
    mkdirSync(this.dataDir(id), { recursive: true });
    const log = openSync(this.logFile(id), 'a');
    try {
      const child = spawn(process.execPath, [SERVE_BIN ?? RAFTKV_BIN, ...this.serveArgs(id, opts.state, opts.members)], {
        cwd: REPO_ROOT,
        stdio: ['ignore', log, log],
      });
      installExitHook();
      LIVE_CHILDREN.add(child);
      const m: Member = { child, exited: Promise.resolve(), paused: false, expectingExit: false };
      m.exited = new Promise<void>((resolveExit) => {
        child.once('exit', (code, signal) => {
          LIVE_CHILDREN.delete(child);
          if (m.child === child) m.child = undefined;
          m.paused = false;
          if (!m.expectingExit) {
            let logTail = '';
            try {
              logTail = readFileSync(this.logFile(id), 'utf8').split('\n').slice(-6).join('\n');
            } catch (err) {
              logTail = `(log unreadable: ${String(err)})`;
            }
            this.unexpectedExits.push({ id, code, signal, logTail });
          }
          resolveExit();
        });
        child.once('error', () => {
          LIVE_CHILDREN.delete(child);
          if (m.child === child) m.child = undefined;
          resolveExit();
        });
      });
      this.members.set(id, m);
    } finally {
      closeSync(log);
    }
  }

  private signal(id: NodeId, sig: NodeJS.Signals): void {
    const child = this.members.get(id)?.child;
    if (child === undefined) return;
    try {
      child.kill(sig);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }

  /** SIGKILL, and wait until the process is gone. */
  async kill(id: NodeId): Promise<void> {
    const m = this.members.get(id);
    if (m?.child === undefined) return;
    m.expectingExit = true;
    this.signal(id, 'SIGKILL');
    await m.exited;
  }

  pause(id: NodeId): void {
    const m = this.members.get(id);
    if (m?.child === undefined) return;
    this.signal(id, 'SIGSTOP');
    m.paused = true;
  }

  resume(id: NodeId): void {
    const m = this.members.get(id);
    if (m?.child === undefined || !m.paused) return;
    this.signal(id, 'SIGCONT');
    m.paused = false;
  }

  /** Removes a member's data directory (it must not be running). */
  wipe(id: NodeId): void {
    if (this.isRunning(id)) throw new Error(`member ${id} is running`);
    rmSync(this.dataDir(id), { recursive: true, force: true });
  }

  /** Kills every member (resuming paused ones first so the kill lands at once). */
  async down(): Promise<void> {
    for (const id of this.members.keys()) {
      this.resume(id);
      await this.kill(id);
    }
  }
}
