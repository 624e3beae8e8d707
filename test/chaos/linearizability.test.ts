import { describe, expect, it } from 'vitest';
import { formatHistory, HistoryFormatError, HistoryRecorder, parseHistory, type HistoryOp } from './history.js';
import { checkFinalState, checkKey, checkLinearizability } from './linearizability.js';

// Hand-written histories: times are in arbitrary ns units; [call, return].
const K = 'k';
function put(client: number, value: string, call: number, ret: number | null, ok = ret !== null, key = K): HistoryOp {
  return { client, op: 'put', key, value, expected: null, call, return: ret, ok, result: null };
}
function del(client: number, call: number, ret: number | null, key = K): HistoryOp {
  return { client, op: 'delete', key, value: null, expected: null, call, return: ret, ok: ret !== null, result: null };
}
function get(client: number, result: string | null, call: number, ret: number, key = K): HistoryOp {
  return { client, op: 'get', key, value: null, expected: null, call, return: ret, ok: true, result };
}
function cas(client: number, expected: string | null, value: string, swapped: boolean | null, call: number, ret: number | null, key = K): HistoryOp {
  const ok = ret !== null && swapped !== null;
  return { client, op: 'cas', key, value, expected, call, return: ret, ok, result: ok ? String(swapped) : null };
}
function failed(h: HistoryOp): HistoryOp {
  return { ...h, ok: false, result: null };
}

function verdictOf(ops: HistoryOp[]): string {
  return checkLinearizability(ops).verdict;
}

describe('linearizable histories', () => {
  it('accepts a sequential history', () => {
    expect(verdictOf([put(1, 'a', 0, 10), get(1, 'a', 20, 30), del(1, 40, 50), get(2, null, 60, 70)])).toBe('ok');
  });

  it('accepts a read of the initial absent state', () => {
    expect(verdictOf([get(1, null, 0, 10), put(1, 'a', 20, 30)])).toBe('ok');
  });

  it('accepts concurrent reads that see the old and the new value of an overlapping write', () => {
    const h = [put(1, 'a', 0, 10), put(2, 'b', 20, 100), get(3, 'b', 30, 40), get(4, 'a', 25, 90)];
    expect(verdictOf(h)).toBe('ok');
  });

  it('accepts concurrent writes in either order, as the reads show', () => {
    const h = [put(1, 'a', 0, 50), put(2, 'b', 0, 50), get(3, 'a', 60, 70), get(3, 'a', 80, 90)];
    expect(verdictOf(h)).toBe('ok');
    const h2 = [put(1, 'a', 0, 50), put(2, 'b', 0, 50), get(3, 'b', 60, 70)];
    expect(verdictOf(h2)).toBe('ok');
  });

  it('accepts an indeterminate write that shows up later', () => {
    const h = [put(1, 'a', 0, 10), put(2, 'b', 20, null), get(3, 'a', 30, 40), get(3, 'b', 1000, 1010), get(1, 'b', 2000, 2010)];
    expect(verdictOf(h)).toBe('ok');
  });

  it('accepts an indeterminate write that never takes effect', () => {
    const h = [put(1, 'a', 0, 10), put(2, 'b', 20, null), get(3, 'a', 1000, 1010)];
    expect(verdictOf(h)).toBe('ok');
  });

  it('ignores a failed write', () => {
    const h = [put(1, 'a', 0, 10), failed(put(2, 'b', 20, 30)), get(3, 'a', 40, 50)];
    expect(verdictOf(h)).toBe('ok');
  });

  it('accepts cas successes and failures that match the register', () => {
    const h = [
      cas(1, null, 'a', true, 0, 10), // create-if-absent
      cas(2, null, 'x', false, 20, 30),
      cas(1, 'a', 'b', true, 40, 50),
      cas(2, 'a', 'c', false, 60, 70),
      get(3, 'b', 80, 90),
    ];
    expect(verdictOf(h)).toBe('ok');
  });

  it('accepts two concurrent cas from the same value when exactly one wins', () => {
    const h = [put(1, 'a', 0, 10), cas(2, 'a', 'b', true, 20, 60), cas(3, 'a', 'c', false, 20, 60), get(1, 'b', 70, 80)];
    expect(verdictOf(h)).toBe('ok');
  });

  it('accepts an indeterminate cas whose effect is read later', () => {
    const h = [put(1, 'a', 0, 10), cas(2, 'a', 'b', null, 20, null), get(3, 'b', 100, 110)];
    expect(verdictOf(h)).toBe('ok');
  });

  it('checks keys independently', () => {
    const h = [put(1, 'a', 0, 10, true, 'x'), put(1, 'b', 20, 30, true, 'y'), get(2, 'a', 40, 50, 'x'), get(2, 'b', 40, 50, 'y')];
    const r = checkLinearizability(h);
    expect(r.verdict).toBe('ok');
    expect(r.keys.map((k) => k.key)).toEqual(['x', 'y']);
  });
});

describe('non-linearizable histories are flagged', () => {
  it('a stale read', () => {
    const h = [put(1, 'a', 0, 10), put(1, 'b', 20, 30), get(2, 'a', 40, 50)];
    const r = checkLinearizability(h);
    expect(r.verdict).toBe('violation');
    const ex = r.firstViolation;
    expect(ex?.key).toBe(K);
    expect(ex?.blockedOp).toEqual(h[2]);
    expect(ex?.stateBefore).toBe('b');
    expect(ex?.text).toContain('get -> "a"');
  });

  it('a lost write (read sees the key absent after an acknowledged put)', () => {
    expect(verdictOf([put(1, 'a', 0, 10), get(2, null, 20, 30)])).toBe('violation');
  });

  it('a read of a value never written', () => {
    const r = checkLinearizability([put(1, 'a', 0, 10), get(2, 'zz', 20, 30)]);
    expect(r.verdict).toBe('violation');
    expect(r.firstViolation?.blockedOp.result).toBe('zz');
  });

  it('a read of a failed write', () => {
    expect(verdictOf([put(1, 'a', 0, 10), failed(put(2, 'b', 20, 30)), get(3, 'b', 40, 50)])).toBe('violation');
  });

  it('reads going back in time (new value, then the old one)', () => {
    const h = [put(1, 'a', 0, 10), put(2, 'b', 20, 200), get(3, 'b', 30, 40), get(4, 'a', 50, 60)];
    expect(verdictOf(h)).toBe('violation');
  });

  it('an indeterminate write that shows up and then disappears', () => {
    const h = [put(1, 'a', 0, 10), put(2, 'b', 20, null), get(3, 'b', 100, 110), get(3, 'a', 200, 210)];
    expect(verdictOf(h)).toBe('violation');
  });

  it('a cas that succeeds against the wrong value', () => {
    expect(verdictOf([put(1, 'a', 0, 10), cas(2, 'c', 'b', true, 20, 30)])).toBe('violation');
  });

  it('a cas that fails although the value matched', () => {
    expect(verdictOf([put(1, 'a', 0, 10), cas(2, 'a', 'b', false, 20, 30)])).toBe('violation');
  });

  it('two concurrent cas from the same value that both win', () => {
    const h = [put(1, 'a', 0, 10), cas(2, 'a', 'b', true, 20, 60), cas(3, 'a', 'c', true, 20, 60)];
    expect(verdictOf(h)).toBe('violation');
  });

  it('a cas whose effect is lost', () => {
    const h = [put(1, 'a', 0, 10), cas(2, 'a', 'b', true, 20, 30), get(3, 'a', 40, 50)];
    expect(verdictOf(h)).toBe('violation');
  });

  it('a delete that is not seen', () => {
    expect(verdictOf([put(1, 'a', 0, 10), del(2, 20, 30), get(3, 'a', 40, 50)])).toBe('violation');
  });

  it('one bad key makes the history a violation even if others are fine', () => {
    const h = [put(1, 'a', 0, 10, true, 'x'), get(2, 'a', 20, 30, 'x'), put(1, 'a', 0, 10, true, 'y'), get(2, null, 20, 30, 'y')];
    const r = checkLinearizability(h);
    expect(r.verdict).toBe('violation');
    expect(r.keys.find((k) => k.key === 'x')?.verdict).toBe('ok');
    expect(r.firstViolation?.key).toBe('y');
  });
});

describe('search effort', () => {
  it("gives 'unknown' when the step budget runs out", () => {
    // Many fully concurrent writes and a read of a value never written: the search must try many orders.
    const h: HistoryOp[] = [];
    for (let i = 0; i < 14; i++) h.push(put(i, `v${i}`, 0, 1000));
    h.push(get(99, 'never', 2000, 2010));
    expect(checkKey(K, h, { maxStepsPerKey: 50 }).verdict).toBe('unknown');
    // With the default budget memoisation keeps it small: 2^14 sets x few states.
    expect(checkKey(K, h).verdict).toBe('violation');
  });
});

/** A seeded PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A random concurrent history produced by a real (atomic) register: each client runs ops back to back;
 * each op takes effect at a random point inside its [call, return]. Some writes are made indeterminate
 * (their return forgotten), some failed ones never take effect.
 */
function generate(seed: number, clients: number, opsPerClient: number): HistoryOp[] {
  const rand = rng(seed);
  interface Planned { h: Omit<HistoryOp, 'result' | 'ok' | 'return'>; ret: number; point: number; fate: 'ok' | 'failed' | 'indeterminate-applied' | 'indeterminate-lost' }
  const planned: Planned[] = [];
  let unique = 0;
  for (let c = 0; c < clients; c++) {
    let t = Math.floor(rand() * 50);
    for (let i = 0; i < opsPerClient; i++) {
      const call = t;
      const ret = call + 1 + Math.floor(rand() * 100);
      const point = call + rand() * (ret - call);
      const kind = Math.floor(rand() * 4);
      const r = rand();
      const op = (['put', 'get', 'delete', 'cas'] as const)[kind] ?? 'get';
      const fate: Planned['fate'] =
        op === 'get' ? 'ok' : r < 0.1 ? 'failed' : r < 0.15 ? 'indeterminate-applied' : r < 0.2 ? 'indeterminate-lost' : 'ok';
      const value = op === 'put' || op === 'cas' ? `v${unique++}` : null;
      planned.push({ h: { client: c, op, key: K, value, expected: null, call }, ret, point, fate });
      t = ret + 1 + Math.floor(rand() * 30);
      if (fate.startsWith('indeterminate')) break; // a client that lost its answer stops (like a real one reconnecting)
    }
  }
  // Apply in linearization-point order to a real register.
  let state: string | null = null;
  const written: (string | null)[] = [null];
  const out: HistoryOp[] = [];
  for (const p of [...planned].sort((a, b) => a.point - b.point)) {
    const applies = p.fate === 'ok' || p.fate === 'indeterminate-applied';
    const ret = p.fate.startsWith('indeterminate') ? null : p.ret;
    switch (p.h.op) {
      case 'put':
        if (applies) state = p.h.value;
        out.push({ ...p.h, return: ret, ok: p.fate === 'ok', result: null });
        break;
      case 'delete':
        if (applies) state = null;
        out.push({ ...p.h, return: ret, ok: p.fate === 'ok', result: null });
        break;
      case 'get':
        out.push({ ...p.h, return: ret, ok: true, result: state });
        break;
      case 'cas': {
        // Expect either the current value or a random earlier one, so both outcomes happen.
        const expected = rand() < 0.6 ? state : (written[Math.floor(rand() * written.length)] ?? null);
        const swapped = state === expected;
        if (applies && swapped) state = p.h.value;
        out.push({ ...p.h, expected, return: ret, ok: p.fate === 'ok', result: p.fate === 'ok' ? String(swapped) : null });
        break;
      }
    }
    written.push(state);
  }
  return out.sort((a, b) => a.call - b.call);
}

describe('random histories from a real register', () => {
  const base = Number(process.env['SEED'] ?? 1);
  it('are all linearizable, and corrupting one read makes them not', () => {
    for (let s = base; s < base + 200; s++) {
      const h = generate(s, 2 + (s % 4), 12);
      const r = checkLinearizability(h);
      expect(r.verdict, `seed ${s}: ${r.firstViolation?.text ?? ''}`).toBe('ok');
      const reads = h.map((o, i) => [o, i] as const).filter(([o]) => o.op === 'get' && o.ok);
      const pick = reads[s % Math.max(1, reads.length)];
      if (pick === undefined) continue;
      const bad = [...h];
      bad[pick[1]] = { ...pick[0], result: 'never-written' };
      expect(checkLinearizability(bad).verdict, `seed ${s}: corrupted read at ${pick[1]} not flagged`).toBe('violation');
    }
  });
});

describe('final state (RPO)', () => {
  it('passes when the last acknowledged write is visible', () => {
    const h = [put(1, 'a', 0, 10), put(1, 'b', 20, 30)];
    const r = checkFinalState(h, new Map([[K, 'b']]));
    expect(r.acknowledgedWrites).toBe(2);
    expect(r.lost).toEqual([]);
  });

  it('passes when the final value comes from a concurrent or indeterminate write', () => {
    expect(checkFinalState([put(1, 'a', 0, 50), put(2, 'b', 10, 40)], new Map([[K, 'a']])).lost).toEqual([]);
    expect(checkFinalState([put(1, 'a', 0, 10), put(2, 'b', 20, null)], new Map([[K, 'b']])).lost).toEqual([]);
  });

  it('flags an acknowledged write replaced by an older value', () => {
    const h = [put(1, 'a', 0, 10), put(1, 'b', 20, 30)];
    const r = checkFinalState(h, new Map([[K, 'a']]));
    expect(r.lost).toHaveLength(1);
    expect(r.lost[0]?.write.value).toBe('b');
  });

  it('flags a key that ends absent with no delete, and a final value never written', () => {
    expect(checkFinalState([put(1, 'a', 0, 10)], new Map([[K, null]])).lost).toHaveLength(1);
    expect(checkFinalState([put(1, 'a', 0, 10)], new Map([[K, 'zz']])).lost[0]?.reason).toContain('never written');
  });

  it('counts a cas that swapped as a write, and one that did not as none', () => {
    const h = [put(1, 'a', 0, 10), cas(2, 'a', 'b', true, 20, 30), cas(2, 'x', 'c', false, 40, 50)];
    expect(checkFinalState(h, new Map([[K, 'b']])).lost).toEqual([]);
    expect(checkFinalState(h, new Map([[K, 'a']])).lost).toHaveLength(1);
    expect(checkFinalState(h, new Map([[K, 'b']])).acknowledgedWrites).toBe(2);
  });
});

describe('history format', () => {
  it('round-trips through JSON lines with exactly the documented keys', () => {
    const h = [put(1, 'a', 0, 10), cas(2, null, 'b', null, 20, null), get(3, 'a', 30, 40)];
    const text = formatHistory(h);
    expect(text.split('\n')[0]).toBe('{"client":1,"op":"put","key":"k","value":"a","expected":null,"call":0,"return":10,"ok":true,"result":null}');
    expect(parseHistory(text)).toEqual(h);
  });

  it('rejects malformed lines', () => {
    expect(() => parseHistory('{"client":1}')).toThrow(HistoryFormatError);
    expect(() => parseHistory('not json')).toThrow(/line 1/);
    const line = JSON.stringify({ ...put(1, 'a', 10, 5) });
    expect(() => parseHistory(line)).toThrow(/return before call/);
    const okIndeterminate = JSON.stringify({ ...put(1, 'a', 0, null), ok: true });
    expect(() => parseHistory(okIndeterminate)).toThrow(/indeterminate/);
  });

  it('the recorder stamps monotonic times and closes open ops as indeterminate', () => {
    const rec = new HistoryRecorder();
    const a = rec.begin({ client: 1, op: 'put', key: 'k', value: 'a', expected: null });
    const b = rec.begin({ client: 2, op: 'get', key: 'k', value: null, expected: null });
    rec.end(a, { kind: 'ok', result: null });
    rec.begin({ client: 3, op: 'delete', key: 'k', value: null, expected: null });
    rec.end(b, { kind: 'failed' });
    const ops = rec.finish();
    expect(ops.map((o) => [o.ok, o.return === null])).toEqual([[true, false], [false, false], [false, true]]);
    expect(ops[0]?.return).toBeGreaterThanOrEqual(ops[0]?.call ?? Infinity);
    expect(() => rec.end(a, { kind: 'ok', result: null })).toThrow();
  });
});
