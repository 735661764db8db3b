/**
 * The physcap CLI (agent/bin/physcap.js), and `physcap run` as a process on
 * a working directory laid out the way the tests and the benchmark lay it
 * out: DIR/profiles, DIR/state, DIR/run (the control socket) with the
 * trigger spool in DIR/run/triggers, and no agent.yaml (DIR/none.yaml is
 * never written); image-source profiles read DIR/image and capture into
 * DIR/out.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
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

export interface AgentProfile {
  name: string;
  /** The one region: its name, start and size as the YAML says them ("0x0", 64KiB). */
  region: [string, string, string];
  /** Trigger entries, each the YAML after "- " ("kind: file"; more lines indented four spaces). */
  triggers: string[];
  /** The image the region is read from; default DIR/image. */
  image?: string;
  /** Top-level fields after the source, as whole lines ("cooldown: 0\n"). */
  extra?: string;
}

/**
 * Writes DIR/profiles/NAME.yaml: a profile with the image source and the
 * dir destination DIR/out, for `physcap run` on DIR.  Returns its path.
 */
export function writeAgentProfile(dir: string, p: AgentProfile): string {
  const [region, start, size] = p.region;
  const file = path.join(dir, 'profiles', `${p.name}.yaml`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(
    file,
    `apiVersion: physcap.dev/v1
kind: CaptureProfile
name: ${p.name}
regions:
  - name: ${region}
    start: "${start}"
    size: ${size}
triggers:
${p.triggers.map((t) => `  - ${t}`).join('\n')}
destination:
  kind: dir
  path: ${path.join(dir, 'out')}
source:
  kind: image
  image_path: ${p.image ?? path.join(dir, 'image')}
${p.extra ?? ''}`,
  );
  return file;
}

/** `physcap run` on DIR; its stdout and stderr are pipes. */
export function runAgent(dir: string, o: AgentOptions = {}): ChildProcess {
  const runtime = path.join(dir, 'run');
  return spawn(
    process.execPath,
    [
      physcapCli,
      'run',
      '--config',
      path.join(dir, 'none.yaml'),
      '--profiles-dir',
      path.join(dir, 'profiles'),
      '--state-dir',
      path.join(dir, 'state'),
      '--runtime-dir',
      runtime,
      '--spool-dir',
      o.spoolDir ?? path.join(runtime, 'triggers'),
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
