/**
 * npm run demo: physcap's story on the emulated board, narrated.
 *
 * A board whose firmware reserved a crash log, a trace buffer and a large
 * dump area, each filled by the host with bytes only it knows.  In the guest:
 * the question's way fails with EFAULT; physcap.ko writes each range straight
 * from the pages to an O_DIRECT file and to the raw dump partition; the
 * question's buffered way is timed beside it.  On the host: every capture is
 * checked byte for byte against the ground truth.  Exit 0 only if every
 * check held.  (The agent, profiles and triggers join this demo as their
 * issues land.)
 */
import { BoardRun, bootBoard } from '../test/vm/board';
import { BOARD_RANGES, hex, rawOffsets } from '../test/vm/layout';
import { artifacts, loadKernels } from '../test/vm/paths';

const MiB = 2 ** 20;
const say = (s: string) => console.log(s);

interface WriteResult {
  ok: boolean;
  errno: string;
  bytes_written: number;
  bytes_zero_copy: number;
  bytes_bounced: number;
  seconds: number;
}

function demoJob(client: string, module: string): string {
  const offsets = rawOffsets(BOARD_RANGES);
  const trace = BOARD_RANGES.find((r) => r.name === 'trace')!;
  const captures = BOARD_RANGES.map(
    (r) => `
narrate "capturing ${r.name} (${(r.size / MiB).toFixed(2)} MiB at ${hex(r.start)}) zero-copy to an O_DIRECT file and to the dump partition"
rec file ${r.name} "$($C write ${hex(r.start)} ${r.size} $D/${r.name}.bin)"
rec raw ${r.name} "$($C write ${hex(r.start)} ${r.size} $RAW --existing --offset ${offsets.get(r.name)})"`,
  ).join('\n');
  return `#!/bin/sh
C=${client}
D=$PHYSCAP_BOARD_DISK
RAW=$PHYSCAP_BOARD_RAW
rec() { printf '@@%s %s %s\\n' "$1" "$2" "$3"; }
narrate() { echo "physcap-demo: $*" > /dev/console; }

narrate "board up: $(uname -r), $(grep -c Reserved /proc/iomem) reserved ranges in /proc/iomem"
narrate "the question's way: mmap /dev/mem, write(2) to an O_DIRECT file..."
rec question - "$($C devmem ${hex(trace.start)} 4096 $D/question.bin --direct)"
insmod ${module} || exit 10
narrate "physcap.ko loaded: /dev/physcap"
${captures}
narrate "for comparison, the question's buffered way on ${trace.name} (one CPU copy through the page cache)"
rec buffered ${trace.name} "$($C devmem ${hex(trace.start)} ${trace.size} $D/buffered.bin)"
narrate "done; powering off"
exit 0
`;
}

function check(label: string, ok: boolean, failures: string[]): string {
  if (!ok) failures.push(label);
  return ok ? 'ok' : 'MISMATCH';
}

function report(run: BoardRun): number {
  const failures: string[] = [];
  const one = <T>(key: string, label: string): T | undefined => run.records<T>(key).find((r) => r.label === label)?.value;
  const question = one<{ errno: string }>('question', '-');
  say('');
  say(`The question's way (mmap /dev/mem + O_DIRECT write): ${question?.errno ?? 'no result'}` +
    (question?.errno === 'EFAULT' ? ' -- as the question reports: the mapping has no struct pages.' : ''));
  if (question?.errno !== 'EFAULT') failures.push('the question reproduces EFAULT');

  say('');
  const head = ['range', 'size', 'destination', 'zero-copy', 'copied', 'MiB/s', 'SHA-256 vs host truth'];
  const rows: string[][] = [];
  const offsets = rawOffsets(BOARD_RANGES);
  for (const r of BOARD_RANGES) {
    const truth = run.truth(r.name).sha256;
    for (const dest of ['file', 'raw'] as const) {
      const w = one<WriteResult>(dest, r.name);
      const got = !w?.ok
        ? `failed: ${w?.errno ?? 'no result'}`
        : dest === 'file'
          ? run.scratchFileSha256(`/${r.name}.bin`, r.size)
          : run.rawSha256(offsets.get(r.name)!, r.size);
      const same = got === truth && w?.bytes_zero_copy === r.size;
      rows.push([
        r.name,
        `${(r.size / MiB).toFixed(2)} MiB`,
        dest === 'file' ? 'O_DIRECT file (ext4)' : 'raw dump partition',
        `${w?.bytes_zero_copy ?? 0}`,
        `${w?.bytes_bounced ?? 0}`,
        w?.ok ? `${Math.round(r.size / MiB / w.seconds)}` : '-',
        `${got.slice(0, 16)}... ${check(`${r.name} to ${dest}`, same, failures)}`,
      ]);
    }
  }
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const fmt = (row: string[]) => row.map((x, i) => x.padEnd(widths[i]!)).join('  ');
  say(fmt(head));
  say(widths.map((w) => '-'.repeat(w)).join('  '));
  rows.forEach((row) => say(fmt(row)));

  const buffered = one<WriteResult & { seconds: number }>('buffered', 'trace');
  const zeroCopy = one<WriteResult>('file', 'trace');
  if (buffered?.ok && zeroCopy?.ok) {
    say('');
    say(`trace, 16 MiB: physcap ${zeroCopy.seconds.toFixed(3)} s vs the question's buffered way ${buffered.seconds.toFixed(3)} s ` +
      `(${(buffered.seconds / zeroCopy.seconds).toFixed(1)}x), with no byte copied by the CPU.  "npm run bench" measures it properly.`);
  }
  say('');
  if (failures.length) {
    say(`FAILED: ${failures.join('; ')}`);
    return 1;
  }
  say('Every capture matches the host ground truth, byte for byte, and went zero-copy.');
  return 0;
}

async function main(): Promise<number> {
  const kernel = loadKernels()[0]!;
  const { client, module } = artifacts(kernel);
  say(`physcap demo: booting the emulated board (QEMU, Debian ${kernel.release}); the host fills the reserved ranges first.`);
  const started = Date.now();
  const run = await bootBoard({
    kernel,
    job: demoJob(client, module),
    reserved: BOARD_RANGES,
    onConsole: (line) => {
      const m = /physcap-demo: (.*)$/.exec(line);
      if (m) say(`  [${((Date.now() - started) / 1000).toFixed(0).padStart(3)} s] ${m[1]}`);
    },
  });
  try {
    if (run.exitCode !== 0) {
      say(`the board's job failed (${run.exitCode}):\n${run.output}`);
      return 1;
    }
    return report(run);
  } finally {
    run.cleanup();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  },
);
