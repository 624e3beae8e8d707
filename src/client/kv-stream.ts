// The KV Stream method, client side: one long-lived bidirectional stream per endpoint carries every KV call
// the client makes to that member, each with an id; answers come back by id, in any order.
//
// A unary gRPC call costs grpc-js about 0.2 ms of CPU on each side (an HTTP/2 stream, headers, trailers); a
// call on the stream costs a few microseconds, and the calls made in one event-loop turn travel in one message.
// Semantics are those of the unary calls: the same handlers, errors (as the same ServiceError, so the client's
// retry and redirect logic is shared) and deadlines (each call's timer here; the server bounds it too).
// When the stream breaks, every call on it fails UNAVAILABLE (the client retries as for a refused connection)
// and the next call opens a new stream.
import type { Client, ClientDuplexStream } from '@grpc/grpc-js';
import { Metadata, status as GrpcStatus } from '@grpc/grpc-js';
import type { ServiceError } from '@grpc/grpc-js';
import { KV_METHODS, requestBytes } from '../protocol/proto.js';
import type {
  WireDeleteRequest,
  WireDeleteResponse,
  WireGetRequest,
  WireGetResponse,
  WirePutRequest,
  WirePutResponse,
  WireRangeRequest,
  WireRangeResponse,
  WireStreamAnswer,
  WireStreamAnswers,
  WireStreamCall,
  WireStreamCalls,
  WireTxnRequest,
  WireTxnResponse,
} from '../protocol/proto.js';
import { serviceErrorOf } from '../protocol/wire-errors.js';

/** Calls per StreamCalls message. */
export const STREAM_MAX_CALLS_PER_MESSAGE = 1024;
/** Estimated payload bytes per StreamCalls message (far below any server's receive limit). */
export const STREAM_MAX_MESSAGE_BYTES = 1024 * 1024;
/** A call whose keys and values add up to more goes as a unary call instead (it would crowd a message). */
export const STREAM_MAX_CALL_BYTES = 256 * 1024;

/** What each kind of call sends and gets back. */
export interface StreamKinds {
  put: [WirePutRequest, WirePutResponse];
  get: [WireGetRequest, WireGetResponse];
  range: [WireRangeRequest, WireRangeResponse];
  delete: [WireDeleteRequest, WireDeleteResponse];
  txn: [WireTxnRequest, WireTxnResponse];
}
export type StreamKind = keyof StreamKinds;

interface PendingCall {
  readonly resolve: (answer: WireStreamAnswer) => void;
  readonly reject: (err: ServiceError) => void;
  readonly cancelTimer: () => void;
}

function grpcError(code: GrpcStatus, details: string): ServiceError {
  return Object.assign(new Error(`${code} ${GrpcStatus[code]}: ${details}`), { code, details, metadata: new Metadata() });
}

function callOf(id: number, timeoutMs: number, kind: StreamKind, req: StreamKinds[StreamKind][0]): WireStreamCall {
  return { id, timeoutMs, request: kind, [kind]: req };
}

/** The KV calls to one endpoint, over one stream at a time. */
export class KvStreamChannel {
  private stream: ClientDuplexStream<WireStreamCalls, WireStreamAnswers> | undefined; // the open stream, if any
  private readonly pending = new Map<number, PendingCall>(); // sent or queued calls awaiting their answer, by id
  private queue: WireStreamCall[] = []; // calls not yet written (flushed once per event-loop turn)
  private queueBytes = 0; // estimated payload bytes in queue
  private flushScheduled = false;
  private nextId = 0; // ids are unique per channel (a stream's calls are a subset)
  private closed = false;

  constructor(
    private readonly client: Client,
    private readonly endpoint: string,
  ) {}

  get inflight(): number {
    return this.pending.size;
  }

  call<K extends StreamKind>(kind: K, req: StreamKinds[K][0], deadlineMs: number): Promise<StreamKinds[K][1]> {
    return new Promise<StreamKinds[K][1]>((resolve, reject) => {
      if (this.closed) {
        reject(grpcError(GrpcStatus.UNAVAILABLE, `${this.endpoint}: client closed`));
        return;
      }
      const id = ++this.nextId;
      const timeoutMs = Math.max(1, Math.ceil(deadlineMs - Date.now()));
      const timer = setTimeout(() => {
        if (this.pending.delete(id)) reject(grpcError(GrpcStatus.DEADLINE_EXCEEDED, `${this.endpoint}: deadline exceeded after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        cancelTimer: () => clearTimeout(timer),
        reject,
        resolve: (a) => {
          if (a.response === 'error') {
            reject(serviceErrorOf(a.error ?? { code: GrpcStatus.INTERNAL, details: 'error answer without a status', metadata: {} }));
            return;
          }
          const res = a.response === kind ? a[kind] : undefined;
          if (res === undefined || res === null) {
            reject(grpcError(GrpcStatus.INTERNAL, `${this.endpoint}: answer to a ${kind} call carries ${a.response ?? 'nothing'}`));
            return;
          }
          resolve(res);
        },
      });
      this.queue.push(callOf(id, timeoutMs, kind, req));
      this.queueBytes += requestBytes(req) + 16;
      if (this.queue.length >= STREAM_MAX_CALLS_PER_MESSAGE || this.queueBytes >= STREAM_MAX_MESSAGE_BYTES) this.flush();
      else if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  close(): void {
    this.closed = true;
    this.queue = [];
    this.stream?.end();
    this.failAll(this.stream, `${this.endpoint}: client closed`);
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.queue.length === 0 || this.closed) return;
    const calls = this.queue;
    this.queue = [];
    this.queueBytes = 0;
    const stream = this.stream ?? this.open();
    for (let i = 0; i < calls.length; i += STREAM_MAX_CALLS_PER_MESSAGE) {
      stream.write({ calls: calls.slice(i, i + STREAM_MAX_CALLS_PER_MESSAGE) });
    }
  }

  private open(): ClientDuplexStream<WireStreamCalls, WireStreamAnswers> {
    const m = KV_METHODS.stream;
    const stream = this.client.makeBidiStreamRequest<WireStreamCalls, WireStreamAnswers>(m.path, m.requestSerialize, m.responseDeserialize, new Metadata(), {});
    this.stream = stream;
    stream.on('data', (msg: WireStreamAnswers) => {
      for (const a of msg.answers) {
        const p = this.pending.get(a.id);
        if (p === undefined) continue; // timed out here already
        this.pending.delete(a.id);
        p.cancelTimer();
        p.resolve(a);
      }
    });
    stream.on('error', (err: ServiceError) => this.failAll(stream, `${this.endpoint}: stream failed: ${err.details || err.message}`, err.code));
    stream.on('end', () => this.failAll(stream, `${this.endpoint}: stream ended by the server`));
    return stream;
  }

  /** The stream is gone: every call written to it (all pending ones not queued) fails UNAVAILABLE. */
  private failAll(stream: ClientDuplexStream<WireStreamCalls, WireStreamAnswers> | undefined, why: string, code?: GrpcStatus): void {
    if (stream !== undefined && this.stream !== stream) return;
    this.stream = undefined;
    const queued = new Set(this.queue.map((c) => c.id));
    // A status the server chose (e.g. UNIMPLEMENTED) is kept; transport failures read as UNAVAILABLE.
    const status = code === GrpcStatus.UNIMPLEMENTED ? code : GrpcStatus.UNAVAILABLE;
    for (const [id, p] of this.pending) {
      if (queued.has(id)) continue;
      this.pending.delete(id);
      p.cancelTimer();
      p.reject(grpcError(status, why));
    }
  }
}
