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
 * Then, in the same boot after those cases, armed captures (the physcap
 * watchdog pretimeout governor, softdog with soft_noboot=1): the board's
 * three reserved ranges captured by the module on a pretimeout, alternating
 * round by round with the same ranges through the WRITE ioctl.  Reported:
 * the module's own first_byte_latency_ns (pretimeout -> first byte
 * submitted) and duration_ns (first byte -> synced) against the WRITE
 * client's own time (first ioctl -> fsync, one fsync at the end).
 *
 * Also the host benchmark of the native engine (bench/host.ts).
 *
 * And the agent's trigger latency and idle cost (bench/agent.ts).
 *
 * And the question's board, the emulated PowerPC e500 (bench/ppc.ts).
 *
 * And the fleet: a 2 GiB capture copied to S3 (a real Ceph with radosgw on
 * 127.0.0.1), physcap's copy against the SDK's own Upload side by side, the
 * agent's trigger to verified remote copy, and a copy killed with SIGKILL
 * at half way then resumed (bench/fleet.ts).
 *
 *   node dist/bench/run.js [--suite host|agent|board|e500|fleet|all] [--kernel 6.1|6.12|all] [--rounds N]
 *                          [--triggers N] [--idle SECONDS] [--fleet-mib N] [--short] [--out FILE]
 *
 * --short: every suite once, small: one round, 64 MiB host images, a few
 * triggers, one second idle, a 64 MiB fleet capture in 8 MiB parts.  npm
 * test runs it (test/bench/bench.vm.test.ts) so a benchmark that no longer
 * runs fails CI; its figures judge nothing.
 *
 * --fleet-mib: the fleet capture's size (default 2048; 64 with --short).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { BoardRun, bootBoard } from '../harness/board';
import { guestProgram, jobHead } from '../harness/job';
import { benchAgent } from './agent';
import { benchFleet, FULL_FLEET, SHORT_FLEET } from './fleet';
import { benchHost, HostCase } from './host';
import { limeModule } from './lime';
import { BenchCase, median, round3 } from './case';
import { benchPpc } from './ppc';
import { BOARD_RANGES, hex } from '../harness/layout';
import { KernelSpec, loadKernels, repoRoot } from '../harness/paths';

const MiB = 2 ** 20;
/** The board's 256 MiB range without struct pages (harness/layout.ts). */
const RANGE = BOARD_RANGES.find((r) => r.name === 'big')!;
/**
 * The armed cases capture every reserved range of the board (crashlog,
 * trace, big), laid out one after another in one preallocated file, as the
 * client's arm lays them out.
 */
const ARMED_RANGES = BOARD_RANGES;
const ARMED_TOTAL = ARMED_RANGES.reduce((a, r) => a + r.size, 0);
/** The issue's target for pretimeout -> first byte submitted. */
const FIRST_BYTE_TARGET_MS = 1;
/**
 * module: the C client's WRITE ioctl; question: mmap /dev/mem + buffered
 * write + fsync; dd: dd from /dev/mem with direct writes; engine-kernel and
 * engine-devmem: the native engine's two physical sources, SHA-256 on;
 * engine-readback: the kernel source hashing what reached the disk (what a
 * live region gets); agent: `physcap capture` of the range, ELF core,
 * manifest and all, hashing read back.  The engine and the agent report
 * when the bytes were durable and when the digests were done.
 */
const METHODS = ['module', 'question', 'dd', 'engine-kernel', 'engine-devmem', 'engine-readback', 'agent'] as const;
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

const SHORT = process.argv.includes('--short');

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

/**
 * All System RAM of the 1.5 GiB board, per round, each from a dropped
 * cache, each made durable (LiME syncs nothing itself: its insmod is timed
 * with a sync after it):
 * ram-client: the C client's ELF core of every System RAM range, no digest
 * (the bare capture); ram-client-digest: the same, then its digest read
 * back through AF_ALG (what a board without Node gets); lime-raw and lime-sha256: LiME's format=raw, and
 * format=lime digest=sha256 (it hashes as it writes); agent-ram: physcap
 * capture of the same ranges (iomem: System RAM), digests read back.
 */
const RAM_METHODS = ['ram-client', 'ram-client-digest', 'lime-raw', 'lime-sha256', 'agent-ram'] as const;

function ramJob(lime: string, rounds: number): string {
  const cmd: Record<(typeof RAM_METHODS)[number], string> = {
    'ram-client': 'sh $T/ram-client.sh --no-digest',
    'ram-client-digest': 'sh $T/ram-client.sh',
    // Double quotes: the job's $D is expanded before sh -c runs (it is not exported).
    'lime-raw': `sh -c "insmod ${lime} 'path=$D/lime.bin format=raw' && sync"`,
    'lime-sha256': `sh -c "insmod ${lime} 'path=$D/lime.bin format=lime digest=sha256' && sync"`,
    'agent-ram': 'sh $T/agent-ram.sh',
  };
  const lines: string[] = [];
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < RAM_METHODS.length; i++) {
      const m = RAM_METHODS[(i + round) % RAM_METHODS.length]!;
      lines.push(`measure ${m} file ${cmd[m]}; rmmod lime 2> /dev/null; rm -rf $D/*.bin $D/*.sha256 $D/*.digest $D/agent-captures`);
    }
  }
  return `# ---- all System RAM: the C client, LiME, the agent ----
ram_args=''
n=0
for r in $(sed -n 's/^\\([0-9a-f]*\\)-\\([0-9a-f]*\\) : System RAM$/\\1:\\2/p' /proc/iomem); do
	# The client takes whole pages: the first range (0x1000-0x9fbff) loses a partial page.
	s=$((0x\${r%:*})); e=$((0x\${r#*:} + 1))
	s=$(((s + 4095) / 4096 * 4096)); e=$((e / 4096 * 4096))
	[ $e -gt $s ] || continue
	ram_args="$ram_args ram$n $s $((e - s))"; n=$((n + 1))
done
echo "@@ramranges - {\\"ranges\\":$n}"
# Double quotes: the scripts get the job's variables' values (they are not exported).
printf "exec $C capture $D/ram-client.bin %s \\"\\$@\\"\\n" "$ram_args" > $T/ram-client.sh
cat > $T/agent-ram.yaml <<'YAML'
apiVersion: physcap.dev/v1
kind: CaptureProfile
name: ram
regions:
  - name: ram
    iomem: System RAM
    memory: live
triggers: [{ kind: control }]
destination: { kind: dir, path: /run/physcap-board/disk/agent-captures, retention: { keep_free: 0 } }
source: { kind: kernel }
YAML
printf "exec node $CLI capture $T/agent-ram.yaml --json\\n" > $T/agent-ram.sh
${lines.join('\n')}
`;
}

function benchJob(kernel: KernelSpec, rounds: number, lime: string): string {
  const start = hex(RANGE.start);
  const target = (d: Dest, m: Method, round: number) => (d === 'file' ? `$D/${m}-${round}.bin` : '$RAW');
  const engine = (source: string, f: string, hash = 'source') => {
    const request = JSON.stringify({ label: source, source, phys: start, length: String(RANGE.size), mode: 'create', hash, dest: '@DEST@' });
    // Single-quoted JSON with the destination spliced in unquoted, so the shell expands $D.
    return `node ${guestProgram('guest-capture')} '${request.replace('@DEST@', `'${f}'`)}'`;
  };
  const cmd: Record<Method, (d: Dest, f: string) => string> = {
    module: (d, f) => `$C write ${start} ${RANGE.size} ${f}${d === 'raw' ? ' --existing' : ''}`,
    question: (d, f) => `$C devmem ${start} ${RANGE.size} ${f}${d === 'raw' ? ' --existing' : ''}`,
    dd: (_d, f) => `dd if=/dev/mem of=${f} bs=1M iflag=skip_bytes,count_bytes skip=${RANGE.start} count=${RANGE.size} oflag=direct conv=fsync`,
    'engine-kernel': (_d, f) => engine('kernel', f),
    'engine-devmem': (_d, f) => engine('devmem', f),
    'engine-readback': (_d, f) => engine('kernel', f, 'readback'),
    agent: () => 'sh $T/agent-capture.sh',
  };
  // The engine and the agent write new files only (they never overwrite): file destinations.
  const methodsFor = (d: Dest) => METHODS.filter((m) => d === 'file' || !(m.startsWith('engine') || m === 'agent'));
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
  return `${jobHead(kernel)}W=/sys/class/watchdog/watchdog0
# The watchdog core before physcap, which binds its governor at load; softdog
# sits idle (nothing opens it) until the armed cases at the end.
modprobe softdog soft_noboot=1 || exit 11
insmod $MOD || exit 10
echo physcap > $W/pretimeout_governor || exit 12
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
# The agent's capture: the range as an ELF core in a fresh destination, hashed read back.
cat > $T/agent.yaml <<'YAML'
apiVersion: physcap.dev/v1
kind: CaptureProfile
name: bench
regions:
  - name: big
    start: "${start}"
    size: ${RANGE.size}
triggers: [{ kind: control }]
destination: { kind: dir, path: /run/physcap-board/disk/agent-captures, retention: { keep_free: 0 } }
source: { kind: kernel }
hash: { readback: always }
YAML
printf "rm -rf $D/agent-captures\\nexec node $CLI capture $T/agent.yaml --json\\n" > $T/agent-capture.sh
# Warm-up, not measured: the first write gives the reserved range struct pages.
${cmd.module('file', '$D/warmup.bin')} > /dev/null
${lines.join('\n')}
${ramJob(lime, rounds)}
${armedJob(rounds)}
exit 0
`;
}

/**
 * The armed cases, after every other case of the boot (so they disturb none
 * of them): per round, one armed capture of ARMED_RANGES fired by a softdog
 * pretimeout and the same ranges through WRITE, in alternating order.
 * Both start from the same state: old files removed, caches dropped, the
 * destination preallocated and the preallocation synced.  Both sync once,
 * at the end: the module's vfs_fsync_range after the last range; WRITE
 * with --no-fsync for all but the last range, whose client fsyncs.  The
 * client's time starts before its ioctl's argument checks and range
 * classification, which an arm does at arm time: if anything, WRITE is
 * charged a little more.
 */
function armedJob(rounds: number): string {
  const ranges = ARMED_RANGES.map((r) => `${hex(r.start)} ${r.size}`).join(' ');
  let offset = 0;
  const writes = ARMED_RANGES.map((r, i) => {
    const last = i === ARMED_RANGES.length - 1;
    const line =
      `\t$C write ${hex(r.start)} ${r.size} $f --existing --offset ${offset}${last ? '' : ' --no-fsync'} > $T/w.out; rc=$?\n` +
      `\tprintf '@@armedwrite %s-%s %s\\n' $r ${r.name} "$(cat $T/w.out)"; [ $rc = 0 ] || return 1`;
    offset += r.size;
    return line;
  });
  const order: string[] = [];
  for (let round = 0; round < rounds; round++) {
    order.push(
      round % 2 ? `write_round ${round} || exit 15; armed_round ${round} || exit 16` : `armed_round ${round} || exit 16; write_round ${round} || exit 15`,
    );
  }
  return `# ---- armed captures against WRITE ----
# Wait for the arm's JSON line (its arm_id) in a file.
arm_id() { for i in $(seq 200); do grep -q '"arm_id"' "$1" && return 0; sleep 0.05; done; return 1; }
fresh() { rm -f $D/*.bin; sync; echo 3 > /proc/sys/vm/drop_caches; }
armed_round() {
	local r=$1 armer wd rc
	fresh
	# The client preallocates the file (fallocate) before it arms.
	timeout 120 $C arm 0 $D/armed-$r.bin ${ranges} --cookie $((r + 1)) --wait > $T/arm.out 2>&1 &
	armer=$!
	arm_id $T/arm.out || { cat $T/arm.out; return 1; }
	sync
	# Fed once, then left alone: the pretimeout fires 2 s later.
	$S watchdog-arm --timeout 10 --pretimeout 8 --hold 3 > /dev/null &
	wd=$!
	wait $armer; rc=$?
	wait $wd
	sed "s/^/@@armed $r /" $T/arm.out
	[ $rc = 0 ] || { cat $T/arm.out; return 1; }
}
write_round() {
	local r=$1 f=$D/written-$1.bin rc
	fresh
	fallocate -l ${ARMED_TOTAL} $f || return 1
	sync
${writes.join('\n')}
}
${order.join('\n')}`;
}

/**
 * The capture itself, as each tool times it: from opening the destination
 * to after its fsync.  Process start-up is left out: under software
 * emulation exec alone costs 50-90 ms, noise that says nothing about the
 * capture path (wall_s keeps it, for the record).
 */
function durableAndDigested(out: Record<string, unknown> | null): [number, number] | undefined {
  if (typeof out?.durableSeconds === 'number' && typeof out.digestSeconds === 'number') return [out.durableSeconds, out.digestSeconds];
  // physcap-client: its capture time (open to synced), then its digest's.
  const d = out?.digest as { ok?: boolean; seconds?: number } | undefined;
  if (typeof out?.seconds === 'number' && d?.ok && typeof d.seconds === 'number') return [out.seconds, out.seconds + d.seconds];
  const t = out?.timing as { started?: string; durable?: string; digested?: string } | undefined;
  if (!t?.started || !t.durable || !t.digested) return undefined;
  const t0 = Date.parse(t.started);
  return [(Date.parse(t.durable) - t0) / 1000, (Date.parse(t.digested) - t0) / 1000];
}

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
    job: benchJob(kernel, rounds, limeModule(kernel)),
    reserved: BOARD_RANGES,
    preallocate: true,
    // Room for one dump of all System RAM (about 1.2 GiB) at a time.
    scratchMiB: 2048,
    // The System RAM cases take minutes a round under emulation.
    timeoutMs: (10 + rounds * 8) * 60_000,
    // Each case as it finishes: a long run shows where it is.
    onConsole: (line) => {
      if (line.startsWith('@@bench ')) process.stderr.write(`bench: ${line.slice(8, 160)}\n`);
    },
    rawMiB: 320,
  });
  try {
    if (run.exitCode !== 0) throw new Error(`bench job failed (${run.exitCode}):\n${run.output}`);
    const samples = run.records<Sample>('bench').map((r) => r.value);
    const failed = samples.filter((s) => s.rc !== 0);
    if (failed.length) throw new Error(`bench runs failed:\n${run.output}`);

    return [
      ...DESTS.flatMap((d) =>
        summarize(
          kernel,
          samples.filter((s) => s.dest === d),
          d,
        ),
      ),
      ...summarizeRam(kernel, samples as unknown as RamSample[]),
      ...summarizeArmed(kernel, run, rounds),
    ];
  } finally {
    run.cleanup();
  }
}

type RamSample = Omit<Sample, 'method'> & { method: (typeof RAM_METHODS)[number] };

/**
 * ram/<method>@<series>: all System RAM.  wall_s is the process's, to the
 * bytes durable (the client fsyncs, LiME's insmod is followed by sync);
 * the agent also reports durable_s and digested_s from its capture's
 * start.  The issue's targets: the agent durable within 1.2x of the
 * client's bare capture, and its digests 1.5x faster than LiME's sha256.
 */
function summarizeRam(kernel: KernelSpec, all: RamSample[]): BenchCase[] {
  const samples = all.filter((s) => (RAM_METHODS as readonly string[]).includes(s.method));
  const by = (m: RamSample['method']) => samples.filter((s) => s.method === m);
  if (!by('ram-client').length) return [];
  const wall = (m: RamSample['method']) => median(by(m).map((s) => s.wall_s));
  const bytes = Number(by('ram-client')[0]!.out?.bytes ?? 0);
  return RAM_METHODS.filter((m) => by(m).length).map((m) => {
    const c: BenchCase = {
      name: `ram/${m}@${kernel.series}`,
      kernel: kernel.release,
      bytes,
      wall_s: round3(wall(m)),
      cpu_s: round3(median(by(m).map((s) => s.user_s + s.sys_s))),
      max_rss_mb: round3(median(by(m).map((s) => s.max_rss_kb)) / 1024),
      throughput_mib_s: Math.round(bytes / MiB / wall(m)),
      rounds: by(m).length,
      wall_vs_client: round3(wall(m) / wall('ram-client')),
    };
    if (m === 'agent-ram' || m === 'ram-client-digest') {
      const t = by(m)
        .map((s) => durableAndDigested(s.out))
        .filter((x): x is [number, number] => x !== undefined);
      c.durable_s = round3(median(t.map((x) => x[0])));
      c.digested_s = round3(median(t.map((x) => x[1])));
      c.durable_vs_client = round3(Number(c.durable_s) / wall('ram-client'));
      // The client's: which SHA-256 the kernel crypto API gave it.
      const driver = (by(m)[0]!.out?.digest as { driver?: string } | undefined)?.driver;
      if (driver) c.digest_driver = driver;
      if (by('lime-sha256').length) {
        c.lime_sha256_vs_digested = round3(wall('lime-sha256') / Number(c.digested_s));
        c.lime_sha256_vs_wall = round3(wall('lime-sha256') / wall(m));
      }
    }
    return c;
  });
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
    // When the bytes were durable and the digests done: the engine's own
    // figures, or the agent's manifest times from the capture's start.
    const milestones = by(m)
      .map((s) => durableAndDigested(s.out))
      .filter((x): x is [number, number] => x !== undefined);
    if (milestones.length) {
      c.durable_s = round3(median(milestones.map((x) => x[0])));
      c.digested_s = round3(median(milestones.map((x) => x[1])));
      c.durable_vs_module = round3(Number(c.durable_s) / capture('module'));
    }
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

/** The fields of a physcap event record the armed cases read. */
interface ArmedEvent {
  event?: string;
  ok?: boolean;
  arm_id: number;
  bytes_written: number;
  bytes_zero_copy: number;
  first_byte_latency_ns: number;
  duration_ns: number;
}

interface WriteOut {
  ok: boolean;
  bytes_written: number;
  bytes_zero_copy: number;
  seconds: number;
}

const round6 = (x: number) => Math.round(x * 1e6) / 1e6;

/**
 * board/<series>/armed-first-byte and board/<series>/armed-vs-write, from
 * the armed rounds of the boot (the same pretimeouts feed both).
 */
function summarizeArmed(kernel: KernelSpec, run: BoardRun, rounds: number): BenchCase[] {
  const fail = (why: string): never => {
    throw new Error(`armed cases: ${why}\n${run.output}`);
  };
  const armed: ArmedEvent[] = [];
  const written: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const lines = run
      .records<ArmedEvent>('armed')
      .filter((x) => x.label === String(r))
      .map((x) => x.value);
    const id = lines.find((l) => l.ok === true && l.arm_id)?.arm_id;
    const done = lines.find((l) => l.event === 'capture_done' && l.arm_id === id);
    if (!id || !done) fail(`round ${r}: no CAPTURE_DONE record for the arm`);
    if (done!.bytes_written !== ARMED_TOTAL || done!.bytes_zero_copy !== ARMED_TOTAL) {
      fail(`round ${r}: armed capture wrote ${done!.bytes_written} bytes (${done!.bytes_zero_copy} zero-copy), expected ${ARMED_TOTAL}`);
    }
    armed.push(done!);

    const outs = ARMED_RANGES.map((g) => {
      const rec = run.records<WriteOut>('armedwrite').find((x) => x.label === `${r}-${g.name}`);
      if (!rec?.value.ok) fail(`round ${r}: WRITE of ${g.name} failed or is missing`);
      return rec!.value;
    });
    const bytes = outs.reduce((a, o) => a + o.bytes_written, 0);
    if (bytes !== ARMED_TOTAL) fail(`round ${r}: WRITE wrote ${bytes} bytes, expected ${ARMED_TOTAL}`);
    // The client's own time, ioctl to fsync, summed over the ranges: process
    // start-up between them is left out, as the armed capture has none.
    written.push(outs.reduce((a, o) => a + o.seconds, 0));
  }

  const latencyMs = armed.map((e) => e.first_byte_latency_ns / 1e6);
  const armedS = armed.map((e) => e.duration_ns / 1e9);
  const p50 = median(latencyMs);
  const armedMed = median(armedS);
  const writeMed = median(written);
  const base = (what: string, wall_s: number) => ({
    name: `board/${kernel.series}/${what}`,
    kernel: kernel.release,
    bytes: ARMED_TOTAL,
    wall_s,
    // The armed capture runs in a kernel worker with no process of its own:
    // no per-process CPU time or RSS to measure honestly, so 0 for both (the
    // arming client only sleeps in read(2) until the capture's record).
    cpu_s: 0,
    max_rss_mb: 0,
    rounds,
  });
  return [
    {
      // wall_s: the median first-byte latency, in seconds.
      ...base('armed-first-byte', round6(p50 / 1000)),
      latency_p50_ms: round3(p50),
      latency_max_ms: round3(Math.max(...latencyMs)),
      latency_samples_ms: latencyMs.map(round3),
      target_ms: FIRST_BYTE_TARGET_MS,
    },
    {
      // wall_s: the armed capture's median, first byte submitted to synced.
      ...base('armed-vs-write', round3(armedMed)),
      armed_wall_s: round3(armedMed),
      write_wall_s: round3(writeMed),
      ratio_armed_vs_write: round3(armedMed / writeMed),
      armed_samples_s: armedS.map(round3),
      write_samples_s: written.map(round3),
      throughput_mib_s: Math.round(ARMED_TOTAL / MiB / armedMed),
      write_throughput_mib_s: Math.round(ARMED_TOTAL / MiB / writeMed),
      // Pretimeout to synced: what a watchdog reset has to wait for.
      armed_pretimeout_to_synced_s: round3(median(armed.map((e) => (e.first_byte_latency_ns + e.duration_ns) / 1e9))),
    },
  ];
}

function printTable(head: string[], rows: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) => r.map((x, i) => x.padEnd(widths[i]!)).join('  ');
  console.log(fmt(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(fmt(r));
  console.log('');
}

function printBoard(all: BenchCase[]): void {
  const cases = all.filter((c) => c.capture_s !== undefined);
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
    c.durable_s === undefined ? '' : `${Number(c.durable_s).toFixed(3)} / ${Number(c.digested_s).toFixed(3)}`,
    c.durable_vs_module === undefined ? '' : `${Number(c.durable_vs_module).toFixed(2)}x`,
  ]);
  printTable(
    ['case', 'bytes', 'capture s', 'wall s', 'cpu s', 'MiB/s', 'rss MiB', 'capture vs module', 'wall vs module', 'durable / digested s', 'durable vs module'],
    rows,
  );
  for (const c of cases.filter((x) => x.name.startsWith('module'))) {
    console.log(
      `${c.name}: ${c.speedup_vs_question}x faster than the question's buffered way ` +
        `(${c.wall_speedup_vs_question}x in process wall time), ` +
        `${c.speedup_vs_dd}x faster than dd from /dev/mem (${c.wall_speedup_vs_dd}x); ` +
        `${c.zero_copy_bytes} bytes zero-copy, ${c.cpu_copied_bytes} copied by the CPU`,
    );
  }
  printRam(all.filter((c) => c.name.startsWith('ram/')));
  printArmed(all.filter((c) => c.name.startsWith('board/')));
}

/** All System RAM: the C client, LiME raw and sha256, the agent; durable and digested apart. */
function printRam(cases: BenchCase[]): void {
  if (!cases.length) return;
  console.log('');
  const f = (x: unknown, d = 3) => (x === undefined ? '' : Number(x).toFixed(d));
  printTable(
    ['case', 'bytes', 'rounds', 'wall s', 'cpu s', 'MiB/s', 'wall vs client', 'durable / digested s', 'durable vs client', 'LiME sha256 / digested'],
    cases.map((c) => [
      c.name,
      `${(c.bytes / MiB).toFixed(0)} MiB`,
      String(c.rounds),
      f(c.wall_s),
      f(c.cpu_s),
      String(c.throughput_mib_s),
      `${f(c.wall_vs_client, 2)}x`,
      c.durable_s === undefined ? '' : `${f(c.durable_s)} / ${f(c.digested_s)}`,
      c.durable_vs_client === undefined ? '' : `${f(c.durable_vs_client, 2)}x`,
      c.lime_sha256_vs_digested === undefined ? '' : `${f(c.lime_sha256_vs_digested, 2)}x`,
    ]),
  );
  console.log(
    'all System RAM; wall: the process, to the bytes durable (LiME: insmod, then sync). Targets: the agent durable <= 1.2x the ' +
      "client's bare capture; LiME's sha256 >= 1.5x the agent's time to digested.",
  );
}

/** The armed cases: first-byte latency, and the armed capture against WRITE. */
function printArmed(cases: BenchCase[]): void {
  if (!cases.length) return;
  console.log('');
  const f3 = (x: unknown) => (x === undefined ? '' : Number(x).toFixed(3));
  printTable(
    ['case', 'bytes', 'rounds', 'first byte p50 ms', 'max ms', 'armed s', 'WRITE s', 'armed/WRITE', 'samples'],
    cases.map((c) => [
      c.name,
      `${(c.bytes / MiB).toFixed(1)} MiB`,
      String(c.rounds),
      f3(c.latency_p50_ms),
      f3(c.latency_max_ms),
      f3(c.armed_wall_s),
      f3(c.write_wall_s),
      c.ratio_armed_vs_write === undefined ? '' : `${Number(c.ratio_armed_vs_write).toFixed(3)}x`,
      c.latency_samples_ms !== undefined ? `${String(c.latency_samples_ms)} ms` : `armed ${String(c.armed_samples_s)} s; WRITE ${String(c.write_samples_s)} s`,
    ]),
  );
  console.log(
    "armed: the module's first_byte_latency_ns (pretimeout -> first byte submitted) and duration_ns " +
      "(first byte -> synced); WRITE: the client's own time, first ioctl -> fsync, one fsync at the end. " +
      `Target for the first byte: <= ${FIRST_BYTE_TARGET_MS} ms.`,
  );
}

async function main(): Promise<void> {
  const which = arg('kernel', '6.1');
  const suite = arg('suite', 'all');
  const rounds = Number.parseInt(arg('rounds', SHORT ? '1' : '3'), 10);
  const kernels = loadKernels().filter((k) => which === 'all' || k.series === which);
  if (!kernels.length) throw new Error(`no kernel of series ${which} in build/kernels.json`);

  const cases: Array<BenchCase | HostCase> = [];
  if (suite === 'all' || suite === 'host') {
    const host = benchHost(rounds, SHORT ? { bigMiB: 64, smallMiB: 16 } : undefined);
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
    const agent = await benchAgent(Number.parseInt(arg('triggers', SHORT ? '3' : '200'), 10), Number.parseInt(arg('idle', SHORT ? '1' : '60'), 10));
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
  if (suite === 'all' || suite === 'e500') {
    const e500 = await benchPpc(rounds, SHORT);
    printE500(e500);
    cases.push(...e500);
  }
  if (suite === 'all' || suite === 'fleet') {
    const sizes = SHORT ? SHORT_FLEET : FULL_FLEET;
    const fleet = await benchFleet(rounds, { ...sizes, imageMiB: Number.parseInt(arg('fleet-mib', String(sizes.imageMiB)), 10) });
    printFleet(fleet);
    cases.push(...fleet);
  }

  const out = path.resolve(arg('out', path.join(repoRoot(), 'bench', 'results', 'latest.json')));
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, `${JSON.stringify(cases, null, 2)}\n`);
  console.log(`written: ${path.relative(repoRoot(), out)}`);
}

/** The e500 board: the module, the client with and without digests, armed; durable and digested apart. */
function printE500(cases: BenchCase[]): void {
  const f = (x: unknown, d = 3) => (x === undefined ? '' : Number(x).toFixed(d));
  printTable(
    ['case', 'bytes', 'rounds', 'durable s', 'digested s', 'MiB/s', 'durable vs client', 'durable vs module', 'digested vs module', 'driver'],
    cases.map((c) => [
      c.name,
      `${(c.bytes / MiB).toFixed(0)} MiB`,
      String(c.rounds),
      f(c.durable_s),
      f(c.digested_s),
      String(c.throughput_mib_s),
      `${f(c.durable_vs_client, 2)}x`,
      `${f(c.durable_vs_module, 2)}x`,
      c.digested_vs_module === undefined ? '' : `${f(c.digested_vs_module, 2)}x`,
      String(c.digest_driver ?? ''),
    ]),
  );
  console.log(
    "e500 board: the client's and the module's own times (open to synced; armed: first byte to synced). " +
      'client: the bare module write of the ranges into one core; module: one WRITE and sync per range into its own file. ' +
      'Target: a capture with digests durable within 1.2x the bare module write.',
  );
}

/** The fleet: the copy against the SDK's Upload, end to end through the agent, the resume after SIGKILL. */
function printFleet(cases: HostCase[]): void {
  const f = (x: unknown, d = 3) => (x === undefined ? '' : Number(x).toFixed(d));
  const note = (c: HostCase): string => {
    if (c.throughput_vs_sdk !== undefined)
      return (
        `${f(c.throughput_vs_sdk, 2)}x the SDK's throughput (${f(c.throughput_vs_sdk_when_required, 2)}x with its checksums off), ` +
        `RSS ${f(c.rss_vs_sdk, 2)}x, CPU ${f(c.cpu_vs_sdk, 2)}x; ${c.parts_in_flight_mb} MiB of parts in flight`
      );
    if (c.parts_resent !== undefined)
      return (
        `${c.parts_recorded_at_kill}/${c.parts_total} parts journaled at the kill; resumed: ${c.parts_sent_after} sent, ` +
        `${c.parts_journaled} from the journal, ${c.parts_found} found; re-sent ${c.parts_resent}`
      );
    if (c.captured_s !== undefined) return `captured at ${f(c.captured_s)} s, copy verified ${f(c.copy_s)} s later; ${c.parts_sent} parts`;
    return `own ${f(c.own_s)} s`;
  };
  printTable(
    ['case', 'bytes', 'rounds', 'wall s', 'cpu s', 'MiB/s', 'rss MiB', 'notes'],
    cases.map((c) => [
      c.name,
      `${(c.bytes / MiB).toFixed(0)} MiB`,
      String(c.rounds),
      f(c.wall_s),
      f(c.cpu_s),
      c.throughput_mib_s === undefined ? '' : String(c.throughput_mib_s),
      f(c.max_rss_mb, 1),
      note(c),
    ]),
  );
  console.log(
    "fleet: medians of the rounds; every figure is the uploader's own process (the agent's for end-to-end). Targets: physcap-copy " +
      "throughput >= the SDK's plain Upload (throughput_vs_sdk >= 1); peak RSS bounded by the parts in flight; after kill -9 at half way, " +
      'at most one part re-sent.',
  );
}

function notes(c: HostCase): string {
  const parts: string[] = [];
  if (c.ratio_vs_limit !== undefined) parts.push(`ratio_vs_limit ${c.ratio_vs_limit}`);
  if (c.ratio_vs_openssl !== undefined) parts.push(`${c.ratio_vs_openssl}x openssl`);
  if (c.durable_s !== undefined) parts.push(`durable at ${c.durable_s} s, digested at ${c.digested_s} s`);
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
