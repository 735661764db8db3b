/**
 * Checks of a destination on this machine's file system, said at
 * validation time.  Warnings: profiles are often validated elsewhere.
 */
import * as fs from 'node:fs';

/** The path's status, or undefined (after a warning) when it does not exist here. */
export function statOrWarn(p: string, missing: string, warn: (message: string, expected?: string) => void): fs.Stats | undefined {
  try {
    return fs.statSync(p);
  } catch {
    warn(`${p} does not exist on this machine`, missing);
    return undefined;
  }
}

export function warnUnlessWritable(p: string, warn: (message: string) => void): void {
  try {
    fs.accessSync(p, fs.constants.W_OK);
  } catch {
    warn(`${p} is not writable by this user`);
  }
}
