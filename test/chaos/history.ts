// The chaos history: one JSON object per operation, one per line (JSON lines), in the order ops were called.
//
// Format (exactly these keys):
//   {"client": int, "op": "put"|"get"|"delete"|"cas", "key": string, "value": string|null,
//    "expected": string|null, "call": ns, "return": ns|null, "ok": bool, "result": string|null}
//
// - `value`: the value written by put and cas (null for get and delete).
// - `expected`: cas only: the value the key must hold for the swap (null = the key must be absent).
// - `call` / `return`: nanoseconds on one monotonic clock (process.hrtime, relative to the run's start).
//   `return` is null when the outcome is unknown (timeout, lost connection): the op is *indeterminate* and
//   may have taken effect at any time after its call, or never.
// - `ok`: true if the op was acknowledged. ok=false with a return time = a definite failure: it never happened.
// - `result`: get: the value read (null = absent); cas: "true" / "false" (did the swap happen); otherwise null.
import { readFileSync, writeFileSync } from 'node:fs';

export type OpKind = 'put' | 'get' | 'delete' | 'cas';

export interface HistoryOp {
  readonly client: number;
  readonly op: OpKind;
  readonly key: string;
  readonly value: string | null; // put/cas: the value written; get/delete: null
  readonly expected: string | null; // cas: the required current value (null = absent); others: null
  readonly call: number; // ns
  readonly return: number | null; // ns; null = indeterminate
  readonly ok: boolean; // acknowledged
  readonly result: string | null; // get: value read; cas: "true"/"false"; else null
}

/** What happened to an op, as the client saw it. */
export type Outcome =
  | { readonly kind: 'ok'; readonly result: string | null }
  | { readonly kind: 'failed' } // definite error: the op did not happen
  | { readonly kind: 'indeterminate' }; // timeout / lost connection: it may or may not have happened

export class HistoryFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HistoryFormatError';
  }
}

const OP_KINDS: readonly OpKind[] = ['put', 'get', 'delete', 'cas'];
const KEYS = ['client', 'op', 'key', 'value', 'expected', 'call', 'return', 'ok', 'result'] as const;

function isStringOrNull(v: unknown): v is string | null {
  return v === null || typeof v === 'string';
}

/** Validates one parsed object against the format, and the op's internal consistency. */
export function validateOp(raw: unknown, where = 'op'): HistoryOp {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new HistoryFormatError(`${where}: not an object`);
  }
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!(KEYS as readonly string[]).includes(k)) throw new HistoryFormatError(`${where}: unknown field "${k}"`);
  }
  const { client, op, key, value, expected, call, ok, result } = o;
  const ret = o['return'];
  if (typeof client !== 'number' || !Number.isSafeInteger(client)) throw new HistoryFormatError(`${where}: client must be an int`);
  if (typeof op !== 'string' || !(OP_KINDS as readonly string[]).includes(op)) throw new HistoryFormatError(`${where}: bad op`);
  if (typeof key !== 'string') throw new HistoryFormatError(`${where}: key must be a string`);
  if (!isStringOrNull(value)) throw new HistoryFormatError(`${where}: value must be a string or null`);
  if (!isStringOrNull(expected)) throw new HistoryFormatError(`${where}: expected must be a string or null`);
  if (typeof call !== 'number' || !Number.isSafeInteger(call)) throw new HistoryFormatError(`${where}: call must be an int (ns)`);
  if (ret !== null && (typeof ret !== 'number' || !Number.isSafeInteger(ret))) {
    throw new HistoryFormatError(`${where}: return must be an int (ns) or null`);
  }
  if (typeof ok !== 'boolean') throw new HistoryFormatError(`${where}: ok must be a boolean`);
  if (!isStringOrNull(result)) throw new HistoryFormatError(`${where}: result must be a string or null`);
  const h: HistoryOp = { client, op: op as OpKind, key, value, expected, call, return: ret, ok, result };
  checkConsistent(h, where);
  return h;
}

function checkConsistent(h: HistoryOp, where: string): void {
  if (h.return !== null && h.return < h.call) throw new HistoryFormatError(`${where}: return before call`);
  if (h.return === null && h.ok) throw new HistoryFormatError(`${where}: an indeterminate op cannot be ok`);
  if ((h.op === 'put' || h.op === 'cas') && h.value === null) throw new HistoryFormatError(`${where}: ${h.op} needs a value`);
  if ((h.op === 'get' || h.op === 'delete') && h.value !== null) throw new HistoryFormatError(`${where}: ${h.op} has no value`);
  if (h.op !== 'cas' && h.expected !== null) throw new HistoryFormatError(`${where}: only cas has expected`);
  if (!h.ok && h.result !== null) throw new HistoryFormatError(`${where}: a failed op has no result`);
  if (h.ok && h.op === 'cas' && h.result !== 'true' && h.result !== 'false') {
    throw new HistoryFormatError(`${where}: an ok cas has result "true" or "false"`);
  }
  if ((h.op === 'put' || h.op === 'delete') && h.result !== null) throw new HistoryFormatError(`${where}: ${h.op} has no result`);
}

/** One op as one JSON line (keys in the documented order). */
export function formatOp(h: HistoryOp): string {
  return JSON.stringify({
    client: h.client,
    op: h.op,
    key: h.key,
    value: h.value,
    expected: h.expected,
    call: h.call,
    return: h.return,
    ok: h.ok,
    result: h.result,
  });
}

export function formatHistory(ops: readonly HistoryOp[]): string {
  return ops.map((o) => formatOp(o) + '\n').join('');
}

export function parseHistory(text: string): HistoryOp[] {
  const out: HistoryOp[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]?.trim() ?? '';
    if (line === '') continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch (err) {
      throw new HistoryFormatError(`line ${i + 1}: not JSON (${err instanceof Error ? err.message : String(err)})`);
    }
    out.push(validateOp(parsed, `line ${i + 1}`));
  }
  return out;
}

export function writeHistoryFile(path: string, ops: readonly HistoryOp[]): void {
  writeFileSync(path, formatHistory(ops));
}

export function readHistoryFile(path: string): HistoryOp[] {
  return parseHistory(readFileSync(path, 'utf8'));
}

export function isIndeterminate(h: HistoryOp): boolean {
  return h.return === null;
}

/** The op's effect on its key if it takes effect as a write, or undefined for a read. */
export function writtenValue(h: HistoryOp): { value: string | null } | undefined {
  switch (h.op) {
    case 'put':
    case 'cas':
      return { value: h.value };
    case 'delete':
      return { value: null };
    case 'get':
      return undefined;
    default:
      return assertNever(h.op);
  }
}

export function assertNever(x: never): never {
  throw new Error(`unreachable: ${JSON.stringify(x)}`);
}

/** Monotonic nanoseconds since `origin` (a process.hrtime.bigint() reading). */
export function nsSince(origin: bigint): number {
  return Number(process.hrtime.bigint() - origin);
}

export interface PendingOp {
  readonly client: number;
  readonly op: OpKind;
  readonly key: string;
  readonly value: string | null;
  readonly expected: string | null;
}

/**
 * Collects a history while clients run. `begin` stamps the call time; `end` stamps the return time and the
 * outcome. Ops still open when `finish` is called are recorded as indeterminate.
 */
export class HistoryRecorder {
  private readonly origin: bigint; // the zero of every timestamp
  private readonly slots: (HistoryOp | PendingOp & { readonly call: number })[] = []; // in call order
  private readonly open = new Set<number>(); // slot numbers begun and not ended

  constructor(origin: bigint = process.hrtime.bigint()) {
    this.origin = origin;
  }

  now(): number {
    return nsSince(this.origin);
  }

  begin(p: PendingOp): number {
    const slot = this.slots.length;
    this.slots.push({ ...p, call: this.now() });
    this.open.add(slot);
    return slot;
  }

  end(slot: number, outcome: Outcome): HistoryOp {
    const p = this.slots[slot];
    if (p === undefined || !this.open.has(slot)) throw new Error(`history slot ${slot} is not open`);
    this.open.delete(slot);
    const base = { client: p.client, op: p.op, key: p.key, value: p.value, expected: p.expected, call: p.call };
    let h: HistoryOp;
    switch (outcome.kind) {
      case 'ok':
        h = { ...base, return: this.now(), ok: true, result: outcome.result };
        break;
      case 'failed':
        h = { ...base, return: this.now(), ok: false, result: null };
        break;
      case 'indeterminate':
        h = { ...base, return: null, ok: false, result: null };
        break;
      default:
        return assertNever(outcome);
    }
    checkConsistent(h, `client ${h.client} ${h.op} ${h.key}`);
    this.slots[slot] = h;
    return h;
  }

  /** Every op, in call order; ops still open become indeterminate. */
  finish(): HistoryOp[] {
    for (const slot of [...this.open]) this.end(slot, { kind: 'indeterminate' });
    return this.slots as HistoryOp[];
  }

  get size(): number {
    return this.slots.length;
  }
}
