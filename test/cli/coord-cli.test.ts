// The coordination commands of `raftkv` (src/cli/coord-commands.ts) in-process against each target of
// test/client/coord-targets.ts (a real etcd 3.4 today): watch's etcdctl-style and JSON lines, lease
// grant/timetolive/list/keep-alive/revoke in etcdctl's words, lock with and without a command against etcdctl
// lock, elect against etcdctl elect -l, flag errors, and the bin's exit status; `put --lease` through raftkv's
// own protocol against a one-member raftkv (refused with etcd's "requested lease not found" until the server
// has leases). Ports 29300-29599.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { CliIo } from '../../src/cli/main.js';
import { RaftKvError } from '../../src/shared/errors.js';
import { etcdctl, etcdctlRun, waitFor } from '../client/coord-helpers.js';
import { TARGETS } from '../client/coord-targets.js';
import type { CoordTarget } from '../client/coord-targets.js';
import { startTestCluster } from '../integration/helpers.js';
import type { TestCluster } from '../integration/helpers.js';
import { describeWithSystem } from '../system-deps.js';

const BASE_PORT = 29300;
const RAFTKV_BASE_PORT = 29500;
const REPO = join(import.meta.dirname, '..', '..');

interface Run {
  readonly output: () => string;
  /** Resolves with the error the command failed with (undefined on success). */
  readonly done: Promise<RaftKvError | undefined>;
  /** Ctrl-C. */
  readonly interrupt: () => void;
}

/** Starts `raftkv ARGS` in-process against `endpoints`. */
function start(endpoints: readonly string[], args: string[]): Run {
  let out = '';
  let interrupt = (): void => undefined;
  const interrupted = new Promise<void>((resolve) => {
    interrupt = resolve;
  });
  const io: CliIo = { stdout: { write: (s: string) => (out += s) }, env: { RAFTKV_ENDPOINTS: endpoints.join(',') }, interrupted };
  const done = main(args, io).then(
    () => undefined,
    (err: unknown) => {
      if (err instanceof RaftKvError) return err;
      throw err;
    },
  );
  return { output: () => out, done, interrupt };
}

async function run(endpoints: readonly string[], args: string[]): Promise<{ out: string; error: RaftKvError | undefined }> {
  const r = start(endpoints, args);
  const error = await r.done;
  return { out: r.output(), error };
}

describe('coordination commands: argument errors (no cluster needed)', () => {
  const eps = ['127.0.0.1:1'];
  it.each([
    [['watch'], /watch: expected KEY/],
    [['watch', 'k', '--once'], /watch: unknown flag --once/],
    [['watch', 'k', '--rev', 'x'], /--rev: "x" is not a whole number/],
    [['watch', 'k', '--', 'x'], /only lock runs a command/],
    [['lease'], /lease: expected grant, revoke/],
    [['lease', 'grant', '0'], /TTL: "0" is not a whole number in 1/],
    [['lease', 'revoke', 'zz'], /"zz" is not a hexadecimal lease id/],
    [['lease', 'revoke', '0'], /out of range/],
    [['lease', 'grant', '5', '--keys'], /lease grant: unknown flag --keys/],
    [['lock'], /lock: expected NAME/],
    [['lock', 'n', '--'], /"--" must be followed by a COMMAND/],
    [['lock', 'n', '--ttl', '0'], /--ttl: "0"/],
    [['elect'], /elect: expected NAME \[PROPOSAL\]/],
    [['put', 'k', 'v', '--lease', 'xyz'], /"xyz" is not a hexadecimal lease id/],
  ])('raftkv %j is refused before connecting', async (args, message) => {
    const { error } = await run(eps, args);
    expect(error?.code).toBe('INVALID_ARGUMENT');
    expect(error?.message).toMatch(message);
  });

  it('--help lists the coordination commands', async () => {
    const { out } = await run(eps, ['--help']);
    for (const cmd of ['watch KEY', 'lease grant TTL', 'lock NAME', 'elect NAME', '--lease ID']) expect(out).toContain(cmd);
  });
});

for (const kind of TARGETS) {
  describeWithSystem(kind.deps, `coordination commands against ${kind.name}`, () => {
    let target: CoordTarget;
    let eps: readonly string[];

    beforeAll(async () => {
      target = await kind.start(BASE_PORT);
      eps = target.endpoints;
    });

    afterAll(async () => {
      await target?.close();
    });

    it('watch prints events as etcdctl does, -w json one line per event, --rev replays history', async () => {
      const w = start(eps, ['watch', 'cw/', '--prefix', '--prev-kv']);
      const j = start(eps, ['-w', 'json', 'watch', 'cw/a']);
      // The watch exists once a put made after it starts shows up: keep putting a marker until both see one.
      await waitFor('both watches to be created', async () => {
        await etcdctlRun(eps, ['put', 'cw/a', 'marker']);
        return w.output().includes('marker') && j.output().includes('marker');
      });
      // Then one more put both have seen: nothing of the marker loop is in flight after it.
      expect((await etcdctlRun(eps, ['put', 'cw/a', 'sync'])).code).toBe(0);
      await waitFor('the sync put', () => w.output().includes('sync') && j.output().includes('sync'));
      const before = w.output();
      const beforeJson = j.output();
      expect((await etcdctlRun(eps, ['put', 'cw/a', 'one'])).code).toBe(0);
      expect((await etcdctlRun(eps, ['del', 'cw/a'])).code).toBe(0);
      await waitFor('the delete', () => w.output().includes('DELETE') && j.output().includes('DELETE'));
      w.interrupt();
      j.interrupt();
      expect(await w.done).toBeUndefined();
      expect(await j.done).toBeUndefined();
      expect(w.output().slice(before.length)).toBe('PUT\ncw/a\nsync\ncw/a\none\nDELETE\ncw/a\none\ncw/a\n\n');
      const lines = j.output().slice(beforeJson.length).trim().split('\n').map((l) => JSON.parse(l) as { type: string; revision: number; kv: { key: string; value: string } });
      expect(lines.map((l) => [l.type, l.kv.key, l.kv.value])).toEqual([['PUT', 'cw/a', 'one'], ['DELETE', 'cw/a', '']]);
      expect((lines[1]?.revision ?? 0) - (lines[0]?.revision ?? 0)).toBe(1);
      // --rev: the same two events again from history (the one at the first JSON line's revision onwards).
      const replay = start(eps, ['watch', 'cw/a', '--rev', String(lines[0]?.revision ?? 0)]);
      await waitFor('the replayed delete', () => replay.output().includes('DELETE'));
      replay.interrupt();
      expect(await replay.done).toBeUndefined();
      expect(replay.output()).toBe('PUT\ncw/a\none\nDELETE\ncw/a\n\n');
    });

    it('lease grant, timetolive --keys, list, keep-alive --once, revoke: etcdctl words; ids etcdctl takes', async () => {
      const g = await run(eps, ['lease', 'grant', '30']);
      expect(g.error).toBeUndefined();
      const m = /^lease ([0-9a-f]{16}) granted with TTL\(30s\)\n$/.exec(g.out);
      const id = m?.[1] ?? '';
      expect(id).not.toBe('');
      expect((await etcdctlRun(eps, ['put', '--lease', id, 'cl/k', 'v'])).code).toBe(0); // etcdctl takes our id
      const t = await run(eps, ['lease', 'timetolive', id, '--keys']);
      expect(t.out).toMatch(new RegExp(`^lease ${id} granted with TTL\\(30s\\), remaining\\(\\d+s\\), attached keys\\(\\[cl/k\\]\\)\\n$`));
      const list = (await run(eps, ['lease', 'list'])).out;
      expect(list).toMatch(/^found \d+ leases\n([0-9a-f]{16}\n)+$/);
      expect(list).toContain(`\n${id}\n`);
      expect((await run(eps, ['lease', 'keep-alive', id, '--once'])).out).toBe(`lease ${id} keepalived with TTL(30)\n`);
      const ka = JSON.parse((await run(eps, ['-w', 'json', 'lease', 'keep-alive', id, '--once'])).out) as { id: string; ttl: number };
      expect(ka).toEqual({ id, ttl: 30 });
      expect((await run(eps, ['lease', 'revoke', id])).out).toBe(`lease ${id} revoked\n`);
      expect((await etcdctlRun(eps, ['get', 'cl/k'])).out).toBe('');
      expect((await run(eps, ['lease', 'timetolive', id])).out).toBe(`lease ${id} already expired\n`);
      const again = await run(eps, ['lease', 'keep-alive', id, '--once']);
      expect(again.error?.code).toBe('LEASE_NOT_FOUND');
      const revokeAgain = await run(eps, ['lease', 'revoke', id]);
      expect(revokeAgain.error?.code).toBe('LEASE_NOT_FOUND');
      expect(revokeAgain.error?.message).toBe('etcdserver: requested lease not found');
    });

    it('lease keep-alive keeps going until the lease is revoked elsewhere, then says so and fails', async () => {
      const id = /lease ([0-9a-f]{16})/.exec((await run(eps, ['lease', 'grant', '3'])).out)?.[1] ?? '';
      const ka = start(eps, ['lease', 'keep-alive', id]);
      await waitFor('three keep-alives', () => ka.output().split('\n').filter((l) => l === `lease ${id} keepalived with TTL(3)`).length >= 3);
      expect((await etcdctlRun(eps, ['lease', 'revoke', id])).code).toBe(0);
      const err = await ka.done;
      expect(err?.code).toBe('LEASE_NOT_FOUND');
      expect(ka.output()).toMatch(new RegExp(`lease ${id} expired or revoked\\.\\n$`));
    });

    it('lock -- COMMAND runs it holding the lock (etcdctl environment) and exits with its status', async () => {
      const r = await run(eps, ['lock', 'clk', '--', 'sh', '-c', 'echo "$ETCD_LOCK_KEY $ETCD_LOCK_REV"; exit 3']);
      expect(r.out).toMatch(/^clk\/[0-9a-f]+ \d+\n$/);
      expect(r.error).toBeDefined();
      expect((r.error as RaftKvError & { exitStatus?: number }).exitStatus).toBe(3);
      expect((await etcdctlRun(eps, ['get', '--prefix', 'clk/'])).out).toBe(''); // unlocked, session revoked
      const ok = await run(eps, ['lock', 'clk', '--', 'true']);
      expect(ok.error).toBeUndefined();
      // The bin: the command's status is the exit status, the message on stderr.
      const bin = spawnSync(process.execPath, [join(REPO, 'bin', 'raftkv.js'), '--endpoints', eps.join(','), 'lock', 'clk', '--', 'sh', '-c', 'exit 4'], { encoding: 'utf8' });
      expect(bin.status).toBe(4);
      expect(bin.stderr).toBe('raftkv: lock: sh -c exit 4 exited with status 4\n');
    });

    it('lock without a command prints its key and holds it: etcdctl lock waits until Ctrl-C releases it', async () => {
      const ours = start(eps, ['lock', 'clh']);
      await waitFor('the lock key', () => ours.output() !== '');
      expect(ours.output()).toMatch(/^clh\/[0-9a-f]+\n\n$/);
      const theirs = etcdctl(eps, ['lock', 'clh', '--', 'sh', '-c', 'echo got it']);
      await waitFor('etcdctl to queue behind us', async () => (await etcdctlRun(eps, ['get', '--prefix', '--keys-only', 'clh/'])).out.trim().split('\n').filter((l) => l !== '').length === 2);
      expect(theirs.stdout()).toBe(''); // it cannot have the lock while we hold it
      ours.interrupt();
      expect(await ours.done).toBeUndefined();
      expect(await theirs.exited).toBe(0);
      expect(theirs.stdout()).toBe('got it\n');
    });

    it('elect PROPOSAL campaigns and holds; elect NAME observes; etcdctl elect -l sees ours', async () => {
      const observer = start(eps, ['elect', 'cel']);
      const theirsObserving = etcdctl(eps, ['elect', '-l', 'cel']);
      const ours = start(eps, ['elect', 'cel', 'p1']);
      await waitFor('elected', () => ours.output() !== '');
      expect(ours.output()).toMatch(/^cel\/[0-9a-f]+\np1\n$/);
      await waitFor('both observers to see p1', () => observer.output().includes('p1') && theirsObserving.stdout().includes('p1'));
      const second = start(eps, ['-w', 'json', 'elect', 'cel', 'p2']);
      await waitFor('the second candidate queued', async () => (await etcdctlRun(eps, ['get', '--prefix', '--keys-only', 'cel/'])).out.trim().split('\n').filter((l) => l !== '').length === 2);
      expect(second.output()).toBe('');
      ours.interrupt(); // resigns
      expect(await ours.done).toBeUndefined();
      await waitFor('the second elected', () => second.output() !== '');
      expect(JSON.parse(second.output())).toMatchObject({ value: 'p2' });
      await waitFor('both observers to see p2', () => observer.output().includes('p2') && theirsObserving.stdout().includes('p2'));
      second.interrupt();
      observer.interrupt();
      theirsObserving.child.kill('SIGINT');
      expect(await second.done).toBeUndefined();
      expect(await observer.done).toBeUndefined();
      await theirsObserving.exited;
      expect(observer.output()).toMatch(/^cel\/[0-9a-f]+\np1\ncel\/[0-9a-f]+\np2\n$/);
      expect((await etcdctlRun(eps, ['get', '--prefix', 'cel/'])).out).toBe('');
    });
  });
}

describe('put --lease over raftkv\'s own protocol', () => {
  let tc: TestCluster;
  beforeAll(async () => {
    tc = await startTestCluster({ nodes: 1, basePort: RAFTKV_BASE_PORT });
  });
  afterAll(async () => {
    await tc?.close();
  });

  it('reaches the state machine, which refuses a lease it does not have with etcd\'s error (until leases are served)', async () => {
    const eps = tc.cluster.endpoints();
    // A small id: raftkv's own protocol decodes int64s as JS numbers (proto.ts, longs: Number), and the server
    // refuses an id above 2^53 as "lease must be an integer" (validate.ts) before the lease lookup: see the report.
    const r = await run(eps, ['put', 'k', 'v', '--lease', '1f']);
    expect(r.error?.code).toBe('LEASE_NOT_FOUND');
    expect(r.error?.message).toContain('etcdserver: requested lease not found');
    expect((await run(eps, ['put', 'k', 'v'])).error).toBeUndefined();
  });
});
