// Invariants checkable on one node, thrown as AssertionError on violation, and helpers for cross-node checks.
import type { Entry, Index, NodeId, Term } from './types.js';
import { NONE } from './types.js';
import type { RawNode } from './raw-node.js';
import { AssertionError } from './util.js';

function fail(node: RawNode, msg: string): never {
  throw new AssertionError(`invariant violated on node ${node.raft.id}: ${msg}`);
}

/** How many trailing log entries the stateless check scans for non-decreasing terms. */
const TAIL_SCAN = 64;
/** How many of the newest committed entries the stateful checker re-verifies at every check. */
const COMMITTED_WINDOW = 64;

/** Stateless checks of one node's core (cheap enough to run after every step). */
export function checkNodeInvariants(node: RawNode): void {
  const r = node.raft;
  const log = r.log;
  const first = log.firstIndex();
  const last = log.lastIndex();
  if (first < 1) fail(node, `firstIndex ${first} < 1`);
  if (last < first - 1) fail(node, `lastIndex ${last} < firstIndex-1 ${first - 1}`);
  if (log.committed > last) fail(node, `commit ${log.committed} > lastIndex ${last}`);
  if (log.applied > log.committed) fail(node, `applied ${log.applied} > commit ${log.committed}`);
  const lastTerm = log.maybeTerm(last);
  if (lastTerm === undefined) fail(node, `term of lastIndex ${last} unavailable`);
  if (lastTerm > r.term) fail(node, `last log term ${lastTerm} > current term ${r.term}`);
  // Log terms never decrease along the log (scan the tail).
  let prev: Term | undefined;
  for (let i = Math.max(first - 1, last - TAIL_SCAN); i <= last; i++) {
    const t = log.maybeTerm(i);
    if (t === undefined) fail(node, `term of ${i} unavailable inside [${first - 1}, ${last}]`);
    if (prev !== undefined && t < prev) fail(node, `log term decreases at ${i}: ${prev} -> ${t}`);
    prev = t;
  }
  if (r.voters.size > 0 && [...r.voters].some((v) => r.learners.has(v))) fail(node, 'a member is both voter and learner');
  switch (r.role) {
    case 'leader': {
      if (r.lead !== r.id) fail(node, `leader with lead=${r.lead}`);
      if (r.vote !== r.id) fail(node, `leader of term ${r.term} voted for ${r.vote}, not itself`);
      if (log.maybeTerm(last) !== r.term) fail(node, `leader's last entry is not of its term ${r.term}`);
      for (const [id, pr] of r.progress) {
        if (pr.match > last) fail(node, `progress ${id} match ${pr.match} > lastIndex ${last}`);
        if (pr.next <= pr.match) fail(node, `progress ${id} next ${pr.next} <= match ${pr.match}`);
        if (pr.next > last + 1) fail(node, `progress ${id} next ${pr.next} > lastIndex+1`);
      }
      for (const v of r.voters) if (!r.progress.has(v)) fail(node, `no progress for voter ${v}`);
      break;
    }
    case 'candidate':
      if (r.vote !== r.id) fail(node, `candidate of term ${r.term} voted for ${r.vote}`);
      if (r.lead !== NONE) fail(node, `candidate with lead=${r.lead}`);
      break;
    case 'pre-candidate':
      if (r.lead !== NONE) fail(node, `pre-candidate with lead=${r.lead}`);
      break;
    case 'follower':
      if (r.lead === r.id) fail(node, 'follower believes it leads');
      if (r.progress.size > 0) fail(node, 'follower keeps progress');
      break;
    default: {
      const never: never = r.role;
      fail(node, `unknown role ${String(never)}`);
    }
  }
}

/**
 * A stateful checker for one node (keep one per node across steps): everything checkNodeInvariants checks,
 * plus what needs memory: term and commit never decrease, at most one vote per term, and committed entries
 * never change (by term) while still in the log.
 */
export class NodeInvariantChecker {
  private lastTerm: Term = 0;
  private lastVote: NodeId = NONE;
  private lastCommit: Index = 0;
  /** Term of every committed index seen, as long as it is in the log (trimmed below firstIndex). */
  private readonly committedTerms = new Map<Index, Term>();

  check(node: RawNode): void {
    checkNodeInvariants(node);
    const r = node.raft;
    if (r.term < this.lastTerm) fail(node, `term went back ${this.lastTerm} -> ${r.term}`);
    if (r.term === this.lastTerm && this.lastVote !== NONE && r.vote !== this.lastVote) {
      fail(node, `vote changed within term ${r.term}: ${this.lastVote} -> ${r.vote}`);
    }
    if (r.log.committed < this.lastCommit) fail(node, `commit went back ${this.lastCommit} -> ${r.log.committed}`);
    const first = r.log.firstIndex();
    // Only a window of the newest committed entries is remembered (constant cost per check). That suffices:
    // a truncation that replaces committed entry k also replaces every entry after it, including the newest
    // committed one (an entry with the same index and term would mean identical logs up to it, §5.3).
    const low = Math.max(first, r.log.committed - COMMITTED_WINDOW + 1);
    for (let i = Math.max(this.lastCommit + 1, low); i <= r.log.committed; i++) {
      const t = r.log.maybeTerm(i);
      if (t !== undefined) this.committedTerms.set(i, t);
    }
    for (const [i, t] of this.committedTerms) {
      if (i < low) {
        this.committedTerms.delete(i);
        continue;
      }
      const now = r.log.maybeTerm(i);
      if (now !== t) fail(node, `committed entry ${i} changed term ${t} -> ${String(now)}`);
    }
    this.lastTerm = r.term;
    this.lastVote = r.vote;
    this.lastCommit = r.log.committed;
  }

  /** After a restart from durable state, forget what was only in memory (commit may be re-learned). */
  onRestart(): void {
    this.lastCommit = 0;
  }
}

/** (index, term) of every entry of the node's log from firstIndex-1 (the snapshot) to lastIndex. */
export function logTermsAt(node: RawNode): { index: Index; term: Term }[] {
  const log = node.raft.log;
  const out: { index: Index; term: Term }[] = [];
  for (let i = log.firstIndex() - 1; i <= log.lastIndex(); i++) {
    const t = log.maybeTerm(i);
    if (t !== undefined) out.push({ index: i, term: t });
  }
  return out;
}

/** The node's log entries [lo, hi) that are still available (clamped to its log). */
export function logEntries(node: RawNode, lo: Index, hi: Index): Entry[] {
  const log = node.raft.log;
  const from = Math.max(lo, log.firstIndex());
  const to = Math.min(hi, log.lastIndex() + 1);
  if (from >= to) return [];
  return log.slice(from, to, Number.POSITIVE_INFINITY);
}

/**
 * Log Matching (§5.3) between two nodes: if their logs hold an entry with the same index and term, the logs
 * are identical up to it. Throws on violation.
 */
export function checkLogMatching(a: RawNode, b: RawNode): void {
  const ta = new Map(logTermsAt(a).map((x) => [x.index, x.term]));
  const tb = logTermsAt(b);
  let highestCommon = -1;
  for (const { index, term } of tb) if (ta.get(index) === term) highestCommon = Math.max(highestCommon, index);
  for (const { index, term } of tb) {
    if (index > highestCommon) break;
    const other = ta.get(index);
    if (other !== undefined && other !== term) {
      throw new AssertionError(`log matching: nodes ${a.raft.id} and ${b.raft.id} agree at ${highestCommon} but differ at ${index}`);
    }
  }
}
