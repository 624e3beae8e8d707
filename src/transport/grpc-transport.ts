// Peer messaging over gRPC: the Transport the node uses in real processes.
// Why one file of ~650 lines: the sending and receiving sides share the per-peer state (streams, queues,
// backoff, incarnations); the codec, the message policy and the refusal log are their own files.
//
// Sending: one long-lived client-streaming `Peer.Stream` call per peer, opened on the first message. Each peer
// has a bounded queue (full -> the message is dropped and counted: Raft retries); a flush, scheduled once per
// event-loop turn, coalesces the queue into PeerBatch writes of at most `maxBatchBytes` (codec payloads, see
// grpc-codec.ts) and stops at HTTP/2 backpressure until 'drain'. When the call fails (refused, reset, the
// receiver refused us) the queue is dropped, `onPeerUnreachable(peer)` fires, and the stream is reopened after
// an exponential backoff with jitter, once there is something to send.
//
// Receiving (`peerServiceImplementation()`, registered on a gRPC server by src/server): before anything of a
// stream is stepped, a batch whose cluster id differs, whose sender is not a known peer, which is not addressed to
// this member, or whose sender gives no incarnation or another than the one recorded for it (incarnations.ts) is
// refused: the stream is closed with FAILED_PRECONDITION. Undecodable payloads, and messages the sender may not
// send over that RPC (peer-message-policy.ts): INVALID_ARGUMENT. Every refusal is logged, rate-limited
// (refusal-log.ts).
//
// Snapshots: `Peer.SendSnapshot`, client-streaming: a metadata chunk (cluster id, ids, the encoded SnapshotMessage,
// the file size), data chunks, then a last chunk with the SHA-256 of all data. The receiver writes
// `<snapshotInboxDir>/recv-<from>-<index>-<uuid>.tmp`, verifies size and checksum, fsyncs, renames it to
// `.snap`, fsyncs the directory, and only then calls `onSnapshot(message, path)` and acknowledges.
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Client, credentials, Metadata, status as GrpcStatus } from '@grpc/grpc-js';
import type {
  ChannelCredentials,
  ChannelOptions,
  ClientWritableStream,
  sendUnaryData,
  ServerReadableStream,
  ServiceError,
  UntypedServiceImplementation,
} from '@grpc/grpc-js';
import type { pino } from 'pino';
import { isRaftKvError } from '../shared/errors.js';
import { STALE_MARKER } from './transport.js';
import type { Message, NodeId, SnapshotMessage } from '../raft/types.js';
import { PEER_METHODS } from '../protocol/proto.js';
import type { WireEmpty, WirePeerBatch, WireSnapshotAck, WireSnapshotChunk } from '../protocol/proto.js';
import { CodecError, decodeMessages, encodeMessages } from './grpc-codec.js';
import { messageProblem } from './peer-message-policy.js';
import { RefusalLog } from './refusal-log.js';
import type { Transport, TransportHandlers } from './transport.js';

export interface GrpcTransportOptions {
  readonly id: NodeId;
  readonly clusterId: string;
  readonly logger: pino.Logger;
  /** Where received snapshot files are written (created if missing). */
  readonly snapshotInboxDir: string;
  /** Test hook (`--dial-override`): dial this address instead of the peer's advertised one. */
  readonly dialOverrides?: ReadonlyMap<NodeId, string>;
  /** How peers are dialled: peer TLS (src/server/member-tls.ts) or, by default, plaintext. */
  readonly credentials?: ChannelCredentials;
  readonly maxQueuedMessages?: number; // per peer; default 4096
  readonly maxBatchBytes?: number; // payload bytes per PeerBatch write (at least one message); default 4 MiB
  readonly maxMessageBytes?: number; // gRPC send/receive limit of peer channels; default 64 MiB
  readonly reconnectBackoffMinMs?: number; // default 50
  readonly reconnectBackoffMaxMs?: number; // default 1000
  readonly snapshotChunkBytes?: number; // default 256 KiB
  readonly snapshotTimeoutMs?: number; // default 10 minutes
  readonly keepaliveTimeMs?: number; // HTTP/2 ping interval on peer connections; default PEER_KEEPALIVE_TIME_MS
  readonly keepaliveTimeoutMs?: number; // no ping ack within this: the connection is dead; default PEER_KEEPALIVE_TIMEOUT_MS
}

export interface PeerStats {
  sentMessages: number; // handed to gRPC in a batch
  sentBatches: number;
  droppedMessages: number; // queue full, stream failed with them queued, or unknown peer
  streamFailures: number; // outbound streams that ended in an error
}

export const PEER_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
// Keepalive pings on every peer connection, with or without a call: a peer that is paused (SIGSTOP), cut off by
// a black-holing network or gone without a reset is noticed within time + timeout (2 s, two election timeouts
// at the default tick) instead of when a stream write finally times out; the link then reports the peer
// unreachable and redials. grpc-js servers accept pings at any rate, so the receiving side needs no setting.
export const PEER_KEEPALIVE_TIME_MS = 1000;
// A snapshot stream may take this long: 10 minutes moves several GiB on a slow link; longer is a stuck peer.
export const SNAPSHOT_SEND_TIMEOUT_MS = 10 * 60_000;
export const PEER_KEEPALIVE_TIMEOUT_MS = 1000;

interface PeerLink {
  readonly id: NodeId;
  readonly address: string; // the address dialled (override applied)
  readonly client: Client;
  call: ClientWritableStream<WirePeerBatch> | undefined; // the open outbound stream
  openedAtMs: number; // when `call` was opened
  queue: Message[]; // invariant: length <= maxQueuedMessages
  flushScheduled: boolean;
  gossipVersion: number; // the IncarnationGuard version last sent on the current stream (-1: none yet)
  waitingDrain: boolean; // the call's buffer is full; flush resumes on 'drain'
  backoffMs: number; // next reconnect delay (before jitter)
  retryTimer: NodeJS.Timeout | undefined; // set while backing off: no stream is opened
  readonly stats: PeerStats;
}

function assertNever(x: never): never {
  throw new Error(`unexpected value ${JSON.stringify(x)}`);
}

class RefusedError extends Error {
  constructor(
    readonly code: GrpcStatus,
    message: string,
    readonly logKey: string,
  ) {
    super(message);
  }
}

export class GrpcTransport implements Transport {
  private readonly opts: Required<Omit<GrpcTransportOptions, 'dialOverrides' | 'credentials'>> & { dialOverrides: ReadonlyMap<NodeId, string>; credentials: ChannelCredentials };
  private readonly links = new Map<NodeId, PeerLink>(); // one per known peer (never this member)
  private readonly knownPeers = new Map<NodeId, string>(); // advertised peer address of each known peer
  private readonly refusals: RefusalLog; // refused peer traffic, rate-limited per reason
  private readonly inbound = new Set<(err: { code: GrpcStatus; details: string } | null) => void>(); // open inbound streams' finishers
  private handlers: TransportHandlers | undefined; // set by start(), cleared by stop()
  private stopped = false;
  readonly unknownPeerDrops = { count: 0 }; // messages addressed to no known peer

  constructor(options: GrpcTransportOptions) {
    this.opts = {
      maxQueuedMessages: 4096,
      maxBatchBytes: 4 * 1024 * 1024,
      maxMessageBytes: PEER_MAX_MESSAGE_BYTES,
      reconnectBackoffMinMs: 50,
      reconnectBackoffMaxMs: 1000,
      snapshotChunkBytes: 256 * 1024,
      snapshotTimeoutMs: SNAPSHOT_SEND_TIMEOUT_MS,
      keepaliveTimeMs: PEER_KEEPALIVE_TIME_MS,
      keepaliveTimeoutMs: PEER_KEEPALIVE_TIMEOUT_MS,
      ...options,
      dialOverrides: options.dialOverrides ?? new Map(),
      credentials: options.credentials ?? credentials.createInsecure(),
    };
    if (this.opts.maxBatchBytes >= this.opts.maxMessageBytes) throw new Error('maxBatchBytes must be below maxMessageBytes');
    this.refusals = new RefusalLog(this.opts.logger);
  }

  async start(handlers: TransportHandlers): Promise<void> {
    if (this.stopped) throw new Error('GrpcTransport: start after stop');
    await mkdir(this.opts.snapshotInboxDir, { recursive: true });
    this.handlers = handlers;
  }

  setPeer(id: NodeId, peerAddress: string): void {
    if (id === this.opts.id || this.stopped) return;
    this.knownPeers.set(id, peerAddress);
    const address = this.opts.dialOverrides.get(id) ?? peerAddress;
    const existing = this.links.get(id);
    if (existing !== undefined) {
      if (existing.address === address) return;
      this.closeLink(existing);
    }
    this.links.set(id, {
      id,
      address,
      client: new Client(address, this.opts.credentials, this.channelOptions()),
      call: undefined,
      openedAtMs: 0,
      queue: [],
      flushScheduled: false,
      gossipVersion: -1,
      waitingDrain: false,
      backoffMs: this.opts.reconnectBackoffMinMs,
      retryTimer: undefined,
      stats: { sentMessages: 0, sentBatches: 0, droppedMessages: 0, streamFailures: 0 },
    });
  }

  private channelOptions(): ChannelOptions {
    return {
      'grpc.max_send_message_length': this.opts.maxMessageBytes,
      'grpc.max_receive_message_length': this.opts.maxMessageBytes,
      'grpc.initial_reconnect_backoff_ms': this.opts.reconnectBackoffMinMs,
      'grpc.max_reconnect_backoff_ms': this.opts.reconnectBackoffMaxMs,
      'grpc.enable_retries': 0,
      'grpc.keepalive_time_ms': this.opts.keepaliveTimeMs,
      'grpc.keepalive_timeout_ms': this.opts.keepaliveTimeoutMs,
      'grpc.keepalive_permit_without_calls': 1,
    };
  }

  removePeer(id: NodeId): void {
    this.knownPeers.delete(id);
    const link = this.links.get(id);
    if (link !== undefined) this.closeLink(link);
    this.links.delete(id);
  }

  /** Counters of the link to `peer` (undefined for an unknown peer). */
  peerStats(peer: NodeId): Readonly<PeerStats> | undefined {
    return this.links.get(peer)?.stats;
  }

  send(messages: readonly Message[]): void {
    if (this.stopped) return;
    for (const m of messages) {
      const link = this.links.get(m.to);
      if (link === undefined) {
        this.unknownPeerDrops.count++;
        continue;
      }
      if (m.type === 'snap') {
        // The node sends snapshots through sendSnapshot(); a bare one here is a driver bug (send never throws).
        link.stats.droppedMessages++;
        this.opts.logger.error({ peer: m.to }, 'GrpcTransport.send: a snap message must go through sendSnapshot(); dropped');
        continue;
      }
      if (link.queue.length >= this.opts.maxQueuedMessages) {
        link.stats.droppedMessages++;
        continue;
      }
      link.queue.push(m);
      this.scheduleFlush(link);
    }
  }

  private scheduleFlush(link: PeerLink): void {
    if (link.flushScheduled || link.retryTimer !== undefined || link.waitingDrain) return;
    link.flushScheduled = true;
    setImmediate(() => {
      link.flushScheduled = false;
      this.flush(link);
    });
  }

  private flush(link: PeerLink): void {
    if (this.stopped || this.links.get(link.id) !== link || link.retryTimer !== undefined) return;
    while (link.queue.length > 0 && !link.waitingDrain) {
      const call = link.call ?? this.openStream(link);
      // Take messages up to maxBatchBytes of payload (always at least one).
      let take = 0;
      let bytes = 0;
      for (const m of link.queue) {
        const size = approxBytes(m);
        if (take > 0 && bytes + size > this.opts.maxBatchBytes) break;
        bytes += size;
        take++;
      }
      const batch = link.queue.splice(0, take);
      const guard = this.handlers?.incarnations;
      const known = guard !== undefined && link.gossipVersion !== guard.version ? guard.gossip() : [];
      if (guard !== undefined) link.gossipVersion = guard.version;
      const ok = call.write({ clusterId: this.opts.clusterId, from: this.opts.id, to: link.id, payload: Buffer.from(encodeMessages(batch)), incarnation: guard?.self ?? '', known });
      link.stats.sentMessages += batch.length;
      link.stats.sentBatches++;
      if (!ok) {
        link.waitingDrain = true;
        call.once('drain', () => {
          link.waitingDrain = false;
          if (link.call === call) this.scheduleFlush(link);
        });
      }
    }
  }

  private openStream(link: PeerLink): ClientWritableStream<WirePeerBatch> {
    const m = PEER_METHODS.stream;
    const call = link.client.makeClientStreamRequest<WirePeerBatch, WireEmpty>(
      m.path,
      m.requestSerialize,
      m.responseDeserialize,
      new Metadata(),
      {},
      (err) => this.onStreamEnd(link, call, err ?? undefined),
    );
    // Errors are reported through the callback above; this listener keeps them from being unhandled.
    call.on('error', () => undefined);
    link.call = call;
    link.gossipVersion = -1; // a new stream (maybe a restarted peer): tell it again
    link.openedAtMs = Date.now();
    link.waitingDrain = false;
    return call;
  }

  private onStreamEnd(link: PeerLink, call: ClientWritableStream<WirePeerBatch>, err: ServiceError | undefined): void {
    if (link.call !== call) return;
    link.call = undefined;
    link.waitingDrain = false;
    if (this.stopped || this.links.get(link.id) !== link) return;
    if (err === undefined) {
      // The receiver ended the stream cleanly (it is stopping): reopen when there is something to send.
      this.scheduleFlush(link);
      return;
    }
    link.stats.streamFailures++;
    link.stats.droppedMessages += link.queue.length;
    link.queue = [];
    if (err.code === GrpcStatus.FAILED_PRECONDITION && err.details.includes(STALE_MARKER)) {
      this.opts.logger.error({ peer: link.id, address: link.address, reason: err.details }, 'a peer refused this member as a stale incarnation');
      this.handlers?.onRefusedAsStale?.(link.id, err.details);
    } else if (err.code === GrpcStatus.FAILED_PRECONDITION || err.code === GrpcStatus.INVALID_ARGUMENT) {
      this.logRefusal(`out:${link.id}:${err.details}`, { peer: link.id, address: link.address, reason: err.details }, 'peer refused our stream');
    } else {
      this.opts.logger.debug({ peer: link.id, address: link.address, code: err.code, reason: err.details }, 'peer stream broke');
    }
    // A stream that lived a while was a working connection: start the backoff over.
    if (Date.now() - link.openedAtMs > 2 * this.opts.reconnectBackoffMaxMs) link.backoffMs = this.opts.reconnectBackoffMinMs;
    const delay = link.backoffMs / 2 + Math.random() * (link.backoffMs / 2);
    link.backoffMs = Math.min(link.backoffMs * 2, this.opts.reconnectBackoffMaxMs);
    link.retryTimer = setTimeout(() => {
      link.retryTimer = undefined;
      if (link.queue.length > 0) this.scheduleFlush(link);
    }, delay);
    this.handlers?.onPeerUnreachable(link.id);
  }

  private closeLink(link: PeerLink): void {
    if (link.retryTimer !== undefined) clearTimeout(link.retryTimer);
    link.retryTimer = undefined;
    const call = link.call;
    link.call = undefined;
    link.queue = [];
    if (call !== undefined) call.end();
    link.client.close();
  }

  private logRefusal(key: string, obj: object, msg: string): void {
    this.refusals.warn(key, obj, msg);
  }

  // ---------------------------------------------------------------- snapshots (sender)

  async sendSnapshot(message: SnapshotMessage, filePath: string): Promise<void> {
    const link = this.links.get(message.to);
    if (link === undefined || this.stopped) throw new Error(`sendSnapshot: unknown peer ${message.to}`);
    const { size } = await stat(filePath);
    // Its own connection (a local subchannel pool), so a large transfer does not hold up the message stream.
    const client = new Client(link.address, this.opts.credentials, {
      ...this.channelOptions(),
      'grpc.use_local_subchannel_pool': 1,
    });
    try {
      await this.streamSnapshot(client, message, filePath, size);
    } finally {
      client.close();
    }
  }

  private async streamSnapshot(client: Client, message: SnapshotMessage, filePath: string, size: number): Promise<void> {
    const m = PEER_METHODS.sendSnapshot;
    let failure: Error | undefined;
    let call: ClientWritableStream<WireSnapshotChunk> | undefined;
    const done = new Promise<void>((resolve, reject) => {
      call = client.makeClientStreamRequest<WireSnapshotChunk, WireSnapshotAck>(
        m.path,
        m.requestSerialize,
        m.responseDeserialize,
        new Metadata(),
        { deadline: Date.now() + this.opts.snapshotTimeoutMs },
        (err, ack) => {
          if (err) {
            failure = new Error(`snapshot to ${message.to} failed: ${err.details || err.message}`);
            reject(failure);
          } else if (ack?.receivedBytes !== size) {
            failure = new Error(`snapshot to ${message.to}: peer acknowledged ${ack?.receivedBytes} of ${size} bytes`);
            reject(failure);
          } else {
            resolve();
          }
        },
      );
    });
    done.catch(() => undefined); // awaited below; this keeps an early failure from being an unhandled rejection
    const stream = call;
    if (stream === undefined) throw new Error('sendSnapshot: no call');
    stream.on('error', () => undefined); // reported through the callback
    const write = async (chunk: WireSnapshotChunk): Promise<void> => {
      if (failure !== undefined) throw failure;
      if (!stream.write(chunk)) {
        await Promise.race([new Promise<void>((resolve) => stream.once('drain', resolve)), done]);
      }
    };
    try {
      await write({ clusterId: this.opts.clusterId, from: this.opts.id, to: message.to, message: encodeMessages([message]), totalBytes: size, incarnation: this.handlers?.incarnations?.self ?? '' });
      const hash = createHash('sha256');
      for await (const chunk of createReadStream(filePath, { highWaterMark: this.opts.snapshotChunkBytes })) {
        const data = chunk as Buffer;
        hash.update(data);
        await write({ data });
      }
      await write({ sha256: hash.digest('hex') });
      stream.end();
    } catch (err) {
      stream.cancel();
      await done.catch(() => undefined); // the call's own failure (if any) is secondary to `err`, rethrown
      throw err;
    }
    await done;
  }

  // ---------------------------------------------------------------- receiving

  /** The Peer service implementation, for `server.addService(PEER_SERVICE, ...)` (src/server/peer-service.ts). */
  peerServiceImplementation(): UntypedServiceImplementation {
    return {
      Stream: (call: ServerReadableStream<WirePeerBatch, WireEmpty>, callback: sendUnaryData<WireEmpty>) => this.onInboundStream(call, callback),
      SendSnapshot: (call: ServerReadableStream<WireSnapshotChunk, WireSnapshotAck>, callback: sendUnaryData<WireSnapshotAck>) => {
        this.receiveSnapshot(call).then(
          (ack) => callback(null, ack),
          (err: unknown) => callback(this.refusalStatus(err, 'snapshot', call.getPeer())),
        );
      },
    };
  }

  /** `remote`: the address the refused call came from (an outsider is known by nothing else). */
  private refusalStatus(err: unknown, what: string, remote: string): { code: GrpcStatus; details: string } {
    if (err instanceof RefusedError) {
      if (err.code === GrpcStatus.UNAVAILABLE) this.opts.logger.debug({ reason: err.message, remote }, `refused peer ${what}`);
      else this.logRefusal(err.logKey, { reason: err.message, remote }, `refused peer ${what}`);
      return { code: err.code, details: err.message };
    }
    if (isRaftKvError(err, 'CLUSTER_MISMATCH')) {
      // A stale incarnation (IncarnationGuard.admit): once per message, which names the peer and both incarnations.
      this.logRefusal(`stale:${err.message}`, { reason: err.message, remote }, `refused peer ${what}`);
      return { code: GrpcStatus.FAILED_PRECONDITION, details: err.message };
    }
    const message = err instanceof Error ? err.message : String(err);
    this.opts.logger.warn({ err }, `peer ${what} failed`);
    return { code: GrpcStatus.UNAVAILABLE, details: message };
  }

  /**
   * With incarnations checked (a real member), a sender must say which data directory it runs on: a stream
   * without one is no member's (every member sends its own), so nothing of it may be stepped.
   */
  private checkIncarnationGiven(from: NodeId, incarnation: string | undefined): void {
    if (this.handlers?.incarnations !== undefined && (incarnation ?? '') === '') {
      throw new RefusedError(GrpcStatus.FAILED_PRECONDITION, `member ${from} sent no incarnation: not a member's stream`, `noinc:${from}`);
    }
  }

  private checkSender(clusterId: string | undefined, from: number | undefined, to: number | undefined): NodeId {
    if (this.handlers === undefined || this.stopped) throw new RefusedError(GrpcStatus.UNAVAILABLE, 'transport not started', 'not-started');
    if (clusterId !== this.opts.clusterId) {
      throw new RefusedError(
        GrpcStatus.FAILED_PRECONDITION,
        `cluster id mismatch: member ${from ?? 0} is in cluster ${JSON.stringify(clusterId ?? '')}, this member ${this.opts.id} is in ${JSON.stringify(this.opts.clusterId)}`,
        `cluster:${from ?? 0}:${clusterId ?? ''}`,
      );
    }
    if (to !== this.opts.id) {
      throw new RefusedError(GrpcStatus.FAILED_PRECONDITION, `message for member ${to ?? 0} reached member ${this.opts.id}`, `to:${from ?? 0}:${to ?? 0}`);
    }
    if (from === undefined || !this.knownPeers.has(from)) {
      throw new RefusedError(GrpcStatus.FAILED_PRECONDITION, `unknown sender ${from ?? 0}: not a member known to ${this.opts.id}`, `unknown:${from ?? 0}`);
    }
    return from;
  }

  private onInboundStream(call: ServerReadableStream<WirePeerBatch, WireEmpty>, callback: sendUnaryData<WireEmpty>): void {
    let finished = false; // the status has been sent; ignore anything after it
    const finish = (err: { code: GrpcStatus; details: string } | null): void => {
      if (finished) return;
      finished = true;
      this.inbound.delete(finish);
      if (err === null) callback(null, {});
      else callback(err);
    };
    this.inbound.add(finish);
    // The sender's incarnation is checked on the stream's first batch (a stream comes from one process); until
    // a first contact is recorded durably, later batches wait, in order.
    let admission: { incarnation: string; waiting: WirePeerBatch[] | undefined } | undefined;
    const deliver = (batch: WirePeerBatch): void => {
      if (finished) return;
      try {
        const from = this.checkSender(batch.clusterId, batch.from, batch.to);
        if ((batch.incarnation ?? '') !== admission?.incarnation) {
          throw new RefusedError(GrpcStatus.INVALID_ARGUMENT, `member ${from} changed incarnation within a stream`, `incchange:${from}`);
        }
        let messages: Message[];
        try {
          messages = decodeMessages(batch.payload);
        } catch (err) {
          if (err instanceof CodecError) throw new RefusedError(GrpcStatus.INVALID_ARGUMENT, `undecodable batch from ${from}: ${err.message}`, `codec:${from}`);
          throw err;
        }
        for (const m of messages) {
          const problem = messageProblem('stream', from, this.opts.id, m);
          if (problem !== undefined) throw new RefusedError(GrpcStatus.INVALID_ARGUMENT, `batch from ${from}: ${problem}`, `policy:${from}:${m.type}`);
        }
        const guard = this.handlers?.incarnations;
        if (guard !== undefined && batch.known !== undefined && batch.known.length > 0) {
          // A leader (it sends appends and heartbeats) that knows this member by another incarnation: this
          // directory replaced the one the cluster knows, without a removal (a leader that applied a removal of
          // this id forgot the old incarnation). Stop before stepping anything of it (its commit index would be
          // beyond this emptied log).
          const mine = batch.known.find((k) => k.id === this.opts.id);
          if (mine !== undefined && mine.incarnation !== guard.self && messages.some((m) => m.type === 'app' || m.type === 'heartbeat')) {
            this.handlers?.onRefusedAsStale?.(
              from,
              `${STALE_MARKER} leader ${from} knows member ${this.opts.id} by incarnation ${mine.incarnation.slice(0, 8)}, this data directory is ${guard.self.slice(0, 8)}`,
            );
            return;
          }
          guard.merge(batch.known);
        }
        if (messages.length > 0) this.handlers?.onMessages(messages);
      } catch (err) {
        finish(this.refusalStatus(err, 'stream', call.getPeer()));
      }
    };
    call.on('data', (batch: WirePeerBatch) => {
      if (finished) return;
      if (admission === undefined) {
        const incarnation = batch.incarnation ?? '';
        admission = { incarnation, waiting: undefined };
        let admitted: void | Promise<void>;
        try {
          const from = this.checkSender(batch.clusterId, batch.from, batch.to);
          this.checkIncarnationGiven(from, incarnation);
          admitted = this.handlers?.incarnations?.admit(from, incarnation);
        } catch (err) {
          finish(this.refusalStatus(err, 'stream', call.getPeer()));
          return;
        }
        if (admitted !== undefined) {
          const waiting: WirePeerBatch[] = [batch];
          admission.waiting = waiting;
          admitted.then(
            () => {
              if (admission !== undefined) admission.waiting = undefined;
              for (const b of waiting) deliver(b);
            },
            (err: unknown) => finish(this.refusalStatus(err, 'stream', call.getPeer())),
          );
          return;
        }
      } else if (admission.waiting !== undefined) {
        admission.waiting.push(batch);
        return;
      }
      deliver(batch);
    });
    call.on('end', () => finish(null));
    call.on('error', (err) => {
      this.opts.logger.debug({ err }, 'inbound peer stream error');
      finished = true;
      this.inbound.delete(finish);
    });
  }

  private async receiveSnapshot(call: ServerReadableStream<WireSnapshotChunk, WireSnapshotAck>): Promise<WireSnapshotAck> {
    let tmpPath: string | undefined;
    let fh: Awaited<ReturnType<typeof open>> | undefined;
    try {
      let message: SnapshotMessage | undefined;
      let totalBytes = 0;
      let received = 0;
      let sha256: string | undefined;
      const hash = createHash('sha256');
      for await (const raw of call) {
        const chunk = raw as WireSnapshotChunk;
        if (message === undefined) {
          const from = this.checkSender(chunk.clusterId, chunk.from, chunk.to);
          this.checkIncarnationGiven(from, chunk.incarnation);
          await this.handlers?.incarnations?.admit(from, chunk.incarnation ?? '');
          let decoded: Message[];
          try {
            decoded = decodeMessages(chunk.message ?? new Uint8Array(0));
          } catch (err) {
            if (err instanceof CodecError) throw new RefusedError(GrpcStatus.INVALID_ARGUMENT, `snapshot from ${from}: ${err.message}`, `snapcodec:${from}`);
            throw err;
          }
          const m = decoded[0];
          const problem = m === undefined ? 'no message' : decoded.length !== 1 ? `${decoded.length} messages` : messageProblem('snapshot', from, this.opts.id, m);
          if (m === undefined || m.type !== 'snap' || problem !== undefined) {
            throw new RefusedError(GrpcStatus.INVALID_ARGUMENT, `snapshot from ${from}: the first chunk must carry one snap message (${problem ?? 'not a snap'})`, `snapfirst:${from}`);
          }
          message = m;
          totalBytes = chunk.totalBytes ?? 0;
          tmpPath = join(this.opts.snapshotInboxDir, `recv-${from}-${m.snapshot.metadata.index}-${randomUUID()}.tmp`);
          fh = await open(tmpPath, 'w');
          continue;
        }
        if (sha256 !== undefined) throw new RefusedError(GrpcStatus.INVALID_ARGUMENT, 'snapshot: data after the checksum chunk', 'snaporder');
        const data = chunk.data;
        if (data !== undefined && data.byteLength > 0) {
          received += data.byteLength;
          if (received > totalBytes) throw new RefusedError(GrpcStatus.DATA_LOSS, `snapshot: more than the announced ${totalBytes} bytes`, 'snapsize');
          hash.update(data);
          if (fh === undefined) throw new Error('snapshot: no temporary file');
          await fh.write(data);
        }
        if (chunk.sha256 !== undefined && chunk.sha256 !== '') sha256 = chunk.sha256;
      }
      if (message === undefined || fh === undefined || tmpPath === undefined) {
        throw new RefusedError(GrpcStatus.INVALID_ARGUMENT, 'snapshot: stream ended before its metadata', 'snapempty');
      }
      if (sha256 === undefined) throw new RefusedError(GrpcStatus.DATA_LOSS, 'snapshot: stream ended without its checksum', 'snapnosum');
      if (received !== totalBytes) throw new RefusedError(GrpcStatus.DATA_LOSS, `snapshot: received ${received} of ${totalBytes} bytes`, 'snapshort');
      const actual = hash.digest('hex');
      if (actual !== sha256) throw new RefusedError(GrpcStatus.DATA_LOSS, `snapshot: checksum mismatch (sent ${sha256}, got ${actual})`, 'snapsum');
      await fh.sync();
      await fh.close();
      fh = undefined;
      const finalPath = tmpPath.replace(/\.tmp$/, '.snap');
      await rename(tmpPath, finalPath);
      tmpPath = undefined;
      const dir = await open(this.opts.snapshotInboxDir, 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
      const handlers = this.handlers;
      if (handlers === undefined) throw new RefusedError(GrpcStatus.UNAVAILABLE, 'transport stopped', 'stopped');
      handlers.onSnapshot(message, finalPath);
      return { receivedBytes: received };
    } finally {
      if (fh !== undefined) await fh.close().catch((err: unknown) => this.opts.logger.warn({ err }, 'closing a snapshot file'));
      if (tmpPath !== undefined) await unlink(tmpPath).catch((err: unknown) => this.opts.logger.debug({ err }, 'removing a partial snapshot'));
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.handlers = undefined;
    // End inbound streams: their senders learn at once that this member is gone (onPeerUnreachable there).
    for (const finish of [...this.inbound]) finish({ code: GrpcStatus.UNAVAILABLE, details: `member ${this.opts.id} is stopping` });
    for (const link of this.links.values()) this.closeLink(link);
    this.links.clear();
    await Promise.resolve();
  }
}

/** Payload bytes a message will take (cheap upper-bound estimate used for batching). */
function approxBytes(m: Message): number {
  switch (m.type) {
    case 'app': {
      let n = 40;
      for (const e of m.entries) n += e.data.byteLength + 24;
      return n;
    }
    case 'app-resp':
    case 'vote':
    case 'pre-vote':
    case 'vote-resp':
    case 'pre-vote-resp':
    case 'timeout-now':
    case 'snap':
      return 64;
    case 'heartbeat':
    case 'heartbeat-resp':
    case 'read-index':
    case 'read-index-resp':
      return 48 + m.context.byteLength;
    default:
      return assertNever(m);
  }
}
