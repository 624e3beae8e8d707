// Tests that need system packages (scripts/install-system-deps.sh installs them: Debian's etcd-server,
// etcd-client, golang-etcd-server-dev, chromium and openssl) declare their suites through describeWithSystem. Where a package
// is missing the suite is skipped on a developer's machine, but under CI (CI set) it fails with one test
// naming what is missing: CI cannot pass by silently skipping them.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, it } from 'vitest';
import { onPath } from '../bench/etcd-cluster.js';

export type SystemDep = 'etcd' | 'etcdctl' | 'etcd-reference-protos' | 'chromium' | 'openssl';

const PACKAGE: Readonly<Record<SystemDep, string>> = {
  etcd: 'etcd-server',
  etcdctl: 'etcd-client',
  'etcd-reference-protos': 'golang-etcd-server-dev',
  chromium: 'chromium',
  openssl: 'openssl',
};

/** True when CI is set (to anything but '' or 'false'), as .ci/run's environment has it. */
export function underCi(): boolean {
  const ci = process.env.CI;
  return ci !== undefined && ci !== '' && ci !== 'false';
}

let referenceRpcProto: string | null | undefined; // undefined: not looked up yet; null: not installed

/**
 * etcd 3.4.23's own etcdserverpb/rpc.proto as golang-etcd-server-dev installs it (found through dpkg's file
 * list, so a relocated package is found too), or undefined. Its imports (etcd/mvcc/mvccpb/kv.proto, ...) are
 * relative to the folder above its etcd/ folder.
 */
export function etcdReferenceRpcProto(): string | undefined {
  if (referenceRpcProto === undefined) {
    referenceRpcProto = null;
    if (onPath('dpkg')) {
      try {
        const files = execFileSync('dpkg', ['-L', 'golang-etcd-server-dev'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
        const rpc = files.split('\n').find((f) => f.endsWith('/etcdserver/etcdserverpb/rpc.proto'));
        if (rpc !== undefined && existsSync(rpc)) referenceRpcProto = rpc;
      } catch (err) {
        if (!(err instanceof Error)) throw err; // dpkg -L fails for a package that is not installed
      }
    }
  }
  return referenceRpcProto ?? undefined;
}

function present(dep: SystemDep): boolean {
  return dep === 'etcd-reference-protos' ? etcdReferenceRpcProto() !== undefined : onPath(dep);
}

/** The Debian packages missing for `deps` (empty when all are there). */
export function missingPackages(deps: readonly SystemDep[]): string[] {
  return deps.filter((d) => !present(d)).map((d) => PACKAGE[d]);
}

/** describe(name, body) when every dep is present; else skipped, or under CI one failing test. */
export function describeWithSystem(deps: readonly SystemDep[], name: string, body: () => void): void {
  const missing = missingPackages(deps);
  if (missing.length === 0) describe(name, body);
  else if (underCi()) {
    describe(name, () => {
      it(`has its system packages (${deps.join(', ')})`, () => {
        throw new Error(`missing Debian ${missing.join(', ')}: \`npm test\` installs them as root (scripts/install-system-deps.sh)`);
      });
    });
  } else describe.skip(`${name} (skipped: missing ${missing.join(', ')})`, body);
}
