/**
 * The emulated board: a Debian kernel booted in QEMU (software emulation),
 * with
 *   - the guest's RAM in a host file, so the host can place known patterns
 *     in memmap=-reserved ranges before boot and check them after;
 *   - the host's root filesystem shared read-only over 9p as the guest's
 *     root, so node, the addon, the agent and this checkout run unchanged;
 *   - three virtio disks: vda ext4 (scratch), vdb raw, vdc raw and throttled
 *     (for slow writes that signals can interrupt), all with cache=none so
 *     the host's page cache flatters no path;
 *   - a "job" share through which the guest returns the job's exit code,
 *     output and dmesg.
 * harness/init.sh is the guest's PID 1; harness/job.ts has the head jobs
 * start with.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';

import { artifacts, KernelSpec } from './paths';
import { sha256OfFileRange, writePattern } from './patterns';

export interface ReservedRange {
  /** A short name: the pattern's identity and the job's variable suffix. */
  name: string;
  /** Guest physical address; page-aligned. */
  start: number;
  size: number;
}

export interface BoardOptions {
  kernel: KernelSpec;
  /** Shell script run as root in the guest (a shebang line picks the shell). */
  job: string;
  memoryMiB?: number;
  reserved?: ReservedRange[];
  /** Seed of the ground-truth patterns; default: random per boot. */
  seed?: string;
  /** Whole boot, job included. */
  timeoutMs?: number;
  extraCmdline?: string[];
  scratchMiB?: number;
  rawMiB?: number;
  slowMiB?: number;
  /** Write throttle of the slow disk, bytes per second. */
  slowWriteBps?: number;
  /**
   * Fill the scratch and raw images with zeros on the host first.  Sparse
   * images make the host allocate blocks during the guest's writes and turn
   * every guest fsync into a host journal commit: fine for tests, but it
   * adds the same large constant to every case a benchmark compares.
   */
  preallocate?: boolean;
  /** Every console line as it arrives (progress for long runs). */
  onConsole?: (line: string) => void;
}

export interface GroundTruth extends ReservedRange {
  sha256: string;
}

export class BoardError extends Error {
  constructor(
    message: string,
    readonly consoleTail: string,
    /** Whether init had started the job when the board failed. */
    readonly jobStarted = true,
  ) {
    super(`${message}\n--- last console lines ---\n${consoleTail}`);
    this.name = 'BoardError';
  }
}

const DEFAULTS = {
  memoryMiB: 1536,
  timeoutMs: 10 * 60_000,
  scratchMiB: 2048,
  rawMiB: 768,
  slowMiB: 256,
  slowWriteBps: 16 << 20,
};

/** Where guest RAM lives: tmpfs when it has room, else the temp directory. */
export function memoryDir(memoryMiB: number): string {
  try {
    const st = fs.statfsSync('/dev/shm');
    if (st.bavail * st.bsize > (memoryMiB + 1024) * 2 ** 20) return '/dev/shm';
  } catch {
    /* no /dev/shm */
  }
  return os.tmpdir();
}

function memmapArg(r: ReservedRange): string {
  return `memmap=0x${r.size.toString(16)}$0x${r.start.toString(16)}`;
}

function tail(text: string, lines: number): string {
  return text.split('\n').slice(-lines).join('\n');
}

export class BoardRun {
  constructor(
    readonly exitCode: number,
    /** The job's stdout and stderr. */
    readonly output: string,
    readonly dmesg: string,
    readonly console: string,
    readonly durationMs: number,
    readonly groundTruth: GroundTruth[],
    private readonly workDir: string,
    private readonly memFile: string,
    readonly images: { scratch: string; raw: string; slow: string },
  ) {}

  truth(name: string): GroundTruth {
    const t = this.groundTruth.find((g) => g.name === name);
    if (!t) throw new Error(`no reserved range named ${name}`);
    return t;
  }

  /** SHA-256 of a reserved range as guest RAM holds it now (after the boot). */
  memorySha256(name: string): string {
    const t = this.truth(name);
    return sha256OfFileRange(this.memFile, t.start, t.size);
  }

  /** SHA-256 of `size` bytes from `offset` into a reserved range, as guest RAM holds them now. */
  memorySliceSha256(name: string, offset: number, size: number): string {
    return sha256OfFileRange(this.memFile, this.truth(name).start + offset, size);
  }

  /** The SHA-256 of each chunkSize bytes of a reserved range as guest RAM holds it now: what its chunk digests must be. */
  memoryChunks(name: string, chunkSize: number): string[] {
    const size = this.truth(name).size;
    const out: string[] = [];
    for (let at = 0; at < size; at += chunkSize) out.push(this.memorySliceSha256(name, at, Math.min(chunkSize, size - at)));
    return out;
  }

  /** SHA-256 of a slice of the raw disk (vdb). */
  rawSha256(offset: number, size: number): string {
    return sha256OfFileRange(this.images.raw, offset, size);
  }

  /**
   * SHA-256 of a file the guest wrote on the scratch disk, read on the
   * host with debugfs from the ext4 image: no guest code is trusted.
   */
  scratchFileSha256(guestPath: string, expectedSize: number): string {
    const out = path.join(this.workDir, `extract-${path.basename(guestPath)}`);
    execFileSync('debugfs', ['-R', `dump -p ${guestPath} ${out}`, this.images.scratch], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    try {
      const size = fs.statSync(out).size;
      if (size !== expectedSize) throw new Error(`${guestPath}: ${size} bytes, expected ${expectedSize}`);
      return sha256OfFileRange(out, 0, size);
    } finally {
      fs.rmSync(out, { force: true });
    }
  }

  /** Lines of the job's output that start with "@@key ", parsed as JSON after the key. */
  records<T = Record<string, unknown>>(key: string): Array<{ label: string; value: T }> {
    const out: Array<{ label: string; value: T }> = [];
    for (const line of this.output.split('\n')) {
      const m = /^@@(\S+)\s+(\S*)\s*(\{.*\})\s*$/.exec(line);
      if (!m || m[1] !== key) continue;
      out.push({ label: m[2] ?? '', value: JSON.parse(m[3] ?? '{}') as T });
    }
    return out;
  }

  /** The one record with this key and label; throws, with the job's output, unless there is exactly one. */
  record<T = Record<string, unknown>>(key: string, label = '-'): T {
    const found = this.records<T>(key).filter((r) => r.label === label);
    if (found.length !== 1) throw new Error(`expected one @@${key} ${label} record, found ${found.length}\n${this.output}`);
    return found[0]!.value;
  }

  cleanup(): void {
    fs.rmSync(this.workDir, { recursive: true, force: true });
    fs.rmSync(path.dirname(this.memFile), { recursive: true, force: true });
  }
}

function makeImage(file: string, mib: number, preallocate: boolean): void {
  if (!preallocate) {
    fs.writeFileSync(file, '');
    fs.truncateSync(file, mib * 2 ** 20);
    return;
  }
  const fd = fs.openSync(file, 'w');
  try {
    const zeros = Buffer.alloc(16 << 20);
    for (let done = 0; done < mib * 2 ** 20; done += zeros.length) fs.writeSync(fd, zeros);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function makeImages(workDir: string, o: Required<Pick<BoardOptions, 'scratchMiB' | 'rawMiB' | 'slowMiB' | 'preallocate'>>): BoardRun['images'] {
  const images = {
    scratch: path.join(workDir, 'scratch.img'),
    raw: path.join(workDir, 'raw.img'),
    slow: path.join(workDir, 'slow.img'),
  };
  makeImage(images.scratch, o.scratchMiB, o.preallocate);
  execFileSync('mkfs.ext4', ['-F', '-q', '-E', 'lazy_itable_init=1,lazy_journal_init=1', images.scratch], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  makeImage(images.raw, o.rawMiB, o.preallocate);
  makeImage(images.slow, o.slowMiB, false);
  return images;
}

function placePatterns(memFile: string, memoryBytes: number, reserved: ReservedRange[], seed: string): GroundTruth[] {
  fs.writeFileSync(memFile, '');
  fs.truncateSync(memFile, memoryBytes);
  const fd = fs.openSync(memFile, 'r+');
  try {
    return reserved.map((r) => {
      if (r.start % 4096 || r.size % 4096 || r.start + r.size > memoryBytes) {
        throw new Error(`reserved range ${r.name} must be page-aligned and inside guest RAM`);
      }
      return { ...r, sha256: writePattern(fd, r.start, r.size, seed, r.name) };
    });
  } finally {
    fs.closeSync(fd);
  }
}

function qemuArgs(o: BoardOptions, memFile: string, jobDir: string, images: BoardRun['images']): string[] {
  const memoryMiB = o.memoryMiB ?? DEFAULTS.memoryMiB;
  const { initramfs } = artifacts(o.kernel);
  const kvm = process.env.PHYSCAP_VM_KVM === '1';
  const cmdline = ['console=ttyS0', 'quiet', 'panic=-1', 'oops=panic', 'mitigations=off', ...(o.reserved ?? []).map(memmapArg), ...(o.extraCmdline ?? [])];
  const slowBps = o.slowWriteBps ?? DEFAULTS.slowWriteBps;
  return [
    // No 5-level paging under emulation: no board has it, and it is the
    // least exercised path of QEMU's x86 emulation.
    ...(kvm ? ['-enable-kvm', '-cpu', 'host'] : ['-cpu', 'max,la57=off']),
    '-machine',
    'pc,memory-backend=ram',
    '-smp',
    '2',
    '-m',
    `${memoryMiB}M`,
    '-object',
    `memory-backend-file,id=ram,size=${memoryMiB}M,mem-path=${memFile},share=on`,
    '-kernel',
    o.kernel.vmlinuz,
    '-initrd',
    initramfs,
    '-append',
    cmdline.join(' '),
    '-display',
    'none',
    '-nodefaults',
    '-serial',
    'stdio',
    '-no-reboot',
    '-virtfs',
    'local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap',
    '-virtfs',
    `local,path=${jobDir},mount_tag=job,security_model=none`,
    '-drive',
    `file=${images.scratch},format=raw,if=virtio,cache=none`,
    '-drive',
    `file=${images.raw},format=raw,if=virtio,cache=none`,
    '-drive',
    `file=${images.slow},format=raw,if=virtio,cache=none,throttling.bps-write=${slowBps}`,
  ];
}

/** init.sh prints this just before it starts the job. */
const JOB_START = 'PHYSCAP-BOARD-JOB-START';

/**
 * Boots the board, runs the job, powers off.  Resolves when the job ran to
 * its end, whatever its exit code; rejects with a BoardError (and the
 * console's last lines) when the board itself failed or timed out.
 *
 * A board that dies before the job even starts (seen once in many boots: a
 * panic in early boot under software emulation, before any physcap code
 * ran) is booted once more, loudly.  A failure once the job has started is
 * never retried: that could be physcap's.
 */
export async function bootBoard(o: BoardOptions): Promise<BoardRun> {
  try {
    return await bootOnce(o);
  } catch (err) {
    if (!(err instanceof BoardError) || err.jobStarted) throw err;
    process.stderr.write(`physcap board: the board failed before the job started; booting once more.\n${err.message}\n`);
    return bootOnce(o);
  }
}

async function bootOnce(o: BoardOptions): Promise<BoardRun> {
  const memoryMiB = o.memoryMiB ?? DEFAULTS.memoryMiB;
  const timeoutMs = o.timeoutMs ?? DEFAULTS.timeoutMs;
  for (const [what, file] of Object.entries({ kernel: o.kernel.vmlinuz, initramfs: artifacts(o.kernel).initramfs })) {
    if (!fs.existsSync(file)) throw new Error(`${what} ${file} is missing: run "npm run build" first`);
  }

  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'physcap-board-'));
  const memFile = path.join(fs.mkdtempSync(path.join(memoryDir(memoryMiB), 'physcap-ram-')), 'ram');
  const jobDir = path.join(workDir, 'job');
  fs.mkdirSync(jobDir);
  const job = o.job.startsWith('#!') ? o.job : `#!/bin/sh\n${o.job}`;
  fs.writeFileSync(path.join(jobDir, 'job.sh'), job, { mode: 0o755 });

  try {
    const images = makeImages(workDir, {
      scratchMiB: o.scratchMiB ?? DEFAULTS.scratchMiB,
      rawMiB: o.rawMiB ?? DEFAULTS.rawMiB,
      slowMiB: o.slowMiB ?? DEFAULTS.slowMiB,
      preallocate: o.preallocate ?? false,
    });
    const seed = o.seed ?? `${Date.now()}-${Math.random()}`;
    const truth = placePatterns(memFile, memoryMiB * 2 ** 20, o.reserved ?? [], seed);

    const started = Date.now();
    const consoleText = await runQemu(qemuArgs(o, memFile, jobDir, images), timeoutMs, o.onConsole);
    const durationMs = Date.now() - started;

    const exitFile = path.join(jobDir, 'exit-code');
    if (!fs.existsSync(exitFile)) {
      const started = consoleText.includes(JOB_START);
      throw new BoardError(started ? 'the board stopped before the job finished' : 'the board stopped before the job started', tail(consoleText, 60), started);
    }
    const read = (name: string) => {
      const f = path.join(jobDir, name);
      return fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '';
    };
    return new BoardRun(
      Number.parseInt(read('exit-code').trim(), 10),
      read('output.log'),
      read('dmesg.log'),
      consoleText,
      durationMs,
      truth,
      workDir,
      memFile,
      images,
    );
  } catch (err) {
    fs.rmSync(workDir, { recursive: true, force: true });
    fs.rmSync(path.dirname(memFile), { recursive: true, force: true });
    throw err;
  }
}

/**
 * Runs QEMU to its exit and resolves with everything it printed (the
 * console); rejects with a BoardError and the console's tail on a timeout
 * or a non-zero exit.  The PowerPC board (harness/ppc/board.ts) uses it too.
 */
export function runQemu(args: string[], timeoutMs: number, onConsole?: (line: string) => void, binary = 'qemu-system-x86_64'): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    let partial = '';
    const take = (chunk: Buffer) => {
      const s = chunk.toString('utf8');
      text += s;
      if (text.length > 4 << 20) text = text.slice(-(2 << 20));
      if (onConsole) {
        const lines = (partial + s).split(/\r?\n/);
        partial = lines.pop() ?? '';
        for (const line of lines) onConsole(line);
      }
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new BoardError(`the board did not finish within ${timeoutMs / 1000} s`, tail(text, 60)));
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new BoardError(`cannot start ${binary}: ${err.message}`, ''));
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal) return; // the timeout already rejected
      if (code !== 0) {
        reject(new BoardError(`${binary} exited with ${code}`, tail(text, 60)));
        return;
      }
      resolve(text);
    });
  });
}
