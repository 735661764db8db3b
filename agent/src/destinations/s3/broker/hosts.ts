/**
 * The broker's hosts file: one line per token, `<host> <sha256 hex of the
 * token>` ('#' comments and blank lines allowed), mode 0600 like every file
 * that grants access.  The broker keeps no token, only its digest: a copy
 * of the file lets nobody in.  `physcap broker enrol` adds a host: a new
 * random token, written to a new 0600 file for the host (never over one),
 * and its digest appended here.  A host may have several lines (a new
 * token while the old one is retired); remove a line to revoke its token.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';

import { secretFileProblem } from '../../remote/secret-file';
import { HOST_NAME } from './protocol';

export interface HostEntry {
  host: string;
  /** SHA-256 of the token, 32 bytes. */
  digest: Buffer;
}

export const tokenDigest = (token: string): Buffer => crypto.createHash('sha256').update(token, 'utf8').digest();

/** The entries of a hosts file's text; throws naming file:line for a line that is not one. */
export function parseHosts(text: string, file: string): HostEntry[] {
  const out: HostEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const m = /^(\S+)\s+([0-9a-fA-F]{64})$/.exec(line);
    if (!m) throw new Error(`${file}:${i + 1}: not "<host> <sha256 hex of its token>"`);
    if (!HOST_NAME.test(m[1]!)) throw new Error(`${file}:${i + 1}: ${JSON.stringify(m[1])} is not a host name (letters, digits, '.', '_', '-')`);
    out.push({ host: m[1]!, digest: Buffer.from(m[2]!, 'hex') });
  });
  return out;
}

/** Reads the hosts file, refusing one others can read or write. */
export function readHosts(file: string): HostEntry[] {
  const problem = secretFileProblem(file, 'hosts file');
  if (problem) throw new Error(problem);
  return parseHosts(fs.readFileSync(file, 'utf8'), file);
}

/**
 * The hosts file as the broker serves it: read again whenever it changes
 * (an enrolment or a revocation needs no restart).  While a changed file
 * cannot be used, no token is accepted.
 */
export class HostTable {
  private entries: HostEntry[];
  private stamp: string;
  private problem?: string;

  constructor(
    readonly file: string,
    private readonly onReload: (what: { hosts: number } | { error: string }) => void = () => undefined,
  ) {
    this.entries = readHosts(file);
    this.stamp = this.stat();
  }

  private stat(): string {
    try {
      const st = fs.statSync(this.file);
      return `${st.ino}:${st.size}:${st.mtimeMs}:${st.mode}:${st.uid}`;
    } catch (err) {
      return `missing:${(err as NodeJS.ErrnoException).code}`;
    }
  }

  private refresh(): void {
    const now = this.stat();
    if (now === this.stamp) return;
    this.stamp = now;
    try {
      this.entries = readHosts(this.file);
      this.problem = undefined;
      this.onReload({ hosts: this.entries.length });
    } catch (err) {
      this.entries = [];
      this.problem = (err as Error).message;
      this.onReload({ error: this.problem });
    }
  }

  /** Why no token is accepted now, if the file cannot be used. */
  unusable(): string | undefined {
    this.refresh();
    return this.problem;
  }

  /** The host a token is enrolled for, if any (every line compared, in constant time each). */
  hostOf(token: string): string | undefined {
    this.refresh();
    const d = tokenDigest(token);
    let found: string | undefined;
    for (const e of this.entries) if (crypto.timingSafeEqual(e.digest, d) && found === undefined) found = e.host;
    return found;
  }

  get size(): number {
    return this.entries.length;
  }
}

/**
 * Enrols a host: a new token in a new 0600 file (refused if the file is
 * there), and its line appended to the hosts file (created 0600 if
 * missing).  Refuses a host the file already names: revoke its line first,
 * or pass `another` to give it a second token.
 */
export function enrolHost(o: { host: string; hostsFile: string; tokenFile: string; another?: boolean }): { token: string } {
  if (!HOST_NAME.test(o.host)) throw new Error(`${JSON.stringify(o.host)} is not a host name as captures are filed (letters, digits, '.', '_', '-')`);
  let existing: HostEntry[] = [];
  if (fs.existsSync(o.hostsFile)) existing = readHosts(o.hostsFile);
  if (!o.another && existing.some((e) => e.host === o.host))
    throw new Error(`${o.hostsFile} already has a token for ${o.host}: remove its line to revoke it, or pass --another to add a second token`);
  const token = crypto.randomBytes(32).toString('base64url');
  // O_EXCL: never over a file that is there (another host's token, say).
  const fd = fs.openSync(o.tokenFile, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
  try {
    fs.writeSync(fd, `${token}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    const hf = fs.openSync(o.hostsFile, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600);
    try {
      const size = fs.fstatSync(hf).size;
      const needsNewline = size > 0 && !fs.readFileSync(o.hostsFile, 'utf8').endsWith('\n');
      fs.writeSync(hf, `${needsNewline ? '\n' : ''}${o.host} ${tokenDigest(token).toString('hex')}\n`);
      fs.fsyncSync(hf);
    } finally {
      fs.closeSync(hf);
    }
  } catch (err) {
    fs.rmSync(o.tokenFile, { force: true });
    throw err;
  }
  return { token };
}

/** A host's token from its file (0600, the agent's own). Throws naming the file. */
export function readToken(file: string): string {
  const problem = secretFileProblem(file, 'token file');
  if (problem) throw new Error(`credentials: ${problem}`);
  const token = fs.readFileSync(file, 'utf8').trim();
  if (!token || /\s/.test(token)) throw new Error(`credentials: ${file}: not a broker token (one line, no spaces)`);
  return token;
}
