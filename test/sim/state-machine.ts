// The simulation's state machine: a hash chain over every applied entry plus a small key-value map.
// Deterministic, cheap to snapshot, and two replicas that applied different sequences end with different chains.
import type { ConfState, Entry, Index, Term } from '../../src/raft/types.js';

/** FNV-1a over bytes, 32-bit. */
export function hashBytes(data: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < data.length; i++) {
    h ^= data[i] as number;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Mixes one 32-bit word into a 32-bit hash (murmur3 finalizer style). */
export function mix(h: number, word: number): number {
  let k = Math.imul(word | 0, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  let x = (h ^ k) | 0;
  x = (x << 13) | (x >>> 19);
  return (Math.imul(x, 5) + 0xe6546b64) >>> 0;
}

/** The identity of an entry's content (type + data), used by the checkers to compare entries across nodes. */
export function entryKey(e: Entry): string {
  return `${e.type === 'normal' ? 'n' : 'c'}:${Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength).toString('latin1')}`;
}

/** A client proposal's command: `p<proposalId>:k<key>`. */
export function encodeProposal(proposalId: number, key: number): Uint8Array {
  return new TextEncoder().encode(`p${proposalId}:k${key}`);
}

export function decodeProposal(data: Uint8Array): { proposalId: number; key: number } | undefined {
  const m = /^p(\d+):k(\d+)$/.exec(new TextDecoder().decode(data));
  if (m === null) return undefined;
  return { proposalId: Number(m[1]), key: Number(m[2]) };
}

/** The state machine's snapshot payload, kept by the simulation beside the core's snapshot metadata. */
export interface SmSnapshot {
  readonly applied: Index; // last entry covered
  readonly appliedTerm: Term; // its term
  readonly chain: number; // hash chain after applying `applied`
  readonly kv: ReadonlyMap<number, number>; // key -> id of the last proposal that wrote it
  readonly confState: ConfState; // membership as of `applied`
}

/**
 * Durable by construction: the simulation never loses its state on a crash (like the applied index written in
 * the same LevelDB batch as the effects of the entries it covers).
 */
export class HashChainStateMachine {
  applied: Index = 0; // last applied index; only moves forward (checked by the simulation)
  appliedTerm: Term = 0; // term of the entry at `applied`
  chain = 0; // hash of the whole applied sequence
  kv = new Map<number, number>(); // key -> proposal id
  confState: ConfState; // membership as of `applied`, what storage.initialState() reports on restart

  constructor(initial: ConfState) {
    this.confState = initial;
  }

  /** Applies one committed entry (the caller checks contiguity). */
  apply(e: Entry): void {
    let h = mix(this.chain, e.index);
    h = mix(h, e.term);
    h = mix(h, e.type === 'normal' ? 1 : 2);
    h = mix(h, hashBytes(e.data));
    this.chain = h;
    this.applied = e.index;
    this.appliedTerm = e.term;
    if (e.type === 'normal' && e.data.byteLength > 0) {
      const p = decodeProposal(e.data);
      if (p !== undefined) this.kv.set(p.key, p.proposalId);
    }
  }

  snapshot(): SmSnapshot {
    return {
      applied: this.applied,
      appliedTerm: this.appliedTerm,
      chain: this.chain,
      kv: new Map(this.kv),
      confState: this.confState,
    };
  }

  restore(s: SmSnapshot): void {
    this.applied = s.applied;
    this.appliedTerm = s.appliedTerm;
    this.chain = s.chain;
    this.kv = new Map(s.kv);
    this.confState = s.confState;
  }
}
