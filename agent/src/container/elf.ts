/**
 * The ELF64 core container (ET_CORE) physcap writes: the layout kdump's
 * /proc/vmcore has, so crash, drgn, gdb and readelf read it as they read a
 * vmcore.  One PT_NOTE (physcap's metadata, the kernel's VMCOREINFO) and
 * one PT_LOAD per captured physical range.  Region data starts on
 * `align` boundaries so the engine can write it with direct I/O; the
 * header block (ELF header, program headers, notes) is padded to `align`
 * for the same reason.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';

export interface ElfTarget {
  machine: number;
  bigEndian: boolean;
}

const EM_PPC = 20;
const EM_PPC64 = 21;
const EM_S390 = 22;
const EM_X86_64 = 62;
const EM_AARCH64 = 183;
const EM_RISCV = 243;

/**
 * The host's: x64 -> EM_X86_64, arm64 -> EM_AARCH64, ppc64 -> EM_PPC64,
 * ppc -> EM_PPC (big-endian), riscv64 -> EM_RISCV, s390x -> EM_S390
 * (big-endian); throws for others.  ppc64 and arm64 take the host's byte
 * order: both exist in either (ppc64le/ppc64, aarch64/aarch64_be) and
 * Node reports the same process.arch for both.
 */
export function hostElfTarget(arch: string = process.arch, endianness: 'LE' | 'BE' = os.endianness()): ElfTarget {
  const hostBig = endianness === 'BE';
  switch (arch) {
    case 'x64':
      return { machine: EM_X86_64, bigEndian: false };
    case 'arm64':
      return { machine: EM_AARCH64, bigEndian: hostBig };
    case 'ppc64':
      return { machine: EM_PPC64, bigEndian: hostBig };
    case 'ppc':
      return { machine: EM_PPC, bigEndian: true };
    case 'riscv64':
      return { machine: EM_RISCV, bigEndian: false };
    case 's390x':
      return { machine: EM_S390, bigEndian: true };
    default:
      throw new Error(`no ELF machine known for architecture "${arch}" (known: x64, arm64, ppc64, ppc, riscv64, s390x)`);
  }
}

export interface ElfNote {
  name: string;
  type: number;
  desc: Buffer;
}

/** desc: UTF-8 JSON metadata about the capture. */
export const NOTE_PHYSCAP = { name: 'PHYSCAP', type: 0x50430001 };
/** desc: /sys/kernel/vmcoreinfo's text as kdump writes it. */
export const NOTE_VMCOREINFO = { name: 'VMCOREINFO', type: 0 };

export interface ElfRegionIn {
  paddr: bigint;
  size: bigint;
  /** Where the kernel maps it (its direct map); 0 or absent: nowhere known. */
  vaddr?: bigint;
}

/**
 * A second virtual address for bytes already in the file: the kernel
 * image, which x86-64 and arm64 map apart from the direct map.  Its
 * PT_LOAD points into the region that holds those physical bytes, as
 * /proc/vmcore's kernel-text segment does, so nothing is written twice.
 */
export interface ElfAlias {
  vaddr: bigint;
  paddr: bigint;
  size: bigint;
}

export interface ElfLayout {
  /** ELF header + program headers + the PT_NOTE data, zero-padded to a multiple of align: written at offset 0 with one direct-I/O write. */
  header: Buffer;
  /** Each region's p_offset: a multiple of align, in region order, after the header, regions not overlapping. */
  regionOffsets: bigint[];
  /** The file's total size: the last region's end rounded up to align. */
  fileSize: bigint;
  /** The aliases that got a PT_LOAD: those whose bytes lie inside one region. */
  aliases: ElfAlias[];
}

export interface ElfSegment {
  type: number;
  flags: number;
  offset: bigint;
  vaddr: bigint;
  paddr: bigint;
  filesz: bigint;
  memsz: bigint;
  align: bigint;
}

export interface ElfCore {
  target: ElfTarget;
  segments: ElfSegment[];
  notes: ElfNote[];
  /** bytes covered by the ELF header, program headers and note data */
  headerBytes: number;
}

const ELFMAG = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);
const ELFCLASS64 = 2;
const ELFDATA2LSB = 1;
const ELFDATA2MSB = 2;
const EV_CURRENT = 1;
const ET_CORE = 4;
export const PT_LOAD = 1;
export const PT_NOTE = 4;
const PF_RWX = 7;
/**
 * p_align of every PT_LOAD, as in /proc/vmcore: 0.  The data still starts
 * on `align` boundaries (direct I/O needs it), but crash types a core
 * whose first PT_LOAD says p_align != 0 as a netdump core, and then
 * ignores VMCOREINFO's KERNELOFFSET (KASLR) and cannot read the kernel.
 */
const LOAD_P_ALIGN = 0n;
/** e_phnum's escape: the real count is in section header 0's sh_info. */
const PN_XNUM = 0xffff;

const EHDR_SIZE = 64;
const PHDR_SIZE = 56;
const SHDR_SIZE = 64;
/** The ELF spec's note alignment for 64-bit cores as Linux writes them. */
const NOTE_ALIGN = 4;
const U64_LIMIT = 1n << 64n;

const roundUp = (n: bigint, to: bigint) => ((n + to - 1n) / to) * to;
const pad4 = (n: number) => (n + 3) & ~3;

/** Multi-byte fields in one byte order, so writer and reader cannot disagree. */
function fields(buf: Buffer, bigEndian: boolean) {
  return bigEndian
    ? {
        u16: (off: number, v: number) => buf.writeUInt16BE(v, off),
        u32: (off: number, v: number) => buf.writeUInt32BE(v, off),
        u64: (off: number, v: bigint) => buf.writeBigUInt64BE(v, off),
        r16: (off: number) => buf.readUInt16BE(off),
        r32: (off: number) => buf.readUInt32BE(off),
        r64: (off: number) => buf.readBigUInt64BE(off),
      }
    : {
        u16: (off: number, v: number) => buf.writeUInt16LE(v, off),
        u32: (off: number, v: number) => buf.writeUInt32LE(v, off),
        u64: (off: number, v: bigint) => buf.writeBigUInt64LE(v, off),
        r16: (off: number) => buf.readUInt16LE(off),
        r32: (off: number) => buf.readUInt32LE(off),
        r64: (off: number) => buf.readBigUInt64LE(off),
      };
}

function noteBytes(n: ElfNote): number {
  return 12 + pad4(Buffer.byteLength(n.name, 'utf8') + 1) + pad4(n.desc.length);
}

/** align: a power of two >= 512 (the destination's direct-I/O block; callers pass >= 4096). */
export function layoutElfCore(o: { target: ElfTarget; regions: ElfRegionIn[]; notes: ElfNote[]; align: number; aliases?: ElfAlias[] }): ElfLayout {
  const { target, regions, notes, align } = o;
  // An alias is placed only where one region holds all of its bytes.
  const placed = (o.aliases ?? []).flatMap((a) => {
    const k = regions.findIndex((r) => a.size > 0n && a.paddr >= r.paddr && a.paddr + a.size <= r.paddr + r.size);
    return k < 0 ? [] : [{ alias: a, region: k }];
  });
  if (!Number.isSafeInteger(align) || align < 512 || (align & (align - 1)) !== 0) {
    throw new Error(`ELF layout: align ${align} is not a power of two >= 512`);
  }
  if (!Number.isInteger(target.machine) || target.machine < 0 || target.machine > 0xffff) {
    throw new Error(`ELF layout: machine ${target.machine} does not fit e_machine (16 bits)`);
  }
  regions.forEach((r, i) => {
    if (r.size <= 0n) throw new Error(`ELF layout: region ${i} (paddr 0x${r.paddr.toString(16)}) has size ${r.size}; it must be > 0`);
    if (r.paddr < 0n || r.paddr + r.size > U64_LIMIT) {
      throw new Error(`ELF layout: region ${i} (paddr ${r.paddr}, size ${r.size}) is outside the 64-bit physical address space`);
    }
  });
  for (const n of notes) {
    if (n.name.includes('\0')) throw new Error(`ELF layout: note name ${JSON.stringify(n.name)} contains a NUL`);
    if (!Number.isInteger(n.type) || n.type < 0 || n.type > 0xffffffff) throw new Error(`ELF layout: note ${n.name}: type ${n.type} does not fit 32 bits`);
    if (n.desc.length > 0xffffffff) throw new Error(`ELF layout: note ${n.name}: desc of ${n.desc.length} bytes does not fit 32 bits`);
  }

  const phnum = 1 + placed.length + regions.length;
  // Past 65534 program headers e_phnum cannot hold the count: it says
  // PN_XNUM and one section header carries it (as Linux's core dumps do).
  const extended = phnum >= PN_XNUM;
  const phoff = EHDR_SIZE;
  const notesOffset = phoff + PHDR_SIZE * phnum;
  const notesSize = notes.reduce((sum, n) => sum + noteBytes(n), 0);
  const shoff = extended ? (notesOffset + notesSize + 7) & ~7 : 0;
  const used = extended ? shoff + SHDR_SIZE : notesOffset + notesSize;

  const alignN = BigInt(align);
  const headerSize = Number(roundUp(BigInt(used), alignN));
  const header = Buffer.alloc(headerSize);
  const w = fields(header, target.bigEndian);

  ELFMAG.copy(header, 0);
  header[4] = ELFCLASS64;
  header[5] = target.bigEndian ? ELFDATA2MSB : ELFDATA2LSB;
  header[6] = EV_CURRENT;
  header[7] = 0; // ELFOSABI_NONE (System V), as vmcore
  w.u16(16, ET_CORE);
  w.u16(18, target.machine);
  w.u32(20, EV_CURRENT);
  w.u64(24, 0n); // e_entry
  w.u64(32, BigInt(phoff));
  w.u64(40, BigInt(shoff));
  w.u32(48, 0); // e_flags
  w.u16(52, EHDR_SIZE);
  w.u16(54, PHDR_SIZE);
  w.u16(56, extended ? PN_XNUM : phnum);
  w.u16(58, extended ? SHDR_SIZE : 0);
  w.u16(60, extended ? 1 : 0);
  w.u16(62, 0); // e_shstrndx: SHN_UNDEF

  const phdr = (i: number, s: ElfSegment) => {
    const at = phoff + i * PHDR_SIZE;
    w.u32(at, s.type);
    w.u32(at + 4, s.flags);
    w.u64(at + 8, s.offset);
    w.u64(at + 16, s.vaddr);
    w.u64(at + 24, s.paddr);
    w.u64(at + 32, s.filesz);
    w.u64(at + 40, s.memsz);
    w.u64(at + 48, s.align);
  };

  phdr(0, {
    type: PT_NOTE,
    flags: 0,
    offset: BigInt(notesOffset),
    vaddr: 0n,
    paddr: 0n,
    filesz: BigInt(notesSize),
    memsz: BigInt(notesSize),
    align: BigInt(NOTE_ALIGN),
  });

  let at = notesOffset;
  for (const n of notes) {
    const name = Buffer.from(n.name + '\0', 'utf8');
    w.u32(at, name.length); // n_namesz counts the NUL
    w.u32(at + 4, n.desc.length);
    w.u32(at + 8, n.type);
    name.copy(header, at + 12);
    n.desc.copy(header, at + 12 + pad4(name.length));
    at += noteBytes(n);
  }

  if (extended) w.u32(shoff + 44, phnum); // section header 0's sh_info; the rest stays zero (SHT_NULL)

  const regionOffsets: bigint[] = [];
  let end = BigInt(headerSize);
  const first = 1 + placed.length;
  regions.forEach((r, i) => {
    const offset = roundUp(end, alignN);
    regionOffsets.push(offset);
    // p_vaddr 0 where the kernel does not map the range (or nobody knows
    // where): the tools then take the address from p_paddr, as for
    // vmcore's physical-only segments.  A made-up address would mislead.
    phdr(first + i, { type: PT_LOAD, flags: PF_RWX, offset, vaddr: r.vaddr ?? 0n, paddr: r.paddr, filesz: r.size, memsz: r.size, align: LOAD_P_ALIGN });
    end = offset + r.size;
  });
  // The aliases come first, as /proc/vmcore's kernel text does: readers
  // that resolve an address by the first matching PT_LOAD find the same
  // bytes either way.
  placed.forEach(({ alias: a, region: k }, i) => {
    const offset = regionOffsets[k]! + (a.paddr - regions[k]!.paddr);
    phdr(1 + i, { type: PT_LOAD, flags: PF_RWX, offset, vaddr: a.vaddr, paddr: a.paddr, filesz: a.size, memsz: a.size, align: LOAD_P_ALIGN });
  });

  return { header, regionOffsets, fileSize: roundUp(end, alignN), aliases: placed.map((p) => p.alias) };
}

/**
 * Reads and checks an ELF core through read(offset, length) (so it works
 * on files and on block-device records); throws an Error whose message
 * says exactly what is wrong.
 */
export function parseElfCore(read: (offset: number, length: number) => Buffer, fileSize: number): ElfCore {
  const readExactly = (offset: number, length: number, what: string): Buffer => {
    if (offset + length > fileSize) {
      throw new Error(`ELF core: ${what} (offset ${offset}, ${length} bytes) runs past the end of the file (${fileSize} bytes)`);
    }
    const b = read(offset, length);
    if (b.length < length) throw new Error(`ELF core: short read of ${what}: ${b.length} of ${length} bytes at offset ${offset}`);
    return b;
  };

  if (fileSize < EHDR_SIZE) throw new Error(`ELF core: the file is ${fileSize} bytes, shorter than an ELF64 header (${EHDR_SIZE})`);
  const eh = readExactly(0, EHDR_SIZE, 'ELF header');
  if (!eh.subarray(0, 4).equals(ELFMAG)) {
    throw new Error(`ELF core: bad magic ${eh.subarray(0, 4).toString('hex')} (expected 7f454c46, "\\x7fELF")`);
  }
  if (eh[4] !== ELFCLASS64) throw new Error(`ELF core: EI_CLASS ${eh[4]} is not ELFCLASS64 (2)`);
  if (eh[5] !== ELFDATA2LSB && eh[5] !== ELFDATA2MSB)
    throw new Error(`ELF core: unsupported byte order EI_DATA ${eh[5]} (expected 1, little-endian, or 2, big-endian)`);
  if (eh[6] !== EV_CURRENT) throw new Error(`ELF core: EI_VERSION ${eh[6]} is not EV_CURRENT (1)`);
  const bigEndian = eh[5] === ELFDATA2MSB;
  const r = fields(eh, bigEndian);
  const type = r.r16(16);
  if (type !== ET_CORE) throw new Error(`ELF core: e_type ${type} is not ET_CORE (4)`);
  const machine = r.r16(18);
  const version = r.r32(20);
  if (version !== EV_CURRENT) throw new Error(`ELF core: e_version ${version} is not EV_CURRENT (1)`);
  const phoff = r.r64(32);
  const shoff = r.r64(40);
  const phentsize = r.r16(54);
  if (phentsize !== PHDR_SIZE) throw new Error(`ELF core: e_phentsize ${phentsize} is not ${PHDR_SIZE}`);
  let phnum = r.r16(56);
  let headerBytes = EHDR_SIZE;

  const size = BigInt(fileSize);
  if (phnum === PN_XNUM) {
    const shentsize = r.r16(58);
    if (shoff === 0n || shoff + BigInt(SHDR_SIZE) > size || shentsize !== SHDR_SIZE) {
      throw new Error(
        `ELF core: e_phnum is PN_XNUM but there is no valid section header 0 (e_shoff ${shoff}, e_shentsize ${shentsize}, file ${fileSize} bytes)`,
      );
    }
    const sh = readExactly(Number(shoff), SHDR_SIZE, 'section header 0');
    phnum = fields(sh, bigEndian).r32(44);
    headerBytes = Math.max(headerBytes, Number(shoff) + SHDR_SIZE);
  }
  const phEnd = phoff + BigInt(phnum) * BigInt(PHDR_SIZE);
  if (phoff < BigInt(EHDR_SIZE) && phnum > 0) throw new Error(`ELF core: e_phoff ${phoff} overlaps the ELF header`);
  if (phEnd > size) {
    throw new Error(`ELF core: the program header table (e_phoff ${phoff}, ${phnum} entries) ends at ${phEnd}, past the end of the file (${fileSize} bytes)`);
  }
  headerBytes = Math.max(headerBytes, Number(phEnd));

  const ph = phnum > 0 ? readExactly(Number(phoff), phnum * PHDR_SIZE, 'program header table') : Buffer.alloc(0);
  const p = fields(ph, bigEndian);
  const segments: ElfSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const at = i * PHDR_SIZE;
    const s: ElfSegment = {
      type: p.r32(at),
      flags: p.r32(at + 4),
      offset: p.r64(at + 8),
      vaddr: p.r64(at + 16),
      paddr: p.r64(at + 24),
      filesz: p.r64(at + 32),
      memsz: p.r64(at + 40),
      align: p.r64(at + 48),
    };
    if (s.offset + s.filesz > size) {
      const kind = s.type === PT_LOAD ? 'PT_LOAD' : s.type === PT_NOTE ? 'PT_NOTE' : `type ${s.type}`;
      throw new Error(
        `ELF core: segment ${i} (${kind}, offset ${s.offset}, filesz ${s.filesz}) ends at ${s.offset + s.filesz}, past the end of the file (${fileSize} bytes)`,
      );
    }
    segments.push(s);
  }

  const notes: ElfNote[] = [];
  segments.forEach((s, i) => {
    if (s.type !== PT_NOTE) return;
    const data = readExactly(Number(s.offset), Number(s.filesz), `segment ${i} (PT_NOTE)`);
    notes.push(...parseNotes(data, bigEndian, `segment ${i} (PT_NOTE at offset ${s.offset})`));
    headerBytes = Math.max(headerBytes, Number(s.offset + s.filesz));
  });

  return { target: { machine, bigEndian }, segments, notes, headerBytes };
}

/**
 * The PT_LOADs that hold data of their own (a capture's regions, in
 * header order) and the aliases: PT_LOADs whose bytes are another's, at
 * the same physical position (a kdump core's kernel-image segment).
 */
export function splitLoads(core: ElfCore): { data: ElfSegment[]; aliases: ElfSegment[] } {
  const loads = core.segments.filter((s) => s.type === PT_LOAD && s.filesz > 0n);
  const isAliasOf = (a: ElfSegment, b: ElfSegment) =>
    a !== b &&
    a.offset >= b.offset &&
    a.offset + a.filesz <= b.offset + b.filesz &&
    a.paddr - b.paddr === a.offset - b.offset &&
    // Of two segments with the very same bytes, the later one is the alias.
    !(a.offset === b.offset && a.filesz === b.filesz && loads.indexOf(a) < loads.indexOf(b));
  const aliases = loads.filter((a) => loads.some((b) => isAliasOf(a, b)));
  return { data: loads.filter((s) => !aliases.includes(s)), aliases };
}

/** parseElfCore on a file (a board's core, an export). */
export function parseElfCoreFile(file: string): ElfCore {
  const fd = fs.openSync(file, 'r');
  try {
    return parseElfCore((offset, length) => {
      const b = Buffer.alloc(length);
      return b.subarray(0, fs.readSync(fd, b, 0, length, offset));
    }, fs.fstatSync(fd).size);
  } finally {
    fs.closeSync(fd);
  }
}

function parseNotes(data: Buffer, bigEndian: boolean, where: string): ElfNote[] {
  const r = fields(data, bigEndian);
  const notes: ElfNote[] = [];
  let at = 0;
  while (at < data.length) {
    if (at + 12 > data.length) throw new Error(`ELF core: ${where}: a note header at byte ${at} is cut off by the segment's end (${data.length} bytes)`);
    const namesz = r.r32(at);
    const descsz = r.r32(at + 4);
    const type = r.r32(at + 8);
    const nameAt = at + 12;
    const descAt = nameAt + pad4(namesz);
    const next = descAt + pad4(descsz);
    if (next > data.length) {
      throw new Error(`ELF core: ${where}: the note at byte ${at} (namesz ${namesz}, descsz ${descsz}) runs past the segment's end (${data.length} bytes)`);
    }
    // n_namesz counts the terminating NUL; tolerate names written without it.
    let name = data.subarray(nameAt, nameAt + namesz);
    if (name.length > 0 && name[name.length - 1] === 0) name = name.subarray(0, name.length - 1);
    notes.push({ name: name.toString('utf8'), type, desc: Buffer.from(data.subarray(descAt, descAt + descsz)) });
    at = next;
  }
  return notes;
}
