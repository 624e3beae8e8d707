// One `raftkv serve` member process, the way every launcher starts it: `npm run cluster` and the integration
// tests (local-cluster.ts), the chaos runs (test/chaos/processes.ts) and the benchmark (bench/raftkv-cluster.ts).
// This file owns the serve flag list (serveArgs, from a typed ServeOptions), the address plan of members on one
// machine (member i listens on a base port + i), where the repository and bin/raftkv.js are, and spawning a
// child whose stdout and stderr are appended to a log file. Each launcher keeps what is its own: where the
// files go, how pids are remembered, what an exit means.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NodeId } from '../src/raft/types.js';

/** The package.json `name` that marks the repository root (dist/ has no package.json of its own). */
const PACKAGE_NAME = 'raftkv';

/** The nearest folder above this file whose package.json is raftkv's: the same from cluster/ and dist/cluster/. */
function findRepoRoot(): string {
  const here = fileURLToPath(import.meta.url);
  let dir = dirname(here);
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: unknown }).name === PACKAGE_NAME) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find the ${PACKAGE_NAME} repository above ${here}`);
    dir = parent;
  }
}

export const REPO_ROOT = findRepoRoot();
/** The `raftkv` command; it runs the compiled CLI (RAFTKV_MAIN). */
export const RAFTKV_BIN = join(REPO_ROOT, 'bin', 'raftkv.js');
export const RAFTKV_MAIN = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');

/** Throws unless the compiled CLI is there: without it every member would fail to start, one log at a time. */
export function requireBuiltCli(): void {
  if (!existsSync(RAFTKV_MAIN)) throw new Error(`${RAFTKV_MAIN} is missing: run \`npm run build\` first (bin/raftkv.js runs the compiled CLI)`);
}

/** Members on one machine listen on loopback only: nothing outside needs to reach them. */
export const LOOPBACK = '127.0.0.1';

/** Where the members of a cluster on one machine listen: member i on basePeerPort + i and baseClientPort + i. */
export interface PortPlan {
  readonly host?: string; // default LOOPBACK
  readonly basePeerPort: number;
  readonly baseClientPort: number;
  readonly baseMetricsPort?: number; // member i serves metrics and the dashboard on it + i; absent: none
}

/** Member ids 1..count, the ids of an initial cluster of `count` members. */
export function memberIds(count: number): NodeId[] {
  return Array.from({ length: count }, (_, i) => i + 1);
}

export function peerAddress(plan: PortPlan, id: NodeId): string {
  return `${plan.host ?? LOOPBACK}:${plan.basePeerPort + id}`;
}

export function clientAddress(plan: PortPlan, id: NodeId): string {
  return `${plan.host ?? LOOPBACK}:${plan.baseClientPort + id}`;
}

/** Member `id`'s --listen-metrics URL, or undefined when the plan has no metrics ports. */
export function metricsUrl(plan: PortPlan, id: NodeId): string | undefined {
  return plan.baseMetricsPort === undefined ? undefined : `http://${plan.host ?? LOOPBACK}:${plan.baseMetricsPort + id}`;
}

/** The --initial-cluster value for `ids`: ID=PEER/CLIENT, comma separated. */
export function initialClusterFlag(plan: PortPlan, ids: readonly NodeId[]): string {
  return ids.map((id) => `${id}=${peerAddress(plan, id)}/${clientAddress(plan, id)}`).join(',');
}

/** Member `id`'s address flags, started with `members` as its initial cluster (spread into ServeOptions). */
export function planAddresses(plan: PortPlan, id: NodeId, members: readonly NodeId[]): Pick<ServeOptions, 'listenPeer' | 'listenClient' | 'initialCluster' | 'listenMetrics'> {
  const metrics = metricsUrl(plan, id);
  return { listenPeer: peerAddress(plan, id), listenClient: clientAddress(plan, id), initialCluster: initialClusterFlag(plan, members), ...(metrics !== undefined ? { listenMetrics: metrics } : {}) };
}

/** The data directory and log file of member `id` under `dir` (n<id>/data, n<id>/raftkv.log): `npm run cluster`'s and the chaos runs' layout. */
export function memberFiles(dir: string, id: NodeId): { readonly dataDir: string; readonly logFile: string } {
  return { dataDir: join(dir, `n${id}`, 'data'), logFile: join(dir, `n${id}`, 'raftkv.log') };
}

/** One member's `raftkv serve` command line (the flags: src/cli/serve-config.ts). */
export interface ServeOptions {
  readonly id: NodeId;
  readonly clusterId: string;
  readonly dataDir: string;
  readonly listenPeer: string; // HOST:PORT
  readonly listenClient: string; // HOST:PORT
  readonly advertisePeer?: string; // default (the server's): listenPeer
  readonly advertiseClient?: string; // default (the server's): listenClient
  readonly initialCluster: string; // initialClusterFlag()
  readonly initialClusterState: 'new' | 'existing'; // existing: joining after `member add`
  // Each one left out is the server's default (NODE_CONFIG_DEFAULTS).
  readonly tickMs?: number;
  readonly electionTicks?: number;
  readonly snapshotCount?: number;
  readonly logLevel?: string;
  readonly dialOverride?: string; // ID=HOST:PORT,...: dial these addresses for these peers (a test hook: proxies)
  readonly listenMetrics?: string; // http://HOST:PORT: metrics, health and the dashboard
  readonly extraArgs?: readonly string[]; // appended last
}

/** The arguments after the script: `serve` and its flags, in one order for every launcher. */
export function serveArgs(o: ServeOptions): string[] {
  const args = [
    'serve',
    '--id', String(o.id),
    '--cluster-id', o.clusterId,
    '--data-dir', o.dataDir,
    '--listen-peer', o.listenPeer,
    '--listen-client', o.listenClient,
    '--initial-cluster', o.initialCluster,
    '--initial-cluster-state', o.initialClusterState,
  ];
  const optional: readonly (readonly [string, string | number | undefined])[] = [
    ['--advertise-peer', o.advertisePeer],
    ['--advertise-client', o.advertiseClient],
    ['--tick-ms', o.tickMs],
    ['--election-ticks', o.electionTicks],
    ['--snapshot-count', o.snapshotCount],
    ['--log-level', o.logLevel],
    ['--dial-override', o.dialOverride],
    ['--listen-metrics', o.listenMetrics],
  ];
  for (const [flag, value] of optional) if (value !== undefined) args.push(flag, String(value));
  args.push(...(o.extraArgs ?? []));
  return args;
}

/** How a child ended. */
export interface ProcessExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly spawnError?: string; // set when the command could not be started at all
}

/** A child started by spawnLogged. */
export interface LoggedChild {
  readonly child: ChildProcess;
  readonly logStart: number; // the log file's size before this start: what this start writes begins there
  readonly exited: Promise<ProcessExit>; // resolves once, when it exits or could not be started; never rejects
  /** Sends `sig` unless the child has exited (a signal to a pid that is gone is not an error). */
  signal(sig: NodeJS.Signals): void;
}

export interface SpawnLoggedOptions {
  readonly logFile: string; // stdout and stderr are appended to it
  readonly cwd?: string; // default: this process's
  readonly env?: NodeJS.ProcessEnv; // default: this process's
  readonly detached?: boolean; // its own process group, unref'd: it outlives this process (the cluster CLI)
  readonly killOnExit?: boolean; // SIGKILLed if this process exits first (a crash, a test timeout, process.exit)
}

/** Children started with killOnExit that have not exited yet. */
const KILL_ON_EXIT = new Set<ChildProcess>();
let exitHookInstalled = false;

function killOnExit(child: ChildProcess): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of KILL_ON_EXIT) c.kill('SIGKILL');
    });
  }
  KILL_ON_EXIT.add(child);
}

/** Starts `command args` with its output appended to opts.logFile. */
export function spawnLogged(command: string, args: readonly string[], opts: SpawnLoggedOptions): LoggedChild {
  const log = openSync(opts.logFile, 'a');
  try {
    const logStart = fstatSync(log).size;
    const child = spawn(command, [...args], {
      ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
      env: opts.env ?? process.env,
      detached: opts.detached ?? false,
      stdio: ['ignore', log, log],
    });
    if (opts.detached === true) child.unref();
    if (opts.killOnExit === true) killOnExit(child);
    let ended = false;
    const exited = new Promise<ProcessExit>((resolve) => {
      const finish = (exit: ProcessExit): void => {
        if (ended) return;
        ended = true;
        KILL_ON_EXIT.delete(child);
        resolve(exit);
      };
      child.once('exit', (code, signal) => finish({ code, signal }));
      child.on('error', (err) => {
        // Only a spawn that failed ends the child here; a signal that could not be sent leaves it running.
        if (child.pid === undefined) finish({ code: null, signal: null, spawnError: err.message });
      });
    });
    const signal = (sig: NodeJS.Signals): void => {
      if (ended) return;
      try {
        child.kill(sig);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
      }
    };
    return { child, logStart, exited, signal };
  } finally {
    closeSync(log);
  }
}

export interface SpawnServeOptions extends SpawnLoggedOptions {
  readonly bin?: string; // the script node runs (default RAFTKV_BIN; the chaos tests can name a stand-in)
}

/**
 * Starts `node bin/raftkv.js <args>` (args from serveArgs) in the repository (unless opts.cwd says otherwise),
 * output appended to opts.logFile.
 */
export function spawnServe(args: readonly string[], opts: SpawnServeOptions): LoggedChild {
  return spawnLogged(process.execPath, [opts.bin ?? RAFTKV_BIN, ...args], { ...opts, cwd: opts.cwd ?? REPO_ROOT });
}
