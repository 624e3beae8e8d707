// The flags every dialling raftkv command takes (main.ts, coord-commands.ts, auth-commands.ts) and how a command
// is found behind them: one definition, so `raftkv --endpoints X --user u:p watch k` and `raftkv watch k
// --endpoints X` parse alike in every command family.
import { RaftKvError } from '../shared/errors.js';
import { DIAL_FLAG_OPTIONS, DIAL_VALUE_FLAGS } from './dial-flags.js';
import { parseAddress } from './serve-config.js';

/** parseArgs options of the global flags (the families add their own). */
export const GLOBAL_FLAG_OPTIONS = {
  endpoints: { type: 'string' },
  'write-out': { type: 'string', short: 'w' },
  'timeout-ms': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  ...DIAL_FLAG_OPTIONS,
} as const;

/** Global flags that take a value (the word after them is not a command). */
const GLOBAL_VALUE_FLAGS: readonly string[] = ['--endpoints', '--write-out', '-w', '--timeout-ms', ...DIAL_VALUE_FLAGS];

/**
 * The command `argv` names when it is one of `commands` (global flags and `extraValueFlags` may come before it),
 * else undefined; nothing after a `--`.
 */
export function commandIn(argv: readonly string[], commands: ReadonlySet<string>, extraValueFlags: readonly string[] = []): string | undefined {
  const valueFlags = new Set([...GLOBAL_VALUE_FLAGS, ...extraValueFlags]);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === '--') return undefined;
    if (valueFlags.has(a)) {
      i++;
      continue;
    }
    if (a.startsWith('-')) continue;
    return commands.has(a) ? a : undefined;
  }
  return undefined;
}

/** --write-out: `simple` (etcdctl's text) or `json`; `out` writes one answer in it. */
export function writeOut(value: string | undefined, stdout: { write(s: string): unknown }): { json: boolean; out: (simple: string, obj: object) => void } {
  const format = value ?? 'simple';
  if (format !== 'simple' && format !== 'json') throw new RaftKvError('INVALID_ARGUMENT', `--write-out: ${JSON.stringify(format)} is not simple or json`);
  const json = format === 'json';
  return { json, out: (simple, obj) => void stdout.write(json ? JSON.stringify(obj) + '\n' : simple + '\n') };
}

/** --endpoints (else RAFTKV_ENDPOINTS, else `fallback`): as given (an https:// URL asks for TLS) and as host:port. */
export function endpointsOf(value: string | undefined, env: Readonly<Record<string, string | undefined>>, fallback: string): { raw: string[]; endpoints: string[] } {
  const raw = (value ?? env['RAFTKV_ENDPOINTS'] ?? fallback)
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '');
  if (raw.length === 0) throw new RaftKvError('INVALID_ARGUMENT', '--endpoints: no endpoints given');
  return { raw, endpoints: raw.map((e) => parseAddress('endpoints', e)) };
}
