import { createServer, type Server } from 'node:net';
import { describe, expect, it } from 'vitest';
import { findListeningPid, machineBusyPercent, machineCpu, parseProcNetTcp, parseProcStat, parseRssBytes, ProcSampler } from '../../bench/proc-stats.js';

const PROC_NET_TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:5CF7 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 123456 1 0000000000000000 100 0 0 10 0
   1: 0100007F:5CF8 0100007F:D2A4 01 00000000:00000000 00:00000000 00000000     0        0 123457 1 0000000000000000 20 4 30 10 -1
   2: 00000000:1B59 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 999 1 0000000000000000 100 0 0 10 0
`;

describe('/proc parsing', () => {
  it('keeps only listening sockets, with their ports and inodes', () => {
    expect(parseProcNetTcp(PROC_NET_TCP)).toEqual([
      { port: 23799, inode: 123456 },
      { port: 7001, inode: 999 },
    ]);
  });

  it('reads utime and stime after a comm that holds spaces and parentheses', () => {
    const stat = '4242 (etcd (m1) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 731 95 0 0 20 0 12 0 555 1000000 2000 0';
    expect(parseProcStat(stat)).toEqual({ utimeTicks: 731, stimeTicks: 95 });
    expect(() => parseProcStat('garbage')).toThrow();
  });

  it('reads VmRSS in bytes', () => {
    expect(parseRssBytes('Name:\tetcd\nVmPeak:\t 1000 kB\nVmRSS:\t   40960 kB\nThreads: 12\n')).toBe(40960 * 1024);
    expect(parseRssBytes('Name:\tzombie\n')).toBeUndefined();
  });
});

describe('live /proc', () => {
  it('finds this process from the port it listens on, and samples its CPU and RSS', async () => {
    const server: Server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const address = server.address();
      if (address === null || typeof address === 'string') throw new Error('no port');
      expect(findListeningPid(address.port)).toBe(process.pid);
      const sampler = new ProcSampler([{ label: 'self', pid: process.pid }], 10);
      sampler.start();
      const cpu0 = process.cpuUsage();
      while ((process.cpuUsage(cpu0).user + process.cpuUsage(cpu0).system) / 1000 < 50); // burn 50 ms of CPU
      const [usage] = sampler.stop();
      expect(usage?.pid).toBe(process.pid);
      expect(usage?.cpuPercent).toBeGreaterThan(0);
      expect(usage?.rssMaxMiB).toBeGreaterThan(10);
      expect(usage?.rssEndMiB).toBeGreaterThan(10);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    // Nobody listens on a port we just released... unless the OS reused it: check a port in the reserved range.
    expect(findListeningPid(1)).toBeUndefined();
  });
});

describe('machineBusyPercent', () => {
  it('is the busy share of all cores between two readings', () => {
    expect(machineBusyPercent({ busyMs: 100, totalMs: 1000 }, { busyMs: 250, totalMs: 1200 })).toBeCloseTo(75, 6);
    expect(machineBusyPercent({ busyMs: 5, totalMs: 10 }, { busyMs: 5, totalMs: 10 })).toBeNaN(); // no time passed
  });

  it('reads a machine whose CPU time only grows, busy never above total', () => {
    const a = machineCpu();
    let spin = 0;
    for (let i = 0; i < 2e6; i++) spin += i % 7;
    const b = machineCpu();
    expect(spin).toBeGreaterThan(0);
    expect(b.totalMs).toBeGreaterThanOrEqual(a.totalMs);
    expect(b.busyMs).toBeGreaterThanOrEqual(a.busyMs);
    expect(b.busyMs).toBeLessThanOrEqual(b.totalMs);
  });
});
