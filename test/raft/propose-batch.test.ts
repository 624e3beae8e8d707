// RawNode.proposeBatch: several proposals appended at once go out in one append per follower (propose() sends
// one per entry), each refused proposal gets its own RaftError, and the accepted ones commit in order.
import { describe, expect, it } from 'vitest';
import { RawNode } from '../../src/raft/raw-node.js';
import { MemoryStorage } from '../../src/raft/memory-storage.js';
import { defaultRaftConfig } from '../../src/raft/config.js';
import type { RaftConfig } from '../../src/raft/config.js';
import { RaftError } from '../../src/raft/errors.js';
import { seededRng } from '../../src/raft/rng.js';
import type { Message, NodeId } from '../../src/raft/types.js';

interface Cluster {
  nodes: Map<NodeId, { storage: MemoryStorage; raw: RawNode }>;
  /** Runs Readies and delivers messages until quiet; returns every message sent. */
  pump(): Message[];
  leader: RawNode;
}

function cluster(overrides: Partial<Omit<RaftConfig, 'id' | 'rng'>> = {}): Cluster {
  const ids = [1, 2, 3];
  const nodes = new Map(
    ids.map((id) => {
      const storage = MemoryStorage.fromConfState({ voters: ids, learners: [] });
      return [id, { storage, raw: new RawNode({ ...defaultRaftConfig(id, seededRng(id)), ...overrides }, storage) }] as const;
    }),
  );
  const pump = (): Message[] => {
    const sent: Message[] = [];
    let queue: Message[] = [];
    for (;;) {
      for (const n of nodes.values()) {
        while (n.raw.hasReady()) {
          const rd = n.raw.ready();
          queue.push(...rd.messages);
          n.storage.append(rd.entries);
          if (rd.hardState !== undefined) n.storage.setHardState(rd.hardState);
          queue.push(...rd.messagesAfterPersist);
          n.raw.advance(rd);
        }
      }
      if (queue.length === 0) return sent;
      const batch = queue;
      queue = [];
      sent.push(...batch);
      for (const m of batch) nodes.get(m.to)?.raw.step(m);
    }
  };
  const leader = nodes.get(1)?.raw;
  if (leader === undefined) throw new Error('no node 1');
  leader.campaign();
  pump();
  expect(leader.status().role).toBe('leader');
  return { nodes, pump, leader };
}

const data = (n: number, size = 10): Uint8Array[] => Array.from({ length: n }, (_, i) => new Uint8Array(size).fill(i % 256));

function ok(o: { index: number; term: number } | RaftError): { index: number; term: number } {
  if (o instanceof RaftError) throw new Error(`refused: ${o.code} ${o.message}`);
  return o;
}

describe('RawNode.proposeBatch', () => {
  it('appends the batch in order and sends one append per follower, then commits it everywhere', () => {
    const c = cluster();
    const before = c.leader.status().lastIndex;
    const outcomes = c.leader.proposeBatch(data(50));
    expect(outcomes.map((o) => ok(o).index)).toEqual(Array.from({ length: 50 }, (_, i) => before + 1 + i));
    const rd = c.leader.ready();
    const apps = rd.messages.filter((m) => m.type === 'app');
    expect(apps.map((m) => m.to).sort()).toEqual([2, 3]);
    for (const m of apps) if (m.type === 'app') expect(m.entries.length).toBe(50);
    c.nodes.get(1)?.storage.append(rd.entries);
    for (const m of rd.messages) c.nodes.get(m.to)?.raw.step(m);
    c.leader.advance(rd);
    c.pump();
    expect(c.leader.status().commit).toBe(before + 50);
    c.leader.tick(); // a heartbeat tells the followers (lazy commit broadcast)
    c.pump();
    for (const n of c.nodes.values()) expect(n.raw.status().commit).toBe(before + 50);
  });

  it('sends what one append per entry would have sent when the batch exceeds maxSizePerMsgBytes', () => {
    const c = cluster({ maxSizePerMsgBytes: 100 });
    c.leader.proposeBatch(data(20, 60));
    const rd = c.leader.ready();
    for (const to of [2, 3]) {
      const sent = rd.messages.flatMap((m) => (m.type === 'app' && m.to === to ? m.entries : []));
      expect(sent.length).toBe(20); // every entry is on its way before any acknowledgement
    }
    c.leader.advance(rd);
  });

  it('refuses each proposal on its own: too large, over the uncommitted limit; the others are appended', () => {
    const c = cluster({ maxUncommittedEntriesBytes: 300 });
    const before = c.leader.status().lastIndex;
    const outcomes = c.leader.proposeBatch([new Uint8Array(50), new Uint8Array(400), new Uint8Array(50), new Uint8Array(200)]);
    expect(ok(outcomes[0] ?? new RaftError('UNAVAILABLE', 'missing')).index).toBe(before + 1);
    expect(outcomes[1] instanceof RaftError && outcomes[1].code).toBe('PROPOSAL_TOO_LARGE');
    expect(ok(outcomes[2] ?? new RaftError('UNAVAILABLE', 'missing')).index).toBe(before + 2);
    expect(outcomes[3] instanceof RaftError && outcomes[3].code).toBe('UNCOMMITTED_LIMIT');
    c.pump();
    expect(c.leader.status().commit).toBe(before + 2);
  });

  it('on a follower every proposal is NOT_LEADER and nothing is appended or sent', () => {
    const c = cluster();
    const follower = c.nodes.get(2)?.raw;
    if (follower === undefined) throw new Error('no node 2');
    const last = follower.status().lastIndex;
    const outcomes = follower.proposeBatch(data(3));
    expect(outcomes.map((o) => (o instanceof RaftError ? o.code : 'accepted'))).toEqual(['NOT_LEADER', 'NOT_LEADER', 'NOT_LEADER']);
    expect(follower.status().lastIndex).toBe(last);
    expect(follower.hasReady()).toBe(false);
  });
});
