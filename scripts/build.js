#!/usr/bin/env node
// Builds everything the tests, the benchmark and the demo need, incrementally:
// physcap.ko for every kernel in build/kernels.json (warning-free), the C
// tools (physcap-client, physcap-selftest), an initramfs per kernel for the
// emulated board, the cross trees (scripts/cross/trees.sh, cached outside
// the checkout) with the PowerPC board's module, static tools and init, and
// the TypeScript.
'use strict';

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const kbuild = require('./kbuild');

const root = path.resolve(__dirname, '..');
const build = path.join(root, 'build');

function log(msg) {
  process.stderr.write(`physcap build: ${msg}\n`);
}

function run(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });
}

function buildModule(kernel) {
  const target = { target: `x86-64-${kernel.series}`, tree: kernel.headers, release: kernel.release, full: true };
  const out = path.join(build, 'kernel', kernel.release);
  kbuild.buildModule(target, out);
  return path.join(out, 'physcap.ko');
}

/**
 * The emulated PowerPC board's parts: its kernel tree (built by
 * trees.sh), physcap.ko against it, and the static physcap-client,
 * physcap-selftest and board init (harness/ppc/init.c) cross-compiled for it.
 */
function buildPpcBoard() {
  const t = kbuild.targets().find((x) => x.target === 'ppce500-board');
  if (!t) throw new Error('build/cross.json has no ppce500-board tree (scripts/cross/trees.sh)');
  const out = path.join(build, 'ppc');
  kbuild.buildModule(t, path.join(out, 'module'));
  kbuild.buildClient(t, out);
  const init = path.join(root, 'harness', 'ppc', 'init.c');
  const initOut = path.join(out, 'board-init');
  if (!fs.existsSync(initOut) || fs.statSync(initOut).mtimeMs < fs.statSync(init).mtimeMs) {
    run(t.clientCc, ['-O2', '-Wall', '-Wextra', '-Werror', '-static', '-o', initOut, init]);
  }
  fs.writeFileSync(
    path.join(out, 'board.json'),
    `${JSON.stringify({ release: t.release, tree: t.tree, vmlinux: path.join(t.tree, 'vmlinux'), softdog: path.join(t.tree, 'drivers', 'watchdog', 'softdog.ko'), genInitCpio: path.join(t.tree, 'usr', 'gen_init_cpio'), module: path.join(out, 'module', 'physcap.ko'), client: path.join(out, 'physcap-client'), selftest: path.join(out, 'physcap-selftest'), init: initOut }, null, 2)}\n`,
  );
}

function newestMtime(files) {
  return Math.max(...files.map((f) => fs.statSync(f).mtimeMs));
}

function buildInitramfs(kernel) {
  const out = path.join(build, 'vm', `initramfs-${kernel.release}.cpio.gz`);
  const inputs = ['init.sh', 'build-initramfs.sh'].map((f) => path.join(root, 'harness', f));
  if (fs.existsSync(out) && fs.statSync(out).mtimeMs >= newestMtime(inputs)) return out;
  fs.mkdirSync(path.dirname(out), { recursive: true });
  log(`initramfs for ${kernel.release}`);
  run('bash', [path.join(root, 'harness', 'build-initramfs.sh'), kernel.release, out]);
  return out;
}

// node-gyp against the running node's own headers (this machine's npm is set
// up with nodedir=/usr; nothing is downloaded when the headers are there).
function buildAddon() {
  const native = path.join(root, 'native');
  const gyp = path.join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  const nodedir = path.resolve(path.dirname(process.execPath), '..');
  const args = fs.existsSync(path.join(nodedir, 'include', 'node', 'node_api.h')) ? [`--nodedir=${nodedir}`] : [];
  if (!fs.existsSync(path.join(native, 'build', 'Makefile'))) {
    run(process.execPath, [gyp, 'configure', ...args], { cwd: native });
  }
  run(process.execPath, [gyp, 'build', ...args], { cwd: native });
}

function main() {
  const kernels = JSON.parse(fs.readFileSync(path.join(build, 'kernels.json'), 'utf8'));
  for (const kernel of kernels) {
    buildModule(kernel);
    buildInitramfs(kernel);
  }
  // The demo and the benchmark run on the x86-64 board only: they skip the
  // cross trees, whose first build takes about ten minutes.
  if (!process.argv.includes('--skip-cross')) {
    run('bash', [path.join(root, 'scripts', 'cross', 'trees.sh')], { stdio: ['ignore', 'pipe', 'inherit'] });
    buildPpcBoard();
  }
  fs.mkdirSync(path.join(build, 'bin'), { recursive: true });
  run('make', ['-s', '-C', path.join(root, 'kernel', 'tools'), `OUT=${path.join(build, 'bin')}`]);
  buildAddon();
  run(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(root, 'tsconfig.json')], {
    cwd: root,
  });
  run(process.execPath, [path.join(root, 'scripts', 'gen-validators.js')], { cwd: root });
  const ppc = process.argv.includes('--skip-cross') ? '' : ' and the PowerPC board';
  log(`ready: physcap.ko for ${kernels.map((k) => k.release).join(', ')}${ppc}, physcap.node, the CLI`);
}

try {
  main();
} catch (err) {
  if (err.stdout || err.stderr) process.stderr.write(`${err.stdout || ''}${err.stderr || ''}`);
  log(err.message);
  process.exitCode = 1;
}
