// The chaos harness: a real cluster of `raftkv serve` processes (processes.ts) whose peer links
// go through fault-injecting proxies (proxy.ts), concurrent clients recording a history (history.ts), a
// nemesis on a seeded schedule (nemesis.ts), then the checks (linearizability.ts) and the report (report.ts).
//
// Run folder layout: n<id>/data (data dirs), n<id>/raftkv.log (node logs), history.jsonl, report.json,
// report.md, timeline.html, harness.log.
import { clientTls, makeClusterCertificates } from '../../cluster/tls-certs.js';
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { NodeId } from '../../src/raft/types.js';
import { KvClient } from '../../src/client/kv-client.js';
import { AdminClient, ChaosKvClient, KvClientAdapter, type ChaosKv, type LocalValue } from './chaos-client.js';
import { HistoryRecorder, type HistoryOp, type OpKind, type Outcome } from './history.js';
import { checkFinalState, checkLinearizability } from './linearizability.js';
import { Nemesis, SeededRng, type ClusterControl, type NemesisKind } from './nemesis.js';
import { applyDamage, saveState, type AppliedDamage, type SavedState, type StartResult } from './damage.js';
import { ProxyMesh, type CutMode } from './proxy.js';
import { ServeProcesses, requireServeBin } from './processes.js';
import { REPO_ROOT, peerAddress, type PortPlan } from '../../cluster/serve-process.js';
import { buildReport, writeRunFiles, type ChaosReport, type LeaderObservation } from './report.js';
import { checkWatches, type AckWrite, type WatchCheckResult } from './watch-check.js';
import { WatchWorkload } from './watch-workload.js';

export interface ChaosOptions {
  readonly nodes: number; // 3 or 5
  readonly timeSeconds: number; // how long the nemesis runs
  readonly seed: number;
  readonly nemeses: readonly NemesisKind[];
  readonly runDir?: string; // default runs/chaos-<time>-seed<seed> in the repository
  readonly clients?: number; // concurrent workers, default 5
  readonly keys?: number; // key set size, default 4
  readonly tickMs?: number; // default 50
  readonly electionTicks?: number; // default 10
  readonly snapshotCount?: number; // --snapshot-count for the members (small values exercise snapshots)
  readonly holdMs?: readonly [number, number]; // fault duration, default [2000, 4000]
  readonly quietMs?: readonly [number, number]; // between faults, default [1000, 2000]
  readonly log?: (line: string) => void; // progress lines (default: none)
  /**
   * Workers' client: 'kv' = the project's KvClient (src/client; failed writes are all indeterminate), 'raw' =
   * the harness's own gRPC client (classifies each attempt, so definite failures are recorded as failed).
   */
  readonly client?: 'kv' | 'raw';
  /** TLS with client certificates on every client and peer port (a CA made in the run folder; openssl). */
  readonly tls?: boolean;
  /** Watchers over etcd's Watch API on every key of the run, checked at the end (watch-check.ts); default 0. */
  readonly watchers?: number;
  /** Lease workers (kept alive, expired, revoked), checked at the end (watch-check.ts); default false. */
  readonly leases?: boolean;
  /** Peer and client ports come from [min, max) (default CHAOS_PORT_RANGE, picked at random). */
  readonly portRange?: readonly [number, number];
}

export interface ChaosResult {
  readonly runDir: string;
  readonly report: ChaosReport;
  readonly history: readonly HistoryOp[];
  /** The watch and lease check (undefined: no watchers or leases in the run, or the run ended before it). */
  readonly watchCheck: WatchCheckResult | undefined;
}

const OP_TIMEOUT_MS = 2000; // one client op, retries included; past it the op is indeterminate
const ATTEMPT_TIMEOUT_MS = 1000;
const STATUS_TIMEOUT_MS = 300;
const ADMIN_TIMEOUT_MS = 5000;
const START_JUDGE_MS = 30_000; // a damaged member must serve or exit within this (a start takes well under 1 s)
const START_POLL_MS = 100; // between status calls while a damaged member starts (an exit ends the wait at once)
const CATCH_UP_MS = 20_000; // a replaced member catches up from the leader within this (snapshot + log)

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/**
 * Where chaos clusters listen: below Linux's ephemeral range (ip_local_port_range 32768-60999), where the
 * kernel hands out the source ports of outgoing connections, so a port free when picked stays free until a
 * restarted member binds it again (CI once failed with EADDRINUSE on 41081); and clear of the fixed ranges
 * other suites use (TLS 11000-12999, integration 21000-22999, coordination 29000-29299).
 */
export const CHAOS_PORT_RANGE: readonly [number, number] = [13_000, 21_000];

/** Picks peer and client port bases whose 2n ports are free (the machine is shared: avoid fixed ports). */
async function findPorts(nodes: number, range: readonly [number, number] = CHAOS_PORT_RANGE): Promise<{ peer: number; client: number }> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = range[0] + Math.floor(Math.random() * Math.floor((range[1] - range[0]) / 20)) * 20; // not from the seed: ports are not part of the schedule
    const peer = base;
    const client = base + 10;
    let ok = true;
    for (let id = 1; id <= nodes + 1 && ok; id++) ok = (await portFree(peer + id)) && (await portFree(client + id));
    if (ok) return { peer, client };
  }
  throw new Error('no free port range found');
}

function tail(file: string, lines: number): string {
  if (!existsSync(file)) return '(no log)';
  return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
}

/** The cluster as the nemesis sees it: processes, proxies and the admin API. */
class RealCluster implements ClusterControl {
  private readonly current = new Set<NodeId>(); // voters as far as the harness knows
  private readonly joinState = new Map<NodeId, 'new' | 'existing'>(); // how each member was last started

  constructor(
    readonly cluster: ServeProcesses,
    readonly mesh: ProxyMesh,
    readonly admin: AdminClient,
    private readonly log: (msg: string) => void,
    private readonly clockS: () => string, // the run's clock for notes ("12.345s")
  ) {
    for (const id of cluster.ids()) {
      this.current.add(id);
      this.joinState.set(id, 'new');
    }
  }

  members(): NodeId[] {
    return [...this.current].sort((a, b) => a - b);
  }

  isRunning(id: NodeId): boolean {
    return this.cluster.isRunning(id);
  }

  /** Every member's status (members that do not answer in time are left out). */
  async statuses(): Promise<{ id: NodeId; role: string; term: number; leaderId: number; applied: number }[]> {
    const ids = this.cluster.ids().filter((id) => this.cluster.isRunning(id));
    const res = await Promise.all(
      ids.map(async (id) => {
        try {
          const s = await this.admin.status(this.cluster.clientAddress(id), STATUS_TIMEOUT_MS);
          return { id, role: s.role, term: s.term, leaderId: s.leaderId, applied: s.appliedIndex };
        } catch {
          return undefined; // down, paused or partitioned away from us: it simply does not count
        }
      }),
    );
    return res.filter((s): s is NonNullable<typeof s> => s !== undefined);
  }

  /** The leader with the highest term among members that say they lead. */
  async leaderAndTerm(): Promise<{ leader: NodeId; term: number }> {
    const st = await this.statuses();
    let best: { leader: NodeId; term: number } = { leader: 0, term: Math.max(0, ...st.map((s) => s.term)) };
    for (const s of st) if (s.role === 'leader' && this.current.has(s.id) && (best.leader === 0 || s.term > best.term)) best = { leader: s.id, term: s.term };
    return best;
  }

  async leader(): Promise<NodeId | undefined> {
    const l = await this.leaderAndTerm();
    return l.leader === 0 ? undefined : l.leader;
  }

  async waitForLeader(timeoutMs: number): Promise<NodeId> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const l = await this.leader();
      if (l !== undefined) return l;
      if (Date.now() > until) throw new Error(`no leader within ${timeoutMs} ms`);
      await delay(100);
    }
  }

  /** Waits until every member answers a status call. */
  async waitForAll(timeoutMs: number): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const up = new Set((await this.statuses()).map((s) => s.id));
      const missing = this.members().filter((id) => !up.has(id));
      if (missing.length === 0) return;
      if (Date.now() > until) throw new Error(`members ${missing.join(',')} not answering within ${timeoutMs} ms`);
      await delay(100);
    }
  }

  async kill(id: NodeId): Promise<void> {
    await this.cluster.kill(id);
  }

  /** The flags `id` was last started with: its join state, and the membership it knows. */
  private startFlags(id: NodeId): { state: 'new' | 'existing'; members: NodeId[] } {
    return { state: this.joinState.get(id) ?? 'new', members: this.members().includes(id) ? this.members() : [...this.members(), id] };
  }

  async restart(id: NodeId): Promise<void> {
    if (this.cluster.isRunning(id)) return;
    this.cluster.start(id, this.startFlags(id));
    this.admin.drop(this.cluster.clientAddress(id));
    await Promise.resolve();
  }

  saveState(id: NodeId): SavedState {
    if (this.cluster.isRunning(id)) throw new Error(`member ${id} is running: copy only a stopped member's files`);
    return saveState(this.cluster.dataDir(id), join(this.cluster.options.dir, `n${id}`, 'saved-state'), this.clockS());
  }

  damage(id: NodeId, rng: SeededRng, rollbackTo?: SavedState): AppliedDamage | undefined {
    if (this.cluster.isRunning(id)) throw new Error(`member ${id} is running: damage only a stopped member`);
    return applyDamage(this.cluster.dataDir(id), rng, rollbackTo);
  }

  /**
   * Starts `id` with its exit claimed (processes.ts) and waits for the first of: it answers a status call (the
   * node is up: the server answers UNAVAILABLE until then), it exits (with what it wrote since this start),
   * START_JUDGE_MS. The claim is released when it serves or the wait ends: a later exit is a crash.
   */
  async startJudged(id: NodeId): Promise<StartResult> {
    const started = Date.now();
    const claim = this.cluster.startClaimed(id, this.startFlags(id));
    const address = this.cluster.clientAddress(id);
    this.admin.drop(address);
    let lastError = 'no status call answered';
    try {
      for (;;) {
        const exited = claim.exitStatus();
        if (exited !== undefined) return { kind: 'exited', afterMs: Date.now() - started, status: exited };
        let answered = false;
        try {
          answered = (await this.admin.status(address, STATUS_TIMEOUT_MS)).id === id;
        } catch (err) {
          lastError = err instanceof Error ? err.message : String(err); // starting (UNAVAILABLE) or not listening yet
        }
        const after = claim.exitStatus(); // an exit wins over an answer given just before it
        if (after !== undefined) return { kind: 'exited', afterMs: Date.now() - started, status: after };
        if (answered) return { kind: 'serving', afterMs: Date.now() - started, output: claim.output() };
        if (Date.now() - started > START_JUDGE_MS) return { kind: 'silent', afterMs: Date.now() - started, output: `${claim.output()}\n(last status call: ${lastError})` };
        await Promise.race([claim.exit, delay(START_POLL_MS)]);
      }
    } finally {
      claim.release();
    }
  }

  /**
   * The remedy, then the wait the remedy's text promises ("it catches up from the leader"): until the new member
   * has applied the leader's commit index as of its start, or CATCH_UP_MS. Until it has, a 3-member cluster
   * depends on it for its quorum, and the next fault would meet a newcomer that cannot vote (FOUND-BUGS.md #1).
   */
  async replaceMember(id: NodeId): Promise<string> {
    if (this.cluster.isRunning(id)) await this.kill(id);
    await this.removeMember(id);
    await this.wipeAndReadd(id);
    const started = Date.now();
    const target = await this.onLeader('leader status', async (addr) => (await this.admin.status(addr, ADMIN_TIMEOUT_MS)).commitIndex);
    let applied = 0;
    let lastError = '';
    while (Date.now() - started < CATCH_UP_MS) {
      try {
        applied = (await this.admin.status(this.cluster.clientAddress(id), STATUS_TIMEOUT_MS)).appliedIndex;
        if (applied >= target) return `caught up to index ${target} in ${Date.now() - started} ms`;
      } catch (err) {
        lastError = err instanceof Error ? err.message : String(err); // still starting
      }
      await delay(START_POLL_MS);
    }
    return `NOT caught up within ${CATCH_UP_MS} ms (applied ${applied} of ${target}${lastError !== '' ? `; ${lastError}` : ''})`;
  }

  pause(id: NodeId): void {
    this.cluster.pause(id);
  }

  resume(id: NodeId): void {
    this.cluster.resume(id);
  }

  partition(groups: readonly (readonly NodeId[])[], mode: CutMode): void {
    this.mesh.partition(groups, mode);
  }

  bridge(left: readonly NodeId[], bridgeNode: NodeId, right: readonly NodeId[], mode: CutMode): void {
    this.mesh.bridge(left, bridgeNode, right, mode);
  }

  oneWay(from: NodeId, to: NodeId, mode: CutMode): void {
    this.mesh.oneWay(from, to, mode);
  }

  heal(): void {
    this.mesh.heal();
  }

  /** Runs an admin call on the leader, following NOT_LEADER answers, for up to `timeoutMs`. */
  private async onLeader<T>(what: string, fn: (address: string) => Promise<T>, timeoutMs = 15_000): Promise<T> {
    const until = Date.now() + timeoutMs;
    let lastError = '';
    for (;;) {
      const l = await this.leader();
      if (l !== undefined) {
        try {
          return await fn(this.cluster.clientAddress(l));
        } catch (err) {
          lastError = err instanceof Error ? err.message : String(err);
        }
      }
      if (Date.now() > until) throw new Error(`${what}: no success within ${timeoutMs} ms (${lastError || 'no leader'})`);
      await delay(200);
    }
  }

  async removeMember(id: NodeId): Promise<void> {
    await this.onLeader(`remove member ${id}`, (addr) => this.admin.memberRemove(addr, id, ADMIN_TIMEOUT_MS));
    this.current.delete(id);
    // A removed member must not linger: stop it so it cannot disrupt the others.
    if (this.cluster.isRunning(id)) await this.kill(id);
  }

  async wipeAndReadd(id: NodeId): Promise<void> {
    // Only a removed member may lose its data: wiping a voter would be a lost disk, not a membership change.
    const membersNow = await this.onLeader(`member list`, async (addr) => (await this.admin.status(addr, ADMIN_TIMEOUT_MS)).members);
    if (membersNow.some((m) => m.id === id)) {
      this.current.add(id);
      this.log(`member ${id} is still a member (its removal did not happen): restarting it without wiping`);
      await this.restart(id);
      return;
    }
    if (this.cluster.isRunning(id)) await this.kill(id);
    this.cluster.wipe(id);
    const member = { id, peerAddress: this.cluster.peerAddress(id), clientAddress: this.cluster.clientAddress(id), learner: false };
    await this.onLeader(`add member ${id}`, (addr) => this.admin.memberAdd(addr, member, ADMIN_TIMEOUT_MS));
    this.current.add(id);
    this.joinState.set(id, 'existing');
    this.cluster.start(id, { state: 'existing', members: this.members() });
    this.admin.drop(this.cluster.clientAddress(id));
    this.log(`member ${id} re-added and started as 'existing'`);
  }

  async transferLeadership(from: NodeId, to: NodeId): Promise<void> {
    await this.admin.transferLeader(this.cluster.clientAddress(from), to, ADMIN_TIMEOUT_MS);
  }

  /**
   * Every voter's own copy of `keys` (serializable reads, answered from its state machine) once all of them
   * answer at one applied index: a member that started on damaged data and serves something else shows here
   * (value, createIndex, modIndex or version). Rounds repeat until the indices meet or `timeoutMs` passes
   * (then: not checked, with the reason). With the workers stopped nothing moves the index but an election.
   */
  async compareMembers(keys: readonly string[], timeoutMs: number): Promise<{ problems: string[]; note: string }> {
    const until = Date.now() + timeoutMs;
    let why = '';
    for (;;) {
      // Voters that are down (a crash or an unreplaced member: failures of their own) are left out.
      const ids = this.members().filter((id) => this.cluster.isRunning(id));
      if (ids.length < 2) why = `${ids.length} voter(s) running`;
      else {
        const rows = await Promise.all(
          ids.map(async (id) => {
            try {
              const values: LocalValue[] = [];
              for (const key of keys) values.push(await this.admin.localGet(this.cluster.clientAddress(id), key, ATTEMPT_TIMEOUT_MS));
              return { id, values, error: undefined };
            } catch (err) {
              return { id, values: [], error: err instanceof Error ? err.message : String(err) };
            }
          }),
        );
        const failed = rows.filter((r) => r.error !== undefined);
        const indices = new Set(rows.flatMap((r) => r.values.map((v) => v.index)));
        if (failed.length > 0) why = failed.map((r) => `member ${r.id}: ${r.error ?? ''}`).join('; ');
        else if (indices.size > 1) why = `applied indices differ: ${rows.map((r) => `${r.id}@${[...new Set(r.values.map((v) => v.index))].join('/')}`).join(' ')}`;
        else {
          const index = [...indices][0] ?? 0;
          const problems: string[] = [];
          keys.forEach((key, k) => {
            const seen = rows.map((r) => ({ id: r.id, kv: JSON.stringify(r.values[k]?.kv ?? null) }));
            if (new Set(seen.map((x) => x.kv)).size > 1) {
              problems.push(`members disagree at applied index ${index} on key ${key}: ${seen.map((x) => `member ${x.id} has ${x.kv}`).join(', ')}`);
            }
          });
          const down = this.members().filter((id) => !ids.includes(id));
          const left = down.length > 0 ? ` (members ${down.join(',')} down: not compared)` : '';
          return { problems, note: `members ${ids.join(',')} hold the same ${keys.length} keys (value and metadata) at applied index ${index}${left}` };
        }
      }
      if (Date.now() > until) return { problems: [], note: `members not compared: ${why} (for ${timeoutMs} ms)` };
      await delay(200);
    }
  }
}

/**
 * One worker: a sequential client doing put / get / cas / delete over the key set with unique values. A
 * read-only worker only reads: it stays with whichever member answers its reads, so a deposed leader that
 * keeps serving reads from its own state shows up as a stale read (writers move away at their first write).
 */
async function worker(
  client: number,
  kv: ChaosKv,
  recorder: HistoryRecorder,
  keys: readonly string[],
  rng: SeededRng,
  stopped: () => boolean,
  readOnly: boolean,
  onWrite: (w: AckWrite) => void,
): Promise<void> {
  const lastSeen = new Map<string, string | null>(); // what this client last read or wrote per key
  let n = 0;
  while (!stopped()) {
    const key = rng.pick(keys);
    const r = rng.next();
    const op: OpKind = readOnly || r < 0.4 ? 'get' : r < 0.75 ? 'put' : r < 0.95 ? 'cas' : 'delete';
    const value = op === 'put' || op === 'cas' ? `${client}-${++n}` : null;
    const expected = op === 'cas' ? (rng.next() < 0.8 ? (lastSeen.get(key) ?? null) : `${client}-${Math.max(1, n - 1)}`) : null;
    const slot = recorder.begin({ client, op, key, value, expected });
    let outcome: Outcome;
    let revision: number | undefined;
    switch (op) {
      case 'get':
        outcome = (await kv.get(key)).outcome;
        if (outcome.kind === 'ok') lastSeen.set(key, outcome.result);
        break;
      case 'put':
        ({ outcome, revision } = await kv.put(key, value ?? ''));
        if (outcome.kind === 'ok') lastSeen.set(key, value);
        break;
      case 'cas':
        ({ outcome, revision } = await kv.cas(key, expected, value ?? ''));
        if (outcome.kind === 'ok' && outcome.result === 'true') lastSeen.set(key, value);
        break;
      case 'delete':
        ({ outcome, revision } = await kv.delete(key));
        if (outcome.kind === 'ok') lastSeen.set(key, null);
        break;
      default: {
        const never: never = op;
        throw new Error(`unknown op ${String(never)}`);
      }
    }
    // ok for put/delete carries no result; the history format wants null there.
    if (outcome.kind === 'ok' && (op === 'put' || op === 'delete')) outcome = { kind: 'ok', result: null };
    recorder.end(slot, outcome);
    if (outcome.kind === 'ok' && revision !== undefined) onWrite({ key, revision, type: op === 'delete' ? 'delete' : 'put', value: op === 'delete' ? null : value });
    await delay(5 + rng.int(10)); // think time: keeps 2 shared cores usable
  }
}

export async function runChaos(opts: ChaosOptions): Promise<ChaosResult> {
  const startedAt = new Date().toISOString();
  const runDir = opts.runDir ?? join(REPO_ROOT, 'runs', `chaos-${startedAt.replace(/[:.]/g, '-')}-seed${opts.seed}`);
  mkdirSync(runDir, { recursive: true });
  const harnessLog = join(runDir, 'harness.log');
  const recorder = new HistoryRecorder();
  const log = (msg: string): void => {
    const line = `${(recorder.now() / 1e9).toFixed(3)}s ${msg}`;
    appendFileSync(harnessLog, line + '\n');
    opts.log?.(line);
  };
  const clients = opts.clients ?? 5;
  const keys = Array.from({ length: opts.keys ?? 4 }, (_, i) => `k${i}`);
  const tickMs = opts.tickMs ?? 50;
  const electionTicks = opts.electionTicks ?? 10;
  const notes: string[] = [];
  const memberProblems: string[] = []; // members that disagree about the final state
  requireServeBin();

  const ports = await findPorts(opts.nodes, opts.portRange);
  const plan: PortPlan = { basePeerPort: ports.peer, baseClientPort: ports.client };
  const peerAddresses = new Map<NodeId, string>();
  for (let id = 1; id <= opts.nodes; id++) peerAddresses.set(id, peerAddress(plan, id));
  const mesh = new ProxyMesh(peerAddresses);
  await mesh.start();
  const tlsDir = opts.tls === true ? makeClusterCertificates(join(runDir, 'tls'), Array.from({ length: opts.nodes }, (_, i) => i + 1)).dir : undefined;
  const tls = tlsDir !== undefined ? clientTls(tlsDir) : undefined;
  const cluster = new ServeProcesses({
    ...(tlsDir !== undefined ? { tlsDir } : {}),
    nodes: opts.nodes,
    dir: runDir,
    clusterId: `chaos-${opts.seed}`,
    ...plan,
    tickMs,
    electionTicks,
    logLevel: 'info',
    ...(opts.snapshotCount !== undefined ? { snapshotCount: opts.snapshotCount } : {}),
    dialOverride: (id) => mesh.dialOverride(id),
  });
  const admin = new AdminClient(tls);
  const real = new RealCluster(cluster, mesh, admin, log, () => `${(recorder.now() / 1e9).toFixed(3)}s`);
  const kvClients: ChaosKv[] = [];
  const leaders: LeaderObservation[] = [];
  let monitorStop = false;
  let monitor: Promise<void> = Promise.resolve();
  let finalValues: Map<string, string | null> | undefined;
  let nemesis: Nemesis | undefined;
  const ackWrites: AckWrite[] = [];
  let watchWorkload: WatchWorkload | undefined;
  let watchCheck: WatchCheckResult | undefined;
  try {
    log(`run folder ${runDir}; seed ${opts.seed}; ${opts.nodes} nodes; nemesis ${opts.nemeses.join(',')}; client ${opts.client ?? 'kv'}; ports ${ports.peer}/${ports.client}${tlsDir !== undefined ? '; TLS' : ''}`);
    for (const id of cluster.ids()) cluster.start(id, { state: 'new', members: cluster.ids() });
    try {
      await real.waitForAll(30_000);
      const l = await real.waitForLeader(30_000);
      log(`leader ${l} elected`);
    } catch (err) {
      const logs = cluster.ids().map((id) => `--- n${id}:\n${tail(cluster.logFile(id), 8)}`).join('\n');
      throw new Error(`${err instanceof Error ? err.message : String(err)} after starting the cluster; node logs:\n${logs}`);
    }

    monitor = (async () => {
      let last = '';
      while (!monitorStop) {
        const l = await real.leaderAndTerm();
        const k = `${l.leader}/${l.term}`;
        if (k !== last) {
          leaders.push({ ns: recorder.now(), leader: l.leader, term: l.term });
          last = k;
        }
        await delay(200);
      }
    })();

    const endpoints = cluster.ids().map((id) => cluster.clientAddress(id));
    if ((opts.watchers ?? 0) > 0 || opts.leases === true) {
      watchWorkload = new WatchWorkload({ endpoints, ...(tls !== undefined ? { tls } : {}), watchers: opts.watchers ?? 0, leases: opts.leases === true, rng: new SeededRng(opts.seed * 1000 + 999), log, electionTimeoutMs: tickMs * electionTicks });
      await watchWorkload.start();
    }
    const nonce = Date.now().toString(36);
    let workersStopped = false;
    const workers: Promise<void>[] = [];
    for (let c = 1; c <= clients; c++) {
      const rotated = [...endpoints.slice(c % endpoints.length), ...endpoints.slice(0, c % endpoints.length)];
      const clientId = `chaos-${opts.seed}-${nonce}-${c}`;
      const kv: ChaosKv =
        (opts.client ?? 'kv') === 'kv'
          ? new KvClientAdapter(new KvClient({ endpoints: rotated, clientId, timeoutMs: OP_TIMEOUT_MS, attemptTimeoutMs: ATTEMPT_TIMEOUT_MS, backoffMinMs: 20, backoffMaxMs: 200, ...(tls !== undefined ? { tls } : {}) }))
          : new ChaosKvClient({ endpoints: rotated, clientId, opTimeoutMs: OP_TIMEOUT_MS, attemptTimeoutMs: ATTEMPT_TIMEOUT_MS, retryBackoffMs: 50, ...(tls !== undefined ? { tls } : {}) });
      kvClients.push(kv);
      const readOnly = clients >= 3 && c === clients; // the last worker only reads
      workers.push(worker(c, kv, recorder, keys, new SeededRng(opts.seed * 1000 + c), () => workersStopped, readOnly, (w) => ackWrites.push(w)));
    }

    const nem = new Nemesis(
      real,
      new SeededRng(opts.seed),
      {
        kinds: opts.nemeses,
        holdMs: opts.holdMs ?? [2000, 4000],
        quietMs: opts.quietMs ?? [1000, 2000],
        pauseMinMs: 3 * tickMs * electionTicks,
      },
      () => recorder.now(),
      log,
    );
    nemesis = nem;
    const nemesisDone = nem.run();
    await delay(opts.timeSeconds * 1000);
    log('time is up: stopping the nemesis');
    nem.stop();
    await nemesisDone;
    await nem.healAll();
    workersStopped = true;
    await Promise.all(workers);
    log(`clients stopped after ${recorder.size} ops`);

    // Final read of every key on a healed cluster: what survived. A refused member that could not be replaced
    // stays down (started as it is, it would only refuse again): the cluster lost it, which fails the run.
    const unreplaced = nem.unreplaced();
    for (const u of unreplaced) memberProblems.push(`member ${u.id} refused to start after "${u.fault.detail}" and could not be replaced (${u.fault.error ?? 'no heal'}): the cluster did not recover`);
    for (const id of real.members()) if (!cluster.isRunning(id) && !unreplaced.some((u) => u.id === id)) await real.restart(id);
    try {
      await real.waitForLeader(30_000);
      const reader = new ChaosKvClient({ endpoints, clientId: `chaos-${opts.seed}-${nonce}-final`, opTimeoutMs: 3000, attemptTimeoutMs: 1000, retryBackoffMs: 100, ...(tls !== undefined ? { tls } : {}) });
      kvClients.push(reader);
      const values = new Map<string, string | null>();
      const until = Date.now() + 30_000;
      for (const key of keys) {
        for (;;) {
          const slot = recorder.begin({ client: 0, op: 'get', key, value: null, expected: null });
          const r = await reader.get(key);
          recorder.end(slot, r.outcome);
          if (r.outcome.kind === 'ok') {
            values.set(key, r.outcome.result);
            break;
          }
          if (Date.now() > until) throw new Error(`final read of ${key} failed: ${r.lastError ?? ''}`);
        }
      }
      finalValues = values;
      log(`final values ${JSON.stringify(Object.fromEntries(values))}`);
      const agreement = await real.compareMembers(keys, 30_000);
      notes.push(agreement.note);
      memberProblems.push(...agreement.problems);
      log(agreement.problems.length > 0 ? `members disagree: ${agreement.problems.join('; ')}` : agreement.note);
      if (watchWorkload !== undefined) {
        const w = await watchWorkload.finish();
        notes.push(...w.notes);
        watchCheck = checkWatches({ writes: [...ackWrites, ...watchWorkload.writes], watchers: w.watchers, endRevision: w.endRevision, allWritersRecorded: true, compactedResume: w.compactedResume, leases: w.leases });
        notes.push(...watchCheck.notes, `watch check: ${w.watchers.length} watchers, ${watchCheck.events} events, ${w.leases.length} leases, ${watchCheck.problems.length} problems`);
        memberProblems.push(...watchCheck.problems);
        writeFileSync(join(runDir, 'watches.json'), JSON.stringify({ endRevision: w.endRevision, watchers: w.watchers, leases: w.leases, compactedResume: w.compactedResume, problems: watchCheck.problems }, null, 1));
        log(`watch check: ${watchCheck.problems.length === 0 ? 'ok' : watchCheck.problems.join('; ')}`);
      }
    } catch (err) {
      notes.push(`final read failed: ${err instanceof Error ? err.message : String(err)}`);
      log(notes[notes.length - 1] ?? '');
    }
  } finally {
    nemesis?.stop();
    watchWorkload?.close();
    monitorStop = true;
    await monitor;
    for (const kv of kvClients) kv.close();
    admin.close();
    await cluster.down();
    await mesh.stop();
  }

  const history = recorder.finish();
  const faults = nemesis?.faults ?? [];
  for (const f of faults) if (f.error !== undefined) notes.push(`fault "${f.detail}": ${f.error}`);
  for (const e of cluster.unexpectedExits) if (e.code === 0) notes.push(`member ${e.id} exited by itself with code 0`);
  const checkStart = Date.now();
  const linearizability = checkLinearizability(history);
  notes.push(`linearizability search: ${linearizability.steps} steps in ${Date.now() - checkStart} ms`);
  const finalState = checkFinalState(history, finalValues ?? new Map());
  const report = buildReport({
    runDir,
    seed: opts.seed,
    nodes: opts.nodes,
    timeSeconds: opts.timeSeconds,
    nemeses: opts.nemeses,
    clients,
    keys,
    startedAt,
    durationNs: recorder.now(),
    history,
    faults,
    leaders,
    finalValues,
    linearizability,
    finalState,
    notes,
    problems: [
      ...cluster.unexpectedExits.filter((e) => e.code !== 0).map((e) => `member ${e.id} exited unexpectedly (code ${String(e.code)}, signal ${String(e.signal)}): ${e.logTail.trim().split('\n').slice(-2).join(' | ')}`),
      ...faults.filter((f) => f.failure !== undefined).map((f) => `fault "${f.detail}": ${f.failure ?? ''}`),
      ...memberProblems,
    ],
  });
  writeRunFiles(runDir, report, history);
  log(`verdict ${report.verdict}${report.reasons.length > 0 ? ': ' + report.reasons.join('; ') : ''}`);
  return { runDir, report, history, watchCheck };
}
