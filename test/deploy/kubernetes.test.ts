// deploy/kubernetes/ checked statically (no Kubernetes or Docker engine on the project's machines): every object
// against Kubernetes' schemas, the references between objects, and each member's command line through `raftkv
// serve`'s own parser (kubernetes-manifests.ts). The second half breaks one thing at a time and expects the check
// to catch it, so the checks are known to be able to fail.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { IStatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import type { IService } from 'kubernetes-models/v1/Service';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import type { IContainer } from 'kubernetes-models/v1/Container';
import { REPO_ROOT } from '../../cluster/serve-process.js';
import { issueCertificate, makeCa } from '../../cluster/tls-certs.js';
import { describeWithSystem } from '../system-deps.js';
import { checkManifests, expandK8s, loadKustomization } from './kubernetes-manifests.js';
import type { CheckContext } from './kubernetes-manifests.js';

const DIR = join(REPO_ROOT, 'deploy', 'kubernetes');
const NAMESPACE = 'kv-prod';

function context(): CheckContext {
  const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
  const entrypoint = /^ENTRYPOINT \["node", "([^"]+)"\]$/m.exec(dockerfile)?.[1];
  const exposedPorts = (/^EXPOSE (.+)$/m.exec(dockerfile)?.[1] ?? '').split(' ').map(Number);
  const volume = /^VOLUME \["([^"]+)"\]$/m.exec(dockerfile)?.[1];
  const compose = parse(readFileSync(join(REPO_ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, { image?: string }> };
  const image = compose.services.raftkv1?.image;
  if (entrypoint === undefined || volume === undefined || image === undefined) throw new Error('the Dockerfile has no ENTRYPOINT or VOLUME, or docker-compose.yml no image');
  return { namespace: NAMESPACE, entrypoint, image, exposedPorts, volume };
}

type Objects = unknown[];
const kind = <T>(objects: Objects, k: string, name?: string): T => {
  const o = objects.find((x) => (x as { kind: string }).kind === k && (name === undefined || (x as { metadata: { name: string } }).metadata.name === name));
  if (o === undefined) throw new Error(`no ${k} ${name ?? ''}`);
  return o as T;
};
const sts = (o: Objects): IStatefulSet => kind<IStatefulSet>(o, 'StatefulSet');
const container = (o: Objects): IContainer => {
  const c = sts(o).spec?.template.spec?.containers[0];
  if (c === undefined) throw new Error('no container');
  return c;
};
const args = (o: Objects): string[] => container(o).args ?? [];
const setFlag = (o: Objects, flag: string, value: string): void => {
  const a = args(o);
  const i = a.indexOf(flag);
  if (i < 0) throw new Error(`no ${flag}`);
  a[i + 1] = value;
};

describe('deploy/kubernetes (checked statically: no Kubernetes here)', () => {
  it('expands $(VAR) as Kubernetes does', () => {
    const env = new Map([['A', 'x'], ['B', 'y']]);
    expect(expandK8s('$(A).$(B):$(C)', env)).toBe('x.y:$(C)');
    expect(expandK8s('$$(A) $${A##*-} $$((1 + 1)) $', env)).toBe('$(A) ${A##*-} $((1 + 1)) $');
  });

  it('a 3-member StatefulSet whose members `raftkv serve` accepts, with every reference in place', () => {
    const configs = checkManifests(loadKustomization(DIR), context());
    expect(configs.map((c) => c.config.id)).toEqual([1, 2, 3]);
    expect(configs[1]?.config.advertisePeer).toBe(`raftkv-1.raftkv-peer.${NAMESPACE}.svc:7001`);
    expect(configs.every((c) => c.tls.client === undefined && c.tls.peer === undefined)).toBe(true);
  });

  describe('each broken reference is caught', () => {
    const cases: [string, (o: Objects) => void, RegExp][] = [
      ['a field of the wrong type', (o) => ((sts(o).spec as unknown as Record<string, unknown>).replicas = 'three'), /replicas must be integer/],
      ['the client Service selecting other pods', (o) => ((kind<IService>(o, 'Service', 'raftkv').spec ?? {}).selector = { 'app.kubernetes.io/name': 'other' }), /Service raftkv: selector/],
      ['the headless Service renamed', (o) => ((kind<IService>(o, 'Service', 'raftkv-peer').metadata ?? {}).name = 'raftkv-peers'), /serviceName/],
      ['serviceName changed', (o) => ((sts(o).spec ?? { serviceName: '' }).serviceName = 'peers'), /serviceName/],
      ['the container peer port moved', (o) => ((container(o).ports ?? []).forEach((p) => (p.name === 'peer' ? (p.containerPort = 7002) : undefined))), /port/],
      ['--listen-client on another port', (o) => setFlag(o, '--listen-client', '0.0.0.0:7102'), /--listen-client/],
      ['--listen-metrics on another port', (o) => setFlag(o, '--listen-metrics', 'http://0.0.0.0:2382'), /--listen-metrics/],
      ['readiness on /healthz', (o) => ((container(o).readinessProbe?.httpGet ?? { path: '' }).path = '/healthz'), /readiness probe must GET \/readyz/],
      ['liveness on the client port', (o) => ((container(o).livenessProbe?.httpGet ?? { port: 0 }).port = 'client'), /liveness probe is not on the metrics port/],
      ['a flag raftkv serve does not have', (o) => args(o).push('--no-such-flag'), /refuses its flags.*no-such-flag/],
      ['4 replicas for 3 members', (o) => ((sts(o).spec ?? { replicas: 0 }).replicas = 4), /replicas is 4|not a quorum/],
      ['a member of --initial-cluster at the wrong pod', (o) => setFlag(o, '--initial-cluster', (args(o)[args(o).indexOf('--initial-cluster') + 1] ?? '').replace('3=raftkv-2.', '3=raftkv-7.')), /member 3 is not at raftkv-2/],
      ['the PodDisruptionBudget selecting other pods', (o) => ((kind<IPodDisruptionBudget>(o, 'PodDisruptionBudget').spec?.selector ?? {}).matchLabels = { app: 'x' }), /PodDisruptionBudget selector/],
      ['minAvailable 1', (o) => ((kind<IPodDisruptionBudget>(o, 'PodDisruptionBudget').spec ?? {}).minAvailable = 1), /not a quorum/],
      ['OrderedReady pods', (o) => ((sts(o).spec ?? { podManagementPolicy: '' }).podManagementPolicy = 'OrderedReady'), /Parallel/],
      ['the data directory off the volume', (o) => setFlag(o, '--data-dir', '/tmp/raftkv'), /PersistentVolumeClaim/],
      ['a container port the image does not expose', (o) => ((container(o).ports ?? []).forEach((p) => (p.name === 'metrics' ? (p.containerPort = 9090) : undefined))), /9090 is not one the Dockerfile EXPOSEs/],
      ['the volume mounted elsewhere', (o) => ((container(o).volumeMounts ?? []).forEach((m) => (m.name === 'data' ? (m.mountPath = '/var/lib/raftkv') : undefined))), /VOLUME \/data/],
      ['the id not from the ordinal', (o) => ((container(o).command ?? [])[2] = 'exec node /app/bin/raftkv.js serve --id 1 "$$@"'), /runs member 1, not 2/],
    ];
    it.each(cases)('%s', (_, breakIt, message) => {
      const objects = loadKustomization(DIR);
      breakIt(objects);
      expect(() => checkManifests(objects, context())).toThrow(message);
    });
  });
});

describeWithSystem(['openssl'], 'deploy/kubernetes/tls (checked statically)', () => {
  it('adds etcd\'s TLS flags on both ports, read from the mounted Secret, and serve accepts them', () => {
    const dir = mkdtempSync(join(tmpdir(), 'raftkv-k8s-tls-'));
    const ca = makeCa(join(dir, 'ca'));
    const member = issueCertificate({ ca, out: join(dir, 'member'), cn: 'raftkv', dnsNames: [`*.raftkv-peer.${NAMESPACE}.svc`, `raftkv.${NAMESPACE}.svc`], usage: ['serverAuth', 'clientAuth'] });
    const secretFiles = new Map([['ca.crt', ca.cert], ['tls.crt', member.cert], ['tls.key', member.key]]);
    const objects = loadKustomization(join(DIR, 'tls'));
    const configs = checkManifests(objects, { ...context(), secretFiles });
    for (const { tls } of configs) {
      expect(tls.client?.clientCertAuth).toBe(true);
      expect(tls.peer?.clientCertAuth).toBe(true);
    }
    expect(container(objects).env?.map((e) => e.name)).toEqual(expect.arrayContaining(['RAFTKV_CACERT', 'RAFTKV_CERT', 'RAFTKV_KEY']));
    // a file flag pointing outside the Secret is caught
    args(objects).push('--trusted-ca-file=/etc/ssl/ca.crt');
    expect(() => checkManifests(objects, { ...context(), secretFiles })).toThrow(/not in a mounted Secret/);
  });
});
