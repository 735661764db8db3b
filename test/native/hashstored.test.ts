/**
 * hashStored (re-hashing a stored capture on native threads) and
 * readPhysical (a small physical range through the device's mapping), on
 * the host: files in tmpfs, every digest checked against node:crypto over
 * the same bytes.  A regular file stands in for /dev/physcap: it is mapped
 * the same way, the file offset being the physical address.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { hashStored, NativeError, readPhysical, StoredDigests, StoredRegion } from '../../agent/src/native/binding';
import { sha256 } from '../support/hash';
import { useScratch } from '../support/tmp';

const MiB = 2 ** 20;
const scratch = useScratch('hs');
const file = scratch.image;

/** What hashStored must return for these bytes (already cut to [base, base+size) and to the end of the file). */
function expected(bytes: Buffer, regions: StoredRegion[]): StoredDigests {
  return {
    size: bytes.length,
    sha256: sha256(bytes),
    gapsSha256: '',
    regions: regions.map((r) => {
      const part = bytes.subarray(Number(r.offset), Number(r.offset + r.length));
      const chunkSha256: string[] = [];
      for (let at = 0; r.chunkSize && at < part.length; at += r.chunkSize) {
        chunkSha256.push(sha256(part.subarray(at, at + r.chunkSize)));
      }
      return { sha256: sha256(part), chunkSha256 };
    }),
  };
}

/** The bytes outside the regions, in order: what the gaps digest covers. */
function gaps(bytes: Buffer, regions: StoredRegion[]): Buffer {
  const parts: Buffer[] = [];
  let pos = 0;
  for (const r of regions) {
    parts.push(bytes.subarray(pos, Math.min(Number(r.offset), bytes.length)));
    pos = Math.min(Number(r.offset + r.length), bytes.length);
  }
  parts.push(bytes.subarray(pos));
  return Buffer.concat(parts);
}

const region = (offset: number, length: number, chunkSize: number): StoredRegion => ({
  offset: BigInt(offset),
  length: BigInt(length),
  chunkSize,
});

describe('hashStored', () => {
  test('a few MiB: the whole digest, region digests and chunk digests match node:crypto', async () => {
    const size = 5 * MiB + 1234;
    const { file: f, data } = file('few.bin', size);
    const regions = [
      region(0, MiB, 256 << 10), // aligned, whole chunks
      region(MiB + 100, 777_777, 100_000), // unaligned start and length, a partial last chunk
      region(2 * MiB, 0, 4096), // empty: the digest of nothing, no chunks
      region(3 * MiB, 4096, 0), // no chunk digests
      region(4 * MiB + 7, size - (4 * MiB + 7), 333_333), // ends at EOF
    ];
    const res = await hashStored({ path: f, size: BigInt(size), regions });
    expect(res).toEqual(expected(data, regions));
    expect(res.regions[0]!.chunkSha256).toHaveLength(4);
    expect(res.regions[1]!.chunkSha256).toHaveLength(8);
    expect(res.regions[2]).toEqual({ sha256: sha256(Buffer.alloc(0)), chunkSha256: [] });
    expect(res.regions[3]!.chunkSha256).toEqual([]);
  });

  test('gaps: the bytes outside the regions; whole false leaves the whole and region digests out', async () => {
    const size = 9 * MiB + 4321;
    const { file: f, data } = file('gaps.bin', size);
    const regions = [
      { ...region(4096, 3 * MiB + 17, 512 << 10), whole: false },
      region(4 * MiB, MiB, 0),
      { ...region(6 * MiB + 3, 2 * MiB, 4 << 20), whole: false },
    ];
    const res = await hashStored({ path: f, size: BigInt(size), regions, whole: false, gaps: true });
    const want = expected(data, regions);
    expect(res.sha256).toBe('');
    expect(res.gapsSha256).toBe(sha256(gaps(data, regions)));
    expect(res.regions.map((r) => r.chunkSha256)).toEqual(want.regions.map((r) => r.chunkSha256));
    expect(res.regions.map((r) => r.sha256)).toEqual(['', want.regions[1]!.sha256, '']);
    // Both at once, from the same read.
    const both = await hashStored({ path: f, size: BigInt(size), regions, gaps: true });
    expect(both.sha256).toBe(sha256(data));
    expect(both.gapsSha256).toBe(res.gapsSha256);
  });

  test('a file on the disk (O_DIRECT reads, several in flight): unaligned base, every digest matches', async () => {
    const size = 48 * MiB + 999;
    const { data } = file('disk-src.bin', size);
    const onDisk = path.join(scratch.work(), 'disk.bin');
    fs.writeFileSync(onDisk, data);
    const base = 4096 * 3 + 7;
    const part = data.subarray(base);
    const regions = [region(100, 20 * MiB, 4 * MiB), region(24 * MiB, part.length - 24 * MiB - 5, MiB)];
    const res = await hashStored({ path: onDisk, base: BigInt(base), size: BigInt(part.length), regions, gaps: true });
    expect(res).toEqual({ ...expected(part, regions), gapsSha256: sha256(gaps(part, regions)) });
  });

  test('no regions: the whole digest alone', async () => {
    const { file: f, data } = file('plain.bin', 3 * MiB + 1);
    expect(await hashStored({ path: f, size: BigInt(data.length), regions: [] })).toEqual(expected(data, []));
  });

  test('64 MiB: many buffers per thread, progress grows and ends at size', async () => {
    const size = 64 * MiB;
    const { file: f, data } = file('big.bin', size);
    const regions = [region(4096, 20 * MiB + 3, 4 * MiB), region(24 * MiB, 30 * MiB, 0), region(60 * MiB, 4 * MiB, MiB)];
    const seen: number[] = [];
    const res = await hashStored({ path: f, size: BigInt(size), regions, onProgress: (n) => seen.push(n), progressMs: 1 });
    expect(res).toEqual(expected(data, regions));
    expect(seen.length).toBeGreaterThan(1);
    expect(seen[seen.length - 1]).toBe(size);
    for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeGreaterThanOrEqual(seen[i - 1]!);
  });

  test('base > 0: a range inside a bigger file', async () => {
    const { file: f, data } = file('inside.bin', 4 * MiB);
    const base = 123_457;
    const size = 2 * MiB + 99;
    const regions = [region(0, 1000, 300), region(MiB - 1, MiB + 100, 65536)];
    const res = await hashStored({ path: f, base: BigInt(base), size: BigInt(size), regions });
    expect(res).toEqual(expected(data.subarray(base, base + size), regions));
    // Not the file's start: a base that were ignored would not match.
    expect(res.sha256).not.toBe(sha256(data.subarray(0, size)));
  });

  test('size beyond the end of the file: what exists is hashed, regions past it are empty', async () => {
    const { file: f, data } = file('short.bin', 3 * MiB + 5);
    const regions = [region(MiB, MiB, 0), region(2 * MiB + 512, 2 * MiB, 256 << 10), region(4 * MiB + 512, 100, 10)];
    const seen: number[] = [];
    const res = await hashStored({ path: f, size: BigInt(5 * MiB), regions, onProgress: (n) => seen.push(n) });
    expect(res.size).toBe(data.length);
    expect(res).toEqual(expected(data, regions));
    expect(res.regions[2]).toEqual({ sha256: sha256(Buffer.alloc(0)), chunkSha256: [] });
    // Progress counts bytes hashed, never the missing ones.
    expect(seen[seen.length - 1]).toBe(data.length);
  });

  test('a range wholly past the end of the file hashes nothing', async () => {
    const { file: f } = file('tiny.bin', 100);
    const res = await hashStored({ path: f, base: 4096n, size: 4096n, regions: [region(0, 10, 5)] });
    expect(res).toEqual(expected(Buffer.alloc(0), [region(0, 10, 5)]));
  });

  test('nofollow refuses a symlink (ELOOP); without it the link is followed', async () => {
    const { file: f, data } = file('target.bin', MiB + 3);
    const link = path.join(scratch.shm(), 'link.bin');
    fs.symlinkSync(f, link);
    const regions = [region(10, 1000, 100)];
    const err = (await hashStored({ path: link, size: BigInt(data.length), regions, nofollow: true }).catch((e: unknown) => e)) as NativeError;
    expect(err).toMatchObject({ code: 'ELOOP', syscall: 'open', path: link });
    expect(err.stack).toContain('hashstored.test.ts');
    expect(await hashStored({ path: link, size: BigInt(data.length), regions })).toEqual(expected(data, regions));
  });

  test('failures to open or read are Node-style errors', async () => {
    const missing = path.join(scratch.shm(), 'missing.bin');
    await expect(hashStored({ path: missing, size: 10n, regions: [] })).rejects.toMatchObject({
      code: 'ENOENT',
      errno: -2,
      syscall: 'open',
      path: missing,
    });
    // A directory opens read-only but cannot be read.
    await expect(hashStored({ path: scratch.shm(), size: 10n, regions: [region(0, 10, 0)] })).rejects.toMatchObject({
      code: 'EISDIR',
      syscall: 'pread',
      path: scratch.shm(),
    });
  });

  test('abort rejects with ABORT_ERR, before and during the hashing', async () => {
    const { file: f } = file('abort.bin', 64 * MiB);
    const regions = [region(0, 64 * MiB, MiB)];
    const before = new AbortController();
    before.abort();
    await expect(hashStored({ path: f, size: BigInt(64 * MiB), regions, signal: before.signal })).rejects.toMatchObject({
      name: 'AbortError',
      code: 'ABORT_ERR',
    });

    const during = new AbortController();
    const seen: number[] = [];
    const p = hashStored({ path: f, size: BigInt(64 * MiB), regions, signal: during.signal, onProgress: (n) => seen.push(n) });
    during.abort();
    await expect(p).rejects.toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
    expect(seen[seen.length - 1] ?? 0).toBeLessThan(64 * MiB);
  });

  test('regions out of order, overlapping or past size are refused', async () => {
    const { file: f } = file('args.bin', 4096);
    const bad: StoredRegion[][] = [
      [region(100, 10, 0), region(0, 10, 0)],
      [region(0, 100, 0), region(99, 10, 0)],
      [region(4000, 97, 0)],
      [region(0, 10, -1)],
      [region(0, 10, 1.5)],
      [{ offset: -1n, length: 10n, chunkSize: 0 }],
    ];
    for (const regions of bad) {
      await expect(hashStored({ path: f, size: 4096n, regions })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    }
    await expect(hashStored({ path: f, size: -1n, regions: [] })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    await expect(hashStored({ path: '', size: 1n, regions: [] })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    // Touching, not overlapping: fine.
    await expect(hashStored({ path: f, size: 4096n, regions: [region(0, 100, 0), region(100, 10, 0)] })).resolves.toMatchObject({
      size: 4096,
    });
  });
});

describe('readPhysical', () => {
  const page = 4096;

  test('returns the bytes at the physical address, aligned or not, across pages', () => {
    const { file: dev, data } = file('physmem.bin', 8 * page + 123);
    expect(readPhysical(BigInt(2 * page), page, dev)).toEqual(data.subarray(2 * page, 3 * page));
    // An unaligned start crossing a page boundary.
    const at = 3 * page - 100;
    expect(readPhysical(BigInt(at), 300, dev)).toEqual(data.subarray(at, at + 300));
    // Up to the last byte of a partial last page.
    expect(readPhysical(BigInt(data.length - 5), 5, dev)).toEqual(data.subarray(data.length - 5));
  });

  test('reads up to 1 MiB', () => {
    const { file: dev, data } = file('physmem-big.bin', 2 * MiB);
    const got = readPhysical(BigInt(MiB - 1), MiB, dev);
    // Buffer.equals: toEqual walks a MiB byte by byte for seconds.
    expect(got.length).toBe(MiB);
    expect(got.equals(data.subarray(MiB - 1, 2 * MiB - 1))).toBe(true);
  });

  test('length must be 1 .. 1 MiB', () => {
    const { file: dev } = file('physmem-args.bin', 2 * MiB);
    for (const length of [0, MiB + 1, -1, 1.5]) {
      expect(() => readPhysical(0n, length, dev)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    }
    expect(() => readPhysical(-1n, 1, dev)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
  });

  test('a missing device is ENOENT; a range past a stand-in file is ENXIO', () => {
    const missing = path.join(scratch.shm(), 'no-physcap');
    let err: NativeError | undefined;
    try {
      readPhysical(0n, 16, missing);
    } catch (e) {
      err = e as NativeError;
    }
    expect(err).toMatchObject({ code: 'ENOENT', syscall: 'open', path: missing });
    expect(err?.stack).toContain('hashstored.test.ts');

    const { file: dev } = file('physmem-small.bin', page);
    expect(() => readPhysical(BigInt(page - 10), 11, dev)).toThrow(expect.objectContaining({ code: 'ENXIO', syscall: 'mmap', path: dev }));
  });

  (fs.existsSync('/dev/physcap') ? test.skip : test)('without physcap.ko the default device is ENOENT', () => {
    expect(() => readPhysical(0n, 16)).toThrow(expect.objectContaining({ code: 'ENOENT', path: '/dev/physcap' }));
  });
});
