// go-grpc-prometheus's server metrics, which etcd exposes, for every gRPC service on the client port: one
// server interceptor (grpc-js ServerOptions.interceptors) sees every call of every service and type:
//   grpc_server_started_total{grpc_type,grpc_service,grpc_method}           a call arrived
//   grpc_server_handled_total{grpc_type,grpc_service,grpc_method,grpc_code} it ended with this status
//   grpc_server_handling_seconds{grpc_type,grpc_service,grpc_method}       (etcd's --metrics=extensive)
//   grpc_server_msg_received_total / grpc_server_msg_sent_total            stream messages
// A call the client cancels before the server sent its status is handled with code Canceled.
import { ServerInterceptingCall, status as GrpcStatus } from '@grpc/grpc-js';
import type { ServerInterceptor } from '@grpc/grpc-js';
import { Counter, Histogram } from 'prom-client';
import type { Registry } from 'prom-client';

type GrpcType = 'unary' | 'client_stream' | 'server_stream' | 'bidi_stream';

/** `/etcdserverpb.KV/Range` -> ['etcdserverpb.KV', 'Range']. */
export function splitMethodPath(path: string): { service: string; method: string } {
  const m = /^\/([^/]+)\/([^/]+)$/.exec(path);
  return m === null ? { service: 'unknown', method: path } : { service: m[1] ?? 'unknown', method: m[2] ?? path };
}

/** grpc-go's code names (codes.Code.String()), the values of grpc_code. */
export function grpcCodeName(code: number): string {
  const name = GrpcStatus[code];
  if (name === undefined) return `Code(${code})`;
  // OK -> OK, DEADLINE_EXCEEDED -> DeadlineExceeded, CANCELLED -> Canceled (grpc-go's spelling)
  if (name === 'OK') return 'OK';
  if (name === 'CANCELLED') return 'Canceled';
  return name.toLowerCase().replace(/(^|_)([a-z])/g, (_, _u: string, c: string) => c.toUpperCase());
}

export class GrpcMetrics {
  private readonly started: Counter<'grpc_type' | 'grpc_service' | 'grpc_method'>;
  private readonly handled: Counter<'grpc_type' | 'grpc_service' | 'grpc_method' | 'grpc_code'>;
  private readonly handling: Histogram<'grpc_type' | 'grpc_service' | 'grpc_method'>;
  private readonly received: Counter<'grpc_type' | 'grpc_service' | 'grpc_method'>;
  private readonly sent: Counter<'grpc_type' | 'grpc_service' | 'grpc_method'>;

  constructor(registry: Registry) {
    const labels = ['grpc_type', 'grpc_service', 'grpc_method'] as const;
    this.started = new Counter({ name: 'grpc_server_started_total', help: 'Total number of RPCs started on the server.', labelNames: labels, registers: [registry] });
    this.handled = new Counter({
      name: 'grpc_server_handled_total',
      help: 'Total number of RPCs completed on the server, regardless of success or failure.',
      labelNames: [...labels, 'grpc_code'],
      registers: [registry],
    });
    // go-grpc-prometheus's default buckets (prometheus.DefBuckets).
    this.handling = new Histogram({
      name: 'grpc_server_handling_seconds',
      help: 'Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.',
      labelNames: labels,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    });
    this.received = new Counter({ name: 'grpc_server_msg_received_total', help: 'Total number of RPC stream messages received on the server.', labelNames: labels, registers: [registry] });
    this.sent = new Counter({ name: 'grpc_server_msg_sent_total', help: 'Total number of gRPC stream messages sent by the server.', labelNames: labels, registers: [registry] });
  }

  /** The interceptor for ServerOptions.interceptors. */
  readonly interceptor: ServerInterceptor = (methodDescriptor, call) => {
    const { service, method } = splitMethodPath(methodDescriptor.path);
    const type: GrpcType = methodDescriptor.requestStream
      ? methodDescriptor.responseStream
        ? 'bidi_stream'
        : 'client_stream'
      : methodDescriptor.responseStream
        ? 'server_stream'
        : 'unary';
    const labels = { grpc_type: type, grpc_service: service, grpc_method: method };
    const startedMs = performance.now();
    let done = false;
    const finish = (code: number): void => {
      if (done) return;
      done = true;
      this.handled.inc({ ...labels, grpc_code: grpcCodeName(code) });
      this.handling.observe(labels, (performance.now() - startedMs) / 1000);
    };
    this.started.inc(labels);
    return new ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMessage: (message, nextMessage) => {
            this.received.inc(labels);
            nextMessage(message);
          },
          onCancel: () => finish(GrpcStatus.CANCELLED),
        });
      },
      sendMessage: (message, next) => {
        this.sent.inc(labels);
        next(message);
      },
      sendStatus: (st, next) => {
        finish(st.code ?? GrpcStatus.UNKNOWN);
        next(st);
      },
    });
  };
}
