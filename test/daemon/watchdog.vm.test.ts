/**
 * A real watchdog pretimeout on the emulated board, caught by the agent
 * from the kernel log: softdog (soft_noboot=1, so the board survives),
 * the noop pretimeout governor, a pretimeout set through the watchdog
 * ioctls, the device left unfed.  The agent runs inside the guest (node and
 * this checkout over 9p); the captured bytes must be the host's pattern.
 */
import * as path from 'node:path';

import { parseStamp } from '../../agent/src/capture/arm-stamp';
import { openBlockdevStore } from '../../agent/src/destinations/blockdev/store';
import type { Manifest } from '../../agent/src/manifest/types';
import { BoardRun, bootBoard } from '../../harness/board';
import { jobHead } from '../../harness/job';
import { BOARD_RANGES, hex } from '../../harness/layout';
import { KernelSpec, loadKernels } from '../../harness/paths';
import { readelf, scratchCopyFile } from '../support/board';
import { sha256File } from '../support/hash';
import { withTempDir } from '../support/tmp';

const trace = BOARD_RANGES.find((r) => r.name === 'trace')!;
const crashlog = BOARD_RANGES.find((r) => r.name === 'crashlog')!;

/** An armed profile of ARMED_RANGES on watchdog0, to `destination` (its YAML fields, indented by the caller's two spaces). */
function armedProfile(name: string, destination: string): string {
  return `apiVersion: physcap.dev/v1
kind: CaptureProfile
name: ${name}
regions:
${ARMED_RANGES.map((r) => `  - name: ${r.name}\n    start: "${hex(r.start)}"\n    size: ${r.size}`).join('\n')}
triggers:
  - kind: watchdog
    device: /dev/watchdog0
destination:
  ${destination}
hash:
  chunk_size: 1MiB`;
}

function job(kernel: KernelSpec): string {
  return `${jobHead(kernel)}W=$TMPDIR/agent
mkdir -p $W/profiles
cat > $W/profiles/board.yaml <<'YAML'
apiVersion: physcap.dev/v1
kind: CaptureProfile
name: board
regions:
  - name: trace
    start: "${hex(trace.start)}"
    size: ${trace.size}
triggers:
  - kind: kmsg
    presets: [watchdog_pretimeout]
destination:
  kind: dir
  path: /run/physcap-board/disk/captures
  retention: { keep_free: 0 }
YAML
# The watchdog core first: physcap.ko binds to its governor API at load time.
modprobe softdog soft_noboot=1 || exit 11
modprobe pretimeout_noop || exit 12
insmod $MOD || exit 10
echo "@@governor - {\\"value\\":\\"$(cat /sys/class/watchdog/watchdog0/pretimeout_governor)\\"}"
node $CLI run --config $W/none.yaml --profiles-dir $W/profiles --state-dir $W/state \\
	--runtime-dir $W/run --spool-dir $W/run/triggers 2> $W/agent.log &
agent=$!
for i in $(seq 300); do grep -q '"agent ready"' $W/agent.log && break; sleep 0.1; done
t0=$(date +%s%N)
$S watchdog-arm --timeout 10 --pretimeout 8 --hold 15 > $W/arm.json &
for i in $(seq 300); do grep -qs '"status":"complete"' $D/captures/index.jsonl && break; sleep 0.1; done
t1=$(date +%s%N)
kill -TERM $agent; wait $agent; rc=$?
echo "@@agent - {\\"rc\\":$rc,\\"ms_to_capture\\":$(( (t1 - t0) / 1000000 ))}"
echo "@@arm - $(cat $W/arm.json)"
for f in $D/captures/*/manifest.json; do echo "@@capture $(basename $(dirname $f)) $(tr -d '\\n' < $f)"; done
grep -h '"capture complete"' $W/agent.log | sed 's/^/@@log - /'
wait

# --- Armed in the kernel: the physcap governor, the agent frozen (SIGSTOP).
A=$TMPDIR/armed
mkdir -p $A/profiles
cat > $A/profiles/armed.yaml <<'YAML'
${armedProfile('armed', 'kind: dir\n  path: /run/physcap-board/disk/armed\n  retention: { keep_free: 0 }')}
YAML
start_agent() {
	node $CLI run --config $A/none.yaml --profiles-dir $A/profiles --state-dir $A/state \\
		--runtime-dir $A/run --spool-dir $A/run/triggers 2>> $A/agent.log &
	agent=$!
}
armed_at_least() { [ "$(grep -c '"capture armed in the kernel"' $A/agent.log)" -ge $1 ]; }
done_at_least() { [ "$($C events | grep -c '"event":"capture_done"')" -ge $1 ]; }
completes() { cat $D/armed/index.jsonl 2>/dev/null | grep -c '"status":"complete"'; }
complete_at_least() { [ "$(completes)" -ge $1 ]; }
frozen() {
	echo "@@frozen $1 {\\"state\\":\\"$(awk '{print $3}' /proc/$agent/stat)\\",\\"partial\\":$(ls $D/armed | grep -c '\\.partial$'),\\"complete\\":$(completes)}"
}
report() {
	echo "@@armedagent - {\\"rc\\":\\"$1\\",\\"step\\":\\"$2\\"}"
	$C events | sed 's/^/@@event - /'
	for f in $D/armed/*/manifest.json; do [ -f $f ] && echo "@@armed $(basename $(dirname $f)) $(tr -d '\\n' < $f)"; done
	[ -f $D/armed/index.jsonl ] && sed 's/^/@@index - /' $D/armed/index.jsonl
	echo "@@leftover - {\\"entries\\":\\"$(ls $D/armed 2>/dev/null | tr '\\n' ' ')\\"}"
	if [ "$1" = failed ]; then tail -40 $A/agent.log | grep '^{' | sed 's/^/@@armedlog - /'; else grep -h '"level":[456]0' $A/agent.log | sed 's/^/@@armedlog - /'; fi
	echo "@@armedlog - {\\"lines\\":$(wc -l < $A/agent.log),\\"profiles\\":\\"$(ls $A/profiles | tr '\\n' ' ')\\"}"
	# Anything that is not a JSON log line (a crash's stack) too.
	grep -hv '^{' $A/agent.log | head -40 | sed 's/\\\\/\\\\\\\\/g; s/"/\\\\"/g; s/^/@@armedlog - {"text":"/; s/$/"}/'
}
fail() { kill -CONT $agent 2>/dev/null; kill -KILL $agent 2>/dev/null; report failed "$1"; exit 0; }

start_agent
wait_for 120 armed_at_least 1 || fail "first arm"
echo "@@governor armed {\\"value\\":\\"$(cat /sys/class/watchdog/watchdog0/pretimeout_governor)\\"}"

# A: frozen while the kernel captures; SIGCONT, and the agent finishes it.
kill -STOP $agent
$S watchdog-arm --timeout 10 --pretimeout 8 --hold 11 > $A/arm-a.json &
holder=$!
wait_for 60 done_at_least 1 || fail "kernel capture A"
frozen a
kill -CONT $agent
wait_for 120 complete_at_least 1 || fail "agent finishing A"
wait_for 60 armed_at_least 2 || fail "re-arm after A"
wait $holder

# B: frozen while the kernel captures, then killed; a new agent finishes it.
kill -STOP $agent
$S watchdog-arm --timeout 10 --pretimeout 8 --hold 11 > $A/arm-b.json &
holder=$!
wait_for 60 done_at_least 2 || fail "kernel capture B"
frozen b
kill -KILL $agent; wait $agent 2>/dev/null
start_agent
wait_for 120 complete_at_least 2 || fail "restarted agent finishing B"
wait_for 60 armed_at_least 3 || fail "re-arm after restart"
kill -TERM $agent; wait $agent; rc=$?
wait $holder
report $rc done

# --- Armed into the dump partition (vdb, a blockdev ring): the reservation
# lets another capture through meanwhile; frozen, fired, killed, restarted.
B=$TMPDIR/armedblk
mkdir -p $B/profiles $B/cli
node $CLI blockdev init /dev/vdb > /dev/null 2>&1 || echo '@@blkstep init {"rc":1}'
cat > $B/profiles/armedblk.yaml <<'YAML'
${armedProfile('armedblk', 'kind: blockdev\n  device: /dev/vdb')}
YAML
cat > $B/cli/other.yaml <<'YAML'
apiVersion: physcap.dev/v1
kind: CaptureProfile
name: other
regions:
  - name: crashlog
    start: "${hex(crashlog.start)}"
    size: ${crashlog.size}
triggers:
  - kind: control
destination:
  kind: blockdev
  device: /dev/vdb
YAML
bstart() {
	node $CLI run --config $B/none.yaml --profiles-dir $B/profiles --state-dir $B/state \\
		--runtime-dir $B/run --spool-dir $B/run/triggers 2>> $B/agent.log &
	bagent=$!
}
barmed_at_least() { [ "$(grep -c '"capture armed in the kernel"' $B/agent.log)" -ge $1 ]; }
bcomplete_at_least() { [ "$(node $CLI list --dest /dev/vdb --json | grep -o '"status":"complete"' | wc -l)" -ge $1 ]; }
breport() {
	echo "@@blkagent - {\\"rc\\":\\"$1\\",\\"step\\":\\"$2\\"}"
	node $CLI list --dest /dev/vdb --json | sed 's/^/@@blklist - /'
	if [ "$1" = failed ]; then tail -40 $B/agent.log | grep '^{' | sed 's/^/@@blklog - /'; else grep -h '"level":[456]0' $B/agent.log | sed 's/^/@@blklog - /'; fi
}
bfail() { kill -CONT $bagent 2>/dev/null; kill -KILL $bagent 2>/dev/null; breport failed "$1"; exit 0; }

bstart
wait_for 120 barmed_at_least 1 || bfail "first arm"
# Armed, for as long as it takes: another capture to the same ring goes through.
node $CLI capture $B/cli/other.yaml --json > $B/other.json 2> $B/other.err
echo "@@blkstep other {\\"rc\\":$?,\\"out\\":$(cat $B/other.json || echo null)}"
kill -STOP $bagent
$S watchdog-arm --timeout 10 --pretimeout 8 --hold 11 > $B/arm.json &
holder=$!
wait_for 60 done_at_least 3 || bfail "kernel capture to the partition"
kill -KILL $bagent; wait $bagent 2>/dev/null
bstart
wait_for 120 bcomplete_at_least 2 || bfail "restarted agent finishing the partition's capture"
wait_for 60 barmed_at_least 2 || bfail "re-arm on the partition"
wait $holder
# Again, and physcap.ko is reloaded before an agent runs again: the module's
# events are gone, as after a reset; the stamp it wrote on the partition is
# what says the capture was written.
kill -STOP $bagent
$S watchdog-arm --timeout 10 --pretimeout 8 --hold 11 > $B/arm2.json &
holder=$!
wait_for 60 done_at_least 4 || bfail "second kernel capture to the partition"
kill -KILL $bagent; wait $bagent 2>/dev/null
wait $holder
rmmod physcap && insmod $MOD || bfail "reloading physcap.ko"
echo "@@blkstep reload {\\"events\\":$($C events | grep -c '"event":"capture_done"')}"
bstart
wait_for 120 bcomplete_at_least 3 || bfail "restarted agent finishing from the stamp"
wait_for 60 barmed_at_least 3 || bfail "re-arm after the reload"
for id in $(node $CLI list --dest /dev/vdb --json | grep -o '"id":"[^"]*"' | cut -d'"' -f4 | sort -u); do
	node $CLI verify --dest /dev/vdb $id > /dev/null 2>&1
	echo "@@blkverify $id {\\"rc\\":$?}"
done
kill -TERM $bagent; wait $bagent; rc=$?
breport $rc done
exit 0
`;
}

const ARMED_RANGES = BOARD_RANGES.filter((r) => r.name === 'crashlog' || r.name === 'trace');

describe.each(loadKernels())('a watchdog pretimeout on the board (kernel $series)', (kernel) => {
  let run: BoardRun;
  beforeAll(async () => {
    run = await bootBoard({ kernel, job: job(kernel), reserved: BOARD_RANGES });
  }, 15 * 60_000);
  afterAll(() => run?.cleanup());

  const one = <T>(key: string) => {
    const r = run.records<T>(key);
    if (r.length !== 1) throw new Error(`expected one @@${key}, got ${r.length}\n${run.output}`);
    return r[0]!;
  };

  test('the noop governor is the pretimeout governor; the watchdog was armed', () => {
    expect(run.exitCode).toBe(0);
    expect(run.records<{ value: string }>('governor').find((r) => r.label === '-')?.value.value).toBe('noop');
    expect(one<{ ok: boolean; pretimeout: number }>('arm').value).toMatchObject({ ok: true, pretimeout: 8 });
    expect(run.dmesg).toMatch(/watchdog0: pretimeout event/);
  });

  test('the kmsg trigger fired and the capture is complete and exact', () => {
    const c = one<Manifest>('capture');
    expect(c.value).toMatchObject({ id: c.label, status: 'complete', format: 'elf', triggers: [{ kind: 'kmsg', reason: 'watchdog0: pretimeout event' }] });
    expect(c.value.regions).toHaveLength(1);
    const region = c.value.regions[0]!;
    expect(region).toMatchObject({
      name: 'trace',
      phys: hex(trace.start),
      size: trace.size,
      sha256: '',
      chunks: run.memoryChunks('trace', region.chunkSize),
      mode: 'zero-copy',
      bytesZeroCopy: trace.size,
      source: 'kernel',
      file: 'core.elf',
    });
    // The bytes on disk, read on the host from the scratch image: the
    // region's slice of core.elf, and the PT_LOAD that points at it.
    withTempDir('watchdog', (tmp) => {
      const core = scratchCopyFile(run, `/captures/${c.label}/core.elf`, path.join(tmp, 'core.elf'));
      expect(sha256File(core, region.offset, trace.size)).toBe(run.truth('trace').sha256);
      const elf = readelf(core);
      expect(elf.type).toBe('CORE');
      expect(elf.loads).toEqual([expect.objectContaining({ offset: BigInt(region.offset), paddr: BigInt(trace.start), filesz: BigInt(trace.size) })]);
    });
  });

  describe('armed in the kernel (the physcap governor) while the agent is frozen', () => {
    const armed = () => run.records<Manifest>('armed').sort((a, b) => a.value.timing.started.localeCompare(b.value.timing.started));
    const index = () => run.records<Record<string, unknown>>('index').map((r) => r.value);

    test('the agent armed a capture and selected the physcap governor', () => {
      const step = one<{ rc: string; step: string }>('armedagent').value;
      if (step.rc === 'failed')
        throw new Error(
          `the armed job stopped at: ${step.step}\n${run.output
            .split('\n')
            .filter((l) => l.includes('@@armedlog'))
            .join('\n')}`,
        );
      const g = run.records<{ value: string }>('governor').find((r) => r.label === 'armed');
      expect(g?.value.value).toBe('physcap');
    });

    test('the kernel captured while the agent was stopped: nothing published until it ran again', () => {
      for (const label of ['a', 'b']) {
        const f = run.records<{ state: string; partial: number; complete: number }>('frozen').find((r) => r.label === label);
        expect({ label, ...f?.value }).toEqual({ label, state: 'T', partial: 1, complete: label === 'a' ? 0 : 1 });
      }
      const done = run
        .records<{ event: string; cookie: string; bytes_written: number; bytes_zero_copy: number; first_byte_latency_ns: number }>('event')
        .filter((e) => e.value.event === 'capture_done');
      expect(done).toHaveLength(2);
      const total = ARMED_RANGES.reduce((a, r) => a + r.size, 0);
      for (const e of done) expect(e.value).toMatchObject({ bytes_written: total, bytes_zero_copy: total });
    });

    test('both captures are complete, read back and exact; the second was finished by the restarted agent', () => {
      const caps = armed();
      expect(caps.map((c) => c.value.status)).toEqual(['complete', 'complete']);
      for (const c of caps) {
        expect(c.value.triggers).toEqual([expect.objectContaining({ kind: 'watchdog', reason: 'watchdog0 pretimeout: captured by physcap.ko' })]);
        for (const r of ARMED_RANGES) {
          expect(c.value.regions.find((x) => x.name === r.name)).toMatchObject({
            phys: hex(r.start),
            size: r.size,
            source: 'kernel',
            mode: 'zero-copy',
            bytesZeroCopy: r.size,
            digest: 'read-back',
            sha256: '',
            chunks: run.memoryChunks(r.name, 2 ** 20),
          });
        }
      }
      expect(caps[0]!.value.triggers[0]!.detail).not.toHaveProperty('finalized');
      expect(caps[1]!.value.triggers[0]!.detail).toMatchObject({ finalized: expect.stringMatching(/^finalized after a restart/) });
      const idx = index();
      expect(idx.map((e) => [e.status, e.recovered ?? null])).toEqual([
        ['complete', null],
        ['complete', expect.stringMatching(/^finalized after a restart/)],
      ]);
      // The third arm (after the restart) was disarmed and removed at SIGTERM: nothing half-made is left.
      expect(one<{ entries: string }>('leftover').value.entries.trim().split(' ').sort()).toEqual([...caps.map((c) => c.label), 'index.jsonl'].sort());
      expect(one<{ rc: string; step: string }>('armedagent').value).toEqual({ rc: '0', step: 'done' });
    });

    test('the bytes on disk, read on the host, are the ground truth', () => {
      expect(armed()).toHaveLength(2);
      withTempDir('armed', (tmp) => {
        for (const c of armed()) {
          const core = scratchCopyFile(run, `/armed/${c.label}/core.elf`, path.join(tmp, `${c.label}.elf`));
          for (const r of c.value.regions) expect(sha256File(core, r.offset, r.size)).toBe(run.truth(r.name).sha256);
        }
      });
    });

    test('dmesg is clean', () => {
      expect(run.dmesg).not.toMatch(/WARNING:|BUG:|Oops|general protection|circular locking/);
    });
  });

  describe('armed into the dump partition (a blockdev ring)', () => {
    test('the job ran to its end', () => {
      const step = one<{ rc: string; step: string }>('blkagent').value;
      if (step.rc === 'failed')
        throw new Error(
          `the partition's armed job stopped at: ${step.step}\n${run.output
            .split('\n')
            .filter((l) => l.includes('@@blk'))
            .join('\n')}`,
        );
      expect(step).toEqual({ rc: '0', step: 'done' });
      expect(run.records('blkstep').filter((r) => r.label === 'init')).toEqual([]);
    });

    test('while a capture was armed there, another capture to the same ring went through', () => {
      const other = run.records<{ rc: number; out: { status: string; regions: Array<{ mode: string }> } }>('blkstep').find((r) => r.label === 'other');
      expect(other?.value).toMatchObject({ rc: 0, out: { status: 'complete', regions: [{ mode: 'zero-copy' }] } });
    });

    test('the module reloaded (as after a reset) had no event of the second capture left', () => {
      expect(run.records<{ events: number }>('blkstep').find((r) => r.label === 'reload')?.value).toEqual({ events: 0 });
    });

    test('written by the kernel while the agent was frozen, finished by the restarted agent (from its event, then from its stamp); on the partition, read on the host, every byte and digest is the ground truth', () => {
      const store = openBlockdevStore(run.images.raw, { init: 'never' });
      try {
        const idx = store.index();
        expect(idx.problems).toEqual([]);
        expect(idx.entries.map((e) => [e.profile, e.status, e.recovered ?? null])).toEqual([
          ['other', 'complete', null],
          ['armedblk', 'complete', expect.stringMatching(/^finalized after a restart \(the agent was down/)],
          ['armedblk', 'complete', expect.stringMatching(/^finalized after a restart, from the kernel's stamp on the destination/)],
        ]);
        // The arm made after the restart was disarmed at SIGTERM and its reservation removed.
        expect(store.unfinished()).toEqual([]);
        for (const e of idx.entries) {
          const r = store.open(e.id);
          try {
            const m = JSON.parse(r.readFile('manifest.json').toString('utf8')) as Manifest;
            const at = r.locate('core.elf');
            expect(m.files.find((f) => f.name === 'core.elf')?.sha256).toBe(sha256File(at.path, Number(at.base), at.size));
            const names = e.profile === 'armedblk' ? ARMED_RANGES.map((x) => x.name) : ['crashlog'];
            expect(m.regions.map((x) => x.name)).toEqual(names);
            for (const region of m.regions) {
              expect(sha256File(at.path, Number(at.base) + region.offset, region.size)).toBe(run.truth(region.name).sha256);
              if (e.profile === 'armedblk') {
                expect(region).toMatchObject({ source: 'kernel', mode: 'zero-copy', digest: 'read-back', chunks: run.memoryChunks(region.name, 2 ** 20) });
              }
            }
            if (e.profile === 'armedblk') {
              // The last block of core.elf is the module's stamp: this arm's, done, every byte.
              const block = r.read('core.elf', at.size - 4096, 4096);
              const stamp = parseStamp(block, block.readBigUInt64LE(16));
              const total = ARMED_RANGES.reduce((a, x) => a + x.size, 0);
              expect(stamp).toMatchObject({
                type: 'capture-done',
                bytesWritten: total,
                bytesZeroCopy: total,
                armId: BigInt(String(m.triggers[0]!.detail!.armId)),
              });
            }
          } finally {
            r.close();
          }
        }
      } finally {
        store.close();
      }
    });

    test('verify in the guest passes for both; the new arm, still waiting, is not verifiable', () => {
      const listed = run.records<{ captures: Array<{ id: string }>; unfinished: Array<{ id: string; state: string }> }>('blklist');
      expect(listed).toHaveLength(1);
      const verified = run.records<{ rc: number }>('blkverify');
      const rc = new Map(verified.map((v) => [v.label, v.value.rc]));
      for (const c of listed[0]!.value.captures) expect(rc.get(c.id)).toBe(0);
      const waiting = verified.filter((v) => !listed[0]!.value.captures.some((c) => c.id === v.label));
      expect(waiting.map((v) => v.value.rc)).toEqual([1]);
    });
  });

  test('the agent stopped cleanly on SIGTERM', () => {
    const a = one<{ rc: number; ms_to_capture: number }>('agent').value;
    expect(a.rc).toBe(0);
    // The pretimeout fires 2 s after the last feed; the capture follows at once.
    expect(a.ms_to_capture).toBeLessThan(20_000);
  });
});
