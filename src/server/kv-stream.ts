// The KV Stream method, server side: many calls multiplexed on one long-lived bidirectional stream.
//
// Each StreamCall runs exactly as its unary twin would (same handler, same size check, same deadline rule,
// same error status), and its answer is sent back with the call's id, in completion order. Answers finished in
// the same event-loop turn go out in one StreamAnswers message. A stream holds at most
// STREAM_MAX_INFLIGHT_CALLS unanswered calls: a call beyond that is answered RESOURCE_EXHAUSTED at once (the
// client backs off and retries), so a client that never reads its answers cannot make the server buffer
// without bound. When the client half-closes, the server ends the stream once every call is answered.
import type { ServerDuplexStream } from '@grpc/grpc-js';
import type { pino } from 'pino';
import { RaftKvError } from '../shared/errors.js';
import type { WireStreamAnswer, WireStreamAnswers, WireStreamCall, WireStreamCalls } from '../protocol/proto.js';
import { toStreamError } from '../protocol/wire-errors.js';
import type { CallerContext } from './auth-gate.js';
import type { KvHandlers } from './kv-service.js';

/** Unanswered calls one stream may hold; more are refused with RESOURCE_EXHAUSTED. */
export const STREAM_MAX_INFLIGHT_CALLS = 4096;
/** Answers per StreamAnswers message. */
export const STREAM_MAX_ANSWERS_PER_MESSAGE = 1024;

export interface KvStreamOptions {
  readonly defaultTimeoutMs: number; // a call with timeout_ms 0
  readonly logger: pino.Logger;
  readonly checkSize: (name: string, request: unknown) => void; // throws INVALID_ARGUMENT over --max-request-bytes
}

function runCall(c: WireStreamCall, h: KvHandlers, opts: KvStreamOptions, caller: CallerContext): Promise<WireStreamAnswer> {
  const timeoutMs = c.timeoutMs ?? 0;
  const deadlineMs = Date.now() + (timeoutMs > 0 ? timeoutMs : opts.defaultTimeoutMs);
  const id = c.id;
  const checked = <T>(name: string, req: T | null | undefined): T => {
    if (req === null || req === undefined) throw new RaftKvError('INVALID_ARGUMENT', `stream call ${id}: ${name} without its request`);
    opts.checkSize(name, req);
    return req;
  };
  switch (c.request) {
    case 'put':
      return h.put(checked('Put', c.put), deadlineMs, caller).then((put) => ({ id, response: 'put', put }));
    case 'get':
      return h.get(checked('Get', c.get), deadlineMs, caller).then((get) => ({ id, response: 'get', get }));
    case 'range':
      return h.range(checked('Range', c.range), deadlineMs, caller).then((range) => ({ id, response: 'range', range }));
    case 'delete':
      return h.delete(checked('Delete', c.delete), deadlineMs, caller).then((del) => ({ id, response: 'delete', delete: del }));
    case 'txn':
      return h.txn(checked('Txn', c.txn), deadlineMs, caller).then((txn) => ({ id, response: 'txn', txn }));
    case undefined:
      throw new RaftKvError('INVALID_ARGUMENT', `stream call ${id}: no request set`);
    default: {
      const never: never = c.request;
      throw new RaftKvError('INVALID_ARGUMENT', `stream call ${id}: unknown request ${String(never)}`);
    }
  }
}

export function serveKvStream(call: ServerDuplexStream<WireStreamCalls, WireStreamAnswers>, h: KvHandlers, opts: KvStreamOptions): void {
  let inflight = 0; // calls received and not yet answered (<= STREAM_MAX_INFLIGHT_CALLS)
  const out: WireStreamAnswer[] = []; // answers waiting for the next flush
  let flushScheduled = false;
  let halfClosed = false; // the client sent its last call
  let done = false; // the stream ended or failed: answers are dropped

  const maybeEnd = (): void => {
    if (halfClosed && inflight === 0 && out.length === 0 && !done) {
      done = true;
      call.end();
    }
  };
  const flush = (): void => {
    flushScheduled = false;
    if (done) return;
    while (out.length > 0) {
      const answers = out.splice(0, STREAM_MAX_ANSWERS_PER_MESSAGE);
      call.write({ answers });
    }
    maybeEnd();
  };
  const answer = (a: WireStreamAnswer): void => {
    if (done) return;
    out.push(a);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flush);
    }
  };
  const fail = (id: number, err: unknown, method: string): void => {
    if (!(err instanceof RaftKvError)) opts.logger.error({ err, method }, 'internal error in handler');
    answer({ id, response: 'error', error: toStreamError(err) });
  };

  call.on('data', (msg: WireStreamCalls) => {
    for (const c of msg.calls) {
      if (inflight >= STREAM_MAX_INFLIGHT_CALLS) {
        fail(c.id, new RaftKvError('RESOURCE_EXHAUSTED', `more than ${STREAM_MAX_INFLIGHT_CALLS} calls in flight on one stream`), 'Stream');
        continue;
      }
      inflight++;
      let running: Promise<WireStreamAnswer>;
      try {
        running = runCall(c, h, opts, call);
      } catch (err) {
        running = Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
      // Never rejects unless answer/fail throw, which is a bug: the unhandled rejection then ends the process.
      void running
        .then(answer, (err: unknown) => fail(c.id, err, `Stream/${c.request ?? 'none'}`))
        .finally(() => {
          inflight--;
          maybeEnd();
        });
    }
  });
  call.on('end', () => {
    halfClosed = true;
    maybeEnd();
  });
  // A reset or cancelled stream: drop what is left (the client fails its pending calls itself).
  call.on('error', () => {
    done = true;
  });
  call.on('cancelled', () => {
    done = true;
  });
}
