// The Dockerfile checked statically (no Docker engine on the project's machines): every COPY source exists, and
// `npm ci` runs after what its install scripts need is in the image: scripts/ and patches/ (the postinstall builds
// classic-level's LevelDB with raftkv's fix, scripts/build-leveldb.mjs) and the compiler, make and Python.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../cluster/serve-process.js';

type Instruction = { op: string; args: string; line: number };

/** The Dockerfile's instructions, continuation lines joined, comments dropped. */
function instructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = '';
  let start = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) return;
    if (pending === '') start = i + 1;
    pending += line.endsWith('\\') ? `${line.slice(0, -1)} ` : line;
    if (line.endsWith('\\')) return;
    const m = /^(\S+)\s+(.*)$/.exec(pending);
    if (m?.[1] !== undefined && m[2] !== undefined) out.push({ op: m[1].toUpperCase(), args: m[2], line: start });
    pending = '';
  });
  return out;
}

/** What is wrong with a Dockerfile: empty when nothing. */
function problems(text: string): string[] {
  const found: string[] = [];
  const steps = instructions(text);
  const npmCi = steps.findIndex((s) => s.op === 'RUN' && /\bnpm ci\b/.test(s.args));
  if (npmCi < 0) return ['no RUN npm ci'];
  const copiedBefore = new Set<string>();
  steps.forEach((s, i) => {
    if (s.op !== 'COPY') return;
    const parts = s.args.split(/\s+/).filter((p) => !p.startsWith('--'));
    for (const src of parts.slice(0, -1)) {
      if (!existsSync(join(REPO_ROOT, src))) found.push(`line ${s.line}: COPY ${src}: no such path in the repository`);
      if (i < npmCi) copiedBefore.add(src.replace(/^\.\//, '').replace(/\/$/, ''));
    }
  });
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const postinstall = pkg.scripts.postinstall ?? '';
  for (const needed of ['package.json', 'package-lock.json', 'scripts', 'patches']) {
    if (needed === 'patches' && !postinstall.includes('build-leveldb')) continue;
    if (!copiedBefore.has(needed)) found.push(`${needed} is not copied before npm ci (line ${steps[npmCi]?.line ?? 0})`);
  }
  const installs = steps.slice(0, npmCi + 1).filter((s) => s.op === 'RUN').map((s) => s.args.split('npm ci')[0] ?? '').join(' ');
  for (const pkgName of ['g++', 'make', 'python3']) {
    if (!new RegExp(`apt-get install[^&;]*\\s${pkgName.replace('+', '\\+')}(\\s|$)`).test(installs)) found.push(`${pkgName} is not installed before npm ci (scripts/build-leveldb.mjs needs it)`);
  }
  return found;
}

const DOCKERFILE = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');

describe('Dockerfile (static)', () => {
  it('copies what npm ci needs and installs the LevelDB build tools before it', () => {
    expect(problems(DOCKERFILE)).toEqual([]);
  });

  it.each<[string, (d: string) => string, RegExp]>([
    ['patches/ not copied', (d) => d.replace('COPY patches ./patches\n', ''), /patches is not copied before npm ci/],
    ['patches/ copied after npm ci', (d) => d.replace('COPY patches ./patches\n', '') + '\nCOPY patches ./patches\n', /patches is not copied before npm ci/],
    ['no compiler', (d) => d.replace(' g++ make python3 \\', ' make python3 \\'), /g\+\+ is not installed/],
    ['a COPY of a missing path', (d) => d.replace('COPY bin ./bin', 'COPY bim ./bin'), /COPY bim: no such path/],
  ])('catches %s', (_name, breakIt, expected) => {
    const broken = breakIt(DOCKERFILE);
    expect(broken).not.toBe(DOCKERFILE);
    expect(problems(broken).join('\n')).toMatch(expected);
  });
});
