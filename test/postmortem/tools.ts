/**
 * The post-mortem tools kernel engineers use, run on the host as they
 * would run them: Debian's crash, drgn (python3-drgn) and gdb, each given
 * the kernel's debug vmlinux (scripts/debug-vmlinux.sh) and a dump, with
 * no options beyond naming the files (crash before 8.0.6 on kernels
 * without module_load_offset aside: see crashSupport()).  Used by
 * postmortem.vm.test.ts only.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { repoRoot } from '../../harness/paths';
import { withTempDir } from '../support/tmp';

export interface DebugVmlinux {
  release: string;
  vmlinux: string;
  buildId: string;
}

/** The debug vmlinux of each booted kernel, as scripts/debug-vmlinux.sh cached it. */
export function debugVmlinux(release: string): DebugVmlinux {
  const file = path.join(repoRoot(), 'build', 'debug-vmlinux.json');
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: run "bash scripts/debug-vmlinux.sh" (npm test does)`);
  const found = (JSON.parse(fs.readFileSync(file, 'utf8')) as DebugVmlinux[]).find((d) => d.release === release);
  if (!found) throw new Error(`${file} has no vmlinux for ${release}`);
  return found;
}

function run(cmd: string, args: string[], input?: string, timeoutMs = 5 * 60_000): { code: number; out: string } {
  const r = spawnSync(cmd, args, { input, encoding: 'utf8', maxBuffer: 256 << 20, timeout: timeoutMs });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

const version = (text: string): number[] => (/(\d+)\.(\d+)\.(\d+)/.exec(text) ?? []).slice(1).map(Number);
const atLeast = (v: number[], min: number[]) => {
  for (let i = 0; i < 3; i++) if ((v[i] ?? 0) !== min[i]) return (v[i] ?? 0) > min[i]!;
  return true;
};

export function crashVersion(): string {
  return /crash (\S+)/.exec(run('crash', ['--version']).out)?.[1] ?? '?';
}

/**
 * Whether this crash reads this kernel at all, and what it needs:
 *   - Linux 6.4 changed struct module (module_memory): crash before 8.0.3
 *     stops at "invalid structure member offset: module_core_size", on
 *     kdump's own vmcores too;
 *   - crash before 8.0.6 applies KASLR to a dump only if the vmlinux has
 *     a module_load_offset symbol, which Linux 6.10 removed: those need
 *     --kaslr=auto (crash commit 7b5c8bc).
 */
export function crashSupport(crash: string, vmlinuxHasModuleLoadOffset: boolean, release: string): { ok: true; args: string[] } | { ok: false; why: string } {
  const v = version(crash);
  // "6.12.117+deb12-amd64", "6.1.0-57-amd64": major.minor is what matters.
  const k = (/^(\d+)\.(\d+)/.exec(release) ?? []).slice(1).map(Number).concat(0);
  if (atLeast(k, [6, 4, 0]) && !atLeast(v, [8, 0, 3])) {
    return { ok: false, why: `crash ${crash} predates Linux 6.4's module layout (crash 8.0.3 reads it)` };
  }
  return { ok: true, args: !vmlinuxHasModuleLoadOffset && !atLeast(v, [8, 0, 6]) ? ['--kaslr=auto'] : [] };
}

export function hasSymbol(vmlinux: string, name: string): boolean {
  const r = spawnSync('nm', [vmlinux], { encoding: 'utf8', maxBuffer: 1 << 30 });
  return new RegExp(`^[0-9a-f]+ \\S ${name}$`, 'm').test(r.stdout);
}

export interface CrashView {
  code: number;
  output: string;
  /** `sys`: its KEY: value lines. */
  sys: Map<string, string>;
  /** `log`: the kernel log, one entry a line. */
  log: string[];
  /** `kmem -i`: TOTAL MEM in pages. */
  totalMemPages?: number;
}

/**
 * crash VMLINUX DUMP, fed sys, log and kmem -i on its standard input, each
 * redirected by crash itself to a file of its own: crash's output and a
 * shell's interleave in no fixed order on one pipe, files do not mix.
 */
export function runCrash(vmlinux: string, dump: string, extraArgs: string[] = []): CrashView {
  return withTempDir('crash', (dir) => {
    const out = (name: string) => path.join(dir, `${name}.txt`);
    const script = [`sys > ${out('sys')}`, `log > ${out('log')}`, `kmem -i > ${out('kmem')}`, 'q', ''].join('\n');
    const r = run('crash', [...extraArgs, vmlinux, dump], script);
    const section = (name: string) => (fs.existsSync(out(name)) ? fs.readFileSync(out(name), 'utf8').replace(/\n$/, '').split('\n') : []);
    const sys = new Map<string, string>();
    for (const line of section('sys')) {
      const m = /^\s*([A-Z ]+[A-Z]):\s(.*)$/.exec(line);
      if (m) sys.set(m[1]!.trim(), m[2]!.trim());
    }
    // A crash that stopped early says why on its own output: keep it for the failure message.
    if (!sys.size) process.stderr.write(`crash ${[...extraArgs, vmlinux, dump].join(' ')}: no sys output; exit ${r.code}\n${r.out.slice(-3000)}\n`);
    const total = /^\s*TOTAL MEM\s+(\d+)/m.exec(section('kmem').join('\n'));
    return { code: r.code, output: r.out, sys, log: section('log'), ...(total ? { totalMemPages: Number(total[1]) } : {}) };
  });
}

export interface DrgnView {
  comm: string;
  release: string;
  totalram_pages: number;
  pids: number[];
  /** Each pid's comm, in the same order. */
  comms: string[];
  log: string[];
}

/** drgn -c DUMP -s VMLINUX drgn-check.py [TGID]: its default reader, no environment. */
export function runDrgn(vmlinux: string, dump: string, excludeTgid?: number): DrgnView {
  const script = path.join(__dirname, 'drgn-check.py');
  const args = ['-c', dump, '-s', vmlinux, script, ...(excludeTgid !== undefined ? [String(excludeTgid)] : [])];
  const r = spawnSync('drgn', args, { encoding: 'utf8', maxBuffer: 256 << 20, timeout: 5 * 60_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`drgn ${args.join(' ')}: exit ${r.status}\n${r.stderr.slice(-4000)}`);
  const [first, ...rest] = r.stdout.split('\n');
  const view = JSON.parse(first!) as Omit<DrgnView, 'log'>;
  return { ...view, log: rest.join('\n').replace(/\n$/, '').split('\n') };
}

/**
 * gdb reads kernel variables from the dump: the vmlinux relocated by the
 * dump's KASLR offset (gdb knows nothing of VMCOREINFO), then the core.
 * Without a dump: from the vmlinux file itself.
 */
export function runGdb(
  vmlinux: string,
  dump: { file: string; kaslrOffset: string } | null,
  expressions: string[],
): { code: number; output: string; values: string[] } {
  const files = dump ? ['-ex', `symbol-file -o 0x${dump.kaslrOffset} ${vmlinux}`, '-ex', `core-file ${dump.file}`] : [vmlinux];
  const r = run('gdb', ['-nx', '-batch', ...files, ...expressions.flatMap((e) => ['-ex', `print ${e}`])]);
  const values = [...r.out.matchAll(/^\$\d+ = (.*)$/gm)].map((m) => m[1]!);
  return { code: r.code, output: r.out, values };
}

/**
 * util-linux dmesg indents the continuation lines of a multi-line record
 * to line up with the text after the timestamp; crash and drgn print them
 * as the kernel stored them.  Everything else must be equal.
 */
export function logLines(lines: string[]): string[] {
  return lines.map((l) => (/^\[/.test(l) ? l : l.trimStart()).trimEnd());
}
