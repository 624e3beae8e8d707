// The --listen-metrics HTTP server (node:http), etcd's metrics port and more:
//   GET /metrics          Prometheus text (prom-metrics.ts, grpc-metrics.ts)
//   GET /health           etcd's health JSON; /livez, /readyz for Kubernetes probes (health.ts)
//   GET /cluster          the whole cluster as this member sees it, for the dashboard (cluster-view.ts)
//   GET /member           this member's request figures (the other members' /cluster reads them)
//   GET / or /dashboard   the live dashboard: dashboard/ at the repository root (static HTML, JS and CSS, no
//                         build step), and uPlot from node_modules under /vendor/
// Read-only: anything but GET and HEAD is 405. /cluster and /member allow any origin, so a dashboard loaded
// from one member can poll another when its own goes down.
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { pino } from 'pino';
import type { Registry } from 'prom-client';
import type { KvNode } from '../node/api.js';
import { RaftKvError } from '../shared/errors.js';
import type { ClusterView } from './cluster-view.js';
import { Readiness, health, livez } from './health.js';
import type { HealthAnswer } from './health.js';

/** The dashboard/ folder at the repository root: the same from src/server/ (tests) and dist/src/server/. */
export function findDashboardDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  let dir = here;
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'dashboard');
    if (existsSync(join(candidate, 'index.html'))) return candidate;
    dir = dirname(dir);
  }
  throw new Error(`dashboard/index.html not found above ${here}`);
}

const require = createRequire(import.meta.url);

/** The static files, by URL path: the page's own and uPlot's (a dependency, resolved through node_modules). */
function staticFiles(): ReadonlyMap<string, { path: string; type: string }> {
  const dashboard = findDashboardDir();
  const uplot = dirname(require.resolve('uplot/package.json'));
  const page = { path: join(dashboard, 'index.html'), type: 'text/html; charset=utf-8' };
  return new Map([
    ['/', page],
    ['/dashboard', page],
    ['/dashboard/', page],
    ['/dashboard/dashboard.js', { path: join(dashboard, 'dashboard.js'), type: 'text/javascript; charset=utf-8' }],
    ['/dashboard/dashboard.css', { path: join(dashboard, 'dashboard.css'), type: 'text/css; charset=utf-8' }],
    ['/vendor/uPlot.iife.min.js', { path: join(uplot, 'dist', 'uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' }],
    ['/vendor/uPlot.min.css', { path: join(uplot, 'dist', 'uPlot.min.css'), type: 'text/css; charset=utf-8' }],
  ]);
}

export interface MetricsServerOptions {
  readonly listen: string; // http://host:port (serve-config.ts's parseMetricsUrl); port 0 picks one
  readonly node: KvNode;
  readonly registry: Registry;
  readonly cluster: ClusterView;
  readonly logger: pino.Logger;
}

export interface MetricsServer {
  readonly url: string; // http://host:port as bound (the real port when listening on 0)
  close(): Promise<void>;
}

export async function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer> {
  const files = staticFiles();
  const readiness = new Readiness();
  const send = (res: ServerResponse, status: number, type: string, body: string | Buffer, cors = false): void => {
    res.writeHead(status, {
      'content-type': type,
      'cache-control': 'no-store',
      ...(cors ? { 'access-control-allow-origin': '*' } : {}),
    });
    res.end(res.req.method === 'HEAD' ? undefined : body);
  };
  const sendProbe = (res: ServerResponse, a: HealthAnswer): void => send(res, a.status, a.contentType, a.body);
  const json = (res: ServerResponse, value: unknown): void => send(res, 200, 'application/json', JSON.stringify(value), true);

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      send(res, 405, 'text/plain', 'method not allowed\n');
      return;
    }
    const url = new URL(req.url ?? '/', 'http://metrics');
    const verbose = url.searchParams.has('verbose');
    switch (url.pathname) {
      case '/metrics':
        send(res, 200, opts.registry.contentType, await opts.registry.metrics());
        return;
      case '/health':
        sendProbe(res, await health(opts.node));
        return;
      case '/livez':
        sendProbe(res, await livez(opts.node, verbose));
        return;
      case '/readyz':
        sendProbe(res, readiness.check(opts.node, verbose));
        return;
      case '/cluster':
        json(res, await opts.cluster.snapshot());
        return;
      case '/member':
        json(res, opts.cluster.self());
        return;
      default: {
        const file = files.get(url.pathname);
        if (file === undefined) {
          send(res, 404, 'text/plain', `not found: ${url.pathname} (try /metrics, /health, /livez, /readyz, /cluster, /)\n`);
          return;
        }
        send(res, 200, file.type, await readFile(file.path));
      }
    }
  };

  const server = createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      opts.logger.warn({ err, url: req.url }, 'metrics server: request failed');
      if (!res.headersSent) send(res, 500, 'text/plain', `${err instanceof Error ? err.message : String(err)}\n`);
      else res.destroy();
    });
  });
  const listen = new URL(opts.listen);
  const host = listen.hostname.replace(/^\[(.*)\]$/, '$1');
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new RaftKvError('UNAVAILABLE', `cannot listen on ${opts.listen} (--listen-metrics): ${err.message}`)));
    server.listen(Number(listen.port || '80'), host, () => resolve());
  });
  const address = server.address();
  const port = address !== null && typeof address === 'object' ? address.port : Number(listen.port);
  const url = `http://${listen.hostname}:${port}`;
  opts.logger.info({ url }, 'serving metrics, health and the dashboard');
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
