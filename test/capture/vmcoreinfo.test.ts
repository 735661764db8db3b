/**
 * VMCOREINFO: located through the sysfs file, read through the device's
 * mapping, parsed out of its ELF note.  A regular file stands in for
 * /dev/physcap here (mapped the same way: file offset = physical address);
 * the board test reads the real one.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { parseVmcoreinfoLocation, readVmcoreinfo, vmcoreinfoFromNote } from '../../agent/src/capture/vmcoreinfo';
import { withTempDir } from '../support/tmp';

const TEXT = 'OSRELEASE=6.1.0-56-amd64\nPAGESIZE=4096\nSYMBOL(init_uts_ns)=ffffffff82a13f40\n';

/** An ELF note as the kernel lays it out: namesz, descsz, type, name (4-aligned), desc. */
function note(name: string, desc: string, le = true): Buffer {
  const n = Buffer.from(`${name}\0`);
  const d = Buffer.from(desc);
  const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc((4 - (b.length % 4)) % 4)]);
  const head = Buffer.alloc(12);
  (le ? head.writeUInt32LE : head.writeUInt32BE).call(head, n.length, 0);
  (le ? head.writeUInt32LE : head.writeUInt32BE).call(head, d.length, 4);
  (le ? head.writeUInt32LE : head.writeUInt32BE).call(head, 0, 8);
  return Buffer.concat([head, pad(n), pad(d)]);
}

test('the sysfs line is "<hex address> <hex size>", the address with 0x as %pa prints it', () => {
  expect(parseVmcoreinfoLocation('0x0000000100c66000 1024\n')).toEqual({ phys: 0x100c66000n, size: 0x1024 });
  expect(parseVmcoreinfoLocation('1bd5a2000 1024\n')).toEqual({ phys: 0x1bd5a2000n, size: 0x1024 });
  expect(parseVmcoreinfoLocation('garbage')).toBeNull();
});

test('the note is found after other notes, in either byte order', () => {
  expect(vmcoreinfoFromNote(Buffer.concat([note('CORE', 'x'), note('VMCOREINFO', TEXT)]), false)).toBe(TEXT);
  expect(vmcoreinfoFromNote(note('VMCOREINFO', TEXT, false), true)).toBe(TEXT);
  expect(vmcoreinfoFromNote(note('CORE', 'only'), false)).toBeNull();
});

test('read through the device at its physical address, across a page boundary', () => {
  withTempDir('vmcoreinfo', (dir) => {
    const phys = 0x2ff0; // the note starts 16 bytes before a page boundary
    const blob = note('VMCOREINFO', TEXT);
    const dev = path.join(dir, 'physmem');
    const mem = Buffer.alloc(0x5000, 0xee);
    blob.copy(mem, phys);
    fs.writeFileSync(dev, mem);
    const sysfs = path.join(dir, 'vmcoreinfo');
    fs.writeFileSync(sysfs, `0x${phys.toString(16).padStart(16, '0')} ${blob.length.toString(16)}\n`);
    expect(readVmcoreinfo(dev, sysfs)).toBe(TEXT);
    // No device, or no sysfs file: no note, no error (the capture goes on without it).
    expect(readVmcoreinfo(path.join(dir, 'absent'), sysfs)).toBeNull();
    expect(readVmcoreinfo(dev, path.join(dir, 'absent'))).toBeNull();
  });
});
