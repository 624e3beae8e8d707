// etcd's Maintenance service: Status, Alarm, Defragment, Hash, HashKV, Snapshot and MoveLeader, a thin adapter over
// the node's admin operations (as raftkv's Admin service is); the Cluster service is etcd-cluster-service.ts (made
// here too, so serve.ts makes both in one call). The methods not listed answer UNIMPLEMENTED (grpc-js does that for
// a method without a handler).
//
// HashKV: the key space as of a revision (hash-kv.ts), equal on members at the same revision; Hash: the key-space
// digest (key-space-digest.ts) at the current applied index, as etcd's Hash is of this member's whole backend.
// Snapshot: raftkv's own snapshot file (not a bbolt database: `etcdctl snapshot status|restore` cannot read it),
// zero bytes up to a multiple of 512 (etcdctl 3.4's save refuses a stream whose size is not 512k + 32, as a bbolt
// file's is), then the SHA-256 of all of that, as etcd's stream ends.
//
// Alarm: etcd's AlarmRequest. ACTIVATE and DEACTIVATE go through the log (an 'alarm' command, src/kv/alarms.ts),
// so every member holds the same alarms; GET answers the applied alarms after a linearizable read barrier (etcd
// sends GET through the log too), of one type or all (NONE). Status lists them in `errors` as etcd does.
//
// Authentication (auth-gate.ts), as etcd 3.4: Snapshot, Defragment, Hash and HashKV need the root role (and the
// Cluster service's changes: etcd-cluster-service.ts); Status, Alarm and MoveLeader need none. raftkv's peer
// corrupt check (corrupt-check.ts) asks raftkv's own Admin/HashKV for a digest, not this one.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { ServerWritableStream } from '@grpc/grpc-js';
import type pino from 'pino';
import type { KvNode } from '../node/api.js';
import { RaftKvError } from '../shared/errors.js';
import type { EtcdServiceHandlers, MessageInit } from '../protocol/etcd-proto.js';
import type * as etcd from '../protocol/etcd-proto.js';
import { toEtcdStatus } from '../protocol/etcd-errors.js';
import type { AuthGate, CallerContext } from './auth-gate.js';
import { deadlineOf } from './kv-service.js';
import { etcdHandlerKit } from './etcd-kv-service.js';
import type { AlarmMember, AlarmType } from '../kv/types.js';
import { AlarmRequest_AlarmAction, AlarmType as EtcdAlarmType } from '../protocol/etcd-types.js';
import { createEtcdClusterService } from './etcd-cluster-service.js';
import type { EtcdClusterOptions } from './etcd-cluster-service.js';
import { memberIdFromEtcd } from './member-changes.js';
import { hashKv } from './hash-kv.js';

/** The etcd version whose API and behaviour raftkv matches (what etcdctl shows as VERSION). */
export const ETCD_API_VERSION = '3.4.23';

const MAX_MEMBER_ID = 2n ** 31n - 1n;

/** Snapshot stream chunks: etcd sends 32 KiB; larger chunks cost fewer messages on a multi-GiB file. */
export const ETCD_SNAPSHOT_CHUNK_BYTES = 256 * 1024;

/** etcdctl's save checks size % 512 == 32 (a bbolt file's pages plus the hash): the file is padded to this. */
const SNAPSHOT_ALIGN_BYTES = 512;

export interface EtcdMaintenanceOptions extends EtcdClusterOptions {
  readonly node: KvNode;
  readonly maxRequestBytes: number;
  readonly defaultTimeoutMs: number;
  readonly logger: pino.Logger;
  readonly auth?: AuthGate; // with authentication on: membership changes, Snapshot and Defragment need root
}

/**
 * etcd 3.4's Snapshot, Defragment, Hash and HashKV refuse with the auth store's error unmapped: gRPC Unknown, "auth: permission
 * denied" (etcd-errors.ts maps a PERMISSION_DENIED whose message starts "auth: " so).
 */
async function maintenanceAdmin(auth: AuthGate | undefined, call: CallerContext, deadlineMs: number): Promise<void> {
  try {
    await auth?.checkAdminNow(call, deadlineMs);
  } catch (err) {
    if (err instanceof RaftKvError && err.message.startsWith('etcdserver: ')) throw new RaftKvError('PERMISSION_DENIED', `auth: ${err.message.slice('etcdserver: '.length)}`);
    throw err;
  }
}

const ETCD_ALARM_TYPES: Readonly<Record<AlarmType, EtcdAlarmType>> = { NOSPACE: EtcdAlarmType.NOSPACE, CORRUPT: EtcdAlarmType.CORRUPT };

/** etcd's AlarmType as raftkv's (undefined: NONE, or a value raftkv does not raise). */
function alarmTypeOf(t: EtcdAlarmType): AlarmType | undefined {
  return t === EtcdAlarmType.NOSPACE ? 'NOSPACE' : t === EtcdAlarmType.CORRUPT ? 'CORRUPT' : undefined;
}

export function createEtcdMaintenanceServices(opts: EtcdMaintenanceOptions): {
  cluster: EtcdServiceHandlers<'Cluster'>;
  maintenance: Partial<EtcdServiceHandlers<'Maintenance'>>;
} {
  const { node } = opts;
  const kit = etcdHandlerKit(opts);
  const header = (): MessageInit<etcd.ResponseHeader> => {
    const s = node.status();
    return kit.header({ memberId: s.id, term: s.term, index: s.appliedIndex, leaderId: s.leaderId }, s.revision);
  };
  const unary = kit.unary;

  return {
    cluster: createEtcdClusterService(opts),
    maintenance: {
      Status: unary<etcd.StatusRequest, etcd.StatusResponse>('Maintenance/Status', () => {
        const s = node.status();
        const self = s.members.find((m) => m.id === s.id);
        return Promise.resolve({
          header: header(),
          version: ETCD_API_VERSION,
          dbSize: BigInt(s.dataSizeBytes),
          dbSizeInUse: BigInt(s.dataSizeBytes),
          leader: BigInt(s.leaderId),
          raftIndex: BigInt(s.commitIndex),
          raftTerm: BigInt(s.term),
          raftAppliedIndex: BigInt(s.appliedIndex),
          isLearner: self?.learner ?? false,
          errors: node.alarms().map((a) => `memberID:${a.memberId} alarm:${a.alarm} `),
        });
      }),
      Alarm: unary<etcd.AlarmRequest, etcd.AlarmResponse>('Maintenance/Alarm', async (req, deadlineMs, call) => {
        opts.auth?.caller(call); // etcd 3.4 checks no permission on alarms: only a bad token is refused
        const type = alarmTypeOf(req.alarm);
        const wire = (list: readonly AlarmMember[]): MessageInit<etcd.AlarmMember>[] =>
          list.filter((a) => type === undefined || a.alarm === type).map((a) => ({ memberID: BigInt(a.memberId), alarm: ETCD_ALARM_TYPES[a.alarm] }));
        switch (req.action) {
          case AlarmRequest_AlarmAction.GET:
            await node.read({ key: Uint8Array.of(0), end: new Uint8Array(0), limit: 1, keysOnly: true, countOnly: true }, { serializable: false, deadlineMs });
            return { header: header(), alarms: wire(node.alarms()) };
          case AlarmRequest_AlarmAction.ACTIVATE:
          case AlarmRequest_AlarmAction.DEACTIVATE: {
            if (type === undefined) return { header: header(), alarms: [] }; // etcd: NONE changes nothing
            if (req.memberID > MAX_MEMBER_ID) return { header: header(), alarms: [] };
            const action = req.action === AlarmRequest_AlarmAction.ACTIVATE ? 'activate' : 'deactivate';
            const { result } = await node.write({ type: 'alarm', action, memberId: Number(req.memberID), alarm: type }, { clientId: '', seq: 0, deadlineMs });
            if (result.type !== 'alarm') throw new Error(`node answered an alarm request with a ${result.type} result`);
            if (action === 'deactivate' && result.alarms.length > 0) opts.logger.info({ alarms: result.alarms }, 'alarm disarmed');
            return { header: header(), alarms: wire(result.alarms) };
          }
          default:
            throw new RaftKvError('INVALID_ARGUMENT', `etcdserver: unknown alarm action ${String(req.action)}`);
        }
      }),
      HashKV: unary<etcd.HashKVRequest, etcd.HashKVResponse>('Maintenance/HashKV', async (req, deadlineMs, call) => {
        await maintenanceAdmin(opts.auth, call, deadlineMs);
        const h = await hashKv(node, req.revision, deadlineMs);
        return { header: header(), hash: h.hash, compactRevision: BigInt(h.compactRevision), hashRevision: BigInt(h.revision) };
      }),
      // etcd's Hash is of the member's whole backend file (not comparable across members either): the digest here.
      Hash: unary<etcd.HashRequest, etcd.HashResponse>('Maintenance/Hash', async (_req, deadlineMs, call) => {
        await maintenanceAdmin(opts.auth, call, deadlineMs);
        const d = await node.keySpaceDigest(0, deadlineMs);
        return { header: header(), hash: (d.lane1 ^ d.lane2) >>> 0 };
      }),
      // The member logs what it freed (node.defragment); etcd's response carries only the header.
      Defragment: unary<etcd.DefragmentRequest, etcd.DefragmentResponse>('Maintenance/Defragment', async (_req, deadlineMs, call) => {
        await maintenanceAdmin(opts.auth, call, deadlineMs);
        await node.defragment();
        return { header: header() };
      }),
      MoveLeader: unary<etcd.MoveLeaderRequest, etcd.MoveLeaderResponse>('Maintenance/MoveLeader', async (req, deadlineMs) => {
        await node.transferLeadership(memberIdFromEtcd(req.targetID), deadlineMs);
        return { header: header() };
      }),
      Snapshot: (call: ServerWritableStream<etcd.SnapshotRequest, MessageInit<etcd.SnapshotResponse>>) => {
        const run = async (): Promise<void> => {
          const deadlineMs = deadlineOf(call, opts.defaultTimeoutMs);
          await opts.auth?.ready(call, deadlineMs);
          await maintenanceAdmin(opts.auth, call, deadlineMs);
          await streamSnapshot(node, header, call);
        };
        run().catch((err: unknown) => {
          if (!(err instanceof RaftKvError)) opts.logger.error({ err }, 'snapshot stream failed');
          call.emit('error', toEtcdStatus(err));
        });
      },
    },
  };
}

async function streamSnapshot(
  node: KvNode,
  header: () => MessageInit<etcd.ResponseHeader>,
  call: ServerWritableStream<etcd.SnapshotRequest, MessageInit<etcd.SnapshotResponse>>,
): Promise<void> {
  const path = await node.saveSnapshot();
  const size = (await stat(path)).size;
  const padding = (SNAPSHOT_ALIGN_BYTES - (size % SNAPSHOT_ALIGN_BYTES)) % SNAPSHOT_ALIGN_BYTES;
  const total = size + padding + 32;
  const hash = createHash('sha256');
  let sent = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: ETCD_SNAPSHOT_CHUNK_BYTES })) {
    if (call.cancelled) return;
    const blob = chunk as Buffer;
    hash.update(blob);
    sent += blob.byteLength;
    if (!call.write({ header: header(), blob, remainingBytes: BigInt(total - sent), version: ETCD_API_VERSION })) {
      await new Promise<void>((resolve) => call.once('drain', resolve));
    }
  }
  if (padding > 0) {
    const zeros = Buffer.alloc(padding);
    hash.update(zeros);
    sent += padding;
    call.write({ header: header(), blob: zeros, remainingBytes: BigInt(total - sent), version: ETCD_API_VERSION });
  }
  call.write({ header: header(), blob: hash.digest(), remainingBytes: 0n, version: ETCD_API_VERSION });
  call.end();
}
