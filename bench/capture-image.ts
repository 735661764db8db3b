/**
 * One image capture through the native engine, for the benchmark to time
 * from outside (wall, CPU, peak RSS):
 *   node dist/bench/capture-image.js IMAGE DEST [--no-sync] [--chunk BYTES]
 * Prints the engine's result as JSON.
 */
import * as fs from 'node:fs';

import { capture, closeDestination, openDestination, preallocate } from '../agent/src/native/binding';

async function main(): Promise<void> {
  const [image, destPath] = process.argv.slice(2);
  if (!image || !destPath) throw new Error('usage: capture-image IMAGE DEST [--no-sync] [--chunk BYTES]');
  const chunkAt = process.argv.indexOf('--chunk');
  const length = BigInt(fs.statSync(image).size);
  const dest = openDestination(destPath, 'create');
  try {
    preallocate(dest, length);
    const result = await capture({
      source: 'image',
      sourcePath: image,
      phys: 0n,
      length,
      dest,
      truncate: true,
      sync: !process.argv.includes('--no-sync'),
      chunkSize: chunkAt > 0 ? Number(process.argv[chunkAt + 1]) : undefined,
    });
    console.log(JSON.stringify(result));
  } finally {
    closeDestination(dest);
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
