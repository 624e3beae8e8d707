// The write-behind on its own (write-behind.ts), over a real LevelDB store and a manual timer: reads see the
// newest buffered write, batches land in order on the timer or past the size limit, a failed batch breaks it,
// a full disk stalls it with everything readable, and retry() lands the waiting batches in order.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RaftKvError } from '../../src/shared/errors.js';
import { DEFAULT_WRITE_BUFFER_BYTES, openDb } from '../../src/kv/level-store.js';
import type { Db } from '../../src/kv/level-store.js';
import { APPLY_FLUSH_INTERVAL_MS, APPLY_FLUSH_MAX_KEYS, WriteBehind } from '../../src/kv/write-behind.js';
import type { KvTimers, WriteBehindHost } from '../../src/kv/write-behind.js';
import type { BatchOp } from '../../src/kv/write-buffer.js';
import { tempDir } from './helpers.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : new TextDecoder().decode(b));
const put = (k: string, v: string): BatchOp => ({ type: 'put', key: enc(k), value: enc(v) });
const del = (k: string): BatchOp => ({ type: 'del', key: enc(k) });

/** Timers fired by hand: `due` holds what is pending with its delay. */
class ManualTimers implements KvTimers {
  due: { fn: () => void; delayMs: number }[] = [];
  setTimeout(fn: () => void, delayMs: number): () => void {
    const t = { fn, delayMs };
    this.due.push(t);
    return () => {
      this.due = this.due.filter((d) => d !== t);
    };
  }
  fire(): void {
    const now = this.due;
    this.due = [];
    for (const t of now) t.fn();
  }
}

interface Rig {
  wb: WriteBehind;
  db: () => Db;
  timers: ManualTimers;
  failWith: { err: Error | undefined }; // thrown at the 'flush' failpoint while set
  failures: Error[];
  stalls: RaftKvError[];
  commits: { n: number }; // batches landed
  reopens: { n: number }; // reopen() calls
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function rig(): Promise<Rig> {
  const dir = await tempDir('write-behind');
  const path = join(dir.path, 'db');
  let db = await openDb(path, DEFAULT_WRITE_BUFFER_BYTES, 'create');
  cleanups.push(async () => {
    await db.close();
    await dir.cleanup();
  });
  const timers = new ManualTimers();
  const r: Omit<Rig, 'wb'> = { db: () => db, timers, failWith: { err: undefined }, failures: [], stalls: [], commits: { n: 0 }, reopens: { n: 0 } };
  const host: WriteBehindHost = {
    dir: dir.path,
    db: () => db,
    reopen: async () => {
      r.reopens.n++;
      await db.close();
      db = await openDb(path, DEFAULT_WRITE_BUFFER_BYTES, 'existing');
    },
    appliedIndex: () => 0,
    logger: undefined,
    failpoint: () => {
      if (r.failWith.err !== undefined) throw r.failWith.err;
    },
    onFailure: (err) => r.failures.push(err),
    onStalled: (err) => r.stalls.push(err),
    onCommit: () => {
      r.commits.n++;
    },
  };
  return { ...r, wb: new WriteBehind(host, timers) };
}

const NO_SPACE = (): Error => new Error('IO error: /x/000005.log: No space left on device');

/** A rig whose first batch (a=1) found the disk full. */
async function stalledRig(): Promise<Rig> {
  const r = await rig();
  r.wb.add([put('a', '1')]);
  r.failWith.err = NO_SPACE();
  await r.wb.start();
  return r;
}

describe('the write-behind', () => {
  it('serves buffered writes, newest first, and lands them on the timer', async () => {
    const r = await rig();
    r.wb.add([put('a', '1'), put('b', '1')]);
    expect(r.timers.due.map((t) => t.delayMs)).toEqual([APPLY_FLUSH_INTERVAL_MS]);
    r.wb.add([put('a', '2')]); // the timer is already set: no second one
    expect(r.timers.due).toHaveLength(1);
    expect(dec(r.wb.getSync(enc('a')))).toBe('2');
    expect(r.db().getSync(enc('a'))).toBeUndefined(); // not in LevelDB yet
    r.timers.fire();
    const landing = r.wb.start(); // the batch the timer started
    // While it is being written, a newer buffer shadows it: a deletion reads as missing.
    r.wb.add([del('b')]);
    expect(r.wb.getSync(enc('b'))).toBeUndefined();
    expect([...r.wb.newestInRange(enc('a'), enc('c')).values()].map((o) => o.type).sort()).toEqual(['del', 'put']);
    await landing;
    expect(dec(r.db().getSync(enc('a')))).toBe('2');
    expect(dec(r.db().getSync(enc('b')))).toBe('1'); // the deletion is still buffered
    await r.wb.flushAll();
    expect(r.db().getSync(enc('b'))).toBeUndefined();
    expect(r.wb.newestInRange(enc('a'), enc('c')).size).toBe(0);
    expect(r.commits.n).toBe(2);
    expect(r.timers.due).toHaveLength(0); // flushAll cancelled the pending timer
  });

  it('flushes at once past the size limit', async () => {
    const r = await rig();
    const ops: BatchOp[] = [];
    for (let i = 0; i < APPLY_FLUSH_MAX_KEYS; i++) ops.push(put(`k${i}`, 'v'));
    r.wb.add(ops);
    expect(r.timers.due).toHaveLength(0); // no timer: the flush started
    await r.wb.start();
    expect(r.commits.n).toBe(1);
    expect(dec(r.db().getSync(enc(`k${APPLY_FLUSH_MAX_KEYS - 1}`)))).toBe('v');
  });

  it('a failed batch breaks it once; the buffers still shadow LevelDB for reads', async () => {
    const r = await rig();
    r.wb.add([put('a', '1')]);
    r.failWith.err = new Error('IO error: bad block');
    await r.wb.start();
    expect(r.failures.map((e) => e.message)).toEqual(['IO error: bad block']);
    expect(r.wb.broken?.message).toBe('IO error: bad block');
    expect(() => r.wb.checkNotBroken()).toThrow(/a LevelDB batch failed earlier; reopen the state machine \(IO error: bad block\)/);
    await expect(r.wb.flushAll()).rejects.toThrow(/reopen the state machine/);
    r.failWith.err = undefined;
    r.wb.add([put('b', '1')]);
    await r.wb.start(); // nothing more is written once broken
    expect(r.db().getSync(enc('b'))).toBeUndefined();
    expect(dec(r.wb.getSync(enc('a')))).toBe('1');
    expect(r.failures).toHaveLength(1);
  });

  it('a full disk stalls it with every batch readable; retry lands them in order', async () => {
    const r = await stalledRig();
    expect(r.stalls.map((e) => e.code)).toEqual(['DISK_FULL']);
    expect(r.wb.stalled?.code).toBe('DISK_FULL');
    expect(r.wb.broken).toBeUndefined();
    r.wb.add([put('a', '2'), put('b', '1')]); // queues behind the batch that did not fit
    await r.wb.flushIfPossible(); // returns with the batches still waiting
    await expect(r.wb.flushAll()).rejects.toSatisfy((e) => e instanceof RaftKvError && e.code === 'DISK_FULL');
    expect(dec(r.wb.getSync(enc('a')))).toBe('2');
    expect(r.db().getSync(enc('a'))).toBeUndefined();
    // Still full: the retry fails, and reopens the store once (LevelDB's sticky error) only while there is room.
    expect(await r.wb.retry()).toBe(false);
    expect(r.wb.stalled?.code).toBe('DISK_FULL');
    expect(r.reopens.n).toBe(1); // this machine's disk has room for a reopen
    r.failWith.err = undefined;
    r.wb.add([put('c', '1')]); // added while stalled: flushed once the stall is over
    expect(await r.wb.retry()).toBe(true);
    expect(r.wb.stalled).toBeUndefined();
    await r.wb.flushAll();
    expect(['a', 'b', 'c'].map((k) => dec(r.db().getSync(enc(k))))).toEqual(['2', '1', '1']);
    expect(r.failures).toHaveLength(0);
  });

  it('an error other than ENOSPC during a retry breaks it', async () => {
    const r = await stalledRig();
    r.failWith.err = new Error('IO error: corruption');
    expect(await r.wb.retry()).toBe(false);
    expect(r.failures.map((e) => e.message)).toEqual(['IO error: corruption']);
    expect(r.wb.broken).toBeDefined();
  });

  it('breakWith keeps the first error and names a full disk DISK_FULL', async () => {
    const r = await rig();
    const e = r.wb.breakWith(NO_SPACE());
    expect(e).toBeInstanceOf(RaftKvError);
    expect((e as RaftKvError).code).toBe('DISK_FULL');
    r.wb.breakWith(new Error('later'));
    expect(r.wb.broken?.message).toMatch(/No space left on device/);
  });
});
