/**
 * LiME, the peer in the board benchmark: Debian's lime-forensics-dkms
 * (1.9.1), its source fetched once into ~/.cache/physcap/lime and built
 * against the guest kernel's headers as physcap.ko is.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { KernelSpec, repoRoot } from '../harness/paths';

const cache = path.join(os.homedir(), '.cache', 'physcap', 'lime');

/** The package's source tree, downloaded and unpacked once. */
function limeSource(): string {
  fs.mkdirSync(cache, { recursive: true });
  let deb = fs.readdirSync(cache).find((f) => /^lime-forensics-dkms_.*\.deb$/.test(f));
  if (!deb) {
    try {
      execFileSync('apt-get', ['download', 'lime-forensics-dkms'], { cwd: cache, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      throw new Error(`LiME: apt-get download lime-forensics-dkms failed in ${cache}: ${(err as { stderr?: Buffer }).stderr?.toString() ?? String(err)}`, {
        cause: err,
      });
    }
    deb = fs.readdirSync(cache).find((f) => /^lime-forensics-dkms_.*\.deb$/.test(f));
    if (!deb) throw new Error(`LiME: apt-get download left no lime-forensics-dkms package in ${cache}`);
  }
  const unpacked = path.join(cache, deb.replace(/\.deb$/, ''));
  if (!fs.existsSync(unpacked)) {
    execFileSync('dpkg-deb', ['-x', path.join(cache, deb), `${unpacked}.tmp`]);
    fs.renameSync(`${unpacked}.tmp`, unpacked);
  }
  const src = path.join(unpacked, 'usr', 'src');
  const dir = fs.readdirSync(src).find((d) => d.startsWith('lime-forensics-'));
  if (!dir) throw new Error(`LiME: no source tree in ${src}`);
  return path.join(src, dir);
}

/** lime.ko for the kernel, built in build/lime/<release> (kept while the source and headers stay). */
export function limeModule(kernel: KernelSpec): string {
  const src = limeSource();
  const out = path.join(repoRoot(), 'build', 'lime', kernel.release);
  const ko = path.join(out, 'lime.ko');
  if (fs.existsSync(ko)) return ko;
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  for (const f of fs.readdirSync(src)) if (/\.(c|h)$|^Makefile$/.test(f)) fs.copyFileSync(path.join(src, f), path.join(out, f));
  process.stderr.write(`bench: building LiME (${path.basename(src)}) for ${kernel.release}...\n`);
  execFileSync('make', ['-C', kernel.headers, `M=${out}`, 'modules'], { stdio: ['ignore', 'pipe', 'pipe'] });
  if (!fs.existsSync(ko)) throw new Error(`LiME: the build left no ${ko}`);
  return ko;
}
