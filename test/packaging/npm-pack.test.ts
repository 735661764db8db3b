/**
 * The npm package: `npm pack` (prepack compiles the TypeScript) gives a
 * tarball with the CLI, the addon's sources, the schemas, the module's
 * sources for DKMS and the packaging files, and nothing built.  Installed
 * globally into a fresh prefix, it builds the addon at install (node-gyp)
 * and its CLI works from there: --version, validate (good and bad
 * profiles), and an image-source capture that verifies.
 */
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { exec } from '../support/cli';
import { sha256 } from '../support/hash';
import { removeDir, tempDir } from '../support/tmp';

const root = path.join(__dirname, '..', '..');
const version = (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;

const run = (cmd: string, args: string[], opts: { cwd?: string } = {}) => exec(cmd, args, { cwd: opts.cwd, timeout: 240_000 });

describe('npm pack → install into a fresh prefix', () => {
  let tmp: string;
  let tarball: string;
  let bin: string;

  beforeAll(async () => {
    tmp = tempDir('pack');
    const packed = await run('npm', ['pack', '--pack-destination', tmp, '--json'], { cwd: root });
    if (packed.code !== 0) throw new Error(`npm pack failed:\n${packed.stderr}`);
    tarball = path.join(tmp, (JSON.parse(packed.stdout) as Array<{ filename: string }>)[0]!.filename);
    const prefix = path.join(tmp, 'prefix');
    const installed = await run('npm', ['install', '--global', '--prefix', prefix, tarball, '--prefer-offline', '--no-audit', '--no-fund'], { cwd: tmp });
    if (installed.code !== 0) throw new Error(`npm install of the tarball failed:\n${installed.stdout}${installed.stderr}`);
    bin = path.join(prefix, 'bin', 'physcap');
  }, 10 * 60_000);
  afterAll(() => removeDir(tmp));

  test('the tarball holds sources, schemas, DKMS and systemd files, and nothing built', () => {
    const files = execFileSync('tar', ['tzf', tarball], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map((f) => f.replace(/^package\//, ''));
    for (const f of [
      'agent/bin/physcap.js',
      'dist/agent/src/cli/main.js',
      'native/binding.gyp',
      'native/src/io/capture.cc',
      'schemas/profile.schema.json',
      'kernel/dkms.conf',
      'kernel/physcap_main.c',
      'kernel/Kbuild',
      'kernel/tools/physcap-client.c',
      'kernel/tools/physcap-selftest.c',
      'kernel/tools/common.c',
      'kernel/tools/common.h',
      'packaging/physcap.service',
      'configs/agent.yaml',
      'docs/reference.md',
      'README.md',
    ]) {
      expect(files).toContain(f);
    }
    expect(files.filter((f) => /\.(o|ko|node)$|^native\/build\/|^test\/|^build\/|^node_modules\//.test(f))).toEqual([]);
  });

  test('the installed CLI reports the package version; its addon was built at install', async () => {
    const r = await run(bin, ['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(version);
    expect(fs.existsSync(path.join(path.dirname(path.dirname(bin)), 'lib', 'node_modules', 'physcap', 'native', 'build', 'Release', 'physcap.node'))).toBe(
      true,
    );
  });

  test('validate: a good profile passes; a bad one is refused with file:line:col and the field', async () => {
    const good = path.join(tmp, 'good.yaml');
    fs.writeFileSync(
      good,
      `apiVersion: physcap.dev/v1\nkind: CaptureProfile\nname: packaged\nregions:\n  - name: ram\n    start: "0x0"\n    size: 1MiB\ntriggers:\n  - kind: control\ndestination:\n  kind: dir\n  path: ${path.join(tmp, 'captures')}\nsource:\n  kind: image\n  image_path: ${path.join(tmp, 'memory.img')}\n`,
    );
    const ok = await run(bin, ['validate', good]);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);

    const bad = path.join(tmp, 'bad.yaml');
    fs.writeFileSync(bad, fs.readFileSync(good, 'utf8').replace('size: 1MiB', 'size: lots'));
    const no = await run(bin, ['validate', bad]);
    expect(no.code).not.toBe(0);
    expect(`${no.stdout}${no.stderr}`).toMatch(new RegExp(`${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:7:\\d+.*size`));
  });

  test('an image-source capture from the installed package completes and verifies', async () => {
    const image = path.join(tmp, 'memory.img');
    const bytes = crypto.randomBytes(4 << 20);
    fs.writeFileSync(image, bytes);
    fs.mkdirSync(path.join(tmp, 'captures'), { recursive: true });
    const cap = await run(bin, ['capture', path.join(tmp, 'good.yaml'), '--json']);
    expect(cap.stderr).toBe('');
    expect(cap.code).toBe(0);
    const out = JSON.parse(cap.stdout) as { id: string; status: string; location: string };
    expect(out.status).toBe('complete');
    // One region of 1 MiB: one chunk, whose digest is the true bytes'.
    const m = JSON.parse(fs.readFileSync(path.join(out.location, 'manifest.json'), 'utf8')) as { regions: Array<{ chunks: string[] }> };
    expect(m.regions[0]!.chunks).toEqual([sha256(bytes.subarray(0, 1 << 20))]);
    const verify = await run(bin, ['verify', out.id, '--dest', path.join(tmp, 'captures')]);
    expect(verify.code).toBe(0);
  });
});
