// The `raftkv` command: argument parsing (node:util parseArgs) and output only. Client commands use KvClient;
// `serve` starts the server. Failures throw (bin/raftkv.js prints "raftkv: <message>" on stderr and exits 1, or
// with the CliFailure's exitStatus).
import { parseArgs } from 'node:util';
import { KvClient, text } from '../client/index.js';
import type { ErrorCode, HashKvResult, Member, StatusResult } from '../client/index.js';
import type { KeyValue } from '../kv/types.js';
import type { ResponseHeader } from '../shared/responses.js';
import { MAX_TIMER_DELAY_MS } from '../shared/clock.js';
import { RaftKvError } from '../shared/errors.js';
import { parseAddress, parseServeArgs, SERVE_USAGE } from './serve-config.js';
import { coordCommandOf, runCoordCommand } from './coord-commands.js';
import { COORD_USAGE } from './coord-usage.js';
import { authCommandOf, runAuthCommand } from './auth-commands.js';
import { AUTH_USAGE } from './auth-usage.js';
import { parseLeaseId } from '../client/index.js';
import { snapshotOffline } from './snapshot-offline.js';
import { defragCommand } from './defrag-command.js';
import { DIAL_FLAGS, DIAL_USAGE, dialFromFlags } from './dial-flags.js';
import { GLOBAL_FLAG_OPTIONS } from './global-flags.js';
import type { DialFlags } from './dial-flags.js';
import { quietIpServernameWarning } from './quiet-warnings.js';

export const DEFAULT_ENDPOINTS = '127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103';

export const USAGE = `raftkv: a Raft-replicated key-value store

usage: raftkv [global flags] COMMAND [args] [flags]

commands:
  put KEY VALUE [--prev-kv] [--lease ID]    write a key
  get KEY [--serializable]                  read a key (linearizable unless --serializable)
  del KEY [--prefix] [--prev-kv]            delete a key, or every key under a prefix
  compact REVISION [--physical]             drop the history below REVISION (reads there then fail)
  range PREFIX [--limit N] [--keys-only] [--count-only] [--serializable]
  cas KEY EXPECTED NEW                      set KEY to NEW iff its value is EXPECTED (fails otherwise)
  cas KEY NEW --create                      set KEY to NEW iff it does not exist
  status [--watch] [--interval-ms 500] [--count N]
                                            every member: id, address, role, term, leader, commit, applied, lag
  member list
  member add ID PEER_ADDR CLIENT_ADDR [--learner]
  member remove ID
  member promote ID
  transfer-leader ID                        hand leadership to member ID
  snapshot save FILE                        download a verified snapshot of the state machine
  snapshot status FILE                      check a backup and print its revision, keys, size, checksum
  snapshot restore FILE --data-dir DIR --id N --cluster-id NAME --initial-cluster ...
                                            a new cluster member's data directory from a backup (see --help there)
  check                                     every member's key-space digest at one common index: do they agree?
  defrag                                    every member in turn gives freed space back to the disk; prints what each freed
  serve ...                                 run a member (raftkv serve --help)
${COORD_USAGE}
${AUTH_USAGE}

global flags:
  --endpoints H:P,H:P,...   client addresses (default $RAFTKV_ENDPOINTS, else ${DEFAULT_ENDPOINTS})
  -w, --write-out FORMAT    simple (default) | json
  --timeout-ms N            per command, across retries (default 5000)
${DIAL_USAGE}
  -h, --help

exit status: 0 on success; 1 with a one-line error on stderr otherwise (a cas that did not match included);
  2 when check finds members whose digests differ (stderr names them and the remedy).`;

/** Exit status of `raftkv check` when members' digests differ. */
export const EXIT_DIGEST_MISMATCH = 2;

/** A failure that ends the command with its own exit status (bin/raftkv.js), not 1. */
export class CliFailure extends RaftKvError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly exitStatus: number,
  ) {
    super(code, message);
  }
}

export interface CliIo {
  readonly stdout: { write(s: string): unknown };
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Resolves when the user asks to stop (Ctrl-C) a long-running command (status --watch). */
  readonly interrupted?: Promise<void>;
}

const COMMAND_FLAGS: Readonly<Record<string, readonly string[]>> = {
  put: ['prev-kv', 'lease'],
  get: ['serializable'],
  del: ['prefix', 'prev-kv'],
  compact: ['physical'],
  range: ['limit', 'keys-only', 'count-only', 'serializable'],
  cas: ['create'],
  status: ['watch', 'interval-ms', 'count'],
  member: ['learner'],
  'transfer-leader': [],
  snapshot: [],
  check: [],
  defrag: [],
  help: [],
};
const GLOBAL_FLAGS = ['endpoints', 'write-out', 'timeout-ms', 'help', ...DIAL_FLAGS];

function invalid(message: string): RaftKvError {
  return new RaftKvError('INVALID_ARGUMENT', message);
}

function wantArgs(cmd: string, args: readonly string[], n: number, usage: string): void {
  if (args.length !== n) throw invalid(`${cmd}: expected ${usage}, got ${args.length === 0 ? 'nothing' : args.map((a) => JSON.stringify(a)).join(' ')}`);
}

/** A whole-number flag in [min, max]; `max` defaults to the largest exact integer (2^53-1). */
function parseCount(flag: string, v: string | undefined, def: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (v === undefined) return def;
  if (!/^\d+$/.test(v) || Number(v) < min) throw invalid(`--${flag}: ${JSON.stringify(v)} is not a whole number >= ${min}`);
  if (Number(v) > max) {
    throw invalid(`--${flag}: ${JSON.stringify(v)} is more than ${max}${max === MAX_TIMER_DELAY_MS ? ' (the longest timer Node can set)' : ''}`);
  }
  return Number(v);
}

function parseMemberId(what: string, v: string | undefined): number {
  if (v === undefined || !/^\d+$/.test(v) || Number(v) < 1 || Number(v) >= 2 ** 31) throw invalid(`${what}: ${JSON.stringify(v ?? '')} is not a member id (1..2^31-1)`);
  return Number(v);
}

function kvJson(kv: KeyValue): object {
  return { key: text(kv.key), value: text(kv.value), createRevision: kv.createRevision, modRevision: kv.modRevision, version: kv.version, lease: kv.lease };
}

function headerText(h: ResponseHeader & { revision?: number }): string {
  const revision = h.revision === undefined ? '' : `, revision ${h.revision}`;
  return `member ${h.memberId}, term ${h.term}, index ${h.index}${revision}, leader ${h.leaderId}`;
}

export async function main(argv: string[], io: CliIo = { stdout: process.stdout, env: process.env }): Promise<void> {
  if (io.stdout === process.stdout) quietIpServernameWarning(); // the real command, not a test calling main()
  if (argv[0] === 'serve') return serve(argv.slice(1), io);
  if (coordCommandOf(argv) !== undefined) return runCoordCommand(argv, io);
  if (authCommandOf(argv) !== undefined) return runAuthCommand(argv, io);
  if (argv[0] === 'snapshot' && (argv[1] === 'restore' || argv[1] === 'status')) return snapshotOffline(argv.slice(1), io);

  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        ...GLOBAL_FLAG_OPTIONS,
        'prev-kv': { type: 'boolean' },
        serializable: { type: 'boolean' },
        prefix: { type: 'boolean' },
        limit: { type: 'string' },
        'keys-only': { type: 'boolean' },
        'count-only': { type: 'boolean' },
        create: { type: 'boolean' },
        watch: { type: 'boolean' },
        'interval-ms': { type: 'string' },
        count: { type: 'string' },
        learner: { type: 'boolean' },
        physical: { type: 'boolean' },
        lease: { type: 'string' },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw invalid(`${err instanceof Error ? (err.message.split('\n')[0] ?? '') : String(err)} (see raftkv --help)`);
  }
  const { values, positionals } = parsed;
  const [cmd, ...args] = positionals;
  if (values.help === true || cmd === undefined || cmd === 'help') {
    io.stdout.write(USAGE + '\n');
    return;
  }
  const allowed = COMMAND_FLAGS[cmd];
  if (allowed === undefined) throw invalid(`unknown command ${JSON.stringify(cmd)} (see raftkv --help)`);
  for (const [flag, v] of Object.entries(values)) {
    if (v !== undefined && !GLOBAL_FLAGS.includes(flag) && !allowed.includes(flag)) throw invalid(`${cmd}: unknown flag --${flag}`);
  }
  const format = values['write-out'] ?? 'simple';
  if (format !== 'simple' && format !== 'json') throw invalid(`--write-out: ${JSON.stringify(format)} is not simple or json`);
  const json = format === 'json';
  const out = (simple: string, obj: object): void => {
    io.stdout.write(json ? JSON.stringify(obj) + '\n' : simple === '' ? '' : simple + '\n');
  };
  const rawEndpoints = (values.endpoints ?? io.env['RAFTKV_ENDPOINTS'] ?? DEFAULT_ENDPOINTS)
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '');
  if (rawEndpoints.length === 0) throw invalid('--endpoints: no endpoints given');
  const endpoints = rawEndpoints.map((e) => parseAddress('endpoints', e)); // host:port (an https:// URL asks for TLS)
  const timeoutMs = parseCount('timeout-ms', values['timeout-ms'], 5000, 1, MAX_TIMER_DELAY_MS);

  // Validate positionals before connecting anywhere.
  const dial = dialFromFlags(values, io.env, rawEndpoints);
  const client = (): KvClient => new KvClient({ endpoints, timeoutMs, ...dial });
  switch (cmd) {
    case 'put': {
      wantArgs(cmd, args, 2, 'KEY VALUE');
      const [key = '', value = ''] = args;
      const k = client();
      try {
        const r = await k.put(key, value, { prevKv: values['prev-kv'] ?? false, ...(values.lease !== undefined ? { lease: parseLeaseId(values.lease) } : {}) });
        const prev = r.prevKv ? `\n${text(r.prevKv.key)}\n${text(r.prevKv.value)}` : '';
        out(`OK (${headerText(r.header)})${prev}`, { header: r.header, prevKv: r.prevKv ? kvJson(r.prevKv) : null });
      } finally {
        k.close();
      }
      return;
    }
    case 'get': {
      wantArgs(cmd, args, 1, 'KEY');
      const k = client();
      try {
        const r = await k.get(args[0] ?? '', { serializable: values.serializable ?? false });
        out(r.kv ? `${text(r.kv.key)}\n${text(r.kv.value)}` : '', { header: r.header, kv: r.kv ? kvJson(r.kv) : null });
      } finally {
        k.close();
      }
      return;
    }
    case 'del': {
      wantArgs(cmd, args, 1, 'KEY');
      const key = args[0] ?? '';
      const k = client();
      try {
        const r = await k.delete(values.prefix === true ? { prefix: key } : key, { prevKv: values['prev-kv'] ?? false });
        const prev = r.prevKvs.map((kv) => `\n${text(kv.key)}\n${text(kv.value)}`).join('');
        out(`${r.deleted}${prev}`, { header: r.header, deleted: r.deleted, prevKvs: r.prevKvs.map(kvJson) });
      } finally {
        k.close();
      }
      return;
    }
    case 'compact': {
      wantArgs(cmd, args, 1, 'REVISION');
      const rev = args[0] ?? '';
      if (!/^\d+$/.test(rev) || !Number.isSafeInteger(Number(rev))) throw invalid(`compact: REVISION ${JSON.stringify(rev)} is not a whole number`);
      const revision = Number(rev);
      const k = client();
      try {
        const r = await k.compact(revision, { physical: values.physical ?? false });
        out(`compacted revision ${revision} (${headerText(r.header)})`, { header: r.header, revision });
      } finally {
        k.close();
      }
      return;
    }
    case 'range': {
      wantArgs(cmd, args, 1, 'PREFIX');
      const limit = parseCount('limit', values.limit, 0, 0);
      const k = client();
      try {
        const r = await k.range({ prefix: args[0] ?? '' }, { limit, keysOnly: values['keys-only'] ?? false, countOnly: values['count-only'] ?? false, serializable: values.serializable ?? false });
        const lines = values['count-only'] === true ? [String(r.count)] : r.kvs.flatMap((kv) => (values['keys-only'] === true ? [text(kv.key)] : [text(kv.key), text(kv.value)]));
        out(lines.join('\n'), { header: r.header, kvs: r.kvs.map(kvJson), more: r.more, count: r.count });
      } finally {
        k.close();
      }
      return;
    }
    case 'cas': {
      const create = values.create === true;
      wantArgs(cmd, args, create ? 2 : 3, create ? 'KEY NEW (with --create)' : 'KEY EXPECTED NEW');
      const key = args[0] ?? '';
      const expected = create ? null : (args[1] ?? '');
      const next = (create ? args[1] : args[2]) ?? '';
      const k = client();
      try {
        const r = await k.cas(key, expected, next);
        if (json) out('', { header: r.header, succeeded: r.succeeded });
        if (!r.succeeded) {
          throw new RaftKvError('FAILED_PRECONDITION', `cas: ${create ? 'the key exists' : 'the value is not the expected one'} (${headerText(r.header)})`);
        }
        if (!json) out(`OK (${headerText(r.header)})`, {});
      } finally {
        k.close();
      }
      return;
    }
    case 'status':
      wantArgs(cmd, args, 0, 'no arguments');
      return status(endpoints, timeoutMs, values.watch === true, parseCount('interval-ms', values['interval-ms'], 500, 10, MAX_TIMER_DELAY_MS), parseCount('count', values.count, 0, 1), json, io, dial);
    case 'member':
      return member(args, values.learner === true, client, out);
    case 'transfer-leader': {
      wantArgs(cmd, args, 1, 'ID');
      const id = parseMemberId('transfer-leader', args[0]);
      const k = client();
      try {
        const r = await k.transferLeader(id);
        out(`OK: leadership transferred to member ${id} (${headerText(r.header)})`, { header: r.header });
      } finally {
        k.close();
      }
      return;
    }
    case 'snapshot': {
      if (args[0] !== 'save') throw invalid('snapshot: expected "snapshot save FILE"');
      wantArgs('snapshot save', args.slice(1), 1, 'FILE');
      const k = new KvClient({ endpoints, timeoutMs: Math.max(timeoutMs, 60_000), ...dial });
      try {
        const r = await k.snapshotSave(args[1] ?? '');
        out(`saved ${r.sizeBytes} bytes to ${args[1] ?? ''} (sha256 ${r.sha256}; ${headerText(r.header)})`, { header: r.header, file: args[1], sizeBytes: r.sizeBytes, sha256: r.sha256 });
      } finally {
        k.close();
      }
      return;
    }
    case 'check':
      wantArgs(cmd, args, 0, 'no arguments');
      return check(endpoints, timeoutMs, json, io, dial);
    case 'defrag': {
      wantArgs(cmd, args, 0, 'no arguments');
      const k = client();
      try {
        await defragCommand(k, json, io.stdout);
      } finally {
        k.close();
      }
      return;
    }
    default:
      throw invalid(`unknown command ${JSON.stringify(cmd)} (see raftkv --help)`);
  }
}

async function member(args: readonly string[], learner: boolean, client: () => KvClient, out: (simple: string, obj: object) => void): Promise<void> {
  const [sub, ...rest] = args;
  const show = (r: { header: ResponseHeader; members: readonly { id: number; peerAddress: string; clientAddress: string; learner: boolean }[] }): void => {
    const lines = r.members.map((m) => `${m.id}\t${m.learner ? 'learner' : 'voter'}\tpeer=${m.peerAddress}\tclient=${m.clientAddress}`);
    out(lines.join('\n'), { header: r.header, members: r.members });
  };
  if (learner && sub !== 'add') throw invalid(`member ${sub ?? ''}: unknown flag --learner`);
  switch (sub) {
    case 'list': {
      wantArgs('member list', rest, 0, 'no arguments');
      const k = client();
      try {
        show(await k.members());
      } finally {
        k.close();
      }
      return;
    }
    case 'add': {
      wantArgs('member add', rest, 3, 'ID PEER_ADDR CLIENT_ADDR');
      const id = parseMemberId('member add', rest[0]);
      const peerAddress = parseAddress('member add PEER_ADDR', rest[1] ?? '');
      const clientAddress = parseAddress('member add CLIENT_ADDR', rest[2] ?? '');
      const k = client();
      try {
        show(await k.memberAdd({ id, peerAddress, clientAddress, learner }));
      } finally {
        k.close();
      }
      return;
    }
    case 'remove':
    case 'promote': {
      wantArgs(`member ${sub}`, rest, 1, 'ID');
      const id = parseMemberId(`member ${sub}`, rest[0]);
      const k = client();
      try {
        show(sub === 'remove' ? await k.memberRemove(id) : await k.memberPromote(id));
      } finally {
        k.close();
      }
      return;
    }
    case undefined:
    default:
      throw invalid(`member: expected list, add, remove or promote, got ${JSON.stringify(sub ?? '')}`);
  }
}

interface StatusRow {
  readonly address: string;
  readonly status: StatusResult | undefined;
  readonly error: string | undefined;
}

/** One status round: every endpoint and every member any of them lists, asked in parallel. */
export async function collectStatus(client: KvClient, endpoints: readonly string[], attemptTimeoutMs: number): Promise<StatusRow[]> {
  const ask = (address: string): Promise<StatusRow> =>
    client.status(address, { timeoutMs: attemptTimeoutMs }).then(
      (status) => ({ address, status, error: undefined }),
      (err: unknown) => ({ address, status: undefined, error: err instanceof RaftKvError ? err.code : String(err) }),
    );
  const rows = await Promise.all(endpoints.map(ask));
  const known = new Set(endpoints);
  const more = new Set<string>();
  for (const r of rows) for (const m of r.status?.members ?? []) if (!known.has(m.clientAddress)) more.add(m.clientAddress);
  rows.push(...(await Promise.all([...more].map(ask))));
  const idOf = (r: StatusRow): number => r.status?.id ?? Number.MAX_SAFE_INTEGER;
  return rows.sort((a, b) => idOf(a) - idOf(b) || a.address.localeCompare(b.address));
}

export function statusTable(rows: readonly StatusRow[]): string {
  const leader = rows.find((r) => r.status?.role === 'leader')?.status;
  const header = ['ID', 'ADDRESS', 'ROLE', 'TERM', 'LEADER', 'COMMIT', 'APPLIED', 'LAG'];
  const body = rows.map((r) => {
    const s = r.status;
    if (s === undefined) return ['?', r.address, `unreachable (${r.error ?? ''})`, '', '', '', '', ''];
    const match = leader?.progress.find((p) => p.id === s.id)?.match;
    const lag = s.role === 'leader' ? 0 : leader !== undefined && match !== undefined ? Math.max(0, leader.lastLogIndex - match) : undefined;
    const learner = s.members.find((m) => m.id === s.id)?.learner === true ? ' (learner)' : '';
    return [String(s.id), r.address, s.role + learner, String(s.term), String(s.leaderId || '-'), String(s.commitIndex), String(s.appliedIndex), lag === undefined ? '-' : String(lag)];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => (row[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(header), ...body.map(line)].join('\n');
}

async function status(endpoints: readonly string[], timeoutMs: number, watch: boolean, intervalMs: number, count: number, json: boolean, io: CliIo, dial: DialFlags): Promise<void> {
  const k = new KvClient({ endpoints, timeoutMs, ...dial });
  let stop = false;
  let onSigint: (() => void) | undefined;
  const interrupted = io.interrupted ?? new Promise<void>((resolve) => {
    onSigint = () => resolve();
    if (watch) process.once('SIGINT', onSigint);
  });
  void interrupted.then(() => {
    stop = true;
  });
  try {
    for (let round = 1; ; round++) {
      const rows = await collectStatus(k, endpoints, Math.min(timeoutMs, 1000));
      if (json) {
        io.stdout.write(JSON.stringify(rows.map((r) => (r.status ? { ...r.status, address: r.address } : { address: r.address, error: r.error }))) + '\n');
      } else {
        const clear = watch ? '\x1b[H\x1b[2J' : '';
        const stamp = watch ? `${new Date().toISOString()}  (every ${intervalMs} ms, Ctrl-C to stop)\n` : '';
        io.stdout.write(`${clear}${stamp}${statusTable(rows)}\n`);
      }
      if (!watch) {
        if (rows.every((r) => r.status === undefined)) throw new RaftKvError('UNAVAILABLE', `status: no member answered (${endpoints.join(', ')})`);
        return;
      }
      if (stop || (count > 0 && round >= count)) return;
      await Promise.race([new Promise((r) => setTimeout(r, intervalMs)), interrupted]);
      if (stop) return;
    }
  } finally {
    if (onSigint !== undefined) process.removeListener('SIGINT', onSigint);
    k.close();
  }
}

async function serve(args: readonly string[], io: CliIo): Promise<void> {
  if (args.includes('--help') || args.includes('-h')) {
    io.stdout.write(SERVE_USAGE + '\n');
    return;
  }
  const { config, dialOverrides, tls } = parseServeArgs(args);
  const { runServer } = await import('../server/serve.js');
  await runServer(config, { dialOverrides, handleSignals: true, tls });
}

/** One member's row in `raftkv check`: its digest at the common index, or why there is none. */
export interface CheckRow {
  readonly member: Member;
  readonly digest: HashKvResult | undefined;
  readonly error: string | undefined; // "CODE: message" when the member gave no digest
  verdict: 'ok' | 'MISMATCH' | 'no majority' | 'error'; // filled in once every row is in
}

/** What `raftkv check` found: the rows, and the digest held by a strict majority of those that answered. */
export interface CheckReport {
  readonly index: number; // the common index (0: none could be chosen)
  readonly rows: readonly CheckRow[];
  readonly majority: HashKvResult | undefined; // undefined: no digest has a strict majority (or none answered)
}

function digestKey(d: HashKvResult): string {
  return `${d.hash}/${d.keyCount}`;
}

function errorText(err: unknown): string {
  return err instanceof RaftKvError ? `${err.code}: ${err.message}` : String(err);
}

/**
 * Asks every member for its current digest (index 0) to learn the applied indices, then all of them at the
 * smallest (which each has applied, and which the others still remember unless they are 10,000 digest changes
 * ahead). A member that has applied nothing cannot be compared and counts as an error.
 */
export async function collectDigests(client: KvClient, members: readonly Member[], callTimeoutMs: number): Promise<CheckReport> {
  const sorted = [...members].sort((a, b) => a.id - b.id);
  const ask = async (m: Member, index: number): Promise<{ digest: HashKvResult | undefined; error: string | undefined }> => {
    try {
      const d = await client.hashKv(m.clientAddress, index, { timeoutMs: callTimeoutMs });
      if (d.memberId !== m.id) return { digest: undefined, error: `CLUSTER_MISMATCH: ${m.clientAddress} answered as member ${d.memberId}` };
      if (index === 0 && d.index === 0) return { digest: undefined, error: 'FAILED_PRECONDITION: it has applied nothing yet' };
      return { digest: d, error: undefined };
    } catch (err) {
      return { digest: undefined, error: errorText(err) };
    }
  };
  const current = await Promise.all(sorted.map((m) => ask(m, 0)));
  const indices = current.flatMap((c) => (c.digest === undefined ? [] : [c.digest.index]));
  const index = indices.length === 0 ? 0 : Math.min(...indices);
  const atIndex = await Promise.all(sorted.map((m, i) => (current[i]?.digest === undefined ? Promise.resolve(current[i] ?? { digest: undefined, error: 'no answer' }) : ask(m, index))));
  const rows: CheckRow[] = sorted.map((member, i) => {
    const r = atIndex[i] ?? { digest: undefined, error: 'no answer' };
    return { member, digest: r.digest, error: r.error, verdict: r.digest === undefined ? 'error' : 'ok' };
  });
  const answered = rows.flatMap((r) => (r.digest === undefined ? [] : [r.digest]));
  const counts = new Map<string, number>();
  for (const d of answered) counts.set(digestKey(d), (counts.get(digestKey(d)) ?? 0) + 1);
  const majority = answered.find((d) => 2 * (counts.get(digestKey(d)) ?? 0) > answered.length);
  if (counts.size > 1) {
    for (const r of rows) {
      if (r.digest === undefined) continue;
      r.verdict = majority === undefined ? 'no majority' : digestKey(r.digest) === digestKey(majority) ? 'ok' : 'MISMATCH';
    }
  }
  return { index, rows, majority };
}

export function checkTable(report: CheckReport): string {
  const header = ['ID', 'ADDRESS', 'INDEX', 'HASH', 'KEYS', 'VERDICT'];
  const body = report.rows.map((r) => {
    const d = r.digest;
    if (d === undefined) return [String(r.member.id), r.member.clientAddress, '-', '-', '-', `error (${r.error ?? ''})`];
    return [String(r.member.id), r.member.clientAddress, String(d.index), d.hash, String(d.keyCount), r.verdict];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => (row[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(header), ...body.map(line)].join('\n');
}

function idsText(rows: readonly CheckRow[]): string {
  return `${rows.length === 1 ? 'member' : 'members'} ${rows.map((r) => r.member.id).join(', ')}`;
}

/** The one-line verdict, and the exit status it stands for (0 agree, 1 errors, EXIT_DIGEST_MISMATCH). */
export function checkVerdict(report: CheckReport): { readonly line: string; readonly exitStatus: number } {
  const answered = report.rows.filter((r) => r.digest !== undefined);
  const failed = report.rows.filter((r) => r.digest === undefined);
  const failedText = failed.length === 0 ? '' : `; no digest from ${failed.map((r) => `member ${r.member.id} (${r.member.clientAddress}: ${r.error ?? ''})`).join(', ')}`;
  const shown = (d: HashKvResult): string => `${d.hash}/${d.keyCount} keys`;
  const minority = answered.filter((r) => r.verdict === 'MISMATCH');
  if (report.majority !== undefined && minority.length > 0) {
    const agreeing = answered.filter((r) => r.verdict === 'ok');
    const their = minority.map((r) => `member ${r.member.id} has ${r.digest === undefined ? '?' : shown(r.digest)}`).join(', ');
    const remedy = minority
      .map((r) => `remove member ${r.member.id} (raftkv member remove ${r.member.id}), wipe its data directory, add it back (raftkv member add ${r.member.id} ${r.member.peerAddress} ${r.member.clientAddress}${r.member.learner ? ' --learner' : ''}) and start it with --initial-cluster-state existing`)
      .join('; ');
    return {
      line: `MISMATCH at index ${report.index}: ${their}, but the majority (${idsText(agreeing)}) has ${shown(report.majority)}${failedText}. Remedy: ${remedy}`,
      exitStatus: EXIT_DIGEST_MISMATCH,
    };
  }
  if (answered.some((r) => r.verdict === 'no majority')) {
    const groups = new Map<string, CheckRow[]>();
    for (const r of answered) if (r.digest !== undefined) groups.set(shown(r.digest), [...(groups.get(shown(r.digest)) ?? []), r]);
    const split = [...groups].map(([d, rs]) => `${idsText(rs)}: ${d}`).join('; ');
    return {
      line: `MISMATCH at index ${report.index}: no digest is held by a majority of the ${answered.length} members that answered (${split})${failedText}; cannot tell which diverged: run check again when every member answers`,
      exitStatus: EXIT_DIGEST_MISMATCH,
    };
  }
  if (answered.length === 0) return { line: `check: no member gave its digest${failedText}`, exitStatus: 1 };
  const first = answered[0]?.digest;
  const digest = `${first === undefined ? '?' : shown(first)} at index ${report.index}`;
  if (failed.length > 0) {
    const agree = answered.length === 1 ? `the one member that answered has ${digest}` : `the ${answered.length} members that answered agree on ${digest}`;
    return { line: `check: ${agree}${failedText}`, exitStatus: 1 };
  }
  return { line: answered.length === 1 ? `OK: the only member has ${digest}` : `OK: all ${answered.length} members agree on ${digest}`, exitStatus: 0 };
}

async function check(endpoints: readonly string[], timeoutMs: number, json: boolean, io: CliIo, dial: DialFlags): Promise<void> {
  const k = new KvClient({ endpoints, timeoutMs, ...dial });
  try {
    let members: readonly Member[];
    try {
      members = (await k.members()).members;
    } catch (err) {
      throw new RaftKvError(err instanceof RaftKvError ? err.code : 'UNAVAILABLE', `check: cannot get the member list: ${err instanceof Error ? err.message : String(err)}`);
    }
    const report = await collectDigests(k, members, timeoutMs);
    const verdict = checkVerdict(report);
    if (json) {
      const rows = report.rows.map((r) => ({ id: r.member.id, address: r.member.clientAddress, index: r.digest?.index ?? null, hash: r.digest?.hash ?? null, keys: r.digest?.keyCount ?? null, verdict: r.verdict, error: r.error ?? null }));
      io.stdout.write(JSON.stringify({ index: report.index, members: rows, exitStatus: verdict.exitStatus, verdict: verdict.line }) + '\n');
    } else {
      io.stdout.write(checkTable(report) + '\n');
    }
    if (verdict.exitStatus === EXIT_DIGEST_MISMATCH) throw new CliFailure('DATA_CORRUPTION', verdict.line, EXIT_DIGEST_MISMATCH);
    if (verdict.exitStatus !== 0) throw new RaftKvError('UNAVAILABLE', verdict.line);
    if (!json) io.stdout.write(verdict.line + '\n');
  } finally {
    k.close();
  }
}
