/**
 * npm run demo: physcap's whole job on the emulated board, narrated.
 *
 * The host fills the board's reserved ranges (a crash log, a trace buffer,
 * a 256 MiB dump area) with bytes only it knows and boots the board.  In
 * the guest the question's way fails with EFAULT; then physcap.ko loads and
 * `physcap run` starts with the profiles in configs/demo/, and one after
 * another:
 *   1. a "watchdog repair hook" drops a trigger file;
 *   2. the agent is frozen (SIGSTOP) and softdog's pretimeout fires: the
 *      kernel writes the armed capture itself, the agent finishes it when it
 *      runs again;
 *   3. `physcap trigger` asks over the control socket;
 *   4. a broken profile is dropped in: the agent names file:line:col and
 *      keeps going.
 * Back on the host the captures are copied off the board's disk (debugfs, no
 * guest code trusted) into build/demo/<time>/, verified with `physcap
 * verify`, and every region's digest compared with the host's ground
 * truth.  Exit 0 only if every check held.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { Manifest } from '../agent/src/manifest/types';
import { physcapCli } from '../harness/agent';
import { BoardRun, bootBoard } from '../harness/board';
import { jobHead } from '../harness/job';
import { BOARD_RANGES, hex } from '../harness/layout';
import { KernelSpec, loadKernels, repoRoot } from '../harness/paths';
import { sha256OfFileRange } from '../harness/patterns';

const MiB = 2 ** 20;
const say = (s: string) => console.log(s);
const root = repoRoot();
const profilesDir = path.join(root, 'configs', 'demo');
/** Where the guest's profiles put captures, on the board's ext4 disk. */
const GUEST_DEST = 'demo-captures';
/** Which board range each profile region name holds. */
const RANGE_OF: Record<string, string> = { crashlog: 'crashlog', trace: 'trace', dump: 'big' };

const BROKEN_PROFILE = `apiVersion: physcap.dev/v1
kind: CaptureProfile
name: broken
regions:
  - name: crashlog
    start: "0x20000000"
    size: 3 MiBs
triggers:
  - kind: control
destination:
  kind: dir
  path: /run/physcap-board/disk/${GUEST_DEST}
`;

function demoJob(kernel: KernelSpec): string {
  const trace = BOARD_RANGES.find((r) => r.name === 'trace')!;
  return `${jobHead(kernel)}W=$TMPDIR/agent
P=$W/profiles
SPOOL=$W/run/triggers
narrate() { echo "physcap-demo: $*" > /dev/console; }
fail() {
	narrate "FAILED: $*"
	kill -CONT $agent 2>/dev/null; kill -TERM $agent 2>/dev/null; wait $agent 2>/dev/null
	tail -30 $W/agent.log | sed 's/^/@@agentlog - /'
	exit 1
}
completes() { cat $D/${GUEST_DEST}/index.jsonl 2>/dev/null | grep -c '"status":"complete"'; }
complete_at_least() { [ "$(completes)" -ge $1 ]; }
armed() { grep -q '"capture armed in the kernel"' $W/agent.log; }
fired() { $C events | grep -q '"event":"capture_done"'; }
ready() { grep -q '"agent ready"' $W/agent.log; }
rejected() { grep -q '"profile is invalid; not activated"' $W/agent.log; }

narrate "board up: $(uname -r), $(grep -c Reserved /proc/iomem) reserved ranges in /proc/iomem"
narrate "the question's way: mmap /dev/mem, write(2) to an O_DIRECT file..."
q=$($C devmem ${hex(trace.start)} 4096 $D/question.bin --direct)
rec question - "$q"
narrate "    $(sed -n 's/.*"errno":"\\([A-Z]*\\)".*/\\1/p' <<< "$q"): the mapping has no struct pages for O_DIRECT to hand to the disk"

# The watchdog core first: physcap.ko registers its pretimeout governor with it.
modprobe softdog soft_noboot=1 || exit 11
insmod $MOD || exit 10
narrate "physcap.ko loaded: /dev/physcap, the 'physcap' pretimeout governor"

mkdir -p $P $SPOOL
cp ${profilesDir}/*.yaml $P/
node $CLI run --config $W/none.yaml --profiles-dir $P --state-dir $W/state \\
	--runtime-dir $W/run --spool-dir $SPOOL 2> $W/agent.log &
agent=$!
wait_for 120 ready || fail "the agent did not start"
wait_for 120 armed || fail "the pretimeout profile was not armed"
narrate "physcap run: $(node $CLI status --runtime-dir $W/run | head -n 1) ($(ls $P | tr '\\n' ' ' | sed 's/ $//')); the pretimeout capture is armed in the kernel"

narrate "1/4 the watchdog repair hook drops its trigger file into the spool directory"
echo 'reason: "watchdog repair hook: /usr/sbin/watchdog ran its repair program"' > $SPOOL/.watchdog-repair.tmp
mv $SPOOL/.watchdog-repair.tmp $SPOOL/watchdog-repair
wait_for 180 complete_at_least 1 || fail "the file trigger's capture"
narrate "    captured: $(tail -n 1 $D/${GUEST_DEST}/index.jsonl | sed -n 's/.*"id":"\\([^"]*\\)".*/\\1/p')"

narrate "2/4 freezing the agent (SIGSTOP); softdog's pretimeout fires 2 s before its timeout"
kill -STOP $agent
$S watchdog-arm --timeout 10 --pretimeout 8 --hold 11 > $W/watchdog.json &
holder=$!
wait_for 60 fired || fail "the kernel's armed capture"
ev=$($C events | grep '"event":"capture_done"' | tail -n 1)
rec event - "$ev"
narrate "    the kernel wrote it while the agent was frozen: first byte $(( $(sed -n 's/.*"first_byte_latency_ns":\\([0-9]*\\).*/\\1/p' <<< "$ev") / 1000 )) us after the pretimeout, $(sed -n 's/.*"bytes_zero_copy":\\([0-9]*\\).*/\\1/p' <<< "$ev") bytes zero-copy"
narrate "    agent still frozen: $(awk '{print $3}' /proc/$agent/stat) (T = stopped); SIGCONT"
kill -CONT $agent
wait_for 120 complete_at_least 2 || fail "the agent finishing the armed capture"
wait $holder
narrate "    the agent wrote its manifest: $(tail -n 1 $D/${GUEST_DEST}/index.jsonl | sed -n 's/.*"id":"\\([^"]*\\)".*/\\1/p')"

narrate "3/4 physcap trigger on-demand (the control socket): the 256 MiB dump area"
rec trigger - "{\\"out\\":\\"$(node $CLI trigger on-demand --runtime-dir $W/run --reason 'operator request (demo)')\\"}"
wait_for 300 complete_at_least 3 || fail "the control trigger's capture"
narrate "    captured: $(tail -n 1 $D/${GUEST_DEST}/index.jsonl | sed -n 's/.*"id":"\\([^"]*\\)".*/\\1/p')"

narrate "4/4 a broken profile is dropped into the profile directory"
cat > $P/.broken.tmp <<'YAML'
${BROKEN_PROFILE}YAML
mv $P/.broken.tmp $P/broken.yaml
wait_for 60 rejected || fail "the broken profile was not reported"
grep '"profile is invalid; not activated"' $W/agent.log | tail -n 1 | node -e '
	const l = JSON.parse(require("fs").readFileSync(0, "utf8"));
	for (const p of l.problems) console.log(p);' > $W/problems.txt
while read -r line; do narrate "    agent: $line"; rec problem - "{\\"text\\":$(node -e 'console.log(JSON.stringify(process.argv[1]))' "$line")}"; done < $W/problems.txt
status=$(node $CLI status --runtime-dir $W/run | head -n 1)
rec status - "{\\"text\\":\\"$status\\"}"
narrate "    and keeps going: $status"

kill -TERM $agent; wait $agent; rc=$?
rec agent - "{\\"rc\\":$rc}"
narrate "agent stopped (exit $rc); powering off"
exit 0
`;
}

interface Row {
  capture: string;
  profile: string;
  trigger: string;
  bytes: number;
  zeroCopy: number;
  mibps: number;
  verify: string;
  truth: string;
}

function table(rows: Row[]): void {
  const head = ['capture', 'profile', 'trigger', 'bytes', 'zero-copy', 'MiB/s', 'verify', 'vs host truth'];
  const cells = rows.map((r) => [
    r.capture,
    r.profile,
    r.trigger,
    `${(r.bytes / MiB).toFixed(2)} MiB`,
    r.zeroCopy === r.bytes ? 'all' : `${r.zeroCopy} B`,
    r.mibps ? r.mibps.toFixed(0) : '-',
    r.verify,
    r.truth,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const fmt = (c: string[]) => c.map((x, i) => x.padEnd(widths[i]!)).join('  ');
  say(fmt(head));
  say(widths.map((w) => '-'.repeat(w)).join('  '));
  cells.forEach((c) => say(fmt(c)));
}

/**
 * The captures, copied off the board's ext4 image into a new directory of
 * their own under build/demo/ (or $PHYSCAP_DEMO_OUT: the demo's own test).
 */
function copyOut(run: BoardRun): string {
  const stamp = new Date()
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  const base = process.env.PHYSCAP_DEMO_OUT ?? path.join(root, 'build', 'demo');
  const out = path.join(base, stamp);
  fs.mkdirSync(out, { recursive: true });
  execFileSync('debugfs', ['-R', `rdump /${GUEST_DEST} ${out}`, run.images.scratch], { stdio: ['ignore', 'ignore', 'pipe'] });
  const latest = path.join(base, 'latest');
  fs.rmSync(latest, { force: true });
  fs.symlinkSync(stamp, latest);
  return path.join(out, GUEST_DEST);
}

/**
 * How long the bytes took to write: the kernel's own measure for an armed
 * capture (its manifest's start is the pretimeout, and the agent was frozen
 * for part of what follows), else the capture's start to its manifest.
 */
function writeSeconds(m: Manifest): number {
  const ns = m.triggers[0]?.detail?.durationNs;
  return typeof ns === 'number' ? ns / 1e9 : m.timing.seconds;
}

function report(run: BoardRun): number {
  const failures: string[] = [];
  const need = (label: string, ok: boolean) => {
    if (!ok) failures.push(label);
    return ok;
  };
  const one = <T>(key: string): T | undefined => run.records<T>(key)[0]?.value;

  say('');
  need("the question's way fails with EFAULT", one<{ errno: string }>('question')?.errno === 'EFAULT');

  const dest = copyOut(run);
  const dirs = fs.readdirSync(dest).filter((d) => fs.existsSync(path.join(dest, d, 'manifest.json')));
  const manifests = dirs.map((d) => JSON.parse(fs.readFileSync(path.join(dest, d, 'manifest.json'), 'utf8')) as Manifest);
  manifests.sort((a, b) => a.timing.started.localeCompare(b.timing.started));

  const rows: Row[] = manifests.map((m) => {
    const v = spawnSync(process.execPath, [physcapCli, 'verify', m.id, '--dest', dest], { encoding: 'utf8' });
    const verified = need(`${m.id} verifies`, v.status === 0);
    // Each region's bytes in its file, read on the host, are the ground truth's (verify has tied them to the digests).
    const matches = m.regions.every(
      (r) => RANGE_OF[r.name] !== undefined && sha256OfFileRange(path.join(dest, m.id, r.file), r.offset, r.size) === run.truth(RANGE_OF[r.name]!).sha256,
    );
    need(`${m.id} matches the host's ground truth`, m.status === 'complete' && matches);
    const bytes = m.regions.reduce((a, r) => a + r.size, 0);
    const zeroCopy = m.regions.reduce((a, r) => a + r.bytesZeroCopy, 0);
    need(`${m.id} went zero-copy`, zeroCopy === bytes);
    return {
      capture: m.id,
      profile: m.profile.name,
      trigger: m.triggers[0]?.kind ?? '-',
      bytes,
      zeroCopy,
      mibps: writeSeconds(m) > 0 ? bytes / MiB / writeSeconds(m) : 0,
      verify: verified ? 'ok' : 'FAILED',
      truth: matches ? `match (${m.regions.map((r) => r.name).join(', ')})` : 'MISMATCH',
    };
  });
  for (const [profile, trigger] of [
    ['watchdog-hook', 'file'],
    ['pretimeout', 'watchdog'],
    ['on-demand', 'control'],
  ]) {
    need(`one ${trigger}-triggered capture of ${profile}`, rows.filter((r) => r.profile === profile && r.trigger === trigger).length === 1);
  }
  const problems = run.records<{ text: string }>('problem').map((r) => r.value.text);
  need(
    'the broken profile is reported with file:line:col',
    problems.some((p) => /broken\.yaml:\d+:\d+/.test(p)),
  );
  need(
    'the agent kept going (3 profiles active) and stopped cleanly',
    /^3 profiles active/.test(one<{ text: string }>('status')?.text ?? '') && one<{ rc: number }>('agent')?.rc === 0,
  );

  say('Captures, copied off the board and checked on the host:');
  say('');
  table(rows);
  say("(MiB/s under software emulation: the kernel's write time for the armed capture; start to manifest for the others.)");
  say('');
  say(`The broken profile, as the agent reported it: ${problems[0] ?? '(nothing reported)'}`);
  say('');
  const rel = path.relative(process.cwd(), dest) || '.';
  say(
    `The captures are in ${rel} (${path.relative(process.cwd(), path.join(path.dirname(path.dirname(dest)), 'latest'))} points at the newest run). Explore them:`,
  );
  say(`  node agent/bin/physcap.js list   --dest ${rel}`);
  if (rows[0]) {
    say(`  node agent/bin/physcap.js show   ${rows[0].capture} --dest ${rel}`);
    say(`  node agent/bin/physcap.js verify ${rows[0].capture} --dest ${rel}`);
    say(`  node agent/bin/physcap.js export ${rows[0].capture} --dest ${rel} --format lime -o /tmp/${rows[0].capture}.lime`);
    say(`  (cd ${rel}/${rows[0].capture} && sha256sum -c SHA256SUMS);  readelf -l ${rel}/${rows[0].capture}/core.elf`);
  }
  say('');
  if (failures.length) {
    say(`FAILED: ${failures.join('; ')}`);
    return 1;
  }
  say('Every capture is complete, verifies, went zero-copy and matches the host ground truth byte for byte.');
  return 0;
}

async function main(): Promise<number> {
  const kernel = loadKernels()[0]!;
  say(`physcap demo: booting the emulated board (QEMU, Debian ${kernel.release}); the host fills the reserved ranges first.`);
  const started = Date.now();
  const run = await bootBoard({
    kernel,
    job: demoJob(kernel),
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
