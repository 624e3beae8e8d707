// No Docker engine runs on the project's machines, so docker-compose.yml and the Dockerfile are checked
// statically: every member's command must be accepted by `raftkv serve`'s own parser, and the members,
// addresses, ports, volumes and health checks must agree with each other (3 nodes, and 5 with five.env).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseServeArgs } from '../../src/cli/serve-config.js';
import { REPO_ROOT } from '../../cluster/serve-process.js';

interface Service {
  command?: unknown;
  profiles?: string[];
  volumes?: string[];
  ports?: string[];
  hostname?: string;
  healthcheck?: { test?: unknown };
  environment?: Record<string, string>;
  build?: unknown;
}

/** Compose's `${VAR:-default}` / `${VAR}` interpolation. */
function interpolate(text: string, env: Readonly<Record<string, string>>): string {
  return text.replace(/\$\{([A-Z0-9_]+)(?::-([^}]*))?\}/g, (_, name: string, def: string | undefined) => {
    const v = env[name];
    if (v !== undefined && v !== '') return v;
    if (def === undefined) throw new Error(`\${${name}} has no value and no default`);
    return def;
  });
}

function readEnvFile(file: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m?.[1] !== undefined && m[2] !== undefined) env[m[1]] = m[2];
  }
  return env;
}

function services(env: Readonly<Record<string, string>>, profiles: readonly string[]): Map<string, Service> {
  const text = interpolate(readFileSync(join(REPO_ROOT, 'docker-compose.yml'), 'utf8'), env);
  const doc = parse(text, { merge: true }) as { services: Record<string, Service> };
  const active = Object.entries(doc.services).filter(([, s]) => (s.profiles ?? []).every((p) => profiles.includes(p)));
  return new Map(active);
}

function checkCluster(env: Readonly<Record<string, string>>, profiles: readonly string[], expected: number): void {
  const svcs = services(env, profiles);
  expect(svcs.size).toBe(expected);
  const ids = new Set<number>();
  for (const [name, svc] of svcs) {
    expect(svc.build, `${name} builds the Dockerfile`).toBe('.');
    const command = svc.command;
    expect(Array.isArray(command), `${name}.command is a list`).toBe(true);
    const args = (command as unknown[]).map(String);
    expect(args[0]).toBe('serve');
    const { config } = parseServeArgs(args.slice(1)); // throws on anything `raftkv serve` would refuse
    ids.add(config.id);
    // every member lists the same cluster, with exactly the active services in it
    expect(config.initialMembers.map((m) => m.id).sort()).toEqual([...svcs.keys()].map((_, i) => i + 1));
    const me = config.initialMembers.find((m) => m.id === config.id);
    expect(me?.peerAddress).toBe(config.advertisePeer);
    expect(me?.clientAddress).toBe(config.advertiseClient);
    expect(config.advertiseClient.split(':')[0]).toBe(svc.hostname);
    expect(svc.hostname).toBe(name);
    // the data directory is the mounted volume; the client port is published; peers dial the peer port
    expect(svc.volumes?.some((v) => v.endsWith(`:${config.dataDir}`))).toBe(true);
    const clientPort = config.clientListen.split(':')[1];
    expect(svc.ports?.some((p) => p.endsWith(`:${clientPort}`))).toBe(true);
    expect(config.advertisePeer.split(':')[1]).toBe(config.peerListen.split(':')[1]);
    // the health check asks this member's own client port for its status
    const health = (svc.healthcheck?.test as unknown[] | undefined)?.map(String) ?? [];
    expect(health.slice(0, 4)).toEqual(['CMD', 'node', '/app/bin/raftkv.js', 'status']);
    expect(health[health.indexOf('--endpoints') + 1]).toBe(`127.0.0.1:${clientPort}`);
    // the CLI inside a container reaches every member
    expect(svc.environment?.RAFTKV_ENDPOINTS?.split(',').length).toBe(expected);
  }
  expect(ids.size).toBe(expected);
}

describe('docker-compose.yml (checked statically: no Docker engine here)', () => {
  it('defines a 3-member cluster whose commands `raftkv serve` accepts', () => {
    checkCluster({}, [], 3);
  });

  it('defines a 5-member cluster with --env-file five.env --profile five', () => {
    checkCluster(readEnvFile(join(REPO_ROOT, 'five.env')), ['five'], 5);
  });

  it('the Dockerfile builds what the commands run', () => {
    const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/ENTRYPOINT \["node", "\/app\/bin\/raftkv\.js"\]/);
    expect(dockerfile).toMatch(/^RUN [^\n]*(\\\n[^\n]*)*\bnpm ci\b/m); // npm ci in a RUN, perhaps after a continuation
    const tsconfig = JSON.parse(readFileSync(join(REPO_ROOT, 'tsconfig.build.json'), 'utf8')) as { include: string[] };
    for (const dir of [...tsconfig.include, 'bin', 'proto', 'dashboard']) expect(dockerfile, `Dockerfile copies ${dir}`).toMatch(new RegExp(`COPY ${dir} `));
    expect(dockerfile).toMatch(/EXPOSE 7001 7101/);
  });
});
