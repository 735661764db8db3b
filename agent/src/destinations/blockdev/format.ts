/**
 * The on-disk format of a blockdev dump area: the superblock, the index
 * slots and the record headers, as bytes.  Pure encode/decode/checksum, no
 * I/O: the other blockdev modules decide what to read and write.
 *
 * Every integer is LITTLE-endian, whatever the host: a dump partition
 * written by a big-endian board is read on a little-endian workstation and
 * the other way round, so the byte order is part of the format, not of the
 * machine.  Every structure ends its meaningful bytes with a SHA-256 of the
 * bytes before it, so a torn or flipped write is found, never trusted.
 *
 * Layout of a device:
 *   [0, 4096)              superblock
 *   [4096, ringStart)      index: slotCount slots of 1024 bytes
 *   [ringStart, ringEnd)   ring of records (one record per capture)
 */
import * as crypto from 'node:crypto';

export const FORMAT_VERSION = 1;
/** Everything is placed on this boundary: the largest direct-I/O alignment we accept. */
export const BLOCK = 4096;
export const SUPERBLOCK_SIZE = 4096;
export const INDEX_OFFSET = 4096n;
export const SLOT_SIZE = 1024;
export const RING_START = 1n << 20n;
/** The smallest ring worth having: anything less cannot hold a useful capture. */
export const MIN_RING = 1n << 20n;
export const RECORD_HEADER_SIZE = 4096;

const SUPERBLOCK_MAGIC = Buffer.from('PHYSCAPR', 'ascii');
const SLOT_MAGIC = Buffer.from('PXSL', 'ascii');
const RECORD_MAGIC = Buffer.from('PHYSCAPC', 'ascii');
const SHA_LEN = 32;

export function sha256(...parts: Buffer[]): Buffer {
  const h = crypto.createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

export function roundUp(n: bigint, to: bigint = BigInt(BLOCK)): bigint {
  return ((n + to - 1n) / to) * to;
}

/** An error about the bytes on the device; `field` names what is wrong. */
export class FormatError extends Error {
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
    this.name = 'FormatError';
  }
}

// ---------------------------------------------------------------- superblock

export interface Superblock {
  version: number;
  superblockSize: number;
  /** The device's size when it was initialized. */
  deviceSize: bigint;
  indexOffset: bigint;
  slotSize: number;
  slotCount: number;
  ringStart: bigint;
  ringEnd: bigint;
  uuid: Buffer;
}

// Byte offsets of the superblock's fields.
const SB = {
  magic: 0,
  version: 8,
  superblockSize: 12,
  deviceSize: 16,
  indexOffset: 24,
  slotSize: 32,
  slotCount: 36,
  ringStart: 40,
  ringEnd: 48,
  uuid: 56,
  checksum: 72,
  end: 104,
} as const;

/** The layout a device of this size gets; throws when it is too small for a ring. */
export function planSuperblock(deviceSize: bigint, uuid: Buffer, where: string): Superblock {
  const ringEnd = (deviceSize / BigInt(BLOCK)) * BigInt(BLOCK);
  if (ringEnd - RING_START < MIN_RING) {
    throw new FormatError(
      `${where} is too small for a dump area: ${deviceSize} bytes; it needs at least ${RING_START + MIN_RING} ` +
        `(${RING_START} for the superblock and index, ${MIN_RING} or more for the ring)`,
      'deviceSize',
    );
  }
  return {
    version: FORMAT_VERSION,
    superblockSize: SUPERBLOCK_SIZE,
    deviceSize,
    indexOffset: INDEX_OFFSET,
    slotSize: SLOT_SIZE,
    slotCount: Number((RING_START - INDEX_OFFSET) / BigInt(SLOT_SIZE)),
    ringStart: RING_START,
    ringEnd,
    uuid,
  };
}

export function encodeSuperblock(sb: Superblock): Buffer {
  const b = Buffer.alloc(SUPERBLOCK_SIZE);
  SUPERBLOCK_MAGIC.copy(b, SB.magic);
  b.writeUInt32LE(sb.version, SB.version);
  b.writeUInt32LE(sb.superblockSize, SB.superblockSize);
  b.writeBigUInt64LE(sb.deviceSize, SB.deviceSize);
  b.writeBigUInt64LE(sb.indexOffset, SB.indexOffset);
  b.writeUInt32LE(sb.slotSize, SB.slotSize);
  b.writeUInt32LE(sb.slotCount, SB.slotCount);
  b.writeBigUInt64LE(sb.ringStart, SB.ringStart);
  b.writeBigUInt64LE(sb.ringEnd, SB.ringEnd);
  sb.uuid.copy(b, SB.uuid, 0, 16);
  sha256(b.subarray(0, SB.checksum)).copy(b, SB.checksum);
  return b;
}

/**
 * The superblock in `b`, or null when there is none (no magic).  Throws a
 * FormatError naming the field when one is there but wrong: a checksum
 * that fails, or a layout this code does not write.
 */
export function decodeSuperblock(b: Buffer, where: string): Superblock | null {
  if (!b.subarray(SB.magic, SB.magic + 8).equals(SUPERBLOCK_MAGIC)) return null;
  const bad = (field: string, why: string) => new FormatError(`${where}: the physcap superblock is invalid: field "${field}" ${why}`, field);
  if (!sha256(b.subarray(0, SB.checksum)).equals(b.subarray(SB.checksum, SB.end))) {
    throw bad('checksum', `(bytes ${SB.checksum}-${SB.end - 1}) does not match the superblock's bytes: it is corrupt`);
  }
  const sb: Superblock = {
    version: b.readUInt32LE(SB.version),
    superblockSize: b.readUInt32LE(SB.superblockSize),
    deviceSize: b.readBigUInt64LE(SB.deviceSize),
    indexOffset: b.readBigUInt64LE(SB.indexOffset),
    slotSize: b.readUInt32LE(SB.slotSize),
    slotCount: b.readUInt32LE(SB.slotCount),
    ringStart: b.readBigUInt64LE(SB.ringStart),
    ringEnd: b.readBigUInt64LE(SB.ringEnd),
    uuid: Buffer.from(b.subarray(SB.uuid, SB.uuid + 16)),
  };
  // The checksum only says the bytes are as written; these say they are a
  // layout this code can use safely.
  if (sb.version !== FORMAT_VERSION) throw bad('version', `is ${sb.version}; this physcap reads version ${FORMAT_VERSION}`);
  if (sb.superblockSize !== SUPERBLOCK_SIZE) throw bad('superblockSize', `is ${sb.superblockSize}, not ${SUPERBLOCK_SIZE}`);
  if (sb.indexOffset !== INDEX_OFFSET) throw bad('indexOffset', `is ${sb.indexOffset}, not ${INDEX_OFFSET}`);
  if (sb.slotSize !== SLOT_SIZE) throw bad('slotSize', `is ${sb.slotSize}, not ${SLOT_SIZE}`);
  if (BigInt(sb.slotCount) * BigInt(sb.slotSize) + sb.indexOffset > sb.ringStart || sb.slotCount === 0) {
    throw bad('slotCount', `(${sb.slotCount}) does not fit between the index offset and the ring start`);
  }
  if (sb.ringStart % BigInt(BLOCK) !== 0n) throw bad('ringStart', `(${sb.ringStart}) is not a multiple of ${BLOCK}`);
  if (sb.ringEnd % BigInt(BLOCK) !== 0n || sb.ringEnd - sb.ringStart < MIN_RING || sb.ringEnd > sb.deviceSize) {
    throw bad('ringEnd', `(${sb.ringEnd}) is not a ${BLOCK}-aligned end inside the device after a ring of at least ${MIN_RING} bytes`);
  }
  return sb;
}

// ---------------------------------------------------------------- index slots

export enum SlotState {
  Free = 0,
  Writing = 1,
  Done = 2,
  Reclaimed = 3,
}

export interface Slot {
  state: SlotState;
  /** Monotonic across the device; given to a record at begin() and kept through its states. */
  generation: bigint;
  recordOffset: bigint;
  recordLength: bigint;
  /** Writing: the intent JSON; done and reclaimed: the index entry's serializeEntry() text. */
  text: string;
}

const SL = { magic: 0, state: 4, generation: 8, recordOffset: 16, recordLength: 24, textLength: 32, checksum: 36, text: 68 } as const;
/** The longest text (UTF-8 bytes) a slot holds. */
export const SLOT_TEXT_MAX = SLOT_SIZE - SL.text;

export function encodeSlot(s: Slot): Buffer {
  const text = Buffer.from(s.text, 'utf8');
  if (text.length > SLOT_TEXT_MAX) throw new Error(`an index slot holds ${SLOT_TEXT_MAX} bytes of text, not ${text.length}`);
  const b = Buffer.alloc(SLOT_SIZE);
  SLOT_MAGIC.copy(b, SL.magic);
  b.writeUInt32LE(s.state, SL.state);
  b.writeBigUInt64LE(s.generation, SL.generation);
  b.writeBigUInt64LE(s.recordOffset, SL.recordOffset);
  b.writeBigUInt64LE(s.recordLength, SL.recordLength);
  b.writeUInt32LE(text.length, SL.textLength);
  sha256(b.subarray(0, SL.checksum), text).copy(b, SL.checksum);
  text.copy(b, SL.text);
  return b;
}

const BLANK_SLOT = Buffer.alloc(SLOT_SIZE);

export type DecodedSlot = { kind: 'free' } | { kind: 'slot'; slot: Slot } | { kind: 'corrupt'; why: string };

/** A never-used slot is all zeros; anything else must check out. */
export function decodeSlot(b: Buffer): DecodedSlot {
  if (!b.subarray(SL.magic, SL.magic + 4).equals(SLOT_MAGIC)) {
    return b.equals(BLANK_SLOT) ? { kind: 'free' } : { kind: 'corrupt', why: 'no slot magic, and not blank' };
  }
  const textLength = b.readUInt32LE(SL.textLength);
  if (textLength > SLOT_TEXT_MAX) return { kind: 'corrupt', why: `text length ${textLength} is beyond the slot` };
  const text = b.subarray(SL.text, SL.text + textLength);
  if (!sha256(b.subarray(0, SL.checksum), text).equals(b.subarray(SL.checksum, SL.text))) {
    return { kind: 'corrupt', why: 'checksum mismatch' };
  }
  const state = b.readUInt32LE(SL.state);
  if (!(state in SlotState)) return { kind: 'corrupt', why: `unknown state ${state}` };
  return {
    kind: 'slot',
    slot: {
      state: state as SlotState,
      generation: b.readBigUInt64LE(SL.generation),
      recordOffset: b.readBigUInt64LE(SL.recordOffset),
      recordLength: b.readBigUInt64LE(SL.recordLength),
      text: text.toString('utf8'),
    },
  };
}

// ---------------------------------------------------------------- record header

/** One file of a record; offset is from the record's first byte. */
export interface RecordFile {
  name: string;
  offset: number;
  size: number;
}

export interface RecordHeader {
  /** The slot's generation and the superblock's uuid: a header left by an older record, or an older init, does not pass for this one. */
  generation: bigint;
  uuid: Buffer;
  id: string;
  files: RecordFile[];
}

const RH = { magic: 0, version: 8, headerSize: 12, generation: 16, uuid: 24, idLength: 40, tableLength: 44, body: 48 } as const;

export function encodeRecordHeader(h: RecordHeader): Buffer {
  const id = Buffer.from(h.id, 'utf8');
  const table = Buffer.from(JSON.stringify(h.files.map((f) => ({ name: f.name, offset: f.offset, size: f.size }))), 'utf8');
  const end = RH.body + id.length + table.length;
  if (end + SHA_LEN > RECORD_HEADER_SIZE) {
    throw new Error(
      `the record header holds ${RECORD_HEADER_SIZE - RH.body - SHA_LEN} bytes of id and file table, not ${id.length + table.length} (${h.files.length} files)`,
    );
  }
  const b = Buffer.alloc(RECORD_HEADER_SIZE);
  RECORD_MAGIC.copy(b, RH.magic);
  b.writeUInt32LE(FORMAT_VERSION, RH.version);
  b.writeUInt32LE(RECORD_HEADER_SIZE, RH.headerSize);
  b.writeBigUInt64LE(h.generation, RH.generation);
  h.uuid.copy(b, RH.uuid, 0, 16);
  b.writeUInt32LE(id.length, RH.idLength);
  b.writeUInt32LE(table.length, RH.tableLength);
  id.copy(b, RH.body);
  table.copy(b, RH.body + id.length);
  sha256(b.subarray(0, end)).copy(b, end);
  return b;
}

/** Throws with what is wrong: no header (never written), or a corrupt one. */
export function decodeRecordHeader(b: Buffer): RecordHeader {
  if (!b.subarray(RH.magic, RH.magic + 8).equals(RECORD_MAGIC))
    throw new Error('no record header (magic missing: the capture never finished writing it, or it was overwritten)');
  const idLength = b.readUInt32LE(RH.idLength);
  const tableLength = b.readUInt32LE(RH.tableLength);
  const end = RH.body + idLength + tableLength;
  if (end + SHA_LEN > b.length) throw new Error('record header is corrupt (lengths beyond the header)');
  if (!sha256(b.subarray(0, end)).equals(b.subarray(end, end + SHA_LEN))) throw new Error('record header is corrupt (checksum mismatch)');
  if (b.readUInt32LE(RH.version) !== FORMAT_VERSION) throw new Error(`record header version ${b.readUInt32LE(RH.version)} is not ${FORMAT_VERSION}`);
  const files = JSON.parse(b.subarray(RH.body + idLength, end).toString('utf8')) as RecordFile[];
  return {
    generation: b.readBigUInt64LE(RH.generation),
    uuid: Buffer.from(b.subarray(RH.uuid, RH.uuid + 16)),
    id: b.subarray(RH.body, RH.body + idLength).toString('utf8'),
    files,
  };
}
