/**
 * Commands as real processes, for tests: any command's exit code and
 * output, and the physcap CLI (agent/bin/physcap.js) run by node as users
 * run it.  `physcap run` is harness/agent.ts's runAgent.
 */
import { execFile, ExecFileOptions, spawnSync } from 'node:child_process';

import { physcapCli } from '../../harness/agent';

export interface Exit {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end; never rejects: a failure to start, a signal or a timeout is a non-zero code. */
export function exec(cmd: string, args: string[], opts: ExecFileOptions = {}): Promise<Exit> {
  return new Promise((resolve) => {
    execFile(cmd, args, { maxBuffer: 64 << 20, ...opts, encoding: 'utf8' }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** `physcap ARGS` (60 s at most unless said). */
export function physcap(args: string[], opts: { timeout?: number; cwd?: string } = {}): Promise<Exit> {
  return exec(process.execPath, [physcapCli, ...args], { timeout: opts.timeout ?? 60_000, cwd: opts.cwd });
}

/** `physcap ARGS`, synchronously (5 minutes at most). */
export function physcapSync(args: string[]): Exit {
  const r = spawnSync(process.execPath, [physcapCli, ...args], { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 5 * 60_000 });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
