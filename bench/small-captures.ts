/**
 * Fixed cost per capture: many small captures of one size, in process,
 *   node dist/bench/small-captures.js IMAGE DIR SIZE COUNT
 * prints {"size":…, "count":…, "per_capture_ms":…} (open, capture with
 * SHA-256, fsync, close; each to a new file).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { capture, closeDestination, openDestination } from '../agent/src/native/binding';

async function main(): Promise<void> {
  const [image, dir, sizeArg, countArg] = process.argv.slice(2);
  const size = Number(sizeArg);
  const count = Number(countArg);
  if (!image || !dir || !size || !count) throw new Error('usage: small-captures IMAGE DIR SIZE COUNT');
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    const file = path.join(dir, `small-${i}.bin`);
    const dest = openDestination(file, 'create');
    try {
      await capture({ source: 'image', sourcePath: image, phys: 0n, length: BigInt(size), dest, truncate: true });
    } finally {
      closeDestination(dest);
    }
    fs.rmSync(file);
  }
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  console.log(JSON.stringify({ size, count, per_capture_ms: ms / count }));
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
