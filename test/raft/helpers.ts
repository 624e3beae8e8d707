// Helpers for stepping one core directly (paper tests) without the fake network.
import { RawNode } from '../../src/raft/raw-node.js';
import { MemoryStorage } from '../../src/raft/memory-storage.js';
import { defaultRaftConfig } from '../../src/raft/config.js';
import type { RaftConfig } from '../../src/raft/config.js';
import { seededRng } from '../../src/raft/rng.js';
import { checkNodeInvariants } from '../../src/raft/invariants.js';
import type { Entry, HardState, Message, NodeId, Ready, Term } from '../../src/raft/types.js';

export type ConfigOverrides = Partial<Omit<RaftConfig, 'id' | 'rng'>>;

export interface Solo {
  raw: RawNode;
  storage: MemoryStorage;
}

/** A node of a cluster of `voters`, with an optional pre-existing log (terms of entries 1..n) and hard state. */
export function solo(id: NodeId, voters: readonly NodeId[], opts: { terms?: readonly Term[]; hardState?: HardState; config?: ConfigOverrides; seed?: number; learners?: readonly NodeId[] } = {}): Solo {
  const storage = MemoryStorage.fromConfState({ voters: [...voters], learners: [...(opts.learners ?? [])] });
  const ents: Entry[] = (opts.terms ?? []).map((term, i) => ({ term, index: i + 1, type: 'normal', data: new Uint8Array([i + 1]) }));
  storage.append(ents);
  if (opts.hardState !== undefined) storage.setHardState(opts.hardState);
  const raw = new RawNode({ ...defaultRaftConfig(id, seededRng(opts.seed ?? id)), ...opts.config }, storage);
  return { raw, storage };
}

/** Runs one Ready as a driver would (persist into storage, advance) and returns it. */
export function drain(s: Solo): Ready {
  const rd = s.raw.ready();
  if (rd.snapshot !== undefined) s.storage.applySnapshot(rd.snapshot);
  s.storage.append(rd.entries);
  if (rd.hardState !== undefined) s.storage.setHardState(rd.hardState);
  s.raw.advance(rd);
  checkNodeInvariants(s.raw);
  return rd;
}

/** Every message of the pending Ready(s) (both lists), after persisting. */
export function drainMessages(s: Solo): Message[] {
  const out: Message[] = [];
  while (s.raw.hasReady()) {
    const rd = drain(s);
    out.push(...rd.messages, ...rd.messagesAfterPersist);
  }
  return out;
}

export function step(s: Solo, m: Message): Message[] {
  s.raw.step(m);
  checkNodeInvariants(s.raw);
  return drainMessages(s);
}

export function tickN(s: Solo, n: number): Message[] {
  const out: Message[] = [];
  for (let i = 0; i < n; i++) {
    s.raw.tick();
    checkNodeInvariants(s.raw);
    out.push(...drainMessages(s));
  }
  return out;
}

export type MessageOf<T extends Message['type']> = Message & { type: T };

export function ofType<T extends Message['type']>(msgs: readonly Message[], type: T): MessageOf<T>[] {
  return msgs.filter((m): m is MessageOf<T> => m.type === type);
}

export function vote(from: NodeId, to: NodeId, term: Term, index: number, logTerm: Term, type: 'vote' | 'pre-vote' = 'vote', transfer = false): Message {
  return { type, from, to, term, index, logTerm, transfer };
}

export function entry(term: Term, index: number, data = ''): Entry {
  return { term, index, type: 'normal', data: new TextEncoder().encode(data) };
}
