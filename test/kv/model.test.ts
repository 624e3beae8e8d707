// Differential test: random commands (puts, range/prefix deletes, txns with compares and range ops) applied in
// random batch sizes must give exactly the outcomes and final state of a naive in-memory model. This exercises
// the merge of a batch's own writes with LevelDB across batch boundaries. Replay with SEED=<seed>.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import type { ApplyOutcome } from '../../src/kv/state-machine.js';
import { prefixEnd } from '../../src/kv/types.js';
import type { Command, CommandResult, Compare, KeyRange, KeyValue, Op, OpResult, RangeRequest, RangeResult } from '../../src/kv/types.js';
import { ALL, LogBuilder, dec, enc, seedFromEnv, seededRng, tempDir } from './helpers.js';

type Rng = ReturnType<typeof seededRng>;
interface Meta {
  value: string;
  create: number;
  mod: number;
  version: number;
}

const MAX_RANGE = 1000;
const KEYS = ['a', 'aa', 'ab', 'abc', 'b', 'ba', 'bb', 'c', 'ca', 'd'];

/** The spec, written the obvious way over a Map. */
class Model {
  readonly m = new Map<string, Meta>();

  private keysIn(r: KeyRange): string[] {
    const key = dec(r.key);
    const end = dec(r.end);
    if (end === '') return this.m.has(key) ? [key] : [];
    return [...this.m.keys()].filter((k) => k >= key && (end === '\0' || k < end)).sort();
  }

  private kv(k: string, keysOnly = false): KeyValue {
    const x = this.m.get(k);
    if (x === undefined) throw new Error('model: missing key');
    return { key: enc(k), value: enc(keysOnly ? '' : x.value), createIndex: x.create, modIndex: x.mod, version: x.version };
  }

  range(req: RangeRequest): RangeResult {
    const keys = this.keysIn(req);
    const limit = req.limit === 0 || req.limit > MAX_RANGE ? MAX_RANGE : req.limit;
    const kvs = req.countOnly ? [] : keys.slice(0, limit).map((k) => this.kv(k, req.keysOnly));
    return { kvs, more: !req.countOnly && keys.length > kvs.length, count: keys.length };
  }

  private put(key: Uint8Array, value: Uint8Array, prevKv: boolean, index: number): KeyValue | undefined {
    const k = dec(key);
    const prev = this.m.get(k);
    const out = prevKv && prev !== undefined ? this.kv(k) : undefined;
    this.m.set(k, { value: dec(value), create: prev?.create ?? index, mod: index, version: (prev?.version ?? 0) + 1 });
    return out;
  }

  private del(r: KeyRange, prevKv: boolean): { deleted: number; prevKvs: KeyValue[] } {
    const keys = this.keysIn(r);
    const prevKvs = prevKv ? keys.map((k) => this.kv(k)) : [];
    for (const k of keys) this.m.delete(k);
    return { deleted: keys.length, prevKvs };
  }

  private compare(c: Compare): boolean {
    const x = this.m.get(dec(c.key));
    const test = (d: number): boolean => (c.op === '=' ? d === 0 : c.op === '!=' ? d !== 0 : c.op === '<' ? d < 0 : d > 0);
    if (c.target === 'value') {
      const v = dec(c.value);
      return x !== undefined && test(x.value < v ? -1 : x.value > v ? 1 : 0);
    }
    const n = x === undefined ? 0 : c.target === 'version' ? x.version : c.target === 'create' ? x.create : x.mod;
    return test(n - c.number);
  }

  apply(cmd: Command, index: number): CommandResult {
    switch (cmd.type) {
      case 'put':
        return { type: 'put', prevKv: this.put(cmd.key, cmd.value, cmd.prevKv, index) };
      case 'delete':
        return { type: 'delete', ...this.del(cmd.range, cmd.prevKv) };
      case 'txn': {
        const succeeded = cmd.compares.every((c) => this.compare(c));
        const results: OpResult[] = (succeeded ? cmd.success : cmd.failure).map((op): OpResult => {
          switch (op.type) {
            case 'put':
              return { type: 'put', prevKv: this.put(op.key, op.value, op.prevKv, index) };
            case 'delete':
              return { type: 'delete', ...this.del(op.range, op.prevKv) };
            case 'range':
              return { type: 'range', result: this.range(op.request) };
          }
        });
        return { type: 'txn', succeeded, results };
      }
    }
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
      const [x, y] = [pick(rng, KEYS), pick(rng, KEYS)].sort();
      return x === y || x === undefined || y === undefined ? { key: enc(x ?? 'a'), end: new Uint8Array(0) } : { key: enc(x), end: enc(y) };
    }
  }
}

function randomOp(rng: Rng): Op {
  switch (rng.int(3)) {
    case 0:
      return { type: 'put', key: enc(pick(rng, KEYS)), value: enc(`v${rng.int(4)}`), prevKv: rng.int(2) === 0 };
    case 1:
      return { type: 'delete', range: randomRange(rng), prevKv: rng.int(2) === 0 };
    default:
      return {
        type: 'range',
        request: { ...randomRange(rng), limit: rng.int(4), keysOnly: rng.int(3) === 0, countOnly: rng.int(5) === 0 },
      };
  }
}

function randomCompare(rng: Rng): Compare {
  const key = enc(pick(rng, KEYS));
  const op = pick(rng, ['=', '!=', '<', '>'] as const);
  if (rng.int(2) === 0) return { key, target: 'value', op, value: enc(`v${rng.int(4)}`) };
  return { key, target: pick(rng, ['version', 'create', 'mod'] as const), op, number: rng.int(6) };
}

function randomCommand(rng: Rng): Command {
  const r = rng.int(10);
  if (r < 5) return { type: 'put', key: enc(pick(rng, KEYS)), value: enc(`v${rng.int(4)}`), prevKv: rng.int(2) === 0 };
  if (r < 7) return { type: 'delete', range: randomRange(rng), prevKv: rng.int(2) === 0 };
  const ops = (): Op[] => Array.from({ length: rng.int(4) }, () => randomOp(rng));
  return { type: 'txn', compares: Array.from({ length: rng.int(3) }, () => randomCompare(rng)), success: ops(), failure: ops() };
}

describe('KvStateMachine against a naive model', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  beforeEach(async () => {
    dir = await tempDir('model');
  });
  afterEach(async () => {
    await dir.cleanup();
  });

  const seed = seedFromEnv();
  it(`matches the model outcome for outcome, in random batch sizes (seed ${seed})`, async () => {
    const rng = seededRng(seed);
    const sm = await KvStateMachine.open(join(dir.path, 'kv'), {
      limits: { maxKeyBytes: 16, maxValueBytes: 16, maxTxnOps: 16, maxRangeLimit: MAX_RANGE },
    });
    const model = new Model();
    const log = new LogBuilder();
    try {
      for (let round = 0; round < 150; round++) {
        const n = 1 + rng.int(rng.int(4) === 0 ? 30 : 4);
        const expected: ApplyOutcome[] = [];
        for (let i = 0; i < n; i++) {
          const cmd = randomCommand(rng);
          const e = log.cmd(cmd);
          expected.push({ type: 'result', result: model.apply(cmd, e.index) });
        }
        const got = await sm.apply(log.take());
        for (let i = 0; i < n; i++) {
          expect(got[i], `seed ${seed}, round ${round}, entry ${i} of ${n}`).toEqual(expected[i]);
        }
        const all = await sm.range({ ...ALL, limit: 0, keysOnly: false, countOnly: false });
        expect(all, `seed ${seed}, round ${round}`).toEqual(model.range({ ...ALL, limit: 0, keysOnly: false, countOnly: false }));
      }
    } finally {
      await sm.close();
    }
  });
});
