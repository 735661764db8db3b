/**
 * Temporary directories for tests: made under the temp directory as
 * physcap-<name>-XXXXXX and removed, whatever happened, when the test (or
 * the file's tests) are done.
 */
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** A new directory, physcap-<name>-XXXXXX, under parent (the temp directory). */
export function tempDir(name: string, parent = os.tmpdir()): string {
  return fs.mkdtempSync(path.join(parent, `physcap-${name}-`));
}

/** Removes a directory and everything in it; nothing if it is not there. */
export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

/** Runs fn with a new temporary directory, removed after (after the promise settles, for an async fn). */
export function withTempDir<T>(name: string, fn: (dir: string) => T): T {
  const dir = tempDir(name);
  let result: T;
  try {
    result = fn(dir);
  } catch (err) {
    removeDir(dir);
    throw err;
  }
  if (result instanceof Promise) return result.finally(() => removeDir(dir)) as T;
  removeDir(dir);
  return result;
}

/**
 * A tmpfs of `size` (mount's size=, e.g. "8m") mounted on a new temporary
 * directory for the file's (or the describe block's) tests: a small
 * filesystem to fill.  Call at a test file's top level or in a describe.
 */
export function useTmpfs(name: string, size: string): () => string {
  let mnt = '';
  beforeAll(() => {
    mnt = tempDir(name);
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', mnt]);
  });
  afterAll(() => {
    execFileSync('umount', [mnt]);
    removeDir(mnt);
  });
  return () => mnt;
}

/**
 * Scratch space for the native engine's and the destinations' host tests:
 * random memory images in tmpfs (the image source reads them like physical
 * memory) and a directory on the real disk for O_DIRECT destinations.
 * Call at a test file's top level: it registers its own beforeAll/afterAll.
 */
export function useScratch(name: string): { image(name: string, size: number): { file: string; data: Buffer }; shm(): string; work(): string } {
  let shm = '';
  let work = '';
  beforeAll(() => {
    shm = tempDir(`${name}-img`, fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir());
    work = tempDir(`${name}-dest`);
  });
  afterAll(() => {
    removeDir(shm);
    removeDir(work);
  });
  return {
    image(name, size) {
      const data = crypto.randomBytes(size);
      const file = path.join(shm, name);
      fs.writeFileSync(file, data);
      return { file, data };
    },
    shm: () => shm,
    work: () => work,
  };
}
