// watch-fanout's watchers, spread over N forked processes (watch-worker.ts), so that receiving 100,000 events a
// second is not limited by one load-generator event loop: each worker runs watchers/N of them and streams back
// (watcher, revision, receive time) batches, stamped on the machine-wide monotonic clock (monoMs) that the
// writer's acknowledgements use too. A worker that exits early fails the pool (and so the scenario).
import { fork, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DialTlsConfig } from '../src/shared/tls-files.js';
import type { FromWorker, ToWorker } from './watch-worker-protocol.js';

const HERE = dirname(fileURLToPath(import.meta.url));
/** The compiled worker: next to this file under dist/, or dist/bench/ when this file runs as TypeScript (vitest). */
export const WATCH_WORKER_JS = import.meta.url.endsWith('.ts') ? join(HERE, '..', 'dist', 'bench', 'watch-worker.js') : join(HERE, 'watch-worker.js');

const STOP_TIMEOUT_MS = 15_000; // a worker that does not report within this after 'stop' is killed (and the run fails)

export interface WorkerSummary {
  readonly cpuPercent: number; // the worker's CPU over the measured window (100 = one core)
  readonly reconnects: number;
  readonly watchErrors: number;
}

interface Worker {
  readonly child: ChildProcess;
  readonly messages: FromWorker[]; // control messages not yet awaited
  wake: (() => void) | undefined;
  exited: string | undefined; // why it ended, once it did
}

export class WatchPool {
  private readonly workers: Worker[] = [];

  /** Forks `procs` workers and starts `watchers` watchers on `prefix` among them; `onEvent` gets every reported event. */
  constructor(
    opts: { readonly procs: number; readonly watchers: number; readonly endpoints: readonly string[]; readonly prefix: string; readonly tls?: DialTlsConfig },
    private readonly onEvent: (watcher: number, revision: number, atMs: number) => void,
  ) {
    const procs = Math.max(1, Math.min(opts.procs, opts.watchers));
    let first = 0;
    for (let p = 0; p < procs; p++) {
      const count = Math.floor(opts.watchers / procs) + (p < opts.watchers % procs ? 1 : 0);
      const child = fork(WATCH_WORKER_JS, [], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      const w: Worker = { child, messages: [], wake: undefined, exited: undefined };
      child.on('message', (m: FromWorker) => {
        if (m.type === 'events') {
          const t = m.triples;
          for (let i = 0; i + 2 < t.length; i += 3) this.onEvent(t[i] as number, t[i + 1] as number, t[i + 2] as number);
          return;
        }
        w.messages.push(m);
        w.wake?.();
      });
      child.on('close', (code, signal) => { // after the IPC channel drained: a last 'stopped' is already in
        w.exited = `watch worker ${p} exited (code ${String(code)}, signal ${String(signal)})`;
        w.wake?.();
      });
      child.on('error', (err) => {
        w.exited = `watch worker ${p}: ${err.message}`;
        w.wake?.();
      });
      const start: ToWorker = { type: 'start', endpoints: opts.endpoints, prefix: opts.prefix, firstWatcher: first, watchers: count, ...(opts.tls !== undefined ? { tls: opts.tls } : {}) };
      child.send(start);
      first += count;
      this.workers.push(w);
    }
  }

  get size(): number {
    return this.workers.length;
  }

  /** Resolves once every worker's watchers are created. */
  ready(): Promise<void> {
    return this.all('ready');
  }

  /** Events above `fromRevision` are reported from now on (resolves once every worker applies it). */
  countFrom(fromRevision: number): Promise<void> {
    for (const w of this.workers) w.child.send({ type: 'count', fromRevision } satisfies ToWorker);
    return this.all('counting');
  }

  /** Stops every worker (after its last events are reported) and returns what each measured about itself. */
  async stop(): Promise<WorkerSummary[]> {
    for (const w of this.workers) if (w.exited === undefined && w.child.connected) w.child.send({ type: 'stop' } satisfies ToWorker);
    const timer = setTimeout(() => this.kill(), STOP_TIMEOUT_MS);
    try {
      const out: WorkerSummary[] = [];
      for (const w of this.workers) {
        const m = await this.next(w, 'stopped');
        out.push({ cpuPercent: m.cpuPercent, reconnects: m.reconnects, watchErrors: m.watchErrors });
      }
      return out;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Kills every worker still running (the pool's cleanup on any path). */
  kill(): void {
    for (const w of this.workers) if (w.exited === undefined) w.child.kill('SIGKILL');
  }

  private async all(type: 'ready' | 'counting'): Promise<void> {
    await Promise.all(this.workers.map((w) => this.next(w, type)));
  }

  private async next<T extends FromWorker['type']>(w: Worker, type: T): Promise<Extract<FromWorker, { type: T }>> {
    for (;;) {
      const i = w.messages.findIndex((m) => m.type === type);
      if (i >= 0) return w.messages.splice(i, 1)[0] as Extract<FromWorker, { type: T }>;
      if (w.exited !== undefined) throw new Error(`${w.exited} before '${type}'`);
      await new Promise<void>((r) => {
        w.wake = r;
      });
      w.wake = undefined;
    }
  }
}
