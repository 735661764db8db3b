/**
 * The agent's own settings (/etc/physcap/agent.yaml): every field has a
 * default, so a missing file means the defaults.  An invalid file is
 * returned as diagnostics: the daemon refuses to start on it (exit 78).
 */
import * as fs from 'node:fs';

import { Diagnostic, hasErrors } from './diagnostics';
import { DEFAULT_PROFILE_DIRS, checkFile } from './load';
import { systemDirProblem } from '../core/trusted-path';

export const DEFAULT_AGENT_CONFIG_FILE = '/etc/physcap/agent.yaml';

export interface AgentConfig {
  profileDirs: readonly string[];
  stateDir: string;
  runtimeDir: string;
  spoolDir: string;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
  metricsListen: string;
  signingKey: string;
}

export const AGENT_DEFAULTS: AgentConfig = Object.freeze({
  profileDirs: DEFAULT_PROFILE_DIRS,
  stateDir: '/var/lib/physcap',
  runtimeDir: '/run/physcap',
  spoolDir: '/run/physcap/triggers',
  logLevel: 'info',
  metricsListen: '',
  signingKey: '',
});

export function loadAgentConfig(file = DEFAULT_AGENT_CONFIG_FILE): { config?: AgentConfig; diagnostics: Diagnostic[] } {
  if (!fs.existsSync(file)) return { config: AGENT_DEFAULTS, diagnostics: [] };
  const checked = checkFile(file);
  const doc = checked.source?.data as Record<string, unknown> | undefined;
  if (hasErrors(checked.diagnostics) || !doc) return { diagnostics: checked.diagnostics };
  if (doc.kind !== 'AgentConfig') {
    return {
      diagnostics: [{ severity: 'error', file, line: 1, col: 1, pointer: '/kind', message: 'not an agent configuration', expected: '"AgentConfig"' }],
    };
  }
  // Directories the agent writes into or deletes from are never system directories.
  const dirProblems: Diagnostic[] = [];
  for (const [key, role] of [
    ['spool_dir', 'spool'],
    ['state_dir', 'state directory'],
    ['runtime_dir', 'runtime directory'],
  ] as const) {
    if (typeof doc[key] !== 'string') continue;
    const problem = systemDirProblem(doc[key], role);
    if (problem) dirProblems.push({ severity: 'error', file, ...checked.source!.locate(`/${key}`), pointer: `/${key}`, message: problem });
  }
  if (dirProblems.length) return { diagnostics: [...checked.diagnostics, ...dirProblems] };
  const pick = <T>(key: string, fallback: T): T => (doc[key] as T | undefined) ?? fallback;
  const config: AgentConfig = Object.freeze({
    profileDirs: Object.freeze([...pick<string[]>('profile_dirs', [...AGENT_DEFAULTS.profileDirs])]),
    stateDir: pick('state_dir', AGENT_DEFAULTS.stateDir),
    runtimeDir: pick('runtime_dir', AGENT_DEFAULTS.runtimeDir),
    spoolDir: pick('spool_dir', AGENT_DEFAULTS.spoolDir),
    logLevel: pick('log_level', AGENT_DEFAULTS.logLevel),
    metricsListen: pick('metrics_listen', AGENT_DEFAULTS.metricsListen),
    signingKey: pick('signing_key', AGENT_DEFAULTS.signingKey),
  });
  return { config, diagnostics: checked.diagnostics };
}
