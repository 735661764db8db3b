/**
 * physcap import <core> --dest <destination>: a board's ELF core (from
 * physcap-client capture, on a board without Node) into a destination as a
 * capture with a manifest, so the post-mortem verbs work on it.
 */
import type { Command } from 'commander';

import * as fs from 'node:fs';
import * as path from 'node:path';

import { importCore } from '../capture/import';
import { openStoreAt } from '../destinations/registry';
import { Cli, formatBytes, progressReporter, regionDigest } from './shared';

export function registerImport(program: Command, cli: Cli): void {
  program
    .command('import')
    .description("make an ELF core taken elsewhere (physcap-client capture on a board) a capture in a destination, in the core's own machine and byte order")
    .argument('<core>', 'the ELF core file')
    .requiredOption('--dest <path>', 'a capture directory (created if missing) or a dump partition / its image')
    .option('--name <name>', "the capture's profile name", 'import')
    .option('--key <pem>', 'sign the manifest with this ed25519 private key')
    .option('--digest <file>', "the board's digest file to check the core against (default: <core>.digest when present)")
    .option('--json', 'print the outcome as JSON (no progress bar)')
    .action(async (core: string, o: { dest: string; name: string; key?: string; digest?: string; json?: boolean }) => {
      const dest = path.resolve(o.dest);
      if (!fs.existsSync(dest)) fs.mkdirSync(dest, { recursive: true, mode: 0o750 });
      const store = openStoreAt(dest);
      const progress = o.json ? undefined : progressReporter(cli, 'import');
      try {
        const outcome = await importCore(
          { file: core, store, name: o.name, ...(o.key ? { signingKey: path.resolve(o.key) } : {}), ...(o.digest ? { digestFile: o.digest } : {}) },
          { onProgress: progress?.update },
        );
        progress?.stop();
        if (o.json) {
          cli.out(
            `${JSON.stringify({ id: outcome.id, status: outcome.status, location: outcome.location, bytes: outcome.bytes, byteOrder: outcome.manifest?.byteOrder, error: outcome.error, regions: outcome.manifest?.regions.map((r) => ({ name: r.name, phys: r.phys, size: r.size, sha256: r.sha256 })) })}\n`,
          );
        } else if (outcome.status === 'complete') {
          cli.out(`${outcome.id}: imported, ${formatBytes(outcome.bytes)}, ${outcome.manifest?.byteOrder}-endian\n  ${outcome.location}\n`);
          for (const r of outcome.manifest?.regions ?? [])
            cli.out(`  ${r.name.padEnd(16)} ${r.phys.padEnd(14)} ${formatBytes(r.size).padStart(10)}  ${regionDigest(r)}\n`);
        } else {
          cli.err(`physcap: import ${outcome.id} FAILED: ${outcome.error?.message}\n  left as ${outcome.location}\n`);
        }
        if (outcome.status !== 'complete') cli.setCode(1);
      } finally {
        progress?.stop();
        store.close();
      }
    });
}
