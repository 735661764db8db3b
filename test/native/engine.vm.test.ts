/**
 * The native engine's kernel and devmem sources on the emulated board,
 * checked against the host's ground truth: the digests the engine reports
 * and the bytes on disk (read on the host from the disk images).
 */
import * as path from 'node:path';

import { BoardRun, bootBoard } from '../vm/board';
import { BOARD_RANGES, hex, rawOffsets } from '../vm/layout';
import { artifacts, loadKernels, repoRoot } from '../vm/paths';

interface Captured {
  ok: boolean;
  code?: string;
  errno?: number;
  syscall?: string;
  source?: string;
  mode?: string;
  hashMode?: string;
  sha256?: string;
  chunkSha256?: string[];
  bytesWritten?: number;
  bytesZeroCopy?: number;
  bytesCopied?: number;
  bytesBounced?: number;
}

const guestScript = path.join(repoRoot(), 'dist', 'test', 'native', 'guest-capture.js');

function job(module: string): string {
  const offsets = rawOffsets(BOARD_RANGES);
  const requests: object[] = [];
  for (const r of BOARD_RANGES) {
    for (const source of ['kernel', 'devmem']) {
      requests.push({
        label: `${source}-${r.name}`,
        source,
        phys: hex(r.start),
        length: String(r.size),
        dest: `$D/${source}-${r.name}.bin`,
        mode: 'create',
      });
    }
  }
  const trace = BOARD_RANGES.find((r) => r.name === 'trace')!;
  const big = BOARD_RANGES.find((r) => r.name === 'big')!;
  requests.push(
    { label: 'kernel-raw-big', source: 'kernel', phys: hex(big.start), length: String(big.size), dest: '$RAW', mode: 'existing', destOffset: String(offsets.get('big')) },
    { label: 'kernel-readback-trace', source: 'kernel', phys: hex(trace.start), length: String(trace.size), dest: '$D/readback-trace.bin', mode: 'create', hash: 'readback' },
    { label: 'kernel-mmio', source: 'kernel', phys: '0xa0000', length: '65536', dest: '$D/mmio.bin', mode: 'create' },
    { label: 'kernel-overwrite', source: 'kernel', phys: hex(trace.start), length: '4096', dest: '$D/kernel-trace.bin', mode: 'create' },
  );
  const args = requests.map((r) => `"$(printf '%s' '${JSON.stringify(r)}' | sed "s|\\$D|$D|; s|\\$RAW|$RAW|")"`).join(' \\\n  ');
  return `#!/bin/bash
D=$PHYSCAP_BOARD_DISK
RAW=$PHYSCAP_BOARD_RAW
insmod ${module} || exit 10
node ${guestScript} \\
  ${args}
`;
}

describe.each(loadKernels().map((k) => [k.series, k] as const))('the native engine on the board, kernel %s', (_s, kernel) => {
  let run: BoardRun;
  const get = (label: string): Captured => {
    const found = run.records<Captured>('capture').filter((r) => r.label === label);
    if (found.length !== 1) throw new Error(`no single @@capture ${label}\n${run.output}`);
    return found[0]!.value;
  };

  beforeAll(async () => {
    run = await bootBoard({ kernel, job: job(artifacts(kernel).module), reserved: BOARD_RANGES });
  }, 20 * 60_000);
  afterAll(() => run?.cleanup());

  test('the job ran', () => {
    if (run.exitCode !== 0) throw new Error(`job exited ${run.exitCode}\n${run.output}`);
  });

  describe.each(BOARD_RANGES.map((r) => [r.name, r] as const))('%s', (name, range) => {
    test('kernel source: zero-copy; digest and file equal the ground truth', () => {
      const c = get(`kernel-${name}`);
      expect(c).toMatchObject({ ok: true, source: 'kernel', mode: 'zero-copy', hashMode: 'source', bytesZeroCopy: range.size });
      expect(c.sha256).toBe(run.truth(name).sha256);
      expect(run.scratchFileSha256(`/kernel-${name}.bin`, range.size)).toBe(run.truth(name).sha256);
      expect(c.chunkSha256).toHaveLength(Math.ceil(range.size / (4 * 2 ** 20)));
    });

    test('devmem source: one copy, counted; digest and file equal the ground truth', () => {
      const c = get(`devmem-${name}`);
      expect(c).toMatchObject({ ok: true, source: 'devmem', mode: 'copy', bytesCopied: range.size, bytesZeroCopy: 0 });
      expect(c.sha256).toBe(run.truth(name).sha256);
      expect(run.scratchFileSha256(`/devmem-${name}.bin`, range.size)).toBe(run.truth(name).sha256);
    });
  });

  test('kernel source to the raw partition at an offset', () => {
    const big = BOARD_RANGES.find((r) => r.name === 'big')!;
    const c = get('kernel-raw-big');
    expect(c).toMatchObject({ ok: true, mode: 'zero-copy', sha256: run.truth('big').sha256 });
    expect(run.rawSha256(rawOffsets(BOARD_RANGES).get('big')!, big.size)).toBe(run.truth('big').sha256);
  });

  test('readback mode hashes the bytes on disk and says so', () => {
    expect(get('kernel-readback-trace')).toMatchObject({ ok: true, hashMode: 'readback', sha256: run.truth('trace').sha256 });
  });

  test("the module's refusal arrives as a Node-style error", () => {
    // The writer's WRITE and the hasher's mmap both refuse device memory;
    // whichever thread gets there first reports it.
    const c = get('kernel-mmio');
    expect(c).toMatchObject({ ok: false, code: 'EACCES', errno: -13 });
    expect(c.syscall).toMatch(/^(ioctl\(PHYSCAP_IOC_WRITE\)|mmap)$/);
  });

  test('an existing capture is never overwritten', () => {
    expect(get('kernel-overwrite')).toMatchObject({ ok: false, code: 'EEXIST', syscall: 'open' });
    expect(run.scratchFileSha256('/kernel-trace.bin', 16 * 2 ** 20)).toBe(run.truth('trace').sha256);
  });
});
