/**
 * Plan: what a capture will read and write, decided before a byte is
 * written — regions resolved (iomem names against /proc/iomem, whose end
 * addresses are inclusive), the source chosen, the id, and how many bytes
 * the destination must hold.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';

import type { Profile } from '../config/profile';
import type { ElfTarget } from '../container/elf';
import type { SourceKind } from '../native/binding';
import { resolveIomem } from '../kernel/iomem';
import { KernelView, kernelView, readKernelMemory } from './kernel-memory';
import { checkReadable, readFirmwareRam } from './memory-map';

export interface PlannedRegion {
  name: string;
  start: bigint;
  size: bigint;
  live: boolean;
  allowDevice: boolean;
  /** image source: the file offset of this region's first byte (an imported ELF core's p_offset); default: start - the profile's image base. */
  imageOffset?: bigint;
}

export interface CapturePlan {
  id: string;
  profile: Profile;
  regions: PlannedRegion[];
  source: SourceKind;
  format: 'elf' | 'raw';
  /** The ELF container's machine and byte order; default: this host's (an import keeps the board's). */
  target?: ElfTarget;
  /** Where the kernel maps the regions (ELF captures of the running kernel's memory, imports that say). */
  kernel?: KernelView;
  /** Why a kernel-source ELF capture has no kernel view (an older physcap.ko): the capture logs it as a warning. */
  kernelViewMissing?: string;
  started: Date;
  /** Data files' size, upper bound (headers and alignment included). */
  dataBytes: bigint;
  /** Upper bound of the small files (manifest, sums, signature, chunk sidecars). */
  smallBytes: number;
}

/** Container alignment: a page at least; direct I/O needs the destination's block. */
export const DATA_ALIGN = 4096n;

const roundUp = (n: bigint, a: bigint) => ((n + a - 1n) / a) * a;

export function chooseSource(p: Profile, devicePath = '/dev/physcap'): SourceKind {
  if (p.source.kind !== 'auto') return p.source.kind;
  return fs.existsSync(devicePath) ? 'kernel' : 'devmem';
}

/** A name that sorts by time and never repeats: profile, UTC time, 6 random hex digits. */
export function captureId(profile: string, at: Date): string {
  const stamp = at
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  return `${profile}-${stamp}-${crypto.randomBytes(3).toString('hex')}`;
}

export function resolveRegions(p: Profile, iomemFile = '/proc/iomem'): PlannedRegion[] {
  const out = p.regions.flatMap((r) => {
    const common = { live: r.memory === 'live', allowDevice: r.allowDevice };
    if (r.kind === 'range') return [{ name: r.name, start: r.start, size: r.size, ...common }];
    const found = resolveIomem(r.iomem, iomemFile);
    if (!found.length) throw Object.assign(new Error(`region ${r.name}: no "${r.iomem}" resource in ${iomemFile}`), { code: 'ENXIO' });
    return found.map((x, i) => ({ name: found.length > 1 ? `${r.name}-${i}` : r.name, start: x.start, size: x.size, ...common }));
  });
  const sorted = [...out].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1]!;
    const b = sorted[i]!;
    if (a.start + a.size > b.start) {
      throw Object.assign(new Error(`regions ${a.name} and ${b.name} overlap at 0x${b.start.toString(16)}`), { code: 'EINVAL' });
    }
  }
  return out;
}

export function planCapture(p: Profile, o: { id?: string; now?: Date; iomemFile?: string; devicePath?: string; firmwareMapDir?: string } = {}): CapturePlan {
  const regions = resolveRegions(p, o.iomemFile);
  const source = chooseSource(p, o.devicePath);
  if (source === 'image') return planOf(p, regions, source, o);
  const iomemText = fs.readFileSync(o.iomemFile ?? '/proc/iomem', 'utf8');
  // Physical memory sources read only what is memory (physcap.ko applies
  // the same rule); said here, before anything is written, by region.
  checkReadable(regions, iomemText, readFirmwareRam(o.firmwareMapDir));
  // Only the module knows the running kernel's mapping; a devmem capture
  // keeps p_vaddr 0 (physical addresses only).
  if (p.output.format !== 'elf' || source !== 'kernel') return planOf(p, regions, source, o);
  const { memory, why } = readKernelMemory(iomemText);
  return planOf(p, regions, source, { ...o, ...(memory ? { kernel: kernelView(regions, memory) } : { kernelViewMissing: why }) });
}

/** A plan for regions already resolved: sizes, bounds and the id. */
export function planOf(
  p: Profile,
  regions: PlannedRegion[],
  source: SourceKind,
  o: { id?: string; now?: Date; target?: ElfTarget; kernel?: KernelView; kernelViewMissing?: string } = {},
): CapturePlan {
  const started = o.now ?? new Date();
  const format = p.output.format;
  // ELF: a header block, then each region at an aligned offset.
  const body = regions.reduce((a, r) => a + roundUp(r.size, DATA_ALIGN), 0n);
  const headerBlock = roundUp(BigInt(64 + 56 * (regions.length + 1 + (o.kernel?.aliases.length ?? 0)) + 64 * 1024), DATA_ALIGN);
  const dataBytes = format === 'elf' ? headerBlock + body : body;
  const chunk = p.hash.chunkSize;
  const chunks = chunk > 0n ? regions.reduce((a, r) => a + Number((r.size + chunk - 1n) / chunk), 0) : 0;
  // Manifest ~2 KiB per region, digests 65 bytes per chunk (sidecar or inline), sums and signature small.
  const smallBytes = 64 * 1024 + regions.length * 2048 + chunks * 72 * 2;
  return {
    id: o.id ?? captureId(p.name, started),
    profile: p,
    regions,
    source,
    format,
    ...(o.target ? { target: o.target } : {}),
    ...(o.kernel ? { kernel: o.kernel } : {}),
    ...(o.kernelViewMissing ? { kernelViewMissing: o.kernelViewMissing } : {}),
    started,
    dataBytes,
    smallBytes,
  };
}
