// `raftkv serve` flags + optional JSON config file -> a validated NodeConfig (with defaults), before anything
// starts. Flags win over the file; the file uses the flags' names in camelCase. Every problem is a one-line
// RaftKvError('INVALID_ARGUMENT') naming the flag.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DEFAULT_COMMIT_BROADCAST, NODE_CONFIG_DEFAULTS as D } from '../node/config.js';
import type { NodeConfig, PeerConfig } from '../node/config.js';
import { RaftKvError } from '../shared/errors.js';
import type { NodeId } from '../raft/types.js';
import type { MemberTlsConfig } from '../shared/tls-files.js';
import { initialClusterUrls, parseServeTls, SERVE_TLS_USAGE, TLS_BOOLEAN_FLAGS, TLS_STRING_FLAGS } from './serve-tls-flags.js';
import type { TlsBooleanFlag } from './serve-tls-flags.js';
import { isEtcdInitialCluster, parseEtcdInitialCluster } from './etcd-initial-cluster.js';

export interface ServeConfig {
  readonly config: NodeConfig;
  readonly dialOverrides: ReadonlyMap<NodeId, string>; // --dial-override (test hook)
  readonly tls: MemberTlsConfig; // serve-tls-flags.ts
}

export const SERVE_USAGE = `raftkv serve --id N --cluster-id NAME --data-dir DIR
  --listen-peer HOST:PORT --listen-client HOST:PORT
  --initial-cluster ID=PEER/CLIENT,...          e.g. 1=127.0.0.1:7001/127.0.0.1:7101,2=...
                                                (joining: etcdctl member add's ETCD_INITIAL_CLUSTER works too)
  [--advertise-peer HOST:PORT] [--advertise-client HOST:PORT]   (default: the listen addresses)
  [--initial-cluster-state new|existing]        (default new; existing = joining after \`member add\`)
  [--tick-ms 100] [--election-ticks 10] [--heartbeat-ticks 1] [--snapshot-count 10000]
  [--commit-broadcast eager|lazy]               (eager, as etcd: followers hear of each commit at once; lazy:
                                                with the next append or heartbeat, a message fewer per commit)
  [--max-request-bytes 2097152] [--log-level info] [--log-pretty]
  [--corrupt-check-interval-ms 3600000]         (rescan the store against its digest and compare digests with
                                                the other members, once after start and then this often; 0 = never)
  [--initial-corrupt-check true|false]          (default true: scan the store against its digest before serving)
  [--auto-compaction-mode periodic|revision]    (default periodic, as etcd's)
  [--auto-compaction-retention 0]               (periodic: a duration, 1h / 30m / 10s, or hours as a bare number;
                                                revision: revisions to keep; 0 = no automatic compaction)
  [--experimental-watch-progress-notify-interval 10m]  (progress notifications to watchers that asked: a duration)
  [--experimental-warning-apply-duration 100ms] (warn of an apply or a read slower than this: a duration)
  [--listen-metrics http://HOST:PORT]           (serve /metrics, /health, /livez, /readyz and the dashboard there;
                                                --listen-metrics-urls, etcd's name, takes one URL too)
  [--quota-backend-bytes 0]                     (past it the NOSPACE alarm refuses writes; 0 = 2 GiB, as etcd's; < 0 = no quota)
  [--force-new-cluster]                         (after losing a quorum: start as the only member, from this member's data)
${SERVE_TLS_USAGE}
  [--dial-override ID=HOST:PORT,...]            (test hook: dial these addresses for these peers)
  [--config FILE]                               (JSON, same keys in camelCase; flags win)`;

const STRING_FLAGS = [
  'id',
  'cluster-id',
  'data-dir',
  'listen-peer',
  'listen-client',
  'advertise-peer',
  'advertise-client',
  'initial-cluster',
  'initial-cluster-state',
  'tick-ms',
  'election-ticks',
  'heartbeat-ticks',
  'commit-broadcast',
  'snapshot-count',
  'max-request-bytes',
  'corrupt-check-interval-ms',
  'initial-corrupt-check',
  'auto-compaction-mode',
  'auto-compaction-retention',
  'experimental-watch-progress-notify-interval',
  'experimental-warning-apply-duration',
  'quota-backend-bytes',
  'log-level',
  'listen-metrics',
  'listen-metrics-urls',
  'dial-override',
  'config',
  ...TLS_STRING_FLAGS,
] as const;
type StringFlag = (typeof STRING_FLAGS)[number];

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;
const MAX_CORRUPT_CHECK_INTERVAL_MS = 2 ** 31 - 1; // the longest delay a Node timer takes
type LogLevel = (typeof LOG_LEVELS)[number];

function invalid(message: string): RaftKvError {
  return new RaftKvError('INVALID_ARGUMENT', message);
}

// The longest periodic retention: a year (a Node timer cannot wait longer than ~24.8 days, but retention is
// compared with the clock, not waited for).
const MAX_RETENTION_MS = 365 * 24 * 3600_000;
const MAX_RETENTION_REVISIONS = Number.MAX_SAFE_INTEGER;

/** A Go-style duration flag (1h, 30m, 10s, 250ms): ms, between 1 ms and a day. */
export function parseDuration(flag: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)(h|m|s|ms)$/.exec(text);
  const ms = m === null ? NaN : Math.round(Number(m[1]) * ({ h: 3600_000, m: 60_000, s: 1000, ms: 1 }[m[2] ?? 's'] ?? 1000));
  if (!(ms >= 1 && ms <= 24 * 3600_000)) throw invalid(`--${flag}: ${JSON.stringify(text)} is not a duration between 1ms and 24h (1h, 30m, 10s, 250ms)`);
  return ms;
}

/** etcd's --auto-compaction-retention: periodic takes a Go duration (1h, 30m, 10s) or hours; revision a count. */
export function parseRetention(mode: 'periodic' | 'revision', text: string): number {
  const bad = (): RaftKvError => invalid(`--auto-compaction-retention: ${JSON.stringify(text)} is not ${mode === 'periodic' ? 'a duration (1h, 30m, 10s) or a number of hours' : 'a number of revisions'}`);
  if (mode === 'revision') {
    if (!/^\d+$/.test(text)) throw bad();
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n > MAX_RETENTION_REVISIONS) throw bad();
    return n;
  }
  const m = /^(\d+(?:\.\d+)?)(h|m|s|ms)?$/.exec(text);
  if (m === null) throw bad();
  const unitMs = { h: 3600_000, m: 60_000, s: 1000, ms: 1 }[m[2] ?? 'h'] ?? 3600_000;
  const ms = Math.round(Number(m[1]) * unitMs);
  if (!Number.isFinite(ms) || ms > MAX_RETENTION_MS) throw bad();
  return ms;
}

function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

const ADDRESS = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):(\d{1,5})$/;

export function parseAddress(flag: string, value: string): string {
  value = value.replace(/^https?:\/\//, '').replace(/\/$/, ''); // etcd's URL form; the scheme is checked with the TLS flags
  const m = ADDRESS.exec(value);
  const port = m ? Number(m[1]) : -1;
  if (!m || port > 65535) throw invalid(`--${flag}: ${JSON.stringify(value)} is not HOST:PORT`);
  return value;
}

function parseInteger(flag: string, value: string, min: number, max: number): number {
  if (!/^\d+$/.test(value)) throw invalid(`--${flag}: ${JSON.stringify(value)} is not a whole number`);
  const n = Number(value);
  if (n < min || n > max) throw invalid(`--${flag}: ${n} is out of range ${min}..${max}`);
  return n;
}

function parseId(flag: string, value: string): NodeId {
  return parseInteger(flag, value, 1, 2 ** 31 - 1);
}

export function parseInitialCluster(value: string): PeerConfig[] {
  const members: PeerConfig[] = [];
  for (const part of value.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const m = /^(\d+)=([^/]+)\/(.+)$/.exec(part);
    if (!m) throw invalid(`--initial-cluster: ${JSON.stringify(part)} is not ID=PEER_HOST:PORT/CLIENT_HOST:PORT`);
    const id = parseId('initial-cluster', m[1] ?? '');
    if (members.some((x) => x.id === id)) throw invalid(`--initial-cluster: member ${id} is listed twice`);
    members.push({ id, peerAddress: parseAddress('initial-cluster', m[2] ?? ''), clientAddress: parseAddress('initial-cluster', m[3] ?? '') });
  }
  if (members.length === 0) throw invalid('--initial-cluster: no members');
  return members;
}

/**
 * --listen-metrics (etcd: --listen-metrics-urls): one http://HOST:PORT URL, normalized to `http://host:port`.
 * https (etcd serves it with its TLS flags) is refused until raftkv has TLS; a path, query or credentials too.
 */
export function parseMetricsUrl(flag: string, value: string): string {
  const bad = (why: string): RaftKvError => invalid(`--${flag}: ${JSON.stringify(value)} ${why} (expected http://HOST:PORT, e.g. http://127.0.0.1:2381)`);
  if (value.includes(',')) throw bad('lists more than one URL; raftkv serves metrics on one');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw bad('is not a URL');
  }
  if (url.protocol === 'https:') throw bad('uses https, which raftkv does not serve yet');
  if (url.protocol !== 'http:') throw bad(`has scheme ${JSON.stringify(url.protocol.replace(/:$/, ''))}, not http`);
  if (url.hostname === '') throw bad('has no host');
  if (url.username !== '' || url.password !== '') throw bad('carries credentials');
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') throw bad('has a path, query or fragment');
  const port = /:(\d{1,5})\/?$/.exec(value); // URL drops a default port (:80): read it from the text
  if (port === null) throw bad('has no port');
  if (Number(port[1]) > 65535) throw bad('has a port above 65535');
  return `http://${url.hostname}:${Number(port[1])}`;
}

export function parseDialOverrides(value: string): Map<NodeId, string> {
  const out = new Map<NodeId, string>();
  for (const part of value.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const m = /^(\d+)=(.+)$/.exec(part);
    if (!m) throw invalid(`--dial-override: ${JSON.stringify(part)} is not ID=HOST:PORT`);
    out.set(parseId('dial-override', m[1] ?? ''), parseAddress('dial-override', m[2] ?? ''));
  }
  return out;
}

/** Reads the JSON config file into flag-name -> string values (booleans and numbers accepted). */
function readConfigFile(path: string): { values: Partial<Record<StringFlag, string>>; logPretty: boolean | undefined; booleans: Partial<Record<TlsBooleanFlag, boolean>> } {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw invalid(`--config ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw invalid(`--config ${path}: not a JSON object`);
  const byCamel = new Map<string, StringFlag>(STRING_FLAGS.filter((f) => f !== 'config').map((f) => [camel(f), f]));
  const values: Partial<Record<StringFlag, string>> = {};
  let logPretty: boolean | undefined;
  const booleans: Partial<Record<TlsBooleanFlag, boolean>> = {};
  const booleanByCamel = new Map<string, TlsBooleanFlag>(TLS_BOOLEAN_FLAGS.map((f) => [camel(f), f]));
  for (const [key, v] of Object.entries(raw)) {
    const booleanFlag = booleanByCamel.get(key);
    if (booleanFlag !== undefined) {
      if (typeof v !== 'boolean') throw invalid(`--config ${path}: ${key} must be true or false`);
      booleans[booleanFlag] = v;
      continue;
    }
    if (key === 'logPretty') {
      if (typeof v !== 'boolean') throw invalid(`--config ${path}: logPretty must be true or false`);
      logPretty = v;
      continue;
    }
    const flag = byCamel.get(key);
    if (flag === undefined) throw invalid(`--config ${path}: unknown key ${JSON.stringify(key)}`);
    if (typeof v === 'string') values[flag] = v;
    else if (typeof v === 'number' && Number.isFinite(v)) values[flag] = String(v);
    else throw invalid(`--config ${path}: ${key} must be a string or a number`);
  }
  return { values, logPretty, booleans };
}

/** Parses `serve` arguments (after the word "serve"). Throws INVALID_ARGUMENT with a one-line message. */
export function parseServeArgs(args: readonly string[]): ServeConfig {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      options: {
        ...Object.fromEntries(STRING_FLAGS.map((f) => [f, { type: 'string' as const }])),
        'log-pretty': { type: 'boolean' },
        'force-new-cluster': { type: 'boolean' },
        ...Object.fromEntries(TLS_BOOLEAN_FLAGS.map((f) => [f, { type: 'boolean' as const }])),
      },
      allowPositionals: false,
      strict: true,
    });
  } catch (err) {
    throw invalid(`serve: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
  }
  const flags = parsed.values as Partial<Record<StringFlag, string>> & { 'log-pretty'?: boolean; 'force-new-cluster'?: boolean } & Partial<Record<TlsBooleanFlag, boolean>>;
  const file = flags.config !== undefined ? readConfigFile(flags.config) : { values: {}, logPretty: undefined, booleans: {} };
  const get = (f: StringFlag): string | undefined => flags[f] ?? file.values[f];
  const need = (f: StringFlag): string => {
    const v = get(f);
    if (v === undefined || v === '') throw invalid(`serve: --${f} is required`);
    return v;
  };

  const id = parseId('id', need('id'));
  const clusterId = need('cluster-id');
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(clusterId)) throw invalid(`--cluster-id: ${JSON.stringify(clusterId)} must be 1-64 of [A-Za-z0-9._-]`);
  const dataDir = need('data-dir');
  const peerListen = parseAddress('listen-peer', need('listen-peer'));
  const clientListen = parseAddress('listen-client', need('listen-client'));
  const advertisePeer = parseAddress('advertise-peer', get('advertise-peer') ?? peerListen);
  const advertiseClient = parseAddress('advertise-client', get('advertise-client') ?? clientListen);
  const clusterText = need('initial-cluster').replace(/https?:\/\//g, '');
  const initialMembers = isEtcdInitialCluster(clusterText)
    ? parseEtcdInitialCluster(clusterText, { id, peerAddress: advertisePeer, clientAddress: advertiseClient, joining: get('initial-cluster-state') === 'existing' }, parseAddress)
    : parseInitialCluster(clusterText);
  if (!initialMembers.some((m) => m.id === id)) throw invalid(`--initial-cluster: does not list this member (--id ${id})`);
  const state = get('initial-cluster-state') ?? 'new';
  if (state !== 'new' && state !== 'existing') throw invalid(`--initial-cluster-state: ${JSON.stringify(state)} is not new or existing`);
  const tickIntervalMs = parseInteger('tick-ms', get('tick-ms') ?? String(D.tickIntervalMs), 1, 60_000);
  const heartbeatIntervalTicks = parseInteger('heartbeat-ticks', get('heartbeat-ticks') ?? String(D.heartbeatIntervalTicks), 1, 1000);
  const electionTimeoutTicks = parseInteger('election-ticks', get('election-ticks') ?? String(D.electionTimeoutTicks), 2, 10_000);
  if (electionTimeoutTicks <= heartbeatIntervalTicks) {
    throw invalid(`--election-ticks (${electionTimeoutTicks}) must be greater than --heartbeat-ticks (${heartbeatIntervalTicks})`);
  }
  const commitBroadcast = get('commit-broadcast') ?? DEFAULT_COMMIT_BROADCAST;
  if (commitBroadcast !== 'eager' && commitBroadcast !== 'lazy') throw invalid(`--commit-broadcast: ${JSON.stringify(commitBroadcast)} is not eager or lazy`);
  const snapshotEveryEntries = parseInteger('snapshot-count', get('snapshot-count') ?? String(D.snapshotEveryEntries), 1, 100_000_000);
  const maxRequestBytes = parseInteger('max-request-bytes', get('max-request-bytes') ?? String(D.maxRequestBytes), 1024, 32 * 1024 * 1024);
  const corruptCheckIntervalMs = parseInteger('corrupt-check-interval-ms', get('corrupt-check-interval-ms') ?? String(D.corruptCheckIntervalMs), 0, MAX_CORRUPT_CHECK_INTERVAL_MS);
  const initialCheck = get('initial-corrupt-check') ?? String(D.initialCorruptCheck);
  if (initialCheck !== 'true' && initialCheck !== 'false') throw invalid(`--initial-corrupt-check: ${JSON.stringify(initialCheck)} is not true or false`);
  const autoCompactionMode = get('auto-compaction-mode') ?? 'periodic';
  if (autoCompactionMode !== 'periodic' && autoCompactionMode !== 'revision') {
    throw invalid(`--auto-compaction-mode: ${JSON.stringify(autoCompactionMode)} is not periodic or revision`);
  }
  const autoCompactionRetention = parseRetention(autoCompactionMode, get('auto-compaction-retention') ?? '0');
  const watchFlag = 'experimental-watch-progress-notify-interval';
  const watchProgress = get(watchFlag);
  const watchProgressNotifyIntervalMs = watchProgress === undefined ? undefined : parseDuration(watchFlag, watchProgress);
  const warningFlag = 'experimental-warning-apply-duration';
  const warning = get(warningFlag);
  const warningApplyDurationMs = warning === undefined ? undefined : parseDuration(warningFlag, warning);
  const logLevel = get('log-level') ?? D.logLevel;
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) throw invalid(`--log-level: ${JSON.stringify(logLevel)} is not one of ${LOG_LEVELS.join(', ')}`);
  const dialOverrides = parseDialOverrides(get('dial-override') ?? '');
  if (get('listen-metrics') !== undefined && get('listen-metrics-urls') !== undefined) {
    throw invalid('--listen-metrics and --listen-metrics-urls name the same thing: give one');
  }
  const metricsFlag = get('listen-metrics') !== undefined ? 'listen-metrics' : 'listen-metrics-urls';
  const metricsValue = get(metricsFlag);
  const listenMetrics = metricsValue === undefined ? undefined : parseMetricsUrl(metricsFlag, metricsValue);
  const quotaText = get('quota-backend-bytes') ?? '0';
  if (!/^-?\d+$/.test(quotaText) || !Number.isSafeInteger(Number(quotaText))) throw invalid(`--quota-backend-bytes: ${JSON.stringify(quotaText)} is not a whole number of bytes`);
  const forceNewCluster = flags['force-new-cluster'] === true;
  if (forceNewCluster && state !== 'new') throw invalid('--force-new-cluster: starts from this member\'s own data; not with --initial-cluster-state existing');
  const urls = initialClusterUrls(get('initial-cluster'));
  const tls = parseServeTls(get, (f) => flags[f] ?? file.booleans[f] ?? false, {
    peer: [['listen-peer', get('listen-peer')], ['advertise-peer', get('advertise-peer')], ...urls.peer.map((u): [string, string] => ['initial-cluster', u])],
    client: [['listen-client', get('listen-client')], ['advertise-client', get('advertise-client')], ...urls.client.map((u): [string, string] => ['initial-cluster', u])],
  });

  const config: NodeConfig = {
    id,
    clusterId,
    dataDir,
    peerListen,
    clientListen,
    advertisePeer,
    advertiseClient,
    initialClusterState: state,
    initialMembers,
    tickIntervalMs,
    electionTimeoutTicks,
    heartbeatIntervalTicks,
    commitBroadcast,
    snapshotEveryEntries,
    snapshotsKept: D.snapshotsKept,
    walSegmentSizeBytes: D.walSegmentSizeBytes,
    maxInboxItems: D.maxInboxItems,
    maxPendingProposals: D.maxPendingProposals,
    maxPendingReads: D.maxPendingReads,
    maxRequestBytes,
    // A value cannot be larger than a request.
    kvLimits: { ...D.kvLimits, maxValueBytes: Math.min(D.kvLimits.maxValueBytes, maxRequestBytes) },
    logLevel: logLevel as LogLevel,
    logPretty: flags['log-pretty'] ?? file.logPretty ?? D.logPretty,
    corruptCheckIntervalMs,
    initialCorruptCheck: initialCheck === 'true',
    autoCompactionMode,
    autoCompactionRetention,
    ...(watchProgressNotifyIntervalMs === undefined ? {} : { watchProgressNotifyIntervalMs }),
    ...(warningApplyDurationMs === undefined ? {} : { warningApplyDurationMs }),
    ...(listenMetrics !== undefined ? { listenMetrics } : {}),
    ...(get('quota-backend-bytes') !== undefined ? { quotaBackendBytes: Number(quotaText) } : {}),
    ...(forceNewCluster ? { forceNewCluster } : {}),
  };
  return { config, dialOverrides, tls };
}
