// The watch hub over a real state machine, under a seeded workload: watchers open at random revisions (some
// already compacted) on random ranges with random filters, behind sinks that fill up and drain at random, while
// puts, deletes, txns, lease revokes and compactions are applied. Every watcher's stream is checked against a
// model of the events: ordered, never repeated, never skipped (reliable), each revision whole in one message
// (atomic), prev_kv right, filters applied, a compacted start or a fall behind compaction told as such, and
// progress notifications never ahead of what was delivered.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import type { Command, KeyRange, KvEvent } from '../../src/kv/types.js';
import { prefixEnd } from '../../src/kv/types.js';
import { WatchHub } from '../../src/watch/watch-hub.js';
import type { WatchMessage, WatchSink, WatchSpec, Watcher } from '../../src/watch/watch-hub.js';
import type { Rng } from '../../src/raft/types.js';
import { LogBuilder, dec, enc, seedFromEnv, seededRng, tempDir } from '../kv/helpers.js';

interface ModelEvent {
  readonly rev: number;
  readonly sub: number;
  readonly type: 'put' | 'delete';
  readonly key: string;
  readonly value: string;
  readonly prev: string | undefined;
}

/** The store as the workload changes it, and every event it must produce. */
class Model {
  readonly live = new Map<string, { value: string; lease: number }>();
  readonly events: ModelEvent[] = [];
  revision = 1;
  compacted = -1;
  planned = -1; // the last compaction generated (its batch may not be applied yet)
  leasesGranted = 0;

  apply(cmd: Command): void {
    const changes: Omit<ModelEvent, 'rev' | 'sub'>[] = [];
    const putKey = (key: string, value: string, lease: number): void => {
      changes.push({ type: 'put', key, value, prev: this.live.get(key)?.value });
      this.live.set(key, { value, lease });
    };
    const delKeys = (keys: string[]): void => {
      for (const key of keys.sort()) {
        changes.push({ type: 'delete', key, value: '', prev: this.live.get(key)?.value });
        this.live.delete(key);
      }
    };
    switch (cmd.type) {
      case 'put':
        putKey(dec(cmd.key), dec(cmd.value), cmd.lease ?? 0);
        break;
      case 'delete': {
        const lo = dec(cmd.range.key);
        const hi = cmd.range.end.length === 0 ? undefined : dec(cmd.range.end);
        delKeys([...this.live.keys()].filter((k) => (hi === undefined ? k === lo : k >= lo && k < hi)));
        break;
      }
      case 'txn':
        for (const op of cmd.success) if (op.type === 'put') putKey(dec(op.key), dec(op.value), op.lease ?? 0);
        break;
      case 'lease-revoke':
        delKeys([...this.live].filter(([, v]) => v.lease === cmd.id).map(([k]) => k));
        break;
      case 'compact':
        this.compacted = cmd.revision;
        return;
      case 'lease-grant':
      case 'lease-checkpoint':
      case 'alarm':
      case 'auth': // changes no key: no event
        return;
    }
    if (changes.length === 0) return;
    this.revision++;
    changes.forEach((c, sub) => this.events.push({ ...c, rev: this.revision, sub }));
  }
}

/** A client at the end of a watch: takes messages while it has room, drains them at random. */
/** A state machine in `dirPath` feeding a hub, for `body`; both closed after it. */
async function withHub(dirPath: string, body: (h: { sm: KvStateMachine; hub: WatchHub; log: LogBuilder }) => Promise<void>): Promise<void> {
  const sm = await KvStateMachine.open(join(dirPath, 'kv'));
  const hub = new WatchHub(sm, (err) => {
    throw err;
  });
  sm.onApplied = (c) => hub.onApplied(c.revision, c.events, c.restored);
  try {
    await body({ sm, hub, log: new LogBuilder() });
  } finally {
    hub.close();
    await sm.close();
  }
}

class TestSink implements WatchSink {
  readonly messages: WatchMessage[] = [];
  buffered = 0; // messages the "client" has not read yet
  watcher: Watcher | undefined;
  constructor(readonly capacity: number) {}
  ready(): boolean {
    return this.buffered < this.capacity;
  }
  send(m: WatchMessage): void {
    this.messages.push(m);
    this.buffered++;
  }
}

function inRange(key: string, r: KeyRange): boolean {
  const k = Buffer.from(key);
  if (r.end.length === 0) return Buffer.compare(k, r.key) === 0;
  return Buffer.compare(k, r.key) >= 0 && (r.end.length === 1 && r.end[0] === 0 ? true : Buffer.compare(k, r.end) < 0);
}

const KEYS = ['a', 'a/1', 'a/2', 'b', 'b/1', 'c'];
const BATCH = 6; // events per catch-up message in this test

function randomCommand(rng: Rng, model: Model, leases: number[]): Command {
  const key = (): string => KEYS[rng.int(KEYS.length)] ?? 'a';
  const roll = rng.int(100);
  if (roll < 45) return { type: 'put', key: enc(key()), value: enc(`v${rng.int(1000)}`), prevKv: false };
  if (roll < 55) return { type: 'delete', range: { key: enc(key()), end: new Uint8Array(0) }, prevKv: false };
  if (roll < 60) {
    const p = rng.int(2) === 0 ? 'a' : 'b';
    return { type: 'delete', range: { key: enc(p), end: prefixEnd(enc(p)) }, prevKv: false };
  }
  if (roll < 75) {
    const keys = [...new Set([key(), key(), key()])];
    return { type: 'txn', compares: [], success: keys.map((k) => ({ type: 'put', key: enc(k), value: enc(`t${rng.int(1000)}`), prevKv: false })), failure: [] };
  }
  if (roll < 82) {
    const id = 100 + model.leasesGranted++;
    leases.push(id);
    return { type: 'lease-grant', id, ttlSeconds: 10 };
  }
  if (roll < 90 && leases.length > 0) {
    const id = leases[rng.int(leases.length)] ?? 100;
    return { type: 'put', key: enc(key()), value: enc(`l${rng.int(1000)}`), prevKv: false, lease: id };
  }
  if (roll < 95 && leases.length > 0) {
    const id = leases.splice(rng.int(leases.length), 1)[0] ?? 100;
    return { type: 'lease-revoke', id };
  }
  if (model.revision - 60 > model.planned && rng.int(3) === 0) {
    model.planned = model.revision - 20 - rng.int(40);
    return { type: 'compact', revision: model.planned, physical: false };
  }
  return { type: 'put', key: enc(key()), value: enc('x'), prevKv: false };
}

interface Opened {
  readonly spec: WatchSpec;
  readonly sink: TestSink;
  readonly startRevision: number; // resolved: the first revision it wants
  readonly compactedAtOpen: number;
}

describe('watch hub', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  beforeEach(async () => {
    dir = await tempDir('watch');
  });
  afterEach(async () => {
    await dir.cleanup();
  });

  it('every watcher gets exactly its events, in order, whole revisions at a time, under slow clients and compaction', async () => {
    const seed = seedFromEnv();
    const rng = seededRng(seed);
    const sm = await KvStateMachine.open(join(dir.path, 'kv'));
    const errors: unknown[] = [];
    // A small ring and small batches: most catch-ups read the history, in many batches.
    const hub = new WatchHub(sm, (err) => errors.push(err), { ringMaxEvents: 30, catchUpBatchEvents: BATCH });
    const historyReads = { n: 0 };
    const historyEvents = sm.historyEvents.bind(sm);
    sm.historyEvents = (...args) => {
      historyReads.n++;
      return historyEvents(...args);
    };
    sm.onApplied = (c) => hub.onApplied(c.revision, c.events, c.restored);
    const model = new Model();
    const log = new LogBuilder();
    const leases: number[] = [];
    const opened: Opened[] = [];
    const pending: Command[] = [];
    try {
      for (let step = 0; step < 600; step++) {
        const cmd = randomCommand(rng, model, leases);
        pending.push(cmd);
        if (rng.int(3) === 0 || step === 599) {
          for (const c of pending) model.apply(c);
          const out = await sm.apply(pending.map((c) => log.cmd(c)));
          expect(out.filter((o) => o.type === 'error').map((o) => (o.type === 'error' ? o.error.message : '')), `seed ${seed}`).toEqual([]);
          pending.length = 0;
          expect(sm.revision, `seed ${seed}`).toBe(model.revision);
        }
        if (rng.int(12) === 0 && opened.length < 40) {
          const prefix = ['a', 'b', ''][rng.int(3)] ?? '';
          const range: KeyRange =
            rng.int(3) === 0 ? { key: enc(KEYS[rng.int(KEYS.length)] ?? 'a'), end: new Uint8Array(0) } : prefix === '' ? { key: Uint8Array.of(0), end: Uint8Array.of(0) } : { key: enc(prefix), end: prefixEnd(enc(prefix)) };
          // Mostly within the history (some below the compaction, some at the next revision or beyond it).
          const floor = Math.max(1, sm.compactedRevision);
          const startRevision = rng.int(4) === 0 ? 0 : rng.int(6) === 0 ? 1 + rng.int(hub.currentRevision + 2) : floor + rng.int(hub.currentRevision + 3 - floor);
          const spec: WatchSpec = { range, startRevision, noPut: rng.int(8) === 0, noDelete: rng.int(8) === 0, prevKv: rng.int(2) === 0 };
          const sink = new TestSink(1 + rng.int(4));
          const resolved = startRevision <= 0 ? hub.currentRevision + 1 : startRevision;
          opened.push({ spec, sink, startRevision: resolved, compactedAtOpen: sm.compactedRevision });
          sink.watcher = hub.watch(spec, sink);
        }
        // Clients read at random; one that had no room is resumed.
        for (const o of opened) {
          if (o.sink.buffered > 0 && rng.int(3) === 0) {
            o.sink.buffered = rng.int(o.sink.buffered);
            if (o.sink.watcher !== undefined) hub.resume(o.sink.watcher);
          }
        }
        if (rng.int(5) === 0) await new Promise((r) => setImmediate(r)); // let catch-ups read the history
      }
      // Everyone reads everything; every watcher must end synced (or compacted).
      for (let round = 0; round < 10_000; round++) {
        let busy = false;
        for (const o of opened) {
          o.sink.buffered = 0;
          const w = o.sink.watcher;
          const ended = o.sink.messages.some((m) => m.type === 'compacted');
          if (w !== undefined && !ended && !w.synced) {
            busy = true;
            hub.resume(w);
          }
        }
        if (!busy) break;
        await new Promise((r) => setImmediate(r));
      }
      hub.progressNotify(() => true);
      hub.progressNotify(() => true);
      expect(errors, `seed ${seed}`).toEqual([]);
      let compactedCount = 0;
      for (const [i, o] of opened.entries()) {
        const what = `seed ${seed}, watcher ${i} (start ${o.startRevision}, range ${dec(o.spec.range.key)}..${dec(o.spec.range.end)})`;
        const expected = model.events.filter(
          (e) => e.rev >= o.startRevision && inRange(e.key, o.spec.range) && !(e.type === 'put' ? o.spec.noPut : o.spec.noDelete),
        );
        const got: KvEvent[] = [];
        let caughtUpTo = 0;
        let compactedAt: number | undefined;
        for (const m of o.sink.messages) {
          expect(compactedAt, `${what}: a message after the compacted notice`).toBeUndefined();
          switch (m.type) {
            case 'events': {
              expect(m.events.length, what).toBeGreaterThan(0);
              const revs = [...new Set(m.events.map((e) => e.kv.modRevision))];
              for (const r of revs) {
                // atomic: a revision's events are all in this message
                expect(m.events.filter((e) => e.kv.modRevision === r).length, `${what}: revision ${r} split`).toBe(expected.filter((e) => e.rev === r).length);
              }
              expect(m.revision, what).toBeGreaterThanOrEqual(Math.max(...revs));
              expect(Math.min(...revs), `${what}: went back`).toBeGreaterThan(caughtUpTo);
              caughtUpTo = m.revision;
              got.push(...m.events);
              if (m.events.length > BATCH) expect(revs.length, `${what}: a catch-up batch over its bound`).toBe(1);
              break;
            }
            case 'progress':
              expect(m.revision, `${what}: progress behind what was sent`).toBeGreaterThanOrEqual(caughtUpTo);
              expect(m.revision, what).toBe(hub.currentRevision);
              break;
            case 'compacted':
              compactedAt = m.compactRevision;
              break;
          }
        }
        const asModel = got.map((e) => ({ rev: e.kv.modRevision, sub: e.sub, type: e.type, key: dec(e.kv.key), value: e.type === 'put' ? dec(e.kv.value) : '' }));
        if (compactedAt !== undefined) {
          compactedCount++;
          // Told only when it really fell behind the compaction, and what it got before is a clean prefix.
          expect(compactedAt, what).toBeGreaterThan(Math.max(o.startRevision, caughtUpTo + 1) - 1);
          expect(asModel, what).toEqual(expected.slice(0, asModel.length).map(({ rev, sub, type, key, value }) => ({ rev, sub, type, key, value })));
          continue;
        }
        expect(o.startRevision, `${what}: started below the compaction but was not told`).toBeGreaterThanOrEqual(o.compactedAtOpen);
        expect(asModel, what).toEqual(expected.map(({ rev, sub, type, key, value }) => ({ rev, sub, type, key, value })));
        got.forEach((e, j) => {
          const want = expected[j]?.prev;
          if (!o.spec.prevKv) expect(e.prevKv, what).toBeUndefined();
          else if (e.prevKv !== undefined) expect(dec(e.prevKv.value), what).toBe(want);
          else expect(want === undefined || e.kv.modRevision - 1 < sm.compactedRevision, `${what}: prev_kv missing at ${e.kv.modRevision}`).toBe(true);
        });
      }
      expect(opened.length, `seed ${seed}`).toBeGreaterThan(10);
      expect(historyReads.n, `seed ${seed}: no catch-up read the history`).toBeGreaterThan(5);
      expect(compactedCount, `seed ${seed}: every watcher was compacted, the check proves little`).toBeLessThan(opened.length);
    } finally {
      hub.close();
      await sm.close();
    }
  });

  it("a create event carries no prev_kv (etcd's IsCreateEvent), even when the same txn deleted the key first", async () => {
    await withHub(dir.path, async ({ sm, hub, log }) => {
      await sm.apply([log.cmd({ type: 'put', key: enc('a'), value: enc('1'), prevKv: false })]); // revision 2
      const live = new TestSink(100);
      live.watcher = hub.watch({ range: { key: enc('a'), end: new Uint8Array(0) }, startRevision: 0, noPut: false, noDelete: false, prevKv: true }, live);
      // Revision 3: DeleteRange [a, "\0") then Put a (etcd's duplicate-key check lets an open-ended delete through).
      const txn: Command = { type: 'txn', compares: [], success: [{ type: 'delete', range: { key: enc('a'), end: Uint8Array.of(0) }, prevKv: false }, { type: 'put', key: enc('a'), value: enc('2'), prevKv: false }], failure: [] };
      await sm.apply([log.cmd(txn)]);
      const fromHistory = new TestSink(100);
      fromHistory.watcher = hub.watch({ range: { key: enc('a'), end: new Uint8Array(0) }, startRevision: 3, noPut: false, noDelete: false, prevKv: true }, fromHistory);
      for (let i = 0; i < 100 && !fromHistory.messages.some((m) => m.type === 'events'); i++) await new Promise((r) => setImmediate(r));
      for (const sink of [live, fromHistory]) {
        const events = sink.messages.flatMap((m) => (m.type === 'events' ? m.events : []));
        expect(events.map((e) => [e.type, e.kv.modRevision, e.kv.createRevision, e.prevKv === undefined ? null : dec(e.prevKv.value)])).toEqual([
          ['delete', 3, 0, '1'],
          ['put', 3, 3, null], // etcd 3.4.23 sends prev_kv null here (raftkv sent the key before the txn)
        ]);
      }
    });
  });
  it('synced watchers that take a revision whole get the same events array (the Watch service encodes it once)', async () => {
    await withHub(dir.path, async ({ sm, hub, log }) => {
      const prefix = { key: enc('p/'), end: prefixEnd(enc('p/')) };
      const spec = { range: prefix, startRevision: 0, noPut: false, noDelete: false, prevKv: false };
      const sinks = [new TestSink(100), new TestSink(100), new TestSink(100)];
      for (const k of sinks.slice(0, 2)) k.watcher = hub.watch(spec, k);
      const third = sinks[2] as TestSink;
      third.watcher = hub.watch({ ...spec, range: { key: enc('p/a'), end: new Uint8Array(0) } }, third); // one key of two
      const txn: Command = { type: 'txn', compares: [], success: [{ type: 'put', key: enc('p/a'), value: enc('1'), prevKv: false }, { type: 'put', key: enc('p/b'), value: enc('2'), prevKv: false }], failure: [] };
      await sm.apply([log.cmd(txn)]);
      const got = sinks.map((k) => k.messages.find((m) => m.type === 'events'));
      const events = (m: WatchMessage | undefined): readonly KvEvent[] => (m?.type === 'events' ? m.events : []);
      expect(events(got[0])).toHaveLength(2);
      expect(events(got[1])).toBe(events(got[0])); // the same array, not a copy
      expect(events(got[2]).map((e) => dec(e.kv.key))).toEqual(['p/a']); // a filtered one is its own
    });
  });
});
