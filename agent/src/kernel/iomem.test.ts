import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { parseIomem, resolveIomem } from './iomem';

const SAMPLE = `00000000-00000fff : Reserved
00001000-0009fbff : System RAM
000f0000-000fffff : Reserved
  000f0000-000fffff : System ROM
00100000-1fffffff : System RAM
  01000000-01ffffff : Kernel code
20000000-20304fff : Reserved
20305000-5ffd6fff : System RAM
fd00000000-ffffffffff : Reserved
`;

test('ends are inclusive: sizes count the last byte', () => {
  const ranges = parseIomem(SAMPLE);
  expect(ranges).toHaveLength(9);
  expect(ranges[6]).toEqual({ name: 'Reserved', start: 0x2000_0000n, end: 0x2030_4fffn, depth: 0 });
  expect(ranges[3]).toMatchObject({ name: 'System ROM', depth: 1 });
});

test('resolving a name takes the top-level ranges only', () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'physcap-iomem-')), 'iomem');
  fs.writeFileSync(file, SAMPLE);
  try {
    expect(resolveIomem('System RAM', file)).toEqual([
      { start: 0x1000n, size: 0x9ec00n },
      { start: 0x10_0000n, size: 0x1ff0_0000n },
      { start: 0x2030_5000n, size: 0x3fcd_2000n },
    ]);
    expect(resolveIomem('Kernel code', file)).toEqual([]);
  } finally {
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  }
});
