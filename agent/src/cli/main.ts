import { Command, CommanderError } from 'commander';

import { readModuleStatus } from '../kernel/module-status';

/** Exit codes scripts can rely on (sysexits.h where one fits). */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 64,
  unavailable: 69,
} as const;

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

  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    err(`physcap: ${e instanceof Error ? e.message : String(e)}\n`);
    return EXIT.failure;
  }
  return code;
}
