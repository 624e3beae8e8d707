// Storage faults of one member's data directory (issue 10): a second process on a live directory, LevelDB's
// own files removed or damaged, the generation pointer lost. Each case damages a stopped member of a 3-member
// in-process cluster (real WAL + LevelDB), restarts it, and checks that it either refuses to start with a
// message naming the file and the remedy, removing nothing, or recovers; and that every acknowledged key is
// still readable through the cluster (and, after the remedy, through that member).
import { createHash } from 'node:crypto';
import { cp, readFile, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, onTestFailed } from 'vitest';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import { isRaftKvError } from '../../src/shared/errors.js';
import type { RaftKvError } from '../../src/shared/errors.js';
import { seededRng } from '../../src/raft/rng.js';
import { TestCluster, dec, get, peer, put } from './harness.js';

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.destroy();
  cluster = undefined;
});

const KEYS = 400;
const VICTIM = 3;

async function start(seed?: number): Promise<TestCluster> {
  cluster = await TestCluster.start(3, {}, seed);
  const c = cluster;
  onTestFailed(() => console.error(`seed: SEED=${c.seed}`));
  return c;
}

/** Acknowledged puts k0..k{n-1}; values are seeded random bytes as hex (LevelDB cannot compress them away). */
async function writeKeys(c: TestCluster, n = KEYS): Promise<Map<string, string>> {
  const rng = seededRng(c.seed);
  const acked = new Map<string, string>();
  const leader = await c.waitForLeader();
  for (let i = 0; i < n; i++) {
    const value = Array.from({ length: 24 }, () => rng.int(0x1_0000_0000).toString(16).padStart(8, '0')).join('');
    await c.run(leader.write(put(`k${i}`, value), { clientId: '', seq: 0, deadlineMs: c.deadline() }));
    acked.set(`k${i}`, value);
  }
  await c.ticks(3); // followers learn the commit (lazy broadcast) and apply
  return acked;
}

async function expectAllKeys(c: TestCluster, id: number, acked: Map<string, string>, serializable: boolean): Promise<void> {
  const n = c.node(id);
  for (const [k, v] of acked) {
    const r = await c.run(n.read(get(k), { serializable, deadlineMs: c.deadline() }), 20);
    expect(r.result.kvs.map((kv) => dec(kv.value)), `${k} on node ${id}`).toEqual([v]);
  }
}

/** Stops the victim after making sure its state machine has LevelDB table files (a reopen writes its log out). */
async function stopWithTables(c: TestCluster): Promise<string> {
  await c.stopMember(VICTIM);
  const kv = join(c.dataDir(VICTIM), 'kv');
  const sm = await KvStateMachine.open(kv);
  await sm.close();
  const db = join(kv, (await readFile(join(kv, 'CURRENT'), 'utf8')).trim());
  expect((await readdir(db)).some((f) => f.endsWith('.ldb')), 'table files exist').toBe(true);
  return db;
}

async function tables(db: string): Promise<string[]> {
  return (await readdir(db)).filter((f) => f.endsWith('.ldb')).sort();
}

/** A hash of the files under `dir` that `include` names (default: all), names and contents. */
async function treeDigest(dir: string, include: (name: string) => boolean = () => true): Promise<string> {
  const h = createHash('sha256');
  const entries = (await readdir(dir, { withFileTypes: true, recursive: true })).filter((e) => include(e.name));
  for (const e of entries.sort((a, b) => join(a.parentPath, a.name).localeCompare(join(b.parentPath, b.name)))) {
    const path = join(e.parentPath, e.name);
    h.update(path);
    if (e.isFile()) h.update(await readFile(path));
  }
  return h.digest('hex');
}

async function expectRefused(c: TestCluster, pattern: RegExp): Promise<RaftKvError> {
  const err: unknown = await c.startMember(VICTIM).then(
    () => new Error('started'),
    (e: unknown) => e,
  );
  expect(isRaftKvError(err, 'DATA_CORRUPTION'), String(err)).toBe(true);
  const e = err as RaftKvError;
  expect(e.message).toMatch(pattern);
  expect(e.message).toMatch(/member remove/); // names the remedy
  return e;
}

/** The remedy the refusal names: remove the member, wipe its directory, add it back, start it as 'existing'. */
async function remedy(c: TestCluster, acked: Map<string, string>): Promise<void> {
  const leader = await c.waitForLeader();
  await c.run(leader.removeMember(VICTIM, c.deadline()), 20);
  await rm(c.dataDir(VICTIM), { recursive: true, force: true });
  const again = await c.waitForLeader();
  await c.run(again.addMember({ ...peer(VICTIM), learner: false }, c.deadline()), 20);
  await c.startMember(VICTIM, { initialClusterState: 'existing' });
  await c.tickUntil(() => c.node(VICTIM).status().appliedIndex >= again.status().commitIndex, 300, 'the re-added member caught up');
  await expectAllKeys(c, VICTIM, acked, true);
}

describe('a second process on a live data directory', () => {
  it('is refused before it reads or writes anything, naming the holder, and the running member loses nothing', async () => {
    const c = await start();
    const acked = await writeKeys(c, 50);
    const before = await treeDigest(join(c.dataDir(VICTIM), 'wal'));
    const err: unknown = await c.startMember(VICTIM + 10, { dataDir: c.dataDir(VICTIM), id: VICTIM }).then(
      () => new Error('started'),
      (e: unknown) => e,
    );
    expect(isRaftKvError(err, 'FAILED_PRECONDITION'), String(err)).toBe(true);
    expect((err as Error).message).toMatch(new RegExp(`in use by another raftkv process \\(pid ${process.pid}\\)`));
    expect(await treeDigest(join(c.dataDir(VICTIM), 'wal'))).toBe(before);
    await expectAllKeys(c, VICTIM, acked, true);
    // The running member still restarts from its files, and the lock is free once it stopped.
    await c.stopMember(VICTIM);
    await c.startMember(VICTIM);
    await expectAllKeys(c, VICTIM, acked, true);
  });
});

describe("LevelDB's own files damaged on a stopped member", () => {
  for (const [what, damage, pattern] of [
    ["LevelDB's CURRENT removed", (db: string) => rm(join(db, 'CURRENT')), /does not exist \(create_if_missing is false\)/],
    [
      'the MANIFEST removed',
      async (db: string) => {
        for (const f of await readdir(db)) if (f.startsWith('MANIFEST-')) await rm(join(db, f));
      },
      /MANIFEST|No such file/,
    ],
    [
      'a table file removed',
      async (db: string) => {
        const t = (await tables(db))[0];
        if (t !== undefined) await rm(join(db, t));
      },
      /missing files|\.ldb/,
    ],
    [
      'another (the newest) table file removed',
      async (db: string) => {
        const t = (await tables(db)).at(-1);
        if (t !== undefined) await rm(join(db, t));
      },
      /missing files|\.ldb/,
    ],
    [
      'a table file truncated',
      async (db: string) => {
        const t = (await tables(db))[0];
        if (t !== undefined) await truncate(join(db, t), Math.floor((await stat(join(db, t))).size / 2));
      },
      /Corruption|truncated|damaged|LevelDB/,
    ],
  ] as const) {
    it(`${what}: refuses to start, removes nothing, and the remedy brings every key back`, async () => {
      const c = await start();
      const acked = await writeKeys(c);
      const db = await stopWithTables(c);
      await damage(db);
      const left = await treeDigest(join(c.dataDir(VICTIM), 'kv'), (name) => name.endsWith('.ldb'));
      const e = await expectRefused(c, pattern);
      expect(e.message).toContain(db);
      // Opening a LevelDB store rewrites its MANIFEST and log; its tables (the data) must all be left as they were.
      expect(await treeDigest(join(c.dataDir(VICTIM), 'kv'), (name) => name.endsWith('.ldb')), 'no table removed or rewritten').toBe(left);
      await expectAllKeys(c, (await c.waitForLeader()).id, acked, false); // the cluster still has every acknowledged key
      await remedy(c, acked);
    });
  }

  it('bit flips inside a table file are found at start (never served as absence)', async () => {
    const c = await start();
    await writeKeys(c);
    const db = await stopWithTables(c);
    const rng = seededRng(c.seed + 1);
    for (const t of await tables(db)) {
      const path = join(db, t);
      const bytes = await readFile(path);
      // Flip a byte in every 512-byte stretch of the data blocks (the table's footer and index stay intact).
      const dataEnd = Math.max(1, bytes.length - 2048);
      for (let at = rng.int(512); at < dataEnd; at += 512) bytes[at] = (bytes[at] ?? 0) ^ (1 << rng.int(8));
      await writeFile(path, bytes);
    }
    await expectRefused(c, /damaged|Corruption|undecodable|LevelDB/);
  });

  it('a key lost behind the state machine (as a damaged block LevelDB reads without complaint) is found by the digest', async () => {
    const c = await start();
    await writeKeys(c, 20);
    await c.stopMember(VICTIM);
    const kv = join(c.dataDir(VICTIM), 'kv');
    const sm = await KvStateMachine.open(kv);
    await sm.close();
    // Delete a key behind the state machine's back (as a lost table would): its digest no longer matches.
    const { ClassicLevel } = await import('classic-level');
    const db = new ClassicLevel<Uint8Array, Uint8Array>(join(kv, (await readFile(join(kv, 'CURRENT'), 'utf8')).trim()), { keyEncoding: 'view', valueEncoding: 'view' });
    await db.open();
    await db.del(Uint8Array.from(Buffer.from('dk7', 'latin1')));
    await db.close();
    const e = await expectRefused(c, /is damaged: at applied index \d+ its key space scans to [0-9a-f]{16}\/19 \(digest\/keys\) but apply recorded [0-9a-f]{16}\/20/);
    expect(e.message).toContain(kv);
  });
});

describe('a record the state machine cannot decode', () => {
  it('names the store and the remedy (found by the chaos damage nemesis: it used to say only "malformed member table")', async () => {
    const c = await start();
    await writeKeys(c, 10);
    await c.stopMember(VICTIM);
    const kv = join(c.dataDir(VICTIM), 'kv');
    const live = join(kv, (await readFile(join(kv, 'CURRENT'), 'utf8')).trim());
    const { ClassicLevel } = await import('classic-level');
    const db = new ClassicLevel<Uint8Array, Uint8Array>(live, { keyEncoding: 'view', valueEncoding: 'view' });
    await db.open();
    await db.put(Uint8Array.from(Buffer.from('mmembers', 'latin1')), Uint8Array.from(Buffer.from('{"members":[{"id":"x"}]}')));
    await db.close();
    const e = await expectRefused(c, /is damaged: kv: malformed member table/);
    expect(e.message).toContain(live);
  });
});

describe('the generation pointer (kv/CURRENT)', () => {
  it('removed: refuses, deletes nothing, and says how to repair it; restoring the pointer brings the member back', async () => {
    const c = await start();
    const acked = await writeKeys(c, 50);
    await c.stopMember(VICTIM);
    const kv = join(c.dataDir(VICTIM), 'kv');
    const pointer = await readFile(join(kv, 'CURRENT'), 'utf8');
    await rm(join(kv, 'CURRENT'));
    const left = await treeDigest(kv);
    await expectRefused(c, /CURRENT is missing but .* holds db-\d+: the pointer to the live LevelDB store is lost and nothing was removed/);
    expect(await treeDigest(kv)).toBe(left);
    await writeFile(join(kv, 'CURRENT'), pointer);
    await c.startMember(VICTIM);
    await expectAllKeys(c, VICTIM, acked, true);
  });

  it('pointed at a generation that does not exist, with the snapshots damaged too: refuses with the store intact', async () => {
    const c = await start();
    await writeKeys(c, 50);
    await c.stopMember(VICTIM);
    const kv = join(c.dataDir(VICTIM), 'kv');
    await writeFile(join(kv, 'CURRENT'), 'db-99\n');
    const snap = join(c.dataDir(VICTIM), 'snap');
    for (const f of await readdir(snap)) await writeFile(join(snap, f), 'garbage');
    const left = await treeDigest(kv);
    await expectRefused(c, /CURRENT names db-99, which does not exist .*nothing was removed/);
    expect(await treeDigest(kv)).toBe(left);
  });

  it('an interrupted restore (a second generation beside the live one) is cleaned up only after the live one verified', async () => {
    const c = await start();
    const acked = await writeKeys(c, 50);
    await c.stopMember(VICTIM);
    const kv = join(c.dataDir(VICTIM), 'kv');
    const live = (await readFile(join(kv, 'CURRENT'), 'utf8')).trim();
    const next = `db-${Number(live.slice(3)) + 1}`;
    await cp(join(kv, live), join(kv, next), { recursive: true });
    await c.startMember(VICTIM);
    expect((await readdir(kv)).sort()).toEqual(['CURRENT', live].sort());
    await expectAllKeys(c, VICTIM, acked, true);
  });
});
