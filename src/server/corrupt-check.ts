// The peer corrupt check (etcd's initial and periodic corruption checks): members compare their key-space digests
// with each other. The state machine's own rescan (src/kv/state-machine.ts, at open and every interval) catches a
// store that no longer matches the digest apply kept; this catches a member whose digest itself went wrong (a
// bug, a record misread during apply), which only another member can see.
//
// When: once after start (the initial check: when this member has applied up to the commit index it had at
// start, so it compares what it recovered, not an empty state; or after INITIAL_APPLY_WAIT_MS if it cannot get
// there), then every `intervalMs` (NodeConfig.corruptCheckIntervalMs; 0 turns both off). One check at a time.
//
// A check: take this member's current digest (index i, its applied index; nothing is checked at i = 0), ask
// every other member (voters and learners, at their client address, HashKV) for its digest at i, each bounded by
// `peerTimeoutMs` (a lagging member waits until it has applied i, up to that deadline). Peers that do not answer
// (UNAVAILABLE, DEADLINE_EXCEEDED, NOT_FOUND: they no longer remember i, an answer for another index or member)
// are left out. Of the members that answered, this one included:
//   - a strict majority agrees on a digest other than this member's: raiseCorrupt() (the CORRUPT alarm: this
//     member stops; the reason names i, both digests and the members of that majority)
//   - this member is in a strict majority but some peers differ: an error log naming them (each of them raises
//     the alarm on itself at its own check)
//   - no digest has a strict majority (a 1-1 split of two answers, say): an error log; nothing raised, since
//     nobody can tell which side diverged
//   - all agree: an info log.
// A member only ever raises the alarm on itself; peers are never stopped from here.
//
// Timers and the deadlines handed to the node go through the injected Clock (the node's). The gRPC call to a
// peer also carries a wall-clock deadline so that the peer's own wait is bounded.
import { Client, credentials, Metadata } from '@grpc/grpc-js';
import type { ChannelCredentials, ClientUnaryCall, ServiceError } from '@grpc/grpc-js';
import type { pino } from 'pino';
import type { DigestValue } from '../kv/key-space-digest.js';
import { digestsEqual, formatDigest } from '../kv/key-space-digest.js';
import type { KeySpaceDigestAt, KvNode, Member } from '../node/api.js';
import type { CancelTimer, Clock } from '../shared/clock.js';
import { MAX_TIMER_DELAY_MS } from '../shared/clock.js';
import { RaftKvError } from '../shared/errors.js';
import { ADMIN_METHODS } from '../protocol/proto.js';
import type { WireHashKvResponse } from '../protocol/proto.js';
import type { Index, NodeId } from '../raft/types.js';
import { fromGrpcError } from '../protocol/wire-errors.js';

// How long one peer has to answer: enough for a follower a few heartbeats behind to apply index i; a member
// further behind is left out of this round rather than holding it up.
export const DEFAULT_PEER_DIGEST_TIMEOUT_MS = 5_000;
// How long the initial check waits for this member to apply up to its commit index at start (replaying the WAL
// takes seconds even for a large log); past it the check runs with whatever has been applied.
export const INITIAL_APPLY_WAIT_MS = 60_000;
// When every member starts together, the first up finds no peer to ask: the initial check tries again this
// often, this many times (a minute in all), before leaving it to the periodic check.
export const INITIAL_RETRY_MS = 10_000;
export const INITIAL_ATTEMPTS = 7;
// This member's own current digest is answered at once by a running node; the bound only covers a stuck loop.
const OWN_DIGEST_TIMEOUT_MS = 5_000;

/** One member's digest at the index being checked. */
export interface MemberDigest {
  readonly id: NodeId;
  readonly digest: DigestValue;
}

/** What the digests of the members that answered say about this member (`self`). */
export type Judgement =
  | { readonly kind: 'agreed' } // every answer equals this member's digest
  | { readonly kind: 'peers-diverged'; readonly agreeing: readonly NodeId[]; readonly diverged: readonly MemberDigest[] } // self in a strict majority
  | { readonly kind: 'no-majority'; readonly groups: readonly (readonly MemberDigest[])[] } // no digest held by a strict majority
  | { readonly kind: 'corrupt'; readonly majority: DigestValue; readonly agreeing: readonly NodeId[] }; // a strict majority holds another digest

/**
 * The decision rule (pure): among `self` and the `peers` that answered at one index, a digest held by more than
 * half of them is the majority's. Self differs from a majority: corrupt. Self is the majority: the others
 * diverged. Neither: no majority.
 */
export function judgeDigests(self: MemberDigest, peers: readonly MemberDigest[]): Judgement {
  const all = [self, ...peers];
  const groups: MemberDigest[][] = [];
  for (const m of all) {
    const g = groups.find((x) => x[0] !== undefined && digestsEqual(x[0].digest, m.digest));
    if (g === undefined) groups.push([m]);
    else g.push(m);
  }
  if (groups.length === 1) return { kind: 'agreed' };
  const majority = groups.find((g) => 2 * g.length > all.length);
  if (majority === undefined) return { kind: 'no-majority', groups };
  const first = majority[0];
  if (first === undefined) throw new Error('corrupt check: an empty digest group');
  const agreeing = majority.map((m) => m.id);
  if (!agreeing.includes(self.id)) return { kind: 'corrupt', majority: first.digest, agreeing };
  return { kind: 'peers-diverged', agreeing, diverged: all.filter((m) => !digestsEqual(m.digest, self.digest)) };
}

/** A peer's answer that could not be used, and why. */
export interface SkippedPeer {
  readonly id: NodeId;
  readonly address: string;
  readonly code: string; // a RaftKvError code
  readonly message: string;
}

/** What one check found (tests and logs). */
export type CheckOutcome =
  | { readonly kind: 'skipped'; readonly why: string } // no comparison made (nothing applied, own digest failed, stopping)
  | ({ readonly index: Index; readonly own: DigestValue; readonly answered: readonly MemberDigest[]; readonly skipped: readonly SkippedPeer[] } & Judgement);

/** One call to a peer: its answer and a way to give it up. */
export interface PeerDigestCall {
  readonly answer: Promise<KeySpaceDigestAt>; // rejects with RaftKvError
  cancel(): void;
}

/** How the check reaches other members (the gRPC admin client in production; tests inject their own). */
export interface PeerDigests {
  /** Asks the member serving `address` for its digest at `index`, bounded on the wire by `timeoutMs`. */
  ask(address: string, index: Index, timeoutMs: number): PeerDigestCall;
  /** Drops connections to addresses not in `keep` (members removed since). */
  retain(keep: ReadonlySet<string>): void;
  close(): void;
}

/** PeerDigests over HashKV on the generated admin client (src/protocol/proto.ts): one channel per peer address. */
export class GrpcPeerDigests implements PeerDigests {
  /** `channelCredentials`: how other members' client ports are dialled (client TLS); default plaintext. */
  constructor(private readonly channelCredentials: ChannelCredentials = credentials.createInsecure()) {}

  private readonly clients = new Map<string, Client>(); // one channel per peer client address, created lazily

  ask(address: string, index: Index, timeoutMs: number): PeerDigestCall {
    const m = ADMIN_METHODS.hashKv;
    let call: ClientUnaryCall | undefined;
    const answer = new Promise<KeySpaceDigestAt>((resolve, reject) => {
      // gRPC deadlines are wall-clock; the checker bounds its own wait on its Clock as well.
      call = this.clientFor(address).makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, { index }, new Metadata(), { deadline: Date.now() + timeoutMs }, (err: ServiceError | null, res?: WireHashKvResponse) => {
        if (err) reject(fromGrpcError(err));
        else if (res === undefined) reject(new RaftKvError('UNAVAILABLE', `${address}: empty HashKV response`));
        else resolve({ memberId: res.memberId, index: res.index, lane1: res.hashLane1, lane2: res.hashLane2, count: res.keyCount });
      });
    });
    return { answer, cancel: () => call?.cancel() };
  }

  retain(keep: ReadonlySet<string>): void {
    for (const [address, c] of this.clients) {
      if (keep.has(address)) continue;
      c.close();
      this.clients.delete(address);
    }
  }

  close(): void {
    this.retain(new Set());
  }

  private clientFor(address: string): Client {
    let c = this.clients.get(address);
    if (c === undefined) {
      c = new Client(address, this.channelCredentials, {
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 1000,
        'grpc.enable_retries': 0,
      });
      this.clients.set(address, c);
    }
    return c;
  }
}

export interface CorruptCheckOptions {
  readonly node: KvNode;
  readonly clock: Clock; // the node's clock: the timers here, and the deadlines handed to the node
  readonly logger: pino.Logger;
  readonly intervalMs: number; // between periodic checks; 0 = no checks at all (neither initial nor periodic)
  readonly peers?: PeerDigests; // default GrpcPeerDigests
  readonly peerTimeoutMs?: number; // default DEFAULT_PEER_DIGEST_TIMEOUT_MS
  readonly initialApplyWaitMs?: number; // default INITIAL_APPLY_WAIT_MS
}

type PeerAnswer = { readonly ok: true; readonly member: MemberDigest } | { readonly ok: false; readonly skipped: SkippedPeer };

export class CorruptCheck {
  private readonly node: KvNode;
  private readonly clock: Clock;
  private readonly log: pino.Logger;
  private readonly intervalMs: number;
  private readonly peers: PeerDigests;
  private readonly peerTimeoutMs: number;
  private readonly initialApplyWaitMs: number;
  private cancelInterval: CancelTimer | undefined; // the periodic check's timer, while started
  private current: Promise<CheckOutcome> | undefined; // the check in flight, if any (one at a time)
  private readonly giveUps = new Set<() => void>(); // bounded waits in flight: stop() ends them at once
  private started = false; // start() was called (once only)
  private stopped = false; // stop() was called, or this member raised the alarm on itself

  constructor(opts: CorruptCheckOptions) {
    this.node = opts.node;
    this.clock = opts.clock;
    this.log = opts.logger;
    if (!Number.isSafeInteger(opts.intervalMs) || opts.intervalMs < 0 || opts.intervalMs > MAX_TIMER_DELAY_MS) {
      throw new RaftKvError('INVALID_ARGUMENT', `corrupt check: interval must be a whole number of ms in 0..${MAX_TIMER_DELAY_MS}, got ${opts.intervalMs}`);
    }
    this.intervalMs = opts.intervalMs;
    this.peers = opts.peers ?? new GrpcPeerDigests();
    this.peerTimeoutMs = opts.peerTimeoutMs ?? DEFAULT_PEER_DIGEST_TIMEOUT_MS;
    this.initialApplyWaitMs = opts.initialApplyWaitMs ?? INITIAL_APPLY_WAIT_MS;
  }

  /** Starts the initial check and the periodic timer (a no-op when the interval is 0). Call once, after the node started. */
  start(): void {
    if (this.started) throw new Error('corrupt check: started twice');
    this.started = true;
    if (this.intervalMs === 0 || this.stopped) return;
    this.current = this.track(this.initialCheck());
    this.cancelInterval = this.clock.setInterval(() => {
      if (this.current !== undefined) {
        this.log.debug('corrupt check: the previous check is still running; skipping this round');
        return;
      }
      void this.checkNow();
    }, this.intervalMs);
  }

  /** Runs one check now (or returns the one in flight). Never rejects. */
  checkNow(): Promise<CheckOutcome> {
    this.current ??= this.track(this.check());
    return this.current;
  }

  /** The check in flight, if any (tests await it after moving the clock). */
  get inFlight(): Promise<CheckOutcome> | undefined {
    return this.current;
  }

  /** Cancels the timer and every wait in flight, waits for the running check to finish, closes peer connections. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.cancelInterval?.();
    this.cancelInterval = undefined;
    for (const giveUp of [...this.giveUps]) giveUp();
    if (this.current !== undefined) await this.current;
    this.peers.close();
  }

  /** `p` as the check in flight until it settles; a failure nothing above expected (a bug) is logged, not thrown. */
  private track(p: Promise<CheckOutcome>): Promise<CheckOutcome> {
    const tracked: Promise<CheckOutcome> = p
      .catch((err: unknown): CheckOutcome => {
        this.log.error({ err }, 'corrupt check failed');
        return { kind: 'skipped', why: `failed: ${err instanceof Error ? err.message : String(err)}` };
      })
      .then((outcome) => {
        if (this.current === tracked) this.current = undefined;
        return outcome;
      });
    return tracked;
  }

  private async initialCheck(): Promise<CheckOutcome> {
    let target: Index | undefined;
    try {
      target = this.node.status().commitIndex;
      // Resolves once this member has applied `target` (the node's own wait); the digest itself is not used.
      await this.within('applying up to the commit index at start', this.node.keySpaceDigest(target, this.clock.now() + this.initialApplyWaitMs), this.initialApplyWaitMs);
    } catch (err) {
      // NOT_FOUND: `target` is applied and already out of the digest history: fine. Otherwise check anyway.
      const e = asError(err);
      if (this.stopped) return { kind: 'skipped', why: 'stopping' };
      if (e.code !== 'NOT_FOUND') this.log.warn({ target, err: e.message }, 'corrupt check: did not apply up to the commit index at start; checking what is applied');
    }
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.check();
      const nobodyAnswered = outcome.kind !== 'skipped' && outcome.answered.length === 0 && outcome.skipped.length > 0;
      if (!nobodyAnswered || attempt >= INITIAL_ATTEMPTS || this.stopped) return outcome;
      try {
        await this.within('waiting for peers to start', new Promise<never>(() => undefined), INITIAL_RETRY_MS);
      } catch {
        // the wait ended (its timeout, or stop()): try again, or return at the top of the loop when stopping
        if (this.stopped) return { kind: 'skipped', why: 'stopping' };
      }
    }
  }

  private async check(): Promise<CheckOutcome> {
    if (this.stopped) return { kind: 'skipped', why: 'stopping' };
    let own: KeySpaceDigestAt;
    try {
      own = await this.within('own digest', this.node.keySpaceDigest(0, this.clock.now() + OWN_DIGEST_TIMEOUT_MS), OWN_DIGEST_TIMEOUT_MS);
    } catch (err) {
      const e = asError(err);
      if (!this.stopped) this.log.warn({ err: e.message }, 'corrupt check: cannot read this member\'s own digest; skipping this round');
      return { kind: 'skipped', why: `own digest: ${e.code} ${e.message}` };
    }
    if (own.index === 0) {
      this.log.debug('corrupt check: nothing applied yet; skipping this round');
      return { kind: 'skipped', why: 'nothing applied yet' };
    }
    let members: readonly Member[];
    try {
      members = this.node.members();
    } catch (err) {
      return { kind: 'skipped', why: `member list: ${asError(err).message}` };
    }
    const others = members.filter((m) => m.id !== this.node.id);
    this.peers.retain(new Set(others.map((m) => m.clientAddress)));
    const answers = await Promise.all(others.map((m) => this.askPeer(m, own.index)));
    if (this.stopped) return { kind: 'skipped', why: 'stopping' };
    const answered = answers.flatMap((a) => (a.ok ? [a.member] : []));
    const skipped = answers.flatMap((a) => (a.ok ? [] : [a.skipped]));
    const self: MemberDigest = { id: this.node.id, digest: own };
    const judgement = judgeDigests(self, answered);
    const outcome: CheckOutcome = { ...judgement, index: own.index, own: digestOf(own), answered, skipped };
    this.act(self, outcome);
    return outcome;
  }

  private act(self: MemberDigest, outcome: CheckOutcome): void {
    if (outcome.kind === 'skipped') return;
    const at = outcome.index;
    const n = outcome.answered.length + 1;
    const unanswered = outcome.skipped.map((s) => s.id);
    switch (outcome.kind) {
      case 'agreed':
        if (n === 1) {
          const fields = { index: at, digest: formatDigest(self.digest), unanswered };
          if (unanswered.length === 0) this.log.debug(fields, 'corrupt check: no other member to compare with');
          else this.log.warn(fields, `corrupt check: no other member answered at index ${at}; nothing compared`);
        } else {
          this.log.info({ index: at, digest: formatDigest(self.digest), members: n, unanswered }, `corrupt check: the ${n} members that answered agree at index ${at}`);
        }
        return;
      case 'peers-diverged':
        this.log.error(
          { index: at, digest: formatDigest(self.digest), agreeing: outcome.agreeing, diverged: outcome.diverged.map((m) => ({ id: m.id, digest: formatDigest(m.digest) })) },
          `corrupt check: at index ${at} ${list(outcome.diverged.map((m) => `member ${m.id} has ${formatDigest(m.digest)}`))}, ` +
            `but the majority (${idsText(outcome.agreeing)}, this one included) has ${formatDigest(self.digest)}; each of them raises CORRUPT on its own check`,
        );
        return;
      case 'no-majority':
        this.log.error(
          { index: at, digest: formatDigest(self.digest), groups: outcome.groups.map((g) => ({ digest: formatDigest((g[0] ?? self).digest), members: g.map((m) => m.id) })) },
          `corrupt check: at index ${at} the ${n} members that answered disagree and no digest has a majority ` +
            `(${list(outcome.groups.map((g) => `${idsText(g.map((m) => m.id))}: ${formatDigest((g[0] ?? self).digest)}`))}); nothing raised: it cannot tell which diverged`,
        );
        return;
      case 'corrupt': {
        const reason =
          `member ${self.id}'s key-space digest at applied index ${at} is ${formatDigest(self.digest)}, but ${outcome.agreeing.length} of the ${n} members ` +
          `that answered (${idsText(outcome.agreeing)}) have ${formatDigest(outcome.majority)} there`;
        this.stopped = true; // this member stops: no further checks
        this.cancelInterval?.();
        this.cancelInterval = undefined;
        this.node.raiseCorrupt(reason);
        return;
      }
      default: {
        const never: never = outcome;
        throw new Error(`corrupt check: unexpected outcome ${JSON.stringify(never)}`);
      }
    }
  }

  private async askPeer(m: Member, index: Index): Promise<PeerAnswer> {
    const skip = (code: string, message: string): PeerAnswer => {
      const s: SkippedPeer = { id: m.id, address: m.clientAddress, code, message };
      const fields = { peer: m.id, address: m.clientAddress, index, code, err: message };
      // NOT_FOUND is expected of a member far ahead (its digest history no longer reaches `index`).
      if (code === 'NOT_FOUND') this.log.debug(fields, `corrupt check: member ${m.id} no longer remembers index ${index}; left out`);
      else if (!this.stopped) this.log.warn(fields, `corrupt check: member ${m.id} did not answer (${code}); left out`);
      return { ok: false, skipped: s };
    };
    // Added through etcd's MemberAdd and not started yet (member-publish.ts): no address to ask.
    if (m.clientAddress === '') {
      this.log.debug({ peer: m.id, index }, `corrupt check: member ${m.id} has not published a client address yet; left out`);
      return { ok: false, skipped: { id: m.id, address: '', code: 'UNAVAILABLE', message: 'unstarted: no client address yet' } };
    }
    let d: KeySpaceDigestAt;
    try {
      const call = this.peers.ask(m.clientAddress, index, this.peerTimeoutMs);
      d = await this.within(`member ${m.id} at ${m.clientAddress}`, call.answer, this.peerTimeoutMs, () => call.cancel());
    } catch (err) {
      const e = asError(err);
      return skip(e.code, e.message);
    }
    if (d.memberId !== m.id) return skip('CLUSTER_MISMATCH', `${m.clientAddress} answered as member ${d.memberId}, not ${m.id}`);
    if (d.index !== index) return skip('FAILED_PRECONDITION', `answered for index ${d.index}, not ${index}`);
    return { ok: true, member: { id: m.id, digest: digestOf(d) } };
  }

  /** `p`, or DEADLINE_EXCEEDED after `timeoutMs` on the clock, or UNAVAILABLE when stop() is called first. */
  private within<T>(what: string, p: Promise<T>, timeoutMs: number, onGiveUp?: () => void): Promise<T> {
    if (this.stopped) {
      p.catch(() => undefined); // given up before it started: its outcome no longer matters
      onGiveUp?.();
      return Promise.reject(new RaftKvError('UNAVAILABLE', `${what}: the corrupt check is stopping`));
    }
    return new Promise<T>((resolve, reject) => {
      let cancelTimer: CancelTimer = () => undefined;
      let settled = false;
      const settle = (f: () => void): void => {
        if (settled) return;
        settled = true;
        cancelTimer();
        this.giveUps.delete(stopNow);
        f();
      };
      const giveUp = (err: RaftKvError): void =>
        settle(() => {
          onGiveUp?.();
          reject(err);
        });
      const stopNow = (): void => giveUp(new RaftKvError('UNAVAILABLE', `${what}: the corrupt check is stopping`));
      this.giveUps.add(stopNow);
      cancelTimer = this.clock.setTimeout(() => giveUp(new RaftKvError('DEADLINE_EXCEEDED', `${what}: no answer within ${timeoutMs} ms`)), timeoutMs);
      p.then(
        (v) => settle(() => resolve(v)),
        (err: unknown) => settle(() => reject(err instanceof Error ? err : new Error(String(err)))),
      );
    });
  }
}

function digestOf(d: DigestValue): DigestValue {
  return { lane1: d.lane1, lane2: d.lane2, count: d.count };
}

function asError(err: unknown): RaftKvError {
  return err instanceof RaftKvError ? err : fromGrpcError(err);
}

function idsText(ids: readonly NodeId[]): string {
  return `${ids.length === 1 ? 'member' : 'members'} ${ids.join(', ')}`;
}

function list(items: readonly string[]): string {
  return items.join('; ');
}
