/**
 * An armed capture's stamp: the block physcap.ko writes on the capture's
 * destination once the capture has ended, after its ranges are synced
 * (uapi struct physcap_arm_stamp, ABI 4).  The module's events live in
 * memory and are gone after a reset; the stamp is how an agent started
 * after a reboot learns whether the kernel wrote the capture it armed.
 * Little-endian whatever the CPU; a torn or stale block fails its check,
 * and a stamp belongs to the arm whose cookie it carries.
 */
import * as os from 'node:os';

import type { PhyscapEvent } from '../native/binding';

const MAGIC = 'PHYSCAPS';
const VERSION = 1;
export const STAMP_SIZE = 120;
const SEED = 0x9e3779b97f4a7c15n;
const U64 = (1n << 64n) - 1n;

const STATE_DONE = 3;
const STATE_FAILED = 4;

/** The errno's name, as the addon gives an event's (EIO, ENOSPC...). */
function errnoName(errno: number): string {
  const hit = Object.entries(os.constants.errno).find(([, n]) => n === errno);
  return hit ? hit[0] : `errno ${errno}`;
}

/**
 * The stamp in `block` as the event the module would have posted, or
 * undefined when the block holds no valid stamp (never written: zeros; torn;
 * another arm's).
 */
export function parseStamp(block: Buffer, cookie: bigint): PhyscapEvent | undefined {
  if (block.length < STAMP_SIZE || block.toString('latin1', 0, 8) !== MAGIC) return undefined;
  if (block.readUInt32LE(8) !== VERSION || block.readUInt32LE(12) !== STAMP_SIZE) return undefined;
  let sum = SEED;
  for (let at = 0; at < 112; at += 8) sum = (sum + block.readBigUInt64LE(at)) & U64;
  if (block.readBigUInt64LE(112) !== sum) return undefined;
  if (block.readBigUInt64LE(16) !== cookie) return undefined;
  const state = block.readUInt32LE(32);
  if (state !== STATE_DONE && state !== STATE_FAILED) return undefined;
  const errno = block.readInt32LE(36);
  return {
    type: state === STATE_DONE ? 'capture-done' : 'capture-failed',
    // Not from the module's event ring: no sequence number.
    seq: 0n,
    watchdogId: block.readUInt32LE(40),
    ...(state === STATE_FAILED ? { code: errnoName(-errno) } : {}),
    errno,
    timeRealNs: block.readBigUInt64LE(96),
    timeMonoNs: 0n,
    cookie,
    armId: block.readBigUInt64LE(24),
    bytesWritten: Number(block.readBigUInt64LE(48)),
    bytesZeroCopy: Number(block.readBigUInt64LE(56)),
    bytesBounced: Number(block.readBigUInt64LE(64)),
    firstByteLatencyNs: Number(block.readBigUInt64LE(80)),
    durationNs: Number(block.readBigUInt64LE(88)),
  };
}
