// A fake KvNode for service and client tests: an in-memory key-value map shared by a fake cluster, a settable
// leader, scripted failures, per-session deduplication (like the real state machine) and a record of calls.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NO_AUTH } from '../../src/kv/auth-store.js';
import type { AuthView } from '../../src/kv/auth-store.js';
import type { KeySpaceDigestAt, KvNode, LeaseTimeToLive, Member, NodeStatus, ReadOptions, ResponseHeader, WriteOptions } from '../../src/node/api.js';
import type { WatchHub } from '../../src/watch/watch-hub.js';
import { NODE_CONFIG_DEFAULTS } from '../../src/node/config.js';
import type { NodeConfig } from '../../src/node/config.js';
import { RaftKvError } from '../../src/shared/errors.js';
import type { ErrorCode } from '../../src/shared/errors.js';
import type { Command, CommandResult, KeyValue, Lease, OpResult, RangeRequest, RangeResult, TxnOp, TxnResult } from '../../src/kv/types.js';
import { compareBytes, isOpenEnd } from '../../src/kv/validate.js';
import type { NodeId } from '../../src/raft/types.js';

export class FakeCluster {
  leaderId: NodeId = 1; // 0 = no leader
  term = 2;
  index = 10; // last applied index (writes bump it)
  revision = 1; // the store revision (each changing write bumps it)
  readonly addresses = new Map<NodeId, string>(); // client addresses, filled in once bound
  readonly store = new Map<string, KeyValue>(); // hex(key) -> kv
  readonly sessions = new Map<string, { seq: number; result: CommandResult; index: number }>();
  readonly applied: { clientId: string; seq: number; command: Command }[] = []; // every command applied
  members: Member[] = [];
}

export interface CallRecord {
  readonly kind: 'write' | 'read';
  readonly opts: WriteOptions | ReadOptions;
  readonly command?: Command;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

export class FakeNode implements KvNode {
  readonly calls: CallRecord[] = [];
  /** Failures to throw on the next calls, in order (then normal service). */
  readonly failures: ErrorCode[] = [];
  /** Apply the next write, then answer it with this error (the answer is lost; a retry must not apply twice). */
  loseNextAnswer: ErrorCode | undefined;
  /** Hold every call until its deadline, then DEADLINE_EXCEEDED. */
  hang = false;
  snapshotBytes = Buffer.from('snapshot payload '.repeat(50_000));
  stopped = false;
  /** Overrides the leader this member claims in NOT_LEADER (to build redirect loops). */
  claimedLeader: { leaderId: NodeId; leaderAddress: string } | undefined;

  constructor(
    readonly id: NodeId,
    readonly cluster: FakeCluster,
  ) {}

  private header(): ResponseHeader {
    return { memberId: this.id, term: this.cluster.term, index: this.cluster.index, leaderId: this.cluster.leaderId };
  }

  private async gate(deadlineMs: number, needLeader: boolean, failures: ErrorCode[] = this.failures): Promise<void> {
    if (this.hang) {
      await new Promise((r) => setTimeout(r, Math.max(0, deadlineMs - Date.now())));
      throw new RaftKvError('DEADLINE_EXCEEDED', 'fake: held until the deadline');
    }
    const failure = failures.shift();
    if (failure !== undefined) throw new RaftKvError(failure, `fake: scripted ${failure}`);
    if (needLeader && this.claimedLeader !== undefined) throw new RaftKvError('NOT_LEADER', `member ${this.id} is not the leader`, this.claimedLeader);
    if (needLeader && this.cluster.leaderId !== this.id) {
      if (this.cluster.leaderId === 0) throw new RaftKvError('UNAVAILABLE', 'no leader');
      throw new RaftKvError('NOT_LEADER', `member ${this.id} is not the leader`, {
        leaderId: this.cluster.leaderId,
        leaderAddress: this.cluster.addresses.get(this.cluster.leaderId) ?? '',
      });
    }
  }

  async write(command: Command, opts: WriteOptions): Promise<{ header: ResponseHeader; result: CommandResult }> {
    this.calls.push({ kind: 'write', opts, command });
    await this.gate(opts.deadlineMs, true);
    const session = opts.clientId === '' ? undefined : this.cluster.sessions.get(opts.clientId);
    if (session !== undefined && session.seq === opts.seq) return { header: { ...this.header(), index: session.index }, result: session.result };
    if (session !== undefined && opts.seq < session.seq) throw new RaftKvError('FAILED_PRECONDITION', 'stale seq');
    const result = this.apply(command);
    this.cluster.applied.push({ clientId: opts.clientId, seq: opts.seq, command });
    this.cluster.index++;
    if (opts.clientId !== '') this.cluster.sessions.set(opts.clientId, { seq: opts.seq, result, index: this.cluster.index });
    const lose = this.loseNextAnswer;
    this.loseNextAnswer = undefined;
    if (lose !== undefined) throw new RaftKvError(lose, 'fake: answer lost');
    return { header: this.header(), result };
  }

  private inRange(key: Uint8Array, r: { key: Uint8Array; end: Uint8Array }): boolean {
    if (r.end.length === 0) return compareBytes(key, r.key) === 0;
    return compareBytes(key, r.key) >= 0 && (isOpenEnd(r.end) || compareBytes(key, r.end) < 0);
  }

  private rangeNow(req: RangeRequest): RangeResult {
    const all = [...this.cluster.store.values()].filter((kv) => this.inRange(kv.key, req)).sort((a, b) => compareBytes(a.key, b.key));
    const limited = req.limit > 0 ? all.slice(0, req.limit) : all;
    return {
      kvs: req.countOnly ? [] : limited.map((kv) => (req.keysOnly ? { ...kv, value: new Uint8Array(0) } : kv)),
      more: limited.length < all.length,
      count: all.length,
      revision: this.cluster.revision,
    };
  }

  /** A model of the state machine for the services' tests: no history, one revision per changing command. */
  private apply(command: Command): CommandResult {
    switch (command.type) {
      case 'put': {
        const revision = ++this.cluster.revision;
        const prev = this.cluster.store.get(hex(command.key));
        this.cluster.store.set(hex(command.key), {
          key: command.key,
          value: command.value,
          createRevision: prev?.createRevision ?? revision,
          modRevision: revision,
          version: (prev?.version ?? 0) + 1,
          lease: 0,
        });
        return { type: 'put', prevKv: command.prevKv ? prev : undefined, revision };
      }
      case 'delete': {
        const gone = [...this.cluster.store.values()].filter((kv) => this.inRange(kv.key, command.range));
        for (const kv of gone) this.cluster.store.delete(hex(kv.key));
        if (gone.length > 0) this.cluster.revision++;
        return { type: 'delete', deleted: gone.length, prevKvs: command.prevKv ? gone : [], revision: this.cluster.revision };
      }
      case 'compact':
        return { type: 'compact', revision: this.cluster.revision };
      case 'alarm':
        return { type: 'alarm', alarms: [], revision: this.cluster.revision };
      case 'auth':
        throw new Error('fake node: auth is not modelled (test/kv/auth-store.test.ts and the integration test cover it)');
      case 'txn': {
        const ok = command.compares.every((c) => {
          const kv = this.cluster.store.get(hex(c.key));
          if (c.target === 'value') return c.op === '=' ? kv !== undefined && compareBytes(kv.value, c.value) === 0 : kv === undefined || compareBytes(kv.value, c.value) !== 0;
          const v = kv === undefined ? 0 : c.target === 'version' ? kv.version : c.target === 'create' ? kv.createRevision : c.target === 'lease' ? kv.lease : kv.modRevision;
          return c.op === '=' ? v === c.number : c.op === '!=' ? v !== c.number : c.op === '<' ? v < c.number : v > c.number;
        });
        const results = (ok ? command.success : command.failure).map((op) => {
          switch (op.type) {
            case 'put':
            case 'delete':
              return this.apply(op) as OpResult;
            case 'range':
              return { type: 'range' as const, result: this.rangeNow(op.request) };
            case 'txn':
              throw new Error('fake node: nested txns are not modelled');
          }
        });
        return { type: 'txn', succeeded: ok, results, revision: this.cluster.revision };
      }
      case 'lease-grant':
      case 'lease-revoke':
      case 'lease-checkpoint':
        throw new Error('fake node: leases are not modelled');
    }
  }

  async read(request: RangeRequest, opts: ReadOptions): Promise<{ header: ResponseHeader; result: RangeResult }> {
    this.calls.push({ kind: 'read', opts });
    await this.gate(opts.deadlineMs, !opts.serializable);
    return { header: this.header(), result: this.rangeNow(request) };
  }

  /** A read-only txn: evaluated like a write (the fake applies nothing for it), recorded as a read. */
  async readTxn(txn: TxnOp, opts: ReadOptions): Promise<{ header: ResponseHeader; result: TxnResult }> {
    this.calls.push({ kind: 'read', opts });
    await this.gate(opts.deadlineMs, !opts.serializable);
    const result = this.apply(txn);
    if (result.type !== 'txn') throw new Error('fake node: a txn answered another result');
    return { header: this.header(), result };
  }

  status(): NodeStatus {
    return {
      id: this.id,
      clusterId: 'test',
      clientAddress: this.cluster.addresses.get(this.id) ?? '',
      role: this.cluster.leaderId === this.id ? 'leader' : 'follower',
      term: this.cluster.term,
      leaderId: this.cluster.leaderId,
      commitIndex: this.cluster.index,
      appliedIndex: this.cluster.index,
      revision: this.cluster.revision,
      compactedRevision: -1,
      lastLogIndex: this.cluster.index,
      snapshotIndex: 0,
      dataSizeBytes: 1234,
      members: this.cluster.members,
      progress: this.cluster.leaderId === this.id ? this.cluster.members.map((m) => ({ id: m.id, match: this.cluster.index - 1, state: 'replicate' })) : [],
    };
  }

  members(): readonly Member[] {
    return this.cluster.members;
  }

  async addMember(member: Member, deadlineMs: number): Promise<readonly Member[]> {
    await this.gate(deadlineMs, true);
    if (this.cluster.members.some((m) => m.id === member.id)) throw new RaftKvError('FAILED_PRECONDITION', `member ${member.id} exists`);
    this.cluster.members = [...this.cluster.members, member];
    return this.cluster.members;
  }

  async removeMember(id: NodeId, deadlineMs: number): Promise<readonly Member[]> {
    await this.gate(deadlineMs, true);
    if (!this.cluster.members.some((m) => m.id === id)) throw new RaftKvError('NOT_FOUND', `no member ${id}`);
    this.cluster.members = this.cluster.members.filter((m) => m.id !== id);
    return this.cluster.members;
  }

  async updateMember(member: Member, deadlineMs: number): Promise<readonly Member[]> {
    await this.gate(deadlineMs, true);
    if (!this.cluster.members.some((m) => m.id === member.id)) throw new RaftKvError('NOT_FOUND', `no member ${member.id}`);
    this.cluster.members = this.cluster.members.map((x) => (x.id === member.id ? { ...member, learner: x.learner } : x));
    return this.cluster.members;
  }

  async promoteLearner(id: NodeId, deadlineMs: number): Promise<readonly Member[]> {
    await this.gate(deadlineMs, true);
    const m = this.cluster.members.find((x) => x.id === id);
    if (m === undefined) throw new RaftKvError('NOT_FOUND', `no member ${id}`);
    if (!m.learner) throw new RaftKvError('FAILED_PRECONDITION', `member ${id} is not a learner`);
    this.cluster.members = this.cluster.members.map((x) => (x.id === id ? { ...x, learner: false } : x));
    return this.cluster.members;
  }

  async transferLeadership(to: NodeId, deadlineMs: number): Promise<void> {
    await this.gate(deadlineMs, true);
    if (!this.cluster.members.some((m) => m.id === to)) throw new RaftKvError('NOT_FOUND', `no member ${to}`);
    this.cluster.leaderId = to;
    this.cluster.term++;
  }

  async saveSnapshot(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'raftkv-fake-snap-'));
    const path = join(dir, 'snap');
    await writeFile(path, this.snapshotBytes);
    return path;
  }

  /** Digests as a test sets them, by index (0: the latest set); NOT_FOUND otherwise. */
  readonly digests = new Map<number, { lane1: number; lane2: number; count: number }>();
  corruptReasons: string[] = []; // raiseCorrupt() calls
  /**
   * Failures keySpaceDigest() throws on its next calls, in order: a queue of its own, so the peer corrupt check
   * runServer starts does not take the failures a test scripted for KV calls.
   */
  readonly digestFailures: ErrorCode[] = [];
  readonly digestCalls: number[] = []; // the index of every keySpaceDigest() call

  async keySpaceDigest(index: number, deadlineMs: number): Promise<KeySpaceDigestAt> {
    this.digestCalls.push(index);
    await this.gate(deadlineMs, false, this.digestFailures);
    const at = index === 0 ? Math.max(0, ...this.digests.keys()) : index;
    const d = this.digests.get(at);
    if (d === undefined) throw new RaftKvError('NOT_FOUND', `fake member ${this.id} has no digest at ${at}`);
    return { memberId: this.id, index: at, ...d };
  }

  defragment(): Promise<{ beforeBytes: number; afterBytes: number; tookMs: number }> {
    return Promise.resolve({ beforeBytes: 0, afterBytes: 0, tookMs: 0 });
  }

  /** The fake raises no alarms. */
  alarms(): readonly [] {
    return [];
  }

  /** Authentication stays off in the fake. */
  auth(): AuthView {
    return NO_AUTH;
  }

  // Watches and leases are not modelled: the services' tests of them run real nodes.
  readonly minLeaseTtlSeconds = 2;
  watchHub(): WatchHub {
    throw new RaftKvError('UNAVAILABLE', 'fake node: no watches');
  }
  leaseKeepAlive(): Promise<number | undefined> {
    return Promise.reject(new RaftKvError('UNAVAILABLE', 'fake node: no leases'));
  }
  leaseTimeToLive(): Promise<LeaseTimeToLive | undefined> {
    return Promise.reject(new RaftKvError('UNAVAILABLE', 'fake node: no leases'));
  }
  leases(): readonly Lease[] {
    return [];
  }
  leaseKeys(_id: number): Promise<readonly Uint8Array[]> {
    return Promise.resolve([]);
  }

  /** The fake applies every write at once. */
  waitApplied(): Promise<void> {
    return Promise.resolve();
  }

  /** The fake applies compactions without history: nothing to wait for. */
  whenCompacted(): Promise<void> {
    return Promise.resolve();
  }

  raiseCorrupt(reason: string): void {
    this.corruptReasons.push(reason);
  }

  stop(): Promise<void> {
    this.stopped = true;
    return Promise.resolve();
  }
}

export function testConfig(id: NodeId, dataDir: string, overrides: Partial<NodeConfig> = {}): NodeConfig {
  return {
    id,
    clusterId: 'test',
    dataDir,
    peerListen: '127.0.0.1:0',
    clientListen: '127.0.0.1:0',
    advertisePeer: '127.0.0.1:0',
    advertiseClient: '127.0.0.1:0',
    initialClusterState: 'new',
    initialMembers: [],
    ...NODE_CONFIG_DEFAULTS,
    logLevel: 'error',
    ...overrides,
  };
}
