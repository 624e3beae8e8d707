// The nemesis: injects faults into a running cluster on a seeded schedule. Each fault is
// inject -> hold for a while -> heal, followed by a quiet period. The schedule (which fault, how long, which
// variant) comes from the seed; the targets depend on who leads when the fault starts.
import type { NodeId } from '../../src/raft/types.js';
import type { CutMode } from './proxy.js';
import { assertNever } from './history.js';
import { DAMAGES, judgeStart, type AppliedDamage, type SavedState, type StartResult } from './damage.js';

const LEADER_WAIT_MS = 10_000; // the damage nemesis waits this long for a leader before it skips
const LEADER_POLL_MS = 200;

export type NemesisKind = 'kill' | 'pause' | 'partition' | 'member' | 'transfer' | 'damage';
export const NEMESIS_KINDS: readonly NemesisKind[] = ['kill', 'pause', 'partition', 'member', 'transfer', 'damage'];

export function parseNemesisKinds(s: string): NemesisKind[] {
  const out: NemesisKind[] = [];
  for (const part of s.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
    if (!(NEMESIS_KINDS as readonly string[]).includes(part)) {
      throw new Error(`unknown nemesis "${part}" (expected some of ${NEMESIS_KINDS.join(',')})`);
    }
    out.push(part as NemesisKind);
  }
  if (out.length === 0) throw new Error('no nemesis given');
  return out;
}

/** A seeded PRNG (mulberry32): the same seed gives the same schedule. */
export class SeededRng {
  private a: number;
  constructor(readonly seed: number) {
    this.a = seed >>> 0;
  }
  next(): number {
    this.a = (this.a + 0x6d2b79f5) >>> 0;
    let t = this.a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(maxExclusive: number): number {
    return Math.floor(this.next() * maxExclusive);
  }
  between(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  pick<T>(xs: readonly T[]): T {
    const x = xs[this.int(xs.length)];
    if (x === undefined) throw new Error('pick from an empty list');
    return x;
  }
  shuffle<T>(xs: readonly T[]): T[] {
    const a = [...xs];
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i] as T;
      a[i] = a[j] as T;
      a[j] = t;
    }
    return a;
  }
}

/** What the nemesis may do to the cluster (implemented by the harness over real processes and proxies). */
export interface ClusterControl {
  members(): NodeId[]; // current voters, as the harness tracks them
  isRunning(id: NodeId): boolean; // its process is up (it may still be starting)
  leader(): Promise<NodeId | undefined>; // asks the members; undefined if none is known
  kill(id: NodeId): Promise<void>; // SIGKILL and wait for the exit
  restart(id: NodeId): Promise<void>; // start again on its data directory
  pause(id: NodeId): void; // SIGSTOP
  resume(id: NodeId): void; // SIGCONT
  partition(groups: readonly (readonly NodeId[])[], mode: CutMode): void;
  bridge(left: readonly NodeId[], bridgeNode: NodeId, right: readonly NodeId[], mode: CutMode): void;
  oneWay(from: NodeId, to: NodeId, mode: CutMode): void;
  heal(): void;
  /** Admin API: remove `id` from the membership (through the leader). */
  removeMember(id: NodeId): Promise<void>;
  /** Stop `id`, wipe its data directory, add it back through the admin API, start it as 'existing'. */
  wipeAndReadd(id: NodeId): Promise<void>;
  transferLeadership(from: NodeId, to: NodeId): Promise<void>;
  /** Copies the kv/ of `id` (stopped) aside, for a later rollback. */
  saveState(id: NodeId): SavedState;
  /** Applies one seeded damage (damage.ts) to the data directory of `id`, which must be stopped; with `rollbackTo`, that rollback. */
  damage(id: NodeId, rng: SeededRng, rollbackTo?: SavedState): AppliedDamage | undefined;
  /** Starts `id` again (its last flags) and waits until it answers a status call, or exits, or a time limit. */
  startJudged(id: NodeId): Promise<StartResult>;
  /**
   * The remedy of a refusal: remove `id` (through the leader), wipe it, add it back, start it as 'existing', and
   * wait (bounded) until it has caught up. Resolves with how the catching up went.
   */
  replaceMember(id: NodeId): Promise<string>;
}

export interface FaultRecord {
  readonly kind: NemesisKind;
  readonly detail: string; // human description, e.g. "partition [1,2] | [3,4,5] (stall)"
  readonly targets: readonly NodeId[];
  readonly startNs: number; // when the fault was injected
  healNs: number | null; // when it was healed (null if the run ended first)
  error: string | undefined; // the injection or heal failed (the fault may not have happened fully)
  outcome?: string; // what came of it (damage: "recovered: ...", "refused: <the member's line>", ...)
  failure?: string; // the system under test broke its contract here: the run fails (damage: a bad start)
}

interface DamagedMember {
  readonly fault: FaultRecord;
  readonly damage: AppliedDamage | undefined;
  stage: 'stopped' | 'replace';
}

export interface NemesisOptions {
  readonly kinds: readonly NemesisKind[];
  readonly holdMs: readonly [number, number]; // how long a fault lasts (min, max)
  readonly quietMs: readonly [number, number]; // the pause between faults
  readonly pauseMinMs: number; // SIGSTOP at least this long (longer than the election timeout)
}

export class Nemesis {
  readonly faults: FaultRecord[] = [];
  private stopped = false;
  private wake: (() => void) | undefined; // interrupts a wait when stop() is called
  private readonly paused = new Set<NodeId>();
  private readonly killed = new Set<NodeId>();
  private partitioned = false;
  private readonly removed = new Set<NodeId>(); // removed and not yet re-added
  // Damaged members not yet healed: 'stopped' (restart and judge it at the heal) or 'replace' (it did not
  // start: the remedy is due, or failed and is retried at every heal).
  private readonly damaged = new Map<NodeId, DamagedMember>();

  constructor(
    private readonly ctl: ClusterControl,
    private readonly rng: SeededRng,
    private readonly opts: NemesisOptions,
    private readonly now: () => number, // ns on the history's clock
    private readonly log: (msg: string) => void,
  ) {}

  /** Runs faults back to back (with quiet periods) until stop() is called. */
  async run(): Promise<void> {
    let i = 0;
    while (!this.stopped) {
      await this.wait(this.rng.between(this.opts.quietMs[0], this.opts.quietMs[1]));
      if (this.stopped) break;
      const kind = this.opts.kinds[i++ % this.opts.kinds.length] ?? 'kill';
      await this.inject(kind);
    }
  }

  /** Ends the run at the next step and interrupts a hold in progress (the fault is healed at once). */
  stop(): void {
    this.stopped = true;
    this.wake?.();
  }

  private async wait(ms: number): Promise<void> {
    if (this.stopped) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(t);
        this.wake = undefined;
        resolve();
      };
    });
  }

  private async pickTarget(preferLeader: boolean): Promise<{ target: NodeId; leader: NodeId | undefined }> {
    const members = this.ctl.members();
    const leader = await this.ctl.leader();
    if (preferLeader && leader !== undefined && members.includes(leader)) return { target: leader, leader };
    return { target: this.rng.pick(members), leader };
  }

  private record(kind: NemesisKind, detail: string, targets: readonly NodeId[], startNs = this.now()): FaultRecord {
    const f: FaultRecord = { kind, detail, targets, startNs, healNs: null, error: undefined };
    this.faults.push(f);
    this.log(`nemesis: ${detail}`);
    return f;
  }

  private hold(): Promise<void> {
    return this.wait(this.rng.between(this.opts.holdMs[0], this.opts.holdMs[1]));
  }

  async inject(kind: NemesisKind): Promise<void> {
    let f: FaultRecord | undefined;
    try {
      switch (kind) {
        case 'kill': {
          const r = this.rng.next();
          if (r < 0.25) {
            // A majority crashes at once: only what was fsynced survives, and every acknowledged write must.
            const members = this.ctl.members();
            const victims = this.rng.shuffle(members).slice(0, Math.floor(members.length / 2) + 1).sort((a, b) => a - b);
            f = this.record(kind, `kill -9 a majority: members ${victims.join(',')}`, victims);
            for (const v of victims) this.killed.add(v);
            await Promise.all(victims.map((v) => this.ctl.kill(v)));
          } else {
            const { target, leader } = await this.pickTarget(r < 0.6);
            f = this.record(kind, `kill -9 member ${target}${target === leader ? ' (leader)' : ''}`, [target]);
            this.killed.add(target);
            await this.ctl.kill(target);
          }
          await this.hold();
          await this.healAll();
          break;
        }
        case 'pause': {
          const { target, leader } = await this.pickTarget(this.rng.next() < 0.5);
          f = this.record(kind, `SIGSTOP member ${target}${target === leader ? ' (leader)' : ''}`, [target]);
          this.paused.add(target);
          this.ctl.pause(target);
          await this.wait(Math.max(this.opts.pauseMinMs, this.rng.between(this.opts.holdMs[0], this.opts.holdMs[1])));
          await this.healAll();
          break;
        }
        case 'partition': {
          f = await this.partition();
          await this.hold();
          await this.healAll();
          break;
        }
        case 'member': {
          const members = this.ctl.members();
          const leader = await this.ctl.leader();
          const followers = members.filter((m) => m !== leader);
          // Mostly a follower; sometimes the leader itself (it must step down once its removal commits).
          const target = leader !== undefined && (this.rng.next() < 0.3 || followers.length === 0) ? leader : this.rng.pick(followers);
          f = this.record(kind, `remove member ${target}${target === leader ? ' (leader)' : ''}, wipe it, re-add it as 'existing'`, [target]);
          this.removed.add(target);
          await this.ctl.removeMember(target);
          await this.hold();
          await this.healAll();
          break;
        }
        case 'transfer': {
          const members = this.ctl.members();
          const leader = await this.ctl.leader();
          if (leader === undefined) {
            f = this.record(kind, 'leadership transfer skipped: no leader', []);
            break;
          }
          const to = this.rng.pick(members.filter((m) => m !== leader));
          f = this.record(kind, `transfer leadership ${leader} -> ${to}`, [leader, to]);
          await this.ctl.transferLeadership(leader, to);
          await this.hold();
          f.healNs = this.now();
          break;
        }
        case 'damage': {
          // A refusal's remedy goes through the leader: without one the member would stay down, and the fault
          // would test the election (the kill nemesis does that), not the damage. Give an election time first.
          let leader = await this.ctl.leader();
          for (let waited = 0; leader === undefined && waited < LEADER_WAIT_MS && !this.stopped; waited += LEADER_POLL_MS) {
            await this.wait(LEADER_POLL_MS);
            leader = await this.ctl.leader();
          }
          if (this.stopped) break;
          if (leader === undefined) {
            f = this.record(kind, `damage skipped: no leader within ${LEADER_WAIT_MS} ms`, []);
            break;
          }
          // Mostly a follower; sometimes the leader. Killed, damaged while stopped, restarted at the heal. Only a
          // running member that is not waiting for its own remedy (a damage on a dead directory tells nothing).
          const candidates = this.ctl.members().filter((m) => this.ctl.isRunning(m) && !this.damaged.has(m));
          if (candidates.length === 0) {
            f = this.record(kind, 'damage skipped: no running member', []);
            break;
          }
          const target = candidates.includes(leader) && this.rng.next() < 0.3 ? leader : this.rng.pick(candidates);
          const startNs = this.now();
          const label = `kill -9 member ${target}${target === leader ? ' (leader)' : ''}`;
          // As often as any one damage: a rollback, which needs the member to run on after its copy is taken.
          const rollback = this.rng.int(DAMAGES.length) === 0;
          this.killed.add(target); // until it is damaged: a plain restart undoes a failed injection
          await this.ctl.kill(target);
          let saved: SavedState | undefined;
          if (rollback) {
            saved = this.ctl.saveState(target);
            this.killed.delete(target);
            const again = await this.ctl.startJudged(target);
            if (again.kind !== 'serving') {
              f = this.record(kind, `${label}, save its kv/, restart it (to roll it back later)`, [target], startNs);
              const v = judgeStart(again, 'recovered');
              f.outcome = v.outcome;
              f.failure = `member ${target}, undamaged: ${v.failure ?? v.outcome}`;
              this.damaged.set(target, { fault: f, damage: undefined, stage: 'replace' });
              await this.healAll();
              break;
            }
            this.log(`nemesis: ${label}, kv/ saved, restarted (serving after ${again.afterMs} ms): it runs on, then its state machine goes back to the copy`);
            await this.hold();
            this.killed.add(target);
            await this.ctl.kill(target);
          }
          const damage = this.ctl.damage(target, this.rng, saved);
          this.killed.delete(target);
          const what = damage === undefined ? 'no damage applies (plain kill)' : `${damage.name}: ${damage.detail} (must be ${damage.expect === 'either' ? 'refused or recovered' : damage.expect})`;
          f = this.record(kind, `${label}, damage its data: ${what}`, [target], startNs);
          this.damaged.set(target, { fault: f, damage, stage: 'stopped' });
          await this.hold();
          await this.healAll();
          break;
        }
        default:
          assertNever(kind);
      }
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      this.log(`nemesis: ${kind} failed: ${msg}`);
      if (f !== undefined) f.error = msg;
      await this.healAll();
    }
  }

  /**
   * Restarts a damaged member, judges its start (damage.ts) and, if it did not start, does the remedy. A
   * remedy that fails (no leader to remove it) leaves it in `damaged`: the next heal tries again.
   */
  private async restartDamaged(id: NodeId, d: DamagedMember): Promise<void> {
    if (d.stage === 'stopped') {
      const started = await this.ctl.startJudged(id);
      const verdict = judgeStart(started, d.damage?.expect ?? 'recovered');
      d.fault.outcome = verdict.outcome;
      if (verdict.failure !== undefined) d.fault.failure = `member ${id} after ${d.damage?.name ?? 'a kill'}: ${verdict.failure}`;
      this.log(`nemesis: damaged member ${id}: ${verdict.outcome}${verdict.failure !== undefined ? ` -- FAILURE: ${verdict.failure}` : ''}`);
      if (!verdict.replace) {
        this.damaged.delete(id);
        return;
      }
      d.stage = 'replace';
    }
    const caughtUp = await this.ctl.replaceMember(id);
    this.damaged.delete(id);
    d.fault.outcome = `${d.fault.outcome ?? ''}; replaced at ${(this.now() / 1e9).toFixed(1)}s: removed, wiped, re-added, started as 'existing', ${caughtUp}`;
    this.log(`nemesis: member ${id} replaced, ${caughtUp}`);
  }

  /** Damaged members whose remedy could not be done (they stay down): each one a member the cluster lost. */
  unreplaced(): { id: NodeId; fault: FaultRecord }[] {
    return [...this.damaged].filter(([, d]) => d.stage === 'replace').map(([id, d]) => ({ id, fault: d.fault }));
  }

  private async partition(): Promise<FaultRecord> {
    const members = this.ctl.members();
    const mode: CutMode = this.rng.next() < 0.75 ? 'stall' : 'drop';
    const leader = await this.ctl.leader();
    const variants = ['majority-minority', 'isolate-leader', 'one-way', ...(members.length >= 3 ? ['bridge'] : [])];
    const variant = this.rng.pick(variants);
    const shuffled = this.rng.shuffle(members);
    this.partitioned = true;
    switch (variant) {
      case 'isolate-leader': {
        const target = leader ?? this.rng.pick(members);
        this.ctl.partition([[target], members.filter((m) => m !== target)], mode);
        return this.record('partition', `isolate member ${target}${target === leader ? ' (leader)' : ''} (${mode})`, [target]);
      }
      case 'one-way': {
        const from = leader ?? this.rng.pick(members);
        const to = this.rng.pick(members.filter((m) => m !== from));
        this.ctl.oneWay(from, to, mode);
        return this.record('partition', `one-way: ${from}'s messages to ${to} cut, ${to} -> ${from} open (${mode})`, [from, to]);
      }
      case 'bridge': {
        const bridgeNode = shuffled[0] as NodeId;
        const rest = shuffled.slice(1);
        const half = Math.ceil(rest.length / 2);
        const left = rest.slice(0, half);
        const right = rest.slice(half);
        this.ctl.bridge(left, bridgeNode, right, mode);
        return this.record('partition', `bridge: [${left.join(',')}] | ${bridgeNode} | [${right.join(',')}] (${mode})`, members);
      }
      default: {
        const minority = shuffled.slice(0, Math.floor(members.length / 2));
        const majority = shuffled.slice(minority.length);
        this.ctl.partition([minority, majority], mode);
        return this.record('partition', `partition [${minority.join(',')}] | [${majority.join(',')}] (${mode})`, minority);
      }
    }
  }

  /** Undoes every fault in progress: heal the network, resume, restart, re-add. */
  async healAll(): Promise<void> {
    const errors: string[] = [];
    const attempt = async (what: string, fn: () => Promise<void> | void): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        errors.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
      }
    };
    if (this.partitioned) {
      this.ctl.heal();
      this.partitioned = false;
    }
    for (const id of [...this.paused]) {
      await attempt(`resume ${id}`, () => this.ctl.resume(id));
      this.paused.delete(id);
    }
    for (const id of [...this.killed]) {
      await attempt(`restart ${id}`, () => this.ctl.restart(id));
      this.killed.delete(id);
    }
    for (const id of [...this.removed]) {
      await attempt(`re-add ${id}`, () => this.ctl.wipeAndReadd(id));
      this.removed.delete(id);
    }
    for (const [id, d] of [...this.damaged]) {
      await attempt(`${d.stage === 'stopped' ? 'restart' : 'replace'} damaged ${id}`, () => this.restartDamaged(id, d));
    }
    const last = this.faults[this.faults.length - 1];
    if (last !== undefined && last.healNs === null) last.healNs = this.now();
    if (errors.length > 0) {
      const msg = errors.join('; ');
      this.log(`nemesis: heal errors: ${msg}`);
      if (last !== undefined) last.error = last.error === undefined ? msg : `${last.error}; ${msg}`;
    }
  }
}
