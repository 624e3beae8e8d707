// Shared helpers of the kv tests: temporary directories, entry builders, a seeded rng, state dumps.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeConfChange } from '../../src/raft/conf-change.js';
import type { ConfChangeType, Entry } from '../../src/raft/types.js';
import { encodeEnvelope } from '../../src/kv/codec.js';
import { encodeMemberContext } from '../../src/kv/state-machine.js';
import type { KvStateMachine } from '../../src/kv/state-machine.js';
import { readSnapshotFile } from '../../src/kv/snapshot-file.js';
import type { Command, Compare, KeyRange, Op } from '../../src/kv/types.js';

export const enc = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'utf8'));
export const dec = (b: Uint8Array): string => Buffer.from(b).toString('utf8');

export async function tempDir(tag: string): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `raftkv-kv-${tag}-`));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

export { seededRng } from '../../src/raft/rng.js';

export function seedFromEnv(): number {
  const s = process.env['SEED'];
  return s !== undefined && s !== '' ? Number(s) : Math.floor(Math.random() * 2 ** 31);
}

export const put = (key: string, value: string, prevKv = false): Command => ({
  type: 'put',
  key: enc(key),
  value: enc(value),
  prevKv,
});

export const del = (key: string, end = '', prevKv = false): Command => ({
  type: 'delete',
  range: { key: enc(key), end: enc(end) },
  prevKv,
});

export const delRange = (range: KeyRange, prevKv = false): Command => ({ type: 'delete', range, prevKv });

export const txn = (compares: Compare[], success: Op[], failure: Op[] = []): Command => ({
  type: 'txn',
  compares,
  success,
  failure,
});

/** Builds consecutive log entries starting after `startIndex`. */
export class LogBuilder {
  readonly entries: Entry[] = [];
  constructor(
    private index = 0,
    public term = 1,
  ) {}

  get lastIndex(): number {
    return this.index;
  }

  cmd(command: Command, clientId = '', seq = 0): Entry {
    return this.raw(encodeEnvelope({ clientId, seq, command }));
  }

  raw(data: Uint8Array, type: Entry['type'] = 'normal'): Entry {
    const e: Entry = { index: ++this.index, term: this.term, type, data };
    this.entries.push(e);
    return e;
  }

  noop(): Entry {
    return this.raw(new Uint8Array(0));
  }

  conf(type: ConfChangeType, nodeId: number, peerAddress = '', clientAddress = ''): Entry {
    const context = peerAddress === '' ? new Uint8Array(0) : encodeMemberContext({ peerAddress, clientAddress });
    return this.raw(encodeConfChange({ type, nodeId, context }), 'conf-change');
  }

  /** Entries built since the last take(). */
  take(): Entry[] {
    return this.entries.splice(0, this.entries.length);
  }
}

/** Every LevelDB record of the state machine (data, sessions, members, applied index), via a snapshot file. */
export async function dumpState(sm: KvStateMachine, dir: string): Promise<string[]> {
  const { path } = await sm.createSnapshot(dir, 1);
  const out: string[] = [];
  await readSnapshotFile(path, (records) => {
    for (const r of records) out.push(`${Buffer.from(r.key).toString('hex')}=${Buffer.from(r.value).toString('hex')}`);
    return Promise.resolve();
  });
  return out;
}

export const ALL: KeyRange = { key: Uint8Array.of(0), end: Uint8Array.of(0) };
