// Which data directory each member runs on: its incarnation, a random id created with the directory's node.json.
//
// A member restarted on an EMPTY data directory without being removed and re-added has forgotten its votes
// and its log; if it rejoined, it could vote twice in a term or acknowledge entries it no longer has. Its new
// directory has a new incarnation, carried on every peer stream: a peer that knows another incarnation for that
// member id refuses the stream (CLUSTER_MISMATCH), nothing of it is delivered, and the refused member learns it
// is stale and stops (the transport's onRefusedAsStale).
//
// Knowing: a member records a peer's incarnation at first contact, and passes what it knows on to the peers it
// streams to (gossip), so a follower learns of another follower through the leader (followers rarely talk to
// each other directly). Each record carries `recordedAt`, the recorder's applied index at the first contact.
// Removing a member (a conf change applied at index R) forgets records of it made before R and refuses gossip
// about it from before R, so remove + add with an empty directory (the way to replace a lost disk) is accepted
// even when a lagging peer still gossips the old incarnation.
//
// On-disk format of `<dataDir>/peers.json` (UTF-8 JSON, one object), rewritten whole on every change via
// `peers.json.tmp`, fsync, rename, directory fsync:
//   { "format": 1,
//     "incarnations": { "<member id>": { "incarnation": "<hex>", "recordedAt": <index> }, ... },
//     "removedAt": { "<member id>": <index of the last removal applied>, ... },
//     "retired": [ "<hex>", ... ] }   (optional: incarnations refused for good, see retire())
// A missing file is an empty registry; an unreadable or malformed one is DATA_CORRUPTION.
import { join } from 'node:path';
import type { Index, NodeId } from '../raft/types.js';
import { RaftKvError } from '../shared/errors.js';
import { readTextIfExists, writeFileDurably } from '../shared/durable-file.js';
import { STALE_MARKER } from '../transport/transport.js';
import type { IncarnationGuard, KnownIncarnation } from '../transport/transport.js';


export const PEERS_FILE = 'peers.json';
const PEERS_FORMAT = 1;

interface Entry {
  readonly incarnation: string;
  readonly recordedAt: Index; // the recorder's applied index at first contact
}

export class IncarnationRegistry implements IncarnationGuard {
  private writes: Promise<void> = Promise.resolve(); // durable rewrites, one at a time, in order (never rejects)
  private versionValue = 0; // bumped on every change of `known`
  appliedIndex: () => Index = () => 0; // the node's applied index (set by the node)
  onWriteError: (err: unknown) => void = () => undefined; // a failed rewrite of peers.json (set by the node)

  private constructor(
    private readonly selfId: NodeId,
    readonly self: string,
    private readonly dataDir: string,
    private readonly known: Map<NodeId, Entry>, // member id -> its incarnation, as on disk once `writes` settles
    private readonly removedAt: Map<NodeId, Index>, // member id -> index of the last applied removal of it
    private readonly retired: Set<string>, // incarnations never admitted again (members cut off by --force-new-cluster)
  ) {}

  static async load(dataDir: string, selfId: NodeId, self: string): Promise<IncarnationRegistry> {
    const path = join(dataDir, PEERS_FILE);
    const text = await readTextIfExists(path);
    const parsed = text === undefined ? { known: new Map<NodeId, Entry>(), removedAt: new Map<NodeId, Index>(), retired: new Set<string>() } : parsePeers(text, path);
    return new IncarnationRegistry(selfId, self, dataDir, parsed.known, parsed.removedAt, parsed.retired);
  }

  get version(): number {
    return this.versionValue;
  }

  /** The incarnation recorded for `id` (tests, logs). */
  incarnationOf(id: NodeId): string | undefined {
    return this.known.get(id)?.incarnation;
  }

  admit(from: NodeId, incarnation: string): void | Promise<void> {
    if (incarnation === '') return; // a sender that does not say (not checked)
    if (this.retired.has(incarnation)) {
      throw new RaftKvError(
        'CLUSTER_MISMATCH',
        `${STALE_MARKER} member ${from} came back with the data directory (incarnation ${incarnation.slice(0, 8)}) it had before ` +
          `--force-new-cluster removed it: its data is stale. Wipe its data directory and start it with --initial-cluster-state existing ` +
          `(after raftkv member add ${from} ...)`,
      );
    }
    const known = this.known.get(from);
    if (known?.incarnation === incarnation) return;
    if (known !== undefined) {
      throw new RaftKvError(
        'CLUSTER_MISMATCH',
        `${STALE_MARKER} member ${from} restarted with a new data directory (incarnation ${incarnation.slice(0, 8)}, ` +
          `the cluster knows ${known.incarnation.slice(0, 8)}): it lost its log and votes. Remove it (raftkv member remove ${from}) ` +
          `and add it back (raftkv member add ${from} ...) to start it on an empty data directory with --initial-cluster-state existing`,
      );
    }
    this.known.set(from, { incarnation, recordedAt: this.appliedIndex() });
    return this.persist();
  }

  gossip(): KnownIncarnation[] {
    return [...this.known].map(([id, e]) => ({ id, incarnation: e.incarnation, recordedAt: e.recordedAt }));
  }

  merge(known: readonly KnownIncarnation[]): void {
    let changed = false;
    for (const k of known) {
      if (!Number.isSafeInteger(k.id) || k.id <= 0 || k.id === this.selfId || k.incarnation === '' || this.known.has(k.id) || this.retired.has(k.incarnation)) continue;
      if (k.recordedAt < (this.removedAt.get(k.id) ?? 0)) continue; // from before its removal: stale
      this.known.set(k.id, { incarnation: k.incarnation, recordedAt: k.recordedAt });
      changed = true;
    }
    if (changed) this.persist().catch(this.onWriteError);
  }

  /** Member `id` was removed by the conf change at `index`: forget what was recorded of it before that. */
  forget(id: NodeId, index: Index): Promise<void> {
    let changed = false;
    if (index > (this.removedAt.get(id) ?? 0)) {
      this.removedAt.set(id, index);
      changed = true;
    }
    const e = this.known.get(id);
    if (e !== undefined && e.recordedAt < index) {
      this.known.delete(id);
      changed = true;
    }
    return changed ? this.persist() : this.writes;
  }

  /**
   * --force-new-cluster cut members `ids` off: the incarnations recorded for them are refused for good (their
   * directories hold a history the new cluster does not share), and forgotten as current. Durable on return.
   */
  retire(ids: readonly NodeId[]): Promise<void> {
    let changed = false;
    for (const id of ids) {
      const e = this.known.get(id);
      if (e === undefined) continue;
      this.retired.add(e.incarnation);
      this.known.delete(id);
      changed = true;
    }
    return changed ? this.persist() : this.writes;
  }

  /** A snapshot at `index` replaced the membership: members not in it were removed at or before `index`. */
  forgetAbsent(members: ReadonlySet<NodeId>, index: Index): Promise<void> {
    const gone = [...this.known.keys()].filter((id) => !members.has(id));
    return Promise.all(gone.map((id) => this.forget(id, index))).then(() => undefined);
  }

  private persist(): Promise<void> {
    this.versionValue++;
    const incarnations: Record<string, Entry> = {};
    for (const [id, e] of [...this.known].sort((a, b) => a[0] - b[0])) incarnations[String(id)] = e;
    const removedAt: Record<string, Index> = {};
    for (const [id, i] of [...this.removedAt].sort((a, b) => a[0] - b[0])) removedAt[String(id)] = i;
    const retired = this.retired.size === 0 ? {} : { retired: [...this.retired].sort() };
    const text = `${JSON.stringify({ format: PEERS_FORMAT, incarnations, removedAt, ...retired })}\n`;
    const write = this.writes.then(() => writeFileDurably(this.dataDir, PEERS_FILE, text));
    this.writes = write.catch(() => undefined);
    return write;
  }
}

function parsePeers(text: string, path: string): { known: Map<NodeId, Entry>; removedAt: Map<NodeId, Index>; retired: Set<string> } {
  const bad = (what: string): never => {
    throw new RaftKvError('DATA_CORRUPTION', `${path}: ${what}`);
  };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return bad(`not valid JSON (${(err as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null) return bad('not a JSON object');
  const o = raw as Record<string, unknown>;
  if (o['format'] !== PEERS_FORMAT) return bad(`unknown format ${JSON.stringify(o['format'])}`);
  const objectAt = (key: string): Record<string, unknown> => {
    const v = o[key];
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return bad(`bad ${key}`);
    return v as Record<string, unknown>;
  };
  const idOf = (k: string): NodeId => {
    const id = Number(k);
    return Number.isSafeInteger(id) && id > 0 ? id : bad(`bad member id ${JSON.stringify(k)}`);
  };
  const indexOf = (v: unknown, what: string): Index => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : bad(`bad ${what} ${JSON.stringify(v)}`));
  const known = new Map<NodeId, Entry>();
  for (const [k, v] of Object.entries(objectAt('incarnations'))) {
    if (typeof v !== 'object' || v === null) return bad(`bad entry for member ${k}`);
    const e = v as Record<string, unknown>;
    const incarnation = e['incarnation'];
    if (typeof incarnation !== 'string' || incarnation === '') return bad(`bad incarnation for member ${k}`);
    known.set(idOf(k), { incarnation, recordedAt: indexOf(e['recordedAt'], `recordedAt of member ${k}`) });
  }
  const removedAt = new Map<NodeId, Index>();
  for (const [k, v] of Object.entries(objectAt('removedAt'))) removedAt.set(idOf(k), indexOf(v, `removedAt of member ${k}`));
  const retiredRaw = o['retired'] ?? [];
  if (!Array.isArray(retiredRaw) || !retiredRaw.every((x): x is string => typeof x === 'string' && x !== '')) return bad('bad retired');
  return { known, removedAt, retired: new Set(retiredRaw) };
}
