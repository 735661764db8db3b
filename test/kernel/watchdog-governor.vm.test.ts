/**
 * The "physcap" watchdog pretimeout governor and armed in-kernel captures,
 * on the emulated board, one boot per kernel: softdog (soft_noboot=1, so
 * the expiry does not reboot the board) with the physcap governor
 * selected; two reserved ranges armed into a preallocated O_DIRECT file;
 * the watchdog left unfed.  The module writes the capture itself: no user
 * space runs at fire time.  The host then checks the bytes against the
 * ground truth, the event records, the ARM/DISARM/ARM_STATUS bad-input
 * table, throughput against the WRITE ioctl, unload during a capture and
 * with arms, and dmesg.  The job ends with a THEN_PANIC arm: the board
 * dies in that panic, after the capture was written and synced.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { parseElfCoreFile, PT_LOAD } from '../../agent/src/container/elf';
import { BoardRun, bootBoard } from '../../harness/board';
import { jobHead } from '../../harness/job';
import { BOARD_RANGES, hex } from '../../harness/layout';
import { KernelSpec, loadKernels } from '../../harness/paths';
import { expectJobRan, scratchCopyFile, selftestRows, testSelftestTable } from '../support/board';
import { sha256File } from '../support/hash';
import { withTempDir } from '../support/tmp';

const MiB = 2 ** 20;
const crashlog = BOARD_RANGES.find((r) => r.name === 'crashlog')!;
const trace = BOARD_RANGES.find((r) => r.name === 'trace')!;
const big = BOARD_RANGES.find((r) => r.name === 'big')!;
const TOTAL = crashlog.size + trace.size;
const COOKIE = '0xfeedface';
/** The firing case of the selftest and the unload case write to the throttled disk (16 MiB/s). */
const RACE_LEN = 32 * MiB;
const UNLOAD_LEN = 64 * MiB;
const PANIC_COOKIE = '0x9a91c';
/** Throughput samples of each way. */
const SAMPLES = 3;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

interface PhyscapEvent {
  event: 'pretimeout' | 'capture_done' | 'capture_failed';
  size: number;
  version: number;
  seq: number;
  watchdog_id: number;
  error: string;
  time_real_ns: number;
  time_mono_ns: number;
  cookie: string;
  arm_id: number;
  bytes_written: number;
  bytes_zero_copy: number;
  bytes_bounced: number;
  first_byte_latency_ns: number;
  duration_ns: number;
}

/**
 * The ARM/DISARM/ARM_STATUS/read bad-input rows of the C selftest and the
 * errno each must get (docs/ioctl-abi.md has the same table).
 */
const ARM_TABLE: Array<[string, string]> = [
  ['ARM: valid (control)', 'OK'],
  ["ARM: size field not the struct's", 'EINVAL'],
  ['ARM: unknown flag', 'EINVAL'],
  ['ARM: non-zero pad', 'EINVAL'],
  ['ARM: non-zero reserved', 'EINVAL'],
  ['ARM: stamp offset without the stamp flag', 'EINVAL'],
  ['ARM: stamp overlapping a range', 'EINVAL'],
  ['ARM: misaligned stamp', 'EINVAL'],
  ["ARM: stamp past the file's end", 'EFBIG'],
  ['ARM: with a stamp (control)', 'OK'],
  ['ARM: no ranges', 'EINVAL'],
  ['ARM: 17 ranges', 'EINVAL'],
  ["ARM: watchdog id beyond the core's limit", 'EINVAL'],
  ['ARM: negative fd', 'EBADF'],
  ['ARM: closed fd', 'EBADF'],
  ['ARM: read-only destination', 'EBADF'],
  ['ARM: destination without O_DIRECT', 'EINVAL'],
  ['ARM: destination with O_APPEND', 'EINVAL'],
  ['ARM: pipe destination', 'EINVAL'],
  ['ARM: directory destination', 'EISDIR'],
  ['ARM: zero length', 'EINVAL'],
  ['ARM: misaligned physical address', 'EINVAL'],
  ['ARM: misaligned length', 'EINVAL'],
  ['ARM: misaligned destination offset', 'EINVAL'],
  ['ARM: a hole', 'ENXIO'],
  ['ARM: device (MMIO) range', 'EACCES'],
  ['ARM: file shorter than the span', 'EFBIG'],
  ['ARM: span past the end of the block device', 'ENOSPC'],
  ['ARM: overlapping spans within one arm', 'EINVAL'],
  ['ARM: two disjoint spans (control)', 'OK'],
  ['ARM: block device (control)', 'OK'],
  ['ARM: first of several on one file (control)', 'OK'],
  ['ARM: overlapping an existing arm on the same file', 'EBUSY'],
  ["ARM: a stamp on an existing arm's span", 'EBUSY'],
  ['ARM: eight arms on one watchdog, adjacent spans (control)', 'OK'],
  ['ARM: a ninth arm on one watchdog', 'ENOSPC'],
  ['ARM: the ninth on another watchdog (control)', 'OK'],
  ['ARM_STATUS of an armed capture', 'OK'],
  ['ARM_STATUS of an unknown id', 'ENOENT'],
  ['DISARM of an unknown id', 'ENOENT'],
  ['DISARM of id 0', 'ENOENT'],
  ["DISARM of another descriptor's arm", 'EPERM'],
  ['DISARM (control)', 'OK'],
  ['DISARM twice', 'ENOENT'],
  ['ARM on a second descriptor (control)', 'OK'],
  ['arms released on close: ARM_STATUS', 'ENOENT'],
  ['arms released on close: the span is free again', 'OK'],
  ['ARM without CAP_SYS_RAWIO (fd opened before)', 'EPERM'],
  ['ARM with a NULL argument', 'EFAULT'],
  ['DISARM with a bad pointer', 'EFAULT'],
  ['ARM number with a wrong size', 'ENOTTY'],
  ['read: buffer smaller than a record', 'EINVAL'],
  ['read: O_NONBLOCK with no new record', 'EAGAIN'],
  ['poll: not readable with no new record', 'OK'],
  ['firing: ARM a long capture to the slow disk (control)', 'OK'],
  ['firing: watchdog armed with a pretimeout (control)', 'OK'],
  ['firing: ARM_STATUS leaves armed for firing', 'OK'],
  ['DISARM racing a firing pretimeout', 'EBUSY'],
  ['poll: readable after a pretimeout', 'OK'],
  ['firing: the capture completes while DISARM is refused', 'OK'],
  ['firing: ARM_STATUS reports the first-byte latency', 'OK'],
  ['firing: the stamp on the disk says done: this arm, every byte, the check', 'OK'],
  ['DISARM after the capture finished (control)', 'OK'],
];

const DMESG_TROUBLE =
  /WARNING:|BUG:|Oops|Call Trace|general protection|Kernel panic|RIP:|lockdep|possible recursive locking|inconsistent lock state|sleeping function called|scheduling while atomic/;

function job(kernel: KernelSpec): string {
  return `${jobHead(kernel)}W=/sys/class/watchdog/watchdog0
# Wait for a JSON line with an arm_id in a file; print the id.
arm_id() { for i in $(seq 200); do id=$(sed -n 's/.*"arm_id":\\([0-9]*\\).*/\\1/p' "$1" | head -n 1); [ -n "$id" ] && { echo $id; return 0; }; sleep 0.05; done; return 1; }

# The watchdog core first (softdog pulls it in), so the governor registers.
modprobe softdog soft_noboot=1 || exit 11
insmod $MOD || exit 10
rec governors - "{\\"available\\":\\"$(tr '\\n' ' ' < $W/pretimeout_available_governors)\\"}"
echo physcap > $W/pretimeout_governor || exit 12
rec governor - "{\\"value\\":\\"$(cat $W/pretimeout_governor)\\"}"
rec info - "$($C info)"

$S selftest --phys ${hex(trace.start)} --scratch $D --blockdev $RAW \\
	--watchdog /dev/watchdog0 --watchdog-id 0 --slow $SLOW \\
	--race-phys ${hex(big.start)} --race-len ${RACE_LEN} | sed 's/^/@@selftest - /'

# The armed capture: crashlog and trace, one after the other, into a file
# the client preallocates.  Then the watchdog is fed once and left alone.
$C arm 0 $D/armed.bin ${hex(crashlog.start)} ${crashlog.size} ${hex(trace.start)} ${trace.size} \\
	--cookie ${COOKIE} --wait > $T/arm.out 2>&1 &
armer=$!
arm_id $T/arm.out > /dev/null || exit 13
$S watchdog-arm --timeout 10 --pretimeout 8 --hold 6 > $T/wd.out &
wd=$!
wait $armer
rec armrc - "{\\"rc\\":$?}"
wait $wd
sed 's/^/@@armed - /' $T/arm.out
rec wd - "$(cat $T/wd.out)"
$C events | sed 's/^/@@events - /'

# arm --core: an ELF core and its stamp on the raw disk (a dump
# partition), digested by the arming client once the kernel wrote it; then,
# as after a reset, from the disk alone: the stamp checked, copied off, digested.
$C arm 0 $RAW ${hex(crashlog.start)} ${crashlog.size} ${hex(trace.start)} ${trace.size} \
	--core --wait --digest-out $D/core-armed-wait.digest > $T/core-arm.out 2>&1 &
armer=$!
arm_id $T/core-arm.out > /dev/null || exit 23
$S watchdog-arm --timeout 10 --pretimeout 8 --hold 6 > /dev/null &
wd=$!
wait $armer
rec core-armrc - "{\\"rc\\":$?}"
wait $wd
sed 's/^/@@core-armed - /' $T/core-arm.out
rec core-digest - "$($C digest $RAW --copy-to $D/core-armed.core)"
rec core-sum - "{\\"sha256\\":\\"$(sha256sum $D/core-armed.core | cut -c1-64)\\"}"
# The partition now holds a core the kernel wrote: arming over it is
# refused, unless --replace says it was copied off; re-armed, it holds no
# core until the kernel writes one (its stamp block is cleared).
rec core-rearm - "$($C arm 0 $RAW ${hex(crashlog.start)} ${crashlog.size} --core)"
$C arm 0 $RAW ${hex(crashlog.start)} ${crashlog.size} --core --replace > $T/replace.out 2>&1 &
holder=$!
arm_id $T/replace.out > /dev/null || exit 24
kill -TERM $holder
wait $holder 2>/dev/null
rec core-replaced - "$($C digest $RAW)"
# A failed arm --core leaves nothing that passes for a core: the file it
# created is removed, the partition's header block zeroed.  (timeout: an
# arm that wrongly succeeded would wait for ever.)
rec core-badarm - "$(timeout 20 $C arm 0 $D/bad-arm.core 0xf000000000 4096 --core)"
rec core-badarm-left - "{\\"exists\\":$(test -e $D/bad-arm.core && echo true || echo false)}"
rec core-badarm-raw - "$(timeout 20 $C arm 0 $RAW 0xf000000000 4096 --core)"
rec core-badarm-raw-digest - "$($C digest $RAW)"

# Throughput, ${SAMPLES} samples each (one is noisy under emulation): the
# armed capture again, then the same two ranges with the WRITE ioctl into a
# preallocated file too, each range synced as the client does.
for n in $(seq 2 ${SAMPLES}); do
	$C arm 0 $D/armed-$n.bin ${hex(crashlog.start)} ${crashlog.size} ${hex(trace.start)} ${trace.size} \
		--cookie $n --wait > $T/arm-$n.out 2>&1 &
	armer=$!
	arm_id $T/arm-$n.out > /dev/null || exit 19
	$S watchdog-arm --timeout 10 --pretimeout 8 --hold 4 > /dev/null &
	wd=$!
	wait $armer
	wait $wd
	grep '"capture_done"' $T/arm-$n.out | sed "s/^/@@sample armed-$n /"
done
for n in $(seq ${SAMPLES}); do
	fallocate -l ${TOTAL} $D/written-$n.bin || exit 14
	rec write crashlog-$n "$($C write ${hex(crashlog.start)} ${crashlog.size} $D/written-$n.bin --existing --offset 0)"
	rec write trace-$n "$($C write ${hex(trace.start)} ${trace.size} $D/written-$n.bin --existing --offset ${crashlog.size})"
done

# Unload during a capture: the arming process is killed while its capture
# writes to the throttled disk, then the module is unloaded at once.
$C arm 0 $SLOW ${hex(big.start)} ${UNLOAD_LEN} > $T/hold.out 2>&1 &
holder=$!
id=$(arm_id $T/hold.out) || exit 15
$S watchdog-arm --timeout 3 --pretimeout 2 --hold 4 > /dev/null &
wd=$!
for i in $(seq 400); do $C status $id | grep -q '"state":"firing"' && break; sleep 0.02; done
rec firing - "$($C status $id)"
kill -KILL $holder
wait $holder 2>/dev/null
t0=$(date +%s%N)
rmmod physcap
rc=$?
t1=$(date +%s%N)
rec unload firing "{\\"rc\\":$rc,\\"ms\\":$(( (t1 - t0) / 1000000 )),\\"arm_id\\":$id}"
wait $wd
rec governor after-unload "{\\"value\\":\\"$(cat $W/pretimeout_governor)\\"}"

# Unload with an arm that never fired: refused while its descriptor is
# open (the module is in use), clean once the arming process is gone.
insmod $MOD || exit 16
echo physcap > $W/pretimeout_governor || exit 17
$C arm 0 $D/left.bin ${hex(trace.start)} ${MiB} > $T/left.out 2>&1 &
holder=$!
arm_id $T/left.out > /dev/null || exit 18
rmmod physcap 2> $T/rmmod.err
rec unload busy "{\\"rc\\":$?}"
kill -TERM $holder
wait $holder 2>/dev/null
rmmod physcap
rec unload armed "{\\"rc\\":$?}"

# Last, THEN_PANIC: the capture, then panic() as the panic governor would.
# Init never gets to save dmesg and the exit code after this, so the job
# does it first; if the kernel did not panic the job goes on and fails.
insmod $MOD || exit 20
echo physcap > $W/pretimeout_governor || exit 21
$C arm 0 $D/panic.bin ${hex(trace.start)} ${trace.size} --then-panic --cookie ${PANIC_COOKIE} > $T/panic.out 2>&1 &
id=$(arm_id $T/panic.out) || exit 22
rec panic armed "{\\"arm_id\\":$id}"
dmesg > $PHYSCAP_BOARD_JOB/dmesg.log
echo 0 > $PHYSCAP_BOARD_JOB/exit-code
sync
$S watchdog-arm --timeout 10 --pretimeout 8 --hold 30 > /dev/null
rec panic survived '{}'
echo 1 > $PHYSCAP_BOARD_JOB/exit-code
exit 1
`;
}

const kernels = loadKernels();

describe.each(kernels.map((k) => [k.series, k] as const))('the physcap pretimeout governor on the board, kernel %s', (series, kernel) => {
  let run: BoardRun;
  const all = <T>(key: string, label = '-'): T[] =>
    run
      .records<T>(key)
      .filter((r) => r.label === label)
      .map((r) => r.value);
  const one = <T>(key: string, label = '-'): T => run.record<T>(key, label);
  const armed = () => all<PhyscapEvent & { ok?: boolean; arm_id: number }>('armed');
  const armId = () => armed()[0]!.arm_id;
  const captureEvent = () => armed().find((e) => e.event === 'capture_done' && e.arm_id === armId())!;

  let fsckStatus: number | null = null;

  beforeAll(async () => {
    run = await bootBoard({ kernel, job: job(kernel), reserved: BOARD_RANGES });
    // The board ends in the THEN_PANIC panic, without unmounting the
    // scratch disk: replay its journal as the next boot (or the kdump
    // kernel's fsck) would, before any file is read off it on the host.
    fsckStatus = spawnSync('e2fsck', ['-fy', run.images.scratch], { encoding: 'utf8' }).status;
  }, 15 * 60_000);
  afterAll(() => run?.cleanup());

  test('the job ran to its end', () => expectJobRan(run));

  test('the governor registers at load and is selected for watchdog0', () => {
    expect(one<{ available: string }>('governors').available.split(' ')).toContain('physcap');
    expect(one<{ value: string }>('governor').value).toBe('physcap');
    expect(run.dmesg).toMatch(/physcap: version [\d.]+, ABI 4, \/dev\/physcap ready, pretimeout governor "physcap" registered/);
  });

  test('INFO: ABI 4, with the ARM, governor and stamp feature bits', () => {
    const info = one<{ ok: boolean; abi_version: number; features: number }>('info');
    expect(info).toMatchObject({ ok: true, abi_version: 4 });
    expect(info.features & (1 << 7)).toBeTruthy();
    expect(info.features & (1 << 8)).toBeTruthy();
    expect(info.features & (1 << 10)).toBeTruthy();
  });

  describe('bad input and races: the selftest table', () => {
    const rows = () => selftestRows(run);

    testSelftestTable(() => run, ARM_TABLE);

    test('every row of the selftest passes (the WRITE table too), and the ARM rows are exactly this table', () => {
      expect(rows().filter((r) => !r.pass)).toEqual([]);
      const armRows = rows()
        .map((r) => r.case!)
        .filter((c) => ARM_TABLE.some(([n]) => n === c) || /^(ARM|DISARM|arms|read:|poll:|firing:)/.test(c));
      expect(armRows.sort()).toEqual(ARM_TABLE.map(([n]) => n).sort());
    });
  });

  test('the armed capture wrote both ranges exactly, read on the host from the scratch image', () => {
    expect(armed()[0]).toMatchObject({ ok: true, watchdog_id: 0, ranges: 2, bytes_total: TOTAL, cookie: COOKIE });
    expect(one<{ rc: number }>('armrc').rc).toBe(0);
    withTempDir('governor', (tmp) => {
      const file = scratchCopyFile(run, '/armed.bin', path.join(tmp, 'armed.bin'));
      expect(fs.statSync(file).size).toBe(TOTAL);
      expect(sha256File(file, 0, crashlog.size)).toBe(run.truth('crashlog').sha256);
      expect(sha256File(file, crashlog.size, trace.size)).toBe(run.truth('trace').sha256);
    });
  });

  test("arm --core on the raw disk: an ELF core of both ranges and the kernel's stamp; the digests, the arming client's and one from the disk alone, equal sha256sum of its bytes", () => {
    expect(one<{ rc: number }>('core-armrc').rc).toBe(0);
    const lines = all<Record<string, unknown>>('core-armed');
    expect(lines[0]).toMatchObject({ ok: true, core: true, ranges: 2 });
    expect(lines.map((l) => l.event).filter(Boolean)).toEqual(['pretimeout', 'capture_done']);
    const waited = lines[lines.length - 1] as { digest: { ok: boolean; sha256: string; bytes: number; via: string } };
    expect(waited.digest).toMatchObject({ ok: true, via: 'af_alg' });
    const fromDisk = one<{ ok: boolean; armed: boolean; bytes: number; digest: { ok: boolean; sha256: string } }>('core-digest');
    expect(fromDisk).toMatchObject({ ok: true, armed: true, bytes: waited.digest.bytes, digest: { ok: true, sha256: waited.digest.sha256 } });
    expect(one<{ sha256: string }>('core-sum').sha256).toBe(waited.digest.sha256);
    withTempDir('core-armed', (tmp) => {
      // The copy off the partition, read on the host: the digest's bytes, an ELF core of the ground truth.
      const file = scratchCopyFile(run, '/core-armed.core', path.join(tmp, 'core-armed.core'));
      expect(sha256File(file)).toBe(waited.digest.sha256);
      const loads = parseElfCoreFile(file).segments.filter((s) => s.type === PT_LOAD);
      expect(loads.map((l) => [l.paddr, l.filesz])).toEqual([crashlog, trace].map((r) => [BigInt(r.start), BigInt(r.size)]));
      expect(sha256File(file, Number(loads[0]!.offset), crashlog.size)).toBe(run.truth('crashlog').sha256);
      expect(sha256File(file, Number(loads[1]!.offset), trace.size)).toBe(run.truth('trace').sha256);
    });
  });

  test('arm --core over a partition holding a core the kernel wrote is refused; with --replace it is armed, and the partition holds no core until the kernel writes one', () => {
    expect(one<{ ok: boolean; errno: string; what: string }>('core-rearm')).toMatchObject({ ok: false, errno: 'EEXIST' });
    expect(one<{ what: string }>('core-rearm').what).toContain('copy it off (digest --copy-to), then arm with --replace');
    expect(one<{ ok: boolean; errno: string; what: string }>('core-replaced')).toMatchObject({
      ok: false,
      errno: 'ENODATA',
      what: expect.stringContaining('no stamp of this arm: the kernel has not written this capture'),
    });
  });

  test('a failed arm --core leaves nothing that passes for a core: its new file is removed, the partition keeps no header', () => {
    expect(one<{ ok: boolean; what: string }>('core-badarm')).toMatchObject({ ok: false, what: 'ARM' });
    expect(one<{ exists: boolean }>('core-badarm-left')).toEqual({ exists: false });
    expect(one<{ ok: boolean; what: string }>('core-badarm-raw')).toMatchObject({ ok: false, what: 'ARM' });
    expect(one<{ ok: boolean; errno: string; what: string }>('core-badarm-raw-digest')).toMatchObject({
      ok: false,
      errno: 'EINVAL',
      what: expect.stringContaining('not an ELF64 core'),
    });
  });

  test('events: PRETIMEOUT, then CAPTURE_DONE with the cookie, every byte zero-copy, latency measured', () => {
    const events = armed().filter((e) => e.event);
    const pre = events.find((e) => e.event === 'pretimeout');
    const done = captureEvent();
    expect(pre).toMatchObject({ watchdog_id: 0, size: 120, version: 1, error: 'OK' });
    expect(done).toMatchObject({
      size: 120,
      version: 1,
      watchdog_id: 0,
      error: 'OK',
      cookie: COOKIE,
      bytes_written: TOTAL,
      bytes_zero_copy: TOTAL,
      bytes_bounced: 0,
    });
    expect(done.seq).toBeGreaterThan(pre!.seq);
    expect(done.first_byte_latency_ns).toBeGreaterThan(0);
    expect(done.duration_ns).toBeGreaterThan(0);
    // The pretimeout fires 2 s after the single feed; wall clock agrees with the monotonic stamps.
    expect(done.time_mono_ns - pre!.time_mono_ns).toBeGreaterThanOrEqual(done.first_byte_latency_ns + done.duration_ns);
    expect(Math.abs(done.time_real_ns - pre!.time_real_ns - (done.time_mono_ns - pre!.time_mono_ns))).toBeLessThan(1e9);
    expect(one<{ ok: boolean; pretimeout: number }>('wd')).toMatchObject({ ok: true, pretimeout: 8 });
    // The noop governor's line, kept for log-watching triggers.
    expect(run.dmesg).toMatch(/^\[\s*[\d.]+\] watchdog0: pretimeout event$/m);
    expect(run.dmesg).toMatch(new RegExp(`physcap: watchdog0: armed capture ${armId()} done: ${TOTAL} bytes \\(${TOTAL} zero-copy\\)`));
  });

  test('a new reader sees the whole ring: both pretimeouts and both captures, in seq order', () => {
    const events = all<PhyscapEvent>('events');
    const seqs = events.map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(events.filter((e) => e.event === 'pretimeout' && e.watchdog_id === 0)).toHaveLength(2);
    expect(events.find((e) => e.event === 'capture_done' && e.cookie === '0x5ace')).toMatchObject({
      bytes_written: RACE_LEN,
      bytes_zero_copy: RACE_LEN,
    });
    expect(events.find((e) => e.event === 'capture_done' && e.cookie === COOKIE)).toEqual(captureEvent());
  });

  test('throughput: the armed capture against the WRITE ioctl for the same two ranges (medians)', () => {
    const armedRuns = [captureEvent(), ...Array.from({ length: SAMPLES - 1 }, (_, i) => one<PhyscapEvent>('sample', `armed-${i + 2}`))];
    for (const e of armedRuns) expect(e).toMatchObject({ event: 'capture_done', bytes_written: TOTAL, bytes_zero_copy: TOTAL });
    const writeRuns = Array.from({ length: SAMPLES }, (_, i) =>
      ['crashlog', 'trace'].map((n) => one<{ ok: boolean; bytes_zero_copy: number; seconds: number }>('write', `${n}-${i + 1}`)),
    );
    for (const pair of writeRuns) {
      for (const w of pair) expect(w.ok).toBe(true);
      expect(pair.reduce((a, w) => a + w.bytes_zero_copy, 0)).toBe(TOTAL);
    }
    const armedNs = median(armedRuns.map((e) => e.duration_ns));
    const writeNs = median(writeRuns.map((pair) => pair.reduce((a, w) => a + w.seconds, 0) * 1e9));
    const report = {
      kernel: series,
      bytes: TOTAL,
      samples: SAMPLES,
      first_byte_latency_us: armedRuns.map((e) => Math.round(e.first_byte_latency_ns / 1000)),
      armed_duration_ms: armedRuns.map((e) => +(e.duration_ns / 1e6).toFixed(1)),
      write_ioctl_ms: writeRuns.map((pair) => +(pair.reduce((a, w) => a + w.seconds, 0) * 1e3).toFixed(1)),
      armed_MiBps_median: +(TOTAL / MiB / (armedNs / 1e9)).toFixed(1),
      write_MiBps_median: +(TOTAL / MiB / (writeNs / 1e9)).toFixed(1),
      armed_over_write_throughput: +(writeNs / armedNs).toFixed(2),
    };
    process.stdout.write(`physcap governor throughput ${JSON.stringify(report)}\n`);
    // Same write path, same disk: neither should be wildly slower.
    expect(report.armed_over_write_throughput).toBeGreaterThan(0.2);
  });

  test('unload during a capture whose descriptor was closed: the capture stops between batches and rmmod returns', () => {
    expect(one<{ ok: boolean; state: string }>('firing')).toMatchObject({ ok: true, state: 'firing' });
    const u = one<{ rc: number; ms: number; arm_id: number }>('unload', 'firing');
    expect(u.rc).toBe(0);
    // 64 MiB at 16 MiB/s would take 4 s; a batch in flight takes at most about 0.25 s.
    expect(u.ms).toBeLessThan(3000);
    expect(run.dmesg).toMatch(new RegExp(`physcap: watchdog0: armed capture ${u.arm_id} failed after \\d+ of ${UNLOAD_LEN} bytes: -125`));
    expect(one<{ value: string }>('governor', 'after-unload').value).not.toBe('physcap');
  });

  test('unload with an arm: refused while the arming descriptor is open, clean once it is closed', () => {
    expect(one<{ rc: number }>('unload', 'busy').rc).not.toBe(0);
    expect(one<{ rc: number }>('unload', 'armed').rc).toBe(0);
  });

  test('THEN_PANIC: the capture is written and synced, then the kernel panics naming the watchdog', () => {
    const { arm_id: id } = one<{ arm_id: number }>('panic', 'armed');
    expect(run.records('panic').filter((r) => r.label === 'survived')).toEqual([]);
    expect(run.console).toMatch(new RegExp(`Kernel panic - not syncing: physcap: watchdog0 pretimeout: armed capture ${id} written, panicking as asked`));
    expect(fsckStatus === 0 || fsckStatus === 1).toBe(true);
    withTempDir('panic', (tmp) => {
      const file = scratchCopyFile(run, '/panic.bin', path.join(tmp, 'panic.bin'));
      expect(sha256File(file)).toBe(run.truth('trace').sha256);
    });
  });

  test('dmesg has no WARN, BUG, Oops or lock splat', () => {
    const trouble = run.dmesg.split('\n').filter((l) => DMESG_TROUBLE.test(l));
    expect(trouble).toEqual([]);
  });
});
