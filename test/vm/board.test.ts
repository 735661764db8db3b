/** The emulated board's own parts, without (or with a very short) boot. */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { BoardError, bootBoard } from '../../harness/board';
import { BOARD_RANGES, rawOffsets } from '../../harness/layout';
import { loadKernels } from '../../harness/paths';
import { sha256OfFileRange, writePattern } from '../../harness/patterns';
import { removeDir, tempDir } from '../support/tmp';

describe('ground-truth patterns', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir('pattern');
  });
  afterEach(() => removeDir(dir));

  const place = (file: string, seed: string, name: string, offset: number, size: number) => {
    fs.writeFileSync(file, '');
    const fd = fs.openSync(file, 'r+');
    try {
      return writePattern(fd, offset, size, seed, name);
    } finally {
      fs.closeSync(fd);
    }
  };

  test('the same seed and name give the same bytes; the returned hash is of those bytes', () => {
    const a = place(path.join(dir, 'a'), 's', 'crashlog', 8192, 5 << 20);
    const b = place(path.join(dir, 'b'), 's', 'crashlog', 0, 5 << 20);
    expect(a).toBe(b);
    expect(sha256OfFileRange(path.join(dir, 'a'), 8192, 5 << 20)).toBe(a);
  });

  test('another seed or another name gives other bytes', () => {
    const a = place(path.join(dir, 'a'), 's', 'x', 0, 4096);
    expect(place(path.join(dir, 'b'), 't', 'x', 0, 4096)).not.toBe(a);
    expect(place(path.join(dir, 'c'), 's', 'y', 0, 4096)).not.toBe(a);
  });
});

describe('board layout', () => {
  test('ranges do not overlap, are page-aligned, and include the awkward sizes', () => {
    const sorted = [...BOARD_RANGES].sort((a, b) => a.start - b.start);
    for (let i = 1; i < sorted.length; i++) {
      expect(sorted[i]!.start).toBeGreaterThanOrEqual(sorted[i - 1]!.start + sorted[i - 1]!.size);
    }
    for (const r of BOARD_RANGES) expect((r.start % 4096) + (r.size % 4096)).toBe(0);
    expect(BOARD_RANGES.some((r) => r.size % 2 ** 20 !== 0)).toBe(true);
    expect(BOARD_RANGES.some((r) => r.size >= 256 * 2 ** 20)).toBe(true);
  });

  test('raw-disk slots are 1 MiB-aligned and do not overlap', () => {
    const offsets = rawOffsets(BOARD_RANGES);
    let end = 0;
    for (const r of BOARD_RANGES) {
      const off = offsets.get(r.name)!;
      expect(off % 2 ** 20).toBe(0);
      expect(off).toBeGreaterThanOrEqual(end);
      end = off + r.size;
    }
  });
});

test('a board that does not finish in time fails clearly, with the console', async () => {
  const [kernel] = loadKernels();
  const err = await bootBoard({ kernel: kernel!, job: 'sleep 600', timeoutMs: 3000, scratchMiB: 64, rawMiB: 1, slowMiB: 1 }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(BoardError);
  expect((err as Error).message).toMatch(/did not finish within 3 s/);
});
