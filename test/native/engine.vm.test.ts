/**
 * The native engine's kernel and devmem sources on the emulated board,
 * checked against the host's ground truth: the digests the engine reports
 * and the bytes on disk (read on the host from the disk images).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { Manifest } from '../../agent/src/manifest/types';
import { BoardRun, bootBoard } from '../../harness/board';
import { guestProgram, jobHead } from '../../harness/job';
import { BOARD_RANGES, hex, rawOffsets } from '../../harness/layout';
import { KernelSpec, loadKernels } from '../../harness/paths';
import { cliJson, cliRecord, expectJobRan, readelf, scratchCopyDir } from '../support/board';
import { physcapSync } from '../support/cli';
import { regionChunks, sha256File } from '../support/hash';
import { removeDir, tempDir } from '../support/tmp';

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

const guestScript = guestProgram('guest-capture');
const guestCli = guestProgram('guest-cli');

/** The ranges the ELF captures take (the issue's interop check): crash log and trace. */
const ELF_RANGES = BOARD_RANGES.filter((r) => r.name === 'crashlog' || r.name === 'trace');
/** Slices of the trace range with odd tails and unaligned starts. */
const ODD_SLICES = [
  { label: 'odd-tail', offset: 0, size: 3 * 4096 + 1000 },
  { label: 'odd-head', offset: 100, size: 2 * 4096 },
  { label: 'odd-both', offset: 4096 + 1, size: 5 * 4096 + 7 },
];

/** The dir destination of the ELF capture, on the scratch disk (as the guest and as debugfs see it). */
const ELF_DIR = 'physcap-captures';

/**
 * A CaptureProfile for the physcap CLI: the ELF ranges from physcap.ko to
 * `destination` (YAML lines, indented two spaces).  The job's shell
 * expands $D and $SLOW in it.
 */
function elfProfile(name: string, destination: string): string {
  return `apiVersion: physcap.dev/v1
kind: CaptureProfile
name: ${name}
regions:
${ELF_RANGES.map((r) => `  - name: ${r.name}\n    start: "${hex(r.start)}"\n    size: ${r.size}`).join('\n')}
triggers:
  - kind: control
destination:
${destination}
source:
  kind: kernel
output:
  format: elf
hash:
  chunk_size: 1MiB
`;
}

/** One page at the job's $bad (name:address), from source $src, to $D/refused: the shell expands it. */
function badProfile(): string {
  return `apiVersion: physcap.dev/v1
kind: CaptureProfile
name: \${bad%%:*}-$src
regions:
  - name: \${bad%%:*}
    start: "\${bad#*:}"
    size: 4096
triggers:
  - kind: control
destination:
  kind: dir
  path: $D/refused
  retention: { keep_free: 0 }
source:
  kind: $src
`;
}

function job(kernel: KernelSpec): string {
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
    {
      label: 'kernel-raw-big',
      source: 'kernel',
      phys: hex(big.start),
      length: String(big.size),
      dest: '$RAW',
      mode: 'existing',
      destOffset: String(offsets.get('big')),
    },
    {
      label: 'kernel-readback-trace',
      source: 'kernel',
      phys: hex(trace.start),
      length: String(trace.size),
      dest: '$D/readback-trace.bin',
      mode: 'create',
      hash: 'readback',
    },
    { label: 'kernel-mmio', source: 'kernel', phys: '0xa0000', length: '65536', dest: '$D/mmio.bin', mode: 'create' },
    { label: 'kernel-overwrite', source: 'kernel', phys: hex(trace.start), length: '4096', dest: '$D/kernel-trace.bin', mode: 'create' },
    // Odd sizes and starts, as /proc/iomem's selectors give them (its
    // "System RAM" from 0x1000 ends at 0x9fbff): the aligned body goes
    // zero-copy, the rest through a zero-padded aligned buffer.
    ...ODD_SLICES.flatMap((o) =>
      ['kernel', 'devmem'].map((source) => ({
        label: `${source}-${o.label}`,
        source,
        phys: hex(trace.start + o.offset),
        length: String(o.size),
        dest: `$D/${source}-${o.label}.bin`,
        mode: 'create',
      })),
    ),
  );
  const args = requests.map((r) => `"$(printf '%s' '${JSON.stringify(r)}' | sed "s|\\$D|$D|; s|\\$RAW|$RAW|")"`).join(' \\\n  ');
  // The ELF captures (physcap capture, the CLI as users run it) go to a
  // dir destination on the scratch disk and to a blockdev destination on
  // the slow disk (vdc): the raw disk (vdb) holds the big range at its
  // rawOffsets, which the host reads after the boot, and nothing else in
  // this job uses vdc.  The slow disk's write throttle costs ~1 s here.
  return `${jobHead(kernel)}insmod $MOD || exit 10
node ${guestScript} \\
  ${args}
rc=$?
P=$TMPDIR/profiles
mkdir -p $P
cat > $P/board-elf-dir.yaml <<YAML
${elfProfile('board-elf-dir', `  kind: dir\n  path: $D/${ELF_DIR}\n  retention: { keep_free: 0 }`)}YAML
cat > $P/board-elf-blockdev.yaml <<YAML
${elfProfile('board-elf-blockdev', '  kind: blockdev\n  device: $SLOW')}YAML
node ${guestCli} capture-dir capture $P/board-elf-dir.yaml --json
node ${guestCli} capture-blockdev capture $P/board-elf-blockdev.yaml --json
for c in $D/${ELF_DIR}/*/; do node ${guestCli} verify-dir verify \${c%/} --json; done
# Not memory: refused before anything is written, by both sources alike.
for src in kernel devmem; do
	for bad in flash:0xfffc0000 hole:0xf000000000; do
		cat > $P/\${bad%%:*}-$src.yaml <<YAML
${badProfile()}YAML
		node ${guestCli} refused-\${bad%%:*}-$src capture $P/\${bad%%:*}-$src.yaml --json
	done
done
node ${guestCli} list-blockdev list --dest $SLOW --json
exit $rc
`;
}

describe.each(loadKernels().map((k) => [k.series, k] as const))('the native engine on the board, kernel %s', (_s, kernel) => {
  let run: BoardRun;
  const get = (label: string): Captured => run.record<Captured>('capture', label);

  beforeAll(async () => {
    run = await bootBoard({ kernel, job: job(kernel), reserved: BOARD_RANGES });
  }, 20 * 60_000);
  afterAll(() => run?.cleanup());

  test('the job ran', () => expectJobRan(run));

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

  describe.each(ODD_SLICES.map((o) => [o.label, o] as const))('a slice of the trace range: %s', (_l, o) => {
    test.each(['kernel', 'devmem'])(
      '[board] %s source: every byte exact, the aligned body zero-copy where the source can, the rest copied and counted',
      (source) => {
        const c = get(`${source}-${o.label}`);
        const truth = run.memorySliceSha256('trace', o.offset, o.size);
        expect(c).toMatchObject({ ok: true, source, mode: 'copy', sha256: truth });
        expect((c.bytesZeroCopy ?? 0) + (c.bytesCopied ?? 0) + (c.bytesBounced ?? 0)).toBe(o.size);
        expect(c.bytesCopied).toBeGreaterThan(0);
        if (source === 'kernel' && o.offset === 0) expect(c.bytesZeroCopy).toBeGreaterThanOrEqual(3 * 4096);
        expect(run.scratchFileSha256(`/${source}-${o.label}.bin`, o.size)).toBe(truth);
      },
    );
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

  test.each(['kernel', 'devmem'])(
    '[board] %s source: "Reserved" without RAM behind it and a hole are refused before anything is written, saying why',
    (src) => {
      const flash = cliRecord(run, `refused-flash-${src}`);
      expect(flash.rc).not.toBe(0);
      expect(flash.stderr).toMatch(
        /region flash: 0xfffc0000-0xfffc0fff is "Reserved", but the firmware did not report RAM there .* set allow_device: true on the region/,
      );
      const hole = cliRecord(run, `refused-hole-${src}`);
      expect(hole.rc).not.toBe(0);
      expect(hole.stderr).toMatch(/region hole: 0xf000000000-0xf000000fff is in no \/proc\/iomem resource/);
      // Nothing was begun in the destination.
      const ls = spawnSync('debugfs', ['-R', 'ls -l /refused', run.images.scratch], { encoding: 'utf8' });
      expect(ls.stdout).not.toMatch(/(flash|hole)-/);
    },
  );

  // The issue's interop requirement: an ELF capture of reserved ranges
  // taken on the board matches the host's ground truth through
  // `export --format raw`, read on another machine (the host).
  describe('ELF captures of the reserved ranges (physcap capture), read back on the host', () => {
    interface CaptureJson {
      id: string;
      status: string;
      location: string;
      error?: { code?: string; message: string };
      regions?: Array<{ name: string; phys: string; size: number; mode: string; sha256: string; bytesZeroCopy: number }>;
    }
    let work: string;
    beforeAll(() => {
      work = tempDir('board-elf');
    });
    afterAll(() => work && removeDir(work));

    const captured = (label: string): CaptureJson => {
      const rec = cliRecord(run, label);
      const c = cliJson<CaptureJson>(rec);
      if (rec.rc !== 0 || c.status !== 'complete') throw new Error(`${label}: ${JSON.stringify(rec)}`);
      return c;
    };

    /** Every region, all of it zero-copy; an ELF core's region has no digest of its own (its chunk digests are checked on the host). */
    const expectExact = (regions: CaptureJson['regions']) => {
      expect(regions?.map((r) => r.name)).toEqual(ELF_RANGES.map((r) => r.name));
      for (const r of ELF_RANGES) {
        expect(regions?.find((x) => x.name === r.name)).toMatchObject({
          phys: hex(r.start),
          size: r.size,
          mode: 'zero-copy',
          bytesZeroCopy: r.size,
          sha256: '',
        });
      }
    };

    /** export --format raw on the host: one <region>.raw each, equal to the ground truth. */
    const expectRawExport = (args: string[], out: string) => {
      const res = physcapSync(['export', ...args, '--format', 'raw', '-o', out, '--json']);
      if (res.code !== 0) throw new Error(`physcap export ${args.join(' ')}: exit ${res.code}\n${res.stderr}${res.stdout}`);
      for (const r of ELF_RANGES) {
        const file = path.join(out, `${r.name}.raw`);
        expect(fs.statSync(file).size).toBe(r.size);
        expect(sha256File(file)).toBe(run.truth(r.name).sha256);
      }
    };

    test("in the guest: both captures complete, zero-copy, with the ground truth's digests", () => {
      expectExact(captured('capture-dir').regions);
      expectExact(captured('capture-blockdev').regions);
      expect(captured('capture-dir').location).toBe(`/run/physcap-board/disk/${ELF_DIR}/${captured('capture-dir').id}`);
    });

    test('in the guest: verify passes on the dir capture; list shows the blockdev capture complete', () => {
      const v = cliRecord(run, 'verify-dir');
      expect({ rc: v.rc, ...cliJson<{ ok: boolean; problems: string[] }>(v) }).toMatchObject({ rc: 0, ok: true, problems: [] });
      const l = cliRecord(run, 'list-blockdev');
      expect(l.rc).toBe(0);
      expect(cliJson<{ captures: unknown[]; problems: string[] }>(l)).toMatchObject({
        captures: [{ id: captured('capture-blockdev').id, status: 'complete', data: 'present' }],
        problems: [],
      });
    });

    test('dir capture, copied off the scratch disk: the host verifies it and its raw export equals the ground truth', () => {
      const id = captured('capture-dir').id;
      const dest = scratchCopyDir(run, `/${ELF_DIR}`, path.join(work, 'scratch'));
      const dir = path.join(dest, id);

      const m = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Manifest;
      expect(m).toMatchObject({ id, status: 'complete', format: 'elf', byteOrder: 'little', triggers: [{ kind: 'control' }] });
      expect(m.regions).toHaveLength(ELF_RANGES.length);
      for (const r of ELF_RANGES) {
        expect(m.regions.find((x) => x.name === r.name)).toMatchObject({
          phys: hex(r.start),
          size: r.size,
          source: 'kernel',
          mode: 'zero-copy',
          bytesZeroCopy: r.size,
          bytesCopied: 0,
          file: 'core.elf',
          sha256: '',
          chunkSize: 2 ** 20,
        });
        expect(
          regionChunks(
            dir,
            m.regions.find((x) => x.name === r.name)!,
          ),
        ).toEqual(run.memoryChunks(r.name, 2 ** 20));
      }
      expect(m.timing.durable! <= m.timing.digested!).toBe(true);

      const core = path.join(dir, 'core.elf');
      const elf = readelf(core);
      expect(elf.type).toBe('CORE');
      // The guest kernel's own VMCOREINFO rides in the PT_NOTE, for crash and makedumpfile.
      const notes = execFileSync('readelf', ['-n', '-W', core], { encoding: 'utf8' });
      expect(notes).toMatch(/VMCOREINFO\s+0x[0-9a-f]+\s+Unknown note type: \(0x00000000\)/);
      expect(notes).toMatch(/PHYSCAP\s+0x[0-9a-f]+\s+Unknown note type: \(0x50430001\)/);
      const noteText = fs.readFileSync(core).toString('latin1');
      expect(noteText).toContain(`OSRELEASE=${kernel.release}`);
      expect(elf.loads.map((l) => l.paddr)).toEqual(ELF_RANGES.map((r) => BigInt(r.start)));
      expect(elf.loads.map((l) => l.filesz)).toEqual(ELF_RANGES.map((r) => BigInt(r.size)));
      // Each PT_LOAD's bytes in the file are the range's true bytes.
      for (const [i, r] of ELF_RANGES.entries()) {
        expect(sha256File(core, Number(elf.loads[i]!.offset), r.size)).toBe(run.truth(r.name).sha256);
      }

      const v = physcapSync(['verify', dir]);
      if (v.code !== 0) throw new Error(`physcap verify ${dir}: exit ${v.code}\n${v.stdout}${v.stderr}`);
      expect(v.stdout).toMatch(new RegExp(`^${id}: verified$`, 'm'));

      expectRawExport([dir], path.join(work, 'dir-raw'));
    });

    test('blockdev capture, read from the slow disk image: listed complete, verified, raw export equals the ground truth', () => {
      const id = captured('capture-blockdev').id;
      const image = run.images.slow;
      const l = physcapSync(['list', '--dest', image, '--json']);
      expect(l.code).toBe(0);
      expect(JSON.parse(l.stdout)).toMatchObject({ captures: [{ id, status: 'complete', data: 'present' }], problems: [] });

      const v = physcapSync(['verify', id, '--dest', image]);
      if (v.code !== 0) throw new Error(`physcap verify ${id} --dest ${image}: exit ${v.code}\n${v.stdout}${v.stderr}`);

      expectRawExport([id, '--dest', image], path.join(work, 'blockdev-raw'));
    });
  });
});
