/**
 * DKMS: the module installs on a real machine with `dkms add` + `dkms
 * build` against the installed headers, as README's installation section
 * says.  Run in private DKMS and source trees (--dkmstree, --sourcetree),
 * so the machine's own DKMS state is untouched, for every installed kernel
 * the tests boot.  The versions that must agree (dkms.conf, the module's
 * MODULE_VERSION, package.json) are checked too.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { loadKernels } from '../../harness/paths';
import { removeDir, tempDir } from '../support/tmp';

const root = path.join(__dirname, '..', '..');
const kernelDir = path.join(root, 'kernel');
const version = (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;

function conf(key: string): string {
  const m = new RegExp(`^${key}="([^"]*)"`, 'm').exec(fs.readFileSync(path.join(kernelDir, 'dkms.conf'), 'utf8'));
  if (!m) throw new Error(`dkms.conf has no ${key}`);
  return m[1]!;
}

describe('DKMS', () => {
  let tmp: string;
  let src: string;
  const dkmsTree = () => path.join(tmp, 'dkms');

  beforeAll(() => {
    tmp = tempDir('dkms');
    src = path.join(tmp, 'src', `physcap-${version}`);
    fs.mkdirSync(src, { recursive: true });
    fs.mkdirSync(dkmsTree());
    // What `cp -r kernel /usr/src/physcap-<version>` installs (README).
    for (const f of fs.readdirSync(kernelDir)) {
      if (/\.(c|h)$/.test(f) || f === 'Kbuild' || f === 'dkms.conf') fs.copyFileSync(path.join(kernelDir, f), path.join(src, f));
    }
  });
  afterAll(() => removeDir(tmp));

  test('dkms.conf, MODULE_VERSION and package.json agree on the version', () => {
    expect(conf('PACKAGE_NAME')).toBe('physcap');
    expect(conf('PACKAGE_VERSION')).toBe(version);
    expect(fs.readFileSync(path.join(kernelDir, 'physcap.h'), 'utf8')).toContain(`#define PHYSCAP_VERSION\t\t"${version}"`);
  });

  test.each(loadKernels().map((k) => [k.release] as const))(
    'dkms add + build against %s',
    (release) => {
      const common = ['-m', 'physcap', '-v', version, '--sourcetree', path.join(tmp, 'src'), '--dkmstree', dkmsTree()];
      if (!fs.existsSync(path.join(dkmsTree(), 'physcap', version, 'source'))) execFileSync('dkms', ['add', ...common], { stdio: 'pipe' });
      try {
        execFileSync('dkms', ['build', ...common, '-k', release], { stdio: 'pipe', encoding: 'utf8' });
      } catch (err) {
        const e = err as { stdout?: string; stderr?: string };
        const log = path.join(dkmsTree(), 'physcap', version, 'build', 'make.log');
        throw new Error(`dkms build failed for ${release}:\n${e.stdout ?? ''}${e.stderr ?? ''}\n${fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : ''}`, {
          cause: err,
        });
      }
      // Compressed the way the kernel's own modules are (6.12: .ko.xz).
      const dir = path.join(dkmsTree(), 'physcap', version, release, 'x86_64', 'module');
      const built = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => /^physcap\.ko(\.xz|\.zst|\.gz)?$/.test(f)) : [];
      expect(built).toHaveLength(1);
      const ko = path.join(dir, built[0]!);
      const info = execFileSync('modinfo', ['-F', 'vermagic', ko], { encoding: 'utf8' });
      expect(info.split(' ')[0]).toBe(release);
      expect(execFileSync('modinfo', ['-F', 'version', ko], { encoding: 'utf8' }).trim()).toBe(version);
    },
    5 * 60_000,
  );
});
