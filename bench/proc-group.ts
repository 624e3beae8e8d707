// Child processes the benchmark starts (etcd, raftkv members): output to a log file, kill -9, graceful stop,
// and a last-resort cleanup so nothing we started outlives us (exit, SIGINT, SIGTERM).
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';

const live = new Set<ManagedProcess>(); // every started process not yet known to have exited
let cleanupInstalled = false; // the exit/signal hooks are installed once per process

function installCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  const killAll = (): void => {
    for (const p of live) p.signalKill();
  };
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      killAll();
      process.exit(130);
    });
  }
}

export class ManagedProcess {
  private child: ChildProcess | undefined; // the running child, undefined once it exited
  private exited: Promise<number | null> = Promise.resolve(null); // resolves with the exit code

  constructor(
    readonly label: string,
    private readonly command: string,
    private readonly args: readonly string[],
    private readonly logFile: string,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  start(): void {
    if (this.child !== undefined) throw new Error(`${this.label} is already running`);
    installCleanup();
    const fd = openSync(this.logFile, 'a');
    const child = spawn(this.command, [...this.args], { stdio: ['ignore', fd, fd], env: this.env });
    closeSync(fd);
    this.child = child;
    live.add(this);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code) => {
        if (this.child === child) this.child = undefined;
        live.delete(this);
        resolve(code);
      });
      child.once('error', (err) => {
        process.stderr.write(`${this.label}: cannot start ${this.command}: ${err.message}\n`);
        if (this.child === child) this.child = undefined;
        live.delete(this);
        resolve(null);
      });
    });
  }

  /** SIGKILL now, without waiting (exit hooks). */
  signalKill(): void {
    this.child?.kill('SIGKILL');
  }

  /** SIGKILL now; resolves when the process is gone. */
  async kill9(): Promise<void> {
    const child = this.child;
    if (child === undefined) return;
    child.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    const child = this.child;
    if (child === undefined) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
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
