// A 3-member raftkv on loopback for the comparison: `node bin/raftkv.js serve ...` per member (the flags in
// the serve contract), --tick-ms 100 --election-ticks 10 to match etcd's --heartbeat-interval 100
// --election-timeout 1000, data dirs under a run folder.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterUnderTest } from './cluster-under-test.js';
import { repoRoot } from './paths.js';
import { ManagedProcess } from './proc-group.js';
import { createTarget } from './run-bench.js';
import type { BenchTarget } from './target.js';
import { errorCode } from './target.js';

export interface RaftKvClusterOptions {
  readonly runDir: string; // data dirs and logs go under runDir/raftkv
  readonly size: number;
  readonly clientBasePort: number; // member i (1-based) serves clients on clientBasePort + i
  readonly peerBasePort: number; // and peers on peerBasePort + i
  readonly extraFlags?: readonly string[]; // e.g. ['--snapshot-count', '100000']
}

export class RaftKvCluster implements ClusterUnderTest {
  readonly name = 'raftkv';
  readonly version: string;
  readonly members: ManagedProcess[] = []; // index i = member id i+1
  readonly clientEndpoints: string[] = [];
  readonly dataDirs: string[] = [];

  constructor(private readonly opts: RaftKvClusterOptions) {
    const root = repoRoot();
    const bin = join(root, 'bin', 'raftkv.js');
    if (!existsSync(join(root, 'dist', 'src', 'cli', 'main.js'))) {
      throw new Error('dist/src/cli/main.js is missing: run `npm run build` first (bin/raftkv.js runs the compiled CLI)');
    }
    this.version = `raftkv (${root})`;
    const dir = join(opts.runDir, 'raftkv');
    mkdirSync(dir, { recursive: true });
    const peer = (i: number): string => `127.0.0.1:${opts.peerBasePort + i}`;
    const client = (i: number): string => `127.0.0.1:${opts.clientBasePort + i}`;
    const initialCluster = Array.from({ length: opts.size }, (_, k) => `${k + 1}=${peer(k + 1)}/${client(k + 1)}`).join(',');
    for (let i = 1; i <= opts.size; i++) {
      this.clientEndpoints.push(client(i));
      const dataDir = join(dir, `n${i}`);
      this.dataDirs.push(dataDir);
      const args = [
        bin, 'serve',
        '--id', String(i),
        '--cluster-id', 'bench',
        '--data-dir', dataDir,
        '--listen-peer', peer(i),
        '--listen-client', client(i),
        '--initial-cluster', initialCluster,
        '--tick-ms', '100',
        '--election-ticks', '10',
        '--log-level', 'warn',
        ...(opts.extraFlags ?? []),
      ];
      this.members.push(new ManagedProcess(`raftkv ${i}`, process.execPath, args, join(dir, `n${i}.log`)));
    }
  }

  async start(timeoutMs = 30_000): Promise<void> {
    for (const m of this.members) m.start();
    await this.waitReady(timeoutMs);
  }

  /** Waits until a put through the client library succeeds. */
  async waitReady(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const target = await createTarget('raftkv', this.clientEndpoints, 1);
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
    const target = await createTarget('raftkv', this.clientEndpoints, 1);
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
    return createTarget('raftkv', this.clientEndpoints, 1);
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
