import * as fs from 'node:fs';
import * as path from 'node:path';

/** The repository root: the nearest directory above this file with package.json. */
export function repoRoot(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${__dirname}`);
    dir = parent;
  }
  return dir;
}

export interface KernelSpec {
  series: string;
  release: string;
  vmlinuz: string;
  modules: string;
  headers: string;
}

/** The kernels scripts/setup.sh installed, oldest series first. */
export function loadKernels(): KernelSpec[] {
  const file = path.join(repoRoot(), 'build', 'kernels.json');
  if (!fs.existsSync(file)) {
    throw new Error(`${file} is missing: run "npm run setup" (scripts/setup.sh) first`);
  }
  return JSON.parse(fs.readFileSync(file, 'utf8')) as KernelSpec[];
}

/** Built artifacts for one kernel, as scripts/build.js lays them out. */
export function artifacts(kernel: KernelSpec): { module: string; initramfs: string; client: string; selftest: string } {
  const root = repoRoot();
  return {
    module: path.join(root, 'build', 'kernel', kernel.release, 'physcap.ko'),
    initramfs: path.join(root, 'build', 'vm', `initramfs-${kernel.release}.cpio.gz`),
    client: path.join(root, 'build', 'bin', 'physcap-client'),
    selftest: path.join(root, 'build', 'bin', 'physcap-selftest'),
  };
}
