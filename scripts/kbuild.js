#!/usr/bin/env node
// Builds physcap.ko and the static C tools (physcap-client, the board tool,
// and physcap-selftest, the test tools) for one target of the compile
// matrix, warning-free, and says what it did as one JSON line.
//
//   x86-64 6.1, 6.12   against Debian's installed headers (build/kernels.json):
//                      compile + modpost (links: every symbol resolved)
//   arm64, ppc64le,    against modules_prepare'd trees of Debian's
//   ppce500            linux-source (build/cross.json): compile only; such a
//                      tree has no Module.symvers for modpost to link against
//   ppce500-board      the board's fully built tree: compile + modpost
//
// usage: node scripts/kbuild.js --list
//        node scripts/kbuild.js TARGET OUTDIR
// scripts/build.js uses buildModule() and buildClient() for the boards.
'use strict';

const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const build = path.join(root, 'build');
const moduleObjects = () =>
  fs
    .readFileSync(path.join(root, 'kernel', 'Kbuild'), 'utf8')
    .match(/physcap-y\s*:=([^]*?)(?:\n(?!\s)|$)/)[1]
    .replace(/\\\n/g, ' ')
    .trim()
    .split(/\s+/);

/** Every target of the matrix: the installed x86-64 kernels, then the cross trees. */
function targets() {
  const list = [];
  const kernels = path.join(build, 'kernels.json');
  if (fs.existsSync(kernels)) {
    for (const k of JSON.parse(fs.readFileSync(kernels, 'utf8'))) {
      list.push({ target: `x86-64-${k.series}`, arch: 'x86', cross: '', tree: k.headers, release: k.release, full: true, clientCc: 'cc' });
    }
  }
  const cross = path.join(build, 'cross.json');
  if (fs.existsSync(cross)) {
    for (const t of JSON.parse(fs.readFileSync(cross, 'utf8'))) {
      list.push({ target: t.target, arch: t.arch, cross: t.cross_compile, tree: t.tree, release: t.release, full: t.full, clientCc: `${t.cross_compile}gcc` });
    }
  }
  return list;
}

function run(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });
}

// Copy a file only when its bytes changed, so make's timestamps stay useful.
function syncFile(src, dst) {
  const data = fs.readFileSync(src);
  if (fs.existsSync(dst) && fs.readFileSync(dst).equals(data)) return;
  fs.writeFileSync(dst, data);
}

function failure(what, err) {
  const e = new Error(`${what}\n${err.stdout || ''}${err.stderr || ''}`);
  e.output = `${err.stdout || ''}${err.stderr || ''}`;
  return e;
}

/**
 * physcap.ko for a target into out/ (objects only for a compile-only
 * tree).  Throws on an error or on any warning; returns the build's output.
 */
function buildModule(t, out) {
  fs.mkdirSync(out, { recursive: true });
  for (const name of fs.readdirSync(path.join(root, 'kernel'))) {
    if (/\.(c|h)$/.test(name) || name === 'Kbuild') syncFile(path.join(root, 'kernel', name), path.join(out, name));
  }
  const args = ['-C', t.tree, `M=${out}`, 'PHYSCAP_WERROR=1'];
  if (t.cross) args.push(`ARCH=${t.arch}`, `CROSS_COMPILE=${t.cross}`);
  args.push(...(t.full ? ['modules'] : moduleObjects()));
  // stderr too: the compiler's and modpost's warnings go there.
  const made = spawnSync('make', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  const output = `${made.stdout || ''}${made.stderr || ''}`;
  if (made.status !== 0) throw failure(`physcap.ko does not build for ${t.target} (${t.release})`, { stdout: output });
  if (/warning:/i.test(output)) throw Object.assign(new Error(`physcap.ko builds with warnings for ${t.target}:\n${output}`), { output });
  fs.writeFileSync(path.join(out, 'build.log'), output);
  return output;
}

/**
 * The static C tools for a target into out/, warning-free (-Werror):
 * physcap-client and physcap-selftest.
 */
function buildClient(t, out) {
  fs.mkdirSync(out, { recursive: true });
  try {
    return run('make', ['-s', '-C', path.join(root, 'kernel', 'tools'), `CC=${t.clientCc}`, `OUT=${out}`]);
  } catch (err) {
    throw failure(`physcap-client or physcap-selftest does not build for ${t.target}`, err);
  }
}

function main(argv) {
  const all = targets();
  if (argv[0] === '--list') {
    process.stdout.write(`${JSON.stringify(all)}\n`);
    return;
  }
  const [name, outDir] = argv;
  const t = all.find((x) => x.target === name);
  if (!t || !outDir) {
    process.stderr.write(`usage: kbuild.js --list | TARGET OUTDIR (targets: ${all.map((x) => x.target).join(', ')})\n`);
    process.exitCode = 2;
    return;
  }
  const started = process.hrtime.bigint();
  const result = { target: t.target, release: t.release, kind: t.full ? 'link' : 'compile', ok: true };
  try {
    buildModule(t, path.join(outDir, 'module'));
    const ko = path.join(outDir, 'module', 'physcap.ko');
    if (t.full) result.module = ko;
    buildClient(t, path.join(outDir, 'bin'));
    result.client = path.join(outDir, 'bin', 'physcap-client');
    result.selftest = path.join(outDir, 'bin', 'physcap-selftest');
  } catch (err) {
    result.ok = false;
    result.error = err.message;
  }
  result.seconds = Number(process.hrtime.bigint() - started) / 1e9;
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exitCode = result.ok ? 0 : 1;
}

module.exports = { targets, buildModule, buildClient };

if (require.main === module) main(process.argv.slice(2));
