/**
 * The question's board, emulated: a 32-bit big-endian PowerPC e500 with
 * 36-bit physical addresses and highmem (qemu-system-ppc -M ppce500, a
 * 6.1 kernel built from Debian's linux-source), no Node and no shell.  One
 * boot; the static physcap-client and physcap-selftest do the work:
 *
 *   - physcap.ko loads after softdog and selects itself as the watchdog's
 *     pretimeout governor;
 *   - `capture` writes an ELF core of three reserved ranges (lowmem,
 *     highmem, and above 4 GiB) to an O_DIRECT file on ext4, zero-copy;
 *   - `write` puts two ranges on the raw disk, zero-copy;
 *   - the selftest's table (WRITE, mmap, ARM/DISARM/events, the firing
 *     watchdog) runs on a 32-bit big-endian kernel.
 *
 * On the host, every byte is compared with the ground truth written into
 * the guest's RAM file before boot; the core is read with physcap's own ELF
 * reader (big-endian, EM_PPC) and imported, verified and exported (ELF stays
 * big-endian, LiME is little-endian).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { readBoardDigest } from '../../agent/src/capture/board-digest';
import { parseElfCoreFile, PT_LOAD } from '../../agent/src/container/elf';
import type { Manifest } from '../../agent/src/manifest/types';
import { hex } from '../../harness/layout';
import { bootPpcBoard, PPC_RANGES, PpcBoardRun } from '../../harness/ppc/board';
import { physcap } from '../support/cli';
import { regionChunks, sha256, sha256File } from '../support/hash';
import { removeDir, tempDir } from '../support/tmp';

const EM_PPC = 20;
const range = (name: string) => PPC_RANGES.find((r) => r.name === name)!;
const crashlog = range('crashlog');
const trace = range('trace');
const high = range('high');
const TOTAL = PPC_RANGES.reduce((a, r) => a + r.size, 0);

const RANGES_ARGS = PPC_RANGES.map((r) => `${r.name} ${hex(r.start)} ${hex(r.size)}`).join(' ');

const REARM = `run /physcap-client arm 0 /dev/vdd ${hex(trace.start)} ${hex(trace.size)} --core`;

const JOB = `# physcap on the PowerPC board (harness/ppc/init.c runs this)
insmod /softdog.ko soft_noboot=1
insmod /physcap.ko
write /sys/class/watchdog/watchdog0/pretimeout_governor physcap
run /physcap-client info
cat /proc/iomem
mount /dev/vda /disk ext4
run /physcap-client capture /disk/board.core ${RANGES_ARGS}
run /physcap-client write ${hex(trace.start)} ${hex(trace.size)} /dev/vdb --existing
run /physcap-client write ${hex(high.start)} ${hex(high.size)} /dev/vdb --existing --offset ${hex(trace.size)}
run /physcap-selftest selftest --phys ${hex(crashlog.start)} --scratch /disk --blockdev /dev/vdb --watchdog /dev/watchdog0 --watchdog-id 0 --slow /dev/vdc --race-phys ${hex(trace.start)} --race-len ${hex(trace.size)}
run /physcap-client capture /disk/builtin.core ${RANGES_ARGS} --digest-driver builtin
run /physcap-client capture /disk/missing-driver.core ${RANGES_ARGS} --digest-driver sha256-nosuch
run /physcap-selftest kill-after "seconds": -- /physcap-client capture /disk/killed.core ${RANGES_ARGS} --digest-driver builtin
run /physcap-client digest /disk/killed.core
run /physcap-selftest watchdog-arm --timeout 40 --pretimeout 30 --hold 0 --no-stop
run /physcap-client arm 0 /dev/vdd ${PPC_RANGES.map((r) => `${hex(r.start)} ${hex(r.size)}`).join(' ')} --core --wait --digest-out /disk/armed-wait.digest
run /physcap-client digest /dev/vdd --copy-to /disk/armed.core
run /physcap-client arm 0 /dev/vdd ${hex(trace.start)} ${hex(trace.size)} --core
umount /disk
`;

interface CaptureOut {
  ok: boolean;
  errno: string;
  machine: number;
  big_endian: boolean;
  vmcoreinfo: boolean;
  kernel_map: boolean;
  image_alias: boolean;
  bytes: number;
  bytes_zero_copy: number;
  regions: Array<{ name: string; phys: string; vaddr: string; length: number; offset: number; bytes_zero_copy: number; bytes_bounced: number }>;
}

describe('the emulated PowerPC e500 board (32-bit, big-endian, 36-bit physical)', () => {
  let run: PpcBoardRun;
  let tmp: string;
  let core: string;

  beforeAll(async () => {
    tmp = tempDir('ppc-test');
    const progress = process.env.PHYSCAP_BOARD_PROGRESS === '1' ? (l: string) => process.stderr.write(`ppc| ${l}\n`) : undefined;
    run = await bootPpcBoard({ job: JOB, onConsole: progress });
    core = path.join(tmp, 'board.core');
    for (const f of [
      'killed.core',
      'killed.core.digest',
      'board.core',
      'board.core.digest',
      'builtin.core',
      'builtin.core.digest',
      'missing-driver.core',
      'missing-driver.core.digest',
      'armed.core',
      'armed.core.digest',
      'armed-wait.digest',
    ])
      run.extract(`/${f}`, path.join(tmp, f));
  }, 20 * 60_000);

  afterAll(() => {
    run?.cleanup();
    if (tmp) removeDir(tmp);
  });

  test('every step of the job ran and succeeded', () => {
    // Refused by design: arming over the core the kernel wrote (its own test below).
    const failed = run.steps.filter((s) => s.rc !== 0 && s.line !== REARM).map((s) => `${s.line} → ${s.rc}\n${s.output}`);
    expect(failed).toEqual([]);
    expect(run.steps.length).toBe(JOB.split('\n').filter((l) => l && !l.startsWith('#')).length);
  });

  test('the module reports a physical address space beyond 4 GiB on this 32-bit kernel', () => {
    const info = run.json<{ ok: boolean; abi_version: number; page_size: number; phys_limit: number }>('run /physcap-client info');
    expect(info.ok).toBe(true);
    expect(info.page_size).toBe(4096);
    expect(info.phys_limit).toBeGreaterThan(2 ** 32);
  });

  test('KERNEL_MAP on 32-bit PowerPC: lowmem mapped at PAGE_OFFSET, the kernel image inside it (no second mapping)', () => {
    const { kernel_map: km } = run.json<{ kernel_map: Record<string, string> }>('run /physcap-client info');
    expect(km).toMatchObject({ direct_map_virt: '0xc0000000', direct_map_start: '0x0', image_offset: '0xc0000000' });
    // Lowmem ends below the highmem range the job captures.
    expect(BigInt(km.direct_map_end!) > BigInt(PPC_RANGES[0]!.start + PPC_RANGES[0]!.size)).toBe(true);
    expect(BigInt(km.direct_map_end!) <= BigInt(PPC_RANGES[1]!.start)).toBe(true);
  });

  test('capture: an ELF core in the board’s byte order, every byte zero-copy', () => {
    const out = run.json<CaptureOut>('run /physcap-client capture /disk/board.core');
    expect(out).toMatchObject({ ok: true, errno: 'OK', machine: EM_PPC, big_endian: true, vmcoreinfo: true, bytes: TOTAL, bytes_zero_copy: TOTAL });
    expect(out.regions.map((r) => [r.name, r.phys, r.length, r.bytes_bounced])).toEqual(PPC_RANGES.map((r) => [r.name, hex(r.start), r.size, 0]));
    // The lowmem range is RAM the kernel maps (reserved-memory without
    // no-map stays System RAM): PAGE_OFFSET + p, as crash and makedumpfile
    // read a ppc32 vmcore.  Highmem and above 4 GiB are not mapped there.
    expect(out).toMatchObject({ kernel_map: true, image_alias: false });
    expect(out.regions.map((r) => r.vaddr)).toEqual([hex(0xc000_0000 + PPC_RANGES[0]!.start), '0x0', '0x0']);
  });

  test('the core, read on the host: big-endian EM_PPC, PT_LOAD p_paddr above 4 GiB, bytes equal the ground truth', () => {
    const parsed = parseElfCoreFile(core);
    expect(parsed.target).toEqual({ machine: EM_PPC, bigEndian: true });
    const loads = parsed.segments.filter((s) => s.type === PT_LOAD);
    expect(loads.map((s) => [s.paddr, s.filesz])).toEqual(PPC_RANGES.map((r) => [BigInt(r.start), BigInt(r.size)]));
    expect(loads.map((s) => [s.vaddr, s.align])).toEqual([
      [0xc000_0000n + BigInt(PPC_RANGES[0]!.start), 0n],
      [0n, 0n],
      [0n, 0n],
    ]);
    for (const [i, r] of PPC_RANGES.entries()) {
      expect(sha256File(core, Number(loads[i]!.offset), r.size)).toBe(run.truth.get(r.name));
    }
    const vmcoreinfo = parsed.notes.find((n) => n.name === 'VMCOREINFO')?.desc.toString('utf8') ?? '';
    expect(vmcoreinfo).toMatch(/^OSRELEASE=6\.1\./m);
    const note = JSON.parse(parsed.notes.find((n) => n.name === 'PHYSCAP')!.desc.toString('utf8')) as { tool: string; machine: string };
    expect(note).toMatchObject({ tool: 'physcap-client', machine: 'ppc' });
  });

  test('write to the raw disk: highmem and above-4-GiB ranges, zero-copy, bytes equal the ground truth', () => {
    const writes = run.steps
      .filter((s) => s.line.startsWith('run /physcap-client write'))
      .map((s) => JSON.parse(s.output.trim().split('\n').pop()!) as { ok: boolean; bytes_zero_copy: number; bytes_bounced: number });
    expect(writes.map((w) => [w.ok, w.bytes_zero_copy, w.bytes_bounced])).toEqual([
      [true, trace.size, 0],
      [true, high.size, 0],
    ]);
    expect(sha256File(run.images.raw, 0, trace.size)).toBe(run.truth.get('trace'));
    expect(sha256File(run.images.raw, trace.size, high.size)).toBe(run.truth.get('high'));
  });

  test('the reserved ranges in guest RAM still hold the ground truth (nothing wrote them)', () => {
    for (const r of PPC_RANGES) expect(run.memorySha256(r.name)).toBe(run.truth.get(r.name));
  });

  test('the selftest table passes on a 32-bit big-endian kernel', () => {
    const rows = run
      .step('run /physcap-selftest selftest')
      .output.split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { case?: string; pass?: boolean; expected?: string; actual?: string })
      .filter((r) => r.case);
    expect(rows.length).toBeGreaterThan(90);
    expect(rows.filter((r) => !r.pass)).toEqual([]);
    // The watchdog really fired on this board: an armed capture ran in its pretimeout.
    expect(rows.filter((r) => r.case!.startsWith('firing:')).length).toBeGreaterThan(3);
    // Its stamp, written by this big-endian kernel, reads little-endian as the ABI says.
    expect(rows.find((r) => r.case === 'firing: the stamp on the disk says done: this arm, every byte, the check')).toMatchObject({ pass: true });
  });

  test('on the host: import, verify, export — ELF stays big-endian EM_PPC, LiME is little-endian', async () => {
    const dest = path.join(tmp, 'captures');
    const imp = await physcap(['import', core, '--dest', dest, '--name', 'ppc-board', '--json']);
    expect(imp.code).toBe(0);
    const out = JSON.parse(imp.stdout) as { id: string; byteOrder: string; location: string };
    expect(out.byteOrder).toBe('big');
    const m = JSON.parse(fs.readFileSync(path.join(out.location, 'manifest.json'), 'utf8')) as Manifest;
    expect(m.regions.map((r) => [r.name, regionChunks(out.location, r)])).toEqual(
      PPC_RANGES.map((r) => [r.name, run.memoryChunks(r.name, m.regions[0]!.chunkSize)]),
    );
    expect((await physcap(['verify', out.id, '--dest', dest])).code).toBe(0);

    const elf = path.join(tmp, 'export.elf');
    expect((await physcap(['export', out.id, '--dest', dest, '--format', 'elf', '-o', elf])).code).toBe(0);
    const head = fs.readFileSync(elf).subarray(0, 20);
    expect([head[4], head[5], head.readUInt16BE(18)]).toEqual([2, 2, EM_PPC]); // ELFCLASS64, ELFDATA2MSB, EM_PPC

    const lime = path.join(tmp, 'export.lime');
    expect((await physcap(['export', out.id, '--dest', dest, '--format', 'lime', '-o', lime])).code).toBe(0);
    const fd = fs.openSync(lime, 'r');
    try {
      let at = 0;
      for (const r of PPC_RANGES) {
        const h = Buffer.alloc(32);
        fs.readSync(fd, h, 0, 32, at);
        expect([h.readUInt32LE(0), h.readBigUInt64LE(8), h.readBigUInt64LE(16)]).toEqual([0x4c694d45, BigInt(r.start), BigInt(r.start + r.size - 1)]);
        expect(sha256File(lime, at + 32, r.size)).toBe(run.truth.get(r.name));
        at += 32 + r.size;
      }
    } finally {
      fs.closeSync(fd);
    }
  });

  test("capture's digest: read back after the core is durable, hashed by the board's best SHA-256 driver through AF_ALG, equal to sha256sum of the core", () => {
    const out = run.json<CaptureOut & { seconds: number; digest: { ok: boolean; sha256: string; via: string; driver: string; seconds: number } }>(
      'run /physcap-client capture /disk/board.core',
    );
    const d = readBoardDigest(path.join(tmp, 'board.core.digest'));
    expect(d).toMatchObject({ bytes: fs.statSync(core).size, sha256: sha256File(core), via: 'af_alg', fallback: null });
    // e500's own: the SPE code, not the generic C (a board with a SEC engine would name talitos here).
    expect(d.driver).toBe('sha256-ppc-spe');
    expect(out.digest).toMatchObject({ ok: true, sha256: d.sha256, via: 'af_alg', driver: d.driver });
    // The durable time is the write's own; the digest came after it.
    expect(d.durableSeconds).toBeCloseTo(out.seconds, 5);
    expect(d.digestSeconds).toBeGreaterThan(0);
  });

  test('the fallback, asked for or when the driver is missing, is the portable SHA-256, and the digest file says why', () => {
    const builtin = readBoardDigest(path.join(tmp, 'builtin.core.digest'));
    expect(builtin).toMatchObject({
      via: 'builtin',
      driver: 'physcap-sha256-c',
      fallback: 'builtin asked for',
      sha256: sha256File(path.join(tmp, 'builtin.core')),
    });
    const missing = readBoardDigest(path.join(tmp, 'missing-driver.core.digest'));
    expect(missing).toMatchObject({ via: 'builtin', driver: 'physcap-sha256-c', sha256: sha256File(path.join(tmp, 'missing-driver.core')) });
    expect(missing.fallback).toBe('AF_ALG sha256-nosuch: ENOENT');
  });

  test('kill -9 between durable and digested: the core is whole, no digest file was left, and `digest` finishes it', () => {
    const killed = run.json<{ marker_seen: boolean; killed: boolean; output: string }>('run /physcap-selftest kill-after');
    expect(killed).toMatchObject({ marker_seen: true, killed: true });
    expect(killed.output).not.toContain('digest');
    // The digest file is written whole and never over one: had the killed client left one, this step would have failed.
    const done = run.json<{ ok: boolean; armed: boolean; digest: { ok: boolean; sha256: string } }>('run /physcap-client digest /disk/killed.core');
    const file = path.join(tmp, 'killed.core');
    expect(done).toMatchObject({ ok: true, armed: false, digest: { ok: true, sha256: sha256File(file) } });
    expect(readBoardDigest(`${file}.digest`).sha256).toBe(sha256File(file));
    const loads = parseElfCoreFile(file).segments.filter((s) => s.type === PT_LOAD);
    for (const [i, r] of PPC_RANGES.entries()) expect(sha256File(file, Number(loads[i]!.offset), r.size)).toBe(run.truth.get(r.name));
  });

  test('arm --core on the dump partition, fired by a real pretimeout: an ELF core of the ground truth, its stamp, and digests equal to sha256sum of its bytes', async () => {
    const arm = run
      .step(`run /physcap-client arm 0 /dev/vdd ${hex(crashlog.start)}`)
      .output.split('\n')
      // The kernel's own lines (the pretimeout) share the console.
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(arm[0]).toMatchObject({ ok: true, core: true, ranges: PPC_RANGES.length });
    expect(arm.map((l) => l.event).filter(Boolean)).toEqual(['pretimeout', 'capture_done']);
    const done = arm.find((l) => l.event === 'capture_done')!;
    expect(done).toMatchObject({ bytes_written: TOTAL, bytes_zero_copy: TOTAL, bytes_bounced: 0 });
    const waited = arm[arm.length - 1] as { digest: { ok: boolean; sha256: string; bytes: number } };
    expect(waited.digest.ok).toBe(true);

    // The partition as the host sees it: an ELF core of the ranges, byte for byte.
    const parsed = parseElfCoreFile(path.join(tmp, 'armed.core'));
    expect(parsed.target).toEqual({ machine: EM_PPC, bigEndian: true });
    const loads = parsed.segments.filter((s) => s.type === PT_LOAD);
    for (const [i, r] of PPC_RANGES.entries()) {
      expect(sha256File(run.images.dump, Number(loads[i]!.offset), r.size)).toBe(run.truth.get(r.name));
    }
    // Both digests, the arming client's and the digest verb's (read off the disk only, as after a reset), are of these bytes.
    const partition = sha256File(run.images.dump, 0, waited.digest.bytes);
    expect(waited.digest.sha256).toBe(partition);
    expect(readBoardDigest(path.join(tmp, 'armed-wait.digest')).sha256).toBe(partition);
    expect(readBoardDigest(path.join(tmp, 'armed.core.digest'))).toMatchObject({ sha256: partition, bytes: waited.digest.bytes });
    expect(sha256File(path.join(tmp, 'armed.core'))).toBe(partition);

    // The host takes it: the board's digest checked, the stamp read, the bytes the ground truth.
    const dest = path.join(tmp, 'armed-captures');
    const imp = await physcap(['import', path.join(tmp, 'armed.core'), '--dest', dest, '--json']);
    expect(imp.stderr).toBe('');
    expect(imp.code).toBe(0);
    const { location } = JSON.parse(imp.stdout) as { location: string };
    const m = JSON.parse(fs.readFileSync(path.join(location, 'manifest.json'), 'utf8')) as Manifest;
    expect(m.triggers[0]!.detail).toMatchObject({ boardDigest: { sha256: partition, matched: true }, stamp: { bytesWritten: TOTAL } });
    expect(m.regions.map((r) => regionChunks(location, r))).toEqual(PPC_RANGES.map((r) => run.memoryChunks(r.name, m.regions[0]!.chunkSize)));
  });

  test('arming over the core the kernel wrote is refused: the dump partition keeps it', () => {
    const step = run.step(REARM);
    expect(step.rc).toBe(1);
    expect(run.json<{ ok: boolean; errno: string }>(REARM)).toMatchObject({ ok: false, errno: 'EEXIST' });
    expect(sha256File(run.images.dump, 0, fs.statSync(path.join(tmp, 'armed.core')).size)).toBe(sha256File(path.join(tmp, 'armed.core')));
  });

  test('the digests are not trivially equal (the patterns differ per range)', () => {
    const all = PPC_RANGES.map((r) => run.truth.get(r.name));
    expect(new Set(all).size).toBe(PPC_RANGES.length);
    expect(all).not.toContain(sha256(Buffer.alloc(trace.size)));
  });
});
