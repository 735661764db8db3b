/**
 * The kernel's VMCOREINFO (symbol addresses, struct offsets, page size...)
 * that crash and makedumpfile need to read a dump.  /sys/kernel/vmcoreinfo
 * gives only the physical address and size of the note; the note itself is
 * in kernel memory, read through /dev/physcap's read-only mapping.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';

import { readPhysical } from '../native/binding';

/** "<hex address> <hex size>", as the kernel prints it ("%pa %x": "0x0000000100c66000 1024"). */
export function parseVmcoreinfoLocation(text: string): { phys: bigint; size: number } | null {
  const m = /^\s*(?:0[xX])?([0-9a-fA-F]+)\s+(?:0[xX])?([0-9a-fA-F]+)\s*$/.exec(text);
  if (!m) return null;
  return { phys: BigInt(`0x${m[1]}`), size: parseInt(m[2]!, 16) };
}

/** The desc of the first note named VMCOREINFO in an ELF note blob (host byte order). */
export function vmcoreinfoFromNote(blob: Buffer, bigEndian = os.endianness() === 'BE'): string | null {
  const u32 = (o: number) => (bigEndian ? blob.readUInt32BE(o) : blob.readUInt32LE(o));
  let off = 0;
  while (off + 12 <= blob.length) {
    const namesz = u32(off);
    const descsz = u32(off + 4);
    const nameStart = off + 12;
    const descStart = nameStart + ((namesz + 3) & ~3);
    if (namesz === 0 && descsz === 0) return null;
    if (descStart + descsz > blob.length) return null;
    const name = blob
      .subarray(nameStart, nameStart + namesz)
      .toString('latin1')
      .replace(/\0+$/, '');
    if (name === 'VMCOREINFO') return blob.subarray(descStart, descStart + descsz).toString('utf8');
    off = descStart + ((descsz + 3) & ~3);
  }
  return null;
}

/**
 * The running kernel's VMCOREINFO, read through physcap.ko's read-only
 * mapping; null where it cannot be (no sysfs file, no module, lockdown).
 */
export function readVmcoreinfo(device?: string, sysfsFile = '/sys/kernel/vmcoreinfo'): string | null {
  let loc: { phys: bigint; size: number } | null;
  try {
    loc = parseVmcoreinfoLocation(fs.readFileSync(sysfsFile, 'utf8'));
  } catch {
    return null;
  }
  if (!loc || loc.size <= 0 || loc.size > 1 << 20) return null;
  try {
    return vmcoreinfoFromNote(readPhysical(loc.phys, loc.size, device));
  } catch {
    return null;
  }
}
