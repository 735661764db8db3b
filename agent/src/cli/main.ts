import { Command, CommanderError } from 'commander';

import * as fs from 'node:fs';
import * as path from 'node:path';

import { byPosition, formatDiagnostic, hasErrors } from '../config/diagnostics';
import { checkFiles, DEFAULT_PROFILE_DIRS, listDropIns } from '../config/load';
import { readIomemNames } from '../config/semantic';
import { readModuleStatus } from '../kernel/module-status';

/** Exit codes scripts can rely on. */
export const EXIT = {
  ok: 0,
  /** A command failed; for validate: some file is invalid. */
  failure: 1,
  usage: 2,
  /** sysexits' EX_UNAVAILABLE: the kernel module is not loaded. */
  unavailable: 69,
} as const;

/** Files to validate: files as given, directories' *.yaml in name order. */
function expandPaths(paths: string[]): string[] {
  if (!paths.length) return listDropIns(DEFAULT_PROFILE_DIRS).files;
  return paths.flatMap((p) => {
    let isDir = false;
    try {
      isDir = fs.statSync(p).isDirectory();
    } catch {
      /* reported by the check of the file itself */
    }
    return isDir ? listDropIns([path.resolve(p)]).files.map((f) => path.relative(process.cwd(), f) || f) : [p];
  });
}

const VERSION = '0.1.0';

function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i ? `${v.toFixed(1)} ${units[i]}` : `${n} B`;
}

/** Runs the CLI; resolves to the exit code instead of exiting. */
export async function main(
  argv: string[],
  out: (s: string) => void = (s) => process.stdout.write(s),
  err: (s: string) => void = (s) => process.stderr.write(s),
): Promise<number> {
  let code: number = EXIT.ok;
  const program = new Command('physcap')
    .description('Capture physical memory to disk, zero-copy, on a trigger')
    .version(VERSION)
    .exitOverride()
    .configureOutput({ writeOut: out, writeErr: err });

  program
    .command('module')
    .description('show whether physcap.ko is loaded, its ABI version and its counters')
    .option('--json', 'print JSON')
    .option('--sys-root <dir>', 'root of the sysfs and /dev tree to read', '/')
    .action((opts: { json?: boolean; sysRoot: string }) => {
      const status = readModuleStatus(opts.sysRoot);
      if (opts.json) {
        out(`${JSON.stringify(status)}\n`);
      } else if (!status.loaded) {
        out(`physcap.ko is not loaded (no ${status.device})\n`);
      } else {
        out(`physcap.ko loaded: ${status.device}, ABI ${status.abiVersion}\n`);
        for (const [name, value] of Object.entries(status.counters)) {
          out(`  ${name.padEnd(20)} ${name.startsWith('bytes_') ? formatBytes(value) : value}\n`);
        }
      }
      if (!status.loaded) code = EXIT.unavailable;
    });

  program
    .command('validate')
    .description('check profiles (files, or directories of *.yaml; default: the drop-in directories)')
    .argument('[paths...]', 'profile files or directories')
    .option('--json', 'print JSON')
    .option('--deny-warnings', 'fail on warnings too')
    .action((paths: string[], opts: { json?: boolean; denyWarnings?: boolean }) => {
      const files = expandPaths(paths);
      const result = checkFiles(files, { iomemNames: readIomemNames() });
      const status = (ds: typeof result.files[number]['diagnostics']) =>
        hasErrors(ds) ? 'fail' : ds.length ? 'warn' : 'pass';
      const failed = result.files.some((f) => status(f.diagnostics) === 'fail' || (opts.denyWarnings && status(f.diagnostics) === 'warn'));
      if (opts.json) {
        out(
          `${JSON.stringify({
            ok: !failed,
            files: result.files.map((f) => ({ file: f.file, status: status(f.diagnostics), diagnostics: [...f.diagnostics].sort(byPosition) })),
          })}\n`,
        );
      } else {
        for (const f of result.files) {
          out(`${status(f.diagnostics).toUpperCase()}  ${f.file}\n`);
          for (const d of [...f.diagnostics].sort(byPosition)) out(`  ${formatDiagnostic(d)}\n`);
        }
        if (!result.files.length) out('no profiles found\n');
        out(`${result.files.filter((f) => !hasErrors(f.diagnostics)).length} of ${result.files.length} valid\n`);
      }
      if (failed) code = EXIT.failure;
    });

  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    err(`physcap: ${e instanceof Error ? e.message : String(e)}\n`);
    return EXIT.failure;
  }
  return code;
}
