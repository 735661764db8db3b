/** The ELF core container: real files, read back by the real readelf and by parseElfCore. */
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import {
  ElfLayout,
  ElfNote,
  ElfRegionIn,
  ElfTarget,
  NOTE_PHYSCAP,
  NOTE_VMCOREINFO,
  PT_LOAD,
  PT_NOTE,
  hostElfTarget,
  layoutElfCore,
  parseElfCore,
} from '../../agent/src/container/elf';
import { removeDir, tempDir } from '../support/tmp';

const READELF = '/usr/bin/readelf';

let dir: string;
beforeEach(() => {
  dir = tempDir('elf');
});
afterEach(() => {
  removeDir(dir);
});

const NOTES: ElfNote[] = [
  { ...NOTE_PHYSCAP, desc: Buffer.from(JSON.stringify({ id: 'c1', profile: 'board', regions: [] })) },
  // An odd length: the padding to 4 bytes must be right for readelf to find anything after it.
  { ...NOTE_VMCOREINFO, desc: Buffer.from('OSRELEASE=6.1.0-13-amd64\nPAGESIZE=4096\nSYMBOL(swapper_pg_dir)=ffffffff8a00\n') },
];

/** Writes the layout as the engine would: the header at 0, each region's bytes at its offset. */
function writeCore(name: string, layout: ElfLayout, data: Buffer[]): string {
  const file = path.join(dir, name);
  const fd = fs.openSync(file, 'wx');
  try {
    fs.writeSync(fd, layout.header, 0, layout.header.length, 0);
    data.forEach((d, i) => fs.writeSync(fd, d, 0, d.length, Number(layout.regionOffsets[i])));
    fs.ftruncateSync(fd, Number(layout.fileSize));
  } finally {
    fs.closeSync(fd);
  }
  return file;
}

function fileReader(file: string) {
  const bytes = fs.readFileSync(file);
  return { bytes, read: (offset: number, length: number) => bytes.subarray(offset, offset + length) };
}

interface ReadelfView {
  type: string;
  machine: string;
  data: string;
  loads: Array<{ offset: bigint; paddr: bigint; vaddr: bigint; filesz: bigint; memsz: bigint; flags: string; align: bigint }>;
  noteOwners: string[];
  stdout: string;
}

function readelf(file: string, ...extra: string[]): ReadelfView {
  const r = spawnSync(READELF, ['-h', '-l', '-n', '-W', ...extra, file], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  expect(r.error).toBeUndefined();
  expect(r.stderr).toBe(''); // readelf warns on stderr about anything malformed
  expect(r.status).toBe(0);
  const field = (label: string) => (r.stdout.match(new RegExp(`^\\s*${label}:\\s*(.*)$`, 'm')) ?? [])[1]?.trim() ?? '';
  const loads = [
    ...r.stdout.matchAll(/^\s*LOAD\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(\S+)\s+(0x[0-9a-f]+|\d+)$/gm),
  ].map((m) => ({
    offset: BigInt(m[1]),
    vaddr: BigInt(m[2]),
    paddr: BigInt(m[3]),
    filesz: BigInt(m[4]),
    memsz: BigInt(m[5]),
    flags: m[6],
    align: BigInt(m[7]),
  }));
  const noteOwners = [...r.stdout.matchAll(/^\s{2}(\S+)\s+0x[0-9a-f]{8}\s/gm)].map((m) => m[1]);
  return { type: field('Type'), machine: field('Machine'), data: field('Data'), loads, noteOwners, stdout: r.stdout };
}

const CASES: Array<{ title: string; target: ElfTarget; machineName: string; align: number; regions: ElfRegionIn[] }> = [
  {
    title: 'one region, x86-64',
    target: { machine: 62, bigEndian: false },
    machineName: 'Advanced Micro Devices X86-64',
    align: 4096,
    regions: [{ paddr: 0x2800_0000n, size: 0x1_0000n }],
  },
  {
    title: 'three regions, odd sizes, above 4 GiB, AArch64, 64 KiB align',
    target: { machine: 183, bigEndian: false },
    machineName: 'AArch64',
    align: 65536,
    regions: [
      { paddr: 0x1000n, size: 0x9_f000n },
      { paddr: 0x1_0000_0000n, size: 5000n },
      { paddr: 0x8_8000_0000n, size: 1n },
    ],
  },
  {
    title: 'big-endian PowerPC',
    target: { machine: 20, bigEndian: true },
    machineName: 'PowerPC',
    align: 4096,
    regions: [
      { paddr: 0n, size: 4097n },
      { paddr: 0xf000_0000n, size: 0x3000n },
    ],
  },
];

describe.each(CASES)('layoutElfCore: $title', ({ target, machineName, align, regions }) => {
  let layout: ElfLayout;
  let data: Buffer[];
  let file: string;
  beforeEach(() => {
    layout = layoutElfCore({ target, regions, notes: NOTES, align });
    data = regions.map((r) => crypto.randomBytes(Number(r.size)));
    file = writeCore('core.elf', layout, data);
  });

  test('readelf reads it: CORE, the machine, the byte order, the LOAD segments and the notes', () => {
    const v = readelf(file);
    expect(v.type).toBe('CORE (Core file)');
    expect(v.machine).toBe(machineName);
    expect(v.data).toBe(target.bigEndian ? "2's complement, big endian" : "2's complement, little endian");
    expect(v.loads).toEqual(
      regions.map((r, i) => ({
        offset: layout.regionOffsets[i],
        vaddr: 0n,
        paddr: r.paddr,
        filesz: r.size,
        memsz: r.size,
        flags: 'RWE',
        align: 0n,
      })),
    );
    expect(v.noteOwners).toEqual(['PHYSCAP', 'VMCOREINFO']);
    expect(v.stdout).toMatch(/^\s*NOTE\s+0x[0-9a-f]+\s+0x0+\s+0x0+\s+0x[0-9a-f]+\s+0x[0-9a-f]+\s+0x4$/m);
  });

  test('offsets are aligned, in order, after the header and not overlapping; fileSize ends the last region rounded up', () => {
    const a = BigInt(align);
    expect(layout.header.length % align).toBe(0);
    expect(layout.regionOffsets).toHaveLength(regions.length);
    let end = BigInt(layout.header.length);
    regions.forEach((r, i) => {
      expect(layout.regionOffsets[i] % a).toBe(0n);
      expect(layout.regionOffsets[i]).toBeGreaterThanOrEqual(end);
      expect(layout.regionOffsets[i] - end).toBeLessThan(a); // no gap beyond the alignment padding
      end = layout.regionOffsets[i] + r.size;
    });
    expect(layout.fileSize % a).toBe(0n);
    expect(layout.fileSize - end).toBeGreaterThanOrEqual(0n);
    expect(layout.fileSize - end).toBeLessThan(a);
    expect(fs.statSync(file).size).toBe(Number(layout.fileSize));
  });

  test('parseElfCore round-trips it, and each PT_LOAD points at its region bytes', () => {
    const { bytes, read } = fileReader(file);
    const core = parseElfCore(read, bytes.length);
    expect(core.target).toEqual(target);
    expect(core.notes).toEqual(NOTES);
    const notesSize = core.segments[0].filesz;
    expect(core.headerBytes).toBe(64 + 56 * (1 + regions.length) + Number(notesSize));
    expect(core.headerBytes).toBeLessThanOrEqual(layout.header.length);
    expect(core.segments[0]).toMatchObject({ type: PT_NOTE, offset: BigInt(64 + 56 * (1 + regions.length)), align: 4n });
    expect(core.segments.slice(1)).toEqual(
      regions.map((r, i) => ({
        type: PT_LOAD,
        flags: 7,
        offset: layout.regionOffsets[i],
        vaddr: 0n,
        paddr: r.paddr,
        filesz: r.size,
        memsz: r.size,
        align: 0n,
      })),
    );
    core.segments.slice(1).forEach((s, i) => {
      expect(bytes.subarray(Number(s.offset), Number(s.offset + s.filesz)).equals(data[i])).toBe(true);
    });
  });
});

test('the header block is exactly ELF header, program headers and 4-byte-padded notes (namesz counts the NUL)', () => {
  const layout = layoutElfCore({ target: { machine: 62, bigEndian: false }, regions: [{ paddr: 0x1000n, size: 0x1000n }], notes: NOTES, align: 4096 });
  const h = layout.header;
  const at = 64 + 56 * 2;
  expect(h.readUInt32LE(at)).toBe('PHYSCAP'.length + 1);
  expect(h.readUInt32LE(at + 4)).toBe(NOTES[0].desc.length);
  expect(h.readUInt32LE(at + 8)).toBe(0x50430001);
  expect(h.subarray(at + 12, at + 20).toString('latin1')).toBe('PHYSCAP\0');
  expect(at % 4).toBe(0);
  // e_ident: class 64, little-endian, version 1, OS ABI 0; e_type CORE; e_phoff 64; e_shoff 0; sizes 64/56; e_phnum 2
  expect([...h.subarray(0, 8)]).toEqual([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]);
  expect([h.readUInt16LE(16), h.readUInt16LE(18), h.readUInt32LE(20)]).toEqual([4, 62, 1]);
  expect([h.readBigUInt64LE(24), h.readBigUInt64LE(32), h.readBigUInt64LE(40)]).toEqual([0n, 64n, 0n]);
  expect([h.readUInt16LE(52), h.readUInt16LE(54), h.readUInt16LE(56)]).toEqual([64, 56, 2]);
});

test('more than 65534 regions: e_phnum says PN_XNUM and section header 0 carries the count; readelf and parseElfCore agree', () => {
  const n = 70_000;
  const regions = Array.from({ length: n }, (_, i) => ({ paddr: BigInt(i) * 0x10000n, size: 512n }));
  const layout = layoutElfCore({ target: { machine: 62, bigEndian: false }, regions, notes: NOTES, align: 4096 });
  // A sparse file: the region bytes are holes (zeros), only the header is written.
  const file = writeCore('many.elf', layout, []);
  const v = readelf(file);
  expect(v.stdout).toMatch(/Number of program headers:\s+65535 \(70001\)/);
  expect(v.loads).toHaveLength(n);
  expect(v.loads[n - 1]).toMatchObject({ paddr: BigInt(n - 1) * 0x10000n, offset: layout.regionOffsets[n - 1] });
  const { bytes, read } = fileReader(file);
  const core = parseElfCore(read, bytes.length);
  expect(core.segments).toHaveLength(n + 1);
  expect(core.segments[n].paddr).toBe(BigInt(n - 1) * 0x10000n);
  expect(core.notes).toEqual(NOTES);
});

test('layoutElfCore refuses what it cannot lay out', () => {
  const target = { machine: 62, bigEndian: false };
  expect(() => layoutElfCore({ target, regions: [], notes: [], align: 1000 })).toThrow('align 1000 is not a power of two >= 512');
  expect(() => layoutElfCore({ target, regions: [], notes: [], align: 256 })).toThrow('align 256 is not a power of two >= 512');
  expect(() => layoutElfCore({ target, regions: [{ paddr: 0x1000n, size: 0n }], notes: [], align: 4096 })).toThrow('region 0 (paddr 0x1000) has size 0');
  expect(() => layoutElfCore({ target, regions: [{ paddr: (1n << 64n) - 4096n, size: 8192n }], notes: [], align: 4096 })).toThrow(
    /outside the 64-bit physical address space/,
  );
});

describe('parseElfCore rejects corrupt headers with what is wrong', () => {
  let good: Buffer;
  beforeEach(() => {
    const layout = layoutElfCore({ target: { machine: 62, bigEndian: false }, regions: [{ paddr: 0x1000n, size: 0x2000n }], notes: NOTES, align: 4096 });
    good = fs.readFileSync(writeCore('good.elf', layout, [crypto.randomBytes(0x2000)]));
  });
  const parse = (b: Buffer, size = b.length) => parseElfCore((o, l) => b.subarray(o, o + l), size);
  const corrupt = (edit: (b: Buffer) => void) => {
    const b = Buffer.from(good);
    edit(b);
    return b;
  };

  test('the good file parses', () => {
    expect(parse(good).segments).toHaveLength(2);
  });
  test('bad magic', () => {
    expect(() =>
      parse(
        corrupt((b) => {
          b[1] = 0x58;
        }),
      ),
    ).toThrow('bad magic 7f584c46 (expected 7f454c46');
  });
  test('32-bit class', () => {
    expect(() =>
      parse(
        corrupt((b) => {
          b[4] = 1;
        }),
      ),
    ).toThrow('EI_CLASS 1 is not ELFCLASS64 (2)');
  });
  test('unknown byte order', () => {
    expect(() =>
      parse(
        corrupt((b) => {
          b[5] = 3;
        }),
      ),
    ).toThrow('unsupported byte order EI_DATA 3');
  });
  test('the wrong byte order makes the type unreadable', () => {
    expect(() =>
      parse(
        corrupt((b) => {
          b[5] = 2;
        }),
      ),
    ).toThrow('e_type 1024 is not ET_CORE (4)');
  });
  test('not a core', () => {
    expect(() => parse(corrupt((b) => b.writeUInt16LE(2, 16)))).toThrow('e_type 2 is not ET_CORE (4)');
  });
  test('e_phoff past the end', () => {
    expect(() => parse(corrupt((b) => b.writeBigUInt64LE(BigInt(good.length - 60), 32)))).toThrow(
      `the program header table (e_phoff ${good.length - 60}, 2 entries) ends at ${good.length - 60 + 112}, past the end of the file (${good.length} bytes)`,
    );
  });
  test('a PT_LOAD whose data runs past fileSize', () => {
    const phdr1 = 64 + 56;
    expect(() => parse(corrupt((b) => b.writeBigUInt64LE(BigInt(good.length), phdr1 + 8)))).toThrow(
      `segment 1 (PT_LOAD, offset ${good.length}, filesz 8192) ends at ${good.length + 8192}, past the end of the file (${good.length} bytes)`,
    );
  });
  test('a file cut short', () => {
    expect(() => parse(good, good.length - 4096)).toThrow(
      /segment 1 \(PT_LOAD, offset 4096, filesz 8192\) ends at 12288, past the end of the file \(8192 bytes\)/,
    );
    expect(() => parse(good, 40)).toThrow('the file is 40 bytes, shorter than an ELF64 header (64)');
  });
  test('a note whose size runs past its segment', () => {
    expect(() => parse(corrupt((b) => b.writeUInt32LE(0x10000, 64 + 112 + 4)))).toThrow(
      /segment 0 \(PT_NOTE at offset 176\): the note at byte 0 \(namesz 8, descsz 65536\) runs past the segment's end/,
    );
  });
});

test('hostElfTarget maps Node architectures to ELF machines and byte orders', () => {
  expect(hostElfTarget('x64', 'LE')).toEqual({ machine: 62, bigEndian: false });
  expect(hostElfTarget('arm64', 'LE')).toEqual({ machine: 183, bigEndian: false });
  expect(hostElfTarget('ppc64', 'LE')).toEqual({ machine: 21, bigEndian: false });
  expect(hostElfTarget('ppc64', 'BE')).toEqual({ machine: 21, bigEndian: true });
  expect(hostElfTarget('ppc', 'BE')).toEqual({ machine: 20, bigEndian: true });
  expect(hostElfTarget('riscv64', 'LE')).toEqual({ machine: 243, bigEndian: false });
  expect(hostElfTarget('s390x', 'BE')).toEqual({ machine: 22, bigEndian: true });
  expect(() => hostElfTarget('mips', 'LE')).toThrow('no ELF machine known for architecture "mips"');
  expect(hostElfTarget()).toEqual(hostElfTarget(process.arch, os.endianness()));
});
