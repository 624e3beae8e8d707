// Server CPU and memory from /proc: pids found from listening ports (/proc/net/tcp{,6} -> socket inode ->
// /proc/<pid>/fd), CPU from /proc/<pid>/stat (utime + stime), RSS from /proc/<pid>/status (VmRSS).
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { cpus } from 'node:os';

export interface ListeningSocket {
  readonly port: number;
  readonly inode: number;
}

/** Parses /proc/net/tcp or /proc/net/tcp6 text: the sockets in state LISTEN (0A). */
export function parseProcNetTcp(text: string): ListeningSocket[] {
  const out: ListeningSocket[] = [];
  for (const line of text.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
    const local = fields[1];
    const state = fields[3];
    const inode = fields[9];
    if (local === undefined || state === undefined || inode === undefined) continue;
    if (state !== '0A') continue;
    const portHex = local.split(':')[1];
    if (portHex === undefined) continue;
    out.push({ port: parseInt(portHex, 16), inode: Number(inode) });
  }
  return out;
}

export interface CpuTicks {
  readonly utimeTicks: number;
  readonly stimeTicks: number;
}

/** Parses /proc/<pid>/stat: the comm field may hold spaces and parentheses, so fields are read after the last ')'. */
export function parseProcStat(text: string): CpuTicks {
  const close = text.lastIndexOf(')');
  if (close < 0) throw new Error('malformed /proc/<pid>/stat');
  const rest = text.slice(close + 2).trim().split(/\s+/);
  // rest[0] is field 3 (state); utime is field 14, stime field 15.
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error('malformed /proc/<pid>/stat');
  return { utimeTicks: utime, stimeTicks: stime };
}

/** Parses VmRSS from /proc/<pid>/status, in bytes (undefined for a zombie without one). */
export function parseRssBytes(statusText: string): number | undefined {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(statusText);
  return m?.[1] === undefined ? undefined : Number(m[1]) * 1024;
}

/** The pid of the process listening on a TCP `port` on this machine, if any. */
export function findListeningPid(port: number): number | undefined {
  const inodes = new Set<number>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if (isNodeError(err) && err.code === 'ENOENT') continue;
      throw err;
    }
    for (const s of parseProcNetTcp(text)) if (s.port === port && s.inode !== 0) inodes.add(s.inode);
  }
  if (inodes.size === 0) return undefined;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${entry}/fd`);
    } catch (err) {
      // Processes come and go, and some are not ours to look into.
      if (isNodeError(err) && (err.code === 'ENOENT' || err.code === 'EACCES' || err.code === 'EPERM')) continue;
      throw err;
    }
    for (const fd of fds) {
      let link: string;
      try {
        link = readlinkSync(`/proc/${entry}/fd/${fd}`);
      } catch (err) {
        if (isNodeError(err) && (err.code === 'ENOENT' || err.code === 'EACCES' || err.code === 'EPERM')) continue;
        throw err;
      }
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (m?.[1] !== undefined && inodes.has(Number(m[1]))) return Number(entry);
    }
  }
  return undefined;
}

let clockTicksPerSecond: number | undefined; // sysconf(_SC_CLK_TCK), read once (a machine constant)

export function clockTicks(): number {
  if (clockTicksPerSecond === undefined) {
    try {
      clockTicksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch (err) {
      process.stderr.write(`getconf CLK_TCK failed (${String(err)}); assuming 100\n`);
      clockTicksPerSecond = 100;
    }
  }
  return clockTicksPerSecond;
}

function readCpuSeconds(pid: number): number | undefined {
  try {
    const t = parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    return (t.utimeTicks + t.stimeTicks) / clockTicks();
  } catch (err) {
    if (isNodeError(err) && err.code === 'ENOENT') return undefined; // the process exited
    throw err;
  }
}

function readRssBytes(pid: number): number | undefined {
  try {
    return parseRssBytes(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch (err) {
    if (isNodeError(err) && err.code === 'ENOENT') return undefined;
    throw err;
  }
}

export interface ProcessUsage {
  readonly label: string; // e.g. the endpoint the process serves
  readonly pid: number;
  readonly cpuPercent: number; // of one core, over the sampled window (200 = two cores busy)
  readonly rssMaxMiB: number; // largest RSS sampled
  readonly rssEndMiB: number; // RSS at the end of the window
}

/** Samples CPU time and RSS of a set of processes over a window (RSS every `intervalMs`). */
export class ProcSampler {
  private readonly startCpuSeconds = new Map<number, number>(); // pid -> CPU seconds at start()
  private readonly rssMax = new Map<number, number>(); // pid -> largest RSS seen, bytes
  private startedAtMs = 0; // wall clock at start()
  private timer: NodeJS.Timeout | undefined; // RSS sampling timer while running

  constructor(
    private readonly processes: readonly { readonly label: string; readonly pid: number }[],
    private readonly intervalMs = 500,
  ) {}

  start(): void {
    this.startedAtMs = performance.now();
    for (const p of this.processes) {
      const cpu = readCpuSeconds(p.pid);
      if (cpu !== undefined) this.startCpuSeconds.set(p.pid, cpu);
    }
    this.sampleRss();
    this.timer = setInterval(() => this.sampleRss(), this.intervalMs);
    this.timer.unref();
  }

  stop(): ProcessUsage[] {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.sampleRss();
    const wallSeconds = Math.max(1e-9, (performance.now() - this.startedAtMs) / 1000);
    const out: ProcessUsage[] = [];
    for (const p of this.processes) {
      const start = this.startCpuSeconds.get(p.pid);
      const end = readCpuSeconds(p.pid);
      const rssEnd = readRssBytes(p.pid);
      out.push({
        label: p.label,
        pid: p.pid,
        cpuPercent: start === undefined || end === undefined ? Number.NaN : ((end - start) / wallSeconds) * 100,
        rssMaxMiB: (this.rssMax.get(p.pid) ?? Number.NaN) / 1048576,
        rssEndMiB: (rssEnd ?? Number.NaN) / 1048576,
      });
    }
    return out;
  }

  private sampleRss(): void {
    for (const p of this.processes) {
      const rss = readRssBytes(p.pid);
      if (rss !== undefined && rss > (this.rssMax.get(p.pid) ?? 0)) this.rssMax.set(p.pid, rss);
    }
  }
}

/** The machine's CPU time so far, summed over its cores (os.cpus(), ms). */
export interface MachineCpu {
  readonly busyMs: number;
  readonly totalMs: number;
}

export function machineCpu(): MachineCpu {
  let busyMs = 0;
  let totalMs = 0;
  for (const c of cpus()) {
    const t = c.times.user + c.times.nice + c.times.sys + c.times.irq;
    busyMs += t;
    totalMs += t + c.times.idle;
  }
  return { busyMs, totalMs };
}

/** How busy the whole machine was between two readings, in % of all its cores (100 = every core busy). */
export function machineBusyPercent(from: MachineCpu, to: MachineCpu): number {
  const total = to.totalMs - from.totalMs;
  return total <= 0 ? Number.NaN : ((to.busyMs - from.busyMs) / total) * 100;
}

/** The RSS of a process now, MiB (NaN if it is gone). */
export function rssMiB(pid: number): number {
  return (readRssBytes(pid) ?? Number.NaN) / 1048576;
}

export function isNodeError(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && 'code' in err;
}
