/**
 * The emulated PowerPC board, the question's kind of board: QEMU's generic
 * e500 machine (qemu-system-ppc -M ppce500, an e500v2 core, software
 * emulation) booting a small 6.1 kernel built from Debian's linux-source
 * (scripts/cross/trees.sh), 32-bit and big-endian, with 36-bit physical
 * addresses and highmem.  There is no Node and no shell on it: its
 * userland is harness/ppc/init.c (PID 1, runs the job's lines) and the static
 * physcap-client and physcap-selftest.
 *
 *   - guest RAM is a host file, so the host writes known patterns into the
 *     reserved ranges before boot and knows the true bytes;
 *   - the ranges are reserved the way a board's firmware does it, in the
 *     device tree's /reserved-memory (QEMU's generated tree, dumped with
 *     dumpdtb, the nodes added, booted with -dtb): the kernel keeps their
 *     struct pages and never touches the bytes;
 *   - three virtio disks, all cache=none: vda ext4 (for O_DIRECT files, read
 *     back on the host with debugfs), vdb raw, vdc raw and throttled (16 MiB/s
 *     writes, for the selftest's captures that must still be running when a
 *     signal or a DISARM arrives).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { memoryDir, runQemu } from '../board';
import { repoRoot } from '../paths';
import { sha256OfFileRange, writePattern } from '../patterns';

export interface PpcBoardParts {
  release: string;
  vmlinux: string;
  softdog: string;
  genInitCpio: string;
  module: string;
  client: string;
  selftest: string;
  init: string;
}

export interface PpcRange {
  name: string;
  start: number;
  size: number;
}

const MiB = 2 ** 20;

/**
 * One range in lowmem, one in highmem below 4 GiB, and one above 4 GiB,
 * where a physical address no longer fits an unsigned long: the reason the
 * board's kernel has PHYS_64BIT.
 */
export const PPC_RANGES: PpcRange[] = [
  { name: 'crashlog', start: 0x0800_0000, size: 3 * MiB + 20 * 1024 },
  { name: 'trace', start: 0xc000_0000, size: 16 * MiB },
  { name: 'high', start: 0x1_0800_0000, size: 8 * MiB },
];

export const PPC_MEMORY_MIB = 4608;

export function ppcBoardParts(): PpcBoardParts {
  const file = path.join(repoRoot(), 'build', 'ppc', 'board.json');
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: run "npm run build" first`);
  return JSON.parse(fs.readFileSync(file, 'utf8')) as PpcBoardParts;
}

export interface PpcStep {
  n: number;
  line: string;
  output: string;
  /** The program's exit code, or -errno for a built-in; undefined if it never ended. */
  rc?: number;
}

export class PpcBoardRun {
  constructor(
    readonly console: string,
    readonly steps: PpcStep[],
    readonly durationMs: number,
    readonly truth: Map<string, string>,
    private readonly workDir: string,
    private readonly memFile: string,
    readonly images: { disk: string; raw: string; slow: string; dump: string },
  ) {}

  /** The one step whose line starts with prefix. */
  step(prefix: string): PpcStep {
    const found = this.steps.filter((s) => s.line.startsWith(prefix));
    if (found.length !== 1) throw new Error(`${found.length} steps start with "${prefix}"\n${this.console.slice(-4000)}`);
    return found[0]!;
  }

  /** The last line of a step's output that is a JSON object. */
  json<T = Record<string, unknown>>(prefix: string): T {
    const s = this.step(prefix);
    const line = s.output
      .split('\n')
      .reverse()
      .find((l) => l.trim().startsWith('{'));
    if (!line) throw new Error(`step "${s.line}" printed no JSON:\n${s.output}`);
    return JSON.parse(line) as T;
  }

  memorySha256(name: string): string {
    const r = PPC_RANGES.find((x) => x.name === name)!;
    return sha256OfFileRange(this.memFile, r.start, r.size);
  }

  /** The SHA-256 of each chunkSize bytes of a range as guest RAM holds it now: what its chunk digests must be. */
  memoryChunks(name: string, chunkSize: number): string[] {
    const r = PPC_RANGES.find((x) => x.name === name)!;
    const out: string[] = [];
    for (let at = 0; at < r.size; at += chunkSize) out.push(sha256OfFileRange(this.memFile, r.start + at, Math.min(chunkSize, r.size - at)));
    return out;
  }

  /** A file the board wrote on its ext4 disk, copied out with debugfs (no guest code trusted). */
  extract(guestPath: string, hostPath: string): void {
    execFileSync('debugfs', ['-R', `dump -p ${guestPath} ${hostPath}`, this.images.disk], { stdio: ['ignore', 'ignore', 'pipe'] });
    if (!fs.existsSync(hostPath)) throw new Error(`debugfs could not copy ${guestPath} out of the board's disk`);
  }

  cleanup(): void {
    fs.rmSync(this.workDir, { recursive: true, force: true });
    fs.rmSync(path.dirname(this.memFile), { recursive: true, force: true });
  }
}

function run(cmd: string, args: string[], input?: string): Buffer {
  return execFileSync(cmd, args, { input, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], maxBuffer: 256 << 20 });
}

/** The initramfs: init, the C tools, the modules and the job, with /dev/console for init's output. */
function makeInitramfs(parts: PpcBoardParts, job: string, workDir: string): string {
  const jobFile = path.join(workDir, 'job');
  fs.writeFileSync(jobFile, job);
  const spec = [
    'dir /dev 0755 0 0',
    'nod /dev/console 0600 0 0 c 5 1',
    'dir /proc 0755 0 0',
    'dir /sys 0755 0 0',
    'dir /disk 0755 0 0',
    `file /init ${parts.init} 0755 0 0`,
    `file /physcap-client ${parts.client} 0755 0 0`,
    `file /physcap-selftest ${parts.selftest} 0755 0 0`,
    `file /physcap.ko ${parts.module} 0644 0 0`,
    `file /softdog.ko ${parts.softdog} 0644 0 0`,
    `file /job ${jobFile} 0644 0 0`,
  ].join('\n');
  const specFile = path.join(workDir, 'initramfs.spec');
  fs.writeFileSync(specFile, `${spec}\n`);
  const out = path.join(workDir, 'initramfs.cpio');
  fs.writeFileSync(out, run(parts.genInitCpio, [specFile]));
  return out;
}

function reservedMemoryDts(ranges: PpcRange[]): string {
  const cell2 = (n: number) => `0x${Math.floor(n / 2 ** 32).toString(16)} 0x${(n % 2 ** 32).toString(16)}`;
  const nodes = ranges.map((r) => `\t\t${r.name}@${r.start.toString(16)} {\n\t\t\treg = <${cell2(r.start)} ${cell2(r.size)}>;\n\t\t};`).join('\n');
  return `\n/ {\n\treserved-memory {\n\t\t#address-cells = <2>;\n\t\t#size-cells = <2>;\n\t\tranges;\n${nodes}\n\t};\n};\n`;
}

/** QEMU's arguments; extra machine options (dumpdtb=) go on -M. */
function qemuArgs(o: {
  parts: PpcBoardParts;
  memFile: string;
  memoryMiB: number;
  initramfs: string;
  images: { disk: string; raw: string; slow: string; dump: string };
  cmdline: string;
  machine?: string;
}): string[] {
  return [
    '-M',
    `ppce500,memory-backend=ram${o.machine ? `,${o.machine}` : ''}`,
    '-cpu',
    'e500v2',
    // One CPU: bringing up the second (spin-table) hangs under QEMU 7.2's
    // software emulation before init runs.  The kernel is SMP all the same.
    '-smp',
    '1',
    '-m',
    `${o.memoryMiB}M`,
    '-object',
    `memory-backend-file,id=ram,size=${o.memoryMiB}M,mem-path=${o.memFile},share=on`,
    '-kernel',
    o.parts.vmlinux,
    '-initrd',
    o.initramfs,
    '-append',
    o.cmdline,
    '-display',
    'none',
    '-nodefaults',
    '-serial',
    'stdio',
    '-no-reboot',
    '-drive',
    `if=none,id=disk,file=${o.images.disk},format=raw,cache=none`,
    '-device',
    'virtio-blk-pci,drive=disk',
    '-drive',
    `if=none,id=raw,file=${o.images.raw},format=raw,cache=none`,
    '-device',
    'virtio-blk-pci,drive=raw',
    '-drive',
    `if=none,id=slow,file=${o.images.slow},format=raw,cache=none,throttling.bps-write=${16 << 20}`,
    '-device',
    'virtio-blk-pci,drive=slow',
    // /dev/vdd: the board's dump partition, for armed cores.
    '-drive',
    `if=none,id=dump,file=${o.images.dump},format=raw,cache=none`,
    '-device',
    'virtio-blk-pci,drive=dump',
  ];
}

/** Parses init's step frames out of the console text. */
export function parseSteps(text: string): PpcStep[] {
  const steps: PpcStep[] = [];
  let current: PpcStep | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const begin = /^PHYSCAP-STEP (\d+) (.*)$/.exec(raw);
    const end = /^PHYSCAP-STEP-END (\d+) (-?\d+)$/.exec(raw);
    if (begin) {
      current = { n: Number(begin[1]), line: begin[2]!, output: '' };
      steps.push(current);
    } else if (end && current && Number(end[1]) === current.n) {
      current.rc = Number(end[2]);
      current = undefined;
    } else if (current) {
      current.output += `${raw}\n`;
    }
  }
  return steps;
}

export interface PpcBoardOptions {
  /** init's job: one step per line (harness/ppc/init.c). */
  job: string;
  memoryMiB?: number;
  ranges?: PpcRange[];
  seed?: string;
  timeoutMs?: number;
  diskMiB?: number;
  rawMiB?: number;
  /** The dump partition, /dev/vdd (default 64 MiB). */
  dumpMiB?: number;
  onConsole?: (line: string) => void;
}

/** Boots the board, runs the job, and returns what happened; the caller cleans up. */
export async function bootPpcBoard(o: PpcBoardOptions): Promise<PpcBoardRun> {
  const parts = ppcBoardParts();
  for (const [what, file] of Object.entries(parts)) {
    if (what !== 'release' && !fs.existsSync(file)) throw new Error(`${what} ${file} is missing: run "npm run build" first`);
  }
  const memoryMiB = o.memoryMiB ?? PPC_MEMORY_MIB;
  const ranges = o.ranges ?? PPC_RANGES;
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'physcap-ppc-'));
  const memFile = path.join(fs.mkdtempSync(path.join(memoryDir(memoryMiB), 'physcap-ppc-ram-')), 'ram');
  try {
    const images = {
      disk: path.join(workDir, 'disk.img'),
      raw: path.join(workDir, 'raw.img'),
      slow: path.join(workDir, 'slow.img'),
      dump: path.join(workDir, 'dump.img'),
    };
    fs.writeFileSync(images.disk, '');
    fs.truncateSync(images.disk, (o.diskMiB ?? 256) * MiB);
    run('mkfs.ext4', ['-F', '-q', '-E', 'lazy_itable_init=1,lazy_journal_init=1', images.disk]);
    fs.writeFileSync(images.raw, '');
    fs.truncateSync(images.raw, (o.rawMiB ?? 64) * MiB);
    fs.writeFileSync(images.slow, '');
    fs.truncateSync(images.slow, 128 * MiB);
    fs.writeFileSync(images.dump, '');
    fs.truncateSync(images.dump, (o.dumpMiB ?? 64) * MiB);

    fs.writeFileSync(memFile, '');
    fs.truncateSync(memFile, memoryMiB * MiB);
    const seed = o.seed ?? `${Date.now()}-${Math.random()}`;
    const truth = new Map<string, string>();
    const fd = fs.openSync(memFile, 'r+');
    try {
      for (const r of ranges) truth.set(r.name, writePattern(fd, r.start, r.size, seed, r.name));
    } finally {
      fs.closeSync(fd);
    }

    const initramfs = makeInitramfs(parts, o.job, workDir);
    const board = { parts, memFile, memoryMiB, initramfs, images, cmdline: 'console=ttyS0 panic=-1 oops=panic loglevel=4' };
    // QEMU's own device tree for exactly these arguments (initrd placement,
    // bootargs), plus the board firmware's reserved ranges.
    const dtb = path.join(workDir, 'board.dtb');
    const generated = path.join(workDir, 'generated.dtb');
    run('qemu-system-ppc', qemuArgs({ ...board, machine: `dumpdtb=${generated}` }));
    const dts = run('dtc', ['-q', '-I', 'dtb', '-O', 'dts', generated]).toString('utf8') + reservedMemoryDts(ranges);
    fs.writeFileSync(dtb, run('dtc', ['-q', '-I', 'dts', '-O', 'dtb', '-o', '-'], dts));

    const started = Date.now();
    const text = await runQemu([...qemuArgs(board), '-dtb', dtb], o.timeoutMs ?? 5 * 60_000, o.onConsole, 'qemu-system-ppc');
    const steps = parseSteps(text);
    if (!text.includes('PHYSCAP-BOARD-DONE')) throw new Error(`the PowerPC board stopped before its job ended\n${text.slice(-6000)}`);
    return new PpcBoardRun(text, steps, Date.now() - started, truth, workDir, memFile, images);
  } catch (err) {
    fs.rmSync(workDir, { recursive: true, force: true });
    fs.rmSync(path.dirname(memFile), { recursive: true, force: true });
    throw err;
  }
}
