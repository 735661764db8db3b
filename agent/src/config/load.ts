/**
 * Profiles from drop-in directories, systemd's way: directories in order of
 * precedence, a file in a later directory overrides one of the same name,
 * a link to /dev/null masks it.  Every file is checked on its own (read,
 * YAML, schema, semantics); then the profiles are checked against each
 * other.  A bad file yields diagnostics, never an exception.
 *
 * Profiles decide what the agent dumps, so they are read only from
 * trusted places (core/trusted-path): a profile directory or file that
 * someone other than root or physcap's user can write is refused, and so
 * is a profile that is a symbolic link (other than a /dev/null mask): it
 * would read, and quote in diagnostics, whatever file it points at.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { byPosition, Diagnostic, hasErrors } from './diagnostics';
import { buildProfile, Profile } from './profile';
import { validators, schemaDiagnostics } from './schemas';
import { trustedDirProblem, trustedFileProblem } from '../core/trusted-path';
import { triggerKind } from '../triggers/registry';
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
  /** Directories refused by the trusted-directory rule, as diagnostics; their files are not read. */
  refused: CheckedFile[];
}

function isProfileName(name: string): boolean {
  return /\.ya?ml$/.test(name) && !name.startsWith('.');
}

export function listDropIns(dirs: readonly string[]): DropIns {
  const chosen = new Map<string, string | null>();
  const refused: CheckedFile[] = [];
  for (const dir of dirs) {
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      continue; // a missing directory is normal
    }
    const untrusted = trustedDirProblem(dir, 'profile directory');
    if (untrusted) {
      refused.push(
        fileProblem(dir, `profile directory refused: ${untrusted}`, "owned by root or physcap's user, writable by no one else; its profiles are not read"),
      );
      continue;
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
  return { files, masked, refused };
}

function fileProblem(file: string, message: string, expected?: string): CheckedFile {
  return { file, diagnostics: [{ severity: 'error', file, line: 0, col: 0, pointer: '', message, expected }] };
}

function readText(file: string): string | CheckedFile {
  let fd: number;
  try {
    // O_NOFOLLOW: a link is refused, not read; O_NONBLOCK: a FIFO cannot hang the reader.
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') {
      let to = '?';
      try {
        to = fs.readlinkSync(file);
      } catch {
        /* named as ? */
      }
      return fileProblem(
        file,
        `a symbolic link (to ${to}): profiles are read only from regular files, so a link cannot make physcap read and quote another file`,
        'copy the profile here, or mask it with a link to /dev/null',
      );
    }
    if (code === 'ENOENT') return fileProblem(file, 'no such file');
    if (code === 'EACCES') return fileProblem(file, 'cannot read: EACCES (permission denied)', 'readable by the agent');
    return fileProblem(file, `cannot read: ${code}`);
  }
  let buf: Buffer;
  try {
    const st = fs.fstatSync(fd);
    if (st.isDirectory()) return fileProblem(file, 'a directory, not a profile file', 'name the directory without a .yaml suffix, or a file in it');
    if (!st.isFile()) return fileProblem(file, 'not a regular file');
    const untrusted = trustedFileProblem(file, st, { allowLinks: true });
    if (untrusted) return fileProblem(file, `profile refused: ${untrusted}`, "owned by root or physcap's user, writable by no one else");
    if (st.size > MAX_PROFILE_BYTES) return fileProblem(file, `${st.size} bytes is too large for a profile`, `at most ${MAX_PROFILE_BYTES} bytes`);
    buf = fs.readFileSync(fd);
  } catch (e) {
    return fileProblem(file, `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, 'readable by the agent');
  } finally {
    fs.closeSync(fd);
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
    diagnostics.push({
      severity: 'error',
      file,
      line: 1,
      col: 1,
      pointer: '',
      message: 'a profile is a mapping of fields',
      expected: 'apiVersion, kind, name, regions, ...',
    });
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
      const c = triggerKind(t.kind).claim?.(t);
      if (c) claim(f, c.key, `/triggers/${i}`, c.what);
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
  const { files, masked, refused } = listDropIns(dirs);
  return checkFiles(files, ctx, masked, refused);
}

export function checkFiles(paths: readonly string[], ctx: SemanticContext = {}, masked: string[] = [], refused: CheckedFile[] = []): LoadResult {
  const checked = [...refused, ...paths.map((f) => checkFile(f, ctx))];
  crossCheck(checked);
  const profiles = new Map<string, Profile>();
  for (const f of checked) if (f.profile) profiles.set(f.profile.name, f.profile);
  return { files: checked, masked, profiles };
}
