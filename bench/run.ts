/**
 * npm run bench: the capture path measured on the emulated board.
 *
 * The same 256 MiB reserved range is written to an O_DIRECT-capable ext4
 * file three ways, round-robin, several rounds, page cache dropped before
 * each run, disks with cache=none so the host's cache flatters no path:
 *   module    physcap.ko WRITE: pages handed to the disk, zero-copy
 *   question  the question's way: mmap /dev/mem, write(2) buffered, fsync
 *   dd        dd if=/dev/mem ... oflag=direct: one copy by the CPU
 * Software emulation distorts absolute numbers; the ratios, measured side
 * by side in one boot, tell the story.  Writes bench/results/latest.json.
 *
 *   node dist/bench/run.js [--kernel 6.1|6.12|all] [--rounds N]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { bootBoard } from '../test/vm/board';
import { hex } from '../test/vm/layout';
import { artifacts, KernelSpec, loadKernels, repoRoot } from '../test/vm/paths';

const MiB = 2 ** 20;
const RANGE = { name: 'big', start: 0x2800_0000, size: 256 * MiB };
const METHODS = ['module', 'question', 'dd'] as const;
type Method = (typeof METHODS)[number];

interface Sample {
  method: Method;
  rc: number;
  wall_s: number;
  user_s: number;
  sys_s: number;
  max_rss_kb: number;
  out: Record<string, unknown> | null;
}

export interface BenchCase {
  name: string;
  kernel: string;
  bytes: number;
  wall_s: number;
  cpu_s: number;
  max_rss_mb: number;
  throughput_mib_s: number;
  rounds: number;
  [extra: string]: number | string;
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

function benchJob(kernel: KernelSpec, rounds: number): string {
  const { module, client } = artifacts(kernel);
  const start = hex(RANGE.start);
  const cmd: Record<Method, (f: string) => string> = {
    module: (f) => `${client} write ${start} ${RANGE.size} ${f}`,
    question: (f) => `${client} devmem ${start} ${RANGE.size} ${f}`,
    dd: (f) =>
      `dd if=/dev/mem of=${f} bs=1M iflag=skip_bytes,count_bytes skip=${RANGE.start} count=${RANGE.size} oflag=direct conv=fsync status=none`,
  };
  const lines: string[] = [];
  for (let round = 0; round < rounds; round++) {
    // Rotate the order so no method always runs first (or last).
    for (let i = 0; i < METHODS.length; i++) {
      const m = METHODS[(i + round) % METHODS.length]!;
      lines.push(`measure ${m} ${cmd[m](`$D/${m}-${round}.bin`)}`);
    }
  }
  return `#!/bin/bash
D=$PHYSCAP_BOARD_DISK
T=$TMPDIR
insmod ${module} || exit 10
measure() {
	local name=$1; shift
	rm -f $D/*.bin; sync; echo 3 > /proc/sys/vm/drop_caches
	/usr/bin/time -f '%e %U %S %M' -o $T/time "$@" > $T/out 2> $T/err
	local rc=$?
	read -r e u s m < <(tail -n 1 $T/time)
	local out=$(cat $T/out); [ -n "$out" ] || out=null
	printf '@@bench %s {"method":"%s","rc":%d,"wall_s":%s,"user_s":%s,"sys_s":%s,"max_rss_kb":%s,"out":%s}\\n' \\
		"$name" "$name" "$rc" "$e" "$u" "$s" "$m" "$out"
	[ $rc = 0 ] || cat $T/err
}
# Warm-up, not measured: the first write gives the reserved range struct pages.
${cmd.module('$D/warmup.bin')} > /dev/null
${lines.join('\n')}
exit 0
`;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

async function benchKernel(kernel: KernelSpec, rounds: number): Promise<BenchCase[]> {
  process.stderr.write(`bench: booting the board with ${kernel.release} (${rounds} rounds)...\n`);
  const run = await bootBoard({ kernel, job: benchJob(kernel, rounds), reserved: [RANGE] });
  try {
    if (run.exitCode !== 0) throw new Error(`bench job failed (${run.exitCode}):\n${run.output}`);
    const samples = run.records<Sample>('bench').map((r) => r.value);
    const failed = samples.filter((s) => s.rc !== 0);
    if (failed.length) throw new Error(`bench runs failed:\n${run.output}`);

    const by = (m: Method) => samples.filter((s) => s.method === m);
    const wall = (m: Method) => median(by(m).map((s) => s.wall_s));
    const cases: BenchCase[] = METHODS.map((m) => {
      const ss = by(m);
      const w = wall(m);
      const c: BenchCase = {
        name: `${m}@${kernel.series}`,
        kernel: kernel.release,
        bytes: RANGE.size,
        wall_s: round3(w),
        cpu_s: round3(median(ss.map((s) => s.user_s + s.sys_s))),
        max_rss_mb: round3(median(ss.map((s) => s.max_rss_kb)) / 1024),
        throughput_mib_s: Math.round(RANGE.size / MiB / w),
        rounds: ss.length,
        wall_vs_module: round3(w / wall('module')),
      };
      if (m === 'module') {
        const out = ss.map((s) => s.out ?? {});
        c.speedup_vs_question = round3(wall('question') / w);
        c.speedup_vs_dd = round3(wall('dd') / w);
        c.zero_copy_bytes = Math.min(...out.map((o) => Number(o.bytes_zero_copy)));
        c.cpu_copied_bytes = Math.max(...out.map((o) => Number(o.bytes_bounced) + Number(o.bytes_buffered)));
      }
      return c;
    });
    return cases;
  } finally {
    run.cleanup();
  }
}

function printTable(cases: BenchCase[]): void {
  const rows = cases.map((c) => [
    c.name,
    `${c.bytes / MiB} MiB`,
    c.wall_s.toFixed(3),
    c.cpu_s.toFixed(3),
    `${c.throughput_mib_s}`,
    `${c.max_rss_mb.toFixed(1)}`,
    `${Number(c.wall_vs_module).toFixed(2)}x`,
  ]);
  const head = ['case', 'bytes', 'wall s', 'cpu s', 'MiB/s', 'rss MiB', 'time vs module'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) => r.map((x, i) => x.padEnd(widths[i]!)).join('  ');
  console.log(fmt(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(fmt(r));
  for (const c of cases.filter((x) => x.name.startsWith('module'))) {
    console.log(
      `${c.name}: ${c.speedup_vs_question}x faster than the question's buffered way, ` +
        `${c.speedup_vs_dd}x faster than dd from /dev/mem; ` +
        `${c.zero_copy_bytes} bytes zero-copy, ${c.cpu_copied_bytes} copied by the CPU`,
    );
  }
}

async function main(): Promise<void> {
  const which = arg('kernel', '6.1');
  const rounds = Number.parseInt(arg('rounds', '3'), 10);
  const kernels = loadKernels().filter((k) => which === 'all' || k.series === which);
  if (!kernels.length) throw new Error(`no kernel of series ${which} in build/kernels.json`);

  const cases: BenchCase[] = [];
  for (const k of kernels) cases.push(...(await benchKernel(k, rounds)));
  printTable(cases);

  const dir = path.join(repoRoot(), 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'latest.json'), `${JSON.stringify(cases, null, 2)}\n`);
  console.log(`written: ${path.join('bench', 'results', 'latest.json')}`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
