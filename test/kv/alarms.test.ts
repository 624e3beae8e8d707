// The alarm table through the state machine: NOSPACE raised and cleared by commands in the log (etcd's
// AlarmRequest), what it refuses (puts, txns with puts: etcd's applierV3Capped) and what goes on (ranges, deletes,
// delete-only txns, compaction), that it survives a reopen and a snapshot restore, and etcd's quota cost.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import type { ApplyOutcome } from '../../src/kv/state-machine.js';
import { AlarmTable, NO_SPACE_MESSAGE, quotaCost } from '../../src/kv/alarms.js';
import { decodeEnvelope, encodeEnvelope } from '../../src/kv/codec.js';
import type { AlarmOp, Command, Op } from '../../src/kv/types.js';
import { LogBuilder, del, enc, put, tempDir, txn } from './helpers.js';

const putOp = (key: string, value: string): Op => ({ type: 'put', key: enc(key), value: enc(value), prevKv: false });
const delOp = (key: string): Op => ({ type: 'delete', range: { key: enc(key), end: new Uint8Array(0) }, prevKv: false });
const alarm = (action: AlarmOp['action'], memberId = 2, type: AlarmOp['alarm'] = 'NOSPACE'): Command => ({ type: 'alarm', action, memberId, alarm: type });

function outcome(o: ApplyOutcome | undefined): string {
  if (o === undefined) return 'missing';
  if (o.type === 'error') return `error ${o.error.code}: ${o.error.message}`;
  if (o.type === 'none') return 'none';
  return `result ${o.result.type}`;
}

describe('alarms in the state machine', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let sm: KvStateMachine;
  let log: LogBuilder;

  beforeEach(async () => {
    dir = await tempDir('alarms');
    sm = await KvStateMachine.open(join(dir.path, 'kv'));
    log = new LogBuilder();
  });
  afterEach(async () => {
    await sm.close();
    await dir.cleanup();
  });

  it('NOSPACE refuses what grows the store, lets reads, deletes and compaction through, and is disarmed by DEACTIVATE', async () => {
    await sm.apply([log.cmd(put('a', '1')), log.cmd(put('b', '2'))]);
    const [raised] = await sm.apply([log.cmd(alarm('activate'))]);
    expect(raised?.type === 'result' && raised.result.type === 'alarm' ? raised.result.alarms : undefined).toEqual([{ memberId: 2, alarm: 'NOSPACE' }]);
    expect(sm.alarmList()).toEqual([{ memberId: 2, alarm: 'NOSPACE' }]);
    const revision = sm.revision;

    const outs = await sm.apply([
      log.cmd(put('c', '3')),
      log.cmd(txn([], [putOp('d', '4')])),
      log.cmd(txn([], [], [putOp('e', '5')])), // a put in the branch not taken costs too (etcd's costTxn)
      log.cmd(del('a')),
      log.cmd(txn([], [delOp('b')])),
      log.cmd({ type: 'compact', revision: 2, physical: false }),
      log.cmd(alarm('activate')), // already raised: no change
    ]);
    expect(outs.map(outcome)).toEqual([
      `error NO_SPACE: ${NO_SPACE_MESSAGE}`,
      `error NO_SPACE: ${NO_SPACE_MESSAGE}`,
      `error NO_SPACE: ${NO_SPACE_MESSAGE}`,
      'result delete',
      'result txn',
      'result compact',
      'result alarm',
    ]);
    const again = outs[6];
    expect(again?.type === 'result' && again.result.type === 'alarm' ? again.result.alarms : undefined).toEqual([]);
    expect(sm.revision).toBe(revision + 2); // the two deletes moved it; nothing refused did
    const range = await sm.range({ key: enc('a'), end: enc('z'), limit: 0, keysOnly: false, countOnly: false });
    expect(range.kvs).toEqual([]);

    // Survives a reopen (it is in LevelDB with the batch).
    await sm.flush();
    await sm.close();
    sm = await KvStateMachine.open(join(dir.path, 'kv'));
    expect(sm.alarmList()).toEqual([{ memberId: 2, alarm: 'NOSPACE' }]);

    const [cleared, allowed] = await sm.apply([log.cmd(alarm('deactivate')), log.cmd(put('c', '3'))]);
    expect(cleared?.type === 'result' && cleared.result.type === 'alarm' ? cleared.result.alarms : undefined).toEqual([{ memberId: 2, alarm: 'NOSPACE' }]);
    expect(outcome(allowed)).toBe('result put');
    expect(sm.alarmList()).toEqual([]);
  });

  it('CORRUPT is listed but refuses nothing; alarms travel in snapshots', async () => {
    await sm.apply([log.cmd(alarm('activate', 3, 'CORRUPT')), log.cmd(alarm('activate', 1))]);
    expect(sm.alarmList()).toEqual([
      { memberId: 1, alarm: 'NOSPACE' },
      { memberId: 3, alarm: 'CORRUPT' },
    ]);
    const snap = await sm.createSnapshot(join(dir.path, 'snap'), 2);
    const other = await KvStateMachine.open(join(dir.path, 'kv2'));
    try {
      await other.restoreSnapshot(snap.path);
      expect(other.alarmList()).toEqual(sm.alarmList());
    } finally {
      await other.close();
    }
  });
});

describe('alarm codec and quota cost', () => {
  it('an alarm command round-trips through the envelope codec', () => {
    for (const cmd of [alarm('activate', 7), alarm('deactivate', 2 ** 31 - 1, 'CORRUPT')]) {
      expect(decodeEnvelope(encodeEnvelope({ clientId: 'c', seq: 3, command: cmd })).command).toEqual(cmd);
    }
  });

  it("costs as etcd's quota does: 256 + key + value per put, the larger txn branch, 0 for the rest", () => {
    expect(quotaCost(put('ab', 'xyz'))).toBe(256 + 5);
    expect(quotaCost(txn([], [putOp('a', '1'), putOp('b', '22')], [putOp('c', '')]))).toBe(2 * 256 + 5);
    expect(quotaCost(del('a'))).toBe(0);
    expect(quotaCost(txn([], [delOp('a')]))).toBe(0);
    expect(quotaCost({ type: 'compact', revision: 1, physical: false })).toBe(0);
  });

  it('the table encodes and loads back; a damaged record is refused', () => {
    const t = new AlarmTable();
    t.apply({ type: 'alarm', action: 'activate', memberId: 300, alarm: 'NOSPACE' });
    t.apply({ type: 'alarm', action: 'activate', memberId: 1, alarm: 'CORRUPT' });
    const u = new AlarmTable();
    u.load(t.encode());
    expect(u.list()).toEqual(t.list());
    expect(u.noSpace).toBe(true);
    const bad = t.encode();
    expect(() => u.load(bad.subarray(0, bad.length - 1))).toThrow(/alarm record is damaged/);
  });
});
