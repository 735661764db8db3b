/** SHA-256 of a whole file, streamed in 4 MiB pieces (memory stays bounded whatever its size). */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { pipeline } from 'node:stream/promises';

export async function fileSha256(file: string): Promise<string> {
  const hash = crypto.createHash('sha256');
  await pipeline(fs.createReadStream(file, { highWaterMark: 4 << 20 }), hash);
  return hash.digest('hex');
}
