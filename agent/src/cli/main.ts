import { Command, CommanderError } from 'commander';

import * as fs from 'node:fs';
import * as path from 'node:path';

import { DEFAULT_AGENT_CONFIG_FILE, loadAgentConfig } from '../config/agent-config';
import { byPosition, formatDiagnostic, hasErrors } from '../config/diagnostics';
import { request } from '../control/client';
import { CONTROL_SOCKET } from '../control/protocol';
import { CheckedFile, checkFiles, DEFAULT_PROFILE_DIRS, listDropIns } from '../config/load';
import { readIomemNames } from '../config/semantic';
import { readModuleStatus } from '../kernel/module-status';
import { VERSION } from '../core/version';
import { requestKinds, TRIGGER_KINDS } from '../triggers/registry';
import { registerBroker } from './broker';
import { registerCapture } from './capture';
import { registerImport } from './import';
import { registerPostmortem } from './postmortem';
import { Cli, formatBytes } from './shared';

/** Exit codes scripts can rely on. */
/** Each trigger kind's help lines, from the registry. */
function triggerKindsHelp(): string {
  const width = Math.max(...TRIGGER_KINDS.map((k) => k.kind.length)) + 2;
  return TRIGGER_KINDS.map((k) => k.help.map((line, i) => `  ${(i ? '' : k.kind).padEnd(width)}${line}`).join('\n')).join('\n');
}

export const EXIT = {
  ok: 0,
  /** A command failed; for validate: some file is invalid. */
  failure: 1,
  usage: 2,
  /** sysexits' EX_UNAVAILABLE: the kernel module is not loaded, the agent not running. */
  unavailable: 69,
  /** sysexits' EX_CONFIG: systemd's RestartPreventExitStatus=78 stops restart loops. */
  config: 78,
} as const;

/**
 * What to validate: files as given, directories' *.yaml in name order.  A
 * path the caller named that yields no profile is itself a finding: a
 * directory named like a profile, or a directory with none in it.
 */
function expandPaths(paths: string[]): { files: string[]; findings: CheckedFile[] } {
  if (!paths.length) {
    const d = listDropIns(DEFAULT_PROFILE_DIRS);
    return { files: d.files, findings: d.refused };
  }
  const files: string[] = [];
  const findings: CheckedFile[] = [];
  const finding = (file: string, message: string, expected?: string) =>
    findings.push({ file, diagnostics: [{ severity: 'error', file, line: 0, col: 0, pointer: '', message, expected }] });
  for (const p of paths) {
    let isDir = false;
    try {
      isDir = fs.lstatSync(p).isDirectory();
    } catch {
      /* reported by the check of the file itself */
    }
    if (!isDir) {
      files.push(p);
      continue;
    }
    if (/\.ya?ml$/.test(p)) {
      finding(p, 'a directory, not a profile file', 'name a profile file, or a directory of them');
      continue;
    }
    const d = listDropIns([path.resolve(p)]);
    findings.push(...d.refused.map((f) => ({ ...f, file: p, diagnostics: f.diagnostics.map((x) => ({ ...x, file: p })) })));
    if (!d.refused.length && !d.files.length) finding(p, 'no profiles (*.yaml, *.yml) in this directory');
    files.push(...d.files.map((f) => path.relative(process.cwd(), f) || f));
  }
  return { files, findings };
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
      const { files, findings } = expandPaths(paths);
      const result = checkFiles(files, { iomemNames: readIomemNames() }, [], findings);
      const status = (ds: (typeof result.files)[number]['diagnostics']) => (hasErrors(ds) ? 'fail' : ds.length ? 'warn' : 'pass');
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

  program
    .command('run')
    .description('run the agent in the foreground (as systemd does); SIGHUP reloads, SIGTERM stops')
    .option('--config <file>', 'agent settings', DEFAULT_AGENT_CONFIG_FILE)
    .option('--profiles-dir <dirs...>', 'profile drop-in directories, lowest precedence first')
    .option('--state-dir <dir>', 'state directory')
    .option('--runtime-dir <dir>', 'runtime directory (control socket)')
    .option('--spool-dir <dir>', 'trigger-file spool directory')
    .option('--grace <seconds>', 'on SIGTERM, how long running captures may finish before they are aborted', '30')
    .addHelpText(
      'after',
      `
Trigger kinds (a profile's "triggers:" list):
${triggerKindsHelp()}

Signals: SIGHUP reloads profiles; SIGTERM/SIGINT stop.  Exit 78: invalid agent.yaml.`,
    )
    .action(async (opts: { config: string; profilesDir?: string[]; stateDir?: string; runtimeDir?: string; spoolDir?: string; grace: string }) => {
      const loaded = loadAgentConfig(opts.config);
      if (!loaded.config) {
        for (const d of loaded.diagnostics) err(`${formatDiagnostic(d)}\n`);
        code = EXIT.config;
        return;
      }
      const config = {
        ...loaded.config,
        ...(opts.profilesDir && { profileDirs: opts.profilesDir.map((d) => path.resolve(d)) }),
        ...(opts.stateDir && { stateDir: path.resolve(opts.stateDir) }),
        ...(opts.runtimeDir && { runtimeDir: path.resolve(opts.runtimeDir) }),
        ...(opts.spoolDir && { spoolDir: path.resolve(opts.spoolDir) }),
      };
      // Loaded here, not at the top: the daemon and its logger and metrics
      // cost every other command (verify, list...) 50 ms of start-up.
      const [{ Agent }, { pinoLogger }, { systemClock }] = await Promise.all([import('../daemon/agent'), import('../core/logger'), import('../core/clock')]);
      const agent = new Agent({ config, log: pinoLogger(config.logLevel), clock: systemClock });
      await agent.start();
      await new Promise<void>((resolve) => {
        process.once('SIGTERM', () => resolve());
        process.once('SIGINT', () => resolve());
      });
      await agent.stop(Number(opts.grace) * 1000);
    });

  const socketOf = (runtimeDir: string) => path.join(runtimeDir, CONTROL_SOCKET);
  const talk = async (runtimeDir: string, req: Parameters<typeof request>[1]) => {
    try {
      return await request(socketOf(runtimeDir), req);
    } catch (e) {
      err(`physcap: the agent does not answer on ${socketOf(runtimeDir)}: ${(e as Error).message}\n`);
      code = EXIT.unavailable;
      return undefined;
    }
  };

  program
    .command('trigger')
    .description(`ask the running agent to capture a profile now (its profile needs a trigger that takes requests: ${requestKinds().join(', ')})`)
    .argument('<profile>', 'profile name')
    .option('--reason <text>', 'why, for the log and the capture record')
    .option('--runtime-dir <dir>', "the agent's runtime directory", '/run/physcap')
    .action(async (profile: string, opts: { reason?: string; runtimeDir: string }) => {
      const res = await talk(opts.runtimeDir, { op: 'trigger', profile, reason: opts.reason });
      if (!res) return;
      if (!res.ok) {
        err(`physcap: ${res.error}\n`);
        code = EXIT.failure;
        return;
      }
      const o = res.outcome as { status: string; capture?: string; reason?: string; detail?: string };
      out(`${o.status}${o.capture ? ` ${o.capture}` : ''}${o.reason ? `: ${o.reason}` : ''}${o.detail ? ` (${o.detail})` : ''}\n`);
      if (o.status === 'refused') code = EXIT.failure;
    });

  program
    .command('status')
    .description("the running agent's profiles and captures")
    .option('--json', 'print JSON')
    .option('--runtime-dir <dir>', "the agent's runtime directory", '/run/physcap')
    .action(async (opts: { json?: boolean; runtimeDir: string }) => {
      const res = await talk(opts.runtimeDir, { op: 'status' });
      if (!res) return;
      // Refused (not permitted, a bad request): a failure, in JSON too.
      if (!res.ok) code = EXIT.failure;
      if (opts.json) return void out(`${JSON.stringify(res)}\n`);
      if (!res.ok) return void err(`physcap: ${res.error}\n`);
      const profiles = res.profiles as Array<{ name: string; triggers: string[] }>;
      const running = res.running as Array<{ capture: string; profile: string }>;
      out(`${profiles.length} profiles active\n`);
      for (const p of profiles) out(`  ${p.name.padEnd(24)} ${p.triggers.join(', ')}\n`);
      out(`${running.length} captures running\n`);
      for (const c of running) out(`  ${c.capture} (${c.profile})\n`);
    });

  const cli: Cli = {
    out,
    err,
    setCode: (c) => {
      code = c;
    },
    isTTY: process.stderr.isTTY === true,
  };
  registerCapture(program, cli);
  registerPostmortem(program, cli);
  registerImport(program, cli);
  registerBroker(program, cli);

  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    err(`physcap: ${e instanceof Error ? e.message : String(e)}\n`);
    return EXIT.failure;
  }
  return code;
}
