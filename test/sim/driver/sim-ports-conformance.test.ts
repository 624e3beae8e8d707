// The driver simulation's ports answer like the real ones: the same seeded operations on SimWal and on WalStorage
// (a real WAL in a temp directory) give the same log view after every operation and after a reopen; the same
// committed entries on SimKv and on KvStateMachine (real LevelDB) give the same outcomes, reads, members and
// applied index, and a snapshot of each restores to the same state. A model that drifted from production would
// make the simulation test a different driver.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeConfChange } from '../../../src/raft/conf-change.js';
import { seededRng } from '../../../src/raft/rng.js';
import type { ConfChange, ConfState, Entry, HardState, LogStorage, Rng } from '../../../src/raft/types.js';
import { encodeEnvelope } from '../../../src/kv/codec.js';
import { KvStateMachine, encodeMemberContext } from '../../../src/kv/state-machine.js';
import type { Command } from '../../../src/kv/types.js';
import type { ApplyOutcome, StateMachine } from '../../../src/node/ports.js';
import { WalStorage } from '../../../src/storage/wal-storage.js';
import { between, chance } from '../sim-rng.js';
import type { SimProperty } from '../violation.js';
import { SimClock } from './sim-clock.js';
import { SimFileStore } from './sim-files.js';
import { KvDisk, SimKv } from './sim-kv.js';
import type { KvObserver } from './sim-kv.js';
import { SimScheduler } from './sim-scheduler.js';
import { SimWal, WalDisk } from './sim-wal.js';
import type { ViolationSink } from './sim-wal.js';

const CS: ConfState = { voters: [1, 2, 3], learners: [] };
const OPS_PER_SEED = 60;
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'raftkv-sim-conformance-'));
  dirs.push(d);
  return d;
}

class Sink implements ViolationSink {
  readonly seen: string[] = [];
  fail(property: SimProperty, detail: string): void {
    this.seen.push(`${property}: ${detail}`);
  }
}

/** Runs the scheduler until `p` settles (the simulated fsync, flush or snapshot write completes). */
async function drive<T>(sched: SimScheduler, p: Promise<T>): Promise<T> {
  let done = false;
  const tracked = p.finally(() => {
    done = true;
  });
  tracked.catch(() => undefined);
  for (let i = 0; i < 10_000 && !done; i++) if (!(await sched.step())) await new Promise<void>((r) => setImmediate(r));
  return tracked;
}

function view(log: LogStorage): unknown {
  const first = log.firstIndex();
  const last = log.lastIndex();
  const terms: number[] = [];
  for (let i = first - 1; i <= last; i++) terms.push(log.term(i));
  const entries = last >= first ? log.entries(first, last + 1, Number.MAX_SAFE_INTEGER).map((e) => [e.index, e.term, e.type, dec(e.data)]) : [];
  return { first, last, terms, entries, state: log.initialState(), snapshot: log.snapshot().metadata };
}

const noWalEvents = { onAppend: () => undefined, onHardState: () => undefined, onSnapshotRecord: () => undefined };

describe('SimWal answers like WalStorage', () => {
  for (const seed of [1, 2, 3, 4]) {
    it(`seed ${seed}: appends with truncations, hard states, compactions, installs; then a reopen`, async () => {
      const rng = seededRng(seed);
      const dir = await tempDir();
      let real = await WalStorage.open(dir, { initialConfState: CS, logger: () => undefined });
      const sched = new SimScheduler();
      const disk = new WalDisk(1, new Sink());
      disk.create(CS);
      const clock = new SimClock(sched);
      const faults = { fsyncLatencyMs: () => 2, isFull: () => false };
      let sim = new SimWal(disk, true, clock, faults, noWalEvents);
      let term = 1;
      for (let op = 0; op < OPS_PER_SEED; op++) {
        const kind = rng.int(10);
        if (kind < 5) {
          // Entries from a random point at or after the first index (truncating a suffix) up to a few past the end.
          const from = between(rng, real.firstIndex(), real.lastIndex() + 1);
          if (chance(rng, 0.3)) term++;
          const entries: Entry[] = [];
          for (let i = 0, n = between(rng, 1, 4); i < n; i++) entries.push({ index: from + i, term, type: 'normal', data: enc(`e${op}.${i}`) });
          real.append(entries);
          sim.append(entries);
        } else if (kind < 7) {
          const hs: HardState = { term, vote: rng.int(4), commit: between(rng, real.firstIndex() - 1, real.lastIndex()) };
          real.setHardState(hs);
          sim.setHardState(hs);
        } else if (kind < 8 && real.lastIndex() > real.firstIndex()) {
          const at = between(rng, real.firstIndex(), real.lastIndex());
          const snap = { metadata: { index: at, term: real.term(at), confState: CS } };
          await Promise.all([real.compact(snap), drive(sched, sim.compact(snap))]);
        } else if (kind < 9) {
          const at = real.lastIndex() + between(rng, 1, 5);
          const snap = { metadata: { index: at, term, confState: CS } };
          await Promise.all([real.applySnapshot(snap), drive(sched, sim.applySnapshot(snap))]);
        } else {
          await Promise.all([real.sync(), drive(sched, sim.sync())]);
        }
        expect(view(sim), `seed ${seed} op ${op}`).toEqual(view(real));
      }
      await real.close();
      await drive(sched, sim.close());
      real = await WalStorage.open(dir, { logger: () => undefined });
      sim.crash(rng, false, true);
      sim = new SimWal(disk, false, new SimClock(sched), faults, noWalEvents);
      expect(view(sim), `seed ${seed} after reopen`).toEqual(view(real));
      expect(sim.isNew()).toBe(real.isNew());
      await real.close();
    });
  }
});

const noKvEvents: KvObserver = {
  onApply: () => undefined,
  onRestore: () => undefined,
  onRestoreStart: () => undefined,
  onRestoreDone: () => undefined,
  onSnapshotFlushed: () => undefined,
};

function member(id: number): Uint8Array {
  return encodeMemberContext({ peerAddress: `p${id}:1`, clientAddress: `c${id}:2` });
}

/** A seeded run of committed entries: the bootstrap adds, puts, deletes, no-ops, membership changes (some invalid). */
function committedEntries(rng: Rng, count: number): Entry[] {
  const out: Entry[] = [];
  let term = 1;
  const cc = (c: ConfChange): void => {
    out.push({ index: out.length + 1, term, type: 'conf-change', data: encodeConfChange(c) });
  };
  for (const id of [1, 2, 3]) cc({ type: 'add-voter', nodeId: id, context: member(id) });
  while (out.length < count) {
    if (chance(rng, 0.1)) term++;
    const kind = rng.int(10);
    if (kind === 0) {
      out.push({ index: out.length + 1, term, type: 'normal', data: new Uint8Array(0) });
    } else if (kind === 1) {
      const id = between(rng, 1, 6);
      const type = (['add-voter', 'add-learner', 'remove'] as const)[rng.int(3)] ?? 'remove';
      cc({ type, nodeId: id, context: type === 'remove' ? new Uint8Array(0) : member(id) });
    } else {
      const key = enc(`k${rng.int(5)}`);
      const command: Command =
        kind === 2
          ? { type: 'delete', range: { key, end: new Uint8Array(0) }, prevKv: chance(rng, 0.5) }
          : { type: 'put', key, value: enc(`v${out.length}`), prevKv: chance(rng, 0.5) };
      out.push({ index: out.length + 1, term, type: 'normal', data: encodeEnvelope({ clientId: '', seq: 0, command }) });
    }
  }
  return out;
}

async function readAll(sm: StateMachine): Promise<unknown> {
  const keys: unknown[] = [];
  for (let k = 0; k < 5; k++) {
    const r = await sm.range({ key: enc(`k${k}`), end: new Uint8Array(0), limit: 0, keysOnly: false, countOnly: false });
    keys.push(r.kvs.map((kv) => [dec(kv.key), dec(kv.value), kv.createRevision, kv.modRevision, kv.version]));
  }
  return { applied: sm.appliedIndex, appliedTerm: sm.appliedTerm, members: sm.members(), confState: sm.confState(), keys };
}

function outcomesOf(os: readonly ApplyOutcome[]): unknown[] {
  return os.map((o) => (o.type === 'error' ? { type: 'error', message: o.error.message } : o));
}

describe('SimKv answers like KvStateMachine', () => {
  for (const seed of [1, 2, 3]) {
    it(`seed ${seed}: apply batches, reads, members; a snapshot restores to the same state`, async () => {
      const rng = seededRng(seed);
      const dir = await tempDir();
      const real = await KvStateMachine.open(join(dir, 'kv'));
      const sched = new SimScheduler();
      const files = new SimFileStore();
      const faults = { applyLatencyMs: () => 0, flushLatencyMs: () => 1, snapshotWriteLatencyMs: () => 1, restoreLatencyMs: () => 2, isFull: () => false, snapshotWithoutFlush: false };
      const sink = new Sink();
      const sim = new SimKv(1, new KvDisk(), files, new SimClock(sched), faults, noKvEvents, sink);
      const entries = committedEntries(rng, 80);
      for (let at = 0; at < entries.length; ) {
        const batch = entries.slice(at, at + between(rng, 1, 8));
        at += batch.length;
        const [a, b] = await Promise.all([real.apply(batch), drive(sched, sim.apply(batch))]);
        expect(outcomesOf(b), `seed ${seed} batch ending ${at}`).toEqual(outcomesOf(a));
        expect(await readAll(sim), `seed ${seed} at ${at}`).toEqual(await readAll(real));
      }
      const realSnap = await real.createSnapshot(join(dir, 'snap'), 2);
      const simSnap = await drive(sched, sim.createSnapshot('/sim/snap', 2));
      expect(simSnap.metadata).toEqual(realSnap.metadata);
      const realFresh = await KvStateMachine.open(join(dir, 'kv2'));
      const simFresh = new SimKv(2, new KvDisk(), files, new SimClock(sched), faults, noKvEvents, sink);
      await realFresh.restoreSnapshot(realSnap.path);
      await drive(sched, simFresh.restoreSnapshot(simSnap.path));
      expect(await readAll(simFresh)).toEqual(await readAll(realFresh));
      expect(await readAll(simFresh)).toEqual(await readAll(real));
      expect(sink.seen).toEqual([]);
      for (const sm of [real, realFresh]) await sm.close();
    });
  }
});
