// Differential test of the MVCC store: random commands (puts, range/prefix deletes, txns with compares over
// ranges, nested txns and range ops at past revisions, compactions) applied in random batch sizes must give
// exactly the outcomes of a naive model that keeps a full copy of the key space per revision; after every
// round, ranges at random past revisions (sorted, filtered, limited) must match it too, and again after a
// reopen. This exercises the history scan merged with the write buffers and a batch's own writes across batch
// boundaries, and the background compaction. Replay with SEED=<seed>.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { RaftKvError } from '../../src/shared/errors.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import type { ApplyOutcome } from '../../src/kv/state-machine.js';
import { prefixEnd } from '../../src/kv/types.js';
import type { Command, CommandResult, Compare, KeyRange, KeyValue, KvLimits, Op, OpResult, RangeRequest, RangeResult } from '../../src/kv/types.js';
import { validateCommand } from '../../src/kv/validate.js';
import { ALL, LogBuilder, dec, enc, seedFromEnv, seededRng, tempDir } from './helpers.js';

type Rng = ReturnType<typeof seededRng>;
interface Meta {
  readonly value: string;
  readonly create: number;
  readonly mod: number;
  readonly version: number;
}
type State = Map<string, Meta>;

const KEYS = ['a', 'aa', 'ab', 'abc', 'b', 'ba', 'bb', 'c', 'ca', 'd'];
const LIMITS: KvLimits = { maxKeyBytes: 16, maxValueBytes: 16, maxTxnOps: 16, maxResponseBytes: 1024 * 1024 };

class ModelError extends Error {
  constructor(readonly code: string) {
    super(code);
  }
}

/** The spec, written the obvious way: one Map per revision. */
class Model {
  readonly revs: State[] = [new Map<string, Meta>(), new Map<string, Meta>()]; // revs[r]: the key space at revision r (revision 1 is empty)
  compacted = -1;

  get revision(): number {
    return this.revs.length - 1;
  }

  private static keysIn(s: State, r: KeyRange): string[] {
    const key = dec(r.key);
    const end = dec(r.end);
    if (end === '') return s.has(key) ? [key] : [];
    return [...s.keys()].filter((k) => k >= key && (end === '\0' || k < end)).sort();
  }

  private static kv(s: State, k: string): KeyValue {
    const x = s.get(k);
    if (x === undefined) throw new Error('model: missing key');
    return { key: enc(k), value: enc(x.value), createRevision: x.create, modRevision: x.mod, version: x.version, lease: 0 };
  }

  /** etcd's Range over the state `s` read at revision `current` (its header revision). */
  rangeIn(req: RangeRequest, work: State, current: number): RangeResult {
    const asked = req.revision ?? 0;
    if (asked > current) throw new ModelError('FUTURE_REV');
    const at = asked <= 0 ? current : asked;
    if (at < this.compacted) throw new ModelError('COMPACTED');
    const s = at === current ? work : this.revs[at];
    if (s === undefined) throw new Error(`model: no revision ${at}`);
    const keys = Model.keysIn(s, req);
    if (req.countOnly) return { kvs: [], more: false, count: keys.length, revision: current };
    const order = req.sortOrder ?? 'none';
    const target = req.sortTarget ?? 'key';
    const filters = [req.minModRevision, req.maxModRevision, req.minCreateRevision, req.maxCreateRevision].some((x) => (x ?? 0) !== 0);
    // etcd 3.4: without a sort order or filters it reads limit + 1 keys in key order and sorts only those.
    const read = order === 'none' && !filters && req.limit > 0 ? keys.slice(0, req.limit + 1) : keys;
    let kvs = read
      .map((k) => Model.kv(s, k))
      .filter(
        (kv) =>
          ((req.maxModRevision ?? 0) === 0 || kv.modRevision <= (req.maxModRevision ?? 0)) &&
          ((req.minModRevision ?? 0) === 0 || kv.modRevision >= (req.minModRevision ?? 0)) &&
          ((req.maxCreateRevision ?? 0) === 0 || kv.createRevision <= (req.maxCreateRevision ?? 0)) &&
          ((req.minCreateRevision ?? 0) === 0 || kv.createRevision >= (req.minCreateRevision ?? 0)),
      );
    const field = (kv: KeyValue): number | string =>
      target === 'version' ? kv.version : target === 'create' ? kv.createRevision : target === 'mod' ? kv.modRevision : target === 'value' ? dec(kv.value) : dec(kv.key);
    const cmp = (a: KeyValue, b: KeyValue): number => {
      const x = field(a);
      const y = field(b);
      return x < y ? -1 : x > y ? 1 : 0;
    };
    const effective = target !== 'key' && order === 'none' ? 'ascend' : order;
    if (effective === 'ascend') kvs = [...kvs].sort(cmp);
    if (effective === 'descend') kvs = [...kvs].sort((a, b) => cmp(b, a));
    let more = false;
    if (req.limit > 0 && kvs.length > req.limit) {
      kvs = kvs.slice(0, req.limit);
      more = true;
    }
    if (req.keysOnly) kvs = kvs.map((kv) => ({ ...kv, value: new Uint8Array(0) }));
    return { kvs, more, count: keys.length, revision: current };
  }

  range(req: RangeRequest): RangeResult {
    const now = this.revs[this.revision];
    if (now === undefined) throw new Error('model: no current state');
    return this.rangeIn(req, now, this.revision);
  }

  private compare(s: State, c: Compare): boolean {
    const keys = Model.keysIn(s, { key: c.key, end: c.end ?? new Uint8Array(0) });
    const test = (d: number): boolean => (c.op === '=' ? d === 0 : c.op === '!=' ? d !== 0 : c.op === '<' ? d < 0 : d > 0);
    const one = (x: Meta | undefined): boolean => {
      if (c.target === 'value') {
        const v = dec(c.value);
        const have = x?.value ?? '';
        return test(have < v ? -1 : have > v ? 1 : 0);
      }
      const n = x === undefined ? 0 : c.target === 'version' ? x.version : c.target === 'create' ? x.create : c.target === 'mod' ? x.mod : 0;
      return test(Math.sign(n - c.number));
    };
    if (keys.length === 0) return c.target === 'value' ? false : one(undefined);
    return keys.every((k) => one(s.get(k)));
  }

  apply(cmd: Command): ApplyOutcome {
    try {
      validateCommand(cmd, LIMITS);
      return { type: 'result', result: this.run(cmd) };
    } catch (err) {
      if (err instanceof ModelError) return { type: 'error', error: new RaftKvError(err.code as 'COMPACTED', '') };
      if (err instanceof RaftKvError) return { type: 'error', error: err };
      throw err;
    }
  }

  private run(cmd: Command): CommandResult {
    const before = this.revs[this.revision];
    if (before === undefined) throw new Error('model: no current state');
    const base = this.revision;
    const main = base + 1;
    const work: State = new Map(before);
    let changes = 0;
    const put = (key: Uint8Array, value: Uint8Array, prevKv: boolean): OpResult => {
      const k = dec(key);
      const prev = work.get(k);
      const out = prevKv && prev !== undefined ? Model.kv(work, k) : undefined;
      work.set(k, { value: dec(value), create: prev?.create ?? main, mod: main, version: (prev?.version ?? 0) + 1 });
      changes++;
      return { type: 'put', prevKv: out, revision: main };
    };
    const del = (r: KeyRange, prevKv: boolean): OpResult => {
      const keys = Model.keysIn(work, r);
      const prevKvs = prevKv ? keys.map((k) => Model.kv(work, k)) : [];
      for (const k of keys) work.delete(k);
      changes += keys.length;
      return { type: 'delete', deleted: keys.length, prevKvs, revision: changes > 0 ? main : base };
    };
    let result: CommandResult;
    switch (cmd.type) {
      case 'put':
        result = put(cmd.key, cmd.value, cmd.prevKv) as CommandResult;
        break;
      case 'delete':
        result = del(cmd.range, cmd.prevKv) as CommandResult;
        break;
      case 'txn': {
        // Every branch is decided on the state before the txn (etcd's compareToPath), nested ones too.
        const decide = (t: { compares: readonly Compare[]; success: readonly Op[]; failure: readonly Op[] }): { ok: boolean; branch: readonly Op[] } => {
          const ok = t.compares.every((c) => this.compare(before, c));
          return { ok, branch: ok ? t.success : t.failure };
        };
        const check = (ops: readonly Op[]): void => {
          for (const op of ops) {
            if (op.type === 'range') {
              const r = op.request.revision ?? 0;
              if (r === 0) continue; // the current revision: never refused
              if (r > base) throw new ModelError('FUTURE_REV');
              if (r < this.compacted) throw new ModelError('COMPACTED');
            }
            if (op.type === 'txn') check(decide(op).branch);
          }
        };
        const exec = (ops: readonly Op[]): OpResult[] =>
          ops.map((op): OpResult => {
            switch (op.type) {
              case 'put':
                return put(op.key, op.value, op.prevKv);
              case 'delete':
                return del(op.range, op.prevKv);
              case 'range':
                return { type: 'range', result: this.rangeIn(op.request, work, changes > 0 ? main : base) };
              case 'txn': {
                const d = decide(op);
                return { type: 'txn', succeeded: d.ok, results: exec(d.branch), revision: 0 };
              }
            }
          });
        const top = decide(cmd);
        check(top.branch);
        const results = exec(top.branch);
        result = { type: 'txn', succeeded: top.ok, results, revision: changes > 0 ? main : base };
        break;
      }
      case 'compact':
        if (cmd.revision <= this.compacted) throw new ModelError('COMPACTED');
        if (cmd.revision > base) throw new ModelError('FUTURE_REV');
        this.compacted = cmd.revision;
        return { type: 'compact', revision: base };
      case 'lease-grant':
      case 'lease-revoke':
      case 'lease-checkpoint':
        throw new Error('model: leases are modelled by test/kv/leases.test.ts');
      case 'alarm':
        throw new Error('model: alarm commands are not drawn');
      case 'auth':
        throw new Error('model: auth commands are not drawn (test/kv/auth-store.test.ts)');
    }
    if (changes > 0) this.revs.push(work);
    return result;
  }
}

function pick<T>(rng: Rng, xs: readonly T[]): T {
  const x = xs[rng.int(xs.length)];
  if (x === undefined) throw new Error('empty choice');
  return x;
}

function randomRange(rng: Rng): KeyRange {
  switch (rng.int(4)) {
    case 0:
      return { key: enc(pick(rng, KEYS)), end: new Uint8Array(0) };
    case 1: {
      const prefix = enc(pick(rng, ['a', 'ab', 'b', 'c']));
      return { key: prefix, end: prefixEnd(prefix) };
    }
    case 2:
      return { key: enc(pick(rng, KEYS)), end: Uint8Array.of(0) };
    default: {
      const [x, y] = [pick(rng, KEYS), pick(rng, KEYS)];
      return { key: enc(x ?? 'a'), end: enc(y ?? 'b') }; // y <= x too: an empty range, as etcd answers it
    }
  }
}

function randomRangeRequest(rng: Rng, revision: number): RangeRequest {
  const filter = (): number => (rng.int(4) === 0 ? 1 + rng.int(revision + 1) : 0);
  return {
    ...randomRange(rng),
    limit: rng.int(4),
    keysOnly: rng.int(3) === 0,
    countOnly: rng.int(6) === 0,
    revision: rng.int(3) === 0 ? rng.int(revision + 3) - 1 : 0, // sometimes a past one, sometimes a future one
    sortOrder: pick(rng, ['none', 'none', 'ascend', 'descend'] as const),
    sortTarget: pick(rng, ['key', 'key', 'version', 'create', 'mod', 'value'] as const),
    minModRevision: filter(),
    maxModRevision: filter(),
    minCreateRevision: filter(),
    maxCreateRevision: filter(),
  };
}

function randomOp(rng: Rng, revision: number, depth: number): Op {
  switch (rng.int(depth < 2 ? 4 : 3)) {
    case 0:
      return { type: 'put', key: enc(pick(rng, KEYS)), value: enc(`v${rng.int(4)}`), prevKv: rng.int(2) === 0 };
    case 1:
      return { type: 'delete', range: randomRange(rng), prevKv: rng.int(2) === 0 };
    case 2:
      return { type: 'range', request: randomRangeRequest(rng, revision) };
    default:
      return randomTxn(rng, revision, depth + 1);
  }
}

function randomCompare(rng: Rng, revision: number): Compare {
  const key = enc(pick(rng, KEYS));
  const end = rng.int(4) === 0 ? prefixEnd(key) : new Uint8Array(0);
  const op = pick(rng, ['=', '!=', '<', '>'] as const);
  if (rng.int(2) === 0) return { key, end, target: 'value', op, value: enc(`v${rng.int(4)}`) };
  return { key, end, target: pick(rng, ['version', 'create', 'mod', 'lease'] as const), op, number: rng.int(revision + 2) - 1 };
}

function randomTxn(rng: Rng, revision: number, depth: number): Op & { type: 'txn' } {
  const ops = (): Op[] => Array.from({ length: rng.int(4) }, () => randomOp(rng, revision, depth));
  return { type: 'txn', compares: Array.from({ length: rng.int(3) }, () => randomCompare(rng, revision)), success: ops(), failure: ops() };
}

function randomCommand(rng: Rng, model: Model): Command {
  const r = rng.int(20);
  if (r < 9) return { type: 'put', key: enc(pick(rng, KEYS)), value: enc(`v${rng.int(4)}`), prevKv: rng.int(2) === 0 };
  if (r < 13) return { type: 'delete', range: randomRange(rng), prevKv: rng.int(2) === 0 };
  if (r < 19) return randomTxn(rng, model.revision, 0);
  // Mostly a revision that can be compacted; sometimes one already compacted or in the future.
  return { type: 'compact', revision: model.compacted + rng.int(model.revision - model.compacted + 2), physical: false };
}

/** Outcomes comparable across the two: error messages are the store's own, codes must agree. */
function comparable(o: ApplyOutcome | undefined): unknown {
  if (o?.type === 'error') return { type: 'error', code: o.error.code };
  return o;
}

describe('KvStateMachine against a naive MVCC model', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  beforeEach(async () => {
    dir = await tempDir('model');
  });
  afterEach(async () => {
    await dir.cleanup();
  });

  const seed = seedFromEnv();
  it(`matches the model outcome for outcome and at past revisions, in random batch sizes (seed ${seed})`, async () => {
    const rng = seededRng(seed);
    const path = join(dir.path, 'kv');
    let sm = await KvStateMachine.open(path, { limits: LIMITS });
    const model = new Model();
    const log = new LogBuilder();
    const checkReads = async (where: string): Promise<void> => {
      expect(sm.revision, where).toBe(model.revision);
      expect(sm.compactedRevision, where).toBe(model.compacted);
      const all: RangeRequest = { ...ALL, limit: 0, keysOnly: false, countOnly: false };
      expect(await sm.range(all), where).toEqual(model.range(all));
      for (let i = 0; i < 4; i++) {
        const req = randomRangeRequest(rng, model.revision);
        const want = (() => {
          try {
            return model.range(req);
          } catch (err) {
            if (err instanceof ModelError) return err.code;
            throw err;
          }
        })();
        const got = await sm.range(req).catch((err: unknown) => {
          if (err instanceof RaftKvError) return err.code;
          throw err;
        });
        expect(got, `${where}, read ${i}: ${JSON.stringify({ ...req, key: dec(req.key), end: dec(req.end) })}`).toEqual(want);
      }
    };
    try {
      for (let round = 0; round < 150; round++) {
        const n = 1 + rng.int(rng.int(4) === 0 ? 30 : 4);
        const expected: ApplyOutcome[] = [];
        for (let i = 0; i < n; i++) {
          const cmd = randomCommand(rng, model);
          log.cmd(cmd);
          expected.push(model.apply(cmd));
        }
        const got = await sm.apply(log.take());
        for (let i = 0; i < n; i++) {
          expect(comparable(got[i]), `seed ${seed}, round ${round}, entry ${i} of ${n}`).toEqual(comparable(expected[i]));
        }
        await checkReads(`seed ${seed}, round ${round}`);
        if (round % 50 === 49) {
          await sm.close(); // the history, the revision and the compaction state survive a reopen
          sm = await KvStateMachine.open(path, { limits: LIMITS });
          await checkReads(`seed ${seed}, after the reopen at round ${round}`);
        }
      }
    } finally {
      await sm.close();
    }
  });
});
