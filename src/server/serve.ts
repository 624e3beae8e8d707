// `raftkv serve`: binds the gRPC servers, creates the GrpcTransport, starts the node, serves KV, Admin and Peer.
//
// Order: bind first (a port in use fails before the data directory is touched), with the services answering
// UNAVAILABLE "starting" until the node is up; then startNode. One server when peerListen == clientListen,
// otherwise a peer server and a client server. Received snapshots land in <dataDir>/snap-inbox/.
// Once the node is up, the peer corrupt check (corrupt-check.ts) compares its key-space digest with the other
// members' (initial check, then every corruptCheckIntervalMs).
// Stop (SIGTERM / SIGINT when `handleSignals`): the corrupt check stops, the node stops gracefully (a leader hands
// off leadership first), then the transport, then the servers; the process exits 0.
import { join } from 'node:path';
import type { Server } from '@grpc/grpc-js';
import type { ServerOptions } from '@grpc/grpc-js';
import type { pino } from 'pino';
import type { KvNode, Member, NodeStatus } from '../node/api.js';
import type { Lease } from '../kv/types.js';
import type { WatchHub } from '../watch/watch-hub.js';
import type { Clock } from '../shared/clock.js';
import { systemClock } from '../shared/clock.js';
import type { NodeConfig } from '../node/config.js';
import { DEFAULT_CORRUPT_CHECK_INTERVAL_MS } from '../node/config.js';
import { isRaftKvError, RaftKvError } from '../shared/errors.js';
import { createLogger } from '../node/logger.js';
import { startNode as realStartNode } from '../node/node.js';
import { ADMIN_SERVICE, KV_SERVICE } from '../protocol/proto.js';
import type { NodeId } from '../raft/types.js';
import { GrpcTransport, PEER_MAX_MESSAGE_BYTES } from '../transport/grpc-transport.js';
import type { Transport } from '../transport/transport.js';
import { createAdminService } from './admin-service.js';
import { CorruptCheck, GrpcPeerDigests } from './corrupt-check.js';
import type { PeerDigests } from './corrupt-check.js';
import { createKvService } from './kv-service.js';
import { createEtcdKvService } from './etcd-kv-service.js';
import { AutoCompactor } from './auto-compactor.js';
import { createEtcdMaintenanceServices } from './etcd-maintenance-service.js';
import { WriteForwarder } from './write-forwarder.js';
import { MemberPublisher } from './member-publish.js';
import { createEtcdLeaseService } from './etcd-lease-service.js';
import { DEFAULT_WATCH_PROGRESS_NOTIFY_INTERVAL_MS, createEtcdWatchService } from './etcd-watch-service.js';
import { SpaceAlarm, effectiveQuotaBytes } from './space-alarm.js';
import type { Command } from '../kv/types.js';
import { ETCD_SERVICES } from '../protocol/etcd-proto.js';
import { addPeerService } from './peer-service.js';
import { Observability } from './observability.js';
import type { RequestRecorder } from './request-recorder.js';
import { SlowRequestLog } from './slow-request-log.js';
import { SLOW_APPLY_MS } from '../node/slow-ops.js';
import type { NodeMetrics } from '../node/node-metrics.js';
import { createGrpcServer } from './grpc-server.js';
import { AuthGate } from './auth-gate.js';
import { createEtcdAuthService } from './etcd-auth-service.js';
import type { MemberTlsConfig } from '../shared/tls-files.js';
import { clientPortDialCredentials, listenOn, peerDialCredentials, sharedPortTls } from './member-tls.js';
import type { BoundPort } from './member-tls.js';

/** Exit status of a member the cluster refused as a stale incarnation of itself (EX_CONFIG). */
export const EXIT_STALE_MEMBER = 78;

export type StartNode = (
  config: NodeConfig,
  deps: { transport: Transport; logger: pino.Logger; onFatal?: (err: Error) => void; metrics?: NodeMetrics },
) => Promise<KvNode>;

export interface RunServerOptions {
  readonly logger?: pino.Logger; // default: createLogger(config)
  readonly dialOverrides?: ReadonlyMap<NodeId, string>; // --dial-override
  /** Default: startNode from src/node/node.ts. Tests inject a fake. */
  readonly startNode?: StartNode;
  /** Install SIGTERM / SIGINT handlers that stop gracefully and exit 0 (the CLI does; tests do not). */
  readonly handleSignals?: boolean;
  readonly defaultTimeoutMs?: number; // deadline for client calls that carry none; default 10 s
  /** The timers of the peer corrupt check, the auto-compactor and the watch service, and the deadlines they hand the node: must be the node's clock. Default systemClock. */
  readonly corruptCheckClock?: Clock;
  /** How the peer corrupt check reaches other members. Default: HashKV over gRPC. Tests inject their own. */
  readonly corruptCheckPeers?: PeerDigests;
  /** TLS on the client and/or peer port (etcd's --cert-file ... and --peer-* flags); plaintext without. */
  readonly tls?: MemberTlsConfig;
}

export interface RunningServer {
  readonly node: KvNode;
  readonly transport: GrpcTransport;
  readonly clientAddress: string; // the bound client address (the real port when listening on :0)
  readonly peerAddress: string;
  readonly corruptCheck: CorruptCheck; // the peer digest comparison (started with the node)
  readonly metricsUrl: string; // the --listen-metrics server as bound ("" without the flag)
  stop(): Promise<void>;
}


/**
 * A KvNode stand-in that answers UNAVAILABLE until the real node is set. With `forwarder`, a write, a lease
 * keep-alive or a TimeToLive a follower refuses goes to the leader (what etcd's services take).
 */
class LateNode implements KvNode {
  constructor(
    readonly id: NodeId,
    // guard: checks a write before it is proposed (the NOSPACE quota, space-alarm.ts); throws to refuse it
    private readonly lateNode: { node: KvNode | undefined; requests?: RequestRecorder; slow?: SlowRequestLog; guard?: (command: Command) => void } = { node: undefined },
    private readonly forwarder?: WriteForwarder,
  ) {}
  set node(n: KvNode) {
    this.lateNode.node = n;
  }
  /** Every read and write through any LateNode of this node is counted here (the dashboard's requests). */
  set requests(r: RequestRecorder) {
    this.lateNode.requests = r;
  }
  /** Every read through any LateNode of this node is timed against the slow-request threshold here. */
  set slowRequests(s: SlowRequestLog) {
    this.lateNode.slow = s;
  }
  set guard(g: (command: Command) => void) {
    this.lateNode.guard = g;
  }
  /** The same node, with writes forwarded by `forwarder`. */
  forwarding(forwarder: WriteForwarder): LateNode {
    return new LateNode(this.id, this.lateNode, forwarder);
  }
  private get(): KvNode {
    if (this.lateNode.node === undefined) throw new RaftKvError('UNAVAILABLE', `member ${this.id} is starting`);
    return this.lateNode.node;
  }
  write(...args: Parameters<KvNode['write']>): ReturnType<KvNode['write']> {
    try {
      this.lateNode.guard?.(args[0]);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    const p = this.forwarder !== undefined ? this.forwarder.write(...args) : this.get().write(...args);
    return this.lateNode.requests?.track('write', p) ?? p;
  }
  read(...args: Parameters<KvNode['read']>): ReturnType<KvNode['read']> {
    const p = this.get().read(...args);
    this.lateNode.slow?.read(args[0], args[1], p);
    return this.lateNode.requests?.track('read', p) ?? p;
  }
  readTxn(...args: Parameters<KvNode['readTxn']>): ReturnType<KvNode['readTxn']> {
    const p = this.get().readTxn(...args);
    return this.lateNode.requests?.track('read', p) ?? p;
  }
  status(): NodeStatus {
    return this.get().status();
  }
  members(): readonly Member[] {
    return this.get().members();
  }
  addMember(...args: Parameters<KvNode['addMember']>): ReturnType<KvNode['addMember']> {
    return this.get().addMember(...args);
  }
  removeMember(...args: Parameters<KvNode['removeMember']>): ReturnType<KvNode['removeMember']> {
    return this.get().removeMember(...args);
  }
  promoteLearner(...args: Parameters<KvNode['promoteLearner']>): ReturnType<KvNode['promoteLearner']> {
    return this.get().promoteLearner(...args);
  }
  updateMember(...args: Parameters<KvNode['updateMember']>): ReturnType<KvNode['updateMember']> {
    return this.get().updateMember(...args);
  }
  transferLeadership(...args: Parameters<KvNode['transferLeadership']>): ReturnType<KvNode['transferLeadership']> {
    return this.get().transferLeadership(...args);
  }
  saveSnapshot(): Promise<string> {
    return this.get().saveSnapshot();
  }
  keySpaceDigest(...args: Parameters<KvNode['keySpaceDigest']>): ReturnType<KvNode['keySpaceDigest']> {
    return this.get().keySpaceDigest(...args);
  }
  raiseCorrupt(reason: string): void {
    this.get().raiseCorrupt(reason);
  }
  whenCompacted(...args: Parameters<KvNode['whenCompacted']>): ReturnType<KvNode['whenCompacted']> {
    return this.get().whenCompacted(...args);
  }
  waitApplied(...args: Parameters<KvNode['waitApplied']>): ReturnType<KvNode['waitApplied']> {
    return this.get().waitApplied(...args);
  }
  defragment(): ReturnType<KvNode['defragment']> {
    return this.get().defragment();
  }
  watchHub(): WatchHub {
    return this.get().watchHub();
  }
  leaseKeepAlive(...args: Parameters<KvNode['leaseKeepAlive']>): ReturnType<KvNode['leaseKeepAlive']> {
    return this.forwarder !== undefined ? this.forwarder.leaseKeepAlive(...args) : this.get().leaseKeepAlive(...args);
  }
  leaseTimeToLive(...args: Parameters<KvNode['leaseTimeToLive']>): ReturnType<KvNode['leaseTimeToLive']> {
    return this.forwarder !== undefined ? this.forwarder.leaseTimeToLive(...args) : this.get().leaseTimeToLive(...args);
  }
  leaseKeys(id: number): Promise<readonly Uint8Array[]> {
    return this.get().leaseKeys(id);
  }
  leases(): readonly Lease[] {
    return this.get().leases();
  }
  get minLeaseTtlSeconds(): number {
    return this.get().minLeaseTtlSeconds;
  }
  alarms(): ReturnType<KvNode['alarms']> {
    return this.get().alarms();
  }
  auth(): ReturnType<KvNode['auth']> {
    return this.get().auth();
  }
  stop(): Promise<void> {
    return this.lateNode.node?.stop() ?? Promise.resolve();
  }
}

function shutdown(server: Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export async function runServer(config: NodeConfig, opts: RunServerOptions = {}): Promise<RunningServer> {
  const logger = opts.logger ?? createLogger(config);
  const startNode: StartNode = opts.startNode ?? realStartNode;
  const shared = config.peerListen === config.clientListen;
  // Made first: a missing certificate or a key that does not match it is refused before anything listens.
  const peerCredentials = peerDialCredentials(opts.tls, shared);
  const transport = new GrpcTransport({
    credentials: peerCredentials,
    id: config.id,
    clusterId: config.clusterId,
    logger: logger.child({ module: 'transport' }),
    snapshotInboxDir: join(config.dataDir, 'snap-inbox'),
    dialOverrides: opts.dialOverrides ?? new Map(),
  });
  for (const p of config.initialMembers) transport.setPeer(p.id, p.peerAddress);

  const late = new LateNode(config.id);
  // --listen-metrics: metrics, probes and the dashboard (observability.ts); its server binds after the gRPC ports.
  const observability = config.listenMetrics === undefined ? undefined : new Observability(config.listenMetrics, late, logger.child({ module: 'metrics' }), config.advertiseClient.replace(/:\d+$/, ''), clientPortDialCredentials(opts.tls));
  if (observability !== undefined) late.requests = observability.requests;
  late.slowRequests = new SlowRequestLog({
    logger: logger.child({ module: 'server' }),
    clock: opts.corruptCheckClock ?? systemClock,
    warningApplyDurationMs: config.warningApplyDurationMs ?? SLOW_APPLY_MS,
    ...(observability !== undefined ? { onSlowRead: () => observability.metrics.onSlowRead() } : {}),
  });
  // Made before anything is bound, so a bad interval is refused first; started once the node is up.
  const corruptCheck = new CorruptCheck({
    node: late,
    clock: opts.corruptCheckClock ?? systemClock,
    logger: logger.child({ module: 'corrupt-check' }),
    intervalMs: config.corruptCheckIntervalMs ?? DEFAULT_CORRUPT_CHECK_INTERVAL_MS,
    peers: opts.corruptCheckPeers ?? new GrpcPeerDigests(clientPortDialCredentials(opts.tls)),
  });
  // Authentication and roles (auth-gate.ts): every client-port service checks the caller once auth is on.
  const auth = new AuthGate({ node: late, clock: opts.corruptCheckClock ?? systemClock, clientCertAuth: (shared ? sharedPortTls(opts.tls) : opts.tls?.client)?.clientCertAuth === true });
  const serviceOpts = {
    auth,
    node: late,
    limits: config.kvLimits,
    maxRequestBytes: config.maxRequestBytes,
    defaultTimeoutMs: opts.defaultTimeoutMs ?? 10_000,
    logger: logger.child({ module: 'server' }),
    metricsUrl: () => observability?.url ?? '',
  };
  // The client server's gRPC limit leaves headroom so a request just over --max-request-bytes gets the
  // handler's INVALID_ARGUMENT with a message (far over: gRPC's RESOURCE_EXHAUSTED, which our client maps too).
  const clientServerOptions: ServerOptions = {
    'grpc.max_receive_message_length': shared ? PEER_MAX_MESSAGE_BYTES : config.maxRequestBytes + 1024 * 1024,
    'grpc.max_send_message_length': -1,
    ...(observability !== undefined ? { interceptors: observability.interceptors } : {}),
  };
  // etcd's clients expect any member to serve a write: a follower forwards it to the leader (write-forwarder.ts).
  // raftkv's own protocol answers NOT_LEADER with the leader's address instead, which its client follows: one hop
  // fewer, the same result (the command is the same and the leader applies it either way).
  const forwarder = new WriteForwarder({
    node: late,
    clusterId: config.clusterId,
    logger: logger.child({ module: 'forward' }),
    dialOverrides: opts.dialOverrides ?? new Map(),
    credentials: peerCredentials,
  });
  const etcdKvOpts = { ...serviceOpts, node: late.forwarding(forwarder) };
  const clientServer = createGrpcServer(clientServerOptions);
  clientServer.addService(KV_SERVICE, createKvService(serviceOpts));
  clientServer.addService(ADMIN_SERVICE, createAdminService(serviceOpts));
  clientServer.addService(ETCD_SERVICES.KV, createEtcdKvService(etcdKvOpts));
  clientServer.addService(ETCD_SERVICES.Lease, createEtcdLeaseService({ ...etcdKvOpts, ...(observability !== undefined ? { metrics: observability.leaseMetrics } : {}) }));
  const etcdWatch = createEtcdWatchService({
    ...(observability !== undefined ? { metrics: observability.watchMetrics } : {}),
    ...serviceOpts,
    clock: opts.corruptCheckClock ?? systemClock,
    watchProgressNotifyIntervalMs: config.watchProgressNotifyIntervalMs ?? DEFAULT_WATCH_PROGRESS_NOTIFY_INTERVAL_MS,
    noLeaderCancelMs: 3 * config.electionTimeoutTicks * config.tickIntervalMs,
  });
  clientServer.addService(ETCD_SERVICES.Watch, etcdWatch.service);
  const etcdAdmin = createEtcdMaintenanceServices({ ...etcdKvOpts, memberChange: (c, d) => forwarder.memberChange(c, d) }); // alarms and member changes: forwarded
  clientServer.addService(ETCD_SERVICES.Cluster, etcdAdmin.cluster);
  clientServer.addService(ETCD_SERVICES.Maintenance, etcdAdmin.maintenance);
  clientServer.addService(ETCD_SERVICES.Auth, createEtcdAuthService(etcdKvOpts));
  const peerServer = shared ? clientServer : createGrpcServer({ 'grpc.max_receive_message_length': PEER_MAX_MESSAGE_BYTES, 'grpc.max_send_message_length': -1 });
  addPeerService(peerServer, transport, forwarder.handlers());

  const servers = shared ? [clientServer] : [clientServer, peerServer];
  const ports: BoundPort[] = [];
  const tlsLogger = logger.child({ module: 'tls' });
  try {
    ports.push(await listenOn(clientServer, config.clientListen, shared ? sharedPortTls(opts.tls) : opts.tls?.client, 'client', tlsLogger));
    if (!shared) ports.push(await listenOn(peerServer, config.peerListen, opts.tls?.peer, 'peer', tlsLogger));
    await observability?.start();
  } catch (err) {
    for (const s of servers) s.forceShutdown();
    await Promise.all(ports.map((p) => p.close()));
    etcdWatch.close();
    throw err;
  }
  const clientAddress = ports[0]?.address ?? config.clientListen;
  const peerAddress = ports[1]?.address ?? clientAddress;

  let node: KvNode;
  try {
    // A bug (a failed assertion) kills the driver loop. In a process of its own (the CLI) the member exits
    // with status 70 so its supervisor restarts it and it recovers from the WAL; it never lingers half-alive.
    // A member refused as a stale incarnation (its data directory was replaced) exits 78: restarting it as it
    // is cannot help (see README, failure behaviour).
    const onFatal = (err: Error): void => {
      const stale = isRaftKvError(err, 'CLUSTER_MISMATCH');
      logger.fatal({ err }, stale ? 'refused by the cluster: exiting' : 'driver loop died: exiting');
      if (stale) process.stderr.write(`raftkv: ${err.message}\n`);
      if (opts.handleSignals === true) logger.flush(() => process.exit(stale ? EXIT_STALE_MEMBER : 70));
    };
    node = await startNode(config, { transport, logger, onFatal, ...(observability !== undefined ? { metrics: observability.nodeMetrics, leaseMetrics: observability.leaseMetrics } : {}) });
  } catch (err) {
    for (const s of servers) s.forceShutdown();
    etcdWatch.close();
    await observability?.stop();
    await Promise.all(ports.map((p) => p.close()));
    await transport.stop();
    throw err;
  }
  late.node = node;
  const stopTokenSweep = auth.tokens.start();
  logger.info({ clientAddress, peerAddress }, 'serving');
  corruptCheck.start();
  const autoCompactor = new AutoCompactor({
    node: late,
    clock: opts.corruptCheckClock ?? systemClock,
    logger: logger.child({ module: 'auto-compaction' }),
    config: { mode: config.autoCompactionMode ?? 'periodic', retention: config.autoCompactionRetention ?? 0 },
    timeoutMs: opts.defaultTimeoutMs ?? 10_000,
  });
  autoCompactor.start();
  const spaceAlarm = new SpaceAlarm({
    node: late,
    raise: (op, deadlineMs) => forwarder.propose(op, { clientId: '', seq: 0, deadlineMs }),
    quotaBytes: effectiveQuotaBytes(config.quotaBackendBytes),
    clock: opts.corruptCheckClock ?? systemClock,
    logger: logger.child({ module: 'space-alarm' }),
    timeoutMs: opts.defaultTimeoutMs ?? 10_000,
  });
  late.guard = (command) => spaceAlarm.check(command);
  spaceAlarm.start();
  const publisher = new MemberPublisher({
    node: late,
    clientAddress: config.advertiseClient.endsWith(':0') ? clientAddress : config.advertiseClient,
    change: (c, d) => forwarder.memberChange(c, d),
    clock: opts.corruptCheckClock ?? systemClock,
    logger: logger.child({ module: 'member-publish' }),
    timeoutMs: opts.defaultTimeoutMs ?? 10_000,
  });
  publisher.start();

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await corruptCheck.stop();
      stopTokenSweep();
      autoCompactor.stop();
      etcdWatch.close();
      spaceAlarm.stop();
      publisher.stop();
      try {
        await node.stop();
      } catch (err) {
        logger.error({ err }, 'node stop failed');
      }
      await transport.stop();
      forwarder.close();
      await Promise.all(servers.map((s) => shutdown(s, 1000)));
      await observability?.stop();
      await Promise.all(ports.map((p) => p.close()));
      logger.info('stopped');
    })();
    return stopping;
  };

  if (opts.handleSignals === true) {
    const onSignal = (signal: NodeJS.Signals): void => {
      logger.info({ signal }, 'stopping');
      stop().then(
        () => logger.flush(() => process.exit(0)),
        (err: unknown) => {
          logger.error({ err }, 'stop failed');
          process.exit(1);
        },
      );
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  }

  return { node, transport, clientAddress, peerAddress, corruptCheck, metricsUrl: observability?.url ?? '', stop };
}
