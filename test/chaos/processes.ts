// The chaos run's `raftkv serve` processes: one per member, each with its data directory and log file under
// the run folder (n<id>/data, n<id>/raftkv.log). Kill (SIGKILL), pause (SIGSTOP), resume (SIGCONT), restart,
// wipe. Children stay attached to this process and are all killed by down().
//
// Exits: every start remembers where its log file ended, so an exit comes with exactly what that start wrote
// (stdout and stderr both go to n<id>/raftkv.log: pino's JSON lines, and a refusal's one `raftkv: ...` line).
// An exit we did not cause by SIGKILL is an unexpected exit (a run failure), unless the start was claimed
// (startClaimed): then the exit goes to the claimant until it releases the claim (the damage nemesis judges
// whether a member started on a damaged directory refused properly).
//
// The serve flags, the addresses, the n<id>/ layout and the spawn itself are cluster/serve-process.ts's.
import { memberTlsArgs } from '../../cluster/tls-certs.js';
import { closeSync, mkdirSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import type { NodeId } from '../../src/raft/types.js';
import {
  clientAddress,
  memberFiles,
  memberIds,
  peerAddress,
  planAddresses,
  requireBuiltCli,
  serveArgs,
  spawnServe,
  type LoggedChild,
  type PortPlan,
} from '../../cluster/serve-process.js';

/** Test hook: another script that takes `serve` and its flags (default bin/raftkv.js). */
const SERVE_BIN = process.env['RAFTKV_CHAOS_BIN'];

/** Throws unless the members can start: the compiled CLI is built (or RAFTKV_CHAOS_BIN names a stand-in). */
export function requireServeBin(): void {
  if (SERVE_BIN === undefined) requireBuiltCli();
}

export interface ProcessesOptions extends PortPlan {
  readonly nodes: number;
  readonly dir: string;
  readonly clusterId: string;
  readonly tickMs: number;
  readonly electionTicks: number;
  readonly logLevel: string;
  readonly snapshotCount?: number; // --snapshot-count (default: the server's)
  readonly dialOverride: (id: NodeId) => string; // --dial-override: member id dials its peers through these proxies
  readonly tlsDir?: string; // certificates of cluster/tls-certs.ts: TLS with client certificates on every port
}

/** How a serve process ended, with what it wrote to its log since it was started. */
export interface ExitStatus {
  readonly code: number | null;
  readonly signal: string | null;
  readonly output: string; // the log file's bytes from this start on (UTF-8)
}

interface Member {
  process: LoggedChild | undefined; // undefined when not started or exited
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

export class ServeProcesses {
  private readonly members = new Map<NodeId, Member>();
  /** Members that exited without being killed by us (a crash, or a refusal to start). */
  readonly unexpectedExits: UnexpectedExit[] = [];

  constructor(readonly options: ProcessesOptions) {}

  ids(): NodeId[] {
    return memberIds(this.options.nodes);
  }
  peerAddress(id: NodeId): string {
    return peerAddress(this.options, id);
  }
  clientAddress(id: NodeId): string {
    return clientAddress(this.options, id);
  }
  dataDir(id: NodeId): string {
    return memberFiles(this.options.dir, id).dataDir;
  }
  logFile(id: NodeId): string {
    return memberFiles(this.options.dir, id).logFile;
  }

  serveArgs(id: NodeId, state: 'new' | 'existing', members: readonly NodeId[]): string[] {
    const o = this.options;
    return serveArgs({
      id,
      clusterId: o.clusterId,
      dataDir: this.dataDir(id),
      ...planAddresses(o, id, members),
      initialClusterState: state,
      tickMs: o.tickMs,
      electionTicks: o.electionTicks,
      snapshotCount: o.snapshotCount,
      logLevel: o.logLevel,
      dialOverride: o.dialOverride(id),
      ...(o.tlsDir !== undefined ? { extraArgs: memberTlsArgs({ dir: o.tlsDir }, id) } : {}),
    });
  }

  isRunning(id: NodeId): boolean {
    return this.members.get(id)?.process !== undefined;
  }

  pid(id: NodeId): number | undefined {
    return this.members.get(id)?.process?.child.pid;
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
    requireServeBin();
    mkdirSync(this.dataDir(id), { recursive: true });
    const logFile = this.logFile(id);
    const proc = spawnServe(this.serveArgs(id, opts.state, opts.members), { logFile, killOnExit: true, bin: SERVE_BIN });
    const m: Member = { process: proc, exited: Promise.resolve({ code: null, signal: null, output: '' }), exitStatus: undefined, paused: false, expectingExit: false, claimed, logStart: proc.logStart };
    m.exited = proc.exited.then((exit) => {
      const output = readFrom(logFile, proc.logStart);
      const status: ExitStatus = { code: exit.code, signal: exit.signal, output: exit.spawnError === undefined ? output : `${output}(spawn failed: ${exit.spawnError})` };
      if (m.process === proc) m.process = undefined;
      m.paused = false;
      m.exitStatus = status;
      if (!m.expectingExit && !m.claimed) {
        this.unexpectedExits.push({ id, code: status.code, signal: status.signal, logTail: status.output.split('\n').slice(-6).join('\n') });
      }
      return status;
    });
    this.members.set(id, m);
    return m;
  }

  private signal(id: NodeId, sig: NodeJS.Signals): void {
    this.members.get(id)?.process?.signal(sig);
  }

  /** SIGKILL, and wait until the process is gone. */
  async kill(id: NodeId): Promise<void> {
    const m = this.members.get(id);
    if (m?.process === undefined) return;
    m.expectingExit = true;
    this.signal(id, 'SIGKILL');
    await m.exited;
  }

  pause(id: NodeId): void {
    const m = this.members.get(id);
    if (m?.process === undefined) return;
    this.signal(id, 'SIGSTOP');
    m.paused = true;
  }

  resume(id: NodeId): void {
    const m = this.members.get(id);
    if (m?.process === undefined || !m.paused) return;
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
