/**
 * The physcap CLI (agent/bin/physcap.js), and `physcap run` as a process on
 * a working directory laid out the way the tests and the benchmark lay it
 * out: DIR/profiles, DIR/state, DIR/run (the control socket) with the
 * trigger spool in DIR/run/triggers, and no agent.yaml (DIR/none.yaml is
 * never written).
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';

import { repoRoot } from './paths';

/** The CLI's entry point, run with node. */
export const physcapCli = path.join(repoRoot(), 'agent', 'bin', 'physcap.js');

export interface AgentOptions {
  /** More arguments after the directory's own. */
  extra?: string[];
  env?: NodeJS.ProcessEnv;
  /** The trigger spool; default DIR/run/triggers. */
  spoolDir?: string;
}

/** `physcap run` on DIR; its stdout and stderr are pipes. */
export function runAgent(dir: string, o: AgentOptions = {}): ChildProcess {
  const runtime = path.join(dir, 'run');
  return spawn(
    process.execPath,
    [
      physcapCli, 'run',
      '--config', path.join(dir, 'none.yaml'),
      '--profiles-dir', path.join(dir, 'profiles'),
      '--state-dir', path.join(dir, 'state'),
      '--runtime-dir', runtime,
      '--spool-dir', o.spoolDir ?? path.join(runtime, 'triggers'),
      ...(o.extra ?? []),
    ],
    { env: o.env ?? process.env },
  );
}

/** SIGTERM, and wait for the exit (nothing if it has exited). */
export async function stopAgent(agent: ChildProcess): Promise<void> {
  if (agent.exitCode !== null) return;
  agent.kill('SIGTERM');
  await new Promise((r) => agent.once('exit', r));
}
