// Peer messages are checked before they are stepped: an outsider that reaches a member's peer port and forges
// Raft messages changes nothing. The example first: one heartbeat-resp at term + 100 with an empty
// incarnation, sent to the leader's peer port "from" a follower, made the leader step down (no leader for
// 1.2 s). Each forged stream here must be refused, and afterwards the cluster has the same leader in the same
// term (a write through the leader after the forged stream proves the leader's loop has seen whatever was
// delivered: its inbox is in order).
import { Client, credentials, Metadata, status as GrpcStatus } from '@grpc/grpc-js';
import type { ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PEER_METHODS } from '../../src/protocol/proto.js';
import type { WireEmpty, WirePeerBatch } from '../../src/protocol/proto.js';
import type { Message } from '../../src/raft/types.js';
import { encodeMessages } from '../../src/transport/grpc-codec.js';
import { startTestCluster, type TestCluster } from './helpers.js';

let tc: TestCluster;
beforeAll(async () => {
  tc = await startTestCluster({ nodes: 3, basePort: 27100 });
  await tc.client.put('warm-up', 'every member has talked to every other (incarnations recorded)');
}, 60_000);
afterAll(async () => {
  await tc.close();
});

/** Opens a Peer.Stream to `peerAddress`, writes `batch`, ends it, and resolves with the stream's status. */
function forge(peerAddress: string, batch: WirePeerBatch): Promise<{ code: GrpcStatus; details: string }> {
  const client = new Client(peerAddress, credentials.createInsecure());
  const m = PEER_METHODS.stream;
  return new Promise((resolve) => {
    const call = client.makeClientStreamRequest<WirePeerBatch, WireEmpty>(
      m.path,
      m.requestSerialize,
      m.responseDeserialize,
      new Metadata(),
      { deadline: Date.now() + 5000 },
      (err: ServiceError | null) => {
        client.close();
        resolve(err === null ? { code: GrpcStatus.OK, details: '' } : { code: err.code, details: err.details });
      },
    );
    call.on('error', () => undefined);
    call.write(batch);
    call.end();
  });
}

async function leaderAndTerm(): Promise<{ leader: number; term: number }> {
  const leader = await tc.leader();
  const s = await tc.client.status(tc.cluster.clientAddress(leader));
  return { leader, term: s.term };
}

const heartbeatResp = (from: number, to: number, term: number): Message => ({ type: 'heartbeat-resp', from, to, term, context: new Uint8Array(0) });

describe('forged peer messages from an outsider', () => {
  const cases: { name: string; batch: (leader: number, follower: number, term: number) => WirePeerBatch; refusal: RegExp }[] = [
    {
      name: 'heartbeat-resp at term + 100 with an empty incarnation (the issue)',
      batch: (leader, follower, term) => ({ clusterId: 'local', from: follower, to: leader, payload: Buffer.from(encodeMessages([heartbeatResp(follower, leader, term + 100)])), incarnation: '' }),
      refusal: /sent no incarnation/,
    },
    {
      name: 'heartbeat-resp at term + 100 with an incarnation the cluster does not know for that member',
      batch: (leader, follower, term) => ({ clusterId: 'local', from: follower, to: leader, payload: Buffer.from(encodeMessages([heartbeatResp(follower, leader, term + 100)])), incarnation: 'f'.repeat(32) }),
      refusal: /incarnation/,
    },
    {
      name: 'a vote request at term + 100 from a member id that is not in the cluster',
      batch: (leader, _follower, term) => ({
        clusterId: 'local',
        from: 9,
        to: leader,
        payload: Buffer.from(encodeMessages([{ type: 'vote', from: 9, to: leader, term: term + 100, index: 1_000_000, logTerm: term + 100, transfer: false }])),
        incarnation: 'e'.repeat(32),
      }),
      refusal: /unknown sender 9/,
    },
  ];
  for (const c of cases) {
    it(`refuses ${c.name}; same leader, same term`, async () => {
      const before = await leaderAndTerm();
      const follower = tc.cluster.ids().find((id) => id !== before.leader) ?? 0;
      const answer = await forge(tc.cluster.peerAddress(before.leader), c.batch(before.leader, follower, before.term));
      expect(answer.code, answer.details).toBe(GrpcStatus.FAILED_PRECONDITION);
      expect(answer.details).toMatch(c.refusal);
      await tc.client.put('after-forgery', c.name);
      expect(await leaderAndTerm()).toEqual(before);
    });
  }
});
