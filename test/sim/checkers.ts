// The global safety checkers. They see every node's written log, commit index and applied entries as the
// simulation drives them, and keep registries across nodes; each check is incremental (cost ~ the event).
import type { Entry, Index, NodeId, Term } from '../../src/raft/types.js';
import { entryKey } from './state-machine.js';
import { SimViolation } from './violation.js';

/** A node's written log (what its core reads), as the checkers see it: SimStorage, or the driver level's SimWal. */
export interface WrittenLogView {
  writtenFirstIndex(): Index;
  writtenLastIndex(): Index;
  /** Term at i (i = firstIndex - 1: the snapshot's), undefined outside. */
  writtenTerm(i: Index): Term | undefined;
}

/** A node's durable log (what survives a crash): SimStorage, or the driver level's WalDisk. */
export interface DurableLogView {
  durableFirstIndex(): Index;
  durableLastIndex(): Index;
  durableTerm(i: Index): Term | undefined;
  durableEntry(i: Index): Entry | undefined;
}

/** What one index looks like once applied somewhere: every node must apply exactly this. */
interface AppliedRecord {
  readonly term: Term;
  readonly key: string; // entryKey(entry)
  readonly chain: number; // state machine hash chain after applying it
  readonly node: NodeId; // first node that applied it (for messages)
}

/** What an (index, term) pair holds in any log: the same content and the same previous term everywhere. */
interface PositionRecord {
  readonly key: string;
  readonly prevTerm: Term;
  readonly node: NodeId;
}

/** A client proposal the simulation made and the core accepted. */
export interface ProposalRecord {
  readonly id: number;
  readonly node: NodeId;
  readonly index: Index;
  readonly term: Term;
  readonly key: string; // entryKey of the entry it must become
  status: 'pending' | 'acked' | 'dropped';
}

const TERM_SPAN = 1_000_000; // (index, term) -> one number: index * TERM_SPAN + term

export class SafetyChecker {
  private readonly leaderOfTerm = new Map<Term, NodeId>(); // election safety
  private readonly positions = new Map<number, PositionRecord>(); // log matching
  private readonly committedTerm: (Term | undefined)[] = []; // index -> term of the committed entry
  private readonly committedBy: (NodeId | undefined)[] = []; // index -> node that first reported it committed
  private readonly applied: (AppliedRecord | undefined)[] = []; // state machine safety
  readonly proposals = new Map<number, ProposalRecord>(); // by proposal id
  private readonly proposalAt = new Map<Index, ProposalRecord[]>(); // pending proposals by index
  maxCommitted: Index = 0; // highest index any node reported committed
  maxApplied: Index = 0; // highest index any node applied
  maxTerm: Term = 0;
  leaderTerms = 0; // terms that had a leader

  /** §5.2 Election Safety: at most one leader per term. */
  onLeader(node: NodeId, term: Term, storage: WrittenLogView): void {
    const prev = this.leaderOfTerm.get(term);
    if (prev !== undefined && prev !== node) {
      throw new SimViolation('election-safety', `term ${term} has two leaders: ${prev} and ${node}`);
    }
    if (prev === undefined) this.leaderTerms++;
    this.leaderOfTerm.set(term, node);
    if (term > this.maxTerm) this.maxTerm = term;
    // §5.4 Leader Completeness: the new leader's log holds every entry committed so far.
    const last = storage.writtenLastIndex();
    if (this.maxCommitted > last) {
      throw new SimViolation(
        'leader-completeness',
        `leader ${node} of term ${term} has lastIndex ${last} < committed index ${this.maxCommitted}`,
      );
    }
    const first = storage.writtenFirstIndex();
    for (let i = first - 1; i <= this.maxCommitted; i++) {
      if (i <= 0) continue;
      const want = this.committedTerm[i];
      if (want === undefined) continue;
      const have = storage.writtenTerm(i);
      if (have !== want) {
        throw new SimViolation(
          'leader-completeness',
          `leader ${node} of term ${term} has term ${String(have)} at ${i}, committed term is ${want} (node ${String(this.committedBy[i])})`,
        );
      }
    }
  }

  /** §5.3 Log Matching, checked at write time on every entry any node writes. */
  onEntriesWritten(node: NodeId, entries: readonly Entry[], storage: WrittenLogView): void {
    const first = storage.writtenFirstIndex();
    for (const e of entries) {
      if (e.index < first) continue; // covered by a snapshot, not written
      const prevTerm = storage.writtenTerm(e.index - 1);
      if (prevTerm === undefined) throw new SimViolation('log-matching', `node ${node}: no entry before ${e.index}`);
      if (e.term >= TERM_SPAN) throw new Error(`term ${e.term} too large for the position registry`);
      const pos = e.index * TERM_SPAN + e.term;
      const key = entryKey(e);
      const rec = this.positions.get(pos);
      if (rec === undefined) {
        this.positions.set(pos, { key, prevTerm, node });
      } else if (rec.key !== key || rec.prevTerm !== prevTerm) {
        throw new SimViolation(
          'log-matching',
          `entry ${e.index}/t${e.term}: node ${rec.node} has ${rec.key} after term ${rec.prevTerm}, node ${node} has ${key} after term ${prevTerm}`,
        );
      }
      if (e.term > this.maxTerm) this.maxTerm = e.term;
    }
  }

  /** Records the entries in (from, commit] of `node`'s written log as committed; returns the new mark. */
  onCommit(node: NodeId, from: Index, commit: Index, storage: WrittenLogView): Index {
    const last = storage.writtenLastIndex();
    if (commit > last) throw new SimViolation('ready-contract', `node ${node}: commit ${commit} beyond its lastIndex ${last}`);
    const lo = Math.max(from + 1, storage.writtenFirstIndex() - 1, 1);
    for (let i = lo; i <= commit; i++) {
      const t = storage.writtenTerm(i);
      if (t === undefined) throw new Error(`node ${node}: no term at ${i} in [${lo}, ${commit}]`);
      this.committed(node, i, t);
    }
    return Math.max(from, commit);
  }

  /** A snapshot (index, term) is committed by definition. */
  onSnapshot(node: NodeId, index: Index, term: Term): void {
    if (index > 0) this.committed(node, index, term);
  }

  /** §5.4.3 State Machine Safety: `entry` is applied by `node`, whose chain is now `chain`. */
  onApply(node: NodeId, entry: Entry, chain: number): void {
    this.committed(node, entry.index, entry.term);
    const key = entryKey(entry);
    const rec = this.applied[entry.index];
    if (rec === undefined) {
      this.applied[entry.index] = { term: entry.term, key, chain, node };
      if (entry.index > this.maxApplied) this.maxApplied = entry.index;
    } else if (rec.term !== entry.term || rec.key !== key || rec.chain !== chain) {
      throw new SimViolation(
        'state-machine-safety',
        `index ${entry.index}: node ${rec.node} applied t${rec.term} ${rec.key} (chain ${rec.chain}), node ${node} applies t${entry.term} ${key} (chain ${chain})`,
      );
    }
    const waiting = this.proposalAt.get(entry.index);
    if (waiting !== undefined) {
      for (const p of waiting) p.status = p.term === entry.term && p.key === key ? 'acked' : 'dropped';
      this.proposalAt.delete(entry.index);
    }
  }

  /** A node restores its state machine from a snapshot at `index` with hash `chain`. */
  onRestore(node: NodeId, index: Index, term: Term, chain: number): void {
    const rec = this.applied[index];
    if (rec === undefined) {
      throw new SimViolation('state-machine-safety', `node ${node} restores a snapshot at ${index} that no node applied`);
    }
    if (rec.term !== term || rec.chain !== chain) {
      throw new SimViolation(
        'state-machine-safety',
        `node ${node} restores snapshot ${index}/t${term} chain ${chain}, applied was t${rec.term} chain ${rec.chain}`,
      );
    }
  }

  appliedChain(index: Index): number | undefined {
    return this.applied[index]?.chain;
  }

  appliedKey(index: Index): string | undefined {
    return this.applied[index]?.key;
  }

  addProposal(p: ProposalRecord): void {
    this.proposals.set(p.id, p);
    const rec = this.applied[p.index];
    if (rec !== undefined) {
      // Already applied somewhere (possible when a duplicate index was handed out): decide now.
      p.status = rec.term === p.term && rec.key === p.key ? 'acked' : 'dropped';
      return;
    }
    const list = this.proposalAt.get(p.index);
    if (list === undefined) this.proposalAt.set(p.index, [p]);
    else list.push(p);
  }

  private committed(node: NodeId, i: Index, t: Term): void {
    const want = this.committedTerm[i];
    if (want === undefined) {
      this.committedTerm[i] = t;
      this.committedBy[i] = node;
      if (i > this.maxCommitted) this.maxCommitted = i;
    } else if (want !== t) {
      throw new SimViolation(
        'leader-completeness',
        `index ${i} committed with term ${want} on node ${String(this.committedBy[i])} and with term ${t} on node ${node}`,
      );
    }
  }
}

/**
 * §5.3 Log Matching over every pair of durable logs, in full: if two logs hold an entry with the same index and
 * term, they hold the same entries up to it (over the range both still have). The incremental check at write
 * time covers every entry ever written; this one re-reads what survived crashes, compaction and truncation.
 */
export function checkDurableLogMatching(logs: readonly { id: NodeId; storage: DurableLogView }[]): void {
  for (let x = 0; x < logs.length; x++) {
    for (let y = x + 1; y < logs.length; y++) {
      const a = logs[x] as { id: NodeId; storage: DurableLogView };
      const b = logs[y] as { id: NodeId; storage: DurableLogView };
      const lo = Math.max(a.storage.durableFirstIndex(), b.storage.durableFirstIndex());
      const hi = Math.min(a.storage.durableLastIndex(), b.storage.durableLastIndex());
      // The highest index where both have the same term: everything in [lo, it] must be identical.
      let common = -1;
      for (let i = hi; i >= lo; i--) {
        if (a.storage.durableTerm(i) === b.storage.durableTerm(i)) {
          common = i;
          break;
        }
      }
      for (let i = lo; i <= common; i++) {
        const ea = a.storage.durableEntry(i);
        const eb = b.storage.durableEntry(i);
        if (ea === undefined || eb === undefined || ea.term !== eb.term || entryKey(ea) !== entryKey(eb)) {
          throw new SimViolation(
            'log-matching',
            `durable logs of n${a.id} and n${b.id} agree at ${common}/t${String(a.storage.durableTerm(common))} but differ at ${i}`,
          );
        }
      }
    }
  }
}
