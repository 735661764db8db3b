/**
 * The stamp physcap.ko writes after an armed capture (uapi struct
 * physcap_arm_stamp): what the agent accepts and what it refuses.  The
 * module writing a real one, and the agent finishing a capture from it
 * after the module lost its events, is tested on the emulated board
 * (test/daemon/watchdog.vm.test.ts).
 */
import { parseStamp } from '../../agent/src/capture/arm-stamp';

import { COOKIE, stamp } from '../support/stamp';

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
