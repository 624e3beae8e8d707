// src/protocol/etcd-proto.ts: 64-bit integers as exact bigints both ways (every edge of int64 and uint64,
// checked against hand-computed varints), out-of-range and non-bigint values refused, proto3 defaults, oneofs,
// bytes; the ServiceDefinitions on an in-process grpc-js server and client; and as a client of a real
// single-member etcd (Debian's etcd-server), whose member and cluster ids must come back equal to what
// `etcdctl -w json endpoint status` prints. The real-etcd part is skipped without etcd (fails under CI).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManagedProcess } from '../../bench/proc-group.js';
import {
  Compare_CompareResult,
  Compare_CompareTarget,
  EMPTY_RANGE_END_SENT,
  ETCD_SERVICES,
  etcdBidiStream,
  etcdCodec,
  etcdUnary,
  Event_EventType,
  RangeRequest_SortOrder,
  type EtcdServiceHandlers,
  type RangeResponse,
  type WatchResponse,
} from '../../src/protocol/etcd-proto.js';
import { describeWithSystem } from '../system-deps.js';

const TWO_53_PLUS_1 = (1n << 53n) + 1n;
const INT64_MAX = (1n << 63n) - 1n;
const INT64_MIN = -(1n << 63n);
const UINT64_MAX = (1n << 64n) - 1n;

/** Protobuf varint of a non-negative bigint below 2^64, computed by hand. */
function varint(n: bigint): number[] {
  const out: number[] = [];
  let v = n;
  do {
    const low = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v === 0n ? low : low | 0x80);
  } while (v !== 0n);
  return out;
}

describe('etcd-proto codecs', () => {
  it('tells a range_end sent empty from one not sent, at the top and inside a txn (etcd tells them apart)', () => {
    const range = etcdCodec('etcdserverpb.RangeRequest');
    const sent = (o: object): boolean => (o as { [EMPTY_RANGE_END_SENT]?: boolean })[EMPTY_RANGE_END_SENT] === true;
    const withEmptyEnd = Uint8Array.of(0x0a, 0x01, 0x61, 0x12, 0x00); // key "a", range_end of 0 bytes
    expect(sent(range.decode(withEmptyEnd))).toBe(true);
    expect(sent(range.decode(Uint8Array.of(0x0a, 0x01, 0x61)))).toBe(false);
    expect(sent(range.decode(Uint8Array.of(0x0a, 0x01, 0x61, 0x12, 0x01, 0x62)))).toBe(false); // "b": not empty
    expect(Object.keys(range.decode(withEmptyEnd))).not.toContain(String(EMPTY_RANGE_END_SENT)); // not enumerable
    // TxnRequest.success (2) = RequestOp { request_range (1) = the RangeRequest above }
    const op = [0x0a, withEmptyEnd.length, ...withEmptyEnd];
    const txn = etcdCodec('etcdserverpb.TxnRequest').decode(Uint8Array.of(0x12, op.length, ...op));
    expect(sent(txn.success[0]?.requestRange ?? {})).toBe(true);
  });

  const header = etcdCodec('etcdserverpb.ResponseHeader');

  it.each([0n, TWO_53_PLUS_1, INT64_MAX, INT64_MIN])('int64 %s round-trips exactly, on the wire as a 10-byte-max varint', (v) => {
    const bytes = header.encode({ revision: v });
    // field 3, wire type 0; negative int64 goes out as its two's complement in 64 bits (10 bytes).
    const expected = v === 0n ? [] : [0x18, ...varint(BigInt.asUintN(64, v))];
    expect([...bytes]).toEqual(expected);
    const back = header.decode(bytes);
    expect(back.revision).toBe(v);
    expect(typeof back.revision).toBe('bigint');
  });

  it.each([0n, TWO_53_PLUS_1, INT64_MAX, 1n << 63n, UINT64_MAX])('uint64 %s round-trips exactly', (v) => {
    const bytes = header.encode({ clusterId: v, memberId: v, raftTerm: v });
    const back = header.decode(bytes);
    expect(back).toEqual({ clusterId: v, memberId: v, revision: 0n, raftTerm: v });
    if (v !== 0n) expect([...bytes.subarray(0, 1 + varint(v).length)]).toEqual([0x08, ...varint(v)]);
  });

  it('2^64-1 as uint64 and -1 as int64 are the same wire bytes, read back by their own type', () => {
    const u = header.encode({ clusterId: UINT64_MAX });
    const s = header.encode({ revision: -1n });
    expect([...u.subarray(1)]).toEqual([...s.subarray(1)]);
    expect(header.decode(s).revision).toBe(-1n);
  });

  it('64-bit values deep inside repeated and oneof messages are bigints too', () => {
    const txn = etcdCodec('etcdserverpb.TxnResponse');
    const back = txn.decode(
      txn.encode({
        header: { clusterId: UINT64_MAX, revision: INT64_MAX },
        succeeded: true,
        responses: [{ responseRange: { kvs: [{ key: Buffer.from('k'), lease: INT64_MIN, modRevision: TWO_53_PLUS_1 }], count: 1n } }],
      }),
    );
    expect(back.header?.clusterId).toBe(UINT64_MAX);
    expect(back.responses[0]?.response).toBe('responseRange');
    const kv = back.responses[0]?.responseRange?.kvs[0];
    expect(kv?.lease).toBe(INT64_MIN);
    expect(kv?.modRevision).toBe(TWO_53_PLUS_1);
    expect(kv?.version).toBe(0n);
  });

  it('refuses a 64-bit value out of its range or not a bigint, instead of wrapping or rounding it', () => {
    expect(() => header.encode({ clusterId: -1n })).toThrow(RangeError);
    expect(() => header.encode({ clusterId: UINT64_MAX + 1n })).toThrow(/clusterId \(uint64\) out of range/);
    expect(() => header.encode({ revision: INT64_MAX + 1n })).toThrow(RangeError);
    expect(() => header.encode({ revision: INT64_MIN - 1n })).toThrow(RangeError);
    const untyped = { revision: 5 } as unknown as Parameters<typeof header.encode>[0];
    expect(() => header.encode(untyped)).toThrow(TypeError);
    const txn = etcdCodec('etcdserverpb.TxnRequest');
    expect(() => txn.encode({ success: [{ requestPut: { key: Buffer.from('a'), lease: 1n << 63n } }] })).toThrow(
      /TxnRequest\.success\.requestPut\.lease/,
    );
  });

  it('reads unset fields as proto3 defaults: 0n, false, empty Buffer, [], 0 for enums, null for messages', () => {
    expect(etcdCodec('etcdserverpb.RangeResponse').decode(Buffer.alloc(0))).toEqual({ header: null, kvs: [], more: false, count: 0n });
    const range = etcdCodec('etcdserverpb.RangeRequest').decode(Buffer.alloc(0));
    expect(range.key).toBeInstanceOf(Buffer);
    expect(range.key.length).toBe(0);
    expect(range.limit).toBe(0n);
    expect(range.sortOrder).toBe(RangeRequest_SortOrder.NONE);
    // An empty oneof: no member, and no virtual field naming one.
    expect(etcdCodec('etcdserverpb.RequestOp').decode(Buffer.alloc(0))).toEqual({});
  });

  it('keeps enums as numbers, bytes as Buffers (from any Uint8Array), and names the oneof member set', () => {
    const compare = etcdCodec('etcdserverpb.Compare');
    const back = compare.decode(
      compare.encode({ result: Compare_CompareResult.NOT_EQUAL, target: Compare_CompareTarget.VALUE, key: new Uint8Array([0, 255]), value: new Uint8Array([7]) }),
    );
    expect(back.result).toBe(3);
    expect(back.target).toBe(Compare_CompareTarget.VALUE);
    expect(Buffer.isBuffer(back.key)).toBe(true);
    expect([...back.key]).toEqual([0, 255]);
    expect(back.targetUnion).toBe('value');
    expect([...(back.value ?? [])]).toEqual([7]);
    // A oneof member set to its default value is still set (proto3 oneofs have presence).
    const zero = compare.decode(compare.encode({ target: Compare_CompareTarget.VERSION, version: 0n }));
    expect(zero.targetUnion).toBe('version');
    expect(zero.version).toBe(0n);
  });

  it('gives a ServiceDefinition for each of the six services with every method and its stream flags', () => {
    expect(Object.keys(ETCD_SERVICES).sort()).toEqual(['Auth', 'Cluster', 'KV', 'Lease', 'Maintenance', 'Watch']);
    expect(Object.keys(ETCD_SERVICES.KV)).toEqual(['Range', 'Put', 'DeleteRange', 'Txn', 'Compact']);
    expect(ETCD_SERVICES.Watch.Watch).toMatchObject({ path: '/etcdserverpb.Watch/Watch', requestStream: true, responseStream: true });
    expect(ETCD_SERVICES.Maintenance.Snapshot).toMatchObject({ requestStream: false, responseStream: true });
    expect(ETCD_SERVICES.Lease.LeaseKeepAlive).toMatchObject({ requestStream: true, responseStream: true });
    expect(Object.keys(ETCD_SERVICES.Auth)).toHaveLength(17);
  });
});

describe('etcd-proto services on an in-process grpc-js server', () => {
  const server = new grpc.Server();
  let client: grpc.Client | undefined;
  let address = '';

  beforeAll(async () => {
    const kv: EtcdServiceHandlers<'KV'> = {
      Range: (call, callback) => {
        // Echo the request's 64-bit values back through a response, so both directions are exercised.
        const r = call.request;
        callback(null, { header: { clusterId: UINT64_MAX, memberId: r.limit < 0n ? 0n : r.limit, revision: r.revision }, count: r.minModRevision, kvs: [{ key: r.key, lease: r.maxModRevision }] });
      },
      Put: (_call, callback) => callback({ code: grpc.status.UNIMPLEMENTED }),
      DeleteRange: (_call, callback) => callback({ code: grpc.status.UNIMPLEMENTED }),
      Txn: (_call, callback) => callback({ code: grpc.status.UNIMPLEMENTED }),
      Compact: (_call, callback) => callback({ code: grpc.status.UNIMPLEMENTED }),
    };
    server.addService(ETCD_SERVICES.KV, kv);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err === null ? resolve(p) : reject(err))),
    );
    address = `127.0.0.1:${port}`;
    client = new grpc.Client(address, grpc.credentials.createInsecure());
  });

  afterAll(() => {
    client?.close();
    server.forceShutdown();
  });

  it('a typed unary call carries the 64-bit edges both ways', async () => {
    const res = await etcdUnary(client as grpc.Client, 'KV', 'Range', {
      key: Buffer.from('k'),
      limit: INT64_MAX,
      revision: INT64_MIN,
      minModRevision: TWO_53_PLUS_1,
      maxModRevision: -1n,
    }, { timeoutMs: 5000 });
    expect(res.header).toEqual({ clusterId: UINT64_MAX, memberId: INT64_MAX, revision: INT64_MIN, raftTerm: 0n });
    expect(res.count).toBe(TWO_53_PLUS_1);
    expect(res.kvs[0]?.lease).toBe(-1n);
    expect(res.kvs[0]?.key.toString()).toBe('k');
  });

  it('an untyped client from makeGenericClientConstructor uses the same definitions', async () => {
    const Kv = grpc.makeGenericClientConstructor(ETCD_SERVICES.KV, 'KV');
    const kv = new Kv(address, grpc.credentials.createInsecure());
    try {
      const res = await new Promise<RangeResponse>((resolve, reject) => {
        kv.makeUnaryRequest(
          ETCD_SERVICES.KV.Range?.path ?? '',
          etcdCodec('etcdserverpb.RangeRequest').encode,
          etcdCodec('etcdserverpb.RangeResponse').decode,
          { key: Buffer.from('x'), revision: 42n },
          (err, value) => (err !== null || value === undefined ? reject(err ?? new Error('no response')) : resolve(value)),
        );
      });
      expect(res.header?.revision).toBe(42n);
      expect(typeof kv.range).toBe('function'); // the camelCase alias grpc-js adds from originalName
    } finally {
      kv.close();
    }
  });

  it('an unimplemented method fails with its gRPC status', async () => {
    await expect(etcdUnary(client as grpc.Client, 'KV', 'Put', { key: Buffer.from('a') }, { timeoutMs: 5000 })).rejects.toMatchObject({
      code: grpc.status.UNIMPLEMENTED,
    });
  });
});

// ------------------------------------------------------------------ against a real etcd

/** True if nothing listens on 127.0.0.1:port now. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

/**
 * Two free adjacent loopback ports in 31000-31999: below Linux's ephemeral range (so no outgoing connection
 * takes one between this probe and etcd's listen), away from etcd's 2379/2380, the bench's 23790-23812, the
 * EtcdCluster test's 25000-29999 and the EtcdTarget test's 30000-30999.
 */
async function freePortPair(): Promise<number> {
  for (let i = 0; i < 500; i++) {
    const port = 31000 + ((process.pid + i * 7) % 500) * 2;
    if ((await portFree(port)) && (await portFree(port + 1))) return port;
  }
  throw new Error('no two free ports in 31000-31999');
}

describeWithSystem(['etcd', 'etcdctl'], 'etcd-proto as a client of a real etcd 3.4', () => {
  let dir = '';
  let etcd: ManagedProcess | undefined;
  let client: grpc.Client | undefined;
  let endpoint = '';
  const c = (): grpc.Client => client as grpc.Client;

  const etcdctl = (...args: string[]): string =>
    execFileSync('etcdctl', ['--endpoints', endpoint, ...args], { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' } });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'raftkv-etcd-proto-'));
    const clientPort = await freePortPair();
    const peerUrl = `http://127.0.0.1:${clientPort + 1}`;
    endpoint = `127.0.0.1:${clientPort}`;
    etcd = new ManagedProcess('etcd', 'etcd', [
      '--name', 'solo', '--data-dir', join(dir, 'data'),
      '--listen-client-urls', `http://${endpoint}`, '--advertise-client-urls', `http://${endpoint}`,
      '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl, '--initial-cluster', `solo=${peerUrl}`,
    ], join(dir, 'etcd.log'));
    etcd.start();
    client = new grpc.Client(endpoint, grpc.credentials.createInsecure());
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        const status = await etcdUnary(c(), 'Maintenance', 'Status', {}, { timeoutMs: 1000 });
        if (status.leader !== 0n) break;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`etcd did not start (log ${dir}/etcd.log): ${String(err)}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  afterAll(async () => {
    client?.close();
    await etcd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("Status and MemberList headers carry the member and cluster ids etcdctl prints, exactly, as bigints", async () => {
    const json = etcdctl('-w', 'json', 'endpoint', 'status');
    // etcdctl prints the ids as JSON numbers above 2^53: read the digits, never through JSON.parse.
    const printed = (field: string): bigint => {
      const m = new RegExp(`"${field}":(\\d+)`).exec(json);
      if (m?.[1] === undefined) throw new Error(`no ${field} in ${json}`);
      return BigInt(m[1]);
    };
    const clusterId = printed('cluster_id');
    const memberId = printed('member_id');

    const status = await etcdUnary(c(), 'Maintenance', 'Status', {}, { timeoutMs: 5000 });
    expect(typeof status.header?.memberId).toBe('bigint');
    expect(status.header?.clusterId).toBe(clusterId);
    expect(status.header?.memberId).toBe(memberId);
    expect(status.leader).toBe(memberId); // a single member leads itself
    expect(status.version).toBe('3.4.23');
    expect(status.storageVersion).toBe(''); // a 3.6 field: 3.4 never sets it, so it reads as its default

    const members = await etcdUnary(c(), 'Cluster', 'MemberList', { linearizable: true }, { timeoutMs: 5000 });
    expect(members.header?.clusterId).toBe(clusterId);
    expect(members.header?.memberId).toBe(memberId);
    expect(members.members).toHaveLength(1);
    expect(members.members[0]).toMatchObject({ ID: memberId, name: 'solo', clientURLs: [`http://${endpoint}`], isLearner: false });
  });

  it('Put, Range and Txn: revisions as bigints, values that etcdctl reads and writes', async () => {
    const put = await etcdUnary(c(), 'KV', 'Put', { key: Buffer.from('proto-a'), value: Buffer.from('one') }, { timeoutMs: 5000 });
    const rev = put.header?.revision ?? 0n;
    expect(rev).toBeGreaterThan(1n);
    expect(etcdctl('get', 'proto-a', '--print-value-only').trim()).toBe('one');

    etcdctl('put', 'proto-b', 'two');
    const range = await etcdUnary(c(), 'KV', 'Range', { key: Buffer.from('proto-'), rangeEnd: Buffer.from('proto.'), sortOrder: RangeRequest_SortOrder.DESCEND }, { timeoutMs: 5000 });
    expect(range.count).toBe(2n);
    expect(range.kvs.map((kv) => kv.key.toString())).toEqual(['proto-b', 'proto-a']);
    expect(range.kvs[1]).toMatchObject({ createRevision: rev, modRevision: rev, version: 1n, lease: 0n });
    expect(range.kvs[1]?.value.toString()).toBe('one');

    const txn = await etcdUnary(c(), 'KV', 'Txn', {
      compare: [{ key: Buffer.from('proto-a'), target: Compare_CompareTarget.VERSION, result: Compare_CompareResult.EQUAL, version: 1n }],
      success: [{ requestPut: { key: Buffer.from('proto-a'), value: Buffer.from('uno'), prevKv: true } }, { requestRange: { key: Buffer.from('proto-a') } }],
      failure: [],
    }, { timeoutMs: 5000 });
    expect(txn.succeeded).toBe(true);
    expect(txn.responses.map((r) => r.response)).toEqual(['responsePut', 'responseRange']);
    expect(txn.responses[0]?.responsePut?.prevKv?.value.toString()).toBe('one');
    expect(txn.responses[1]?.responseRange?.kvs[0]?.version).toBe(2n);
    expect(txn.header?.revision).toBe(rev + 2n);
    expect(etcdctl('get', 'proto-a', '--print-value-only').trim()).toBe('uno');
  });

  it('a lease id (a random int64) is the one etcdctl lists', async () => {
    const grant = await etcdUnary(c(), 'Lease', 'LeaseGrant', { TTL: 60n }, { timeoutMs: 5000 });
    expect(grant.TTL).toBe(60n);
    const listed = etcdctl('lease', 'list').trim().split('\n').slice(1).map((hex) => BigInt(`0x${hex.trim()}`));
    expect(listed).toContain(grant.ID);
    await etcdUnary(c(), 'Lease', 'LeaseRevoke', { ID: grant.ID }, { timeoutMs: 5000 });
  });

  it('a Watch stream reports a put made by etcdctl', async () => {
    const stream = etcdBidiStream(c(), 'Watch', 'Watch');
    const responses: WatchResponse[] = [];
    const gotEvent = new Promise<void>((resolve, reject) => {
      stream.on('data', (r: WatchResponse) => {
        responses.push(r);
        if (r.created) etcdctl('put', 'proto-watched', 'seen');
        if (r.events.length > 0) resolve();
      });
      stream.on('error', reject);
      setTimeout(() => reject(new Error('no watch event within 10 s')), 10_000).unref();
    });
    stream.write({ createRequest: { key: Buffer.from('proto-watched') } });
    try {
      await gotEvent;
    } finally {
      stream.cancel();
    }
    const event = responses.find((r) => r.events.length > 0)?.events[0];
    expect(event?.type).toBe(Event_EventType.PUT);
    expect(event?.kv?.value.toString()).toBe('seen');
    expect(typeof event?.kv?.modRevision).toBe('bigint');
  });
});
