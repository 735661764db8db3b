#!/usr/bin/env node
// Builds everything the tests, the benchmark and the demo need, incrementally:
// physcap.ko for every kernel in build/kernels.json (warning-free), the C
// client, an initramfs per kernel for the emulated board, and the TypeScript.
'use strict';

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const build = path.join(root, 'build');

function log(msg) {
  process.stderr.write(`physcap build: ${msg}\n`);
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

function buildModule(kernel) {
  const out = path.join(build, 'kernel', kernel.release);
  fs.mkdirSync(out, { recursive: true });
  for (const name of fs.readdirSync(path.join(root, 'kernel'))) {
    if (/\.(c|h)$/.test(name) || name === 'Kbuild') {
      syncFile(path.join(root, 'kernel', name), path.join(out, name));
    }
  }
  let output;
  try {
    output = run('make', ['-C', kernel.headers, `M=${out}`, 'PHYSCAP_WERROR=1', 'modules'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    process.stderr.write(`${err.stdout || ''}${err.stderr || ''}`);
    throw new Error(`physcap.ko does not build against ${kernel.release}`);
  }
  if (/warning:/i.test(output)) {
    process.stderr.write(output);
    throw new Error(`physcap.ko builds with warnings against ${kernel.release}`);
  }
  fs.writeFileSync(path.join(out, 'build.log'), output);
  return path.join(out, 'physcap.ko');
}

function newestMtime(files) {
  return Math.max(...files.map((f) => fs.statSync(f).mtimeMs));
}

function buildInitramfs(kernel) {
  const out = path.join(build, 'vm', `initramfs-${kernel.release}.cpio.gz`);
  const inputs = ['init.sh', 'build-initramfs.sh'].map((f) => path.join(root, 'test', 'vm', f));
  if (fs.existsSync(out) && fs.statSync(out).mtimeMs >= newestMtime(inputs)) return out;
  fs.mkdirSync(path.dirname(out), { recursive: true });
  log(`initramfs for ${kernel.release}`);
  run('bash', [path.join(root, 'test', 'vm', 'build-initramfs.sh'), kernel.release, out]);
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
  fs.mkdirSync(path.join(build, 'bin'), { recursive: true });
  run('make', ['-s', '-C', path.join(root, 'kernel', 'tools'), `OUT=${path.join(build, 'bin')}`]);
  buildAddon();
  run(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(root, 'tsconfig.json')], {
    cwd: root,
  });
  log(`ready: physcap.ko for ${kernels.map((k) => k.release).join(', ')}, physcap.node, the CLI`);
}

try {
  main();
} catch (err) {
  if (err.stdout || err.stderr) process.stderr.write(`${err.stdout || ''}${err.stderr || ''}`);
  log(err.message);
  process.exitCode = 1;
}
