// The data directory's identity file.
//
// On-disk format of `<dataDir>/node.json` (UTF-8 JSON, one object):
//   { "format": 1, "nodeId": <positive integer>, "clusterId": "<string>", "createdAt": "<ISO 8601>",
//     "incarnation": "<32 hex digits>" }
// Written once, on the first start of a node in an empty directory: to `node.json.tmp`, fsynced, renamed to
// `node.json`, then the directory fsynced. `incarnation` is random: it names this directory (a wiped and
// recreated directory has another one; see incarnations.ts). A file without it (written before it existed)
// gets one added, the same way, on the next start. A directory carrying another node id or cluster id is refused with
// RaftKvError CLUSTER_MISMATCH; an unreadable or malformed file with DATA_CORRUPTION.
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { NodeId } from '../raft/types.js';
import { readTextIfExists, writeFileDurably } from '../shared/durable-file.js';
import { LOCK_FILE } from './data-dir-lock.js';
import { RaftKvError } from '../shared/errors.js';

export const IDENTITY_FILE = 'node.json';
const IDENTITY_FORMAT = 1;

export interface DataDirIdentity {
  readonly nodeId: NodeId;
  readonly clusterId: string;
}

export interface IdentityCheck {
  /** True when this call created node.json (the directory was empty before). */
  readonly created: boolean;
  /** The directory's incarnation (created with node.json). */
  readonly incarnation: string;
}

function newIncarnation(): string {
  return randomBytes(16).toString('hex');
}

function parseIdentity(text: string, path: string): DataDirIdentity & { incarnation: string | undefined; raw: Record<string, unknown> } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new RaftKvError('DATA_CORRUPTION', `${path}: not valid JSON (${(err as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null) throw new RaftKvError('DATA_CORRUPTION', `${path}: not a JSON object`);
  const o = raw as Record<string, unknown>;
  const nodeId = o['nodeId'];
  const clusterId = o['clusterId'];
  if (o['format'] !== IDENTITY_FORMAT) {
    throw new RaftKvError('DATA_CORRUPTION', `${path}: unknown format ${JSON.stringify(o['format'])}`);
  }
  if (typeof nodeId !== 'number' || !Number.isInteger(nodeId) || nodeId <= 0) {
    throw new RaftKvError('DATA_CORRUPTION', `${path}: bad nodeId ${JSON.stringify(nodeId)}`);
  }
  if (typeof clusterId !== 'string' || clusterId === '') {
    throw new RaftKvError('DATA_CORRUPTION', `${path}: bad clusterId ${JSON.stringify(clusterId)}`);
  }
  const incarnation = o['incarnation'];
  if (incarnation !== undefined && (typeof incarnation !== 'string' || !/^[0-9a-f]{32}$/.test(incarnation))) {
    throw new RaftKvError('DATA_CORRUPTION', `${path}: bad incarnation ${JSON.stringify(incarnation)}`);
  }
  return { nodeId, clusterId, incarnation, raw: o };
}

/**
 * Checks (or, on a first start, records) that `dataDir` belongs to node `expected.nodeId` of cluster
 * `expected.clusterId`. Creates the directory if missing.
 */
export async function checkDataDirIdentity(dataDir: string, expected: DataDirIdentity): Promise<IdentityCheck> {
  await mkdir(dataDir, { recursive: true });
  const path = join(dataDir, IDENTITY_FILE);
  const text = await readTextIfExists(path);
  if (text !== undefined) {
    const found = parseIdentity(text, path);
    if (found.clusterId !== expected.clusterId) {
      throw new RaftKvError(
        'CLUSTER_MISMATCH',
        `data directory ${dataDir} belongs to cluster "${found.clusterId}", not "${expected.clusterId}"; ` +
          `use another --data-dir or the right --cluster-id`,
      );
    }
    if (found.nodeId !== expected.nodeId) {
      throw new RaftKvError(
        'CLUSTER_MISMATCH',
        `data directory ${dataDir} belongs to node ${found.nodeId}, not node ${expected.nodeId}; ` +
          `use another --data-dir or the right --id`,
      );
    }
    if (found.incarnation !== undefined) return { created: false, incarnation: found.incarnation };
    const incarnation = newIncarnation();
    await writeFileDurably(dataDir, IDENTITY_FILE, `${JSON.stringify({ ...found.raw, incarnation })}\n`);
    return { created: false, incarnation };
  }
  // No identity: the directory must not hold someone's state (a WAL or a state machine without identity is
  // a directory we did not create, or a crash between mkdir and the first write: only stray tmp files allowed).
  // (lost+found: a freshly formatted volume mounted as the data directory.)
  const stray = (await readdir(dataDir)).filter((n) => n !== `${IDENTITY_FILE}.tmp` && n !== 'lost+found' && n !== LOCK_FILE);
  if (stray.length > 0) {
    throw new RaftKvError(
      'CLUSTER_MISMATCH',
      `data directory ${dataDir} has no ${IDENTITY_FILE} but is not empty (${stray.slice(0, 5).join(', ')}); ` +
        `refusing to adopt it`,
    );
  }
  await rm(join(dataDir, `${IDENTITY_FILE}.tmp`), { force: true });
  const incarnation = newIncarnation();
  const body = JSON.stringify({
    format: IDENTITY_FORMAT,
    nodeId: expected.nodeId,
    clusterId: expected.clusterId,
    createdAt: new Date().toISOString(),
    incarnation,
  });
  await writeFileDurably(dataDir, IDENTITY_FILE, `${body}\n`);
  return { created: true, incarnation };
}
