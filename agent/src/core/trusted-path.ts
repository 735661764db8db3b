/**
 * One rule for the places physcap trusts: the spool it consumes trigger
 * files from, the destinations it writes captures and their index into,
 * and the profile directories and files that decide what it dumps.
 *
 *   - Spools and destinations are never system directories (/, /etc,
 *     /usr, /proc, /tmp, ...): the agent creates and deletes files there.
 *   - A trusted directory is named by its real path, not through a
 *     symbolic link, and is owned by root or by the user physcap runs as.
 *   - Nobody else may write into it: not world-writable, and not
 *     group-writable unless the group is the caller's own.
 *   - Every directory above it is writable only by root or the caller, or
 *     has the sticky bit (/tmp): otherwise another user could rename the
 *     trusted directory away and put their own in its place.
 *   - A trusted file (a profile, the index) is a regular file, not a link,
 *     with one name (no hardlink from elsewhere), with the same owner and
 *     mode rule.
 *
 * This is OpenSSH's StrictModes check (safe_path), applied to everything
 * physcap reads its instructions from or writes its evidence to.  Each
 * check returns a sentence saying what is wrong and what to do, or null.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Exactly these: a spool or destination here would mix captures with the system's own files. */
const SYSTEM_DIRS = new Set([
  '/',
  '/bin',
  '/boot',
  '/dev',
  '/etc',
  '/home',
  '/lib',
  '/lib32',
  '/lib64',
  '/libx32',
  '/media',
  '/mnt',
  '/opt',
  '/proc',
  '/root',
  '/run',
  '/run/user',
  '/sbin',
  '/srv',
  '/sys',
  '/tmp',
  '/usr',
  '/var',
  '/var/cache',
  '/var/lib',
  '/var/log',
  '/var/run',
  '/var/spool',
  '/var/tmp',
  '/dev/shm',
]);
/** Nor anything inside these. */
const SYSTEM_TREES = ['/bin', '/boot', '/dev', '/etc', '/lib', '/lib32', '/lib64', '/libx32', '/proc', '/sbin', '/sys', '/usr'];

export type TrustedRole = 'spool' | 'destination' | 'profile directory' | 'state directory' | 'runtime directory';

const EXAMPLE: Record<TrustedRole, string> = {
  spool: '/run/physcap/triggers',
  destination: '/var/lib/physcap/captures',
  'profile directory': '/etc/physcap/profiles.d',
  'state directory': '/var/lib/physcap',
  'runtime directory': '/run/physcap',
};

/**
 * Is this a system directory (or inside one)?  By name only, so it works
 * for a profile validated away from the machine it is for.
 */
export function systemDirProblem(p: string, role: TrustedRole): string | null {
  if (!path.isAbsolute(p)) return `${p} is not an absolute path; a ${role} is named from /`;
  const n = path.resolve(p);
  if (SYSTEM_DIRS.has(n)) return `${n} is a system directory; a ${role} gets a directory of its own (such as ${EXAMPLE[role]})`;
  const tree = SYSTEM_TREES.find((t) => n.startsWith(`${t}/`));
  if (tree) return `${n} is inside ${tree}, a system directory; a ${role} gets a directory of its own (such as ${EXAMPLE[role]})`;
  return null;
}

const octal = (mode: number) => (mode & 0o7777).toString(8).padStart(4, '0');

function ownerProblem(p: string, st: fs.Stats, euid: number, egid: number): string | null {
  if (st.uid !== 0 && st.uid !== euid) return `${p} is owned by uid ${st.uid}, neither root nor the user physcap runs as (uid ${euid})`;
  if (st.mode & 0o002) return `${p} is writable by every user (mode ${octal(st.mode)})`;
  if (st.mode & 0o020 && st.gid !== egid && st.gid !== 0) return `${p} is writable by group ${st.gid} (mode ${octal(st.mode)})`;
  return null;
}

/** The directories above `real`: each unwritable by others, or sticky (/tmp). */
function ancestorsProblem(real: string, euid: number, egid: number): string | null {
  for (let dir = path.dirname(real); ; dir = path.dirname(dir)) {
    let st: fs.Stats;
    try {
      st = fs.statSync(dir);
    } catch (err) {
      return `${dir} cannot be checked (${(err as NodeJS.ErrnoException).code ?? String(err)})`;
    }
    if (!(st.mode & 0o1000)) {
      const own = ownerProblem(dir, st, euid, egid);
      if (own) return `${own}, and it is above it without the sticky bit: that user could replace what is below it`;
    }
    if (dir === '/') return null;
  }
}

function missingDirProblem(abs: string, euid: number, egid: number): string | null {
  let parent = path.dirname(abs);
  while (parent !== '/' && !fs.existsSync(parent)) parent = path.dirname(parent);
  let real: string;
  try {
    real = fs.realpathSync(parent);
  } catch (err) {
    return `${parent} cannot be resolved (${(err as NodeJS.ErrnoException).code ?? String(err)})`;
  }
  return ancestorsProblem(path.join(real, path.basename(abs)), euid, egid);
}

export interface TrustOptions {
  euid?: number;
  egid?: number;
  /** A file may have more than one name (profiles: the directory's rule already keeps strangers out). */
  allowLinks?: boolean;
}

function ids(o: TrustOptions): { euid: number; egid: number } {
  return { euid: o.euid ?? process.geteuid?.() ?? 0, egid: o.egid ?? process.getegid?.() ?? 0 };
}

/**
 * A directory physcap writes into or takes instructions from, as it is on
 * disk now.  A missing one is judged by the directories it would be made
 * in (the caller makes it with a safe mode, then checks it again).
 */
export function trustedDirProblem(p: string, role: TrustedRole, o: TrustOptions = {}): string | null {
  const { euid, egid } = ids(o);
  const abs = path.resolve(p);
  if (role !== 'profile directory') {
    const sys = systemDirProblem(abs, role);
    if (sys) return sys;
  }
  let st: fs.Stats;
  try {
    st = fs.lstatSync(abs);
  } catch (err) {
    // Not there yet: it will be created (with a safe mode) in the nearest
    // directory that exists, so that one and everything above must hold.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return missingDirProblem(abs, euid, egid);
    return `${abs} cannot be checked (${(err as NodeJS.ErrnoException).code ?? String(err)})`;
  }
  if (st.isSymbolicLink()) {
    let to = '?';
    try {
      to = fs.readlinkSync(abs);
    } catch {
      /* named as ? */
    }
    return `${abs} is a symbolic link (to ${to}); name the ${role} by its real path`;
  }
  if (!st.isDirectory()) return `${abs} is not a directory`;
  const own = ownerProblem(abs, st, euid, egid);
  if (own) return `${own}; a ${role} must be writable only by root or physcap's user`;
  let real: string;
  try {
    real = fs.realpathSync(abs);
  } catch (err) {
    return `${abs} cannot be resolved (${(err as NodeJS.ErrnoException).code ?? String(err)})`;
  }
  return ancestorsProblem(real, euid, egid);
}

/**
 * A file physcap takes instructions from or appends evidence to, checked
 * on the open descriptor (fstat), so what is checked is what is read.
 */
export function trustedFileProblem(display: string, st: fs.Stats, o: TrustOptions = {}): string | null {
  const { euid, egid } = ids(o);
  if (!st.isFile()) return `${display} is not a regular file`;
  if (st.nlink > 1 && !o.allowLinks) return `${display} has ${st.nlink} names (a hard link to it exists elsewhere)`;
  return ownerProblem(display, st, euid, egid);
}

/**
 * A dump partition (or an image of one) that captures are written to.
 * Unlike a directory it may be named through a link: stable names
 * (/dev/disk/by-partlabel/dump) are links by design.  A link is trusted
 * only if nobody else could point it elsewhere (owned by root or physcap's
 * user, in directories the rule trusts); the node it leads to is owned by
 * root or physcap's user and not writable by every user.  A block device
 * may be group-writable (the "disk" group is how the system grants raw
 * access); an image file follows the file rule.
 */
export function trustedDeviceProblem(configured: string, o: TrustOptions = {}): string | null {
  const { euid, egid } = ids(o);
  const abs = path.resolve(configured);
  let link: fs.Stats;
  let real: string;
  try {
    link = fs.lstatSync(abs);
    real = fs.realpathSync(abs);
  } catch (err) {
    return `${abs} cannot be checked (${(err as NodeJS.ErrnoException).code ?? String(err)})`;
  }
  if (link.isSymbolicLink()) {
    if (link.uid !== 0 && link.uid !== euid)
      return `${abs} is a symbolic link owned by uid ${link.uid}, who could point it elsewhere; name the dump partition by a link root owns, or by its real path`;
    const above = ancestorsProblem(abs, euid, egid);
    if (above) return above;
  }
  const st = fs.statSync(real);
  if (st.isBlockDevice()) {
    if (st.uid !== 0 && st.uid !== euid) return `${real} is owned by uid ${st.uid}, neither root nor the user physcap runs as (uid ${euid})`;
    if (st.mode & 0o002) return `${real} is writable by every user (mode ${octal(st.mode)})`;
    return null;
  }
  const own = trustedFileProblem(real, st, { ...o, allowLinks: true });
  if (own) return `${own}; a dump partition image must be writable only by root or physcap's user`;
  return ancestorsProblem(real, euid, egid);
}

/** Throws an Error with code EACCES and the problem as its message. */
export function assertTrustedDir(p: string, role: TrustedRole, o: TrustOptions = {}): void {
  const problem = trustedDirProblem(p, role, o);
  if (problem) throw Object.assign(new Error(`EACCES: untrusted ${role}: ${problem}`), { code: 'EACCES' });
}
