// The incarnation registry (peers.json) and the incarnation in node.json.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isRaftKvError } from '../../src/shared/errors.js';
import { checkDataDirIdentity } from '../../src/node/identity.js';
import { IncarnationRegistry, PEERS_FILE } from '../../src/node/incarnations.js';
import { STALE_MARKER } from '../../src/transport/transport.js';

let dir = '';
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'raftkv-inc-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const A = 'a'.repeat(32);
const B = 'b'.repeat(32);

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    return isRaftKvError(err) ? err.code : 'other';
  }
  return 'OK';
}

describe('IncarnationRegistry', () => {
  it('records a first contact durably, accepts it again, refuses another incarnation of the same member', async () => {
    const r = await IncarnationRegistry.load(dir, 1, 'self');
    r.appliedIndex = () => 7;
    await r.admit(2, A);
    expect(r.admit(2, A)).toBeUndefined(); // known: no write, synchronous
    let message = '';
    try {
      void r.admit(2, B);
    } catch (err) {
      message = err instanceof Error ? err.message : '';
      expect(isRaftKvError(err, 'CLUSTER_MISMATCH')).toBe(true);
    }
    expect(message.startsWith(STALE_MARKER)).toBe(true);
    expect(message).toMatch(/raftkv member remove 2/);
    const again = await IncarnationRegistry.load(dir, 1, 'self');
    expect(again.incarnationOf(2)).toBe(A);
    expect(again.gossip()).toEqual([{ id: 2, incarnation: A, recordedAt: 7 }]);
    expect(codeOf(() => again.admit(2, B))).toBe('CLUSTER_MISMATCH');
  });

  it('a removal forgets what was recorded before it, and refuses gossip from before it', async () => {
    const r = await IncarnationRegistry.load(dir, 1, 'self');
    r.appliedIndex = () => 10;
    await r.admit(3, A);
    await r.forget(3, 20); // removed at index 20
    expect(r.incarnationOf(3)).toBeUndefined();
    r.merge([{ id: 3, incarnation: A, recordedAt: 15 }]); // a lagging peer still gossips the old one
    expect(r.incarnationOf(3)).toBeUndefined();
    r.appliedIndex = () => 25;
    await r.admit(3, B); // the member added again, on a new directory
    r.merge([{ id: 3, incarnation: A, recordedAt: 15 }]);
    expect(r.incarnationOf(3)).toBe(B);
    await r.forget(3, 20); // replayed at restart: the later record stays
    expect(r.incarnationOf(3)).toBe(B);
    const reloaded = await IncarnationRegistry.load(dir, 1, 'self');
    reloaded.merge([{ id: 3, incarnation: A, recordedAt: 15 }, { id: 4, incarnation: A, recordedAt: 30 }, { id: 1, incarnation: A, recordedAt: 30 }]);
    expect(reloaded.incarnationOf(3)).toBe(B);
    expect(reloaded.incarnationOf(4)).toBe(A); // an unknown member is learnt from gossip
    expect(reloaded.incarnationOf(1)).toBeUndefined(); // never a record of itself
    await reloaded.forgetAbsent(new Set([3]), 40);
    expect(reloaded.incarnationOf(4)).toBeUndefined();
  });

  it('a malformed peers.json is DATA_CORRUPTION, naming the file', async () => {
    await writeFile(join(dir, PEERS_FILE), '{"format":1,"incarnations":{"x":{"incarnation":"a","recordedAt":1}},"removedAt":{}}');
    await expect(IncarnationRegistry.load(dir, 1, 'self')).rejects.toMatchObject({ code: 'DATA_CORRUPTION', message: expect.stringMatching(/peers\.json: bad member id "x"/) as unknown });
    await writeFile(join(dir, PEERS_FILE), 'not json');
    await expect(IncarnationRegistry.load(dir, 1, 'self')).rejects.toMatchObject({ code: 'DATA_CORRUPTION' });
  });
});

describe('node.json incarnation', () => {
  it('is created with the directory, kept across starts, and added to a file written before it existed', async () => {
    const first = await checkDataDirIdentity(dir, { nodeId: 1, clusterId: 'c' });
    expect(first.created).toBe(true);
    expect(first.incarnation).toMatch(/^[0-9a-f]{32}$/);
    expect((await checkDataDirIdentity(dir, { nodeId: 1, clusterId: 'c' })).incarnation).toBe(first.incarnation);
    await writeFile(join(dir, 'node.json'), '{"format":1,"nodeId":1,"clusterId":"c","createdAt":"2026-01-01T00:00:00.000Z"}\n');
    const upgraded = await checkDataDirIdentity(dir, { nodeId: 1, clusterId: 'c' });
    expect(upgraded.created).toBe(false);
    expect(upgraded.incarnation).toMatch(/^[0-9a-f]{32}$/);
    expect(JSON.parse(await readFile(join(dir, 'node.json'), 'utf8'))).toMatchObject({ createdAt: '2026-01-01T00:00:00.000Z', incarnation: upgraded.incarnation });
    expect((await checkDataDirIdentity(dir, { nodeId: 1, clusterId: 'c' })).incarnation).toBe(upgraded.incarnation);
  });
});
