/** A stamp block as physcap.ko writes it (uapi struct physcap_arm_stamp), for tests. */
import { STAMP_SIZE } from '../../agent/src/capture/arm-stamp';

export const COOKIE = 0x0123456789abcdefn;

/** A stamp as the uapi header lays it out, little-endian, with its check. */
export function stamp(o: { state?: number; error?: number; cookie?: bigint } = {}): Buffer {
  const b = Buffer.alloc(4096);
  b.write('PHYSCAPS', 0, 'latin1');
  b.writeUInt32LE(1, 8);
  b.writeUInt32LE(STAMP_SIZE, 12);
  b.writeBigUInt64LE(o.cookie ?? COOKIE, 16);
  b.writeBigUInt64LE(7n, 24);
  b.writeUInt32LE(o.state ?? 3, 32);
  b.writeInt32LE(o.error ?? 0, 36);
  b.writeUInt32LE(2, 40);
  b.writeBigUInt64LE(3n << 20n, 48);
  b.writeBigUInt64LE(3n << 20n, 56);
  b.writeBigUInt64LE(0n, 64);
  b.writeBigUInt64LE(3n << 20n, 72);
  b.writeBigUInt64LE(1500n, 80);
  b.writeBigUInt64LE(2_000_000n, 88);
  b.writeBigUInt64LE(1_780_000_000_000_000_000n, 96);
  let sum = 0x9e3779b97f4a7c15n;
  for (let at = 0; at < 112; at += 8) sum = (sum + b.readBigUInt64LE(at)) & ((1n << 64n) - 1n);
  b.writeBigUInt64LE(sum, 112);
  return b;
}
