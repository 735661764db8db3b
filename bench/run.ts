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
 * Also the host benchmark of the native engine (bench/host.ts).
 *
 * And the agent's trigger latency and idle cost (bench/agent.ts).
 *
 *   node dist/bench/run.js [--suite host|agent|board|all] [--kernel 6.1|6.12|all] [--rounds N]
 *                          [--triggers N] [--idle SECONDS]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { bootBoard } from '../test/vm/board';
import { benchAgent } from './agent';
import { benchHost, HostCase } from './host';
import { hex } from '../test/vm/layout';
import { artifacts, KernelSpec, loadKernels, repoRoot } from '../test/vm/paths';

const MiB = 2 ** 20;
const RANGE = { name: 'big', start: 0x2800_0000, size: 256 * MiB };
/**
 * module: the C client's WRITE ioctl; question: mmap /dev/mem + buffered
 * write + fsync; dd: dd from /dev/mem with direct writes; engine-kernel and
 * engine-devmem: the native engine's two physical sources, SHA-256 on.
 */
const METHODS = ['module', 'question', 'dd', 'engine-kernel', 'engine-devmem'] as const;
type Method = (typeof METHODS)[number];
/** An O_DIRECT file on ext4, and the raw dump partition the board writes to. */
const DESTS = ['file', 'raw'] as const;
type Dest = (typeof DESTS)[number];

interface Sample {
  method: Method;
  dest: Dest;
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
  const target = (d: Dest, m: Method, round: number) => (d === 'file' ? `$D/${m}-${round}.bin` : '$RAW');
  const engine = (source: string, f: string) => {
    const request = JSON.stringify({ label: source, source, phys: start, length: String(RANGE.size), mode: 'create', dest: '@DEST@' });
    // Single-quoted JSON with the destination spliced in unquoted, so the shell expands $D.
    return `node ${path.join(repoRoot(), 'dist', 'test', 'native', 'guest-capture.js')} '${request.replace('@DEST@', `'${f}'`)}'`;
  };
  const cmd: Record<Method, (d: Dest, f: string) => string> = {
    module: (d, f) => `${client} write ${start} ${RANGE.size} ${f}${d === 'raw' ? ' --existing' : ''}`,
    question: (d, f) => `${client} devmem ${start} ${RANGE.size} ${f}${d === 'raw' ? ' --existing' : ''}`,
    dd: (_d, f) =>
      `dd if=/dev/mem of=${f} bs=1M iflag=skip_bytes,count_bytes skip=${RANGE.start} count=${RANGE.size} oflag=direct conv=fsync`,
    'engine-kernel': (_d, f) => engine('kernel', f),
    'engine-devmem': (_d, f) => engine('devmem', f),
  };
  // The engine writes new files only (it never overwrites): file destinations.
  const methodsFor = (d: Dest) => METHODS.filter((m) => d === 'file' || !m.startsWith('engine'));
  const lines: string[] = [];
  for (let round = 0; round < rounds; round++) {
    for (const d of DESTS) {
      // Rotate the order so no method always runs first (or last).
      const methods = methodsFor(d);
      for (let i = 0; i < methods.length; i++) {
        const m = methods[(i + round) % methods.length]!;
        lines.push(`measure ${m} ${d} ${cmd[m](d, target(d, m, round))}`);
      }
    }
  }
  return `#!/bin/bash
D=$PHYSCAP_BOARD_DISK
RAW=$PHYSCAP_BOARD_RAW
T=$TMPDIR
insmod ${module} || exit 10
measure() {
	local name=$1 dest=$2; shift 2
	rm -f $D/*.bin; sync; echo 3 > /proc/sys/vm/drop_caches
	/usr/bin/time -f '%e %U %S %M' -o $T/time "$@" > $T/out 2> $T/err
	local rc=$?
	# (no process substitution: the board's /dev has no /dev/fd)
	tail -n 1 $T/time > $T/time.last
	read -r e u s m < $T/time.last
	# guest-capture.js prints "@@capture LABEL {json}"; the C client plain JSON.
	local out=$(sed 's/^@@capture [^ ]* //' $T/out)
	# dd reports its own time, from its start to after its fsync, on stderr.
	[ -n "$out" ] || out=$(sed -n 's/.* copied, \\([0-9.]*\\) s,.*/{"seconds":\\1}/p' $T/err)
	[ -n "$out" ] || out=null
	printf '@@bench %s {"method":"%s","dest":"%s","rc":%d,"wall_s":%s,"user_s":%s,"sys_s":%s,"max_rss_kb":%s,"out":%s}\\n' \\
		"$name" "$name" "$dest" "$rc" "$e" "$u" "$s" "$m" "$out"
	[ $rc = 0 ] || cat $T/err
}
# Warm-up, not measured: the first write gives the reserved range struct pages.
${cmd.module('file', '$D/warmup.bin')} > /dev/null
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

/**
 * The capture itself, as each tool times it: from opening the destination
 * to after its fsync.  Process start-up is left out: under software
 * emulation exec alone costs 50-90 ms, noise that says nothing about the
 * capture path (wall_s keeps it, for the record).
 */
function captureSeconds(s: Sample): number {
  const t = Number(s.out?.seconds);
  if (!Number.isFinite(t)) throw new Error(`${s.method}: no capture time in ${JSON.stringify(s.out)}`);
  return t;
}

async function benchKernel(kernel: KernelSpec, rounds: number): Promise<BenchCase[]> {
  process.stderr.write(`bench: booting the board with ${kernel.release} (${rounds} rounds)...\n`);
  // Preallocated images: sparse ones would add host block allocation to every case.
  const run = await bootBoard({
    kernel,
    job: benchJob(kernel, rounds),
    reserved: [RANGE],
    preallocate: true,
    scratchMiB: 1024,
    rawMiB: 320,
  });
  try {
    if (run.exitCode !== 0) throw new Error(`bench job failed (${run.exitCode}):\n${run.output}`);
    const samples = run.records<Sample>('bench').map((r) => r.value);
    const failed = samples.filter((s) => s.rc !== 0);
    if (failed.length) throw new Error(`bench runs failed:\n${run.output}`);

    return DESTS.flatMap((d) => summarize(kernel, samples.filter((s) => s.dest === d), d));
  } finally {
    run.cleanup();
  }
}

function summarize(kernel: KernelSpec, samples: Sample[], dest: Dest): BenchCase[] {
  const by = (m: Method) => samples.filter((s) => s.method === m);
  const med = (m: Method, f: (s: Sample) => number) => median(by(m).map(f));
  const capture = (m: Method) => med(m, captureSeconds);
  const wall = (m: Method) => med(m, (s) => s.wall_s);
  return METHODS.filter((m) => by(m).length).map((m) => {
    const c: BenchCase = {
      name: `${m}/${dest}@${kernel.series}`,
      kernel: kernel.release,
      bytes: RANGE.size,
      wall_s: round3(wall(m)),
      capture_s: round3(capture(m)),
      cpu_s: round3(med(m, (s) => s.user_s + s.sys_s)),
      max_rss_mb: round3(med(m, (s) => s.max_rss_kb) / 1024),
      throughput_mib_s: Math.round(RANGE.size / MiB / capture(m)),
      rounds: by(m).length,
      capture_vs_module: round3(capture(m) / capture('module')),
      wall_vs_module: round3(wall(m) / wall('module')),
    };
    if (m === 'module') {
      const out = by(m).map((s) => s.out ?? {});
      c.speedup_vs_question = round3(capture('question') / capture('module'));
      c.speedup_vs_dd = round3(capture('dd') / capture('module'));
      c.wall_speedup_vs_question = round3(wall('question') / wall('module'));
      c.wall_speedup_vs_dd = round3(wall('dd') / wall('module'));
      c.zero_copy_bytes = Math.min(...out.map((o) => Number(o.bytes_zero_copy)));
      c.cpu_copied_bytes = Math.max(...out.map((o) => Number(o.bytes_bounced) + Number(o.bytes_buffered)));
    }
    return c;
  });
}

function printTable(head: string[], rows: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) => r.map((x, i) => x.padEnd(widths[i]!)).join('  ');
  console.log(fmt(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(fmt(r));
  console.log('');
}

function printBoard(cases: BenchCase[]): void {
  const rows = cases.map((c) => [
    c.name,
    `${c.bytes / MiB} MiB`,
    Number(c.capture_s).toFixed(3),
    c.wall_s.toFixed(3),
    c.cpu_s.toFixed(3),
    `${c.throughput_mib_s}`,
    `${c.max_rss_mb.toFixed(1)}`,
    `${Number(c.capture_vs_module).toFixed(2)}x`,
    `${Number(c.wall_vs_module).toFixed(2)}x`,
  ]);
  printTable(['case', 'bytes', 'capture s', 'wall s', 'cpu s', 'MiB/s', 'rss MiB', 'capture vs module', 'wall vs module'], rows);
  for (const c of cases.filter((x) => x.name.startsWith('module'))) {
    console.log(
      `${c.name}: ${c.speedup_vs_question}x faster than the question's buffered way ` +
        `(${c.wall_speedup_vs_question}x in process wall time), ` +
        `${c.speedup_vs_dd}x faster than dd from /dev/mem (${c.wall_speedup_vs_dd}x); ` +
        `${c.zero_copy_bytes} bytes zero-copy, ${c.cpu_copied_bytes} copied by the CPU`,
    );
  }
}

async function main(): Promise<void> {
  const which = arg('kernel', '6.1');
  const suite = arg('suite', 'all');
  const rounds = Number.parseInt(arg('rounds', '3'), 10);
  const kernels = loadKernels().filter((k) => which === 'all' || k.series === which);
  if (!kernels.length) throw new Error(`no kernel of series ${which} in build/kernels.json`);

  const cases: Array<BenchCase | HostCase> = [];
  if (suite === 'all' || suite === 'host') {
    const host = benchHost(rounds);
    printTable(
      ['case', 'bytes', 'wall s', 'cpu s', 'rss MiB', 'notes'],
      host.map((c) => [
        c.name,
        c.bytes >= MiB ? `${c.bytes / MiB} MiB` : `${c.bytes / 1024} KiB`,
        c.wall_s.toFixed(3),
        c.cpu_s.toFixed(3),
        c.max_rss_mb.toFixed(1),
        notes(c),
      ]),
    );
    cases.push(...host);
  }
  if (suite === 'all' || suite === 'agent') {
    const agent = await benchAgent(Number.parseInt(arg('triggers', '200'), 10), Number.parseInt(arg('idle', '60'), 10));
    printTable(
      ['case', 'triggers', 'p50 ms', 'p99 ms', 'idle CPU %', 'RSS MiB'],
      agent.map((c) => [
        c.name,
        String(c.rounds),
        c.latency_p50_ms !== undefined ? String(c.latency_p50_ms) : '',
        c.latency_p99_ms !== undefined ? String(c.latency_p99_ms) : '',
        c.idle_cpu_percent !== undefined ? String(c.idle_cpu_percent) : '',
        c.max_rss_mb.toFixed(1),
      ]),
    );
    cases.push(...agent);
  }
  if (suite === 'all' || suite === 'board') {
    const board: BenchCase[] = [];
    for (const k of kernels) board.push(...(await benchKernel(k, rounds)));
    printBoard(board);
    cases.push(...board);
  }

  const dir = path.join(repoRoot(), 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'latest.json'), `${JSON.stringify(cases, null, 2)}\n`);
  console.log(`written: ${path.join('bench', 'results', 'latest.json')}`);
}

function notes(c: HostCase): string {
  const parts: string[] = [];
  if (c.ratio_vs_limit !== undefined) parts.push(`ratio_vs_limit ${c.ratio_vs_limit}`);
  if (c.ratio_vs_engine !== undefined) parts.push(`${c.ratio_vs_engine}x the bare engine`);
  if (c.speedup_vs_copy_path !== undefined) parts.push(`${c.speedup_vs_copy_path}x the copy path`);
  if (c.rss_growth_256m_to_2g_mb !== undefined) parts.push(`RSS +${c.rss_growth_256m_to_2g_mb} MiB from 256 MiB to 2 GiB`);
  if (c.per_capture_ms !== undefined) parts.push(`${c.per_capture_ms} ms per capture`);
  return parts.join('; ');
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
