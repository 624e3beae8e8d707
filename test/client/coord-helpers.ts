// Pieces the coordination suites share: polling a condition with a bound, etcdctl as a child process, and the
// check that critical sections marked on one key never overlap.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import type { WatchBatch } from '../../src/client/index.js';

/** Polls `cond` every 25 ms until it holds; fails naming `what` after `timeoutMs`. */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export interface EtcdctlProcess {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  readonly exited: Promise<number | null>;
}

/** Starts `etcdctl ARGS` (API v3) against `endpoints`; its output is collected. */
export function etcdctl(endpoints: readonly string[], args: readonly string[], extraEnv: Record<string, string> = {}): EtcdctlProcess {
  const env = { ...process.env, ETCDCTL_API: '3', ETCDCTL_ENDPOINTS: endpoints.join(','), ...extraEnv };
  const child = spawn('etcdctl', [...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString('utf8')));
  child.stderr.on('data', (b: Buffer) => (err += b.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** Runs etcdctl to the end: its exit status and output. */
export async function etcdctlRun(endpoints: readonly string[], args: readonly string[], extraEnv: Record<string, string> = {}): Promise<{ code: number | null; out: string; err: string }> {
  const p = etcdctl(endpoints, args, extraEnv);
  const code = await p.exited;
  return { code, out: p.stdout(), err: p.stderr() };
}

/**
 * Critical sections mark a key `enter:WHO:N` on entry and `exit:WHO:N` on leaving. Given the key's values in
 * revision order, returns the first sign of an overlap (an enter while another section is inside, or an exit of
 * a section that is not the one inside), or undefined if every section ran alone.
 */
export function firstOverlap(marks: readonly string[]): string | undefined {
  let inside: string | undefined;
  for (const [i, m] of marks.entries()) {
    const [what, ...rest] = m.split(':');
    const who = rest.join(':');
    if (what === 'enter') {
      if (inside !== undefined) return `mark ${i}: ${who} entered while ${inside} was inside (${marks.join(', ')})`;
      inside = who;
    } else if (what === 'exit') {
      if (inside !== who) return `mark ${i}: ${who} left but ${inside ?? 'nobody'} was inside (${marks.join(', ')})`;
      inside = undefined;
    } else return `mark ${i}: unexpected value ${m}`;
  }
  return inside === undefined ? undefined : `${inside} never left`;
}

/** Reads batches from a watch until one reaches `revision` (or `timeoutMs` passes). */
export async function collectUntil(w: AsyncIterable<WatchBatch>, revision: bigint, into: WatchBatch[], timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for await (const b of w) {
    into.push(b);
    if (b.revision >= revision) return;
    if (Date.now() > deadline) throw new Error(`watch did not reach revision ${revision} in ${timeoutMs} ms`);
  }
}
