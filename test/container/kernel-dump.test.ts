/**
 * The kdump conventions in physcap's ELF cores, checked without a kernel:
 * which regions get a direct-map p_vaddr, the kernel image's alias
 * segment, p_align 0, and how a core is told apart from a capture of
 * physical ranges only.  The real tools (crash, drgn, gdb, makedumpfile)
 * read real captures in test/postmortem/postmortem.vm.test.ts.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { kernelImageExtent, kernelView, parseKernelMemory } from '../../agent/src/capture/kernel-memory';
import { parseIomem } from '../../agent/src/kernel/iomem';
import { layoutElfCore, NOTE_PHYSCAP, NOTE_VMCOREINFO, parseElfCore, PT_LOAD, splitLoads } from '../../agent/src/container/elf';
import { describeCore } from '../../agent/src/container/kernel-dump';
import { withTempDir } from '../support/tmp';

/** /proc/iomem of a 1 GiB x86-64 guest (the emulated board), with a memmap= reserved range. */
const X86_IOMEM = `00000000-00000fff : Reserved
00001000-0009fbff : System RAM
0009fc00-0009ffff : Reserved
000a0000-000bffff : PCI Bus 0000:00
000f0000-000fffff : Reserved
  000f0000-000fffff : System ROM
00100000-1fffffff : System RAM
  0fc00000-10a01d31 : Kernel code
  10c00000-114eafff : Kernel rodata
  11600000-1184897f : Kernel data
  11f10000-12ffffff : Kernel bss
20000000-20ffffff : Reserved
21000000-3ffd6fff : System RAM
3ffd7000-3fffffff : Reserved
40000000-febfffff : PCI Bus 0000:00
`;

/** What physcap.ko's KERNEL_MAP says on such a guest (KASLR: page_offset_base and the image moved). */
const X86_MAP = {
  directMapVirt: 0xffff_8951_8000_0000n,
  directMapStart: 0n,
  directMapEnd: 0x4000_0000n,
  imageOffset: 0xffff_ffff_8dc0_0000n, // __START_KERNEL_map - phys_base: _text at 0xffffffff9d800000
};

const NOTES = [
  { ...NOTE_PHYSCAP, desc: Buffer.from('{}') },
  { ...NOTE_VMCOREINFO, desc: Buffer.from('OSRELEASE=6.1.0-57-amd64\nBUILD-ID=6a2b\nPAGESIZE=4096\nKERNELOFFSET=1c800000\n') },
];

test('the kernel image extent is the union of iomem\'s Kernel code..bss; none without "Kernel code"', () => {
  expect(kernelImageExtent(parseIomem(X86_IOMEM))).toEqual({ start: 0x0fc0_0000n, size: 0x1300_0000n - 0x0fc0_0000n });
  expect(kernelImageExtent(parseIomem('00000000-0fffffff : System RAM\n'))).toBeNull();
});

test('x86-64: RAM in the direct map gets page_offset_base + p; reserved and partly-RAM regions keep 0; the image gets an alias', () => {
  const km = parseKernelMemory(X86_MAP, X86_IOMEM);
  const regions = [
    { start: 0x1000n, size: 0x9ec00n }, // System RAM
    { start: 0x10_0000n, size: 0x1ff0_0000n }, // System RAM, holds the image
    { start: 0x2000_0000n, size: 0x100_0000n }, // Reserved (memmap=)
    { start: 0x1f00_0000n, size: 0x200_0000n }, // half RAM, half reserved
    { start: 0x4000_0000n, size: 0x1000n }, // past the direct map
  ];
  const view = kernelView(regions, km);
  expect(view.vaddrs).toEqual([0xffff_8951_8000_1000n, 0xffff_8951_8010_0000n, 0n, 0n, 0n]);
  expect(view.aliases).toEqual([{ vaddr: 0xffff_ffff_9d80_0000n, paddr: 0x0fc0_0000n, size: 0x340_0000n }]);
});

test('32-bit PowerPC: the image lives in the direct map (no alias); highmem past lowmem keeps 0', () => {
  const iomem = '00000000-3fffffff : System RAM\n40000000-ffffffff : System RAM\n';
  const km = parseKernelMemory({ directMapVirt: 0xc000_0000n, directMapStart: 0n, directMapEnd: 0x3000_0000n, imageOffset: 0xc000_0000n }, iomem);
  const view = kernelView(
    [
      { start: 0x0800_0000n, size: 0x100_0000n },
      { start: 0xc000_0000n, size: 0x100_0000n },
    ],
    km,
  );
  expect(view.vaddrs).toEqual([0xc800_0000n, 0n]);
  expect(view.aliases).toEqual([]);
});

describe('a core with direct-map addresses and the image alias', () => {
  const regions = [
    { paddr: 0x1000n, size: 0x9ec00n, vaddr: 0xffff_8951_8000_1000n },
    { paddr: 0x10_0000n, size: 0x1ff0_0000n, vaddr: 0xffff_8951_8010_0000n },
    { paddr: 0x2000_0000n, size: 0x100_0000n },
  ];
  const alias = { vaddr: 0xffff_ffff_9d80_0000n, paddr: 0x0fc0_0000n, size: 0x340_0000n };
  const layout = layoutElfCore({ target: { machine: 62, bigEndian: false }, regions, aliases: [alias], notes: NOTES, align: 4096 });
  const header = layout.header;
  const core = parseElfCore((o, n) => header.subarray(o, o + n), Number(layout.fileSize));

  test('phdr 0 is the PT_NOTE, the alias comes next and points into the region holding its bytes; every PT_LOAD has p_align 0', () => {
    expect(layout.aliases).toEqual([alias]);
    const loads = core.segments.filter((s) => s.type === PT_LOAD);
    expect(core.segments[0]!.type).not.toBe(PT_LOAD);
    expect(loads).toHaveLength(4);
    expect(loads[0]).toMatchObject({
      vaddr: alias.vaddr,
      paddr: alias.paddr,
      filesz: alias.size,
      memsz: alias.size,
      offset: layout.regionOffsets[1]! + (alias.paddr - 0x10_0000n),
      align: 0n,
    });
    expect(loads.slice(1).map((s) => [s.vaddr, s.paddr, s.offset, s.align])).toEqual(
      regions.map((r, i) => [r.vaddr ?? 0n, r.paddr, layout.regionOffsets[i], 0n]),
    );
  });

  test('readelf shows the same program headers', () => {
    withTempDir('kdump-elf', (dir) => {
      const file = path.join(dir, 'core');
      fs.writeFileSync(file, header);
      fs.truncateSync(file, Number(layout.fileSize));
      const r = spawnSync('readelf', ['-l', '-W', file], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.stdout).toMatch(/LOAD\s+0x[0-9a-f]+\s+0xffffffff9d800000\s+0x000000000fc00000\s+0x3400000\s+0x3400000\s+RWE\s+0\n/);
      expect(r.stdout).toMatch(/LOAD\s+0x[0-9a-f]+\s+0x0000000000000000\s+0x0000000020000000\s+0x1000000\s+0x1000000\s+RWE\s+0\n/);
    });
  });

  test('splitLoads gives the regions back, in order, and the alias apart', () => {
    const { data, aliases } = splitLoads(core);
    expect(data.map((s) => s.paddr)).toEqual(regions.map((r) => r.paddr));
    expect(aliases.map((s) => s.vaddr)).toEqual([alias.vaddr]);
  });

  test("describeCore: a kernel dump, with VMCOREINFO's release, build ID and KASLR offset", () => {
    expect(describeCore(core)).toEqual({
      kernelDump: true,
      release: '6.1.0-57-amd64',
      buildId: '6a2b',
      kernelOffset: '1c800000',
      mappedBytes: 0x9ec00n + 0x1ff0_0000n,
      physicalOnlyBytes: 0x100_0000n,
      aliases: 1,
    });
  });
});

test('an alias whose bytes no single region holds gets no PT_LOAD', () => {
  const layout = layoutElfCore({
    target: { machine: 62, bigEndian: false },
    regions: [{ paddr: 0x10_0000n, size: 0x100_0000n }],
    aliases: [{ vaddr: 0xffff_ffff_8100_0000n, paddr: 0x0fc0_0000n, size: 0x340_0000n }],
    notes: NOTES,
    align: 4096,
  });
  expect(layout.aliases).toEqual([]);
  const core = parseElfCore((o, n) => layout.header.subarray(o, o + n), Number(layout.fileSize));
  expect(core.segments.filter((s) => s.type === PT_LOAD)).toHaveLength(1);
});

test('describeCore: reserved ranges only, or no VMCOREINFO, is not a kernel dump', () => {
  const reservedOnly = layoutElfCore({
    target: { machine: 62, bigEndian: false },
    regions: [{ paddr: 0x2000_0000n, size: 0x1000n }],
    notes: NOTES,
    align: 4096,
  });
  const noInfo = layoutElfCore({
    target: { machine: 62, bigEndian: false },
    regions: [{ paddr: 0x1000n, size: 0x1000n, vaddr: 0xffff_8880_0000_1000n }],
    notes: [NOTES[0]!],
    align: 4096,
  });
  for (const l of [reservedOnly, noInfo]) {
    const core = parseElfCore((o, n) => l.header.subarray(o, o + n), Number(l.fileSize));
    expect(describeCore(core).kernelDump).toBe(false);
  }
});
