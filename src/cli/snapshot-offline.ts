// `raftkv snapshot restore` and `raftkv snapshot status`: the offline half of backups (etcdutl's snapshot restore
// and status), argument parsing and output only. They touch files, not a cluster: the work is in
// src/node/restore-data-dir.ts (loaded when run, as `serve` loads the server).
import { parseArgs } from 'node:util';
import { RaftKvError } from '../shared/errors.js';
import { parseInitialCluster } from './serve-config.js';

export const SNAPSHOT_OFFLINE_USAGE = `raftkv snapshot status FILE [-w simple|json]
  checks the whole backup (its SHA-256 checksums and framing) and prints its revision, keys, size and checksum

raftkv snapshot restore FILE --data-dir DIR --id N --cluster-id NAME --initial-cluster ID=PEER/CLIENT,... [-w json]
  makes member N's data directory of a NEW cluster from a backup (raftkv snapshot save, or etcdctl snapshot save
  against raftkv): the keys, their history and the store revision; the members from --initial-cluster. Run it
  once per member (same FILE, same --cluster-id and --initial-cluster), then raftkv serve on each with the same
  flags. Refuses a damaged file (nothing written) and a --data-dir that is not empty.`;

function invalid(message: string): RaftKvError {
  return new RaftKvError('INVALID_ARGUMENT', message);
}

export interface SnapshotOfflineIo {
  readonly stdout: { write(s: string): unknown };
}

function parseMemberId(flag: string, v: string | undefined): number {
  if (v === undefined || !/^\d+$/.test(v) || Number(v) < 1 || Number(v) >= 2 ** 31) throw invalid(`--${flag}: ${JSON.stringify(v ?? '')} is not a member id (1..2^31-1)`);
  return Number(v);
}

function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

/** `argv` is everything after the word "snapshot" (its first element is restore or status). */
export async function snapshotOffline(argv: readonly string[], io: SnapshotOfflineIo): Promise<void> {
  const [sub, ...rest] = argv;
  let parsed;
  try {
    parsed = parseArgs({
      args: [...rest],
      options: {
        'data-dir': { type: 'string' },
        id: { type: 'string' },
        'cluster-id': { type: 'string' },
        'initial-cluster': { type: 'string' },
        'write-out': { type: 'string', short: 'w' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw invalid(`snapshot ${sub ?? ''}: ${err instanceof Error ? (err.message.split('\n')[0] ?? '') : String(err)}`);
  }
  const { values, positionals } = parsed;
  if (values.help === true) {
    io.stdout.write(SNAPSHOT_OFFLINE_USAGE + '\n');
    return;
  }
  const format = values['write-out'] ?? 'simple';
  if (format !== 'simple' && format !== 'json') throw invalid(`--write-out: ${JSON.stringify(format)} is not simple or json`);
  if (positionals.length !== 1) throw invalid(`snapshot ${sub ?? ''}: expected FILE, got ${positionals.length === 0 ? 'nothing' : positionals.map((p) => JSON.stringify(p)).join(' ')}`);
  const file = positionals[0] ?? '';
  const { inspectBackup, restoreDataDir } = await import('../node/restore-data-dir.js');
  if (sub === 'status') {
    for (const f of ['data-dir', 'id', 'cluster-id', 'initial-cluster'] as const) if (values[f] !== undefined) throw invalid(`snapshot status: unknown flag --${f}`);
    const s = await inspectBackup(file);
    if (format === 'json') {
      const { path, format: shape, sizeBytes, sha256, revision, compactedRevision, keys, records, index, term, members } = s;
      io.stdout.write(JSON.stringify({ path, format: shape, sizeBytes, sha256, revision, compactedRevision, keys, records, index, term, members }) + '\n');
      return;
    }
    const rows: [string, string][] = [
      ['file', `${s.path} (${s.format === 'etcdctl' ? "etcdctl's copy: padded, with its SHA-256 trailer" : "raftkv's snapshot file"})`],
      ['revision', String(s.revision)],
      ['compacted revision', s.compactedRevision < 0 ? 'none' : String(s.compactedRevision)],
      ['keys', String(s.keys)],
      ['size', `${s.sizeBytes} bytes (${mib(s.sizeBytes)})`],
      ['sha256', s.sha256],
      ['taken at', `index ${s.index}, term ${s.term}, members ${s.members.map((m) => m.id).join(',') || '-'}`],
      ['checksums', 'OK'],
    ];
    const w = Math.max(...rows.map(([k]) => k.length));
    io.stdout.write(rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n');
    return;
  }
  if (sub !== 'restore') throw invalid(`snapshot: expected save, restore or status, got ${JSON.stringify(sub ?? '')}`);
  const need = (f: 'data-dir' | 'id' | 'cluster-id' | 'initial-cluster'): string => {
    const v = values[f];
    if (v === undefined || v === '') throw invalid(`snapshot restore: --${f} is required`);
    return v;
  };
  const id = parseMemberId('id', need('id'));
  const clusterId = need('cluster-id');
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(clusterId)) throw invalid(`--cluster-id: ${JSON.stringify(clusterId)} must be 1-64 of [A-Za-z0-9._-]`);
  const dataDir = need('data-dir');
  const initialMembers = parseInitialCluster(need('initial-cluster'));
  const startedMs = Date.now();
  const r = await restoreDataDir({ backupPath: file, dataDir, id, clusterId, initialMembers });
  const tookMs = Date.now() - startedMs;
  if (format === 'json') {
    io.stdout.write(JSON.stringify({ dataDir: r.dataDir, id, clusterId, revision: r.revision, keys: r.keys, index: r.index, members: r.members, sha256: r.backup.sha256, tookMs }) + '\n');
    return;
  }
  io.stdout.write(
    `restored ${r.keys} keys at revision ${r.revision} into ${r.dataDir} (member ${id} of cluster ${clusterId}: ` +
      `members ${r.members.map((m) => m.id).join(',')}; log starts after index ${r.index}; ${tookMs} ms). ` +
      `Start it with: raftkv serve --id ${id} --cluster-id ${clusterId} --data-dir ${r.dataDir} --initial-cluster ... (the same members)\n`,
  );
}
