// The chaos run's `raftkv serve` processes: one per member, each with its data directory and log file under
// the run folder (n<id>/data, n<id>/raftkv.log). Kill (SIGKILL), pause (SIGSTOP), resume (SIGCONT), restart,
// wipe. Children stay attached to this process and are all killed by down().
//
// Exits: every start remembers where its log file ended, so an exit comes with exactly what that start wrote
// (stdout and stderr both go to n<id>/raftkv.log: pino's JSON lines, and a refusal's one `raftkv: ...` line).
// An exit we did not cause by SIGKILL is an unexpected exit (a run failure), unless the start was claimed
// (startClaimed): then the exit goes to the claimant until it releases the claim (the damage nemesis judges
// whether a member started on a damaged directory refused properly).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readSync, rmSync, statSync } from 'node:fs';
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

/** How a serve process ended, with what it wrote to its log since it was started. */
export interface ExitStatus {
  readonly code: number | null;
  readonly signal: string | null;
  readonly output: string; // the log file's bytes from this start on (UTF-8)
}

interface Member {
  child: ChildProcess | undefined; // undefined when not started or exited
  exited: Promise<ExitStatus>; // resolves when the current child exits
  exitStatus: ExitStatus | undefined; // set when it has
  paused: boolean;
  expectingExit: boolean; // we sent SIGKILL: the exit is the nemesis's doing
  claimed: boolean; // an exit now goes to the claimant (startClaimed), not to unexpectedExits
  logStart: number; // the log file's size when this child was started: its output starts there
}

/** A start whose exit the caller judges: until release(), an exit is not an unexpected exit. */
export interface ClaimedStart {
  readonly exit: Promise<ExitStatus>;
  /** The exit status if the process has exited (before or after release). */
  exitStatus(): ExitStatus | undefined;
  /** What it has written to its log since it was started. */
  output(): string;
  /** From now on an exit is unexpected again (the member is judged to have started). */
  release(): void;
}

export interface UnexpectedExit {
  readonly id: NodeId;
  readonly code: number | null;
  readonly signal: string | null;
  readonly logTail: string;
}

/** The bytes of `file` from `offset` on, as UTF-8 (a note instead if it cannot be read). */
function readFrom(file: string, offset: number): string {
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const size = statSync(file).size;
    const buf = Buffer.alloc(Math.max(0, size - offset));
    let done = 0;
    while (done < buf.length) {
      const n = readSync(fd, buf, done, buf.length - done, offset + done);
      if (n === 0) break;
      done += n;
    }
    return buf.subarray(0, done).toString('utf8');
  } catch (err) {
    return `(log unreadable: ${err instanceof Error ? err.message : String(err)})`;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
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
    this.spawnMember(id, opts, false);
  }

  /** Starts `id` like start(), with its exit delivered to the caller until release() (see the top). */
  startClaimed(id: NodeId, opts: { state: 'new' | 'existing'; members: readonly NodeId[] }): ClaimedStart {
    const m = this.spawnMember(id, opts, true);
    return {
      exit: m.exited,
      exitStatus: () => m.exitStatus,
      output: () => m.exitStatus?.output ?? readFrom(this.logFile(id), m.logStart),
      release: () => {
        m.claimed = false;
      },
    };
  }

  private spawnMember(id: NodeId, opts: { state: 'new' | 'existing'; members: readonly NodeId[] }, claimed: boolean): Member {
    if (this.isRunning(id)) throw new Error(`member ${id} is already running`);
    if (SERVE_BIN === undefined && !existsSync(RAFTKV_MAIN)) throw new Error(`${RAFTKV_MAIN} is missing: run \`npm run build\` first`);
    mkdirSync(this.dataDir(id), { recursive: true });
    const logFile = this.logFile(id);
    const log = openSync(logFile, 'a');
    try {
      const logStart = statSync(logFile).size; // this start's output begins here
      const child = spawn(process.execPath, [SERVE_BIN ?? RAFTKV_BIN, ...this.serveArgs(id, opts.state, opts.members)], {
        cwd: REPO_ROOT,
        stdio: ['ignore', log, log],
      });
      installExitHook();
      LIVE_CHILDREN.add(child);
      const m: Member = { child, exited: Promise.resolve({ code: null, signal: null, output: '' }), exitStatus: undefined, paused: false, expectingExit: false, claimed, logStart };
      m.exited = new Promise<ExitStatus>((resolveExit) => {
        let done = false;
        const finish = (status: ExitStatus): void => {
          if (done) return;
          done = true;
          LIVE_CHILDREN.delete(child);
          if (m.child === child) m.child = undefined;
          m.paused = false;
          m.exitStatus = status;
          if (!m.expectingExit && !m.claimed) {
            this.unexpectedExits.push({ id, code: status.code, signal: status.signal, logTail: status.output.split('\n').slice(-6).join('\n') });
          }
          resolveExit(status);
        };
        child.once('exit', (code, signal) => finish({ code, signal, output: readFrom(logFile, logStart) }));
        child.on('error', (err) => {
          // Only a spawn that failed ends the member here; a signal that could not be sent leaves it running.
          if (child.pid === undefined) finish({ code: null, signal: null, output: `${readFrom(logFile, logStart)}(spawn failed: ${err.message})` });
        });
      });
      this.members.set(id, m);
      return m;
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
