// Strict decoding on every gRPC service a member serves: requests whose bytes do not decode strictly as their
// message type (a field on the wrong wire type, truncated, trailing garbage) are refused with INVALID_ARGUMENT
// before any handler sees them. The example first: protobufjs (proto-loader's) decoded these bytes of
// Admin.MemberRemove as {id: 1} and removed member 1.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, credentials, Metadata, status as GrpcStatus } from '@grpc/grpc-js';
import type { ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runServer } from '../../src/server/serve.js';
import type { RunningServer } from '../../src/server/serve.js';
import { FakeCluster, FakeNode, testConfig } from './fake-node.js';
import { silentLogger } from './helpers.js';

const PORT = 27001;
const ADDRESS = `127.0.0.1:${PORT}`;

let dir = '';
let server: RunningServer;
let client: Client;
const cluster = new FakeCluster();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'raftkv-strict-'));
  cluster.members = [1, 2, 3].map((id) => ({ id, peerAddress: `127.0.0.1:${27090 + id}`, clientAddress: `127.0.0.1:${27095 + id}`, learner: false }));
  const node = new FakeNode(1, cluster);
  server = await runServer(testConfig(1, join(dir, 'n1'), { clientListen: ADDRESS, peerListen: ADDRESS }), {
    logger: silentLogger,
    startNode: () => Promise.resolve(node),
  });
  client = new Client(ADDRESS, credentials.createInsecure());
});

afterAll(async () => {
  client.close();
  await server.stop();
  await rm(dir, { recursive: true, force: true });
});

const raw = (b: Buffer): Buffer => b;

/** One unary call with `bytes` as the request, exactly as given. */
function unaryRaw(path: string, bytes: number[]): Promise<{ code: GrpcStatus; details: string }> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(path, raw, raw, Buffer.from(bytes), new Metadata(), { deadline: Date.now() + 5000 }, (err: ServiceError | null) => {
      resolve(err === null ? { code: GrpcStatus.OK, details: '' } : { code: err.code, details: err.details });
    });
  });
}

/** A client stream carrying one message of `bytes` (Peer.Stream). */
function clientStreamRaw(path: string, bytes: number[]): Promise<{ code: GrpcStatus; details: string }> {
  return new Promise((resolve) => {
    const call = client.makeClientStreamRequest(path, raw, raw, new Metadata(), { deadline: Date.now() + 5000 }, (err: ServiceError | null) => {
      resolve(err === null ? { code: GrpcStatus.OK, details: '' } : { code: err.code, details: err.details });
    });
    call.on('error', () => undefined);
    call.write(Buffer.from(bytes));
    call.end();
  });
}

const memberIds = (): number[] => cluster.members.map((m) => m.id);

describe('strict decoding', () => {
  it('refuses the malformed Admin.MemberRemove that protobufjs read as {id: 1}, and removes nothing', async () => {
    // field 1 on wire type 5 (fixed32) where a varint is declared, then bytes that are no well-formed field.
    const answer = await unaryRaw('/raftkv.v1.Admin/MemberRemove', [0x0d, 0x01, 0x00, 0x00, 0x00, 0x08]);
    expect(answer.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(answer.details).toMatch(/raftkv\.v1\.MemberRemoveRequest/);
    expect(memberIds()).toEqual([1, 2, 3]);
  });

  it('still serves a well-formed Admin.MemberRemove (the check refuses only bad bytes)', async () => {
    const answer = await unaryRaw('/raftkv.v1.Admin/MemberRemove', [0x08, 0x03]); // id = 3
    expect(answer.code).toBe(GrpcStatus.OK);
    expect(memberIds()).toEqual([1, 2]);
  });

  const cases: { name: string; path: string; bytes: number[] }[] = [
    { name: 'raftkv Admin.MemberRemove, truncated varint', path: '/raftkv.v1.Admin/MemberRemove', bytes: [0x08, 0x82] },
    { name: 'raftkv Admin.MemberRemove, trailing garbage', path: '/raftkv.v1.Admin/MemberRemove', bytes: [0x08, 0x02, 0xff] },
    { name: 'raftkv KV.Put, key on a varint', path: '/raftkv.v1.KV/Put', bytes: [0x08, 0x01] },
    { name: 'raftkv KV.Put, value longer than the message', path: '/raftkv.v1.KV/Put', bytes: [0x0a, 0x01, 0x6b, 0x12, 0x09, 0x76] },
    { name: 'raftkv KV.Txn, nested op truncated', path: '/raftkv.v1.KV/Txn', bytes: [0x12, 0x04, 0x0a, 0x05, 0x0a, 0x01] },
    { name: 'etcd Cluster.MemberRemove, ID on wire type 1', path: '/etcdserverpb.Cluster/MemberRemove', bytes: [0x09, 1, 0, 0, 0, 0, 0, 0, 0] },
    { name: 'etcd Cluster.MemberRemove, trailing garbage', path: '/etcdserverpb.Cluster/MemberRemove', bytes: [0x08, 0x02, 0x07] },
    { name: 'etcd KV.Put, a group (wire type 3)', path: '/etcdserverpb.KV/Put', bytes: [0x0a, 0x01, 0x6b, 0x1b] },
    { name: 'etcd KV.Range, field number 0', path: '/etcdserverpb.KV/Range', bytes: [0x00, 0x01] },
    { name: 'etcd KV.Range, invalid UTF-8 is fine in bytes but a truncated key is not', path: '/etcdserverpb.KV/Range', bytes: [0x0a, 0x03, 0xff] },
    { name: 'etcd Maintenance.Status, garbage in an empty message', path: '/etcdserverpb.Maintenance/Status', bytes: [0x0e] },
  ];
  for (const c of cases) {
    it(`refuses ${c.name} with INVALID_ARGUMENT`, async () => {
      const answer = await unaryRaw(c.path, c.bytes);
      expect(answer.code, answer.details).toBe(GrpcStatus.INVALID_ARGUMENT);
      expect(answer.details).toMatch(/^malformed request/);
    });
  }

  it('refuses a malformed Peer.Stream batch with INVALID_ARGUMENT', async () => {
    // cluster_id (field 1, string) holding invalid UTF-8
    const answer = await clientStreamRaw('/raftkv.v1.Peer/Stream', [0x0a, 0x02, 0xc3, 0x28]);
    expect(answer.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(answer.details).toMatch(/raftkv\.v1\.PeerBatch/);
    expect(memberIds()).toEqual([1, 2]);
  });
});
