/**
 * The stamp physcap.ko writes after an armed capture (uapi struct
 * physcap_arm_stamp): what the agent accepts and what it refuses.  The
 * module writing a real one, and the agent finishing a capture from it
 * after the module lost its events, is tested on the emulated board
 * (test/daemon/watchdog.vm.test.ts).
 */
import { parseStamp, STAMP_SIZE } from '../../agent/src/capture/arm-stamp';

const COOKIE = 0x0123456789abcdefn;

/** A stamp as the uapi header lays it out, little-endian, with its check. */
function stamp(o: { state?: number; error?: number; cookie?: bigint } = {}): Buffer {
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

test("a done stamp reads as the module's capture-done event", () => {
  expect(parseStamp(stamp(), COOKIE)).toEqual({
    type: 'capture-done',
    seq: 0n,
    watchdogId: 2,
    errno: 0,
    timeRealNs: 1_780_000_000_000_000_000n,
    timeMonoNs: 0n,
    cookie: COOKIE,
    armId: 7n,
    bytesWritten: 3 << 20,
    bytesZeroCopy: 3 << 20,
    bytesBounced: 0,
    firstByteLatencyNs: 1500,
    durationNs: 2_000_000,
  });
});

test('a failed stamp names its errno', () => {
  expect(parseStamp(stamp({ state: 4, error: -28 }), COOKIE)).toMatchObject({ type: 'capture-failed', code: 'ENOSPC', errno: -28 });
});

test('zeros, another arm, a torn block, an unknown state or version say nothing', () => {
  expect(parseStamp(Buffer.alloc(4096), COOKIE)).toBeUndefined();
  expect(parseStamp(stamp({ cookie: 1n }), COOKIE)).toBeUndefined();
  const torn = stamp();
  torn[50] ^= 1;
  expect(parseStamp(torn, COOKIE)).toBeUndefined();
  expect(parseStamp(stamp({ state: 1 }), COOKIE)).toBeUndefined();
  const v2 = stamp();
  v2.writeUInt32LE(2, 8);
  expect(parseStamp(v2, COOKIE)).toBeUndefined();
  expect(parseStamp(stamp().subarray(0, 100), COOKIE)).toBeUndefined();
});
