// Everything --listen-metrics turns on, built in one place for serve.ts: the registry and the node's observer
// (prom-metrics.ts), the gRPC interceptor (grpc-metrics.ts), the request recorder (request-recorder.ts), the
// dashboard's cluster view (cluster-view.ts) and the HTTP server (metrics-server.ts). Without the flag there is
// none of it: the node gets no observer (NO_NODE_METRICS) and the gRPC servers no interceptor.
import type { ChannelCredentials, ServerInterceptor } from '@grpc/grpc-js';
import type { pino } from 'pino';
import type { KvNode, NodeStatus } from '../node/api.js';
import type { NodeMetrics } from '../node/node-metrics.js';
import type { LeaseMetrics, WatchMetrics } from '../shared/watch-lease-metrics.js';
import { ClusterView } from './cluster-view.js';
import { GrpcMetrics } from './grpc-metrics.js';
import { startMetricsServer } from './metrics-server.js';
import type { MetricsServer } from './metrics-server.js';
import { PromMetrics } from './prom-metrics.js';
import { RequestRecorder } from './request-recorder.js';

export class Observability {
  readonly metrics: PromMetrics;
  readonly requests = new RequestRecorder();
  readonly interceptors: ServerInterceptor[];
  private readonly cluster: ClusterView;
  private server: MetricsServer | undefined;

  constructor(
    private readonly listen: string,
    private readonly node: KvNode, // the late-bound node: status() throws until the node is up
    private readonly logger: pino.Logger,
    private readonly advertiseHost: string, // the host other members reach this one on (its advertised client host)
    peerCredentials?: ChannelCredentials, // how the cluster view dials other members' client ports (TLS when they have it)
  ) {
    const status = (): NodeStatus | undefined => {
      try {
        return node.status();
      } catch {
        return undefined; // starting
      }
    };
    this.metrics = new PromMetrics({ status });
    this.interceptors = [new GrpcMetrics(this.metrics.registry).interceptor];
    this.cluster = new ClusterView({ node, requests: this.requests, metricsUrl: () => this.url, ...(peerCredentials !== undefined ? { credentials: peerCredentials } : {}) });
    this.metrics.onLeaderChangeListener((leader, term) => this.cluster.onLeaderChange(leader, term));
  }

  /** The node's observer. */
  get nodeMetrics(): NodeMetrics {
    return this.metrics;
  }

  /** The hooks the watch and lease code reports through. */
  get watchMetrics(): WatchMetrics {
    return this.metrics;
  }
  get leaseMetrics(): LeaseMetrics {
    return this.metrics;
  }

  /**
   * The URL other members and browsers reach the metrics server on: the bound one, with a wildcard host
   * (0.0.0.0, ::) replaced by the advertised client host. "" before start().
   */
  get url(): string {
    if (this.server === undefined) return '';
    const u = new URL(this.server.url);
    if (u.hostname === '0.0.0.0' || u.hostname === '[::]') u.hostname = this.advertiseHost;
    return `http://${u.host}`;
  }

  async start(): Promise<void> {
    this.server = await startMetricsServer({ listen: this.listen, node: this.node, registry: this.metrics.registry, cluster: this.cluster, logger: this.logger });
  }

  async stop(): Promise<void> {
    this.cluster.close();
    await this.server?.close();
  }
}
