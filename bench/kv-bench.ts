// State machine benchmark: apply throughput (puts in driver-sized batches, CAS txns, single-entry batches),
// then snapshot write, verify and restore time for the resulting store (1,000,000 keys by default).
// Run: npm run build; node dist/bench/kv-bench.js [--keys 1000000] [--value-bytes 100] [--dir <dir>]
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { encodeEnvelope } from '../src/kv/codec.js';
import { KvStateMachine, verifySnapshotFile } from '../src/kv/state-machine.js';
import type { Command } from '../src/kv/types.js';
import type { Entry } from '../src/raft/types.js';

const { values: args } = parseArgs({
  options: {
    keys: { type: 'string', default: '1000000' },
    'value-bytes': { type: 'string', default: '100' },
    dir: { type: 'string' },
  },
});
const KEYS = Number(args.keys);
const VALUE_BYTES = Number(args['value-bytes']);

const enc = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'utf8'));
const keyOf = (i: number): Uint8Array => enc(`key/${String(i).padStart(10, '0')}`);
const value = new Uint8Array(VALUE_BYTES).fill(0x61);

let index = 0;
function entry(command: Command, clientId = '', seq = 0): Entry {
  return { index: ++index, term: 1, type: 'normal', data: encodeEnvelope({ clientId, seq, command }) };
}

/** Wall time and this process's CPU time (all threads, LevelDB's included): on a shared machine the CPU
 * figure is the one that does not depend on the neighbours' load. */
async function timed<T>(what: string, f: () => Promise<T>): Promise<{ ms: number; cpuMs: number; result: T }> {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const result = await f();
  const ms = performance.now() - t0;
  const c = process.cpuUsage(c0);
  const cpuMs = (c.user + c.system) / 1000;
  console.log(`${what.padEnd(52)} ${ms.toFixed(0).padStart(8)} ms wall ${cpuMs.toFixed(0).padStart(8)} ms cpu`);
  return { ms, cpuMs, result };
}

async function applyAll(sm: KvStateMachine, count: number, batch: number, make: (i: number) => Entry): Promise<void> {
  for (let i = 0; i < count; i += batch) {
    const entries: Entry[] = [];
    for (let k = i; k < Math.min(count, i + batch); k++) entries.push(make(k));
    await sm.apply(entries);
  }
}

const rate = (n: number, ms: number): string => `${Math.round((n / ms) * 1000).toLocaleString('en-US')}/s`;
const mib = (b: number): string => `${(b / 1024 / 1024).toFixed(1)} MiB`;

async function main(): Promise<void> {
  const root = await mkdtemp(join(args.dir ?? tmpdir(), 'raftkv-kv-bench-'));
  console.log(`kv-bench: ${KEYS.toLocaleString('en-US')} keys, ${VALUE_BYTES}-byte values, in ${root}`);
  const sm = await KvStateMachine.open(join(root, 'a'));
  const restored = await KvStateMachine.open(join(root, 'b'));
  try {
    const puts = await timed(`apply: ${KEYS} puts, batches of 1000 entries`, () =>
      applyAll(sm, KEYS, 1000, (i) => entry({ type: 'put', key: keyOf(i), value, prevKv: false })),
    );
    const casN = Math.min(100_000, KEYS);
    const cas = await timed(`apply: ${casN} CAS txns with sessions, batches of 100`, () =>
      applyAll(sm, casN, 100, (i) =>
        entry(
          {
            type: 'txn',
            compares: [{ key: keyOf(i), target: 'version', op: '=', number: 1 }],
            success: [{ type: 'put', key: keyOf(i), value, prevKv: false }],
            failure: [],
          },
          `client-${i % 1000}`,
          1 + Math.floor(i / 1000),
        ),
      ),
    );
    const singleN = 5000;
    const single = await timed(`apply: ${singleN} puts, one entry per batch`, () =>
      applyAll(sm, singleN, 1, (i) => entry({ type: 'put', key: keyOf(i), value, prevKv: false })),
    );
    const snapDir = join(root, 'snap');
    const snap = await timed(`snapshot write (${KEYS} keys + sessions)`, () => sm.createSnapshot(snapDir, 1));
    const size = (await stat(snap.result.path)).size;
    const verify = await timed('snapshot verify (checksum + framing)', () => verifySnapshotFile(snap.result.path));
    const restore = await timed('snapshot restore (verify + ingest + swap)', () => restored.restoreSnapshot(snap.result.path));
    if (restored.appliedIndex !== sm.appliedIndex) throw new Error('restore did not reach the applied index');
    const probe = await restored.range({ key: keyOf(KEYS - 1), end: new Uint8Array(0), limit: 0, keysOnly: false, countOnly: false });
    if (probe.kvs.length !== 1) throw new Error('restored store misses the last key');
    console.log('');
    console.log(`load average at the end: ${loadavg().map((l) => l.toFixed(1)).join(' ')} (${cpus().length} cores)`);
    console.log(`apply puts (batch 1000):   ${rate(KEYS, puts.ms)} entries wall, ${rate(KEYS, puts.cpuMs)} per CPU-second`);
    console.log(`apply CAS txn (batch 100): ${rate(casN, cas.ms)} entries wall, ${rate(casN, cas.cpuMs)} per CPU-second`);
    console.log(`apply put (batch 1):       ${rate(singleN, single.ms)} entries wall, ${rate(singleN, single.cpuMs)} per CPU-second`);
    console.log(`snapshot file:             ${mib(size)}, written at ${mib((size / snap.ms) * 1000)}/s wall`);
    console.log(`snapshot write:            ${(snap.ms / 1000).toFixed(2)} s wall, ${(snap.cpuMs / 1000).toFixed(2)} s cpu`);
    console.log(`snapshot verify:           ${(verify.ms / 1000).toFixed(2)} s wall, ${(verify.cpuMs / 1000).toFixed(2)} s cpu`);
    console.log(`snapshot restore:          ${(restore.ms / 1000).toFixed(2)} s wall, ${(restore.cpuMs / 1000).toFixed(2)} s cpu (${rate(KEYS, restore.ms)} keys wall)`);
    console.log(`LevelDB size after load:   ${mib(await sm.dataSizeBytes())}`);
  } finally {
    await sm.close();
    await restored.close();
    await rm(root, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
