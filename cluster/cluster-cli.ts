// `npm run cluster -- <command>`: local clusters of background `raftkv serve` processes.
//   up [--nodes 3|5] [--dir D] [--tls]   start a cluster (data and logs under D, default .cluster/), print endpoints;
//                                --tls: a local CA and certificates under D/tls (openssl, tls-certs.ts), TLS with
//                                client-certificate authentication on every client and peer port
//   status                       one line per member: pid, role, term, leader, commit, applied
//   kill ID | stop ID | start ID | pause ID | resume ID
//   down [--wipe]                stop every member (and delete the folder with --wipe)
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { CLI_BASE_METRICS_PORT, LocalCluster } from './local-cluster.js';
import { makeClusterCertificates } from './tls-certs.js';
import { quietIpServernameWarning } from '../src/cli/quiet-warnings.js';
import { REPO_ROOT } from './serve-process.js';
import { clusterStatus, waitForLeader } from './wait.js';

const USAGE = `usage: npm run cluster -- <up [--nodes 3|5] [--tls] | status | kill ID | stop ID | start ID | pause ID | resume ID | down [--wipe]> [--dir DIR]`;

export async function clusterMain(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: {
      nodes: { type: 'string', default: '3' },
      dir: { type: 'string', default: join(REPO_ROOT, '.cluster') },
      wipe: { type: 'boolean', default: false },
      tls: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const [command, arg] = positionals;
  if (values.help || command === undefined) {
    console.log(USAGE);
    return command === undefined && !values.help ? 2 : 0;
  }
  const dir = values.dir;
  const memberId = (): number => {
    const id = Number(arg);
    if (!Number.isInteger(id) || id < 1) throw new UsageError(`${command} needs a member id (a positive integer), got ${arg ?? 'nothing'}`);
    return id;
  };
  switch (command) {
    case 'up': {
      const nodes = Number(values.nodes);
      if (nodes !== 3 && nodes !== 5) throw new UsageError(`--nodes must be 3 or 5, got ${values.nodes}`);
      let cluster: LocalCluster;
      try {
        cluster = LocalCluster.load(dir);
        if (cluster.ids().some((id) => cluster.isRunning(id))) {
          console.log(`a cluster is already running in ${dir}:`);
          await printStatus(cluster);
          return 0;
        }
        if (values.tls && cluster.options.tlsDir === undefined) throw new UsageError(`the cluster in ${dir} was made without TLS: \`down --wipe\` it first`);
        // A folder from before members had metrics ports: its members get them now (the data stays).
        if (cluster.options.baseMetricsPort === undefined) cluster = new LocalCluster({ ...cluster.options, baseMetricsPort: CLI_BASE_METRICS_PORT });
      } catch (err) {
        if (err instanceof UsageError) throw err;
        const tlsDir = values.tls ? makeClusterCertificates(join(dir, 'tls'), Array.from({ length: nodes }, (_, i) => i + 1)).dir : undefined;
        cluster = new LocalCluster({ nodes, dir, detached: true, baseMetricsPort: CLI_BASE_METRICS_PORT, ...(tlsDir !== undefined ? { tlsDir } : {}) });
      }
      cluster.up();
      console.log(`starting ${cluster.options.nodes} members in ${dir} (logs: ${dir}/n<ID>/raftkv.log)`);
      const leader = await waitForLeader(cluster.endpoints(), 30_000, { tls: cluster.dialTls() });
      console.log(`leader: member ${leader}`);
      console.log(`endpoints: ${cluster.endpoints().join(',')}`);
      const dashboards = cluster.ids().map((id) => cluster.metricsUrl(id)).filter((u) => u !== undefined);
      if (dashboards.length > 0) {
        console.log(`dashboard: ${dashboards[0]}/  (every member serves it: ${dashboards.join(' ')}; metrics at <url>/metrics, health at <url>/health)`);
      }
      const tls = cluster.dialTls();
      if (tls === undefined) {
        console.log(`try: npx raftkv put hello world && npx raftkv get hello && npx raftkv status`);
      } else {
        const flags = `--cacert ${tls.caFile} --cert ${tls.certFile} --key ${tls.keyFile}`;
        console.log(`TLS with client certificates on every port (CA and certificates in ${cluster.options.tlsDir ?? ''})`);
        console.log(`try: npx raftkv ${flags} put hello world`);
        console.log(`     ETCDCTL_API=3 etcdctl --endpoints ${cluster.endpoints().join(',')} ${flags} get hello`);
      }
      return 0;
    }
    case 'status':
      await printStatus(LocalCluster.load(dir));
      return 0;
    case 'kill':
      LocalCluster.load(dir).kill(memberId());
      console.log(`member ${arg} killed (SIGKILL)`);
      return 0;
    case 'stop':
      await LocalCluster.load(dir).stop(memberId());
      console.log(`member ${arg} stopped (SIGTERM)`);
      return 0;
    case 'start': {
      const cluster = LocalCluster.load(dir);
      const id = memberId();
      const pid = cluster.start(id, { state: id > cluster.options.nodes ? 'existing' : 'new' });
      console.log(`member ${id} started (pid ${pid})`);
      return 0;
    }
    case 'pause':
      LocalCluster.load(dir).pause(memberId());
      console.log(`member ${arg} paused (SIGSTOP)`);
      return 0;
    case 'resume':
      LocalCluster.load(dir).resume(memberId());
      console.log(`member ${arg} resumed (SIGCONT)`);
      return 0;
    case 'down': {
      let cluster: LocalCluster;
      try {
        cluster = LocalCluster.load(dir);
      } catch {
        console.log(`no cluster in ${dir}`);
        return 0;
      }
      await cluster.down({ wipe: values.wipe, graceful: false });
      console.log(values.wipe ? `cluster stopped, ${dir} deleted` : `cluster stopped (data kept in ${dir}; --wipe deletes it)`);
      return 0;
    }
    default:
      throw new UsageError(`unknown command "${command}"\n${USAGE}`);
  }
}

class UsageError extends Error {}

async function printStatus(cluster: LocalCluster): Promise<void> {
  const rows = await clusterStatus(cluster.endpoints(), 1000, cluster.dialTls());
  const header = ['id', 'pid', 'address', 'role', 'term', 'leader', 'commit', 'applied'];
  const table = cluster.ids().map((id, i) => {
    const s = rows[i];
    const pid = cluster.isRunning(id) ? String(cluster.pid(id)) : 'down';
    if (s === undefined || s instanceof Error) return [String(id), pid, cluster.clientAddress(id), s instanceof Error ? 'unreachable' : '-', '', '', '', ''];
    return [String(id), pid, cluster.clientAddress(id), s.role, String(s.term), String(s.leaderId), String(s.commitIndex), String(s.appliedIndex)];
  });
  const widths = header.map((h, c) => Math.max(h.length, ...table.map((r) => (r[c] ?? '').length)));
  for (const row of [header, ...table]) console.log(row.map((cell, c) => cell.padEnd(widths[c] ?? 0)).join('  '));
}

quietIpServernameWarning();
clusterMain(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`cluster: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(err instanceof UsageError ? 2 : 1);
  },
);
