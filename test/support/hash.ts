/** SHA-256 digests (hex) for checking what physcap wrote against the true bytes. */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';

import { sha256OfFileRange } from '../../harness/patterns';

/** SHA-256 of the parts, one after another (of nothing: the empty digest). */
export function sha256(...parts: Buffer[]): string {
  const h = crypto.createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
}

/** SHA-256 of `size` bytes of a file from `offset` (by default: the rest of the file), read in chunks. */
export function sha256File(file: string, offset = 0, size = fs.statSync(file).size - offset): string {
  return sha256OfFileRange(file, offset, size);
}

/** The SHA-256 of each chunkSize bytes of data, the last one shorter: what a region's chunk digests must be. */
export function chunkSha256s(data: Buffer, chunkSize: number): string[] {
  const out: string[] = [];
  for (let at = 0; at < data.length; at += chunkSize) out.push(sha256(data.subarray(at, at + chunkSize)));
  return out;
}

/** A manifest region's chunk digests, inline or from its sidecar in the capture directory. */
export function regionChunks(dir: string, r: { chunks: string[] | { file: string } }): string[] {
  if (Array.isArray(r.chunks)) return r.chunks;
  return fs.readFileSync(`${dir}/${r.chunks.file}`, 'utf8').split('\n').filter(Boolean);
}
