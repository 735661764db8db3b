import * as crypto from 'node:crypto';
import * as fs from 'node:fs';

const CHUNK = 4 << 20;

/**
 * A reproducible pseudo-random byte stream for a (seed, name): AES-128-CTR
 * keystream.  Random enough that no capture can match it by accident, and
 * cheap to regenerate, so ground truth never has to be stored.
 */
function keystream(seed: string, name: string): crypto.Cipher {
  const key = crypto.createHash('sha256').update(`${seed}\0${name}`).digest().subarray(0, 16);
  return crypto.createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
}

/** Writes the pattern for (seed, name) into fd at offset; returns its SHA-256. */
export function writePattern(fd: number, offset: number, size: number, seed: string, name: string): string {
  const cipher = keystream(seed, name);
  const hash = crypto.createHash('sha256');
  const zeros = Buffer.alloc(CHUNK);
  for (let done = 0; done < size;) {
    const n = Math.min(CHUNK, size - done);
    const block = cipher.update(zeros.subarray(0, n));
    hash.update(block);
    fs.writeSync(fd, block, 0, n, offset + done);
    done += n;
  }
  return hash.digest('hex');
}

/** SHA-256 of [offset, offset + size) of a file, read in chunks. */
export function sha256OfFileRange(file: string, offset: number, size: number): string {
  const fd = fs.openSync(file, 'r');
  try {
    const hash = crypto.createHash('sha256');
    const buf = Buffer.alloc(CHUNK);
    for (let done = 0; done < size;) {
      const n = fs.readSync(fd, buf, 0, Math.min(CHUNK, size - done), offset + done);
      if (n === 0) throw new Error(`${file}: ends before ${offset + size}`);
      hash.update(buf.subarray(0, n));
      done += n;
    }
    return hash.digest('hex');
  } finally {
    fs.closeSync(fd);
  }
}
