// etcd's Lease service (etcdserverpb.Lease) on the client port: Grant and Revoke go through the log (as
// commands of the one request model), KeepAlive and TimeToLive are answered by the leader (a follower forwards
// them: write-forwarder.ts), Leases from this member's applied state.
//
// etcd's rules kept here: a grant without an id gets one chosen now, before proposing (positive, random; ours
// fit in 53 bits so they stay exact in every client, see leases.ts); a TTL below the minimum (1.5 election
// timeouts) is raised to it; KeepAlive answers TTL 0 for a lease that is gone, TimeToLive answers TTL -1; the
// keep-alive answer's header is taken before the renew (etcd: a lease revoked at revision N is never answered
// as kept alive at a later revision).
import { randomBytes } from 'node:crypto';
import type { ServerDuplexStream } from '@grpc/grpc-js';
import type pino from 'pino';
import type { KvNode } from '../node/api.js';
import { RaftKvError, isRaftKvError } from '../shared/errors.js';
import { NO_LEASE_METRICS } from '../shared/watch-lease-metrics.js';
import type { LeaseMetrics } from '../shared/watch-lease-metrics.js';
import { checkLeaseGrant, isLeaseId } from '../kv/leases.js';
import type { EtcdServiceHandlers, MessageInit } from '../protocol/etcd-proto.js';
import type * as etcd from '../protocol/etcd-proto.js';
import { ETCD_NO_LEADER, toEtcdStatus } from '../protocol/etcd-errors.js';
import { clampToSafe, etcdHandlerKit } from './etcd-kv-service.js';
import { deadlineOf } from './kv-service.js';
import type { AuthGate, CallerContext } from './auth-gate.js';

export interface EtcdLeaseOptions {
  readonly node: KvNode; // with writes, keep-alives and TimeToLive forwarded to the leader
  readonly maxRequestBytes: number;
  readonly defaultTimeoutMs: number;
  readonly logger: pino.Logger;
  readonly metrics?: LeaseMetrics; // etcd's lease counters
  readonly auth?: AuthGate; // permission checks once authentication is on
}

/** How often a grant without an id draws another when the drawn one is taken (a 53-bit collision: never, in practice). */
const GRANT_ID_ATTEMPTS = 3;

/** A fresh lease id: positive, random, below 2^53 - 1 (leases.ts isLeaseId). */
export function newLeaseId(): number {
  for (;;) {
    const id = Number(randomBytes(8).readBigUInt64BE(0) & ((1n << 53n) - 1n));
    if (isLeaseId(id)) return id;
  }
}

/** A lease id from the wire: ids this store cannot hold name no lease (0 is "none"). */
function leaseIdOf(id: bigint): number {
  const n = clampToSafe(id);
  return isLeaseId(n) ? n : 0;
}

export function createEtcdLeaseService(opts: EtcdLeaseOptions): EtcdServiceHandlers<'Lease'> {
  const { node } = opts;
  const metrics = opts.metrics ?? NO_LEASE_METRICS;
  const { header, unary: kitUnary } = etcdHandlerKit(opts);
  const unary = <Req, Res>(name: string, fn: (req: Req, deadlineMs: number, call: CallerContext) => Promise<MessageInit<Res>>) => kitUnary<Req, Res>(`Lease/${name}`, fn);
  const localHeader = (): MessageInit<etcd.ResponseHeader> => {
    const s = node.status();
    return header({ memberId: s.id, term: s.term, index: s.appliedIndex, leaderId: s.leaderId }, s.revision);
  };

  const grant = async (req: etcd.LeaseGrantRequest, deadlineMs: number, call: CallerContext): Promise<MessageInit<etcd.LeaseGrantResponse>> => {
    opts.auth?.caller(call); // etcd checks only the token of a grant
    const asked = clampToSafe(req.TTL);
    const ttlSeconds = Math.max(asked, node.minLeaseTtlSeconds);
    for (let attempt = 1; ; attempt++) {
      const id = req.ID === 0n ? newLeaseId() : clampToSafe(req.ID);
      const command = { type: 'lease-grant' as const, id, ttlSeconds };
      checkLeaseGrant(command);
      try {
        const { header: h, result } = await node.write(command, { clientId: '', seq: 0, deadlineMs });
        if (result.type !== 'lease-grant') throw new Error(`node answered a lease grant with a ${result.type} result`);
        metrics.leaseGranted();
        return { header: header(h, result.revision), ID: BigInt(result.id), TTL: BigInt(result.ttlSeconds), error: '' };
      } catch (err) {
        if (req.ID !== 0n || attempt >= GRANT_ID_ATTEMPTS || !isRaftKvError(err, 'LEASE_EXISTS')) throw err;
      }
    }
  };

  return {
    LeaseGrant: unary<etcd.LeaseGrantRequest, etcd.LeaseGrantResponse>('LeaseGrant', grant),
    LeaseRevoke: unary<etcd.LeaseRevokeRequest, etcd.LeaseRevokeResponse>('LeaseRevoke', async (req, deadlineMs, call) => {
      const id = leaseIdOf(req.ID);
      if (id === 0) throw new RaftKvError('LEASE_NOT_FOUND', 'etcdserver: requested lease not found');
      const auth = opts.auth;
      if (auth?.enabled === true) {
        // Revoking deletes the lease's keys: the caller needs write on every one.
        await auth.barrier(deadlineMs);
        auth.caller(call);
        await auth.checkLeaseKeys(call, id);
      }
      const { header: h, result } = await node.write({ type: 'lease-revoke', id }, { clientId: '', seq: 0, deadlineMs });
      if (result.type !== 'lease-revoke') throw new Error(`node answered a lease revoke with a ${result.type} result`);
      metrics.leaseRevoked();
      return { header: header(h, result.revision) };
    }),
    LeaseTimeToLive: unary<etcd.LeaseTimeToLiveRequest, etcd.LeaseTimeToLiveResponse>('LeaseTimeToLive', async (req, deadlineMs) => {
      const id = leaseIdOf(req.ID);
      const t = id === 0 ? undefined : await node.leaseTimeToLive(id, req.keys, deadlineMs);
      if (t === undefined) return { header: localHeader(), ID: req.ID, TTL: -1n, grantedTTL: 0n, keys: [] };
      return { header: localHeader(), ID: req.ID, TTL: BigInt(t.ttlSeconds), grantedTTL: BigInt(t.grantedTtlSeconds), keys: [...t.keys] };
    }),
    LeaseLeases: unary<etcd.LeaseLeasesRequest, etcd.LeaseLeasesResponse>('LeaseLeases', () => {
      const leases = node.leases().map((l) => ({ ID: BigInt(l.id) }));
      return Promise.resolve({ header: localHeader(), leases });
    }),
    LeaseKeepAlive: (call: ServerDuplexStream<etcd.LeaseKeepAliveRequest, MessageInit<etcd.LeaseKeepAliveResponse>>) => {
      let chain = Promise.resolve(); // answers in request order
      let ended = false;
      const fail = (err: unknown): void => {
        if (ended) return;
        ended = true;
        if (!(err instanceof RaftKvError)) opts.logger.error({ err }, 'internal error in Lease/LeaseKeepAlive');
        call.emit('error', toEtcdStatus(err));
      };
      if (call.metadata.get('hasleader').some((v) => String(v) === 'true') && node.status().leaderId === 0) {
        fail(new RaftKvError('UNAVAILABLE', ETCD_NO_LEADER));
        return;
      }
      call.on('data', (req: etcd.LeaseKeepAliveRequest) => {
        chain = chain.then(async () => {
          if (ended) return;
          const h = localHeader();
          const id = leaseIdOf(req.ID);
          const ttl = id === 0 ? undefined : await node.leaseKeepAlive(id, deadlineOf(call, opts.defaultTimeoutMs));
          if (ttl !== undefined) metrics.leaseRenewed();
          if (!ended) call.write({ header: h, ID: req.ID, TTL: BigInt(ttl ?? 0) });
        }).catch(fail);
      });
      call.on('end', () => {
        void chain.then(() => {
          if (!ended) {
            ended = true;
            call.end();
          }
        });
      });
      call.on('error', () => {
        ended = true;
      });
    },
  };
}
