/**
 * Which captured regions are the kernel's own memory, and at which virtual
 * addresses the kernel sees them: what a dump's program headers must say
 * for crash, drgn, gdb and makedumpfile to read it as they read
 * /proc/vmcore.
 *
 *   - RAM the kernel maps in its direct map gets p_vaddr = the direct
 *     map's address of its first byte (x86-64: page_offset_base + p);
 *   - the kernel image, which x86-64 and arm64 map a second time apart
 *     from the direct map, gets a PT_LOAD of its own that points at the
 *     bytes already captured (kexec-tools' "kernel text" segment);
 *   - everything else (reserved ranges, device memory, RAM past a 32-bit
 *     kernel's lowmem) keeps p_vaddr 0: the kernel does not map it there,
 *     and a made-up address would mislead.
 *
 * The direct map's base and the image's offset come from physcap.ko
 * (KERNEL_MAP: they are randomized and not in VMCOREINFO); which ranges are
 * RAM and where the image lies physically come from /proc/iomem, as
 * kexec-tools reads them ("System RAM", "Kernel code" ... "Kernel bss").
 */
import type { ElfAlias } from '../container/elf';
import { kernelMap, KernelMap } from '../native/binding';
import { IomemRange, parseIomem } from '../kernel/iomem';

export interface KernelMemory {
  /** physcap.ko's KERNEL_MAP. */
  map: KernelMap;
  /** The kernel image's physical extent (null where /proc/iomem does not name it). */
  image: { start: bigint; size: bigint } | null;
  /** Top-level "System RAM" ranges, end exclusive. */
  ram: Array<{ start: bigint; end: bigint }>;
}

/** What the ELF writer needs: each region's p_vaddr (0n: unmapped) and the image alias. */
export interface KernelView {
  vaddrs: bigint[];
  aliases: ElfAlias[];
}

const U64 = (1n << 64n) - 1n;

/** The kernel image's physical extent: the union of iomem's "Kernel code|rodata|data|bss" resources. */
export function kernelImageExtent(ranges: IomemRange[]): { start: bigint; size: bigint } | null {
  const parts = ranges.filter((r) => /^Kernel (code|rodata|data|bss)$/.test(r.name));
  if (!parts.some((r) => r.name === 'Kernel code')) return null;
  const start = parts.reduce((a, r) => (r.start < a ? r.start : a), parts[0]!.start);
  const end = parts.reduce((a, r) => (r.end > a ? r.end : a), parts[0]!.end);
  return { start, size: end - start + 1n };
}

export function parseKernelMemory(map: KernelMap, iomemText: string): KernelMemory {
  const ranges = parseIomem(iomemText);
  return {
    map,
    image: kernelImageExtent(ranges),
    ram: ranges.filter((r) => r.depth === 0 && r.name === 'System RAM').map((r) => ({ start: r.start, end: r.end + 1n })),
  };
}

/**
 * The running kernel's, from physcap.ko and /proc/iomem's text; null (and
 * why) where it cannot be had: no module, one older than ABI 3, no root.
 */
export function readKernelMemory(iomemText: string): { memory: KernelMemory | null; why?: string } {
  let map: KernelMap;
  try {
    map = kernelMap();
  } catch (err) {
    return { memory: null, why: (err as Error).message };
  }
  return { memory: parseKernelMemory(map, iomemText) };
}

/** Each region's direct-map address (0n where the kernel does not map all of it there), and the image's alias. */
export function kernelView(regions: ReadonlyArray<{ start: bigint; size: bigint }>, km: KernelMemory): KernelView {
  const { directMapVirt, directMapStart, directMapEnd, imageOffset } = km.map;
  const inRam = (start: bigint, end: bigint) => km.ram.some((r) => start >= r.start && end <= r.end);
  const vaddrs = regions.map((r) => {
    const end = r.start + r.size;
    if (r.start < directMapStart || end > directMapEnd || !inRam(r.start, end)) return 0n;
    return (directMapVirt + (r.start - directMapStart)) & U64;
  });
  const aliases: ElfAlias[] = [];
  const img = km.image;
  // Only where the image is mapped apart from the direct map: on 32-bit
  // PowerPC its direct-map addresses already are its addresses.
  if (img && (imageOffset & U64) !== ((directMapVirt - directMapStart) & U64)) {
    aliases.push({ vaddr: (img.start + imageOffset) & U64, paddr: img.start, size: img.size });
  }
  return { vaddrs, aliases };
}
