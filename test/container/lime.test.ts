/** LiME headers checked byte by byte on disk, and walked back with parseLime. */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { LIME_MAGIC, limeHeader, parseLime } from '../../agent/src/container/lime';
import { removeDir, tempDir } from '../support/tmp';

let dir: string;
beforeEach(() => {
  dir = tempDir('lime');
});
afterEach(() => {
  removeDir(dir);
});

const RANGES = [
  { start: 0x1000n, data: crypto.randomBytes(0x9f000) },
  { start: 0x1_0000_0000n, data: crypto.randomBytes(5000) },
  { start: 0x8_8000_0000n, data: crypto.randomBytes(1) },
];

function writeLime(ranges: Array<{ start: bigint; data: Buffer }>): string {
  const file = path.join(dir, 'mem.lime');
  fs.writeFileSync(file, Buffer.concat(ranges.flatMap((r) => [limeHeader(r.start, BigInt(r.data.length)), r.data])));
  return file;
}

const readerOf = (bytes: Buffer) => (o: number, l: number) => bytes.subarray(o, o + l);

test('a header on disk, field by field: magic "EMiL", version 1, s_addr, inclusive e_addr, 8 zero bytes, all little-endian', () => {
  const file = writeLime([{ start: 0x1122_3344_5566_7000n, data: Buffer.alloc(0x3000, 0xab) }]);
  const h = fs.readFileSync(file).subarray(0, 32);
  expect(LIME_MAGIC).toBe(0x4c694d45);
  expect([...h.subarray(0, 4)]).toEqual([0x45, 0x4d, 0x69, 0x4c]);
  expect([...h.subarray(4, 8)]).toEqual([1, 0, 0, 0]);
  expect([...h.subarray(8, 16)]).toEqual([0x00, 0x70, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]);
  expect([...h.subarray(16, 24)]).toEqual([0xff, 0x9f, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]); // start + size - 1
  expect([...h.subarray(24, 32)]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
  expect(fs.statSync(file).size).toBe(32 + 0x3000);
});

test('a one-byte range ends where it starts; a range may end at the top of the address space', () => {
  expect(limeHeader(0x5000n, 1n).readBigUInt64LE(16)).toBe(0x5000n);
  expect(limeHeader((1n << 64n) - 0x1000n, 0x1000n).readBigUInt64LE(16)).toBe((1n << 64n) - 1n);
  expect(() => limeHeader((1n << 64n) - 0x1000n, 0x1001n)).toThrow(/outside the 64-bit address space/);
  expect(() => limeHeader(0x5000n, 0n)).toThrow('range at 0x5000 has size 0');
});

test("parseLime walks the headers back and finds each range's bytes", () => {
  const bytes = fs.readFileSync(writeLime(RANGES));
  const found = parseLime(readerOf(bytes), bytes.length);
  expect(found.map((r) => [r.start, r.endInclusive])).toEqual(RANGES.map((r) => [r.start, r.start + BigInt(r.data.length) - 1n]));
  found.forEach((r, i) => expect(bytes.subarray(r.dataOffset, r.dataOffset + RANGES[i].data.length).equals(RANGES[i].data)).toBe(true));
  expect(parseLime(readerOf(Buffer.alloc(0)), 0)).toEqual([]);
});

describe('parseLime names the offset of a bad header', () => {
  const second = 32 + RANGES[0].data.length;
  let bytes: Buffer;
  beforeEach(() => {
    bytes = fs.readFileSync(writeLime(RANGES));
  });

  test('bad magic', () => {
    bytes[second] = 0x46;
    expect(() => parseLime(readerOf(bytes), bytes.length)).toThrow(`LiME: bad header at offset ${second}: magic 0x4c694d46 is not 0x4c694d45`);
  });
  test('bad version', () => {
    bytes.writeUInt32LE(2, second + 4);
    expect(() => parseLime(readerOf(bytes), bytes.length)).toThrow(`LiME: bad header at offset ${second}: version 2 is not 1`);
  });
  test('end below start', () => {
    bytes.writeBigUInt64LE(0xfffn, 16);
    expect(() => parseLime(readerOf(bytes), bytes.length)).toThrow('LiME: bad header at offset 0: e_addr 0xfff is below s_addr 0x1000');
  });
  test('data past the end of the file', () => {
    expect(() => parseLime(readerOf(bytes), bytes.length - 1)).toThrow(
      /LiME: bad header at offset \d+: its range 0x880000000-0x880000000 needs data up to offset \d+, past the end of the file/,
    );
  });
  test('a header cut short', () => {
    expect(() => parseLime(readerOf(bytes), second + 10)).toThrow(`LiME: bad header at offset ${second}: only 10 bytes left, a header is 32`);
  });
});
