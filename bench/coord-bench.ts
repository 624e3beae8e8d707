// The coordination scenarios of `npm run bench:vs-etcd` (issue 13), through the project's client library over
// etcd's v3 API (src/client: EtcdChannel, Watcher), so raftkv and etcd run the very same client code:
// - watch-fanout: W watchers (Watcher, from "now") on one prefix, spread over the members and over P processes
//   (watch-pool.ts, so one event loop does not cap what is received); one writer puts at a
//   fixed rate; the figures are put-acknowledged -> event-received latency (p50/p99 over every (put, watcher); an
//   event that beats the ack counts 0), put-sent -> event-received (in the details) and events received a second.
//   A warm-up of puts runs first; events at or below the revision where measuring begins are not counted. Every
//   watcher must get every acknowledged put once, in order (DeliveryAudit): a lost or repeated event is a problem
//   that fails the run, and a watch process above 90% CPU marks the figures GENERATOR SATURATED.
// - lease-keepalive: L leases granted (64 grants in flight), kept alive over S LeaseKeepAlive streams spread over
//   the members, each lease every TTL/3 (phases spread evenly); the figures are the keep-alive round trip
//   (p50/p99), keep-alives a second, and the members' CPU and RSS while they are kept alive. Revoked at the end.
import { randomBytes } from 'node:crypto';
import { EtcdChannel } from '../src/client/etcd-channel.js';
import type { DialTlsConfig } from '../src/client/index.js';
import type { ClientDuplexStream } from '@grpc/grpc-js';
import type { MessageInit } from '../src/protocol/etcd-proto.js';
import type { LeaseKeepAliveRequest, LeaseKeepAliveResponse } from '../src/protocol/etcd-types.js';
import { DeliveryAudit, DeliveryLatency, RoundTrips } from './coord-stats.js';
import type { LatencySummaryMs } from './histogram.js';
import { ProcSampler, machineBusyPercent, machineCpu, type ProcessUsage } from './proc-stats.js';
import type { TargetName } from './target.js';
import { WatchPool } from './watch-pool.js';
import { monoMs } from './watch-worker-protocol.js';

export const COORD_SCENARIOS = ['watch-fanout', 'lease-keepalive'] as const;
export type CoordScenario = (typeof COORD_SCENARIOS)[number];

export interface CoordBenchOptions {
  readonly scenarios: readonly CoordScenario[];
  readonly durationS: number;
  readonly warmupS: number;
  readonly watchers: number; // watch-fanout: watchers on the prefix
  readonly watchPutsPerS: number; // watch-fanout: the writer's fixed rate
  readonly watchProcs: number; // watch-fanout: processes the watchers are spread over (watch-pool.ts)
  readonly valueSize: number;
  readonly leases: number; // lease-keepalive: leases kept alive
  readonly leaseTtlS: number;
  readonly leaseStreams: number; // LeaseKeepAlive streams the leases are spread over
  readonly servers: readonly { readonly label: string; readonly pid: number }[];
  readonly log: (line: string) => void;
  readonly tls?: DialTlsConfig; // etcd's client TLS flags, for a system with TLS on its client ports
}

export interface CoordReport {
  readonly target: TargetName;
  readonly scenario: CoordScenario;
  readonly size: number; // watchers or leases
  readonly setupS: number; // watchers created / leases granted in
  readonly elapsedS: number; // the measured window
  readonly ops: number; // events received / keep-alives answered in it
  readonly opsPerS: number; // events a second / keep-alives a second
  readonly latency: LatencySummaryMs; // put-ack -> event / keep-alive round trip
  readonly detail: Readonly<Record<string, number>>; // puts, expected events, early events, errors, ...
  readonly problems: readonly string[]; // what makes the figures invalid (lost or repeated events): a failed run
  readonly servers: readonly ProcessUsage[];
  readonly benchCpuPercent: number;
}

const MAX_PUTS_IN_FLIGHT = 64; // a slow cluster makes the writer fall behind its rate instead of piling up calls
const GRANTS_IN_FLIGHT = 64;
const SCHEDULER_TICK_MS = 10; // keep-alive sends and puts are issued on this tick
const DRAIN_MS = 5000; // after the last put: how long the watchers get to receive what is still on its way
const PROGRESS_EVERY_MS = 5000;
const GENERATOR_SATURATED_PERCENT = 90; // a load-generator process above this much of a core (or the machine above this much of all its cores) is the bottleneck itself

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** One EtcdChannel per member, each with that member first (watchers and streams are spread by index). */
function channelsPerMember(endpoints: readonly string[], tls: DialTlsConfig | undefined): EtcdChannel[] {
  return endpoints.map((_, i) => new EtcdChannel({ endpoints: [...endpoints.slice(i), ...endpoints.slice(0, i)], timeoutMs: 10_000, ...(tls !== undefined ? { tls } : {}) }));
}

/** This process's CPU since (cpu0, wall0 on monoMs), in % of one core. */
function cpuPercentSince(cpu0: NodeJS.CpuUsage, wall0: number): number {
  const cpu = process.cpuUsage(cpu0);
  return ((cpu.user + cpu.system) / 1000 / Math.max(1, monoMs() - wall0)) * 100;
}

async function watchFanout(target: TargetName, endpoints: readonly string[], opts: CoordBenchOptions): Promise<CoordReport> {
  const prefix = `wf/${randomBytes(4).toString('hex')}/`;
  const writer = new EtcdChannel({ endpoints, timeoutMs: 5000, ...(opts.tls !== undefined ? { tls: opts.tls } : {}) });
  const latency = new DeliveryLatency();
  const audit = new DeliveryAudit(opts.watchers);
  let lastEventMs = 0;
  const pool = new WatchPool({ procs: opts.watchProcs, watchers: opts.watchers, endpoints, prefix, ...(opts.tls !== undefined ? { tls: opts.tls } : {}) }, (watcher, revision, atMs) => {
    audit.received(watcher, revision);
    latency.received(revision, atMs);
    if (atMs > lastEventMs) lastEventMs = atMs;
  });
  try {
    const t0 = monoMs();
    await pool.ready();
    const setupS = (monoMs() - t0) / 1000;
    opts.log(`watch-fanout: ${opts.watchers} watchers ready in ${setupS.toFixed(1)} s over ${pool.size} processes`);

    const value = randomBytes(opts.valueSize);
    let putErrors = 0;
    const putAt = async (seconds: number, measured: boolean): Promise<number> => {
      const intervalMs = 1000 / opts.watchPutsPerS;
      const start = monoMs();
      let issued = 0;
      let inFlight = 0;
      const pending = new Set<Promise<void>>();
      while (monoMs() - start < seconds * 1000) {
        const due = Math.floor((monoMs() - start) / intervalMs) + 1;
        while (issued < due && inFlight < MAX_PUTS_IN_FLIGHT) {
          const key = `${prefix}${issued % 1000}`;
          issued++;
          inFlight++;
          const sentMs = monoMs();
          const p = writer
            .unary('KV', 'Put', { key: Buffer.from(key), value }, 'write')
            .then(
              (r) => {
                if (measured) latency.ack(Number(r.header?.revision ?? 0n), monoMs(), sentMs);
              },
              () => {
                putErrors++;
              },
            )
            .finally(() => {
              inFlight--;
              pending.delete(p);
            });
          pending.add(p);
        }
        await sleep(Math.min(SCHEDULER_TICK_MS, intervalMs));
      }
      await Promise.all(pending);
      return issued;
    };
    if (opts.warmupS > 0) await putAt(opts.warmupS, false);
    const r = await writer.unary('KV', 'Range', { key: Buffer.from(prefix), countOnly: true }, 'read');
    await pool.countFrom(Number(r.header?.revision ?? 0n));
    const sampler = new ProcSampler(opts.servers);
    const cpu0 = process.cpuUsage();
    const machine0 = machineCpu();
    const wall0 = monoMs();
    sampler.start();
    let progress = setTimeout(function tick() {
      opts.log(`watch-fanout: ${latency.events} events so far`);
      progress = setTimeout(tick, PROGRESS_EVERY_MS);
    }, PROGRESS_EVERY_MS);
    const puts = (await putAt(opts.durationS, true)) - putErrors;
    const expected = puts * opts.watchers;
    const drainUntil = monoMs() + DRAIN_MS;
    while (latency.events < expected && monoMs() < drainUntil) await sleep(20);
    clearTimeout(progress);
    const workers = await pool.stop();
    const servers = sampler.stop();
    const benchCpuPercent = cpuPercentSince(cpu0, wall0);
    const machineBusy = machineBusyPercent(machine0, machineCpu());
    latency.finish();
    const missing = audit.missing(latency.acknowledged());
    const watchErrors = workers.reduce((a, w) => a + w.watchErrors, 0);
    const workerCpuMaxPercent = Math.max(...workers.map((w) => w.cpuPercent));
    const problems = [
      ...(audit.duplicates > 0 ? [`${audit.duplicates} events repeated or out of order`] : []),
      ...(missing > 0 ? [`${missing} acknowledged (put, watcher) events never delivered`] : []),
      ...(watchErrors > 0 ? [`${watchErrors} watches ended in error`] : []),
    ];
    const saturated = workerCpuMaxPercent > GENERATOR_SATURATED_PERCENT || benchCpuPercent > GENERATOR_SATURATED_PERCENT;
    if (saturated) opts.log(`watch-fanout: GENERATOR SATURATED (watch workers up to ${workerCpuMaxPercent.toFixed(0)}% CPU, writer ${benchCpuPercent.toFixed(0)}%): the figures bound the load generator, not the system`);
    const machineSaturated = machineBusy > GENERATOR_SATURATED_PERCENT;
    if (machineSaturated) opts.log(`watch-fanout: MACHINE SATURATED (${machineBusy.toFixed(0)}% of all cores busy): members and load generator share the CPU, so the figures bound the machine`);
    const elapsedS = (Math.max(lastEventMs, wall0 + 1) - wall0) / 1000;
    return {
      target,
      scenario: 'watch-fanout',
      size: opts.watchers,
      setupS,
      elapsedS,
      ops: latency.events,
      opsPerS: latency.events / elapsedS,
      latency: latency.histogram.summaryMs(),
      detail: {
        puts,
        putErrors,
        sendToEventP50Ms: latency.fromSend.summaryMs().p50Ms,
        sendToEventP99Ms: latency.fromSend.summaryMs().p99Ms,
        putAckP50Ms: latency.putAck.summaryMs().p50Ms,
        putAckP99Ms: latency.putAck.summaryMs().p99Ms,
        putsPerSTarget: opts.watchPutsPerS,
        expectedEvents: expected,
        earlyEvents: latency.earlyEvents,
        unacknowledgedEvents: latency.unknownEvents,
        duplicateEvents: audit.duplicates,
        missingEvents: missing,
        watchErrors,
        reconnects: workers.reduce((a, w) => a + w.reconnects, 0),
        watchProcs: pool.size,
        workerCpuMaxPercent,
        generatorSaturated: saturated ? 1 : 0,
        machineBusyPercent: machineBusy,
        machineSaturated: machineSaturated ? 1 : 0,
      },
      problems,
      servers,
      benchCpuPercent,
    };
  } finally {
    pool.kill();
    writer.close();
  }
}

async function leaseKeepAlive(target: TargetName, endpoints: readonly string[], opts: CoordBenchOptions): Promise<CoordReport> {
  const channels = channelsPerMember(endpoints, opts.tls);
  const granter = new EtcdChannel({ endpoints, timeoutMs: 10_000, ...(opts.tls !== undefined ? { tls: opts.tls } : {}) });
  const ids: bigint[] = [];
  const streams: { call: ClientDuplexStream<MessageInit<LeaseKeepAliveRequest>, LeaseKeepAliveResponse> }[] = [];
  try {
    const t0 = monoMs();
    let grantErrors = 0;
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(GRANTS_IN_FLIGHT, opts.leases) }, async () => {
        while (next < opts.leases) {
          next++;
          try {
            const r = await granter.unary('Lease', 'LeaseGrant', { TTL: BigInt(opts.leaseTtlS), ID: 0n }, 'write');
            ids.push(r.ID);
          } catch {
            grantErrors++; // counted in the report
          }
        }
      }),
    );
    const setupS = (monoMs() - t0) / 1000;
    opts.log(`lease-keepalive: ${ids.length} leases granted in ${setupS.toFixed(1)} s (${grantErrors} errors)`);

    const rt = new RoundTrips();
    let expiredAnswers = 0;
    let streamErrors = 0;
    const streamCount = Math.max(1, Math.min(opts.leaseStreams, ids.length));
    for (let s = 0; s < streamCount; s++) {
      const { call } = (channels[s % channels.length] as EtcdChannel).stream('Lease', 'LeaseKeepAlive');
      call.on('data', (r: LeaseKeepAliveResponse) => {
        rt.answeredAt(r.ID, monoMs());
        if (r.TTL <= 0n) expiredAnswers++;
      });
      call.on('error', () => {
        streamErrors++;
      });
      streams.push({ call });
    }
    // Lease i is due at phase (i / n) of the keep-alive interval, then every interval.
    const intervalMs = (opts.leaseTtlS * 1000) / 3;
    const startMs = monoMs();
    const dueAt = ids.map((_, i) => startMs + (i / ids.length) * intervalMs);
    let stopped = false;
    const scheduler = (async () => {
      while (!stopped) {
        const now = monoMs();
        ids.forEach((id, i) => {
          if ((dueAt[i] ?? Number.POSITIVE_INFINITY) > now) return;
          dueAt[i] = (dueAt[i] ?? now) + intervalMs;
          rt.sentAt(id, now);
          streams[i % streams.length]?.call.write({ ID: id });
        });
        await sleep(SCHEDULER_TICK_MS);
      }
    })();
    await sleep(opts.warmupS * 1000);
    rt.resetStats();
    const sampler = new ProcSampler(opts.servers);
    const cpu0 = process.cpuUsage();
    const wall0 = monoMs();
    sampler.start();
    await sleep(opts.durationS * 1000);
    const servers = sampler.stop();
    const benchCpuPercent = cpuPercentSince(cpu0, wall0);
    const elapsedS = (monoMs() - wall0) / 1000;
    const answered = rt.answered;
    const latency = rt.histogram.summaryMs();
    stopped = true;
    await scheduler;
    return {
      target,
      scenario: 'lease-keepalive',
      size: opts.leases,
      setupS,
      elapsedS,
      ops: answered,
      opsPerS: answered / elapsedS,
      latency,
      problems: [...(expiredAnswers > 0 ? [`${expiredAnswers} keep-alives answered for an expired lease`] : []), ...(rt.unmatched > 0 ? [`${rt.unmatched} keep-alive answers matched no request`] : [])],
      detail: { leasesGranted: ids.length, grantErrors, ttlS: opts.leaseTtlS, streams: streamCount, expectedPerS: ids.length / (intervalMs / 1000), expiredAnswers, unmatchedAnswers: rt.unmatched, outstandingAtEnd: rt.outstanding, streamErrors },
      servers,
      benchCpuPercent,
    };
  } finally {
    for (const s of streams) {
      s.call.end();
      s.call.cancel();
    }
    // Revoked, so that they do not expire during whatever is measured next.
    let i = 0;
    await Promise.all(
      Array.from({ length: Math.min(GRANTS_IN_FLIGHT, ids.length) }, async () => {
        while (i < ids.length) {
          const id = ids[i++] as bigint;
          await granter.unary('Lease', 'LeaseRevoke', { ID: id }, 'write').catch(() => undefined); // best effort: the cluster is stopped soon
        }
      }),
    );
    granter.close();
    for (const c of channels) c.close();
  }
}

export async function runCoordBench(target: TargetName, endpoints: readonly string[], opts: CoordBenchOptions): Promise<CoordReport[]> {
  const out: CoordReport[] = [];
  for (const s of opts.scenarios) {
    switch (s) {
      case 'watch-fanout':
        out.push(await watchFanout(target, endpoints, opts));
        break;
      case 'lease-keepalive':
        out.push(await leaseKeepAlive(target, endpoints, opts));
        break;
      default: {
        const never: never = s;
        throw new Error(`unknown scenario ${String(never)}`);
      }
    }
  }
  return out;
}

export function parseCoordScenarios(spec: string): CoordScenario[] {
  if (spec === 'none' || spec === '') return [];
  if (spec === 'all') return [...COORD_SCENARIOS];
  return spec.split(',').map((s) => {
    const name = s.trim();
    const found = COORD_SCENARIOS.find((c) => c === name);
    if (found === undefined) throw new Error(`unknown coordination scenario "${name}" (known: ${COORD_SCENARIOS.join(', ')}, all, none)`);
    return found;
  });
}
