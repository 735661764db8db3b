/**
 * The kernel's VMCOREINFO (symbol addresses, struct offsets, page size...)
 * that crash and makedumpfile need to read a dump.  /sys/kernel/vmcoreinfo
 * gives only the physical address and size of the note; the note itself is
 * in kernel memory, so it is read the way every other byte is: written by
 * physcap.ko into a small direct-I/O file, then parsed.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { capture, closeDestination, openDestination } from '../native/binding';

/** "<hex address> <hex size>" */
export function parseVmcoreinfoLocation(text: string): { phys: bigint; size: number } | null {
  const m = /^\s*([0-9a-fA-F]+)\s+([0-9a-fA-F]+)\s*$/.exec(text);
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
    const name = blob.subarray(nameStart, nameStart + namesz).toString('latin1').replace(/\0+$/, '');
    if (name === 'VMCOREINFO') return blob.subarray(descStart, descStart + descsz).toString('utf8');
    off = descStart + ((descsz + 3) & ~3);
  }
  return null;
}

/**
 * Reads the running kernel's VMCOREINFO through physcap.ko; null where it
 * cannot (no sysfs file, no module, no directory that takes direct I/O).
 * `scratchDirs` are tried in order for the temporary file.
 */
export async function readVmcoreinfo(...scratchDirs: Array<string | undefined>): Promise<string | null> {
  let loc: { phys: bigint; size: number } | null;
  try {
    loc = parseVmcoreinfoLocation(fs.readFileSync('/sys/kernel/vmcoreinfo', 'utf8'));
  } catch {
    return null;
  }
  if (!loc || loc.size <= 0 || loc.size > 1 << 20) return null;
  const start = loc.phys & ~4095n;
  const length = ((loc.phys + BigInt(loc.size) - start + 4095n) / 4096n) * 4096n;
  for (const dir of [...scratchDirs, os.tmpdir()]) {
    if (!dir) continue;
    const file = path.join(dir, `.physcap-vmcoreinfo-${process.pid}-${Date.now()}`);
    try {
      const dest = openDestination(file, 'create');
      try {
        await capture({ source: 'kernel', phys: start, length, dest, hash: 'none', chunkSize: 0, sync: false });
      } finally {
        closeDestination(dest);
      }
      const blob = fs.readFileSync(file).subarray(Number(loc.phys - start), Number(loc.phys - start) + loc.size);
      return vmcoreinfoFromNote(blob);
    } catch {
      /* try the next directory */
    } finally {
      fs.rmSync(file, { force: true });
    }
  }
  return null;
}
