// The core's own throughput: three RawNodes in one process over MemoryStorage and an in-memory queue, no
// checks. Not part of CI timing: run with `RAFT_BENCH=1 npx vitest run test/raft/throughput.test.ts`.
import { describe, expect, it } from 'vitest';
import { RawNode } from '../../src/raft/raw-node.js';
import { MemoryStorage } from '../../src/raft/memory-storage.js';
import { defaultRaftConfig } from '../../src/raft/config.js';
import { seededRng } from '../../src/raft/rng.js';
import type { Message } from '../../src/raft/types.js';

describe.runIf(process.env['RAFT_BENCH'] !== undefined)('core throughput', () => {
  it('3 voters, 100-byte proposals in batches of 20 per Ready round', () => {
    const ids = [1, 2, 3];
    const nodes = new Map(
      ids.map((id) => {
        const storage = MemoryStorage.fromConfState({ voters: ids, learners: [] });
        return [id, { storage, raw: new RawNode(defaultRaftConfig(id, seededRng(id)), storage) }] as const;
      }),
    );
    let queue: Message[] = [];
    const pump = (): void => {
      for (;;) {
        let any = false;
        for (const n of nodes.values()) {
          while (n.raw.hasReady()) {
            any = true;
            const rd = n.raw.ready();
            queue.push(...rd.messages);
            n.storage.append(rd.entries);
            if (rd.hardState !== undefined) n.storage.setHardState(rd.hardState);
            queue.push(...rd.messagesAfterPersist);
            n.raw.advance(rd);
          }
        }
        if (queue.length === 0 && !any) return;
        const batch = queue;
        queue = [];
        for (const m of batch) nodes.get(m.to)?.raw.step(m);
      }
    };
    const leader = nodes.get(1)?.raw;
    if (leader === undefined) throw new Error('no node 1');
    leader.campaign();
    pump();
    const data = new Uint8Array(100);
    const rounds = 2000;
    const perRound = 20;
    const t0 = performance.now();
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < perRound; i++) leader.propose(data);
      pump();
    }
    const ms = performance.now() - t0;
    const n = rounds * perRound;
    console.log(`core: ${n} proposals committed on 3 in-process nodes in ${ms.toFixed(0)} ms = ${Math.round((n / ms) * 1000)} proposals/s`);
    for (const node of nodes.values()) expect(node.raw.status().commit).toBe(n + 1); // + the leader's no-op
  });
});
