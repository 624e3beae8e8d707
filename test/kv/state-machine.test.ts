import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { KvStateMachine, bootstrapMembers } from '../../src/kv/state-machine.js';
import type { ApplyOutcome } from '../../src/kv/state-machine.js';
import { prefixEnd } from '../../src/kv/types.js';
import type { CommandResult, KeyValue, KvLimits, OpResult, RangeRequest } from '../../src/kv/types.js';
import { isRaftKvError } from '../../src/shared/errors.js';
import { ALL, LogBuilder, dec, del, delRange, dumpState, enc, put, seedFromEnv, seededRng, tempDir, txn } from './helpers.js';

const limits: KvLimits = { maxKeyBytes: 64, maxValueBytes: 1024, maxTxnOps: 8, maxResponseBytes: 1024 * 1024 };

function result(o: ApplyOutcome | undefined): CommandResult {
  if (o?.type !== 'result') throw new Error(`expected a result, got ${JSON.stringify(o)}`);
  return o.result;
}

function errorCode(o: ApplyOutcome | undefined): string {
  if (o?.type !== 'error') throw new Error(`expected an error, got ${JSON.stringify(o)}`);
  return o.error.code;
}

const show = (kv: KeyValue | undefined): string =>
  kv === undefined ? '-' : `${dec(kv.key)}=${dec(kv.value)} c${kv.createRevision} m${kv.modRevision} v${kv.version}`;

function rangeReq(key: string, end = '', more: Partial<RangeRequest> = {}): RangeRequest {
  return { key: enc(key), end: enc(end), limit: 0, keysOnly: false, countOnly: false, ...more };
}

describe('KvStateMachine', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let sm: KvStateMachine;
  let log: LogBuilder;

  beforeEach(async () => {
    dir = await tempDir('sm');
    sm = await KvStateMachine.open(join(dir.path, 'kv'), { limits });
    log = new LogBuilder();
  });

  afterEach(async () => {
    await sm.close();
    await dir.cleanup();
  });

  const apply = async (): Promise<ApplyOutcome[]> => sm.apply(log.take());
  const get = async (key: string): Promise<string> => show((await sm.range(rangeReq(key))).kvs[0]);

  it('put keeps etcd metadata: createRevision, modRevision, version; delete resets them', async () => {
    expect(sm.revision).toBe(1); // an empty store is at revision 1, as etcd's
    log.cmd(put('a', '1')); // index 1, revision 2
    log.cmd(put('a', '2', true)); // index 2, revision 3
    log.noop(); // index 3: no revision
    log.cmd(put('a', '3', true)); // index 4, revision 4
    const out = await apply();
    expect(out[0]).toEqual({ type: 'result', result: { type: 'put', prevKv: undefined, revision: 2 } });
    const r1 = result(out[1]);
    expect(r1.type === 'put' ? show(r1.prevKv) : '').toBe('a=1 c2 m2 v1');
    expect(out[2]).toEqual({ type: 'none' });
    expect(await get('a')).toBe('a=3 c2 m4 v3');
    log.cmd(del('a', '', true)); // revision 5
    log.cmd(del('a', '', true)); // deletes nothing: no revision
    log.cmd(put('a', 'again')); // revision 6: a new generation
    const out2 = await apply();
    const d = result(out2[0]);
    expect(d.type === 'delete' ? [d.deleted, d.prevKvs.map(show), d.revision] : []).toEqual([1, ['a=3 c2 m4 v3'], 5]);
    expect(result(out2[1])).toEqual({ type: 'delete', deleted: 0, prevKvs: [], revision: 5 });
    expect(await get('a')).toBe('a=again c6 m6 v1');
    expect(sm.revision).toBe(6);
    expect(sm.appliedIndex).toBe(7);
    expect(sm.appliedTerm).toBe(1);
  });

  it('answers through onOutcomes; reads and the next apply see a batch before it reaches LevelDB (write-behind)', async () => {
    log.cmd(put('a', '1')); // 1
    await apply();
    log.cmd(put('a', '2', true)); // 2
    log.cmd(put('b', '1')); // 3
    let early: { outcomes: readonly ApplyOutcome[]; applied: number } | undefined;
    const done = sm.apply(log.take(), (outcomes) => {
      // Called before the batch reaches LevelDB; reads already see it through the write buffer.
      early = { outcomes, applied: sm.appliedIndex };
    });
    const outcomes = await done;
    expect(early?.applied).toBe(3);
    expect(early?.outcomes).toEqual(outcomes);
    const r = result(outcomes[0]);
    expect(r.type === 'put' ? show(r.prevKv) : '').toBe('a=1 c2 m2 v1');
    expect(sm.appliedIndex).toBe(3);
    expect(await get('a')).toBe('a=2 c2 m3 v2');
    await sm.flush(); // b=1 is in LevelDB now
    // The next apply reads what the previous batch wrote.
    log.cmd(put('a', '3', true)); // 4
    log.cmd(del('b', '', false)); // 5
    const r4 = result((await apply())[0]);
    expect(r4.type === 'put' ? show(r4.prevKv) : '').toBe('a=2 c2 m3 v2');
    expect([await get('a'), await get('b')]).toEqual(['a=3 c2 m5 v3', '-']); // a buffered delete hides LevelDB's b
    // flush() puts it in LevelDB: a reopen finds it.
    expect(await sm.flush()).toBe(5);
    await sm.close();
    sm = await KvStateMachine.open(join(dir.path, 'kv'), { limits });
    expect(sm.appliedIndex).toBe(5);
    expect([await get('a'), await get('b')]).toEqual(['a=3 c2 m5 v3', '-']);
    expect(sm.revision).toBe(6);
  });

  it('LevelDB flushes its memtable: its log stays near the write buffer size instead of growing with every write', async () => {
    // 24 MiB of writes to 1,000 keys. With the memtable never flushed (an option read as garbage), LevelDB's log
    // (and the process's memory, which holds the memtable) grew by every write.
    const value = 'v'.repeat(800);
    for (let round = 0; round < 30; round++) {
      for (let i = 0; i < 1000; i++) log.cmd(put(`k${i}`, value));
      await apply();
    }
    const kvDir = join(dir.path, 'kv');
    const current = (await readFile(join(kvDir, 'CURRENT'), 'utf8')).trim();
    const dbDir = join(kvDir, current);
    const logs = (await readdir(dbDir)).filter((f) => f.endsWith('.log'));
    // LevelDB's background thread deletes a log once its memtable is in a table, possibly between readdir and
    // stat: such a log was flushed (size 0 here). The live log is never deleted, so one size is always measured.
    const sizeOf = async (f: string): Promise<number | undefined> => {
      try {
        return (await stat(join(dbDir, f))).size;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
    };
    const sizes = (await Promise.all(logs.map(sizeOf))).filter((n) => n !== undefined);
    expect(sizes.length).toBeGreaterThan(0);
    expect(Math.max(...sizes)).toBeLessThan(8 * 1024 * 1024);
  });

  it('deletes single keys, ranges and prefixes; ranges honour limit, count, keysOnly, countOnly', async () => {
    for (const k of ['a', 'ab', 'abc', 'abd', 'b', 'c']) log.cmd(put(k, `v-${k}`));
    log.cmd(del('zzz'));
    const out = await apply();
    const missing = result(out[6]);
    expect(missing.type === 'delete' && missing.deleted).toBe(0);

    const all = await sm.range({ ...ALL, limit: 2, keysOnly: false, countOnly: false });
    expect(all.kvs.map(show)).toEqual(['a=v-a c2 m2 v1', 'ab=v-ab c3 m3 v1']);
    expect(all).toMatchObject({ more: true, count: 6 });
    // Plain Uint8Array copies, never Buffers or views of LevelDB's buffers (deep equality and gRPC rely on it).
    for (const kv of all.kvs) expect([kv.key.constructor, kv.value.constructor]).toEqual([Uint8Array, Uint8Array]);
    const keysOnly = await sm.range(rangeReq('ab', 'b', { keysOnly: true }));
    expect(keysOnly.kvs.map((kv) => [dec(kv.key), kv.value.length])).toEqual([
      ['ab', 0],
      ['abc', 0],
      ['abd', 0],
    ]);
    expect(await sm.range(rangeReq('a', 'c', { countOnly: true }))).toEqual({ kvs: [], more: false, count: 5, revision: 7 });

    log.cmd(delRange({ key: enc('ab'), end: prefixEnd(enc('ab')) }, true)); // prefix "ab"
    const p = result((await apply())[0]);
    expect(p.type === 'delete' ? p.prevKvs.map((kv) => dec(kv.key)) : []).toEqual(['ab', 'abc', 'abd']);
    expect((await sm.range({ ...ALL, limit: 0, keysOnly: true, countOnly: false })).kvs.map((kv) => dec(kv.key))).toEqual([
      'a',
      'b',
      'c',
    ]);
    log.cmd(del('b', 'c'));
    await apply();
    expect((await sm.range({ ...ALL, limit: 0, keysOnly: true, countOnly: false })).kvs.map((kv) => dec(kv.key))).toEqual([
      'a',
      'c',
    ]);
  });

  it('txn: compare-and-swap on value and on version, success and failure branches', async () => {
    log.cmd(put('lock', 'free'));
    await apply();
    const cas = (expect_: string, next: string) =>
      txn(
        [{ key: enc('lock'), target: 'value', op: '=', value: enc(expect_) }],
        [{ type: 'put', key: enc('lock'), value: enc(next), prevKv: true }],
        [{ type: 'range', request: rangeReq('lock') }],
      );
    log.cmd(cas('free', 'held-by-1'));
    log.cmd(cas('free', 'held-by-2')); // loses: sees the first txn's write in the same batch
    const [won, lost] = (await apply()).map(result);
    expect(won).toMatchObject({ type: 'txn', succeeded: true });
    expect(lost).toMatchObject({ type: 'txn', succeeded: false });
    const seen = lost?.type === 'txn' ? (lost.results[0] as OpResult) : undefined;
    expect(seen?.type === 'range' ? seen.result.kvs.map(show) : []).toEqual(['lock=held-by-1 c2 m3 v2']);
    expect([won?.type === 'txn' && won.revision, lost?.type === 'txn' && lost.revision]).toEqual([3, 3]);

    const byVersion = (v: number) =>
      txn([{ key: enc('lock'), target: 'version', op: '=', number: v }], [{ type: 'put', key: enc('lock'), value: enc(`v${v}`), prevKv: false }]);
    log.cmd(byVersion(1));
    log.cmd(byVersion(2));
    const [stale, fresh] = (await apply()).map(result);
    expect([stale?.type === 'txn' && stale.succeeded, fresh?.type === 'txn' && fresh.succeeded]).toEqual([false, true]);
    expect(await get('lock')).toBe('lock=v2 c2 m4 v3');
  });

  it('txn compares on create, mod, and missing keys; ops run in order', async () => {
    log.cmd(put('x', 'a')); // revision 2
    log.cmd(put('x', 'b')); // revision 3
    await apply();
    const t = (c: Parameters<typeof txn>[0]) => txn(c, [{ type: 'range', request: rangeReq('x') }]);
    const cases: [Parameters<typeof txn>[0], boolean][] = [
      [[{ key: enc('x'), target: 'create', op: '=', number: 2 }], true],
      [[{ key: enc('x'), target: 'mod', op: '>', number: 2 }], true],
      [[{ key: enc('x'), target: 'mod', op: '<', number: 3 }], false],
      [[{ key: enc('x'), target: 'mod', op: '>', number: -1 }], true], // etcd's numbers are signed
      [[{ key: enc('x'), target: 'lease', op: '=', number: 0 }], true],
      [[{ key: enc('x'), end: enc('y'), target: 'version', op: '=', number: 2 }], true], // every key of [x, y)
      [[{ key: enc('a'), end: enc('b'), target: 'version', op: '=', number: 5 }], false], // no key: as a missing one
      [[{ key: enc('a'), end: enc('b'), target: 'version', op: '=', number: 0 }], true],
      [[{ key: enc('x'), target: 'value', op: '>', value: enc('a') }], true],
      [[{ key: enc('x'), target: 'value', op: '!=', value: enc('b') }], false],
      [[{ key: enc('nope'), target: 'version', op: '=', number: 0 }], true],
      [[{ key: enc('nope'), target: 'create', op: '=', number: 0 }], true],
      [[{ key: enc('nope'), target: 'value', op: '=', value: enc('') }], false],
      [[{ key: enc('nope'), target: 'value', op: '!=', value: enc('b') }], false], // etcd: absent fails every value compare
      [
        [
          { key: enc('x'), target: 'version', op: '=', number: 2 },
          { key: enc('x'), target: 'version', op: '=', number: 3 },
        ],
        false,
      ],
    ];
    for (const [c] of cases) log.cmd(t(c));
    const out = (await apply()).map(result);
    expect(out.map((r) => r.type === 'txn' && r.succeeded)).toEqual(cases.map(([, ok]) => ok));

    // etcd refuses a branch that writes one key twice, or puts a key it deletes: DUPLICATE_KEY, nothing applied.
    const twice = txn([], [{ type: 'put', key: enc('y'), value: enc('1'), prevKv: false }, { type: 'put', key: enc('y'), value: enc('2'), prevKv: false }]);
    const putDeleted = txn([], [], [{ type: 'delete', range: { key: enc('x'), end: enc('z') }, prevKv: false }, { type: 'put', key: enc('y'), value: enc('1'), prevKv: false }]);
    log.cmd(twice);
    log.cmd(putDeleted); // the branch not taken is checked too
    expect((await apply()).map(errorCode)).toEqual(['DUPLICATE_KEY', 'DUPLICATE_KEY']);
    // Sequential ops: a range sees the txn's own put, a delete then hides a key from the next range.
    log.cmd(
      txn(
        [],
        [
          { type: 'put', key: enc('y'), value: enc('2'), prevKv: true },
          { type: 'range', request: rangeReq('x', 'z') },
          { type: 'delete', range: { key: enc('x'), end: enc('') }, prevKv: false },
          { type: 'range', request: rangeReq('x', 'z') },
        ],
      ),
    );
    const r = result((await apply())[0]);
    if (r.type !== 'txn') throw new Error('txn expected');
    const [first, rng, , last] = r.results;
    // One revision for the whole txn (the txns above changed nothing): every write of it at revision 4.
    expect(first?.type === 'put' ? [first.prevKv, first.revision] : []).toEqual([undefined, 4]);
    expect(rng?.type === 'range' ? [rng.result.kvs.map(show), rng.result.revision] : []).toEqual([['x=b c2 m3 v2', 'y=2 c4 m4 v1'], 4]);
    expect(last?.type === 'range' ? last.result.kvs.map(show) : []).toEqual(['y=2 c4 m4 v1']);
    expect(await get('x')).toBe('-');
    expect([r.revision, sm.revision]).toEqual([4, 4]);
  });

  it('limits are enforced again on apply as error outcomes; bad entries do not stop the log', async () => {
    log.cmd(put('k', 'x'.repeat(1025)));
    log.cmd(put('', 'v'));
    log.raw(Uint8Array.of(9, 9, 9)); // garbage in a normal entry
    log.cmd(put('ok', 'v'));
    const out = await apply();
    expect(out.slice(0, 3).map(errorCode)).toEqual(['INVALID_ARGUMENT', 'INVALID_ARGUMENT', 'DATA_CORRUPTION']);
    expect(result(out[3]).type).toBe('put');
    expect(sm.appliedIndex).toBe(4);
    await expect(sm.range(rangeReq('', 'a'))).rejects.toSatisfy((e) => isRaftKvError(e, 'INVALID_ARGUMENT'));
    expect((await sm.range(rangeReq('b', 'a'))).count).toBe(0); // an end below the key: empty, as etcd answers
  });

  it('range limit 0 means no limit; an answer beyond maxResponseBytes is RESOURCE_EXHAUSTED', async () => {
    const small = await KvStateMachine.open(join(dir.path, 'small'), { limits: { ...limits, maxResponseBytes: 10 } });
    try {
      const l = new LogBuilder();
      for (let i = 0; i < 5; i++) l.cmd(put(`k${i}`, 'v')); // 3 bytes of key and value each
      await small.apply(l.take());
      await expect(small.range({ ...ALL, limit: 0, keysOnly: false, countOnly: false })).rejects.toSatisfy(
        (e) => isRaftKvError(e, 'RESOURCE_EXHAUSTED') && /maxResponseBytes/.test((e as Error).message),
      );
      const keys = await small.range({ ...ALL, limit: 0, keysOnly: true, countOnly: false }); // 10 bytes: fits
      expect([keys.kvs.length, keys.more, keys.count]).toEqual([5, false, 5]);
      const r = await small.range({ ...ALL, limit: 3, keysOnly: false, countOnly: false });
      expect([r.kvs.length, r.more, r.count]).toEqual([3, true, 5]);
    } finally {
      await small.close();
    }
  });

  it('a txn range beyond maxResponseBytes is answered whole: apply decides by the log alone, and readTxn as apply does', async () => {
    const small = await KvStateMachine.open(join(dir.path, 'small'), { limits: { ...limits, maxResponseBytes: 10 } });
    try {
      const l = new LogBuilder();
      for (let i = 0; i < 5; i++) l.cmd(put(`k${i}`, 'v')); // 15 bytes of keys and values in all
      const everything: RangeRequest = { ...ALL, limit: 0, keysOnly: false, countOnly: false };
      const readOnly = txn([], [{ type: 'range', request: everything }]);
      // A write txn (a put on the branch not taken) through the log: the same ranges, logged.
      const logged = txn([], [{ type: 'range', request: everything }], [{ type: 'put', key: enc('never'), value: enc('x'), prevKv: false }]);
      l.cmd(logged);
      const out = await small.apply(l.take());
      const viaLog = result(out[5]);
      expect(viaLog.type === 'txn' && viaLog.results[0]?.type === 'range' ? viaLog.results[0].result.kvs.length : -1).toBe(5);
      if (readOnly.type !== 'txn') throw new Error('helper built no txn');
      const viaRead = await small.readTxn(readOnly);
      expect(viaRead.result).toEqual(viaLog);
      expect(viaRead.index).toBe(small.appliedIndex);
      // A Range outside a txn is bounded.
      await expect(small.range(everything)).rejects.toSatisfy((e) => isRaftKvError(e, 'RESOURCE_EXHAUSTED'));
    } finally {
      await small.close();
    }
  });

  it('readTxn decides compares, nested txns and past revisions as apply does', async () => {
    log.cmd(put('a', '1'));
    log.cmd(put('b', '2'));
    log.cmd(put('a', '3'));
    await apply();
    const ops: OpResult[] = [];
    const nested = txn([{ key: enc('b'), target: 'value', op: '=', value: enc('2') }], [{ type: 'range', request: rangeReq('a', '', { revision: 2 }) }]);
    if (nested.type !== 'txn') throw new Error('helper built no txn');
    const t = txn([{ key: enc('a'), target: 'version', op: '=', number: 2 }], [nested, { type: 'range', request: rangeReq('a', 'c') }], [{ type: 'range', request: rangeReq('b') }]);
    if (t.type !== 'txn') throw new Error('helper built no txn');
    const viaRead = await sm.readTxn(t);
    log.cmd(txn([...t.compares], [...t.success], [...t.failure, { type: 'put', key: enc('never'), value: enc('x'), prevKv: false }]));
    const viaLog = result((await apply())[0]);
    expect(viaRead.result).toEqual(viaLog);
    expect(viaRead.result.succeeded).toBe(true);
    expect(viaRead.result.revision).toBe(4);
    ops.push(...viaRead.result.results);
    expect(ops[0]?.type === 'txn' && ops[0].results[0]?.type === 'range' ? dec(ops[0].results[0].result.kvs[0]?.value ?? enc('-')) : '').toBe('1');
    expect(sm.revision).toBe(4); // neither changed anything
  });

  it('sessions: a retry returns the first answer without applying again; older seqs are refused', async () => {
    log.cmd(put('a', '1'));
    log.cmd(put('a', '2', true), 'c1', 1); // 2
    log.cmd(put('a', '3', true), 'c1', 1); // 3: retry of seq 1 (e.g. re-proposed after a leader change)
    log.cmd(put('a', '4', true), 'c1', 2); // 4
    log.cmd(put('a', '5', true), 'c1', 1); // 5: stale
    const out = await apply();
    expect(out[2]).toEqual(out[1]);
    expect(show(result(out[1]).type === 'put' ? (result(out[1]) as { prevKv: KeyValue }).prevKv : undefined)).toBe('a=1 c2 m2 v1');
    expect(errorCode(out[4])).toBe('FAILED_PRECONDITION');
    expect(await get('a')).toBe('a=4 c2 m4 v3');

    // A retry in a later batch (and after a restart) replays the answer stored in LevelDB, errors included.
    log.cmd(put('', 'bad'), 'c2', 7); // 6: an error answer
    await apply();
    await sm.close();
    sm = await KvStateMachine.open(join(dir.path, 'kv'), { limits });
    log.cmd(put('a', 'retry', true), 'c1', 2); // 7
    log.cmd(put('fixed', 'x'), 'c2', 7); // 8: same seq, different payload: still the first answer
    const again = await apply();
    expect(again[0]).toEqual(out[3]);
    expect(errorCode(again[1])).toBe('INVALID_ARGUMENT');
    expect(await get('a')).toBe('a=4 c2 m4 v3');
    expect(await get('fixed')).toBe('-');
    expect(sm.sessionCount()).toBe(2);
  });

  it(`session expiry is log-driven and identical on two replicas fed the same entries in different batches`, async () => {
    const seed = seedFromEnv();
    const rng = seededRng(seed);
    const opts = { limits, sessionTtlEntries: 20, maxSessions: 5 };
    const a = await KvStateMachine.open(join(dir.path, 'a'), opts);
    const b = await KvStateMachine.open(join(dir.path, 'b'), opts);
    try {
      const seqs = new Map<string, number>();
      for (let i = 0; i < 300; i++) {
        const client = `c${rng.int(9)}`;
        const retry = rng.int(4) === 0 && seqs.has(client);
        const seq = retry ? (seqs.get(client) ?? 0) : (seqs.get(client) ?? 0) + 1;
        seqs.set(client, seq);
        if (rng.int(10) === 0) log.noop();
        else log.cmd(put(`k${rng.int(20)}`, `${client}/${seq}`), client, seq);
      }
      const entries = log.take();
      await a.apply(entries);
      for (let i = 0; i < entries.length; ) {
        const n = 1 + rng.int(17);
        await b.apply(entries.slice(i, i + n));
        i += n;
      }
      expect(a.sessionCount(), `seed ${seed}`).toBeLessThanOrEqual(5);
      expect(await dumpState(b, join(dir.path, 'snap-b')), `seed ${seed}`).toEqual(await dumpState(a, join(dir.path, 'snap-a')));

      // TTL: after 20 entries without use every session is gone.
      for (let i = 0; i < 20; i++) log.noop();
      await a.apply(log.take());
      expect(a.sessionCount()).toBe(0);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('restart resumes exactly after the last applied entry; old entries are skipped, gaps are bugs', async () => {
    for (let i = 1; i <= 50; i++) log.cmd(txn([], [{ type: 'put', key: enc('n'), value: enc(String(i)), prevKv: false }]));
    const first = log.take();
    await sm.apply(first.slice(0, 30));
    await sm.apply(first.slice(30));
    await sm.close();
    sm = await KvStateMachine.open(join(dir.path, 'kv'), { limits });
    expect([sm.appliedIndex, sm.appliedTerm]).toEqual([50, 1]);
    log.term = 2;
    log.cmd(put('after', 'x'));
    const out = await sm.apply([...first.slice(10), ...log.take()]); // overlap with applied entries
    expect(out.slice(0, 40).every((o) => o.type === 'none')).toBe(true);
    expect(result(out[40]).type).toBe('put');
    expect(await get('n')).toBe('n=50 c2 m51 v50');
    expect([sm.appliedIndex, sm.appliedTerm]).toEqual([51, 2]);
    const gap = { index: 53, term: 2, type: 'normal' as const, data: new Uint8Array(0) };
    await expect(sm.apply([gap])).rejects.toThrow(/apply gap/);
  });

  // (ENOSPC is not this: a full disk stalls the flush instead, see disk-full.test.ts.)
  it('a background LevelDB write that fails breaks the state machine and tells onFlushFailure; a reopen resumes at the last flush', async () => {
    log.cmd(put('kept', '1'));
    await apply();
    await sm.flush();
    const failures: Error[] = [];
    sm.onFlushFailure = (err) => failures.push(err);
    const db = (sm as unknown as { db: { batch: (ops: unknown[]) => Promise<void> } }).db;
    db.batch = () => Promise.reject(new Error('IO error: /x/000005.log: Input/output error'));
    log.cmd(put('lost', '1'));
    await apply(); // answered from the write buffer
    expect(await get('lost')).toBe('lost=1 c3 m3 v1');
    await expect(sm.flush()).rejects.toThrow(/reopen/);
    expect(failures.map((e) => e.message)).toEqual(['IO error: /x/000005.log: Input/output error']);
    log.cmd(put('after', '1'));
    await expect(apply()).rejects.toThrow(/reopen/);
    await sm.close();
    sm = await KvStateMachine.open(join(dir.path, 'kv'), { limits });
    expect(sm.appliedIndex).toBe(1); // the driver replays 2.. from its WAL
    expect([await get('kept'), await get('lost')]).toEqual(['kept=1 c2 m2 v1', '-']);
    expect(sm.revision).toBe(2); // the revision is in the same batch as the writes
  });

  it('a batch failing midway applies nothing; the state machine refuses use until reopened', async () => {
    log.cmd(put('before', '1'));
    await apply();
    await sm.flush();
    log.cmd(put('a', '1'), 'c1', 1);
    log.conf('add-learner', 9, '127.0.0.1:9', '127.0.0.1:19');
    log.raw(Uint8Array.of(7, 7, 7), 'conf-change'); // undecodable: a corrupt log, not a client error
    log.cmd(put('b', '1'));
    await expect(apply()).rejects.toThrow(/conf change/);
    await expect(sm.range(rangeReq('a'))).rejects.toThrow(/reopen/);
    await sm.close();
    sm = await KvStateMachine.open(join(dir.path, 'kv'), { limits });
    expect(sm.appliedIndex).toBe(1);
    expect([await get('before'), await get('a'), await get('b')]).toEqual(['before=1 c2 m2 v1', '-', '-']);
    expect(sm.members()).toEqual([]);
    expect(sm.sessionCount()).toBe(0);
  });

  it('applies conf changes to the member table and confState like the core does', async () => {
    await bootstrapMembers(sm, [
      { id: 1, peerAddress: '127.0.0.1:1', clientAddress: '127.0.0.1:11', learner: false },
      { id: 2, peerAddress: '127.0.0.1:2', clientAddress: '127.0.0.1:12', learner: false },
    ]);
    await expect(bootstrapMembers(sm, [])).rejects.toSatisfy((e) => isRaftKvError(e, 'FAILED_PRECONDITION'));
    log.conf('add-learner', 3, '127.0.0.1:3', '127.0.0.1:13');
    log.conf('add-voter', 3); // promote: keeps the addresses
    log.conf('add-learner', 1); // demotion is refused by the core's rule: ignored
    log.conf('remove', 2);
    log.conf('add-learner', 4, '127.0.0.1:4', '127.0.0.1:14');
    const out = await apply();
    expect(out.every((o) => o.type === 'none')).toBe(true);
    expect(sm.confState()).toEqual({ voters: [1, 3], learners: [4] });
    expect(sm.members()).toEqual([
      { id: 1, peerAddress: '127.0.0.1:1', clientAddress: '127.0.0.1:11', learner: false },
      { id: 3, peerAddress: '127.0.0.1:3', clientAddress: '127.0.0.1:13', learner: false },
      { id: 4, peerAddress: '127.0.0.1:4', clientAddress: '127.0.0.1:14', learner: true },
    ]);
    await sm.close();
    sm = await KvStateMachine.open(join(dir.path, 'kv'), { limits });
    expect(sm.confState()).toEqual({ voters: [1, 3], learners: [4] });
    expect(sm.appliedIndex).toBe(5);
  });

  it('reports its size on disk', async () => {
    for (let i = 0; i < 200; i++) log.cmd(put(`key-${i}`, 'v'.repeat(500)));
    await apply();
    await sm.flush();
    expect(await sm.dataSizeBytes()).toBeGreaterThan(200 * 500 * 0.5);
  });
});
