// The crash test's log and its expected state, both pure functions of the index (shared by the child process
// that applies the log and the parent that checks what survived).
//
// Entry i is, by the first rule that matches:
//   i % 50 == 0  conf change: add-learner 7 (i % 100 == 0) or remove 7 (i % 100 == 50; ignored if absent)
//   i % 17 == 0  the leader's no-op
//   i % 11 == 0  a client retry: the same clientId and seq as the last session entry before i (not applied again)
//   i % 7  == 0  a counter txn inside client session c<i % 3> with seq i
//   otherwise    a counter txn without session
// The counter txn: if version(counter) == the number of counter txns before i, put counter = i and
// k/<i % 97> = v<i>; else put dup = i. So an entry applied twice, or one skipped, leaves a `dup` key behind.
import { encodeConfChange } from '../../src/raft/conf-change.js';
import type { ConfState, Entry } from '../../src/raft/types.js';
import { encodeEnvelope } from '../../src/kv/codec.js';
import { encodeMemberContext } from '../../src/kv/state-machine.js';
import type { Command } from '../../src/kv/types.js';

export type Kind = 'conf' | 'noop' | 'retry' | 'session' | 'counter';

export function kindOf(i: number): Kind {
  if (i % 50 === 0) return 'conf';
  if (i % 17 === 0) return 'noop';
  if (i % 11 === 0 && lastSessionBefore(i) !== undefined) return 'retry';
  if (i % 7 === 0) return 'session';
  return 'counter';
}

function lastSessionBefore(i: number): number | undefined {
  for (let j = i - 1; j >= 1; j--) if (kindOf(j) === 'session') return j;
  return undefined;
}

const countersBefore = new Map<number, number>(); // memo: counter txns with index < i

/** Number of applied counter txns (session or not) with index < i. */
export function counterTxnsBefore(i: number): number {
  let n = 0;
  let from = 1;
  for (let j = i; j >= 1; j--) {
    const m = countersBefore.get(j);
    if (m !== undefined) {
      n = m;
      from = j;
      break;
    }
  }
  for (let j = from; j < i; j++) {
    const k = kindOf(j);
    if (k === 'session' || k === 'counter') n++;
    if (j % 1000 === 0) countersBefore.set(j + 1, n);
  }
  return n;
}

const enc = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'utf8'));

function counterTxn(i: number): Command {
  return {
    type: 'txn',
    compares: [{ key: enc('counter'), target: 'version', op: '=', number: counterTxnsBefore(i) }],
    success: [
      { type: 'put', key: enc('counter'), value: enc(String(i)), prevKv: false },
      { type: 'put', key: enc(`k/${String(i % 97).padStart(2, '0')}`), value: enc(`v${i}`), prevKv: false },
    ],
    failure: [{ type: 'put', key: enc('dup'), value: enc(String(i)), prevKv: false }],
  };
}

export const termOf = (i: number): number => 1 + Math.floor(i / 1000);

export function entryAt(i: number): Entry {
  const term = termOf(i);
  switch (kindOf(i)) {
    case 'conf': {
      const add = i % 100 === 0;
      const context = add ? encodeMemberContext({ peerAddress: '127.0.0.1:7007', clientAddress: '127.0.0.1:8007' }) : new Uint8Array(0);
      return { index: i, term, type: 'conf-change', data: encodeConfChange({ type: add ? 'add-learner' : 'remove', nodeId: 7, context }) };
    }
    case 'noop':
      return { index: i, term, type: 'normal', data: new Uint8Array(0) };
    case 'retry': {
      const j = lastSessionBefore(i) ?? 0;
      return { index: i, term, type: 'normal', data: encodeEnvelope({ clientId: `c${j % 3}`, seq: j, command: counterTxn(i) }) };
    }
    case 'session':
      return { index: i, term, type: 'normal', data: encodeEnvelope({ clientId: `c${i % 3}`, seq: i, command: counterTxn(i) }) };
    case 'counter':
      return { index: i, term, type: 'normal', data: encodeEnvelope({ clientId: '', seq: 0, command: counterTxn(i) }) };
  }
}

export function entriesFrom(first: number, count: number): Entry[] {
  return Array.from({ length: count }, (_, k) => entryAt(first + k));
}

/** The user keys expected after applying entries 1..n: "key=value c<create> m<mod> v<version>" (revisions), sorted. */
export function expectedKeys(n: number): string[] {
  const keys = new Map<string, { value: string; create: number; mod: number; version: number }>();
  let revision = 1; // the store revision: +1 per applied counter txn (each writes)
  for (let i = 1; i <= n; i++) {
    const k = kindOf(i);
    if (k !== 'session' && k !== 'counter') continue;
    revision++;
    for (const [key, value] of [
      ['counter', String(i)],
      [`k/${String(i % 97).padStart(2, '0')}`, `v${i}`],
    ] as const) {
      const prev = keys.get(key);
      keys.set(key, { value, create: prev?.create ?? revision, mod: revision, version: (prev?.version ?? 0) + 1 });
    }
  }
  return [...keys.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, v]) => `${key}=${v.value} c${v.create} m${v.mod} v${v.version}`);
}

export function expectedConfState(n: number): ConfState {
  const lastConf = Math.floor(n / 50) * 50;
  return { voters: [], learners: lastConf > 0 && lastConf % 100 === 0 ? [7] : [] };
}
