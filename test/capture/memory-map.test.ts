/**
 * What may be read as memory, decided before a capture as physcap.ko
 * decides it: the /proc/iomem and /sys/firmware/memmap of the emulated
 * board (QEMU pc, 1 GiB, memmap=4M$0x20000000), as the guest printed them.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { parseIomem } from '../../agent/src/kernel/iomem';
import { checkReadable, classifyRange, readFirmwareRam } from '../../agent/src/capture/memory-map';
import { removeDir, tempDir } from '../support/tmp';

const IOMEM = `00000000-00000fff : Reserved
00001000-0009fbff : System RAM
0009fc00-0009ffff : Reserved
000a0000-000bffff : PCI Bus 0000:00
000c0000-000c05ff : Video ROM
000f0000-000fffff : Reserved
  000f0000-000fffff : System ROM
00100000-1fffffff : System RAM
20000000-203fffff : Reserved
20400000-3ffd6fff : System RAM
3ffd7000-3fffffff : Reserved
40000000-febfffff : PCI Bus 0000:00
fec00000-fec003ff : IOAPIC 0
fed00000-fed003ff : HPET 0
fee00000-fee00fff : Local APIC
fffc0000-ffffffff : Reserved
100000000-17fffffff : PCI Bus 0000:00
fd00000000-ffffffffff : Reserved
`;

const FIRMWARE = [
  ['0x0', '0x9fbff', 'System RAM'],
  ['0x9fc00', '0x9ffff', 'Reserved'],
  ['0xf0000', '0xfffff', 'Reserved'],
  ['0x100000', '0x3ffd6fff', 'System RAM'],
  ['0x3ffd7000', '0x3fffffff', 'Reserved'],
  ['0xfffc0000', '0xffffffff', 'Reserved'],
  ['0xfd00000000', '0xffffffffff', 'Reserved'],
];

let dir: string;
beforeAll(() => {
  dir = tempDir('memmap');
  FIRMWARE.forEach(([start, end, type], i) => {
    fs.mkdirSync(path.join(dir, String(i)));
    for (const [f, v] of [
      ['start', start],
      ['end', end],
      ['type', type],
    ] as const)
      fs.writeFileSync(path.join(dir, String(i), f), `${v}\n`);
  });
});
afterAll(() => removeDir(dir));

const region = (name: string, start: bigint, size: bigint, allowDevice = false) => ({ name, start, size, allowDevice });

test('the firmware map: its RAM ranges, end exclusive; none on a machine without one', () => {
  expect(readFirmwareRam(dir)).toEqual([
    { start: 0n, end: 0xa_0000n - 0x400n },
    { start: 0x10_0000n, end: 0x3ffd_7000n },
  ]);
  expect(readFirmwareRam(path.join(dir, 'none'))).toBeNull();
});

test('memmap= reserved RAM and System RAM are memory; the reserved page 0 too (the firmware says RAM)', () => {
  const ram = readFirmwareRam(dir);
  expect(() =>
    checkReadable([region('crashlog', 0x2000_0000n, 0x40_0000n), region('low', 0n, 0x9_f000n), region('ram', 0x10_0000n, 0x1000_0000n)], IOMEM, ram),
  ).not.toThrow();
});

test.each([
  ['the BIOS flash', 0xfffc_0000n, 0x1000n],
  ['the window above 1 TiB', 0xfd_0000_0000n, 0x1000n],
  ['RAM running into the EBDA', 0x9_f000n, 0x1000n],
  ['the ACPI-reserved top of RAM', 0x3ffd_7000n, 0x1000n],
])('"Reserved" the firmware did not report as RAM (%s) is refused, saying why and how to opt in', (_what, start, size) => {
  expect(() => checkReadable([region('r', start, size)], IOMEM, readFirmwareRam(dir))).toThrow(
    expect.objectContaining({
      code: 'EACCES',
      message: expect.stringMatching(
        /^region r: 0x[0-9a-f]+-0x[0-9a-f]+ is "Reserved", but the firmware did not report RAM there .*: refused\. To read it anyway, as device memory copied by the CPU, set allow_device: true on the region$/,
      ),
    }),
  );
  expect(() => checkReadable([region('r', start, size, true)], IOMEM, readFirmwareRam(dir))).not.toThrow();
});

test('device memory is refused without allow_device, named', () => {
  expect(() => checkReadable([region('rom', 0xc_0000n, 0x600n)], IOMEM, null)).toThrow(/region rom: 0xc0000-0xc05ff is device memory \("Video ROM"\)/);
});

test('a hole, or a range that runs from a resource into one, is refused with ENXIO (no zeros made up)', () => {
  for (const [start, size] of [
    [0x1_8000_0000n, 0x1000n],
    [0xfee0_0000n, 0x2000n],
    [0xf_0000_0000n, 0x1000n],
  ] as const) {
    expect(() => checkReadable([region('nothing', start, size, true)], IOMEM, null)).toThrow(
      expect.objectContaining({ code: 'ENXIO', message: expect.stringMatching(/^region nothing: 0x[0-9a-f]+-0x[0-9a-f]+ is in no \/proc\/iomem resource/) }),
    );
  }
});

test('device-tree platforms (no firmware map): reserved carve-outs are RAM', () => {
  const segs = classifyRange(0x800_0000n, 0x1000n, parseIomem('08000000-08ffffff : reserved\n'), null);
  expect(segs).toEqual([{ start: 0x800_0000n, end: 0x800_1000n, name: 'reserved', kind: 'memory' }]);
});
