// Leases in the state machine: grants, puts that attach and move keys, a revoke that deletes its keys in one
// revision (and tells watchers in one change), checkpoints, etcd's refusals, and leases surviving a reopen and
// a snapshot restore.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import type { AppliedChange, ApplyOutcome } from '../../src/kv/state-machine.js';
import type { Command } from '../../src/kv/types.js';
import { MAX_LEASE_TTL_SECONDS, checkLeaseGrant } from '../../src/kv/leases.js';
import { LogBuilder, dec, del, enc, put, tempDir } from './helpers.js';

const grant = (id: number, ttlSeconds = 10): Command => ({ type: 'lease-grant', id, ttlSeconds });
const revoke = (id: number): Command => ({ type: 'lease-revoke', id });
const putLease = (key: string, value: string, lease: number): Command => ({ type: 'put', key: enc(key), value: enc(value), prevKv: false, lease });

function code(o: ApplyOutcome | undefined): string {
  if (o?.type !== 'error') throw new Error(`expected an error, got ${JSON.stringify(o)}`);
  return o.error.code;
}

describe('leases in the state machine', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let log: LogBuilder;
  let sm: KvStateMachine;
  let changes: AppliedChange[];

  beforeEach(async () => {
    dir = await tempDir('leases');
    log = new LogBuilder();
    sm = await KvStateMachine.open(join(dir.path, 'kv'));
    changes = [];
    sm.onApplied = (c) => changes.push(c);
  });
  afterEach(async () => {
    await sm.close();
    await dir.cleanup();
  });

  it('a revoke deletes every key of the lease in one revision, in key order, and only those', async () => {
    log.cmd(grant(7)); // revision stays 1
    log.cmd(putLease('b', '1', 7)); // 2
    log.cmd(putLease('a', '1', 7)); // 3
    log.cmd(put('c', 'no lease')); // 4
    log.cmd(putLease('moved', '1', 7)); // 5
    log.cmd(grant(8));
    log.cmd(putLease('moved', '2', 8)); // 6: now on lease 8
    const out = await sm.apply(log.take());
    expect(out.map((o) => o.type)).toEqual(Array(7).fill('result'));
    expect(sm.revision).toBe(6);
    expect(sm.lease(7)).toEqual({ id: 7, ttlSeconds: 10, remainingSeconds: 0 });
    expect((await sm.attachedKeys(7)).map(dec)).toEqual(['a', 'b']);
    changes = [];
    const [r] = await sm.apply([log.cmd(revoke(7))]);
    expect(r).toEqual({ type: 'result', result: { type: 'lease-revoke', revision: 7 } });
    expect(sm.revision).toBe(7);
    expect(sm.lease(7)).toBeUndefined();
    expect(changes).toHaveLength(1);
    expect(changes[0]?.events.map((e) => [e.type, dec(e.kv.key), e.kv.modRevision, e.sub, e.prevKv?.lease])).toEqual([
      ['delete', 'a', 7, 0, 7],
      ['delete', 'b', 7, 1, 7],
    ]);
    expect([...(changes[0]?.leases ?? new Map())]).toEqual([[7, undefined]]);
    const keys = (await sm.range({ key: enc('a'), end: Uint8Array.of(0), limit: 0, keysOnly: true, countOnly: false })).kvs.map((kv) => dec(kv.key));
    expect(keys).toEqual(['c', 'moved']);
    // A lease without keys: the revision does not move.
    const [r8] = await sm.apply([log.cmd(del('moved')), log.cmd(revoke(8))]).then((o) => o.slice(1));
    expect(r8).toEqual({ type: 'result', result: { type: 'lease-revoke', revision: 8 } });
    expect(sm.revision).toBe(8);
  });

  it("etcd's refusals: a lease that exists, one that does not, a TTL too large, a put naming no lease", async () => {
    const out = await sm.apply([
      log.cmd(grant(5)),
      log.cmd(grant(5)),
      log.cmd(revoke(6)),
      log.cmd(grant(9, MAX_LEASE_TTL_SECONDS + 1)),
      log.cmd(putLease('k', 'v', 6)),
    ]);
    expect(out[0]?.type).toBe('result');
    expect([code(out[1]), code(out[2]), code(out[3]), code(out[4])]).toEqual(['LEASE_EXISTS', 'LEASE_NOT_FOUND', 'LEASE_TTL_TOO_LARGE', 'LEASE_NOT_FOUND']);
    // Ids the API cannot carry exactly are refused before they reach the log (the log cannot even encode a negative one).
    expect(() => checkLeaseGrant({ type: 'lease-grant', id: -3, ttlSeconds: 5 })).toThrow(/id must be/);
    expect(() => checkLeaseGrant({ type: 'lease-grant', id: 2 ** 53, ttlSeconds: 5 })).toThrow(/id must be/);
    expect(out[1]?.type === 'error' && out[1].error.message).toBe('etcdserver: lease already exists');
    expect(sm.revision).toBe(1);
  });

  it('a grant and a put with it in one batch, then a revoke in the next, are seen in order', async () => {
    const out = await sm.apply([log.cmd(grant(3)), log.cmd(putLease('x', '1', 3)), log.cmd(putLease('x', '2', 3))]);
    expect(out.every((o) => o.type === 'result')).toBe(true);
    expect((await sm.attachedKeys(3)).map(dec)).toEqual(['x']);
    await sm.apply([log.cmd(put('x', 'detached'))]); // a put without a lease detaches the key
    expect(await sm.attachedKeys(3)).toEqual([]);
    await sm.apply([log.cmd(revoke(3))]);
    expect(dec((await sm.range({ key: enc('x'), end: new Uint8Array(0), limit: 0, keysOnly: false, countOnly: false })).kvs[0]?.value ?? enc('-'))).toBe('detached');
  });

  it('checkpoints store the remaining TTL; leases and attachments survive a reopen and a snapshot restore', async () => {
    await sm.apply([log.cmd(grant(11, 600)), log.cmd(putLease('p', '1', 11)), log.cmd(grant(12, 60))]);
    await sm.apply([log.cmd({ type: 'lease-checkpoint', checkpoints: [{ id: 11, remainingSeconds: 300 }, { id: 99, remainingSeconds: 5 }] })]);
    expect(sm.lease(11)).toEqual({ id: 11, ttlSeconds: 600, remainingSeconds: 300 });
    const snap = await sm.createSnapshot(join(dir.path, 'snap'), 2);
    await sm.close();
    sm = await KvStateMachine.open(join(dir.path, 'kv'));
    expect(sm.leaseList().sort((a, b) => a.id - b.id)).toEqual([
      { id: 11, ttlSeconds: 600, remainingSeconds: 300 },
      { id: 12, ttlSeconds: 60, remainingSeconds: 0 },
    ]);
    await sm.apply([log.cmd(revoke(12)), log.cmd(grant(13))]);
    const other = await KvStateMachine.open(join(dir.path, 'kv2'));
    const restored: AppliedChange[] = [];
    other.onApplied = (c) => restored.push(c);
    await other.restoreSnapshot(snap.path);
    expect(other.leaseList().map((l) => l.id).sort()).toEqual([11, 12]);
    expect((await other.attachedKeys(11)).map(dec)).toEqual(['p']);
    expect(restored).toEqual([{ revision: other.revision, events: [], leases: new Map(), restored: true }]);
    await other.close();
  });
});
