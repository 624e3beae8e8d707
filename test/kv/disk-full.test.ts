// The state machine when LevelDB finds the disk full (issue 10, case 5): applied batches wait in memory,
// reads (point and range) still see them, nothing breaks, and retryFlush() lands them in order once there is
// space. Also the key-space digest: kept by apply, reproduced by a scan, carried through snapshots.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import type { KvFailPoint } from '../../src/kv/state-machine.js';
import { formatDigest } from '../../src/kv/key-space-digest.js';
import { ALL, LogBuilder, dec, del, put, tempDir } from './helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function open(path: string, full: { on: boolean }): Promise<KvStateMachine> {
  const sm = await KvStateMachine.open(path, {
    failpoint: (p: KvFailPoint) => {
      if (p === 'flush' && full.on) throw new Error('IO error: /x/000005.log: No space left on device');
    },
  });
  cleanups.unshift(() => sm.close());
  return sm;
}

async function values(sm: KvStateMachine): Promise<string[]> {
  const r = await sm.range({ ...ALL, limit: 0, keysOnly: false, countOnly: false });
  return r.kvs.map((kv) => `${dec(kv.key)}=${dec(kv.value)}`);
}

describe('a full disk under the state machine', () => {
  it('keeps applied batches readable, stays usable, and lands them in order when space returns', async () => {
    const dir = await tempDir('disk-full');
    cleanups.push(dir.cleanup);
    const path = join(dir.path, 'kv');
    const full = { on: false };
    const sm = await open(path, full);
    let stalls = 0;
    sm.onFlushStalled = () => stalls++;
    sm.onFlushFailure = (err) => {
      throw new Error(`must not break: ${err.message}`);
    };
    const log = new LogBuilder();
    await sm.apply([log.cmd(put('a', '1')), log.cmd(put('b', '1'))]);
    await sm.flush();
    full.on = true;
    await sm.apply([log.cmd(put('a', '2')), log.cmd(put('c', '1'))]);
    await sm.apply([log.cmd(del('b')), log.cmd(put('d', '1'))]);
    await sm.flush().catch(() => undefined);
    expect(sm.isFlushStalled).toBe(true);
    expect(stalls).toBe(1);
    // Reads see every applied batch, through the point and the range paths.
    const point = await sm.range({ key: Buffer.from('a'), end: new Uint8Array(0), limit: 0, keysOnly: false, countOnly: false });
    expect(point.kvs.map((kv) => dec(kv.value))).toEqual(['2']);
    expect(await values(sm)).toEqual(['a=2', 'c=1', 'd=1']);
    // Applies go on (a follower applies what the leader committed), and a snapshot waits for space.
    await sm.apply([log.cmd(put('e', '1'))]);
    await expect(sm.createSnapshot(join(dir.path, 'snap'), 1)).rejects.toMatchObject({ code: 'DISK_FULL' });
    expect(await sm.retryFlush()).toBe(false);
    full.on = false;
    expect(await sm.retryFlush()).toBe(true);
    expect(sm.isFlushStalled).toBe(false);
    await sm.flush();
    const applied = sm.appliedIndex;
    const digest = formatDigest(sm.digestNow().digest);
    await sm.close();
    cleanups.shift();
    // Everything reached LevelDB, in order: a reopen (which rescans against the digest) finds it all.
    const again = await open(path, full);
    expect(again.appliedIndex).toBe(applied);
    expect(await values(again)).toEqual(['a=2', 'c=1', 'd=1', 'e=1']);
    expect(formatDigest(again.digestNow().digest)).toBe(digest);
  });

  it('a range read while a retry reopens the store: both finish (the read does not wait for the flush)', async () => {
    const dir = await tempDir('disk-full-reopen');
    cleanups.push(dir.cleanup);
    const full = { on: false };
    const sm = await open(join(dir.path, 'kv'), full);
    sm.onFlushStalled = () => undefined;
    const log = new LogBuilder();
    full.on = true;
    await sm.apply([log.cmd(put('a', '1'))]);
    await sm.flush().catch(() => undefined);
    expect(sm.isFlushStalled).toBe(true);
    const retry = sm.retryFlush(); // fails, reopens the store (once the reads in flight are done), fails again
    const read = values(sm);
    const both = Promise.all([retry, read]);
    let timer: NodeJS.Timeout | undefined;
    const deadlock = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('deadlock: the read and the retry wait for each other')), 10_000);
    });
    try {
      const [landed, seen] = await Promise.race([both, deadlock]);
      expect(landed).toBe(false);
      expect(seen).toEqual(['a=1']);
    } finally {
      clearTimeout(timer);
    }
  });

  it('a crash while batches wait loses only what the WAL replays: LevelDB holds a whole-batch prefix', async () => {
    const dir = await tempDir('disk-full-crash');
    cleanups.push(dir.cleanup);
    const path = join(dir.path, 'kv');
    const full = { on: false };
    const sm = await open(path, full);
    sm.onFlushStalled = () => undefined;
    const log = new LogBuilder();
    await sm.apply([log.cmd(put('a', '1'))]);
    await sm.flush();
    full.on = true;
    await sm.apply([log.cmd(put('a', '2'))]);
    await sm.flush().catch(() => undefined);
    await sm.close(); // the waiting batch is dropped, as a crash would
    cleanups.shift();
    full.on = false;
    const again = await open(path, full);
    expect(again.appliedIndex).toBe(1); // the WAL replays entry 2
    expect(await values(again)).toEqual(['a=1']);
  });
});

describe('the key-space digest', () => {
  it('is the same for the same applied state however it was reached, and survives a snapshot restore', async () => {
    const dir = await tempDir('digest');
    cleanups.push(dir.cleanup);
    const full = { on: false };
    const one = await open(join(dir.path, 'one'), full);
    const two = await open(join(dir.path, 'two'), full);
    const log = new LogBuilder();
    const entries = [log.cmd(put('x', '1')), log.cmd(put('y', '1')), log.cmd(put('x', '2')), log.cmd(del('y')), log.cmd(put('z', '3'))];
    await one.apply(entries);
    for (const e of entries) await two.apply([e]); // other batch boundaries
    expect(formatDigest(one.digestNow().digest)).toBe(formatDigest(two.digestNow().digest));
    expect(one.digestAt(3)).toEqual(two.digestAt(3));
    expect(one.digestAt(99)).toBeUndefined(); // not applied yet
    expect((await one.verifyKeySpace()).digest).toEqual(one.digestNow().digest);
    const snap = await one.createSnapshot(join(dir.path, 'snap'), 1);
    const three = await open(join(dir.path, 'three'), full);
    await three.restoreSnapshot(snap.path);
    expect(three.digestNow()).toEqual(one.digestNow());
    expect((await three.verifyKeySpace()).digest).toEqual(one.digestNow().digest);
  });
});
