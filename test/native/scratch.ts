/**
 * Scratch space for the native engine's host tests: random memory images
 * in tmpfs (the image source reads them like physical memory) and a
 * directory on the real disk for O_DIRECT destinations.  Call at a test
 * file's top level: it registers its own beforeAll/afterAll.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export function useScratch(prefix: string): { image(name: string, size: number): { file: string; data: Buffer }; work(): string } {
  let shm = '';
  let work = '';
  beforeAll(() => {
    shm = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), `${prefix}-img-`));
    work = fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-dest-`));
  });
  afterAll(() => {
    fs.rmSync(shm, { recursive: true, force: true });
    fs.rmSync(work, { recursive: true, force: true });
  });
  return {
    image(name, size) {
      const data = crypto.randomBytes(size);
      const file = path.join(shm, name);
      fs.writeFileSync(file, data);
      return { file, data };
    },
    work: () => work,
  };
}
