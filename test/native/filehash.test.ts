/**
 * The whole-file hash: parts fed from JavaScript (headers, padding) and by
 * capture() on its native threads, checked against node:crypto over the
 * same bytes laid out as the file they stand for.  Images in tmpfs, as in
 * engine.test.ts; the kernel source needs the board (engine.vm.test.ts).
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { capture, CaptureOptions, closeDestination, createFileHash, FileHash, NativeError, openDestination } from '../../agent/src/native/binding';
import { sha256 } from '../support/hash';
import { useScratch } from '../support/tmp';

const MiB = 2 ** 20;
const scratch = useScratch('fh');
const image = scratch.image;

describe('createFileHash', () => {
  test('buffers and zeros hash like node:crypto over the same bytes', () => {
    const a = crypto.randomBytes(1000);
    const b = crypto.randomBytes(77);
    // Zero runs shorter than, equal to and longer than the native zero block.
    const zeros = [0, 1, 4095, 65536, 65537, 3 * MiB + 5];
    const fh = createFileHash();
    fh.update(a);
    for (const z of zeros) fh.updateZeros(BigInt(z));
    fh.update(Buffer.alloc(0));
    fh.update(b);
    expect(fh.digest()).toBe(sha256(a, ...zeros.map((z) => Buffer.alloc(z)), b));
  });

  test('an empty hash is the digest of nothing', () => {
    expect(createFileHash().digest()).toBe(sha256());
  });

  test('two hashes are independent', () => {
    const x = createFileHash();
    const y = createFileHash();
    x.update(Buffer.from('x'));
    y.update(Buffer.from('y'));
    expect([x.digest(), y.digest()]).toEqual([sha256(Buffer.from('x')), sha256(Buffer.from('y'))]);
  });

  test('after digest() the hash is done: further use is ERR_INVALID_STATE', () => {
    const fh = createFileHash();
    fh.digest();
    expect(() => fh.update(Buffer.from('x'))).toThrow(expect.objectContaining({ code: 'ERR_INVALID_STATE' }));
    expect(() => fh.updateZeros(1n)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_STATE' }));
    expect(() => fh.digest()).toThrow(expect.objectContaining({ code: 'ERR_INVALID_STATE' }));
  });

  test('bad arguments are refused in JavaScript', () => {
    const fh = createFileHash();
    for (const bad of [-1n, 1n << 64n, 5 as unknown as bigint]) {
      expect(() => fh.updateZeros(bad)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    }
    expect(() => fh.update('text' as unknown as Buffer)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    expect(fh.digest()).toBe(sha256());
  });
});

/**
 * The container layout in miniature: a header, the region at an aligned
 * offset (zeros between), zero padding after an unaligned region to the
 * next alignment, and a trailer.  The file is hashed as a whole, the
 * region's part by capture().
 */
async function containerCase(size: number, opts: Partial<CaptureOptions>) {
  const align = 4096;
  const img = image(`img-${size}-${opts.hash ?? 'source'}-${opts.chunkSize ?? 'c'}`, size);
  const header = crypto.randomBytes(300);
  const trailer = Buffer.from('trailer\n');
  const regionAt = align;
  const pad = (align - (size % align)) % align;

  const fh = createFileHash();
  fh.update(header);
  fh.updateZeros(BigInt(regionAt - header.length));
  const dest = openDestination(path.join(scratch.work(), path.basename(img.file) + '.bin'), 'create');
  let result;
  try {
    result = await capture({
      source: 'image',
      sourcePath: img.file,
      phys: 0n,
      length: BigInt(size),
      dest,
      destOffset: BigInt(regionAt),
      fileHash: fh,
      ...opts,
    });
  } finally {
    closeDestination(dest);
  }
  fh.updateZeros(BigInt(pad));
  fh.update(trailer);
  const want = sha256(header, Buffer.alloc(regionAt - header.length), img.data, Buffer.alloc(pad), trailer);
  return { got: fh.digest(), want, result, img };
}

describe('capture() feeds a whole-file hash', () => {
  test.each([
    ['source, aligned', 8 * MiB, { hash: 'source' }],
    ['source, unaligned length (tail padding)', 5 * MiB + 123, { hash: 'source' }],
    ['source, no chunk digests (file hash beside the whole one only)', 3 * MiB + 7, { hash: 'source', chunkSize: 0 }],
    ['source, one byte', 1, { hash: 'source' }],
    ['readback, aligned', 8 * MiB, { hash: 'readback' }],
    ['readback, unaligned length (tail padding)', 5 * MiB + 123, { hash: 'readback' }],
  ] as const)('%s: equals sha256 of the file computed in JavaScript', async (_name, size, opts) => {
    const { got, want, result, img } = await containerCase(size, opts);
    expect(got).toBe(want);
    // The region digest is of the same bytes, and unaffected.
    expect(result.sha256).toBe(sha256(img.data));
    expect(result.hashMode).toBe(opts.hash);
  });

  test('the default hash mode (source) accepts a fileHash', async () => {
    const { got, want } = await containerCase(2 * MiB + 1, {});
    expect(got).toBe(want);
  });

  test("hash 'none' with a fileHash is refused before anything is written", async () => {
    const img = image('none', MiB);
    const out = path.join(scratch.work(), 'none.bin');
    const dest = openDestination(out, 'create');
    const fh = createFileHash();
    try {
      await expect(capture({ source: 'image', sourcePath: img.file, phys: 0n, length: BigInt(MiB), dest, hash: 'none', fileHash: fh })).rejects.toMatchObject({
        code: 'ERR_INVALID_ARG_VALUE',
      });
    } finally {
      closeDestination(dest);
    }
    expect(fs.statSync(out).size).toBe(0);
    // Untouched: still usable, still empty.
    expect(fh.digest()).toBe(sha256());
  });

  test('a fileHash not made by createFileHash is refused', async () => {
    const dest = openDestination(path.join(scratch.work(), 'foreign.bin'), 'create');
    const fake: FileHash = { update: () => undefined, updateZeros: () => undefined, digest: () => '' };
    try {
      await expect(capture({ source: 'image', sourcePath: '/dev/null', phys: 0n, length: 1n, dest, fileHash: fake })).rejects.toMatchObject({
        code: 'ERR_INVALID_ARG_VALUE',
      });
    } finally {
      closeDestination(dest);
    }
  });

  test('while a capture holds it, the hash is refused to JavaScript and to a second capture', async () => {
    const size = 64 * MiB;
    const img = image('busy', size);
    const fh = createFileHash();
    const d1 = openDestination(path.join(scratch.work(), 'busy1.bin'), 'create');
    const d2 = openDestination(path.join(scratch.work(), 'busy2.bin'), 'create');
    try {
      const running = capture({ source: 'image', sourcePath: img.file, phys: 0n, length: BigInt(size), dest: d1, fileHash: fh });
      expect(() => fh.update(Buffer.from('x'))).toThrow(expect.objectContaining({ code: 'ERR_INVALID_STATE' }));
      expect(() => fh.digest()).toThrow(expect.objectContaining({ code: 'ERR_INVALID_STATE' }));
      await expect(capture({ source: 'image', sourcePath: img.file, phys: 0n, length: BigInt(size), dest: d2, fileHash: fh })).rejects.toMatchObject({
        code: 'ERR_INVALID_STATE',
      });
      await running;
    } finally {
      closeDestination(d1);
      closeDestination(d2);
    }
    expect(fh.digest()).toBe(sha256(img.data));
    fs.rmSync(img.file);
  });

  test('after a failed or aborted capture, digest() is still safe (its value is undefined)', async () => {
    const img = image('fail', MiB);
    const fh = createFileHash();
    fh.update(Buffer.from('header'));
    const dest = openDestination(path.join(scratch.work(), 'fail.bin'), 'create');
    let err: NativeError | undefined;
    try {
      // Past the end of the image: fails before any byte is fed.
      await capture({ source: 'image', sourcePath: img.file, phys: 0n, length: BigInt(2 * MiB), dest, fileHash: fh });
    } catch (e) {
      err = e as NativeError;
    } finally {
      closeDestination(dest);
    }
    expect(err).toMatchObject({ code: 'ENXIO' });
    expect(fh.digest()).toMatch(/^[0-9a-f]{64}$/);

    const big = image('abort', 256 * MiB);
    const fh2 = createFileHash();
    const ac = new AbortController();
    const dest2 = openDestination(path.join(scratch.work(), 'abort.bin'), 'create');
    try {
      await expect(
        capture({
          source: 'image',
          sourcePath: big.file,
          phys: 0n,
          length: BigInt(256 * MiB),
          dest: dest2,
          fileHash: fh2,
          window: 4 * MiB,
          progressMs: 10,
          signal: ac.signal,
          onProgress: (p) => {
            if (p.bytesWritten > 0) ac.abort();
          },
        }),
      ).rejects.toMatchObject({ code: 'ABORT_ERR' });
    } finally {
      closeDestination(dest2);
    }
    expect(fh2.digest()).toMatch(/^[0-9a-f]{64}$/);
    fs.rmSync(big.file);
  }, 30_000);
});
