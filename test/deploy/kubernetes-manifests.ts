// Static checks of deploy/kubernetes/ (no Kubernetes runs on the project's machines): the objects a
// kustomization lists, each validated against Kubernetes' own schemas (kubernetes-models), and the references
// between them that no schema sees: selectors against pod labels, the headless Service against serviceName,
// ports in the member flags against container ports, Services and probes, and every member's command line
// through `raftkv serve`'s real parser, as the pod would run it (Kubernetes' $(VAR) expansion, then the shell
// the container command starts, with a stand-in `node` that prints what it was given).
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseAllDocuments, parse } from 'yaml';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import type { IStatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { Service } from 'kubernetes-models/v1/Service';
import type { IService } from 'kubernetes-models/v1/Service';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import type { IContainer } from 'kubernetes-models/v1/Container';
import { parseServeArgs } from '../../src/cli/serve-config.js';
import type { ServeConfig } from '../../src/cli/serve-config.js';

export interface Manifests {
  statefulSet: IStatefulSet;
  services: IService[];
  podDisruptionBudget: IPodDisruptionBudget;
}

/** What the checks need to know from outside the manifests. */
export interface CheckContext {
  readonly namespace: string; // the pods' metadata.namespace
  readonly entrypoint: string; // the script the image runs (the Dockerfile's ENTRYPOINT after `node`)
  readonly image: string; // the image docker-compose.yml builds
  readonly exposedPorts: readonly number[]; // the Dockerfile's EXPOSE
  readonly volume: string; // the Dockerfile's VOLUME
  /** Secret key -> a real PEM file here: a file flag under a Secret's mount path is read from it. */
  readonly secretFiles?: ReadonlyMap<string, string>;
}

export class ManifestError extends Error {}

function check(ok: boolean, message: string): asserts ok {
  if (!ok) throw new ManifestError(message);
}

/** The objects one kustomization lists (its resources, a base folder's too, then its JSON 6902 `add` patches). */
export function loadKustomization(dir: string): unknown[] {
  const k = parse(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as { resources?: string[]; patches?: { path: string; target: { kind: string; name: string } }[] };
  const objects: unknown[] = [];
  for (const r of k.resources ?? []) {
    if (r.endsWith('.yaml')) {
      for (const doc of parseAllDocuments(readFileSync(join(dir, r), 'utf8'))) {
        if (doc.errors.length > 0) throw new ManifestError(`${r}: ${doc.errors[0]?.message ?? ''}`);
        objects.push(doc.toJS() as unknown);
      }
    } else {
      objects.push(...loadKustomization(join(dir, r)));
    }
  }
  for (const p of k.patches ?? []) {
    const ops = parse(readFileSync(join(dir, p.path), 'utf8')) as { op: string; path: string; value: unknown }[];
    const target = objects.find((o) => (o as { kind?: string }).kind === p.target.kind && (o as { metadata?: { name?: string } }).metadata?.name === p.target.name);
    check(target !== undefined, `${p.path}: no ${p.target.kind} ${p.target.name} to patch`);
    for (const op of ops) applyAdd(target, op, p.path);
  }
  return objects;
}

/** A JSON 6902 `add` (the only operation the patches here use; anything else is refused, not guessed at). */
function applyAdd(target: unknown, op: { op: string; path: string; value: unknown }, file: string): void {
  check(op.op === 'add', `${file}: operation ${op.op} (only add is checked here)`);
  const parts = op.path.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  const last = parts.pop();
  check(last !== undefined, `${file}: empty path`);
  let at: unknown = target;
  for (const part of parts) {
    at = Array.isArray(at) ? at[Number(part)] : (at as Record<string, unknown> | undefined)?.[part];
    check(at !== undefined && at !== null, `${file}: ${op.path} does not exist`);
  }
  if (Array.isArray(at)) {
    if (last === '-') at.push(op.value);
    else at.splice(Number(last), 0, op.value);
  } else {
    (at as Record<string, unknown>)[last] = op.value;
  }
}

/** Every object validated against its Kubernetes schema, sorted by kind (exactly one StatefulSet and one PDB). */
export function validate(objects: readonly unknown[]): Manifests {
  const services: IService[] = [];
  const sets: IStatefulSet[] = [];
  const pdbs: IPodDisruptionBudget[] = [];
  for (const o of objects) {
    const { apiVersion, kind } = o as { apiVersion?: string; kind?: string };
    const at = `${apiVersion ?? '?'} ${kind ?? '?'}`;
    try {
      switch (`${apiVersion ?? ''}/${kind ?? ''}`) {
        case 'apps/v1/StatefulSet':
          new StatefulSet(o as IStatefulSet).validate();
          sets.push(o as IStatefulSet);
          break;
        case 'v1/Service':
          new Service(o as IService).validate();
          services.push(o as IService);
          break;
        case 'policy/v1/PodDisruptionBudget':
          new PodDisruptionBudget(o as IPodDisruptionBudget).validate();
          pdbs.push(o as IPodDisruptionBudget);
          break;
        default:
          throw new ManifestError(`unexpected object ${at}`);
      }
    } catch (err) {
      throw new ManifestError(`${at}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  const [statefulSet] = sets;
  const [podDisruptionBudget] = pdbs;
  check(statefulSet !== undefined && sets.length === 1, `${sets.length} StatefulSets (expected 1)`);
  check(podDisruptionBudget !== undefined && pdbs.length === 1, `${pdbs.length} PodDisruptionBudgets (expected 1)`);
  return { statefulSet, services, podDisruptionBudget };
}

/** Kubernetes' expansion of command, args and env values: $(NAME) when NAME is defined, $$ -> $, else as written. */
export function expandK8s(text: string, env: ReadonlyMap<string, string>): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c !== '$' || i + 1 >= text.length) {
      out += c;
      continue;
    }
    const next = text[i + 1];
    if (next === '$') {
      out += '$';
      i++;
    } else if (next === '(') {
      const close = text.indexOf(')', i + 2);
      const name = close < 0 ? undefined : text.slice(i + 2, close);
      const value = name === undefined ? undefined : env.get(name);
      if (value === undefined) {
        out += c;
      } else {
        out += value;
        i = close;
      }
    } else {
      out += c;
    }
  }
  return out;
}

function selects(selector: Readonly<Record<string, string>> | undefined, labels: Readonly<Record<string, string>>): boolean {
  const entries = Object.entries(selector ?? {});
  return entries.length > 0 && entries.every(([k, v]) => labels[k] === v);
}

function hostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i), port: Number(address.slice(i + 1)) };
}

let fakeNodeDir: string | undefined;
/** A folder with a `node` that prints its arguments, NUL-separated: what the pod's shell would exec. */
function fakeNode(): string {
  if (fakeNodeDir === undefined) {
    fakeNodeDir = mkdtempSync(join(tmpdir(), 'raftkv-k8s-'));
    const node = join(fakeNodeDir, 'node');
    writeFileSync(node, '#!/bin/sh\nprintf \'%s\\0\' "$@"\n');
    chmodSync(node, 0o755);
  }
  return fakeNodeDir;
}

/** The pod's environment as Kubernetes builds it (downward API and values, each expanded with those before it). */
function podEnv(container: IContainer, podName: string, namespace: string): Map<string, string> {
  const env = new Map<string, string>();
  for (const e of container.env ?? []) {
    if (e.value !== undefined) {
      env.set(e.name, expandK8s(e.value, env));
    } else {
      const field = e.valueFrom?.fieldRef?.fieldPath;
      check(field === 'metadata.name' || field === 'metadata.namespace', `env ${e.name}: only metadata.name/namespace are checked here`);
      env.set(e.name, field === 'metadata.name' ? podName : namespace);
    }
  }
  return env;
}

/** What `raftkv serve` receives in pod `ordinal`: the container command and args run through a real shell. */
export function memberCommandLine(sts: IStatefulSet, ordinal: number, ctx: CheckContext): { argv: string[]; env: Map<string, string> } {
  const name = sts.metadata?.name ?? '';
  const containers = sts.spec?.template.spec?.containers ?? [];
  const container = containers[0];
  check(container !== undefined && containers.length === 1, 'the pod has one container');
  const env = podEnv(container, `${name}-${ordinal}`, ctx.namespace);
  const argv = [...(container.command ?? []), ...(container.args ?? [])].map((a) => expandK8s(a, env));
  const [program, ...rest] = argv;
  check(program !== undefined, 'the container has no command (the image would print `serve --help`)');
  const run = spawnSync(program === 'node' ? join(fakeNode(), 'node') : program, rest, {
    env: { ...Object.fromEntries(env), PATH: `${fakeNode()}:/usr/bin:/bin`, HOSTNAME: `${name}-${ordinal}` },
    encoding: 'utf8',
  });
  check(run.status === 0, `the container command failed: ${run.stderr}`);
  const got = run.stdout.split('\0').slice(0, -1);
  check(got[0] === ctx.entrypoint && got[1] === 'serve', `the container runs ${JSON.stringify(got.slice(0, 2))}, not node ${ctx.entrypoint} serve`);
  return { argv: got.slice(2), env };
}

/** Every cross-reference; returns each member's parsed `raftkv serve` configuration. Throws ManifestError. */
export function checkManifests(objects: readonly unknown[], ctx: CheckContext): ServeConfig[] {
  const { statefulSet: sts, services, podDisruptionBudget: pdb } = validate(objects);
  const name = sts.metadata?.name ?? '';
  const spec = sts.spec;
  check(spec !== undefined, 'StatefulSet has no spec');
  const labels = spec.template.metadata?.labels ?? {};
  const replicas = spec.replicas ?? 1;
  check(selects(spec.selector.matchLabels, labels), 'the StatefulSet selector does not match its pod labels');
  check(spec.podManagementPolicy === 'Parallel', 'podManagementPolicy must be Parallel: a member is ready only once a quorum has started');
  const container = spec.template.spec?.containers[0];
  check(container !== undefined, 'no container');
  check(container.image === ctx.image, `image ${container.image ?? ''} is not docker-compose.yml's ${ctx.image}`);
  const ports = new Map((container.ports ?? []).map((p) => [p.name ?? '', p.containerPort]));
  const portOf = (p: number | string | undefined): number | undefined => (typeof p === 'number' ? p : ports.get(p ?? ''));
  const peerPort = ports.get('peer');
  const clientPort = ports.get('client');
  const metricsPort = ports.get('metrics');
  check(peerPort !== undefined && clientPort !== undefined && metricsPort !== undefined, 'container ports peer, client and metrics must be named');
  for (const p of ports.values()) check(ctx.exposedPorts.includes(p), `container port ${p} is not one the Dockerfile EXPOSEs (${ctx.exposedPorts.join(' ')})`);

  // Services: the headless one is the StatefulSet's serviceName; every selector picks these pods
  const headless = services.filter((s) => s.spec?.clusterIP === 'None');
  check(headless.length === 1 && headless[0]?.metadata?.name === spec.serviceName, `the headless Service is not the StatefulSet's serviceName ${spec.serviceName ?? ''}`);
  check(headless[0]?.spec?.publishNotReadyAddresses === true, 'the headless Service must publish members before they are ready (peers find each other before a leader exists)');
  for (const s of services) {
    const sname = s.metadata?.name ?? '';
    check(selects(s.spec?.selector, labels), `Service ${sname}: selector does not match the pod labels`);
    for (const p of s.spec?.ports ?? []) {
      check(portOf(p.targetPort ?? p.port) !== undefined && [...ports.values()].includes(portOf(p.targetPort ?? p.port) ?? -1), `Service ${sname}: port ${p.name ?? p.port} targets no container port`);
    }
  }
  const clientServices = services.filter((s) => s.spec?.clusterIP !== 'None');
  check(clientServices.length >= 1, 'no client Service');
  for (const s of clientServices) check((s.spec?.ports ?? []).some((p) => portOf(p.targetPort ?? p.port) === clientPort), `Service ${s.metadata?.name ?? ''}: does not reach the client port`);
  for (const p of headless[0]?.spec?.ports ?? []) check(portOf(p.targetPort ?? p.port) === p.port, `headless Service port ${p.name ?? p.port}: its port and container port differ (members dial pod names directly)`);

  // the PodDisruptionBudget keeps a quorum of these pods
  check(selects(pdb.spec?.selector?.matchLabels, labels), 'the PodDisruptionBudget selector does not match the pod labels');
  check(pdb.spec?.minAvailable === Math.floor(replicas / 2) + 1, `the PodDisruptionBudget's minAvailable ${String(pdb.spec?.minAvailable)} is not a quorum of ${replicas}`);

  // probes on the metrics port
  const probe = (p: typeof container.livenessProbe, path: string, what: string): void => {
    check(p?.httpGet?.path === path, `${what} probe must GET ${path}`);
    check(portOf(p.httpGet.port) === metricsPort, `${what} probe is not on the metrics port`);
  };
  probe(container.livenessProbe, '/livez', 'liveness');
  probe(container.readinessProbe, '/readyz', 'readiness');
  if (container.startupProbe !== undefined) probe(container.startupProbe, '/livez', 'startup');
  check(container.resources?.requests !== undefined, 'the container requests no resources');

  // the data directory is on the PersistentVolumeClaim
  const claims = new Set((spec.volumeClaimTemplates ?? []).map((c) => c.metadata?.name ?? ''));
  const dataMounts = (container.volumeMounts ?? []).filter((m) => claims.has(m.name));
  check(dataMounts.some((m) => m.mountPath.replace(/\/$/, '') === ctx.volume), `no PersistentVolumeClaim is mounted on the Dockerfile's VOLUME ${ctx.volume}`);
  const secretVolumes = new Set((spec.template.spec?.volumes ?? []).filter((v) => v.secret !== undefined).map((v) => v.name));
  const secretMounts = (container.volumeMounts ?? []).filter((m) => secretVolumes.has(m.name)).map((m) => m.mountPath.replace(/\/$/, ''));

  const configs: ServeConfig[] = [];
  for (let ordinal = 0; ordinal < replicas; ordinal++) {
    const { argv, env } = memberCommandLine(sts, ordinal, ctx);
    // a file flag under a Secret's mount is read from the test's file for that key
    const mapped = argv.map((a) => {
      const m = /^(--[a-z-]+-file=)(.*)$/.exec(a);
      if (m === null) return a;
      const file = m[2] ?? '';
      check(secretMounts.includes(dirname(file)), `${m[1] ?? ''}${file} is not in a mounted Secret`);
      const real = ctx.secretFiles?.get(file.slice(dirname(file).length + 1));
      check(real !== undefined, `${file}: not one of the Secret's keys (${[...(ctx.secretFiles?.keys() ?? [])].join(', ')})`);
      return `${m[1] ?? ''}${real}`;
    });
    let parsed: ServeConfig;
    try {
      parsed = parseServeArgs(mapped);
    } catch (err) {
      throw new ManifestError(`member ${ordinal}: raftkv serve refuses its flags: ${err instanceof Error ? err.message : String(err)}`);
    }
    const c = parsed.config;
    const pod = (id: number): string => `${name}-${id - 1}.${spec.serviceName ?? ''}.${ctx.namespace}.svc`;
    check(c.id === ordinal + 1, `pod ${name}-${ordinal} runs member ${c.id}, not ${ordinal + 1}`);
    check(c.initialClusterState === 'new', '--initial-cluster-state must be new (the first start bootstraps)');
    check(c.initialMembers.length === replicas, `--initial-cluster lists ${c.initialMembers.length} members; replicas is ${replicas}`);
    const ids = c.initialMembers.map((m) => m.id).sort((a, b) => a - b);
    check(ids.every((id, i) => id === i + 1), `--initial-cluster ids ${ids.join(',')} are not 1..${replicas}`);
    for (const m of c.initialMembers) {
      const peer = hostPort(m.peerAddress);
      const client = hostPort(m.clientAddress);
      check(peer.host === pod(m.id) && client.host === pod(m.id), `--initial-cluster member ${m.id} is not at ${pod(m.id)}`);
      check(peer.port === peerPort && client.port === clientPort, `--initial-cluster member ${m.id}: ports ${peer.port}/${client.port}, container ports ${peerPort}/${clientPort}`);
    }
    const me = c.initialMembers.find((m) => m.id === c.id);
    check(me?.peerAddress === c.advertisePeer && me.clientAddress === c.advertiseClient, `member ${c.id} advertises ${c.advertisePeer}/${c.advertiseClient}, not its --initial-cluster entry`);
    check(hostPort(c.peerListen).port === peerPort, `--listen-peer ${c.peerListen} is not the container's peer port ${peerPort}`);
    check(hostPort(c.clientListen).port === clientPort, `--listen-client ${c.clientListen} is not the container's client port ${clientPort}`);
    check(c.listenMetrics !== undefined && new URL(c.listenMetrics).port === String(metricsPort), `--listen-metrics ${c.listenMetrics ?? '(none)'} is not the container's metrics port ${metricsPort}`);
    check(dataMounts.some((mnt) => c.dataDir.startsWith(`${mnt.mountPath.replace(/\/$/, '')}/`)), `--data-dir ${c.dataDir} is not on a PersistentVolumeClaim mount`);
    const endpoints = (env.get('RAFTKV_ENDPOINTS') ?? '').split(',');
    check(endpoints.length === replicas && c.initialMembers.every((m) => endpoints.includes(m.clientAddress)), `RAFTKV_ENDPOINTS ${endpoints.join(',')} is not every member's client address`);
    configs.push(parsed);
  }
  return configs;
}
