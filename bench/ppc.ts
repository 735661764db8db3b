/**
 * The question's board in the benchmark: the emulated PowerPC e500
 * (harness/ppc/board.ts), no Node, the static client only.  The same ranges
 * (the board's three test ranges and a larger one above 4 GiB) are
 * captured, round-robin, several rounds, one boot:
 *   module         the WRITE ioctl, one new O_DIRECT file per range, each synced
 *                  (physcap-client write)
 *   client         physcap-client capture --no-digest: the bare module write
 *                  of the ranges into one preallocated ELF core, one sync
 *   client-digest  physcap-client capture: the core, then its digest read
 *                  back through AF_ALG (the board's best driver, sha256-ppc-spe)
 *   client-builtin the same with the portable C SHA-256 (what AF_ALG buys)
 *   armed          arm --core to the dump partition, fired by a real
 *                  pretimeout (softdog), then digested by the arming client
 * Every time is the client's or the module's own (open to synced; the
 * armed capture's first byte to synced): process start-up under software
 * emulation says nothing about the capture path.
 */
import { bootPpcBoard, PPC_RANGES, PpcBoardRun, PpcRange } from '../harness/ppc/board';
import { hex } from '../harness/layout';
import { BenchCase, median, round3 } from './case';

const MiB = 2 ** 20;
const METHODS = ['module', 'client', 'client-digest', 'client-builtin', 'armed'] as const;
type Method = (typeof METHODS)[number];

/** The board's ranges and one larger, above 4 GiB (RAM ends at 4.5 GiB). */
function benchRanges(bulkMiB: number): PpcRange[] {
  return [...PPC_RANGES, { name: 'bulk', start: 0x1_1000_0000, size: bulkMiB * MiB }];
}

function job(ranges: PpcRange[], rounds: number): string {
  const triples = ranges.map((r) => `${r.name} ${hex(r.start)} ${hex(r.size)}`).join(' ');
  const pairs = ranges.map((r) => `${hex(r.start)} ${hex(r.size)}`).join(' ');
  const step: Record<Method, (n: string) => string[]> = {
    module: (n) => ranges.map((r) => `run /physcap-client write ${hex(r.start)} ${hex(r.size)} /disk/module-${n}-${r.name}.bin`),
    client: (n) => [`run /physcap-client capture /disk/client-${n}.core ${triples} --no-digest`],
    'client-digest': (n) => [`run /physcap-client capture /disk/digest-${n}.core ${triples}`],
    'client-builtin': (n) => [`run /physcap-client capture /disk/builtin-${n}.core ${triples} --digest-driver builtin`],
    // Fed once, then not: the pretimeout fires 5 s later, while the arm waits;
    // --replace: the partition holds the previous round's core, not kept.
    armed: (n) => [
      'run /physcap-selftest watchdog-arm --timeout 15 --pretimeout 10 --hold 0 --no-stop',
      `run /physcap-client arm 0 /dev/vdd ${pairs} --core --replace --wait --digest-out /disk/armed-${n}.digest`,
    ],
  };
  const lines: string[] = [];
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < METHODS.length; i++) {
      const m = METHODS[(i + round) % METHODS.length]!;
      lines.push(`# ${m} ${round}`, ...step[m](String(round)));
    }
  }
  return `# the e500 benchmark (bench/ppc.ts)
insmod /softdog.ko soft_noboot=1
insmod /physcap.ko
write /sys/class/watchdog/watchdog0/pretimeout_governor physcap
mount /dev/vda /disk ext4
${lines.join('\n')}
umount /disk
`;
}

interface Timed {
  durable: number;
  digested?: number;
  driver?: string;
}

/** The JSON lines of the one step whose line holds `unique` (the kernel's own console lines left out). */
function jsonLines(run: PpcBoardRun, unique: string): Array<Record<string, unknown>> {
  const found = run.steps.filter((s) => s.line.includes(unique));
  if (found.length !== 1) throw new Error(`e500 bench: ${found.length} steps hold "${unique}"\n${run.console.slice(-4000)}`);
  const step = found[0]!;
  if (step.rc !== 0) throw new Error(`e500 bench: "${step.line}" exited ${step.rc}\n${step.output}`);
  return step.output
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

function digestOf(out: Record<string, unknown>): { seconds: number; driver: string } {
  const d = out.digest as { ok?: boolean; seconds?: number; driver?: string } | undefined;
  if (!d?.ok || typeof d.seconds !== 'number') throw new Error(`e500 bench: no digest in ${JSON.stringify(out)}`);
  return { seconds: d.seconds, driver: String(d.driver) };
}

function timed(run: PpcBoardRun, ranges: PpcRange[], m: Method, n: string, total: number): Timed {
  switch (m) {
    case 'module': {
      const outs = ranges.map((r) => jsonLines(run, ` /disk/module-${n}-${r.name}.bin`).pop()!);
      if (outs.some((o) => o.ok !== true)) throw new Error(`e500 bench: a module write failed: ${JSON.stringify(outs)}`);
      return { durable: outs.reduce((a, o) => a + Number(o.seconds), 0) };
    }
    case 'client': {
      const out = jsonLines(run, ` /disk/client-${n}.core `).pop()!;
      if (out.ok !== true || out.bytes !== total) throw new Error(`e500 bench: client capture: ${JSON.stringify(out)}`);
      return { durable: Number(out.seconds) };
    }
    case 'client-digest':
    case 'client-builtin': {
      const file = m === 'client-digest' ? `digest-${n}` : `builtin-${n}`;
      const out = jsonLines(run, ` /disk/${file}.core `).pop()!;
      if (out.ok !== true || out.bytes !== total) throw new Error(`e500 bench: ${m}: ${JSON.stringify(out)}`);
      const d = digestOf(out);
      return { durable: Number(out.seconds), digested: Number(out.seconds) + d.seconds, driver: d.driver };
    }
    case 'armed': {
      const out = jsonLines(run, ` /disk/armed-${n}.digest`);
      const done = out.find((l) => l.event === 'capture_done');
      if (!done || done.bytes_written !== total) throw new Error(`e500 bench: armed: ${JSON.stringify(out)}`);
      const durable = Number(done.duration_ns) / 1e9;
      const d = digestOf(out[out.length - 1]!);
      return { durable, digested: durable + d.seconds, driver: d.driver };
    }
  }
}

/** Boots the e500 board once and measures every way, rounds times. */
export async function benchPpc(rounds: number, short: boolean): Promise<BenchCase[]> {
  const ranges = benchRanges(short ? 32 : 96);
  const total = ranges.reduce((a, r) => a + r.size, 0);
  process.stderr.write(`bench: booting the e500 board (${rounds} rounds, ${Math.round(total / MiB)} MiB a capture)...\n`);
  const run = await bootPpcBoard({
    job: job(ranges, rounds),
    ranges,
    // Every capture stays on the disk (the board's init has no rm).
    diskMiB: 256 + Math.ceil((rounds * 4 * total) / MiB),
    dumpMiB: 16 + Math.ceil(total / MiB),
    timeoutMs: 30 * 60_000,
  });
  try {
    const samples = new Map<Method, Timed[]>(METHODS.map((m) => [m, []]));
    for (let r = 0; r < rounds; r++) for (const m of METHODS) samples.get(m)!.push(timed(run, ranges, m, String(r), total));
    const module = median(samples.get('module')!.map((t) => t.durable));
    // The client's bare core: the same WRITEs into one preallocated file, one sync.
    const bare = median(samples.get('client')!.map((t) => t.durable));
    return METHODS.map((m) => {
      const ts = samples.get(m)!;
      const durable = median(ts.map((t) => t.durable));
      const digested = ts[0]!.digested === undefined ? undefined : median(ts.map((t) => t.digested!));
      return {
        name: `e500/${m}`,
        kernel: 'ppce500-board',
        bytes: total,
        // The capture's own time: to durable, or to digested where there is a digest.
        wall_s: round3(digested ?? durable),
        // Not measured per process on the board (no shell, no time(1)).
        cpu_s: 0,
        max_rss_mb: 0,
        rounds,
        throughput_mib_s: Math.round(total / MiB / durable),
        durable_s: round3(durable),
        ...(digested === undefined ? {} : { digested_s: round3(digested), digest_driver: ts[0]!.driver }),
        durable_vs_module: round3(durable / module),
        durable_vs_client: round3(durable / bare),
        ...(digested === undefined ? {} : { digested_vs_module: round3(digested / module) }),
        durable_samples_s: ts.map((t) => round3(t.durable)),
      };
    });
  } finally {
    run.cleanup();
  }
}
