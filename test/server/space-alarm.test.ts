// The NOSPACE trigger (space-alarm.ts) on a manual clock: a write past the quota is refused with etcd's ErrNoSpace
// and raises the alarm once; writes that cost nothing pass; the periodic check raises it for a full disk or a
// store over quota; nothing is raised twice while the alarm stands; --quota-backend-bytes 0 and < 0 as etcd's.
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { ManualClock } from '../../src/shared/clock.js';
import { DEFAULT_QUOTA_BACKEND_BYTES, SPACE_CHECK_INTERVAL_MS, SpaceAlarm, effectiveQuotaBytes } from '../../src/server/space-alarm.js';
import type { AlarmMember, AlarmOp, Command } from '../../src/kv/types.js';
import type { NodeStatus } from '../../src/node/api.js';
import { RaftKvError } from '../../src/shared/errors.js';

const enc = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s));
const put = (bytes: number): Command => ({ type: 'put', key: enc('k'), value: new Uint8Array(bytes), prevKv: false });

function setup(quotaBytes: number) {
  const state = { backendSizeBytes: 0, diskFull: false, alarms: [] as AlarmMember[] };
  const raised: AlarmOp[] = [];
  const clock = new ManualClock();
  const node = {
    id: 2,
    status: (): NodeStatus => ({ dataSizeBytes: 0, backendSizeBytes: state.backendSizeBytes, diskFull: state.diskFull }) as unknown as NodeStatus,
    alarms: (): readonly AlarmMember[] => state.alarms,
  };
  const alarm = new SpaceAlarm({
    node,
    raise: (op) => {
      raised.push(op);
      state.alarms = [{ memberId: op.memberId, alarm: op.alarm }];
      return Promise.resolve();
    },
    quotaBytes,
    clock,
    logger: pino({ level: 'silent' }),
    timeoutMs: 1000,
  });
  return { state, raised, clock, alarm };
}

const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('SpaceAlarm', () => {
  it('refuses a write that reaches the quota with NO_SPACE and raises NOSPACE for this member once', async () => {
    const { state, raised, alarm } = setup(10_000);
    state.backendSizeBytes = 9_000;
    expect(() => alarm.check(put(100))).not.toThrow(); // 9,000 + 256 + 1 + 100 < 10,000
    let thrown: unknown;
    try {
      alarm.check(put(1000));
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(RaftKvError);
    expect((thrown as RaftKvError).code).toBe('NO_SPACE');
    expect((thrown as RaftKvError).message).toBe('etcdserver: mvcc: database space exceeded');
    await flush();
    expect(raised).toEqual([{ type: 'alarm', action: 'activate', memberId: 2, alarm: 'NOSPACE' }]);
    expect(() => alarm.check(put(1000))).toThrow(/database space exceeded/);
    await flush();
    expect(raised.length).toBe(1); // standing: not raised again
    // Deletes, compaction and alarm requests cost nothing: never refused here.
    expect(() => alarm.check({ type: 'delete', range: { key: enc('k'), end: new Uint8Array(0) }, prevKv: false })).not.toThrow();
    expect(() => alarm.check({ type: 'compact', revision: 3, physical: false })).not.toThrow();
  });

  it('the periodic check raises NOSPACE for a truly full disk, and for a store over quota', async () => {
    const full = setup(1_000_000);
    full.alarm.start();
    full.clock.advance(SPACE_CHECK_INTERVAL_MS);
    await flush();
    expect(full.raised).toEqual([]);
    full.state.diskFull = true;
    full.clock.advance(SPACE_CHECK_INTERVAL_MS);
    await flush();
    expect(full.raised.map((o) => `${o.action} ${o.memberId} ${o.alarm}`)).toEqual(['activate 2 NOSPACE']);
    full.alarm.stop();

    const over = setup(1_000_000);
    over.state.backendSizeBytes = 1_000_000;
    over.alarm.start();
    over.clock.advance(SPACE_CHECK_INTERVAL_MS);
    await flush();
    expect(over.raised.length).toBe(1);
    over.alarm.stop();
  });

  it("--quota-backend-bytes: 0 is etcd's 2 GiB default, a negative value no quota", () => {
    expect(effectiveQuotaBytes(undefined)).toBe(DEFAULT_QUOTA_BACKEND_BYTES);
    expect(effectiveQuotaBytes(0)).toBe(2 * 1024 ** 3);
    expect(effectiveQuotaBytes(-1)).toBe(Number.POSITIVE_INFINITY);
    expect(effectiveQuotaBytes(4096)).toBe(4096);
  });
});
