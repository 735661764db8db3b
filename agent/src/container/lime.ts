/**
 * LiME's format, for export to the forensic tools that read it
 * (Volatility, LiME's own loaders): each physical range is a 32-byte
 * header followed by the range's bytes.  Always little-endian whatever
 * the host: LiME writes it that way on x86 and ARM and its readers
 * assume so.
 */

export const LIME_MAGIC = 0x4c694d45;
const LIME_VERSION = 1;
const HEADER_SIZE = 32;
const U64_MAX = (1n << 64n) - 1n;

/** u32 magic, u32 version 1, u64 s_addr, u64 e_addr (the last byte's address: inclusive), 8 reserved zero bytes. */
export function limeHeader(start: bigint, size: bigint): Buffer {
  if (size <= 0n) throw new Error(`LiME header: range at 0x${start.toString(16)} has size ${size}; it must be > 0 (the end address is inclusive)`);
  const endInclusive = start + size - 1n;
  if (start < 0n || endInclusive > U64_MAX) throw new Error(`LiME header: range (start ${start}, size ${size}) is outside the 64-bit address space`);
  const h = Buffer.alloc(HEADER_SIZE);
  h.writeUInt32LE(LIME_MAGIC, 0);
  h.writeUInt32LE(LIME_VERSION, 4);
  h.writeBigUInt64LE(start, 8);
  h.writeBigUInt64LE(endInclusive, 16);
  return h;
}

export interface LimeRange {
  start: bigint;
  endInclusive: bigint;
  /** Where the range's first byte is in the file. */
  dataOffset: number;
}

/** Walks a LiME file's headers (checks magic, version, e_addr >= s_addr, data within the file); throws naming the offset of the bad header. */
export function parseLime(read: (offset: number, length: number) => Buffer, fileSize: number): LimeRange[] {
  const ranges: LimeRange[] = [];
  let at = 0;
  while (at < fileSize) {
    const bad = (why: string) => new Error(`LiME: bad header at offset ${at}: ${why}`);
    if (at + HEADER_SIZE > fileSize) throw bad(`only ${fileSize - at} bytes left, a header is ${HEADER_SIZE}`);
    const h = read(at, HEADER_SIZE);
    if (h.length < HEADER_SIZE) throw bad(`short read (${h.length} of ${HEADER_SIZE} bytes)`);
    const magic = h.readUInt32LE(0);
    if (magic !== LIME_MAGIC) throw bad(`magic 0x${magic.toString(16).padStart(8, '0')} is not 0x${LIME_MAGIC.toString(16)} ("EMiL" on disk)`);
    const version = h.readUInt32LE(4);
    if (version !== LIME_VERSION) throw bad(`version ${version} is not ${LIME_VERSION}`);
    const start = h.readBigUInt64LE(8);
    const endInclusive = h.readBigUInt64LE(16);
    if (endInclusive < start) throw bad(`e_addr 0x${endInclusive.toString(16)} is below s_addr 0x${start.toString(16)}`);
    const dataOffset = at + HEADER_SIZE;
    const dataEnd = BigInt(dataOffset) + (endInclusive - start + 1n);
    if (dataEnd > BigInt(fileSize)) {
      throw bad(
        `its range 0x${start.toString(16)}-0x${endInclusive.toString(16)} needs data up to offset ${dataEnd}, past the end of the file (${fileSize} bytes)`,
      );
    }
    ranges.push({ start, endInclusive, dataOffset });
    at = Number(dataEnd);
  }
  return ranges;
}
