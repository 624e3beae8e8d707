// Child processes the benchmark starts (etcd, raftkv members): output to a log file, kill -9, graceful stop,
// and a last-resort cleanup so nothing we started outlives us (exit, SIGINT, SIGTERM). The spawn and the
// kill-on-exit are cluster/serve-process.ts's (spawnLogged).
import { spawnLogged, type LoggedChild } from '../cluster/serve-process.js';

/** The exit status of a run stopped by SIGINT or SIGTERM (128 + SIGINT's 2, the shell's convention). */
const INTERRUPTED_EXIT_CODE = 130;
let signalHooksInstalled = false; // installed once per process

/** On SIGINT or SIGTERM, exit: the exit hook of spawnLogged's killOnExit then kills every child still running. */
function installSignalHooks(): void {
  if (signalHooksInstalled) return;
  signalHooksInstalled = true;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(INTERRUPTED_EXIT_CODE));
}

export class ManagedProcess {
  private current: LoggedChild | undefined; // the running child, undefined once it exited
  private exited: Promise<number | null> = Promise.resolve(null); // resolves with the exit code

  constructor(
    readonly label: string,
    private readonly command: string,
    private readonly args: readonly string[],
    private readonly logFile: string,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  get pid(): number | undefined {
    return this.current?.child.pid;
  }

  get running(): boolean {
    return this.current !== undefined;
  }

  start(): void {
    if (this.current !== undefined) throw new Error(`${this.label} is already running`);
    installSignalHooks();
    const started = spawnLogged(this.command, this.args, { logFile: this.logFile, env: this.env, killOnExit: true });
    this.current = started;
    this.exited = started.exited.then((exit) => {
      if (exit.spawnError !== undefined) process.stderr.write(`${this.label}: cannot start ${this.command}: ${exit.spawnError}\n`);
      if (this.current === started) this.current = undefined;
      return exit.code;
    });
  }

  /** SIGKILL now; resolves when the process is gone. */
  async kill9(): Promise<void> {
    const started = this.current;
    if (started === undefined) return;
    started.signal('SIGKILL');
    await this.exited;
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    const started = this.current;
    if (started === undefined) return;
    started.signal('SIGTERM');
    const timer = setTimeout(() => started.signal('SIGKILL'), graceMs);
    try {
      await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  waitExit(): Promise<number | null> {
    return this.exited;
  }
}
