/**
 * Profiles from drop-in directories, systemd's way: directories in order of
 * precedence, a file in a later directory overrides one of the same name,
 * a link to /dev/null masks it.  Every file is checked on its own (read,
 * YAML, schema, semantics); then the profiles are checked against each
 * other.  A bad file yields diagnostics, never an exception.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { byPosition, Diagnostic, hasErrors } from './diagnostics';
import { buildProfile, Profile } from './profile';
import { validators, schemaDiagnostics } from './schemas';
import { checkProfile, SemanticContext } from './semantic';
import { parseYaml, YamlSource } from './yaml-source';

export const DEFAULT_PROFILE_DIRS = ['/usr/lib/physcap/profiles.d', '/etc/physcap/profiles.d', '/run/physcap/profiles.d'];

/** Files larger than this are refused unread: no profile is that long. */
export const MAX_PROFILE_BYTES = 1 << 20;

export interface CheckedFile {
  file: string;
  profile?: Profile;
  diagnostics: Diagnostic[];
  /** For positions of cross-file findings. */
  source?: YamlSource;
}

export interface DropIns {
  files: string[];
  masked: string[];
}

function isProfileName(name: string): boolean {
  return /\.ya?ml$/.test(name) && !name.startsWith('.');
}

export function listDropIns(dirs: readonly string[]): DropIns {
  const chosen = new Map<string, string | null>();
  for (const dir of dirs) {
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      continue; // a missing directory is normal
    }
    for (const name of names.filter(isProfileName)) {
      const file = path.join(dir, name);
      let masked = false;
      try {
        masked = fs.lstatSync(file).isSymbolicLink() && fs.readlinkSync(file) === '/dev/null';
      } catch {
        /* reported when read */
      }
      chosen.set(name, masked ? null : file);
    }
  }
  const files: string[] = [];
  const masked: string[] = [];
  for (const [name, file] of [...chosen].sort(([a], [b]) => a.localeCompare(b))) {
    if (file) files.push(file);
    else masked.push(name);
  }
  return { files, masked };
}

function fileProblem(file: string, message: string, expected?: string): CheckedFile {
  return { file, diagnostics: [{ severity: 'error', file, line: 0, col: 0, pointer: '', message, expected }] };
}

function readText(file: string): string | CheckedFile {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') return fileProblem(file, 'a symbolic link loop', 'a link that ends in a file');
    if (code === 'ENOENT') return fileProblem(file, 'no such file (a dangling link?)');
    return fileProblem(file, `cannot read: ${code}`);
  }
  if (!st.isFile()) return fileProblem(file, 'not a regular file');
  if (st.size > MAX_PROFILE_BYTES) return fileProblem(file, `${st.size} bytes is too large for a profile`, `at most ${MAX_PROFILE_BYTES} bytes`);
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    return fileProblem(file, `cannot read: ${(e as NodeJS.ErrnoException).code}`, 'readable by the agent');
  }
  if (buf.includes(0)) return fileProblem(file, 'binary data, not YAML text');
  const text = buf.toString('utf8');
  if (text.includes('\uFFFD') && !buf.includes(Buffer.from('\uFFFD'))) return fileProblem(file, 'not valid UTF-8 text');
  return text;
}

/** Checks one file; its diagnostics come in reading order. */
export function checkFile(file: string, ctx: SemanticContext = {}): CheckedFile {
  const checked = checkFileUnsorted(file, ctx);
  checked.diagnostics.sort(byPosition);
  return checked;
}

function checkFileUnsorted(file: string, ctx: SemanticContext): CheckedFile {
  const text = readText(file);
  if (typeof text !== 'string') return text;
  const src = parseYaml(file, text);
  const diagnostics = [...src.diagnostics];
  if (hasErrors(diagnostics)) return { file, diagnostics, source: src };
  if (typeof src.data !== 'object' || Array.isArray(src.data)) {
    diagnostics.push({ severity: 'error', file, line: 1, col: 1, pointer: '', message: 'a profile is a mapping of fields', expected: 'apiVersion, kind, name, regions, ...' });
    return { file, diagnostics, source: src };
  }
  const doc = src.data as Record<string, unknown>;
  // The agent's own settings file is checked against its schema, not as a profile.
  const isAgentConfig = doc.kind === 'AgentConfig';
  const validate = isAgentConfig ? validators().agent : validators().profile;
  if (!validate(src.data)) {
    diagnostics.push(...schemaDiagnostics(src, validate.errors ?? []));
    return { file, diagnostics, source: src };
  }
  if (isAgentConfig) return { file, diagnostics, source: src };
  diagnostics.push(...checkProfile(src, doc, ctx));
  if (hasErrors(diagnostics)) return { file, diagnostics, source: src };
  const sha = crypto.createHash('sha256').update(text).digest('hex');
  try {
    return { file, diagnostics, source: src, profile: buildProfile(doc, file, sha) };
  } catch (err) {
    // A gap between the checks and the builder must cost this file, never the agent.
    diagnostics.push({ severity: 'error', file, line: 1, col: 1, pointer: '', message: `cannot build the profile: ${(err as Error).message}` });
    return { file, diagnostics, source: src };
  }
}

/**
 * Findings between profiles: a name, a trigger file or a signal may belong
 * to one profile only.  The later file (in name order) is the one in error.
 */
export function crossCheck(files: CheckedFile[]): void {
  const claims = new Map<string, { file: string; pointer: string }>();
  const claim = (f: CheckedFile, key: string, pointer: string, what: string) => {
    const prior = claims.get(key);
    if (!prior) return void claims.set(key, { file: f.file, pointer });
    f.diagnostics.push({
      severity: 'error',
      file: f.file,
      ...(f.source?.locate(pointer) ?? { line: 1, col: 1 }),
      pointer,
      message: `${what} is already claimed by ${prior.file}`,
      expected: 'one profile per name, trigger file and signal',
    });
    f.profile = undefined;
  };
  for (const f of files) {
    const p = f.profile;
    if (!p) continue;
    claim(f, `name:${p.name}`, '/name', `profile name "${p.name}"`);
    p.triggers.forEach((t, i) => {
      if (t.kind === 'file') claim(f, `file:${t.name}`, `/triggers/${i}`, `trigger file "${t.name}"`);
      if (t.kind === 'signal') claim(f, `signal:${t.signal}`, `/triggers/${i}`, `signal ${t.signal}`);
    });
  }
}

export interface LoadResult {
  files: CheckedFile[];
  masked: string[];
  /** The valid profiles, by name. */
  profiles: Map<string, Profile>;
}

export function loadProfiles(dirs: readonly string[], ctx: SemanticContext = {}): LoadResult {
  const { files, masked } = listDropIns(dirs);
  return checkFiles(files, ctx, masked);
}

export function checkFiles(paths: readonly string[], ctx: SemanticContext = {}, masked: string[] = []): LoadResult {
  const checked = paths.map((f) => checkFile(f, ctx));
  crossCheck(checked);
  const profiles = new Map<string, Profile>();
  for (const f of checked) if (f.profile) profiles.set(f.profile.name, f.profile);
  return { files: checked, masked, profiles };
}
