// A synchronous fake network for scripted scenarios: nodes persist their Readies into MemoryStorage at once,
// messages queue until delivered by stabilize() (or deliverOne()), and faults are drop rules.
// Every step is followed by the per-node invariant checks.
import { RawNode } from '../../src/raft/raw-node.js';
import { MemoryStorage } from '../../src/raft/memory-storage.js';
import { defaultRaftConfig } from '../../src/raft/config.js';
import type { RaftConfig } from '../../src/raft/config.js';
import { seededRng } from '../../src/raft/rng.js';
import { decodeConfChange } from '../../src/raft/conf-change.js';
import { NodeInvariantChecker, checkLogMatching } from '../../src/raft/invariants.js';
import { describeMessage } from '../../src/raft/describe.js';
import type { ConfState, Entry, Message, MessageType, NodeId, ReadState, Rng, Snapshot } from '../../src/raft/types.js';

export interface TestNode {
  readonly id: NodeId;
  raw: RawNode;
  storage: MemoryStorage;
  checker: NodeInvariantChecker;
  /** The state machine: data of every applied normal entry, in order (the no-op is skipped). */
  applied: string[];
  /** Index of every applied entry (normal and conf-change), to check nothing is applied twice. */
  appliedIndexes: number[];
  readStates: ReadState[];
  /** State machine contents at each snapshot this node created, keyed by snapshot index. */
  snapshots: Map<number, string[]>;
  confState: ConfState;
}

export type DropRule = (m: Message) => boolean;

export interface NetworkOptions {
  seed?: number;
  config?: Partial<Omit<RaftConfig, 'id' | 'rng'>>;
  /** Per node overrides. */
  configFor?: (id: NodeId) => Partial<Omit<RaftConfig, 'id' | 'rng'>>;
  learners?: readonly NodeId[];
}

const dec = new TextDecoder();
export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

export class Network {
  readonly nodes = new Map<NodeId, TestNode>();
  /** Messages in flight, in send order. */
  queue: Message[] = [];
  private readonly dropRules: DropRule[] = [];
  private readonly cuts = new Set<string>();
  private readonly isolated = new Set<NodeId>();
  /** Every message delivered (for assertions on traffic). */
  readonly delivered: Message[] = [];
  readonly trace: string[] = [];
  /** Whether the out-of-band snapshot transfer succeeds (reportSnapshot's argument). */
  snapshotTransferOk = true;
  readonly seed: number;
  private readonly opts: NetworkOptions;

  constructor(voters: readonly NodeId[], opts: NetworkOptions = {}) {
    this.seed = opts.seed ?? 1;
    this.opts = opts;
    const cs: ConfState = { voters: [...voters], learners: [...(opts.learners ?? [])] };
    for (const id of [...voters, ...(opts.learners ?? [])]) this.addNode(id, MemoryStorage.fromConfState(cs));
  }

  private configFor(id: NodeId, applied = 0): RaftConfig {
    return {
      ...defaultRaftConfig(id, seededRng(this.seed * 1000 + id)),
      ...this.opts.config,
      ...(this.opts.configFor?.(id) ?? {}),
      applied,
    };
  }

  /** Adds a node with the given storage (a new empty one: a joining node without membership). */
  addNode(id: NodeId, storage: MemoryStorage = new MemoryStorage()): TestNode {
    const raw = new RawNode(this.configFor(id), storage);
    const n: TestNode = {
      id,
      raw,
      storage,
      checker: new NodeInvariantChecker(),
      applied: [],
      appliedIndexes: [],
      readStates: [],
      snapshots: new Map(),
      confState: storage.initialState().confState,
    };
    this.nodes.set(id, n);
    return n;
  }

  /** Crash and restart from storage: the state machine is rebuilt from the last snapshot, entries re-applied. */
  restart(id: NodeId): TestNode {
    const old = this.node(id);
    const snap = old.storage.snapshot();
    const raw = new RawNode(this.configFor(id, snap.metadata.index), old.storage);
    const applied = [...this.findSnapshotData(snap)];
    const n: TestNode = { ...old, raw, applied, appliedIndexes: [], readStates: [], confState: snap.metadata.confState };
    n.checker.onRestart();
    this.nodes.set(id, n);
    for (const m of this.queue) if (m.type === 'snap' && m.to === id) this.lostSnapshots.push(m);
    this.queue = this.queue.filter((m) => m.to !== id && m.from !== id);
    return n;
  }

  node(id: NodeId): TestNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  raw(id: NodeId): RawNode {
    return this.node(id).raw;
  }

  // ---- faults ----------------------------------------------------------------------------------------

  drop(rule: DropRule): void {
    this.dropRules.push(rule);
  }

  dropType(type: MessageType, from?: NodeId, to?: NodeId): void {
    this.drop((m) => m.type === type && (from === undefined || m.from === from) && (to === undefined || m.to === to));
  }

  cut(a: NodeId, b: NodeId): void {
    this.cuts.add(`${a}-${b}`);
    this.cuts.add(`${b}-${a}`);
  }

  isolate(id: NodeId): void {
    this.isolated.add(id);
  }

  heal(): void {
    this.cuts.clear();
    this.isolated.clear();
    this.dropRules.length = 0;
    this.transform = undefined;
  }

  private dropped(m: Message): boolean {
    if (this.isolated.has(m.from) || this.isolated.has(m.to)) return true;
    if (this.cuts.has(`${m.from}-${m.to}`)) return true;
    return this.dropRules.some((r) => r(m));
  }

  // ---- driving ---------------------------------------------------------------------------------------

  /** Rewrites messages as they are sent (e.g. to strip entries); cleared by heal(). */
  transform: ((m: Message) => Message) | undefined = undefined;

  /** Snapshot transfers that were lost: their senders learn it (reportSnapshot false) at the next step. */
  private lostSnapshots: Message[] = [];

  send(msgs: readonly Message[]): void {
    for (const m of msgs) {
      if (this.dropped(m)) {
        if (m.type === 'snap') this.lostSnapshots.push(m);
        continue;
      }
      this.queue.push(this.transform === undefined ? m : this.transform(m));
    }
  }

  /** A transport reports a failed snapshot stream; ordinary messages are lost silently. */
  private reportLostSnapshots(): boolean {
    const lost = this.lostSnapshots;
    this.lostSnapshots = [];
    for (const m of lost) this.nodes.get(m.from)?.raw.reportSnapshot(m.to, false);
    return lost.length > 0;
  }

  /** Runs every node's Ready (persist, send, apply, advance) until none has one. */
  processReadies(): boolean {
    let any = this.reportLostSnapshots();
    for (let progress = true; progress; ) {
      progress = false;
      for (const n of this.nodes.values()) {
        if (!n.raw.hasReady()) continue;
        progress = any = true;
        this.handleReady(n);
      }
    }
    return any;
  }

  private handleReady(n: TestNode): void {
    const rd = n.raw.ready();
    this.send(rd.messages);
    if (rd.snapshot !== undefined) {
      n.storage.applySnapshot(rd.snapshot);
      const leaderState = this.findSnapshotData(rd.snapshot);
      n.applied = [...leaderState];
      n.confState = rd.snapshot.metadata.confState;
    }
    n.storage.append(rd.entries);
    if (rd.hardState !== undefined) n.storage.setHardState(rd.hardState);
    this.send(rd.messagesAfterPersist);
    for (const e of rd.committedEntries) this.apply(n, e);
    n.readStates.push(...rd.readStates);
    n.raw.advance(rd);
    this.checkNode(n);
  }

  private findSnapshotData(s: Snapshot): string[] {
    if (s.metadata.index === 0) return [];
    for (const other of this.nodes.values()) {
      const data = other.snapshots.get(s.metadata.index);
      if (data !== undefined) return data;
    }
    throw new Error(`no node holds snapshot data for index ${s.metadata.index}`);
  }

  /** The first entry applied at each index by any node: every node must apply the same one. */
  private readonly appliedByIndex = new Map<number, { node: NodeId; term: number; data: string }>();

  private apply(n: TestNode, e: Entry): void {
    const data = dec.decode(e.data);
    const first = this.appliedByIndex.get(e.index);
    if (first === undefined) {
      this.appliedByIndex.set(e.index, { node: n.id, term: e.term, data });
    } else if (first.term !== e.term || first.data !== data) {
      throw new Error(`applied entries differ at index ${e.index}: ${first.term}/${first.data} on ${first.node}, ${e.term}/${data} on ${n.id} (seed ${this.seed})`);
    }
    n.appliedIndexes.push(e.index);
    if (e.type === 'conf-change') {
      n.confState = n.raw.applyConfChange(decodeConfChange(e.data));
    } else if (e.data.byteLength > 0) {
      n.applied.push(dec.decode(e.data));
    }
  }

  /** The application takes a snapshot at its applied index and compacts the log up to it. */
  compact(id: NodeId): Snapshot {
    const n = this.node(id);
    const index = n.raw.status().applied;
    const snap = n.storage.createSnapshot(index, n.confState);
    n.snapshots.set(index, [...n.applied]);
    n.storage.compact(index);
    return snap;
  }

  private checkNode(n: TestNode): void {
    n.checker.check(n.raw);
  }

  /** Delivers the first queued message; returns false if the queue is empty. */
  deliverOne(): boolean {
    const m = this.queue.shift();
    if (m === undefined) return false;
    this.deliver(m);
    return true;
  }

  private deliver(m: Message): void {
    const n = this.nodes.get(m.to);
    if (n === undefined) return;
    this.delivered.push(m);
    this.trace.push(describeMessage(m));
    n.raw.step(m);
    this.checkNode(n);
    if (m.type === 'snap') {
      // The payload streamed out of band: tell the sender how it went.
      const sender = this.nodes.get(m.from);
      sender?.raw.reportSnapshot(m.to, this.snapshotTransferOk);
    }
  }

  /** Processes Readies and delivers messages until quiet. */
  stabilize(maxSteps = 100_000): void {
    for (let i = 0; i < maxSteps; i++) {
      const readies = this.processReadies();
      const msg = this.deliverOne();
      if (!readies && !msg) {
        this.checkCrossNode();
        return;
      }
    }
    throw new Error(`network did not stabilize in ${maxSteps} steps (seed ${this.seed})`);
  }

  /**
   * Like stabilize(), but delivers queued messages in a random order, dropping and duplicating some: the
   * adversarial schedule of the randomized tests. Returns when quiet.
   */
  stabilizeChaotic(rng: Rng, opts: { dropPct: number; dupPct: number }, maxSteps = 100_000): void {
    for (let i = 0; i < maxSteps; i++) {
      const readies = this.processReadies();
      if (this.queue.length === 0) {
        if (!readies) {
          this.checkCrossNode();
          return;
        }
        continue;
      }
      const k = rng.int(this.queue.length);
      const [m] = this.queue.splice(k, 1);
      if (m === undefined) continue;
      if (rng.int(100) < opts.dropPct) {
        if (m.type === 'snap') this.lostSnapshots.push(m);
        continue;
      }
      if (rng.int(100) < opts.dupPct) this.queue.push(m);
      this.deliver(m);
    }
    throw new Error(`network did not stabilize in ${maxSteps} steps (seed ${this.seed})`);
  }

  /** Ticks every node (or the given ones) once, then stabilizes. */
  tick(ids?: readonly NodeId[], times = 1): void {
    for (let t = 0; t < times; t++) {
      for (const n of this.nodes.values()) if (ids === undefined || ids.includes(n.id)) n.raw.tick();
      this.stabilize();
    }
  }

  /**
   * Ticks only `id` (a leader) until it sends heartbeats, then stabilizes: with lazy commit broadcast
   * (the default) this is how followers learn a commit no later append carried.
   */
  heartbeat(id: NodeId): void {
    for (let t = 0; t < this.configFor(id).heartbeatIntervalTicks; t++) this.raw(id).tick();
    this.stabilize();
  }

  /** Ticks all nodes until a leader is elected (returns it) or `maxTicks` pass. */
  tickUntilLeader(maxTicks = 200, among?: readonly NodeId[]): NodeId {
    for (let t = 0; t < maxTicks; t++) {
      const l = this.leader(among);
      if (l !== undefined) return l;
      this.tick();
    }
    throw new Error(`no leader after ${maxTicks} ticks (seed ${this.seed})`);
  }

  /** Campaigns `id` and stabilizes. */
  elect(id: NodeId): void {
    this.raw(id).campaign();
    this.stabilize();
  }

  /** The unique leader of the highest term, if any. */
  leader(among?: readonly NodeId[]): NodeId | undefined {
    let best: { id: NodeId; term: number } | undefined;
    for (const n of this.nodes.values()) {
      if (among !== undefined && !among.includes(n.id)) continue;
      const s = n.raw.status();
      if (s.role === 'leader' && (best === undefined || s.term > best.term)) best = { id: n.id, term: s.term };
    }
    return best?.id;
  }

  propose(id: NodeId, data: string): { index: number; term: number } {
    const r = this.raw(id).propose(enc(data));
    this.stabilize();
    return r;
  }

  /** Election safety and log matching across all nodes; the same entry applied at every index. */
  checkCrossNode(): void {
    const leadersByTerm = new Map<number, NodeId>();
    const nodes = [...this.nodes.values()];
    for (const n of nodes) {
      const s = n.raw.status();
      if (s.role !== 'leader') continue;
      const other = leadersByTerm.get(s.term);
      if (other !== undefined) throw new Error(`two leaders in term ${s.term}: ${other} and ${n.id} (seed ${this.seed})`);
      leadersByTerm.set(s.term, n.id);
    }
    for (let i = 0; i < nodes.length; i++) {
      for (let j = i + 1; j < nodes.length; j++) {
        const a = nodes[i];
        const b = nodes[j];
        if (a === undefined || b === undefined) continue;
        checkLogMatching(a.raw, b.raw);
        const len = Math.min(a.applied.length, b.applied.length);
        for (let k = 0; k < len; k++) {
          if (a.applied[k] !== b.applied[k]) throw new Error(`state machines differ at ${k} on ${a.id} and ${b.id} (seed ${this.seed})`);
        }
      }
    }
    for (const n of nodes) {
      const seen = new Set<number>();
      for (const i of n.appliedIndexes) {
        if (seen.has(i)) throw new Error(`node ${n.id} applied index ${i} twice`);
        seen.add(i);
      }
    }
  }

  /** Drops all queued messages. */
  clearQueue(): void {
    this.queue = [];
  }

  /** Messages queued now of the given type. */
  queued(type?: MessageType): Message[] {
    return this.queue.filter((m) => type === undefined || m.type === type);
  }
}

export function describeQueue(net: Network): string {
  return net.queue.map(describeMessage).join('\n');
}
