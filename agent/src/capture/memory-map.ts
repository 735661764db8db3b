/**
 * What may be read as memory: the same rule physcap.ko applies
 * (kernel/physcap_range.c), checked before a capture starts, so the kernel
 * and devmem sources agree and the refusal names the region and says why.
 *
 *   - bytes in no /proc/iomem resource are a hole: refused (ENXIO), there
 *     is nothing to capture;
 *   - System RAM, ACPI tables and NVS, persistent memory are memory;
 *   - "Reserved" is memory only where the firmware reported RAM
 *     (/sys/firmware/memmap: the e820 map before memmap= changed it).
 *     Elsewhere it is a chipset's registers, the firmware flash or empty
 *     address space, where a read can have side effects.  Device-tree
 *     platforms have no firmware map; their reserved ranges are carve-outs
 *     of the /memory nodes, which are RAM;
 *   - anything else is device memory: refused (EACCES) unless the region
 *     says allow_device, and then copied by the CPU, as the manifest shows.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { IomemRange, parseIomem } from '../kernel/iomem';

const MEMORY_NAMES = new Set(['System RAM', 'ACPI Tables', 'ACPI Non-volatile Storage', 'Persistent Memory', 'Persistent Memory (legacy)', 'Soft Reserved']);
const RESERVED_NAMES = new Set(['Reserved', 'reserved']);

/** A firmware map's RAM ranges (end exclusive); null where there is no firmware map (device-tree platforms). */
export type FirmwareRam = Array<{ start: bigint; end: bigint }> | null;

/** /sys/firmware/memmap/N/{start,end,type}: the map the firmware handed over (x86 e820, EFI). */
export function readFirmwareRam(dir = '/sys/firmware/memmap'): FirmwareRam {
  let entries: string[];
  try {
    entries = fs.readdirSync(dir);
  } catch {
    return null;
  }
  const ram: Array<{ start: bigint; end: bigint }> = [];
  for (const e of entries) {
    try {
      const read = (f: string) => fs.readFileSync(path.join(dir, e, f), 'utf8').trim();
      if (read('type') !== 'System RAM') continue;
      ram.push({ start: BigInt(read('start')), end: BigInt(read('end')) + 1n });
    } catch {
      /* an entry that vanished or does not parse says nothing */
    }
  }
  return ram.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
}

/** Whether [start, end) lies in the union of the firmware's RAM ranges. */
function firmwareSaysRam(start: bigint, end: bigint, ram: FirmwareRam): boolean {
  if (ram === null) return true;
  let at = start;
  for (const r of ram) {
    if (r.end <= at) continue;
    if (r.start > at) return false;
    at = r.end;
    if (at >= end) return true;
  }
  return at >= end;
}

export interface Segment {
  start: bigint;
  /** Exclusive. */
  end: bigint;
  name: string;
  kind: 'memory' | 'device';
}

/** [start, start + size) split along the top-level iomem resources; throws ENXIO at a hole. */
export function classifyRange(start: bigint, size: bigint, iomem: IomemRange[], ram: FirmwareRam): Segment[] {
  const end = start + size;
  const top = iomem.filter((r) => r.depth === 0).sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const out: Segment[] = [];
  let at = start;
  for (const r of top) {
    const rEnd = r.end + 1n;
    if (rEnd <= at) continue;
    if (r.start > at || at >= end) break;
    const segEnd = rEnd < end ? rEnd : end;
    const memory = MEMORY_NAMES.has(r.name) || (RESERVED_NAMES.has(r.name) && firmwareSaysRam(at, segEnd, ram));
    out.push({ start: at, end: segEnd, name: r.name, kind: memory ? 'memory' : 'device' });
    at = segEnd;
  }
  if (at < end) {
    throw Object.assign(
      new Error(
        `0x${at.toString(16)}-0x${(end - 1n).toString(16)} is in no /proc/iomem resource: no memory and no device is there, so there is nothing to capture`,
      ),
      { code: 'ENXIO' },
    );
  }
  return out;
}

const hex = (n: bigint) => `0x${n.toString(16)}`;

/**
 * Every region is readable as the profile asks: no hole, and device
 * memory only with allow_device.  Throws an error naming the region, the
 * range and the iomem resource, and saying how to opt in.
 */
export function checkReadable(
  regions: ReadonlyArray<{ name: string; start: bigint; size: bigint; allowDevice: boolean }>,
  iomemText: string,
  ram: FirmwareRam,
): void {
  const iomem = parseIomem(iomemText);
  for (const r of regions) {
    let segs: Segment[];
    try {
      segs = classifyRange(r.start, r.size, iomem, ram);
    } catch (err) {
      throw Object.assign(new Error(`region ${r.name}: ${(err as Error).message}`), { code: (err as { code?: string }).code });
    }
    const device = segs.find((s) => s.kind === 'device');
    if (device && !r.allowDevice) {
      const why = RESERVED_NAMES.has(device.name)
        ? `"${device.name}", but the firmware did not report RAM there (chipset registers, flash or nothing, where a read can have side effects)`
        : `device memory ("${device.name}"), where a read can have side effects`;
      throw Object.assign(
        new Error(
          `region ${r.name}: ${hex(device.start)}-${hex(device.end - 1n)} is ${why}: refused. To read it anyway, as device memory copied by the CPU, set allow_device: true on the region`,
        ),
        { code: 'EACCES' },
      );
    }
  }
}
