/**
 * The rule for files that hold a secret a remote destination uses (S3
 * keys, an SSH private key): a regular file, not a link, owned by the
 * agent's user, which nobody else can read.  Profiles name such files;
 * they never hold the secret.
 */
import * as fs from 'node:fs';

/** Why the file may not be used, or undefined when it may. */
export function secretFileProblem(file: string, what: string): string | undefined {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // Worded as the other checks of paths word it (a profile is often written before the machine has its files).
    return code === 'ENOENT' ? `the ${what} ${file} does not exist on this machine` : `${file}: ${code}: cannot read the ${what}`;
  }
  if (st.isSymbolicLink()) return `${file} is a symbolic link: name the ${what} itself`;
  if (!st.isFile()) return `${file} is not a regular file`;
  const uid = process.geteuid?.() ?? 0;
  if (st.uid !== uid) return `${file} belongs to uid ${st.uid}, not to the agent's user (uid ${uid})`;
  if (st.mode & 0o077) return `${file} is readable by others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}): chmod 600 it`;
  return undefined;
}
