// Two (or three) GrpcTransports on loopback: batching, order, reconnect after the receiver restarts,
// cluster-id / unknown-sender refusal, snapshot streaming with verification.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, credentials, Metadata } from '@grpc/grpc-js';
import type { Server, ServiceError } from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Message, NodeId, SnapshotMessage } from '../../src/raft/types.js';
import { PEER_METHODS } from '../../src/protocol/proto.js';
import type { WireSnapshotAck, WireSnapshotChunk } from '../../src/protocol/proto.js';
import { addPeerService } from '../../src/server/peer-service.js';
import { encodeMessages } from '../../src/transport/grpc-codec.js';
import { GrpcTransport } from '../../src/transport/grpc-transport.js';
import type { GrpcTransportOptions } from '../../src/transport/grpc-transport.js';
import { LinkProxy } from '../chaos/proxy.js';
import { silentLogger, startServer, stopServer, waitFor } from './helpers.js';

interface Received {
  messages: Message[];
  snapshots: { message: SnapshotMessage; path: string }[];
  unreachable: NodeId[];
}

interface Member {
  transport: GrpcTransport;
  server: Server;
  address: string;
  port: number;
  got: Received;
}

let dir = '';
const started: Member[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'raftkv-transport-'));
});

afterEach(async () => {
  for (const m of started.splice(0)) {
    await m.transport.stop();
    await stopServer(m.server);
  }
  await rm(dir, { recursive: true, force: true });
});

async function member(id: NodeId, clusterId = 'c1', port = 0, extra: Partial<GrpcTransportOptions> = {}): Promise<Member> {
  const got: Received = { messages: [], snapshots: [], unreachable: [] };
  const transport = new GrpcTransport({
    ...extra,
    id,
    clusterId,
    logger: silentLogger,
    snapshotInboxDir: join(dir, `inbox-${id}`),
    reconnectBackoffMinMs: 10,
    reconnectBackoffMaxMs: 50,
    snapshotChunkBytes: 64 * 1024,
  });
  await transport.start({
    onMessages: (ms) => got.messages.push(...ms),
    onSnapshot: (message, path) => got.snapshots.push({ message, path }),
    onPeerUnreachable: (peer) => got.unreachable.push(peer),
  });
  const { server, address, port: bound } = await startServer((s) => addPeerService(s, transport), port);
  const m = { transport, server, address, port: bound, got };
  started.push(m);
  return m;
}

function link(a: Member, aId: NodeId, b: Member, bId: NodeId): void {
  a.transport.setPeer(bId, b.address);
  b.transport.setPeer(aId, a.address);
}

const hb = (from: NodeId, to: NodeId, term: number): Message => ({ type: 'heartbeat', from, to, term, commit: term, context: new Uint8Array(0) });

describe('GrpcTransport', () => {
  it('delivers messages in order, coalesced into batches', async () => {
    const a = await member(1);
    const b = await member(2);
    link(a, 1, b, 2);
    const batch: Message[] = [];
    for (let i = 1; i <= 1000; i++) batch.push(hb(1, 2, i));
    a.transport.send(batch);
    a.transport.send([{ type: 'app', from: 1, to: 2, term: 1001, index: 5, logTerm: 1, commit: 3, entries: [{ term: 1, index: 6, type: 'normal', data: Uint8Array.of(7, 8) }] }]);
    await waitFor('1001 messages at b', () => b.got.messages.length === 1001);
    expect(b.got.messages.map((m) => m.term)).toEqual(Array.from({ length: 1001 }, (_, i) => i + 1));
    expect(b.got.messages[1000]).toMatchObject({ type: 'app', entries: [{ index: 6, data: Uint8Array.of(7, 8) }] });
    const stats = a.transport.peerStats(2);
    expect(stats?.sentMessages).toBe(1001);
    expect(stats?.sentBatches).toBeLessThan(10); // sent in one turn: coalesced
    expect(stats?.droppedMessages).toBe(0);
  });

  it('dials the override address for a peer (--dial-override)', async () => {
    const b = await member(2);
    const a = new GrpcTransport({ id: 1, clusterId: 'c1', logger: silentLogger, snapshotInboxDir: join(dir, 'o'), dialOverrides: new Map([[2, b.address]]) });
    const unreachable: NodeId[] = [];
    await a.start({ onMessages: () => undefined, onSnapshot: () => undefined, onPeerUnreachable: (p) => unreachable.push(p) });
    a.setPeer(2, '127.0.0.1:1'); // the advertised address: nothing listens there
    b.transport.setPeer(1, '127.0.0.1:1');
    a.send([hb(1, 2, 5)]);
    await waitFor('message via the override', () => b.got.messages.length === 1);
    expect(unreachable).toEqual([]);
    await a.stop();
  });

  it('drops and counts past the per-peer queue bound, and for unknown peers', async () => {
    const a = new GrpcTransport({ id: 1, clusterId: 'c1', logger: silentLogger, snapshotInboxDir: join(dir, 'x'), maxQueuedMessages: 10 });
    await a.start({ onMessages: () => undefined, onSnapshot: () => undefined, onPeerUnreachable: () => undefined });
    a.setPeer(2, '127.0.0.1:1'); // nothing listens there
    a.send(Array.from({ length: 25 }, (_, i) => hb(1, 2, i + 1)));
    a.send([hb(1, 9, 1)]);
    expect(a.peerStats(2)?.droppedMessages).toBe(15);
    expect(a.unknownPeerDrops.count).toBe(1);
    await a.stop();
  });

  it('reports an unreachable peer and reconnects when it comes back on the same port', async () => {
    const a = await member(1);
    const b = await member(2);
    link(a, 1, b, 2);
    a.transport.send([hb(1, 2, 1)]);
    await waitFor('first message', () => b.got.messages.length === 1);
    // b's server goes away (a crash): the stream breaks, a reports it and keeps retrying.
    b.server.forceShutdown();
    const bPort = b.port;
    a.transport.send([hb(1, 2, 2)]);
    await waitFor('unreachable reported', () => a.got.unreachable.includes(2));
    // b comes back on the same port: a's next messages get through on a new stream.
    const { server } = await startServer((s) => addPeerService(s, b.transport), bPort);
    b.server = server;
    let term = 3;
    await waitFor('a message after the restart', () => {
      a.transport.send([hb(1, 2, term++)]);
      return b.got.messages.some((m) => m.term >= 3);
    });
    expect(a.transport.peerStats(2)?.streamFailures).toBeGreaterThanOrEqual(1);
  });

  it('notices a peer that goes silent without a reset (keepalive pings) and reports it unreachable', async () => {
    const a = await member(1, 'c1', 0, { keepaliveTimeMs: 200, keepaliveTimeoutMs: 200 });
    const b = await member(2);
    const proxy = new LinkProxy('1->2', { host: '127.0.0.1', port: b.port });
    await proxy.start();
    try {
      a.transport.setPeer(2, proxy.address);
      b.transport.setPeer(1, a.address);
      a.transport.send([hb(1, 2, 1)]);
      await waitFor('first message', () => b.got.messages.length === 1);
      // The link black-holes every byte (as a paused process or a dead route): no reset, no error, nothing sent.
      proxy.cut('stall');
      await waitFor('unreachable reported with nothing sent', () => a.got.unreachable.includes(2));
      expect(a.transport.peerStats(2)?.streamFailures).toBeGreaterThanOrEqual(1);
      proxy.heal();
      let term = 2;
      await waitFor('a message after the link heals', () => {
        a.transport.send([hb(1, 2, term++)]);
        return b.got.messages.some((m) => m.term >= 2);
      });
    } finally {
      await proxy.stop();
    }
  });

  it('refuses a stream from another cluster and from an unknown sender, and reports it to the sender', async () => {
    const b = await member(2, 'c1');
    const other = await member(1, 'c2'); // same id, other cluster
    other.transport.setPeer(2, b.address);
    b.transport.setPeer(1, other.address);
    other.transport.send([hb(1, 2, 1)]);
    await waitFor('sender sees the refusal', () => other.got.unreachable.includes(2));
    const stranger = await member(7, 'c1'); // right cluster, but b does not know member 7
    stranger.transport.setPeer(2, b.address);
    stranger.transport.send([hb(7, 2, 1)]);
    await waitFor('stranger sees the refusal', () => stranger.got.unreachable.includes(2));
    expect(b.got.messages).toEqual([]);
  });

  it('streams a snapshot in chunks; the receiver verifies it before handing the file over', async () => {
    const a = await member(1);
    const b = await member(2);
    link(a, 1, b, 2);
    const data = randomBytes(300 * 1024 + 17);
    const file = join(dir, 'snap-src');
    await writeFile(file, data);
    const message: SnapshotMessage = { type: 'snap', from: 1, to: 2, term: 4, snapshot: { metadata: { index: 42, term: 3, confState: { voters: [1, 2, 3], learners: [] } } } };
    await a.transport.sendSnapshot(message, file);
    expect(b.got.snapshots).toHaveLength(1);
    const got = b.got.snapshots[0];
    expect(got?.message).toEqual(message);
    expect(createHash('sha256').update(await readFile(got?.path ?? '')).digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
    expect((await readdir(join(dir, 'inbox-2'))).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('rejects a snapshot whose checksum does not match and leaves no file behind', async () => {
    const b = await member(2);
    b.transport.setPeer(1, '127.0.0.1:1');
    const client = new Client(b.address, credentials.createInsecure());
    const m = PEER_METHODS.sendSnapshot;
    const message: SnapshotMessage = { type: 'snap', from: 1, to: 2, term: 4, snapshot: { metadata: { index: 9, term: 3, confState: { voters: [1, 2], learners: [] } } } };
    const err = await new Promise<ServiceError | null>((resolve) => {
      const call = client.makeClientStreamRequest<WireSnapshotChunk, WireSnapshotAck>(m.path, m.requestSerialize, m.responseDeserialize, new Metadata(), {}, (e) => resolve(e));
      call.write({ clusterId: 'c1', from: 1, to: 2, message: encodeMessages([message]), totalBytes: 4 });
      call.write({ data: Uint8Array.of(1, 2, 3, 4) });
      call.write({ sha256: createHash('sha256').update(Uint8Array.of(1, 2, 3, 5)).digest('hex') });
      call.end();
    });
    client.close();
    expect(err?.details).toMatch(/checksum mismatch/);
    expect(b.got.snapshots).toEqual([]);
    expect(await readdir(join(dir, 'inbox-2'))).toEqual([]);
  });

  it('fails sendSnapshot to a peer that is down', async () => {
    const a = await member(1);
    a.transport.setPeer(2, '127.0.0.1:1');
    const file = join(dir, 'snap-src');
    await writeFile(file, randomBytes(1000));
    const message: SnapshotMessage = { type: 'snap', from: 1, to: 2, term: 4, snapshot: { metadata: { index: 42, term: 3, confState: { voters: [1, 2], learners: [] } } } };
    await expect(a.transport.sendSnapshot(message, file)).rejects.toThrow(/snapshot to 2 failed/);
  });
});
