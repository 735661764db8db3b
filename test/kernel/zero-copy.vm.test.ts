/**
 * physcap.ko on the emulated board, on every kernel setup.sh installed:
 * ground truth byte for byte, the bad-input table, fuzzing, signals,
 * poisoned pages, the bounce path, unload and lockdown, all from one boot
 * per kernel.
 */
import { BoardRun, bootBoard } from '../../harness/board';
import { BOARD_RANGES, rawOffsets } from '../../harness/layout';
import { loadKernels } from '../../harness/paths';
import { expectJobRan, selftestRows, testSelftestTable } from '../support/board';
import { zeroCopyJob } from './zero-copy-job';

interface WriteResult {
  ok: boolean;
  errno: string;
  length: number;
  bytes_written: number;
  bytes_zero_copy: number;
  bytes_bounced: number;
  bytes_poisoned: number;
  bytes_buffered: number;
  seconds: number;
}

/**
 * The bad-input table: one bad field per call and the errno it must get.
 * The C selftest (kernel/tools/physcap-selftest.c) carries the same table and
 * checks it in the guest; this copy makes each row a test of its own and
 * keeps the C side from quietly changing what it expects.
 */
const BAD_INPUT: Array<[string, string]> = [
  ['valid request (control)', 'OK'],
  ['non-zero reserved[0]', 'EINVAL'],
  ['non-zero reserved[2]', 'EINVAL'],
  ['unknown flag bit 2', 'EINVAL'],
  ['unknown flag bit 31', 'EINVAL'],
  ['zero length', 'EINVAL'],
  ['overflowing length', 'EINVAL'],
  ['phys + len wraps', 'EINVAL'],
  ['beyond the physical address space', 'EINVAL'],
  ['straddling the physical limit', 'EINVAL'],
  ['past the end of memory (hole)', 'ENXIO'],
  ['device (MMIO) range without the flag', 'EACCES'],
  ['MMIO with the flag but NO_BOUNCE', 'EOPNOTSUPP'],
  ['MMIO with the flag (bounced)', 'OK'],
  ['MMIO with the flag: every byte bounced', 'OK'],
  ['misaligned destination offset', 'EINVAL'],
  ['misaligned physical address', 'EINVAL'],
  ['misaligned length', 'EINVAL'],
  ['negative fd', 'EBADF'],
  ['closed fd', 'EBADF'],
  ['read-only fd', 'EBADF'],
  ['pipe (even with O_DIRECT)', 'EINVAL'],
  ['socket', 'EINVAL'],
  ['directory', 'EISDIR'],
  ['character device', 'EINVAL'],
  ['file opened without O_DIRECT', 'EINVAL'],
  ['file opened with O_APPEND', 'EINVAL'],
  ['block device: past its end', 'ENOSPC'],
  ['block device: valid', 'OK'],
  ['unknown ioctl', 'ENOTTY'],
  ['WRITE number with a wrong size', 'ENOTTY'],
  ['WRITE with a NULL argument', 'EFAULT'],
  ['INFO with a bad pointer', 'EFAULT'],
  ['open without CAP_SYS_RAWIO', 'EPERM'],
  ['WRITE without CAP_SYS_RAWIO (fd opened before)', 'EPERM'],
  ['mmap without CAP_SYS_RAWIO', 'EPERM'],
  ['mmap for writing', 'EACCES'],
  ['mmap for execution', 'EACCES'],
  ['mmap of a device range', 'EACCES'],
  ['mmap of a hole', 'ENXIO'],
  ['mmap of memory (control)', 'OK'],
  ['mprotect of the mapping to writable', 'EACCES'],
  // insmod without the watchdog core: physcap loads, without its governor.
  ['ARM without the pretimeout governor (watchdog core not loaded)', 'EOPNOTSUPP'],
];

const DMESG_TROUBLE = /WARNING:|BUG:|Oops|Call Trace|general protection|Kernel panic|RIP:/;

const kernels = loadKernels();

describe.each(kernels.map((k) => [k.series, k] as const))('physcap.ko on the emulated board, kernel %s', (_series, kernel) => {
  let run: BoardRun;
  const one = <T>(key: string, label = '-'): T => run.record<T>(key, label);

  beforeAll(async () => {
    run = await bootBoard({ kernel, job: zeroCopyJob(kernel), reserved: BOARD_RANGES });
  }, 20 * 60_000);

  afterAll(() => run?.cleanup());

  test('the job ran to its end', () => expectJobRan(run));

  test('INFO: ABI version 4, zero-copy, adoption, block devices, KERNEL_MAP and arm stamps; no governor without the watchdog core', () => {
    const info = one<{ ok: boolean; abi_version: number; page_size: number; features: number }>('info');
    expect(info).toMatchObject({ ok: true, abi_version: 4, page_size: 4096 });
    expect(info.features & (1 << 10)).toBeTruthy();
    expect(info.features & 0b1111111).toBe(0b1111111);
    // ARM is in the ABI, but no governor: the watchdog core was not loaded first.
    expect(info.features & (1 << 7)).toBeTruthy();
    expect(info.features & (1 << 8)).toBe(0);
    expect(info.features & (1 << 9)).toBeTruthy();
  });

  test("KERNEL_MAP: x86-64's direct map (from physical 0, randomized base, to the end of RAM) and the image's offset (__START_KERNEL_map - phys_base)", () => {
    const { kernel_map: km } = one<{ kernel_map: Record<string, string> }>('info');
    const virt = BigInt(km.direct_map_virt!);
    expect(BigInt(km.direct_map_start!)).toBe(0n);
    // page_offset_base: 0xffff888000000000 without KASLR, randomized in PUD (1 GiB) steps with it.
    expect(virt >= 0xffff_8880_0000_0000n && virt < 0xffff_ff00_0000_0000n && virt % (1n << 30n) === 0n).toBe(true);
    // high_memory: the top of RAM, inside the board's memory and past the reserved ranges.
    const end = BigInt(km.direct_map_end!);
    expect(end > 0x3000_0000n && end <= 1536n << 20n).toBe(true);
    // The image's virtual addresses are __START_KERNEL_map + (p - phys_base):
    // inside the 1 GiB image window at 0xffffffff80000000, for an image
    // somewhere in the board's RAM.  KASLR moves the virtual and the
    // physical place independently, so phys_base may be "negative".
    const offset = BigInt(km.image_offset!);
    expect(offset > 0xffff_ffff_8000_0000n - (1536n << 20n) && offset < 0xffff_ffff_c000_0000n).toBe(true);
  });

  test('[board] "Reserved" that the firmware did not report as RAM is device memory: EACCES without ALLOW_MMIO (EBDA, BIOS flash, the window above 1 TiB)', () => {
    for (const label of ['reserved-flash', 'reserved-high']) expect(one<{ ok: boolean; errno: string }>(label)).toMatchObject({ ok: false, errno: 'EACCES' });
    // 0x9f000 starts in System RAM and runs into the EBDA: one byte of device memory refuses the whole write.
    expect(one<{ ok: boolean; errno: string }>('reserved-ebda')).toMatchObject({ ok: false, errno: 'EACCES' });
  });

  describe('physcap-client capture with a bad range in its list', () => {
    interface ClientCapture {
      ok: boolean;
      errno: string;
      what: string;
      removed: boolean;
      header_cleared: boolean;
    }
    const ELF_MAGIC = '7f454c46';
    test.each([
      ['client-hole', 'hole', 'ENXIO'],
      ['client-reserved', 'high', 'EACCES'],
      ['client-device', 'vga', 'EACCES'],
    ])('[board] physcap-client %s: fails naming range "%s" (%s); the file it created is removed, nothing passes for a core', (label, what, errno) => {
      expect(one<ClientCapture>(label)).toMatchObject({ ok: false, errno, what, removed: true });
      expect(one<{ exists: boolean }>(`${label}-left`)).toEqual({ exists: false });
    });
    test('[board] physcap-client --existing (a dump partition): a good capture has its ELF header; a failed one leaves the header block zeroed', () => {
      expect(one<ClientCapture>('client-existing-ok')).toMatchObject({ ok: true });
      expect(one<{ magic: string }>('client-existing-ok-magic')).toEqual({ magic: ELF_MAGIC });
      expect(one<ClientCapture>('client-existing-hole')).toMatchObject({ ok: false, errno: 'ENXIO', what: 'hole', removed: false, header_cleared: true });
      expect(one<{ magic: string }>('client-existing-hole-magic')).toEqual({ magic: '00000000' });
    });
    test('[board] physcap-client: an odd-sized range is a usage error naming it, before anything is created', () => {
      expect(one<{ rc: number; stderr: string; exists: boolean }>('client-odd')).toEqual({
        rc: 2,
        stderr: 'physcap-client: region odd: start and length must be multiples of 4096',
        exists: false,
      });
    });
  });

  describe("physcap-client's digests", () => {
    interface Digested {
      ok: boolean;
      seconds: number;
      file_size: number;
      digest: { ok: boolean; sha256: string; bytes: number; driver: string; via: string; fallback: string | null; file: string };
    }
    test("[board] capture: durable first, then the core read back and hashed by the kernel's best SHA-256 driver (AF_ALG); equal to sha256sum of the file; the digest file says so", () => {
      const out = one<Digested>('client-digest');
      const sum = one<{ sha256: string; size: number }>('client-digest-sum');
      expect(out).toMatchObject({ ok: true, digest: { ok: true, sha256: sum.sha256, bytes: sum.size, via: 'af_alg', fallback: null } });
      // x86's fastest SHA-256 the guest CPU offers (sha256-ni, -avx2, -avx or -ssse3), never the generic C.
      expect(out.digest.driver).toMatch(/^sha256-(ni|avx2|avx|ssse3)$/);
      const file = one<Record<string, unknown>>('client-digest-file');
      expect(file).toMatchObject({
        format: 'physcap-digest',
        version: 1,
        file: 'digest.core',
        bytes: sum.size,
        sha256: sum.sha256,
        covers: 'file',
        driver: out.digest.driver,
        via: 'af_alg',
      });
      expect(file.durable_seconds).toBeCloseTo(out.seconds, 5);
    });
    test('[board] kill -9 between durable and digested: the core is whole, no digest file passes for one, and `digest` finishes it', () => {
      expect(one<{ durable: boolean; digest_file: number }>('client-killed')).toEqual({ durable: true, digest_file: 0 });
      const done = one<{ ok: boolean; armed: boolean; digest: { ok: boolean; sha256: string } }>('client-recovered');
      expect(done).toMatchObject({ ok: true, armed: false, digest: { ok: true, sha256: one<{ sha256: string }>('client-recovered-sum').sha256 } });
    });
  });

  test("the question's way fails here too: mmap(/dev/mem) + O_DIRECT write gives EFAULT", () => {
    expect(one<{ errno: string }>('question').errno).toBe('EFAULT');
  });

  describe.each(BOARD_RANGES.map((r) => [r.name, r] as const))('reserved range %s', (name, range) => {
    const allZeroCopy = (w: WriteResult) => {
      expect(w).toMatchObject({ ok: true, bytes_written: range.size, bytes_zero_copy: range.size });
      expect(w.bytes_bounced + w.bytes_poisoned + w.bytes_buffered).toBe(0);
    };

    test('to an O_DIRECT file on ext4: every byte zero-copy, SHA-256 equals the host pattern', () => {
      allZeroCopy(one<WriteResult>('file', name));
      expect(run.scratchFileSha256(`/${name}.bin`, range.size)).toBe(run.truth(name).sha256);
    });

    test('to the raw disk: every byte zero-copy, SHA-256 equals the host pattern', () => {
      allZeroCopy(one<WriteResult>('raw', name));
      expect(run.rawSha256(rawOffsets(BOARD_RANGES).get(name)!, range.size)).toBe(run.truth(name).sha256);
    });

    test('read-only mmap of the range hashes to the host pattern', () => {
      expect(one<{ sha256: string }>('mmap', name).sha256).toBe(run.truth(name).sha256);
    });

    test('concurrent writes of disjoint ranges all complete and match', () => {
      allZeroCopy(one<WriteResult>('concurrent', name));
      expect(run.scratchFileSha256(`/concurrent-${name}.bin`, range.size)).toBe(run.truth(name).sha256);
    });

    test('guest RAM still holds the pattern after the boot', () => {
      expect(run.memorySha256(name)).toBe(run.truth(name).sha256);
    });
  });

  describe('bad input, one field at a time', () => {
    testSelftestTable(() => run, BAD_INPUT);

    test('the C selftest checks exactly this table', () => {
      expect(
        selftestRows(run)
          .map((r) => r.case)
          .sort(),
      ).toEqual(BAD_INPUT.map(([n]) => n).sort());
    });
  });

  test('5000 random ioctls: no crash, every call answered', () => {
    const fuzz = one<{ ok: boolean; calls: number; outcomes: Record<string, number> }>('fuzz');
    expect(fuzz.ok).toBe(true);
    const answered = Object.values(fuzz.outcomes).reduce((a, b) => a + b, 0);
    expect(answered).toBe(5000);
    expect(fuzz.outcomes.OK).toBeGreaterThan(0);
  });

  test('a hardware-poisoned page is written as zeros and counted, never handed to the disk', () => {
    const p = one<{ ok: boolean; bytes_poisoned: number; bytes_zero_copy: number; zeros: boolean }>('poison');
    expect(p).toMatchObject({ ok: true, bytes_poisoned: 4096, bytes_zero_copy: 0, zeros: true });
  });

  test('a signal stops a long write with EINTR and reports the partial progress', () => {
    const w = one<WriteResult>('alarm');
    expect(w.errno).toBe('EINTR');
    expect(w.bytes_written).toBeGreaterThan(0);
    expect(w.bytes_written).toBeLessThan(w.length);
    expect(w.bytes_written % 4096).toBe(0);
  });

  test('SIGKILL ends a long write promptly', () => {
    const k = one<{ rc: number; ms: number }>('kill');
    expect(k.rc).toBe(137);
    // 64 MiB at 16 MiB/s would take 4 s; one 4 MiB batch in flight takes 0.25 s.
    expect(k.ms).toBeLessThan(2000);
    expect(run.dmesg).toMatch(/physcap: write of 0x28000000\+0x4000000 interrupted after \d+ bytes/);
  });

  test('module counters add up', () => {
    const s = one<Record<string, number>>('stats');
    expect(s.zero_copy).toBeGreaterThan(2 * BOARD_RANGES.reduce((a, r) => a + r.size, 0));
    expect(s.interrupted).toBe(2);
    expect(s.adopted).toBe(256 * 2 ** 20);
  });

  test('the physcap CLI runs on the board and reads the module counters', () => {
    const cli = one<{ loaded: boolean; abiVersion: number; counters: Record<string, number> }>('cli');
    expect(cli).toMatchObject({ loaded: true, abiVersion: 4 });
    expect(cli.counters.bytes_adopted).toBe(256 * 2 ** 20);
    expect(cli.counters.bytes_zero_copy).toBe(one<Record<string, number>>('stats').zero_copy);
  });

  test('without adoption, the 256 MiB range without struct pages is bounced, and still exact', () => {
    const big = BOARD_RANGES.find((r) => r.name === 'big')!;
    const w = one<WriteResult>('bounce', 'big');
    expect(w).toMatchObject({ ok: true, bytes_written: big.size, bytes_bounced: big.size, bytes_zero_copy: 0 });
    expect(run.scratchFileSha256('/bounced-big.bin', big.size)).toBe(run.truth('big').sha256);
  });

  test('the module unloads cleanly, adopted pages released', () => {
    expect(one<{ ok: boolean }>('unload').ok).toBe(true);
  });

  test('under kernel lockdown /dev/physcap is refused, as /dev/mem is', () => {
    expect(one<{ ok: boolean; errno: string }>('lockdown', 'physcap')).toMatchObject({ ok: false, errno: 'EPERM' });
    expect(one<{ ok: boolean; errno: string }>('lockdown', 'devmem')).toMatchObject({ ok: false, errno: 'EPERM' });
  });

  test('dmesg has no WARN, BUG or Oops', () => {
    const trouble = run.dmesg.split('\n').filter((l) => DMESG_TROUBLE.test(l));
    expect(trouble).toEqual([]);
  });
});
