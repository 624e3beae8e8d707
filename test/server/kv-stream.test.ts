// The KV Stream method on its own (raw gRPC, no KvClient): calls answered by id in one stream, errors as the
// unary status would be, the in-flight bound, a half-close ending the stream after the last answer, and the
// client channel failing its calls when the stream breaks.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, credentials, Metadata, status as GrpcStatus } from '@grpc/grpc-js';
import type { ClientDuplexStream, ServiceError } from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KvStreamChannel } from '../../src/client/kv-stream.js';
import { KV_METHODS } from '../../src/protocol/proto.js';
import type { WireStreamAnswer, WireStreamAnswers, WireStreamCall, WireStreamCalls } from '../../src/protocol/proto.js';
import { STREAM_MAX_INFLIGHT_CALLS } from '../../src/server/kv-stream.js';
import { fromGrpcError } from '../../src/protocol/wire-errors.js';
import { runServer } from '../../src/server/serve.js';
import type { RunningServer } from '../../src/server/serve.js';
import { FakeCluster, FakeNode, testConfig } from './fake-node.js';
import { silentLogger } from './helpers.js';

let dir = '';
let server: RunningServer | undefined;
let node: FakeNode;
let grpcClient: Client;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'raftkv-stream-'));
  const c = new FakeCluster();
  node = new FakeNode(1, c);
  const fake = node;
  server = await runServer(testConfig(1, join(dir, 'n1'), { maxRequestBytes: 4096 }), { logger: silentLogger, startNode: () => Promise.resolve(fake) });
  c.addresses.set(1, server.clientAddress);
  grpcClient = new Client(server.clientAddress, credentials.createInsecure());
});

afterEach(async () => {
  grpcClient.close();
  await server?.stop();
  server = undefined;
  await rm(dir, { recursive: true, force: true });
});

function open(): { stream: ClientDuplexStream<WireStreamCalls, WireStreamAnswers>; answers: WireStreamAnswer[]; next: (n: number) => Promise<WireStreamAnswer[]>; ended: Promise<void> } {
  const m = KV_METHODS.stream;
  const stream = grpcClient.makeBidiStreamRequest<WireStreamCalls, WireStreamAnswers>(m.path, m.requestSerialize, m.responseDeserialize, new Metadata(), {});
  const answers: WireStreamAnswer[] = [];
  let waiter: { n: number; resolve: () => void } | undefined;
  stream.on('data', (msg: WireStreamAnswers) => {
    answers.push(...msg.answers);
    if (waiter !== undefined && answers.length >= waiter.n) waiter.resolve();
  });
  const ended = new Promise<void>((resolve, reject) => {
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  const next = (n: number): Promise<WireStreamAnswer[]> =>
    answers.length >= n ? Promise.resolve(answers.slice(0, n)) : new Promise((resolve) => (waiter = { n, resolve: () => resolve(answers.slice(0, n)) }));
  return { stream, answers, next, ended };
}

const put = (id: number, key: string, value: string | Uint8Array = 'v'): WireStreamCall => ({
  id,
  request: 'put',
  put: { key: Buffer.from(key), value: typeof value === 'string' ? Buffer.from(value) : value },
});

describe('KV Stream', () => {
  it('answers many calls on one stream by id, errors as the unary status, then ends after a half-close', async () => {
    const s = open();
    s.stream.write({
      calls: [put(1, 'a'), put(2, ''), { id: 3, request: 'get', get: { key: Buffer.from('a') } }, put(4, 'big', new Uint8Array(5000)), { id: 5 }],
    });
    s.stream.end();
    const got = new Map((await s.next(5)).map((a) => [a.id, a]));
    await s.ended; // the server ended the stream once every call was answered
    expect(got.get(1)?.response).toBe('put');
    expect(got.get(1)?.put?.header?.memberId).toBe(1);
    expect(got.get(3)?.response).toBe('get');
    for (const [id, message] of [
      [2, /key is not provided/],
      [4, /larger than the limit of 4096/],
      [5, /no request set/],
    ] as const) {
      const a = got.get(id);
      expect(a?.response).toBe('error');
      expect(a?.error?.code).toBe(GrpcStatus.INVALID_ARGUMENT);
      const se: ServiceError = Object.assign(new Error('x'), { code: a?.error?.code ?? 0, details: a?.error?.details ?? '', metadata: new Metadata() });
      const err = fromGrpcError(se);
      expect(err.message).toMatch(message);
      expect(a?.error?.metadata['raftkv-code']).toBe('INVALID_ARGUMENT');
    }
  });

  it(`refuses calls beyond ${STREAM_MAX_INFLIGHT_CALLS} in flight with RESOURCE_EXHAUSTED, and keeps the rest`, async () => {
    node.hang = true; // every call is held until its deadline
    const s = open();
    const total = STREAM_MAX_INFLIGHT_CALLS + 3;
    const calls: WireStreamCall[] = [];
    for (let id = 1; id <= total; id++) calls.push({ id, timeoutMs: 300, request: 'get', get: { key: Buffer.from('k') } });
    s.stream.write({ calls: calls.slice(0, 1000) });
    s.stream.write({ calls: calls.slice(1000) });
    const first = await s.next(3); // the refused ones come back at once
    expect(first.map((a) => a.id).sort((x, y) => x - y)).toEqual([total - 2, total - 1, total]);
    for (const a of first) expect(a.error?.metadata['raftkv-code']).toBe('RESOURCE_EXHAUSTED');
    const all = await s.next(total); // the held ones end at their deadline, as unary calls would
    expect(all.slice(3).every((a) => a.error?.metadata['raftkv-code'] === 'DEADLINE_EXCEEDED')).toBe(true);
    s.stream.end();
    await s.ended;
  });

  it('a channel fails its calls UNAVAILABLE when the stream breaks', async () => {
    const ch = new KvStreamChannel(grpcClient, 'test');
    expect((await ch.call('put', { key: Buffer.from('a'), value: Buffer.from('1') }, Date.now() + 2000)).header?.memberId).toBe(1);
    node.hang = true;
    const before = node.calls.length;
    const held = ch.call('get', { key: Buffer.from('a') }, Date.now() + 5000);
    while (node.calls.length === before) await new Promise((r) => setImmediate(r)); // until the node holds it
    const s = server;
    server = undefined;
    await s?.stop();
    const err = fromGrpcError(await held.catch((e: unknown) => e));
    expect(err.code).toBe('UNAVAILABLE');
    expect(ch.inflight).toBe(0);
  });

  it('a channel times out a call at its deadline and ignores the late answer', async () => {
    node.hang = true;
    const ch = new KvStreamChannel(grpcClient, 'test');
    const t0 = Date.now();
    const err = fromGrpcError(await ch.call('get', { key: Buffer.from('a') }, Date.now() + 150).catch((e: unknown) => e));
    expect(err.code).toBe('DEADLINE_EXCEEDED');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    node.hang = false;
    expect((await ch.call('get', { key: Buffer.from('a') }, Date.now() + 2000)).header?.memberId).toBe(1);
    ch.close();
  });
});
