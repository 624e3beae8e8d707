#!/usr/bin/env node
// Builds classic-level's LevelDB from source with raftkv's fix for google/leveldb issue 320 (run by `npm install`
// and `npm ci`: the postinstall script). classic-level 3.0.0 ships LevelDB 1.20, whose compaction can put an older
// record of a key above a newer one while a snapshot is held: a read then returns an old value, or a deleted key
// comes back (raftkv's FOUND-BUGS 4: a member kept one key a DeleteRange had removed). raftkv holds snapshots for
// a long time (every range scan, the state-machine snapshot stream, the compaction of history), so the stock
// binary is not safe for it. Upstream fixed it in LevelDB 1.21; classic-level has no release with it.
//
// Steps: apply patches/leveldb-boundary-files.cc.txt to deps/leveldb/leveldb-1.20/db/version_set.cc (once: the
// edit is recognised), build with the node-gyp npm ships (into build/Release, which node-gyp-build loads before
// the prebuilt binary), then run scripts/leveldb-check.mjs against the result. A stamp next to the binary skips
// the build when nothing changed. Any failure exits 1 with what to do: raftkv does not run on the stock binary.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));
const SUPPORTED_VERSION = '3.0.0'; // the classic-level whose LevelDB 1.20 source the patch's anchors match
const MARKER = 'raftkv: leveldb 1.20 (google/leveldb issue 320'; // first line of the patch: present once applied

function fail(message) {
  console.error(`build-leveldb: ${message}`);
  process.exit(1);
}

/** Runs a command; `quiet` keeps its output (the compiler's warnings) and prints its tail only if it fails. */
function run(cmd, args, cwd, quiet = false) {
  const r = spawnSync(cmd, args, { cwd, stdio: quiet ? 'pipe' : 'inherit', env: process.env, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error !== undefined) fail(`${cmd} could not start: ${r.error.message}`);
  if (r.status !== 0 && quiet) console.error(`${r.stdout}${r.stderr}`.split('\n').slice(-40).join('\n'));
  return r.status === 0;
}

const pkgDir = dirname(require.resolve('classic-level/package.json'));
const version = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')).version;
if (version !== SUPPORTED_VERSION) {
  fail(`classic-level ${version} is installed; this patch is for ${SUPPORTED_VERSION}. Check whether its LevelDB has the fix for google/leveldb issue 320 (AddBoundaryInputs in db/version_set.cc) and update scripts/build-leveldb.mjs.`);
}
const patch = readFileSync(join(root, 'patches', 'leveldb-boundary-files.cc.txt'), 'utf8');
const binary = join(pkgDir, 'build', 'Release', 'classic_level.node');
const stampPath = join(pkgDir, 'build', 'Release', 'raftkv-leveldb-patch.sha256');
const stamp = createHash('sha256').update(`${patch}\n${version}\n${process.versions.modules}\n${process.arch}`).digest('hex');

if (existsSync(binary) && existsSync(stampPath) && readFileSync(stampPath, 'utf8').trim() === stamp) {
  console.log('build-leveldb: classic-level is already built with the LevelDB fix');
} else {
  const sourcePath = join(pkgDir, 'deps', 'leveldb', 'leveldb-1.20', 'db', 'version_set.cc');
  let source = readFileSync(sourcePath, 'utf8');
  if (!source.includes(MARKER)) {
    const edits = [
      // the function, before its user
      ['void VersionSet::SetupOtherInputs(Compaction* c) {\n', `${patch}void VersionSet::SetupOtherInputs(Compaction* c) {\n`],
      // the files picked for the compaction, before their key range is taken
      [
        '  InternalKey smallest, largest;\n  GetRange(c->inputs_[0], &smallest, &largest);\n\n  current_->GetOverlappingInputs(level+1',
        '  InternalKey smallest, largest;\n  AddBoundaryFiles(icmp_, current_->files_[level], &c->inputs_[0]);\n  GetRange(c->inputs_[0], &smallest, &largest);\n\n  current_->GetOverlappingInputs(level+1',
      ],
      // the widened set too
      [
        '    current_->GetOverlappingInputs(level, &all_start, &all_limit, &expanded0);\n',
        '    current_->GetOverlappingInputs(level, &all_start, &all_limit, &expanded0);\n    AddBoundaryFiles(icmp_, current_->files_[level], &expanded0);\n',
      ],
    ];
    for (const [from, to] of edits) {
      if (source.split(from).length !== 2) fail(`${sourcePath} does not contain exactly one ${JSON.stringify(from.slice(0, 60))}: the patch does not apply`);
      source = source.replace(from, to);
    }
    writeFileSync(sourcePath, source);
    console.log('build-leveldb: patched deps/leveldb/leveldb-1.20/db/version_set.cc');
  }

  // node-gyp needs a C++ compiler, make, Python 3 and Node's headers (there is no internet to download them).
  // As root on Debian/Ubuntu they are installed here (as scripts/install-system-deps.sh installs etcd).
  const TOOLS = { 'c++': 'g++', make: 'make', python3: 'python3' }; // command -> Debian package
  const missingTools = () => Object.keys(TOOLS).filter((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0);
  let missing = missingTools();
  const canApt = process.getuid?.() === 0 && spawnSync('sh', ['-c', 'command -v apt-get']).status === 0;
  if (missing.length > 0 && canApt) {
    const packages = missing.map((tool) => TOOLS[tool]);
    console.log(`build-leveldb: installing Debian ${packages.join(' ')} (apt-get) to build LevelDB`);
    const apt = ['-q', '-y', '-o', 'DPkg::Lock::Timeout=300'];
    if (!run('apt-get', [...apt, 'update'], root, true) || !run('apt-get', [...apt, 'install', '--no-install-recommends', ...packages], root, true)) {
      fail(`apt-get could not install ${packages.join(' ')}`);
    }
    missing = missingTools();
  }
  if (missing.length > 0) {
    fail(`missing ${missing.join(', ')} to build LevelDB; on Debian/Ubuntu: sudo apt-get install -y g++ make python3`);
  }
  const nodeDir = dirname(dirname(process.execPath)); // <prefix>/bin/node -> <prefix>
  if (!existsSync(join(nodeDir, 'include', 'node', 'node_api.h'))) {
    fail(`Node's headers are not in ${join(nodeDir, 'include', 'node')}; install the Node.js build with its headers (the nodejs.org tarball or Debian's libnode-dev), or set npm_config_nodedir`);
  }
  // npm names its own node-gyp while it runs a script; run by hand, npm's install next to node is used.
  const gypCandidates = [
    process.env.npm_config_node_gyp,
    process.env.npm_execpath === undefined ? undefined : join(dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    join(nodeDir, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  const npmGyp = gypCandidates.find((p) => p !== undefined && existsSync(p));
  if (npmGyp === undefined) fail(`node-gyp not found (looked at ${gypCandidates.filter(Boolean).join(', ')}); run this through npm (npm install / npm ci)`);
  console.log('build-leveldb: building classic-level with LevelDB from source (under a minute)');
  const jobs = String(Math.max(1, Math.min(4, (await import('node:os')).availableParallelism())));
  const args = [npmGyp, 'rebuild', `--jobs=${jobs}`, `--nodedir=${process.env.npm_config_nodedir ?? nodeDir}`];
  if (!run(process.execPath, args, pkgDir, true)) fail('node-gyp rebuild failed (its last lines above)');
  writeFileSync(stampPath, `${stamp}\n`);
}

if (!run(process.execPath, [join(root, 'scripts', 'leveldb-check.mjs')], root)) {
  fail('the built LevelDB still brings deleted keys back (scripts/leveldb-check.mjs)');
}
