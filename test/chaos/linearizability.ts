// Linearizability checker for chaos histories (test/chaos/history.ts): the Wing & Gong search with Lowe's
// memoisation (WGL), run per key (a key-value store is linearizable iff every key's register is — locality,
// Herlihy & Wing 1990), and the end-of-run durability check (no acknowledged write lost).
//
// Model per key: a register holding a string or nothing (null).
//   put v: state := v              delete: state := null
//   get -> r: allowed iff r = state
//   cas(expected e, value v) -> "true": allowed iff state = e, then state := v
//   cas(e, v) -> "false": allowed iff state != e (state unchanged)
// Failed ops (ok=false with a return time) never happened and are dropped. Indeterminate ops (return null)
// may take effect at any time after their call, or never: they have no return event, and the search
// succeeds once every acknowledged op is linearized. Indeterminate gets constrain nothing and are dropped.
import { assertNever, writtenValue, type HistoryOp } from './history.js';

export type Verdict = 'ok' | 'violation' | 'unknown';

export interface CheckOptions {
  /** Search steps allowed per key before giving up with 'unknown'. */
  readonly maxStepsPerKey?: number;
  /** How many linearized ops to show before the point of failure. */
  readonly contextOps?: number;
}

export interface Explanation {
  readonly key: string;
  /** The op that had to take effect before its return but could not, in any order the search found. */
  readonly blockedOp: HistoryOp;
  /** The register's value after the longest linearizable prefix (null = absent). */
  readonly stateBefore: string | null;
  /** The last ops of that prefix, in linearization order. */
  readonly linearizedTail: readonly HistoryOp[];
  /** How many ops of the key the longest prefix linearized, of how many in all. */
  readonly linearizedCount: number;
  readonly opCount: number;
  /** Ops not yet linearized that were called before the blocked op returned (the candidates at that point). */
  readonly concurrent: readonly HistoryOp[];
  readonly text: string;
}

export interface KeyResult {
  readonly key: string;
  readonly verdict: Verdict;
  readonly opCount: number; // ops the search considered (failed ops and indeterminate reads excluded)
  readonly steps: number;
  readonly explanation: Explanation | undefined; // set for 'violation'
}

export interface LinearizabilityResult {
  readonly verdict: Verdict; // violation if any key has one; else unknown if any key is unknown; else ok
  readonly keys: readonly KeyResult[];
  readonly firstViolation: Explanation | undefined;
  readonly steps: number;
}

const DEFAULT_MAX_STEPS_PER_KEY = 2_000_000;
const DEFAULT_CONTEXT_OPS = 6;

type State = string | null;

/** One op in the search: determinate ops have a return event, indeterminate ones only a call event. */
interface SearchOp {
  readonly id: number; // bit index in the linearized set
  readonly h: HistoryOp;
  readonly call: number;
  readonly ret: number; // Infinity if indeterminate
  readonly determinate: boolean;
}

/** A node of the doubly linked event list. */
interface Event {
  readonly op: SearchOp;
  readonly isCall: boolean;
  match: Event | undefined; // call -> its return event (undefined if indeterminate)
  prev: Event | undefined;
  next: Event | undefined;
}

/** The register model's step: the new state, or undefined if `op` cannot take effect in `state`. */
export function stepRegister(state: State, h: HistoryOp): { state: State } | undefined {
  const indeterminate = h.return === null;
  switch (h.op) {
    case 'put':
      return { state: h.value };
    case 'delete':
      return { state: null };
    case 'get':
      if (indeterminate) return { state };
      return h.result === state ? { state } : undefined;
    case 'cas': {
      const matches = state === h.expected;
      if (indeterminate) return { state: matches ? h.value : state };
      if (h.result === 'true') return matches ? { state: h.value } : undefined;
      if (h.result === 'false') return matches ? undefined : { state };
      throw new Error(`cas with result ${String(h.result)} reached the model`);
    }
    default:
      return assertNever(h.op);
  }
}

function stateKey(s: State): string {
  return s === null ? '\u0000' : 's' + s;
}

function showValue(v: string | null): string {
  return v === null ? 'nil' : JSON.stringify(v);
}

/** A one-line human description of an op. */
export function describeOp(h: HistoryOp): string {
  const span = `[${(h.call / 1e6).toFixed(3)}ms, ${h.return === null ? '?' : (h.return / 1e6).toFixed(3) + 'ms'}]`;
  const status = h.return === null ? ' (indeterminate)' : h.ok ? '' : ' (failed)';
  let what: string;
  switch (h.op) {
    case 'put':
      what = `put ${showValue(h.value)}`;
      break;
    case 'delete':
      what = 'delete';
      break;
    case 'get':
      what = `get -> ${h.ok ? showValue(h.result) : '?'}`;
      break;
    case 'cas':
      what = `cas ${showValue(h.expected)} -> ${showValue(h.value)}${h.ok ? ` = ${String(h.result)}` : ''}`;
      break;
    default:
      return assertNever(h.op);
  }
  return `client ${h.client} ${what} ${span}${status}`;
}

/** Ops the search considers for one key: failed ops never happened; indeterminate reads constrain nothing. */
function relevantOps(ops: readonly HistoryOp[]): HistoryOp[] {
  return ops.filter((h) => {
    if (h.return !== null && !h.ok) return false;
    if (h.return === null && h.op === 'get') return false;
    return true;
  });
}

/**
 * Indeterminate writes whose value no op ever observed (no get returned it, no cas expected it). Leaving
 * them out is one of the allowed outcomes ("never took effect"), so a linearization without them is a
 * linearization of the history; if none is found, the caller searches again with them.
 */
function withoutUnobservedIndeterminateWrites(ops: readonly HistoryOp[]): HistoryOp[] {
  const observed = new Set<string>();
  for (const h of ops) {
    if (h.op === 'get' && h.ok) observed.add(stateKey(h.result));
    if (h.op === 'cas' && (h.ok || h.return === null)) observed.add(stateKey(h.expected));
  }
  return ops.filter((h) => {
    if (h.return !== null) return true;
    const w = writtenValue(h);
    return w === undefined || observed.has(stateKey(w.value));
  });
}

/** The head of the event list: never linearized, never read. */
const SENTINEL_OP: HistoryOp = { client: -1, op: 'get', key: '', value: null, expected: null, call: 0, return: 0, ok: true, result: null };

/** The WGL search over one key's ops. */
function searchKey(key: string, history: readonly HistoryOp[], maxSteps: number, contextOps: number): KeyResult {
  const ops: SearchOp[] = history.map((h, id) => ({
    id,
    h,
    call: h.call,
    ret: h.return === null ? Infinity : h.return,
    determinate: h.return !== null,
  }));
  // Events in time order; at equal times calls come first (treating touching ops as concurrent, never
  // inventing a real-time order the clocks cannot prove).
  const raw: { op: SearchOp; isCall: boolean; time: number }[] = [];
  for (const op of ops) {
    raw.push({ op, isCall: true, time: op.call });
    if (op.determinate) raw.push({ op, isCall: false, time: op.ret });
  }
  raw.sort((a, b) => a.time - b.time || (a.isCall === b.isCall ? a.op.id - b.op.id : a.isCall ? -1 : 1));
  const sentinelOp: SearchOp = { id: -1, h: SENTINEL_OP, call: -Infinity, ret: -Infinity, determinate: false };
  const head: Event = { op: sentinelOp, isCall: false, match: undefined, prev: undefined, next: undefined }; // never lifted
  const callOf = new Map<number, Event>();
  let tail = head;
  for (const r of raw) {
    const ev: Event = { op: r.op, isCall: r.isCall, match: undefined, prev: tail, next: undefined };
    tail.next = ev;
    tail = ev;
    if (r.isCall) callOf.set(r.op.id, ev);
    else {
      const c = callOf.get(r.op.id);
      if (c === undefined) throw new Error('return event before its call');
      c.match = ev;
    }
  }

  const lift = (call: Event): void => {
    // Unlink the call and its return; they keep their own prev/next so unlift can put them back.
    if (call.prev !== undefined) call.prev.next = call.next;
    if (call.next !== undefined) call.next.prev = call.prev;
    const ret = call.match;
    if (ret !== undefined) {
      if (ret.prev !== undefined) ret.prev.next = ret.next;
      if (ret.next !== undefined) ret.next.prev = ret.prev;
    }
  };
  const unlift = (call: Event): void => {
    const ret = call.match;
    if (ret !== undefined) {
      if (ret.prev !== undefined) ret.prev.next = ret;
      if (ret.next !== undefined) ret.next.prev = ret;
    }
    if (call.prev !== undefined) call.prev.next = call;
    if (call.next !== undefined) call.next.prev = call;
  };

  const words = new Uint16Array(Math.ceil(ops.length / 16) || 1); // the linearized set, 16 bits per char
  const setBit = (i: number, on: boolean): void => {
    const w = i >> 4;
    const cur = words[w] ?? 0;
    words[w] = on ? cur | (1 << (i & 15)) : cur & ~(1 << (i & 15));
  };
  const bitsKey = (): string => {
    let s = '';
    for (let i = 0; i < words.length; i += 4096) s += String.fromCharCode(...words.subarray(i, i + 4096));
    return s;
  };

  const cache = new Set<string>(); // (linearized set, state) pairs already explored
  const stack: { call: Event; stateBefore: State }[] = [];
  let state: State = null; // every key starts absent
  let remainingDeterminate = ops.filter((o) => o.determinate).length;
  let steps = 0;
  // The longest prefix seen, for the explanation.
  let best: { depth: number; linearized: SearchOp[]; state: State; blocked: SearchOp } | undefined;

  let entry = head.next;
  while (remainingDeterminate > 0) {
    if (++steps > maxSteps) {
      return { key, verdict: 'unknown', opCount: ops.length, steps, explanation: undefined };
    }
    if (entry !== undefined && entry.isCall) {
      const next = stepRegister(state, entry.op.h);
      if (next !== undefined) {
        setBit(entry.op.id, true);
        const k = bitsKey() + '|' + stateKey(next.state);
        if (!cache.has(k)) {
          cache.add(k);
          stack.push({ call: entry, stateBefore: state });
          state = next.state;
          if (entry.op.determinate) remainingDeterminate--;
          lift(entry);
          entry = head.next;
          continue;
        }
        setBit(entry.op.id, false);
      }
      entry = entry.next;
      continue;
    }
    // A return event of an op not linearized yet (or the end of the list): this order is a dead end.
    if (entry !== undefined && (best === undefined || stack.length > best.depth)) {
      best = { depth: stack.length, linearized: stack.map((s) => s.call.op), state, blocked: entry.op };
    }
    const top = stack.pop();
    if (top === undefined) {
      return { key, verdict: 'violation', opCount: ops.length, steps, explanation: explain(key, ops, best, contextOps) };
    }
    unlift(top.call);
    setBit(top.call.op.id, false);
    state = top.stateBefore;
    if (top.call.op.determinate) remainingDeterminate++;
    entry = top.call.next;
  }
  return { key, verdict: 'ok', opCount: ops.length, steps, explanation: undefined };
}

function explain(
  key: string,
  ops: readonly SearchOp[],
  best: { depth: number; linearized: SearchOp[]; state: State; blocked: SearchOp } | undefined,
  contextOps: number,
): Explanation {
  if (best === undefined) throw new Error('a violation without any dead end recorded');
  const done = new Set(best.linearized.map((o) => o.id));
  const concurrent = ops
    .filter((o) => !done.has(o.id) && o.call <= best.blocked.ret)
    .sort((a, b) => a.call - b.call)
    .map((o) => o.h);
  const tail = best.linearized.slice(-contextOps).map((o) => o.h);
  const lines = [
    `key ${JSON.stringify(key)}: no linearization exists.`,
    `The longest linearizable prefix has ${best.depth} of ${ops.length} ops and leaves the register at ${showValue(best.state)}; its last ops:`,
    ...tail.map((h) => `    ${describeOp(h)}`),
    `Then this op must take effect before it returned, but cannot in any order of the ops open at that point:`,
    `  > ${describeOp(best.blocked.h)}`,
    `Ops called before it returned and not yet linearized:`,
    ...concurrent.slice(0, 3 * contextOps).map((h) => `    ${describeOp(h)}`),
    ...(concurrent.length > 3 * contextOps ? [`    ... and ${concurrent.length - 3 * contextOps} more`] : []),
  ];
  return {
    key,
    blockedOp: best.blocked.h,
    stateBefore: best.state,
    linearizedTail: tail,
    linearizedCount: best.depth,
    opCount: ops.length,
    concurrent,
    text: lines.join('\n'),
  };
}

/** Checks one key's ops (all must share the key). */
export function checkKey(key: string, ops: readonly HistoryOp[], opts: CheckOptions = {}): KeyResult {
  const maxSteps = opts.maxStepsPerKey ?? DEFAULT_MAX_STEPS_PER_KEY;
  const contextOps = opts.contextOps ?? DEFAULT_CONTEXT_OPS;
  const relevant = relevantOps(ops);
  const pruned = withoutUnobservedIndeterminateWrites(relevant);
  let stepsSpent = 0;
  if (pruned.length < relevant.length) {
    const first = searchKey(key, pruned, maxSteps, contextOps);
    if (first.verdict === 'ok') return { ...first, opCount: relevant.length };
    stepsSpent = first.steps;
  }
  const full = searchKey(key, relevant, maxSteps, contextOps);
  return { ...full, steps: full.steps + stepsSpent };
}

/** Checks a whole history, key by key. */
export function checkLinearizability(history: readonly HistoryOp[], opts: CheckOptions = {}): LinearizabilityResult {
  const byKey = new Map<string, HistoryOp[]>();
  for (const h of history) {
    let list = byKey.get(h.key);
    if (list === undefined) {
      list = [];
      byKey.set(h.key, list);
    }
    list.push(h);
  }
  const keys: KeyResult[] = [];
  for (const key of [...byKey.keys()].sort()) keys.push(checkKey(key, byKey.get(key) ?? [], opts));
  const violation = keys.find((k) => k.verdict === 'violation');
  const verdict: Verdict = violation !== undefined ? 'violation' : keys.some((k) => k.verdict === 'unknown') ? 'unknown' : 'ok';
  return { verdict, keys, firstViolation: violation?.explanation, steps: keys.reduce((n, k) => n + k.steps, 0) };
}

export interface LostWrite {
  readonly key: string;
  readonly write: HistoryOp; // the acknowledged write that is gone
  readonly finalValue: string | null; // what the key holds at the end
  readonly reason: string;
}

export interface FinalStateResult {
  readonly acknowledgedWrites: number;
  readonly lost: readonly LostWrite[]; // RPO: must be empty
}

/**
 * The end-of-run check: every acknowledged write is either still visible in `finalValues` (read after the
 * cluster healed, null = absent) or was overwritten by a later write — one that could have been ordered
 * after it (not completed before it was called). The final value itself must have been written by someone.
 * Keys missing from `finalValues` are not checked.
 */
export function checkFinalState(history: readonly HistoryOp[], finalValues: ReadonlyMap<string, string | null>): FinalStateResult {
  const lost: LostWrite[] = [];
  let acknowledgedWrites = 0;
  const byKey = new Map<string, HistoryOp[]>();
  for (const h of history) {
    const list = byKey.get(h.key) ?? [];
    list.push(h);
    byKey.set(h.key, list);
  }
  for (const [key, ops] of byKey) {
    // Writes that may have taken effect: acknowledged ones (a cas only if it swapped) and indeterminate ones.
    const mayHaveWritten = ops.filter((h) => {
      if (writtenValue(h) === undefined) return false;
      if (h.return === null) return true;
      if (!h.ok) return false;
      return h.op !== 'cas' || h.result === 'true';
    });
    const acked = mayHaveWritten.filter((h) => h.ok);
    acknowledgedWrites += acked.length;
    if (!finalValues.has(key)) continue;
    const final = finalValues.get(key) ?? null;
    // Who could have written the final value; the initial (absent) state counts as written at -infinity.
    const writers = mayHaveWritten.filter((h) => writtenValue(h)?.value === final);
    const latestWriterEnd = Math.max(-Infinity, ...writers.map((h) => (h.return === null ? Infinity : h.return)));
    for (const w of acked) {
      if (writtenValue(w)?.value === final) continue; // still visible
      if (final !== null && writers.length === 0) {
        lost.push({ key, write: w, finalValue: final, reason: `the final value ${showValue(final)} was never written` });
        continue;
      }
      // Overwritten: some writer of the final value must be able to follow w, i.e. not have returned before w's call.
      if (latestWriterEnd < w.call) {
        lost.push({
          key,
          write: w,
          finalValue: final,
          reason:
            writers.length === 0
              ? `the key ends absent and no delete could follow this write`
              : `the final value ${showValue(final)} was written by ops that all completed before this write was called`,
        });
      }
    }
  }
  return { acknowledgedWrites, lost };
}
