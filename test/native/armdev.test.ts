/**
 * /dev/physcap's arming and event-reading side, on the host: physcap.ko is
 * not loaded here, so FIFOs and regular files stand in for the device and
 * the test writes struct physcap_event records into them the way the
 * module returns them (little-endian x86-64 layout, kernel/physcap_uapi.h).
 * The ioctls themselves reach a real module on the board (the *.vm tests).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { ArmRange, Destination, NativeError, openPhyscapDevice, PhyscapDevice, PhyscapEvent, readPhyscapEvents } from '../../agent/src/native/binding';
import { thrown } from '../support/errors';
import { removeDir, tempDir } from '../support/tmp';

const EVENT_SIZE = 120; // PHYSCAP_EVENT_SIZE
const PRETIMEOUT = 1;
const CAPTURE_DONE = 2;
const CAPTURE_FAILED = 3;

interface RecordFields {
  size?: number;
  version?: number;
  type?: number;
  watchdogId?: number;
  error?: number;
  seq?: bigint;
  timeRealNs?: bigint;
  cookie?: bigint;
  armId?: bigint;
  bytesWritten?: bigint;
  bytesZeroCopy?: bigint;
  bytesBounced?: bigint;
  firstByteLatencyNs?: bigint;
  durationNs?: bigint;
  timeMonoNs?: bigint;
}

/** One struct physcap_event as the module writes it; size > 120 appends bytes a newer module might (0xee). */
function record(f: RecordFields): Buffer {
  const size = f.size ?? EVENT_SIZE;
  const b = Buffer.alloc(Math.max(size, 8), 0xee);
  b.fill(0, 0, Math.min(size, EVENT_SIZE));
  b.writeUInt32LE(size, 0);
  if (size < 16) return b.subarray(0, size);
  b.writeUInt16LE(f.version ?? 1, 4);
  b.writeUInt16LE(f.type ?? PRETIMEOUT, 6);
  b.writeUInt32LE(f.watchdogId ?? 0, 8);
  b.writeInt32LE(f.error ?? 0, 12);
  const u64s: Array<[number, bigint | undefined]> = [
    [16, f.seq ?? 1n],
    [24, f.timeRealNs],
    [32, f.cookie],
    [40, f.armId],
    [48, f.bytesWritten],
    [56, f.bytesZeroCopy],
    [64, f.bytesBounced],
    [72, f.firstByteLatencyNs],
    [80, f.durationNs],
    [88, f.timeMonoNs],
  ];
  for (const [off, v] of u64s) if (off + 8 <= size) b.writeBigUInt64LE(v ?? 0n, off);
  return b.subarray(0, size);
}

let work: string;
const open: PhyscapDevice[] = [];
const fds: number[] = [];

beforeAll(() => {
  work = tempDir('armdev');
});
afterEach(() => {
  for (const d of open.splice(0)) d.close();
  for (const fd of fds.splice(0)) fs.closeSync(fd);
});
afterAll(() => {
  removeDir(work);
});

let names = 0;
function fifo(): string {
  const p = path.join(work, `fifo${names++}`);
  execFileSync('mkfifo', [p]);
  return p;
}

function file(contents: Buffer = Buffer.alloc(0)): string {
  const p = path.join(work, `file${names++}`);
  fs.writeFileSync(p, contents);
  return p;
}

/** Opened after the device (its O_RDWR open is the FIFO's reader), so this never blocks. */
function writer(p: string): (b: Buffer) => void {
  const fd = fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  fds.push(fd);
  return (b) => {
    expect(fs.writeSync(fd, b)).toBe(b.length);
  };
}

async function waitFor(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Opens the device on p and records what its handlers get. */
function watch(p: string) {
  const events: PhyscapEvent[] = [];
  const ends: Array<NativeError | null> = [];
  let eventsAfterEnd = 0;
  const dev = openPhyscapDevice(
    {
      event: (e) => {
        if (ends.length) eventsAfterEnd++;
        events.push(e);
      },
      end: (err) => ends.push(err),
    },
    p,
  );
  open.push(dev);
  return {
    dev,
    events,
    ends,
    eventsAfterEnd: () => eventsAfterEnd,
    waitEvents: (n: number) => waitFor(() => events.length >= n, `${n} events (have ${events.length})`),
    waitEnd: () => waitFor(() => ends.length > 0, 'end()'),
  };
}

/** A Destination whose fd is real (an ordinary file): enough to reach the ioctl. */
function fakeDest(): Destination {
  const p = file(Buffer.alloc(8192));
  const fd = fs.openSync(p, 'r+');
  fds.push(fd);
  return { path: p, fd, isBlockDevice: false, size: 8192, memAlign: 512, offsetAlign: 512 };
}

const range: ArmRange = { phys: 0x100000n, length: 4096n, destOffset: 0n };

describe('openPhyscapDevice: opening', () => {
  test('a path that does not exist: ENOENT, Node-style, with the caller in the stack', () => {
    const missing = path.join(work, 'no-such-device');
    const err = thrown(() => openPhyscapDevice({ event: () => undefined, end: () => undefined }, missing));
    expect(err).toMatchObject({ code: 'ENOENT', errno: -2, syscall: 'open', path: missing });
    expect(err.message).toBe(`ENOENT: No such file or directory, open '${missing}' (opening physcap.ko's device for armed captures)`);
    expect(err.stack).toContain('armdev.test.ts');
  });

  test('handlers and path are checked', () => {
    const p = file();
    for (const h of [null, {}, { event: () => undefined }, { end: () => undefined }, { event: 1, end: () => undefined }]) {
      expect(thrown(() => openPhyscapDevice(h as never, p))).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    }
    for (const bad of ['', 'a\0b']) {
      expect(thrown(() => openPhyscapDevice({ event: () => undefined, end: () => undefined }, bad))).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    }
  });
});

describe('event records', () => {
  test('every field of a record, a gap in seq, and close() ending the reader with end(null)', async () => {
    const p = fifo();
    const w = watch(p);
    const write = writer(p);
    write(record({ type: PRETIMEOUT, seq: 1n, watchdogId: 0, timeRealNs: 1_700_000_000_123_456_789n, timeMonoNs: 42_000_000_007n }));
    await w.waitEvents(1);
    write(
      record({
        type: CAPTURE_DONE,
        seq: 2n,
        watchdogId: 31,
        timeRealNs: 1_700_000_001_000_000_000n,
        timeMonoNs: 43_000_000_000n,
        cookie: 0xfedcba9876543210n,
        armId: 7n,
        bytesWritten: 3n << 30n,
        bytesZeroCopy: (3n << 30n) - 4096n,
        bytesBounced: 4096n,
        firstByteLatencyNs: 150_000n,
        durationNs: 2_500_000_000n,
      }),
    );
    // seq 3 and 4 were overwritten in the module's ring before this reader got to them.
    write(record({ type: CAPTURE_FAILED, seq: 5n, watchdogId: 1, error: -28, cookie: 9n, armId: 8n, bytesWritten: 8192n }));
    await w.waitEvents(3);

    expect(w.events[0]).toEqual({
      type: 'pretimeout',
      seq: 1n,
      watchdogId: 0,
      errno: 0,
      timeRealNs: 1_700_000_000_123_456_789n,
      timeMonoNs: 42_000_000_007n,
      cookie: 0n,
      armId: 0n,
      bytesWritten: 0,
      bytesZeroCopy: 0,
      bytesBounced: 0,
      firstByteLatencyNs: 0,
      durationNs: 0,
    });
    expect(w.events[1]).toEqual({
      type: 'capture-done',
      seq: 2n,
      watchdogId: 31,
      errno: 0,
      timeRealNs: 1_700_000_001_000_000_000n,
      timeMonoNs: 43_000_000_000n,
      cookie: 0xfedcba9876543210n,
      armId: 7n,
      bytesWritten: 3 * 2 ** 30,
      bytesZeroCopy: 3 * 2 ** 30 - 4096,
      bytesBounced: 4096,
      firstByteLatencyNs: 150_000,
      durationNs: 2_500_000_000,
    });
    expect(w.events[1]).not.toHaveProperty('code');
    expect(w.events[2]).toMatchObject({
      type: 'capture-failed',
      seq: 5n,
      watchdogId: 1,
      code: 'ENOSPC',
      errno: -28,
      cookie: 9n,
      armId: 8n,
      bytesWritten: 8192,
    });
    expect(w.events.map((e) => e.seq)).toEqual([1n, 2n, 5n]);

    expect(w.ends).toEqual([]);
    w.dev.close();
    await w.waitEnd();
    expect(w.ends).toEqual([null]);
    w.dev.close(); // idempotent
    await new Promise((r) => setTimeout(r, 50));
    expect(w.ends).toEqual([null]);
  });

  test('two records in one read, a longer record from a newer module (its tail skipped), a record split across writes, an unknown type', async () => {
    const p = fifo();
    const w = watch(p);
    const write = writer(p);
    write(Buffer.concat([record({ seq: 1n, watchdogId: 2 }), record({ type: CAPTURE_DONE, seq: 2n, cookie: 5n })]));
    await w.waitEvents(2);
    // 136 bytes: 16 bytes this addon does not know (0xee) after the known fields, then a normal record in the same read.
    write(Buffer.concat([record({ size: 136, type: CAPTURE_DONE, seq: 3n, cookie: 6n, timeMonoNs: 99n }), record({ seq: 4n, watchdogId: 4 })]));
    await w.waitEvents(4);
    const split = record({ type: 9, seq: 5n, watchdogId: 5 });
    write(split.subarray(0, 50));
    await new Promise((r) => setTimeout(r, 50));
    expect(w.events).toHaveLength(4);
    write(split.subarray(50));
    await w.waitEvents(5);

    expect(w.events.map((e) => [e.type, e.seq, e.watchdogId, e.cookie])).toEqual([
      ['pretimeout', 1n, 2, 0n],
      ['capture-done', 2n, 0, 5n],
      ['capture-done', 3n, 0, 6n],
      ['pretimeout', 4n, 4, 0n],
      ['unknown', 5n, 5, 0n],
    ]);
    expect(w.events[2].timeMonoNs).toBe(99n);
    expect(w.ends).toEqual([]);
  });

  test('a record shorter than struct physcap_event ends the reader with a clear EPROTO', async () => {
    const p = fifo();
    const w = watch(p);
    const write = writer(p);
    write(record({ seq: 1n }));
    write(record({ size: 64, seq: 2n }));
    write(record({ seq: 3n })); // never delivered: the stream is not trusted after a record it cannot read
    await w.waitEnd();
    expect(w.events.map((e) => e.seq)).toEqual([1n]);
    const err = w.ends[0]!;
    expect(err).toMatchObject({ code: 'EPROTO', errno: -71, syscall: 'read', path: p });
    expect(err.message).toContain('a record of 64 bytes, shorter than the 120 bytes of struct physcap_event');
    expect(err.stack).toContain('armdev.test.ts');
    // The device stays open (its arms with it) until close(), which ends nothing twice.
    w.dev.close();
    await new Promise((r) => setTimeout(r, 50));
    expect(w.ends).toHaveLength(1);
    expect(w.eventsAfterEnd()).toBe(0);
  });

  test('a regular file standing in: its records, then no spinning at its end until close()', async () => {
    const p = file(Buffer.concat([record({ seq: 10n }), record({ type: CAPTURE_DONE, seq: 11n, armId: 3n })]));
    const w = watch(p);
    await w.waitEvents(2);
    expect(w.events.map((e) => [e.type, e.seq, e.armId])).toEqual([
      ['pretimeout', 10n, 0n],
      ['capture-done', 11n, 3n],
    ]);
    // A reader that kept reading end-of-file would burn a core here.
    const before = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    await new Promise((r) => setTimeout(r, 300));
    const cpu = process.cpuUsage(before);
    const wallUs = Number((process.hrtime.bigint() - t0) / 1000n);
    expect(cpu.user + cpu.system).toBeLessThan(wallUs / 2);
    expect(w.ends).toEqual([]);
    w.dev.close();
    await w.waitEnd();
    expect(w.ends).toEqual([null]);
  });

  test('a stream that ends part-way into a record: EPROTO', async () => {
    const p = file(Buffer.concat([record({ seq: 1n }), record({ seq: 2n }).subarray(0, 100)]));
    const w = watch(p);
    await w.waitEnd();
    expect(w.events.map((e) => e.seq)).toEqual([1n]);
    expect(w.ends[0]).toMatchObject({ code: 'EPROTO', syscall: 'read', path: p });
    expect(w.ends[0]!.message).toContain('the stream ended 100 bytes into a record');
  });
});

describe('readPhyscapEvents', () => {
  test('every record kept, without waiting; errors as the reader gives them', () => {
    const p = file(Buffer.concat([record({ seq: 4n }), record({ size: 128, type: CAPTURE_FAILED, seq: 6n, error: -5 })]));
    expect(readPhyscapEvents(p).map((e) => [e.type, e.seq, e.code, e.errno])).toEqual([
      ['pretimeout', 4n, undefined, 0],
      ['capture-failed', 6n, 'EIO', -5],
    ]);
    expect(readPhyscapEvents(file())).toEqual([]);

    // A FIFO with a writer and nothing in it: EAGAIN, so nothing, at once.
    const f = fifo();
    const keepOpen = fs.openSync(f, fs.constants.O_RDWR);
    fds.push(keepOpen);
    expect(readPhyscapEvents(f)).toEqual([]);
    fs.writeSync(keepOpen, record({ seq: 1n }).subarray(0, 60));
    expect(thrown(() => readPhyscapEvents(f))).toMatchObject({ code: 'EPROTO', syscall: 'read', path: f });

    const short = file(record({ size: 112 }));
    const err = thrown(() => readPhyscapEvents(short));
    expect(err).toMatchObject({ code: 'EPROTO', errno: -71, syscall: 'read', path: short });
    expect(err.message).toContain('a record of 112 bytes');
    expect(err.stack).toContain('armdev.test.ts');

    const missing = path.join(work, 'missing');
    expect(thrown(() => readPhyscapEvents(missing))).toMatchObject({ code: 'ENOENT', syscall: 'open', path: missing });
    expect(thrown(() => readPhyscapEvents(''))).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
  });
});

describe('arm / disarm / status', () => {
  test('on something that is not the device: ENOTTY, Node-style, naming the ioctl and what was done', () => {
    const p = file();
    const w = watch(p);
    const dest = fakeDest();
    const err = thrown(() => w.dev.arm({ watchdogId: 3, dest, cookie: 1n, ranges: [range, { ...range, destOffset: 4096n }] }));
    expect(err).toMatchObject({ code: 'ENOTTY', errno: -25, syscall: 'ioctl(PHYSCAP_IOC_ARM)', path: p });
    expect(err.message).toBe(`ENOTTY: Inappropriate ioctl for device, ioctl(PHYSCAP_IOC_ARM) '${p}' (arming a capture on watchdog3: 2 ranges to ${dest.path})`);
    expect(err.stack).toContain('armdev.test.ts');
    expect(thrown(() => w.dev.disarm(5n))).toMatchObject({
      code: 'ENOTTY',
      syscall: 'ioctl(PHYSCAP_IOC_DISARM)',
      path: p,
      message: expect.stringContaining('(disarming capture 5)'),
    });
    expect(thrown(() => w.dev.status(2n ** 64n - 1n))).toMatchObject({
      code: 'ENOTTY',
      syscall: 'ioctl(PHYSCAP_IOC_ARM_STATUS)',
      path: p,
      message: expect.stringContaining('(reading the status of capture 18446744073709551615)'),
    });
  });

  test('arguments are checked before the module sees them', () => {
    const w = watch(file());
    const dest = fakeDest();
    const ok = { watchdogId: 0, dest, cookie: 0n, ranges: [range] };
    const bad: Array<[string, Record<string, unknown>]> = [
      ['watchdogId -1', { watchdogId: -1 }],
      ['watchdogId 32', { watchdogId: 32 }],
      ['watchdogId 1.5', { watchdogId: 1.5 }],
      ['watchdogId as a string', { watchdogId: '0' }],
      ['no dest', { dest: undefined }],
      ['dest without an fd', { dest: { ...dest, fd: -1 } }],
      ['cookie as a number', { cookie: 1 }],
      ['negative cookie', { cookie: -1n }],
      ['cookie past u64', { cookie: 1n << 64n }],
      ['thenPanic not a boolean', { thenPanic: 'yes' }],
      ['no ranges', { ranges: [] }],
      ['ranges not an array', { ranges: range }],
      ['17 ranges', { ranges: Array.from({ length: 17 }, (_, i) => ({ ...range, destOffset: BigInt(i) * 4096n })) }],
      ['a range that is null', { ranges: [null] }],
      ['phys as a number', { ranges: [{ ...range, phys: 4096 }] }],
      ['negative phys', { ranges: [{ ...range, phys: -4096n }] }],
      ['negative destOffset', { ranges: [{ ...range, destOffset: -4096n }] }],
      ['zero length', { ranges: [{ ...range, length: 0n }] }],
      ['destOffset + length past a file offset', { ranges: [{ ...range, destOffset: (1n << 63n) - 4096n }] }],
      ['a misaligned destOffset', { ranges: [{ ...range, destOffset: 100n }] }],
      ['a misaligned length', { ranges: [{ ...range, length: 1000n }] }],
      ['overlapping destination spans', { ranges: [range, { ...range, phys: 0x200000n, destOffset: 2048n }] }],
    ];
    for (const [what, change] of bad) {
      const err = thrown(() => w.dev.arm({ ...ok, ...change } as never));
      expect({ what, code: err.code }).toEqual({ what, code: 'ERR_INVALID_ARG_VALUE' });
    }
    expect(thrown(() => w.dev.arm(null as never))).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    // 16 ranges and the largest watchdog id pass the checks (and reach the ioctl).
    const sixteen = Array.from({ length: 16 }, (_, i) => ({ ...range, destOffset: BigInt(i) * 4096n }));
    expect(thrown(() => w.dev.arm({ ...ok, watchdogId: 31, cookie: (1n << 64n) - 1n, ranges: sixteen, thenPanic: true }))).toMatchObject({
      code: 'ENOTTY',
    });

    for (const id of [0n, -1n, 1n << 64n, 1 as unknown as bigint, undefined as unknown as bigint]) {
      expect(thrown(() => w.dev.disarm(id))).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
      expect(thrown(() => w.dev.status(id))).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    }
  });

  test('after close(): ERR_INVALID_STATE', async () => {
    const w = watch(file());
    w.dev.close();
    await w.waitEnd();
    expect(w.ends).toEqual([null]);
    expect(thrown(() => w.dev.arm({ watchdogId: 0, dest: fakeDest(), cookie: 0n, ranges: [range] }))).toMatchObject({ code: 'ERR_INVALID_STATE' });
    expect(thrown(() => w.dev.disarm(1n))).toMatchObject({ code: 'ERR_INVALID_STATE' });
    expect(thrown(() => w.dev.status(1n))).toMatchObject({ code: 'ERR_INVALID_STATE' });
  });
});
