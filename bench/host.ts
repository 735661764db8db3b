/**
 * Host benchmark of the native engine, image source: a 2 GiB random image
 * in /dev/shm to an O_DIRECT file on the project's disk, SHA-256 on,
 * beside the tools that bound it (dd with direct I/O writes, openssl's
 * SHA-256) and the copy path (read + buffered write + fsync).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { physcapCli } from '../harness/agent';
import { writePattern } from '../harness/patterns';
import { repoRoot } from '../harness/paths';

const MiB = 2 ** 20;

export interface HostCase {
  name: string;
  bytes: number;
  wall_s: number;
  cpu_s: number;
  max_rss_mb: number;
  rounds: number;
  [extra: string]: number | string;
}

interface Timed {
  wall: number;
  cpu: number;
  rssMb: number;
  stdout: string;
}

/** Runs a command under /usr/bin/time: wall, CPU and peak RSS of the whole process. */
function run(cmd: string[]): Timed {
  const res = spawnSync('/usr/bin/time', ['-f', '@@time %e %U %S %M', ...cmd], { encoding: 'utf8', maxBuffer: 64 * MiB });
  if (res.status !== 0) throw new Error(`${cmd.join(' ')} failed (${res.status}): ${res.stderr}`);
  const line =
    res.stderr
      .split('\n')
      .filter((l) => l.startsWith('@@time'))
      .pop() ?? '';
  return { ...parseTime(line), stdout: res.stdout };
}

function parseTime(line: string): Omit<Timed, 'stdout'> {
  const [, e, u, s, m] = line.split(' ');
  return { wall: Number(e), cpu: Number(u) + Number(s), rssMb: Number(m) / 1024 };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const r3 = (x: number) => Math.round(x * 1000) / 1000;

function dropCaches(): void {
  execFileSync('sync');
  try {
    fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
  } catch {
    /* not root: the copy path then may start with a warmer cache */
  }
}

/** Image sizes: the real benchmark's, or small ones for the short run inside npm test. */
export interface HostSizes {
  bigMiB: number;
  smallMiB: number;
}
export const FULL_SIZES: HostSizes = { bigMiB: 2048, smallMiB: 256 };

export function benchHost(rounds: number, sizes: HostSizes = FULL_SIZES): HostCase[] {
  const big = sizes.bigMiB * MiB;
  const small = sizes.smallMiB * MiB;
  const root = repoRoot();
  const node = process.execPath;
  const shm = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : '/tmp', 'physcap-bench-'));
  const out = fs.mkdtempSync(path.join(root, 'build', 'bench-'));
  const images = { big: path.join(shm, 'image-2g'), small: path.join(shm, 'image-256m') };
  try {
    process.stderr.write(`bench: host, making a ${sizes.bigMiB} MiB and a ${sizes.smallMiB} MiB random image in tmpfs...\n`);
    for (const [file, size] of [
      [images.big, big],
      [images.small, small],
    ] as const) {
      const fd = fs.openSync(file, 'w');
      writePattern(fd, 0, size, 'bench', path.basename(file));
      fs.closeSync(fd);
    }
    const capture = path.join(root, 'dist', 'bench', 'capture-image.js');
    const dest = path.join(out, 'dest.bin');
    // The whole pipeline (plan, ELF container, whole-file digest, manifest,
    // SHA256SUMS, index) as `physcap capture` runs it, and its verifier.
    const captures = path.join(out, 'captures');
    const profile = (format: 'elf' | 'raw') => {
      const file = path.join(out, `bench-${format}.yaml`);
      fs.writeFileSync(
        file,
        `apiVersion: physcap.dev/v1\nkind: CaptureProfile\nname: bench-${format}\nregions:\n  - name: all\n    start: "0x0"\n    size: ${sizes.bigMiB}MiB\n` +
          `triggers: [{ kind: control }]\ndestination: { kind: dir, path: ${captures}, retention: { keep_free: 0 } }\n` +
          `source: { kind: image, image_path: ${images.big} }\noutput: { format: ${format} }\n`,
      );
      return file;
    };
    const freshCaptures = () => fs.rmSync(captures, { recursive: true, force: true });
    const oneCapture = () => {
      const dirs = fs.existsSync(captures) ? fs.readdirSync(captures).filter((d) => d.startsWith('bench-elf-')) : [];
      if (dirs.length === 1) return;
      freshCaptures();
      execFileSync(node, [physcapCli, 'capture', profile('elf'), '--json'], { stdio: 'ignore' });
    };
    const oneCore = () => {
      oneCapture();
      const id = fs.readdirSync(captures).find((d) => d.startsWith('bench-elf-'))!;
      return path.join(captures, id, 'core.elf');
    };
    const methods: Record<string, { cmd: string[] | (() => string[]); bytes: number; before?: () => void }> = {
      'capture-elf': { cmd: [node, physcapCli, 'capture', profile('elf'), '--json'], bytes: big, before: freshCaptures },
      'capture-raw': { cmd: [node, physcapCli, 'capture', profile('raw'), '--json'], bytes: big, before: freshCaptures },
      verify: { cmd: [node, physcapCli, 'verify', '--dest', captures, 'bench-elf-'], bytes: big, before: oneCapture },
      'verify-full': { cmd: [node, physcapCli, 'verify', '--full', '--dest', captures, 'bench-elf-'], bytes: big, before: oneCapture },
      // What verify's reads are bound by: the capture read back from this disk.
      'read-direct': { cmd: () => ['dd', `if=${oneCore()}`, 'of=/dev/null', 'bs=4M', 'iflag=direct', 'status=none'], bytes: big },
      physcap: { cmd: [node, capture, images.big, dest], bytes: big },
      'physcap-no-fsync': { cmd: [node, capture, images.big, dest, '--no-sync'], bytes: big },
      'physcap-256m': { cmd: [node, capture, images.small, dest], bytes: small },
      'dd-direct': { cmd: ['dd', `if=${images.big}`, `of=${dest}`, 'bs=4M', 'oflag=direct', 'status=none'], bytes: big },
      'dd-direct-fsync': {
        cmd: ['dd', `if=${images.big}`, `of=${dest}`, 'bs=4M', 'oflag=direct', 'conv=fsync', 'status=none'],
        bytes: big,
      },
      'openssl-sha256': { cmd: ['openssl', 'dgst', '-sha256', images.big], bytes: big },
      'copy-path': { cmd: ['dd', `if=${images.big}`, `of=${dest}`, 'bs=4M', 'conv=fsync', 'status=none'], bytes: big },
    };
    const names = Object.keys(methods);
    const samples = new Map<string, Timed[]>(names.map((n) => [n, []]));
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < names.length; i++) {
        const name = names[(i + round) % names.length]!;
        fs.rmSync(dest, { force: true });
        methods[name]!.before?.();
        dropCaches();
        const cmd = methods[name]!.cmd;
        samples.get(name)!.push(run(typeof cmd === 'function' ? cmd() : cmd));
      }
    }
    fs.rmSync(dest, { force: true });

    const med = (n: string, f: (t: Timed) => number) => median(samples.get(n)!.map(f));
    const wall = (n: string) => med(n, (t) => t.wall);
    const cases: HostCase[] = names.map((n) => ({
      name: `host/${n}`,
      bytes: methods[n]!.bytes,
      wall_s: r3(wall(n)),
      cpu_s: r3(med(n, (t) => t.cpu)),
      max_rss_mb: r3(med(n, (t) => t.rssMb)),
      rounds,
    }));
    const physcap = cases.find((c) => c.name === 'host/physcap')!;
    // The limit: the slower of writing with direct I/O and hashing.  Both
    // sides durable (fsync), as a capture must be.
    physcap.ratio_vs_limit = r3(wall('physcap') / Math.max(wall('dd-direct-fsync'), wall('openssl-sha256')));
    const noSync = cases.find((c) => c.name === 'host/physcap-no-fsync')!;
    noSync.ratio_vs_limit = r3(wall('physcap-no-fsync') / Math.max(wall('dd-direct'), wall('openssl-sha256')));
    physcap.speedup_vs_copy_path = r3(wall('copy-path') / wall('physcap'));
    // What the container, its whole-file digest and the manifest cost over the bare engine.
    const elf = cases.find((c) => c.name === 'host/capture-elf')!;
    elf.ratio_vs_engine = r3(wall('capture-elf') / wall('physcap'));
    // The issue's limit for the user-facing capture: the slower of a durable direct write and one SHA-256 stream.
    elf.ratio_vs_limit = r3(wall('capture-elf') / Math.max(wall('dd-direct-fsync'), wall('openssl-sha256')));
    // When its bytes were durable and when its digests were done, from the capture's own start (its manifest).
    const milestones = samples.get('capture-elf')!.map((t) => JSON.parse(t.stdout) as { timing?: { started: string; durable?: string; digested?: string } });
    const since = (iso: string | undefined, started: string) => (iso ? (Date.parse(iso) - Date.parse(started)) / 1000 : NaN);
    elf.durable_s = r3(median(milestones.map((m) => since(m.timing?.durable, m.timing!.started))));
    elf.digested_s = r3(median(milestones.map((m) => since(m.timing?.digested, m.timing!.started))));
    cases.find((c) => c.name === 'host/capture-raw')!.ratio_vs_engine = r3(wall('capture-raw') / wall('physcap'));
    // The issue's limit is openssl's hashing; verify also reads the capture from this disk, which read-direct times.
    const verify = cases.find((c) => c.name === 'host/verify')!;
    verify.ratio_vs_openssl = r3(wall('verify') / wall('openssl-sha256'));
    verify.ratio_vs_limit = r3(wall('verify') / Math.max(wall('openssl-sha256'), wall('read-direct')));
    cases.find((c) => c.name === 'host/verify-full')!.ratio_vs_openssl = r3(wall('verify-full') / wall('openssl-sha256'));
    physcap.rss_growth_256m_to_2g_mb = r3(physcap.max_rss_mb - cases.find((c) => c.name === 'host/physcap-256m')!.max_rss_mb);

    for (const size of [4096, 64 * 1024, MiB]) {
      const res = run([node, path.join(root, 'dist', 'bench', 'small-captures.js'), images.small, out, String(size), '200']);
      const parsed = JSON.parse(res.stdout) as { per_capture_ms: number };
      cases.push({
        name: `host/small-${size >= MiB ? `${size / MiB}m` : `${size / 1024}k`}`,
        bytes: size,
        wall_s: r3(res.wall),
        cpu_s: r3(res.cpu),
        max_rss_mb: r3(res.rssMb),
        rounds: 200,
        per_capture_ms: r3(parsed.per_capture_ms),
      });
    }
    return cases;
  } finally {
    fs.rmSync(shm, { recursive: true, force: true });
    fs.rmSync(out, { recursive: true, force: true });
  }
}
