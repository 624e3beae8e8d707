// The coordination commands of `raftkv`: watch, lease, lock and elect, over etcd's v3 API (CoordClient), with
// etcdctl's output (`lease 694d8ae2d0d2a70e granted with TTL(60s)`, a watch event as its type, key and value
// lines, a lock's key) and `-w json` (one JSON object a line). Long-running commands (watch, lease keep-alive,
// lock without a command, elect) run until SIGINT or SIGTERM (CliIo.interrupted in tests).
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { CoordClient, Lease, leaseIdHex, parseLeaseId, RaftKvError } from '../client/index.js';
import type { ElectionLeader, EtcdKeyValue, WatchEvent } from '../client/index.js';
import { MAX_TIMER_DELAY_MS } from '../shared/clock.js';
import { CliFailure, DEFAULT_ENDPOINTS } from './main.js';
import type { CliIo } from './main.js';
import { COORD_USAGE } from './coord-usage.js';
import { DIAL_FLAGS, DIAL_USAGE, dialFromFlags } from './dial-flags.js';
import { GLOBAL_FLAG_OPTIONS, commandIn, endpointsOf, writeOut } from './global-flags.js';


const COORD_COMMANDS: ReadonlySet<string> = new Set(['watch', 'lease', 'lock', 'elect']);
/** Global flags that take a value (skipped when looking for the command name). */

const COMMAND_FLAGS: Readonly<Record<string, readonly string[]>> = {
  watch: ['prefix', 'rev', 'prev-kv'],
  lease: ['keys', 'once'],
  lock: ['ttl'],
  elect: [],
};
const GLOBAL_FLAGS = ['endpoints', 'write-out', 'timeout-ms', 'help', ...DIAL_FLAGS];

/** etcdctl lock's default session TTL (--ttl), in seconds. */
const DEFAULT_LOCK_TTL_SECONDS = 10;

function invalid(message: string): RaftKvError {
  return new RaftKvError('INVALID_ARGUMENT', message);
}

/** The command `argv` names when it is one of these (global flags may come before it), else undefined. */
export function coordCommandOf(argv: readonly string[]): string | undefined {
  return commandIn(argv, COORD_COMMANDS);
}

/** A lease id as etcdctl prints it in lease output: 16 hex digits (Go's %016x). */
function leaseText(id: bigint): string {
  return leaseIdHex(id).padStart(16, '0');
}

function wantArgs(cmd: string, args: readonly string[], n: number, usage: string): void {
  if (args.length !== n) throw invalid(`${cmd}: expected ${usage}, got ${args.length === 0 ? 'nothing' : args.map((a) => JSON.stringify(a)).join(' ')}`);
}

function parseWhole(flag: string, v: string | undefined, def: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (v === undefined) return def;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw invalid(`${flag}: ${JSON.stringify(v)} is not a whole number in ${min}..${max}`);
  return Number(v);
}

function kvJson(kv: EtcdKeyValue): object {
  return {
    key: kv.key.toString('utf8'),
    value: kv.value.toString('utf8'),
    createRevision: Number(kv.createRevision),
    modRevision: Number(kv.modRevision),
    version: Number(kv.version),
    lease: leaseIdHex(kv.lease),
  };
}

/** etcdctl's simple lines of one event: type, [previous key and value,] key and value. */
export function eventText(e: WatchEvent): string {
  const prev = e.prevKv !== undefined ? `${e.prevKv.key.toString('utf8')}\n${e.prevKv.value.toString('utf8')}\n` : '';
  return `${e.type === 'put' ? 'PUT' : 'DELETE'}\n${prev}${e.kv.key.toString('utf8')}\n${e.kv.value.toString('utf8')}`;
}

/** Resolves on SIGINT or SIGTERM (or io.interrupted); `dispose` removes the handlers. */
function interruption(io: CliIo): { readonly interrupted: Promise<void>; readonly dispose: () => void } {
  if (io.interrupted !== undefined) return { interrupted: io.interrupted, dispose: () => undefined };
  let onSignal: (() => void) | undefined;
  const interrupted = new Promise<void>((resolve) => {
    onSignal = () => resolve();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
  return {
    interrupted,
    dispose: () => {
      if (onSignal === undefined) return;
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
    },
  };
}

/** Runs `raftkv watch|lease|lock|elect ...` (main.ts dispatches here when coordCommandOf names one). */
export async function runCoordCommand(argv: readonly string[], io: CliIo): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: {
        ...GLOBAL_FLAG_OPTIONS,
        prefix: { type: 'boolean' },
        rev: { type: 'string' },
        'prev-kv': { type: 'boolean' },
        keys: { type: 'boolean' },
        once: { type: 'boolean' },
        ttl: { type: 'string' },
      },
      allowPositionals: true,
      strict: true,
      tokens: true,
    });
  } catch (err) {
    throw invalid(`${err instanceof Error ? (err.message.split('\n')[0] ?? '') : String(err)} (see raftkv --help)`);
  }
  const { values, tokens } = parsed;
  // Positionals before `--` are the command's; after it, lock's COMMAND ARGS.
  const terminator = tokens.findIndex((t) => t.kind === 'option-terminator');
  const before = tokens.filter((t, i) => t.kind === 'positional' && (terminator < 0 || i < terminator)).map((t) => (t.kind === 'positional' ? t.value : ''));
  const after = terminator < 0 ? [] : argv.slice(argv.indexOf('--') + 1);
  const [cmd = '', ...args] = before;
  if (values.help === true) {
    io.stdout.write(`usage: raftkv [global flags] COMMAND ...\n${COORD_USAGE}\n${DIAL_USAGE}\n`);
    return;
  }
  const allowed = COMMAND_FLAGS[cmd] ?? [];
  for (const [flag, v] of Object.entries(values)) {
    if (v !== undefined && !GLOBAL_FLAGS.includes(flag) && !allowed.includes(flag)) throw invalid(`${cmd}: unknown flag --${flag}`);
  }
  if (terminator >= 0 && cmd !== 'lock') throw invalid(`${cmd}: unexpected "--" (only lock runs a command)`);
  const { json, out } = writeOut(values['write-out'], io.stdout);
  const { raw: rawEndpoints, endpoints } = endpointsOf(values.endpoints, io.env, DEFAULT_ENDPOINTS);
  const timeoutMs = parseWhole('--timeout-ms', values['timeout-ms'], 5000, 1, MAX_TIMER_DELAY_MS);
  const dial = dialFromFlags(values, io.env, rawEndpoints);
  const client = (): CoordClient => new CoordClient({ endpoints, timeoutMs, ...dial });

  switch (cmd) {
    case 'watch': {
      wantArgs(cmd, args, 1, 'KEY');
      const rev = parseWhole('--rev', values.rev, 0, 0);
      return watchCommand(client(), args[0] ?? '', { prefix: values.prefix === true, rev, prevKv: values['prev-kv'] === true }, json, io);
    }
    case 'lease':
      return leaseCommand(client, args, { keys: values.keys === true, once: values.once === true }, json, out, io);
    case 'lock': {
      wantArgs(cmd, args, 1, 'NAME [-- COMMAND ARGS...]');
      if (terminator >= 0 && after.length === 0) throw invalid('lock: "--" must be followed by a COMMAND');
      const ttlSeconds = parseWhole('--ttl', values.ttl, DEFAULT_LOCK_TTL_SECONDS, 1);
      return lockCommand(client(), args[0] ?? '', ttlSeconds, after, out, io);
    }
    case 'elect': {
      if (args.length !== 1 && args.length !== 2) throw invalid('elect: expected NAME [PROPOSAL]');
      return electCommand(client(), args[0] ?? '', args[1], out, io);
    }
    default:
      throw invalid(`unknown command ${JSON.stringify(cmd)} (see raftkv --help)`);
  }
}

async function watchCommand(c: CoordClient, key: string, o: { prefix: boolean; rev: number; prevKv: boolean }, json: boolean, io: CliIo): Promise<void> {
  const stop = new AbortController();
  const { interrupted, dispose } = interruption(io);
  void interrupted.then(() => stop.abort());
  try {
    const w = c.watch(key, { prefix: o.prefix, fromRevision: o.rev, prevKv: o.prevKv, signal: stop.signal });
    for await (const batch of w) {
      for (const e of batch.events) {
        if (json) {
          const line = { type: e.type.toUpperCase(), revision: Number(batch.revision), kv: kvJson(e.kv), ...(e.prevKv !== undefined ? { prevKv: kvJson(e.prevKv) } : {}) };
          io.stdout.write(JSON.stringify(line) + '\n');
        } else io.stdout.write(eventText(e) + '\n');
      }
    }
  } finally {
    dispose();
    c.close();
  }
}

async function leaseCommand(
  client: () => CoordClient,
  args: readonly string[],
  o: { keys: boolean; once: boolean },
  json: boolean,
  out: (simple: string, obj: object) => void,
  io: CliIo,
): Promise<void> {
  const [sub = '', ...rest] = args;
  if (o.keys && sub !== 'timetolive') throw invalid(`lease ${sub}: unknown flag --keys`);
  if (o.once && sub !== 'keep-alive') throw invalid(`lease ${sub}: unknown flag --once`);
  const c = client();
  try {
    switch (sub) {
      case 'grant': {
        wantArgs('lease grant', rest, 1, 'TTL (seconds)');
        const ttl = parseWhole('lease grant: TTL', rest[0], 0, 1);
        const lease = await c.lease(ttl, { keepAlive: false });
        out(`lease ${leaseText(lease.id)} granted with TTL(${lease.grantedTtlSeconds}s)`, { id: leaseText(lease.id), ttl: lease.grantedTtlSeconds });
        return;
      }
      case 'revoke': {
        wantArgs('lease revoke', rest, 1, 'ID');
        const id = parseLeaseId(rest[0] ?? '');
        await c.revokeLease(id);
        out(`lease ${leaseText(id)} revoked`, { id: leaseText(id), revoked: true });
        return;
      }
      case 'timetolive': {
        wantArgs('lease timetolive', rest, 1, 'ID');
        const id = parseLeaseId(rest[0] ?? '');
        const t = await c.leaseTimeToLive(id, { keys: o.keys });
        const keys = t.keys.map((k) => k.toString('utf8'));
        const simple =
          t.grantedTtlSeconds === 0 && t.ttlSeconds === -1
            ? `lease ${leaseText(id)} already expired`
            : `lease ${leaseText(id)} granted with TTL(${t.grantedTtlSeconds}s), remaining(${t.ttlSeconds}s)${o.keys ? `, attached keys([${keys.join(' ')}])` : ''}`;
        out(simple, { id: leaseText(id), ttl: t.ttlSeconds, grantedTtl: t.grantedTtlSeconds, ...(o.keys ? { keys } : {}) });
        return;
      }
      case 'list': {
        wantArgs('lease list', rest, 0, 'no arguments');
        const ids = await c.leases();
        out([`found ${ids.length} leases`, ...ids.map(leaseText)].join('\n'), { leases: ids.map(leaseText) });
        return;
      }
      case 'keep-alive':
        wantArgs('lease keep-alive', rest, 1, 'ID');
        return await keepAliveCommand(c, parseLeaseId(rest[0] ?? ''), o.once, json, out, io);
      default:
        throw invalid(`lease: expected grant, revoke, timetolive, keep-alive or list, got ${JSON.stringify(sub)}`);
    }
  } finally {
    c.close();
  }
}

async function keepAliveCommand(c: CoordClient, id: bigint, once: boolean, json: boolean, out: (simple: string, obj: object) => void, io: CliIo): Promise<void> {
  const gone = (): RaftKvError => new RaftKvError('LEASE_NOT_FOUND', `lease ${leaseText(id)} expired or revoked`);
  if (once) {
    const ttl = await c.keepAliveOnce(id);
    if (ttl <= 0) throw gone();
    out(`lease ${leaseText(id)} keepalived with TTL(${ttl})`, { id: leaseText(id), ttl });
    return;
  }
  const ttl = await c.keepAliveOnce(id);
  if (ttl <= 0) throw gone();
  out(`lease ${leaseText(id)} keepalived with TTL(${ttl})`, { id: leaseText(id), ttl });
  const lease = new Lease(c.channel, id, ttl);
  lease.onKeepAlive((t) => out(`lease ${leaseText(id)} keepalived with TTL(${t})`, { id: leaseText(id), ttl: t }));
  lease.startKeepAlive();
  const { interrupted, dispose } = interruption(io);
  try {
    const end = await Promise.race([interrupted.then(() => undefined), lease.lost]);
    lease.stopKeepAlive();
    if (end !== undefined) {
      if (!json) io.stdout.write(`lease ${leaseText(id)} expired or revoked.\n`);
      throw new RaftKvError(end.reason === 'unreachable' ? 'UNAVAILABLE' : 'LEASE_NOT_FOUND', end.message);
    }
  } finally {
    dispose();
  }
}

async function lockCommand(c: CoordClient, name: string, ttlSeconds: number, command: readonly string[], out: (simple: string, obj: object) => void, io: CliIo): Promise<void> {
  const stop = new AbortController();
  const { interrupted, dispose } = interruption(io);
  void interrupted.then(() => stop.abort());
  try {
    const held = await c.lock(name, { ttlSeconds, signal: stop.signal });
    try {
      if (command.length > 0) {
        const status = await runHolding(command, { ETCD_LOCK_KEY: held.key, ETCD_LOCK_REV: String(held.revision) }, io);
        if (status !== 0) throw new CliFailure('FAILED_PRECONDITION', `lock: ${command.join(' ')} exited with status ${status}`, status);
        return;
      }
      out(`${held.key}\n`, { key: held.key, revision: Number(held.revision), lease: leaseText(held.session.id) });
      const end = await Promise.race([interrupted.then(() => undefined), held.session.done]);
      if (end !== undefined) throw new RaftKvError('UNAVAILABLE', `lock: session expired (${end.message})`);
    } finally {
      await held.unlock();
    }
  } finally {
    dispose();
    c.close();
  }
}

/** Runs COMMAND with the lock's environment (as etcdctl: ETCD_LOCK_KEY, ETCD_LOCK_REV), its stdout into ours. */
function runHolding(command: readonly string[], env: Readonly<Record<string, string>>, io: CliIo): Promise<number> {
  const [file = '', ...args] = command;
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env: { ...process.env, ...env }, stdio: ['inherit', 'pipe', 'inherit'] });
    child.stdout.on('data', (chunk: Buffer) => io.stdout.write(chunk.toString('utf8')));
    child.on('error', (err) => reject(new RaftKvError('INVALID_ARGUMENT', `lock: cannot run ${file}: ${err.message}`)));
    child.on('close', (code, signal) => resolve(code ?? (signal !== null ? 128 + signalNumber(signal) : 1)));
  });
}

function signalNumber(signal: NodeJS.Signals): number {
  const table: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 };
  return table[signal] ?? 0;
}

function leaderText(l: ElectionLeader): string {
  return `${l.key}\n${l.value.toString('utf8')}`;
}

function leaderJson(l: ElectionLeader): object {
  return { key: l.key, value: l.value.toString('utf8'), revision: Number(l.revision) };
}

async function electCommand(c: CoordClient, name: string, proposal: string | undefined, out: (simple: string, obj: object) => void, io: CliIo): Promise<void> {
  const stop = new AbortController();
  const { interrupted, dispose } = interruption(io);
  void interrupted.then(() => stop.abort());
  try {
    if (proposal === undefined) {
      for await (const l of c.observe(name, stop.signal)) out(leaderText(l), leaderJson(l));
      return;
    }
    const e = await c.campaign(name, proposal, { signal: stop.signal });
    try {
      out(`${e.key}\n${proposal}`, { key: e.key, value: proposal, revision: Number(e.revision) });
      const end = await Promise.race([interrupted.then(() => undefined), e.session.done]);
      if (end !== undefined) throw new RaftKvError('UNAVAILABLE', `elect: session expired (${end.message})`);
    } finally {
      await e.resign();
      await e.session.close();
    }
  } finally {
    dispose();
    c.close();
  }
}
